"""How an input's columns become the bar's: names matched, values converted, in one SELECT.

`match_columns` finds each bar field's column in a file (its own name, or a vendor's, without
regard to case, or the one an option names); `plan_select` writes the DuckDB SELECT that reads
the file as bars, timestamps as integer UTC microseconds, and says for each row which value
did not parse and why. The rules are `warehouse.ingest`'s (its module notes).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.errors import IngestError
from warehouse.schema import COLUMNS, MAX_TS, MIN_TS, PER_SECOND, REQUIRED, TsUnit

#: What a local time the clocks repeat (a daylight-saving change back) is taken as: a bad row
#: (``invalid``), its first instant or its second.
Ambiguous = Literal["invalid", "earliest", "latest"]


@dataclass(frozen=True)
class ColumnOptions:
    """What the caller said of an input's columns (checked by `of`)."""

    symbol: str | None
    mapping: dict[str, str]  # bar field (or TIME, the time of day) -> column named by the caller
    tz: str | None
    ts_unit: TsUnit | None
    ts_format: str | None
    ambiguous: Ambiguous = "invalid"

    @classmethod
    def of(
        cls,
        *,
        symbol: str | None = None,
        symbol_col: str | None = None,
        ts_col: str | None = None,
        time_col: str | None = None,
        rename: Mapping[str, str] | None = None,
        tz: str | None = None,
        ts_unit: TsUnit | None = None,
        ts_format: str | None = None,
        ambiguous: Ambiguous = "invalid",
    ) -> ColumnOptions:
        """Check the options and gather the columns named into one mapping.

        Raises
        ------
        IngestError
            An unknown zone or unit, a rename to no bar field, two columns for one field.
        """
        if ts_unit is not None and ts_unit not in PER_SECOND:
            raise IngestError(None, f"unknown ts unit {ts_unit!r}; use one of s, ms, us, ns")
        if ambiguous not in get_args(Ambiguous):
            raise IngestError(
                None, f"unknown rule {ambiguous!r} for ambiguous local times; use one of "
                f"{', '.join(get_args(Ambiguous))}"
            )
        if tz is not None:
            try:
                # Both know it: polars converts local times, and takes some names that are
                # no IANA zone ('', which it reads as none).
                zoneinfo.ZoneInfo(tz)
                pl.Series([], dtype=pl.Datetime("us")).dt.replace_time_zone(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, pl.exceptions.ComputeError):
                raise IngestError(
                    None,
                    f"unknown time zone {tz!r}; use an IANA name such as "
                    "America/New_York, Europe/London or UTC",
                ) from None
        if symbol is not None and symbol_col is not None:
            raise IngestError(
                None, "give the symbol (symbol=) or its column (symbol_col=), not both"
            )
        mapping: dict[str, str] = {}
        for source, target in (rename or {}).items():
            if target not in COLUMNS:
                raise IngestError(
                    None,
                    f"cannot rename {source!r} to {target!r}: not a bar "
                    f"field (the fields are {', '.join(COLUMNS)})",
                )
            if target in mapping:
                raise IngestError(
                    None, f"two columns renamed to {target!r}: {mapping[target]!r} and {source!r}"
                )
            mapping[target] = source
        for target, named in (("symbol", symbol_col), ("ts", ts_col), (TIME, time_col)):
            if named is not None:
                if mapping.get(target, named) != named:
                    raise IngestError(
                        None, f"two columns named for {target!r}: {mapping[target]!r} and {named!r}"
                    )
                mapping[target] = named
        return cls(symbol, mapping, tz, ts_unit, ts_format, ambiguous)


#: The key of `match_columns`' answer for a column holding the time of day of ts's date.
TIME = "time of day"
#: A date and a time of day in columns of their own, as vendors name them (lower-cased): taken
#: together as ts when the file has one of each and no other column for ts.
_DATE_NAMES = ("date", "tradedate", "trade_date")
_TIME_NAMES = ("time", "tradetime", "trade_time")

#: The names vendors give each bar field, after the field's own, compared lower-cased.
_ALIASES: dict[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker", "sym", "s"),
    "ts": ("ts", "timestamp", "datetime", "date", "time", "t", "window_start"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
    "vwap": ("vwap", "vw"),
    "trade_count": ("trade_count", "trades", "transactions", "n"),
}
_INTEGER = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_FLOAT = {"FLOAT", "REAL", "DOUBLE"}
_AWARE = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"}
_NAIVE = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE", "DATETIME"}
#: A timestamp string that ends in a UTC offset: a time, then Z or +hh[:mm].
_OFFSET = r"\d{2}:?\d{2}(:?\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$"
#: The reason of a timestamp string without an offset when no tz was given: never a row's
#: problem alone, it is the whole file's (see `warehouse.ingest`).
NO_OFFSET = "has no UTC offset"
NAIVE_HINT = (
    "say the zone the times are in (--tz America/New_York, or --tz UTC), or "
    "write them with an offset"
)


@dataclass
class Plan:
    """How one input's columns become the bar's: the SELECT, and what to check per batch."""

    sql: str
    columns: dict[str, str | None]  # bar field -> source column (None: constant or absent);
    # a ts of a date and a time column is named by both, 'Date+Time'
    ignored: tuple[str, ...]
    epoch: bool  # ts is an integer or float epoch (checked per batch against its unit)
    unit: TsUnit | None  # the unit said, or None (then the values must plainly be us)
    local: bool  # ts holds wall clocks of the tz where ts_local is true (`resolve_local`)


def plan_select(
    file: str,
    relation: str,
    types: dict[str, str],
    columns: dict[str, str | None],
    options: ColumnOptions,
    *,
    text: bool,
) -> Plan:
    """The SELECT that reads ``relation`` as bars, with a diagnosis of each row's parse.

    Parameters
    ----------
    file
        The input's name, for messages.
    relation
        The table function (or frame) to read.
    types
        Each source column's DuckDB type (for a text file, what DuckDB sniffed from a sample).
    columns
        Each bar field's source column, and the time of day's (`match_columns`).
    text
        The values come as text (CSV, NDJSON) whatever ``types`` says: each is converted here,
        so that one that does not parse is its row's problem, not an error stopping the file.

    Returns
    -------
    Plan
        Its SELECT gives the bar columns (ts as integer microseconds), ``ts_number`` when ts is
        an epoch, ``ts_local`` when it may be a local time, and for each row the first field
        whose value did not parse: ``_bad_field``, ``_bad_value`` (the text) and
        ``_bad_reason``.
    """
    raw: list[str] = []
    parsed: list[str] = []
    reasons: list[tuple[str, str]] = []  # (field, SQL reason of a value that did not parse)
    extra: list[str] = []  # ts_number, ts_local: what the batch checks need of ts
    labels = {name: columns[name] for name in COLUMNS}  # each field's column, for messages
    for name in COLUMNS:
        source = columns[name]
        if source is None:
            if name == "symbol":
                parsed.append(f"{literal(options.symbol or '')} AS symbol")
            else:
                kind = "BIGINT" if name in ("ts", "trade_count") else "DOUBLE"
                parsed.append(f"NULL::{kind} AS {name}")
            continue
        kind = _kind(types[source])
        value = f"trim({name}_raw)" if text or kind == "text" else f"{name}_raw"
        clock = columns.get(TIME) if name == "ts" else None
        if clock is None:
            raw.append(f"{identifier(source)} AS {name}_raw")
        else:
            # The date and the time of day read as one text, "2025-11-21 09:30:00", then as
            # any timestamp text is (--ts-format, --tz and offsets apply to it).
            if options.ts_unit is not None:
                raise IngestError(
                    file, f"--ts-unit is for integer epochs, which take no time column; drop "
                    f"--ts-unit {options.ts_unit}, or --time-col {clock}", column=source
                )
            day = identifier(source)
            if not text and kind in ("naive", "aware"):
                day = f"CAST({day} AS DATE)"
            raw.append(
                f"trim(CAST({day} AS VARCHAR)) || ' ' || "
                f"trim(CAST({identifier(clock)} AS VARCHAR)) AS ts_raw"
            )
            source, kind, value = f"{source}+{clock}", "text", "ts_raw"
            labels["ts"] = source
        if name == "ts":
            ts = _ts_expression(file, source, value, kind, text, options)
            expr, reason = ts.expr, ts.reason
            if ts.number is not None:
                extra.append("ts_number")
                parsed.append(f"{ts.number} AS ts_number")
            if ts.local is not None:
                extra.append("ts_local")
                parsed.append(f"{ts.local} AS ts_local")
        elif name == "symbol":
            if not (text or kind in ("text", "integer")):
                raise IngestError(file, f"has type {types[source]}, not text", column=source)
            expr, reason = f"CAST({value} AS VARCHAR)", "'is not text'"
        elif name == "trade_count":
            expr, reason = _count_expression(file, source, value, kind, types[source], text)
        else:
            expr, reason = _number_expression(file, source, value, kind, types[source], text)
        parsed.append(f"{expr} AS {name}")
        reasons.append((name, reason))
    # A field whose column has a value that did not convert; ts always comes from a column,
    # so there is at least one.
    when = [(n, r, f"WHEN {n}_raw IS NOT NULL AND {n} IS NULL THEN") for n, r in reasons]
    checks = (
        f"CASE {' '.join(f'{w} {literal(n)}' for n, _, w in when)} END AS _bad_field, "
        f"CASE {' '.join(f'{w} CAST({n}_raw AS VARCHAR)' for n, _, w in when)} END AS _bad_value, "
        f"CASE {' '.join(f'{w} {r}' for _, r, w in when)} END AS _bad_reason"
    )
    sql = (
        f"SELECT {', '.join([*COLUMNS, *extra])}, {checks} FROM ("
        f"SELECT *, {', '.join(parsed)} FROM (SELECT {', '.join(raw)} FROM {relation}))"
    )
    used = {c for c in columns.values() if c is not None}
    ignored = tuple(c for c in types if c not in used)
    return Plan(sql, labels, ignored, "ts_number" in extra, options.ts_unit, "ts_local" in extra)


def match_columns(file: str, names: list[str], options: ColumnOptions) -> dict[str, str | None]:
    """Each bar field's source column (None: absent, or the constant symbol).

    Under `TIME`, where ts is a date, the column holding its time of day.
    """
    by_lower: dict[str, list[str]] = {}
    for name in names:
        by_lower.setdefault(name.lower(), []).append(name)

    def find(wanted: str) -> str | None:
        if wanted in names:
            return wanted
        found = by_lower.get(wanted.lower(), [])
        if len(found) > 1:
            raise IngestError(
                file,
                f"columns {' and '.join(map(repr, found))} differ only in "
                f"case; name the one to take exactly",
            )
        return found[0] if found else None

    columns: dict[str, str | None] = {}
    for target, source in options.mapping.items():
        found = find(source)
        if found is None:
            raise IngestError(
                file,
                f"has no column {source!r} (named for {target}); its "
                f"columns are {', '.join(map(repr, names))}",
            )
        columns[target] = found
    taken = set(columns.values())
    if "ts" not in columns:
        # A date column and a time column, and nothing else that could be ts: both are ts.
        dates = [m for n in _DATE_NAMES if (m := find(n)) and m not in taken]
        clocks = [m for n in _TIME_NAMES if (m := find(n)) and m not in taken]
        clocks = [c] if (c := columns.get(TIME)) else clocks
        others = {m for a in _ALIASES["ts"] if (m := find(a)) and m not in taken}
        if len(dates) == 1 and len(clocks) == 1 and not others - {*dates, *clocks}:
            columns["ts"], columns[TIME] = dates[0], clocks[0]
            taken |= {dates[0], clocks[0]}
    for target in COLUMNS:
        if target in columns or (target == "symbol" and options.symbol is not None):
            continue
        matches = [m for alias in _ALIASES[target] if (m := find(alias)) and m not in taken]
        matches = list(dict.fromkeys(matches))
        own = find(target)
        if own is not None and own not in taken:
            matches = [own]
        if len(matches) > 1:
            option = {"symbol": "--symbol-col", "ts": "--ts-col"}.get(
                target, f"--rename COLUMN={target}"
            )
            raise IngestError(
                file,
                f"columns {' and '.join(map(repr, matches))} could each be "
                f"{target}; name the one to take ({option})",
            )
        columns[target] = matches[0] if matches else None
        if matches:
            taken.add(matches[0])
    if options.symbol is not None:
        columns["symbol"] = None
    missing = [
        t
        for t in REQUIRED
        if columns.get(t) is None and not (t == "symbol" and options.symbol is not None)
    ]
    if missing:
        hints = {
            "symbol": "--symbol SYMBOL for a single-symbol file, or --symbol-col NAME",
            "ts": "--ts-col NAME",
        }
        how = [hints[m] for m in missing if m in hints]
        fields = [m for m in missing if m not in hints]
        if fields:
            how.append(
                f"--rename NAME={fields[0]}"
                if len(fields) == 1
                else f"--rename NAME=FIELD for {', '.join(fields)}"
            )
        raise IngestError(
            file,
            f"has no column for {', '.join(missing)} (its columns are "
            f"{', '.join(map(repr, names))}); pass {'; '.join(how)}",
        )
    return columns


def _kind(duck_type: str) -> str:
    base = duck_type.upper().split("(")[0].strip()
    if base in _INTEGER:
        return "integer"
    if base in _FLOAT or base == "DECIMAL":
        return "float"
    if base in _AWARE:
        return "aware"
    if base in _NAIVE:
        return "naive"
    if base == "VARCHAR":
        return "text"
    return "other"


@dataclass(frozen=True)
class _Ts:
    """SQL for ts: each row's integer microseconds, and what to check of them per batch."""

    expr: str  # UTC microseconds; for a local time, its wall clock as if it were UTC
    reason: str  # why a value that does not convert failed
    number: str | None = None  # an epoch as DOUBLE, whose unit each batch checks
    local: str | None = None  # true where expr is a wall clock of tz (`resolve_local`)


def _ts_expression(
    file: str, source: str, value: str, kind: str, text: bool, options: ColumnOptions
) -> _Ts:
    """SQL for ts.

    ``kind`` is the column's type (for text files, the one DuckDB sniffed from a sample);
    ``text``: the values are read as text whatever it is. Local times are left as wall clocks
    here: which instant each is, if any, is worked out per batch (`resolve_local`).
    """
    unit, tz = options.ts_unit, options.tz
    if options.ts_format is not None:
        aware = "%z" in options.ts_format or "%Z" in options.ts_format
        if not aware and tz is None:
            raise IngestError(
                file,
                f"--ts-format {options.ts_format!r} reads times without a zone; {NAIVE_HINT}",
                column=source,
            )
        stamp = f"try_strptime(CAST({value} AS VARCHAR), {literal(options.ts_format)})"
        reason = f"'does not match --ts-format {sql_text(options.ts_format)}'"
        return _Ts(f"epoch_us({stamp})", reason, local=None if aware else "TRUE")
    if unit is not None or kind in ("integer", "float"):
        if kind in ("aware", "naive"):
            raise IngestError(
                file, f"holds timestamps, not integer epochs; drop --ts-unit {unit}", column=source
            )
        return _epoch_expression(value, kind, unit or "us", text)
    if kind == "aware" and not text:
        return _Ts(f"epoch_us({value})", "'is not a timestamp'")
    if kind == "naive" and not text:
        if tz is None:
            raise IngestError(
                file, f"holds times without a zone (naive); {NAIVE_HINT}", column=source
            )
        return _Ts(f"epoch_us(CAST({value} AS TIMESTAMP))", "'is not a timestamp'", local="TRUE")
    if not (text or kind == "text"):
        raise IngestError(file, f"has type {kind}, not a timestamp", column=source)
    string = f"CAST({value} AS VARCHAR)"
    offset = f"regexp_matches({string}, {literal(_OFFSET)})"
    local = f"epoch_us(TRY_CAST({string} AS TIMESTAMP))" if tz else "NULL"
    expr = f"CASE WHEN {offset} THEN epoch_us(TRY_CAST({string} AS TIMESTAMPTZ)) ELSE {local} END"
    # Without tz, a time that parses but has no offset is the file's problem (`_check_batch`).
    naive = (
        "'is not a timestamp'"
        if tz
        else (
            f"CASE WHEN TRY_CAST({string} AS TIMESTAMP) IS NULL THEN 'is not a timestamp' "
            f"ELSE '{NO_OFFSET}' END"
        )
    )
    reason = f"CASE WHEN {offset} THEN 'is not a timestamp' ELSE {naive} END"
    return _Ts(expr, reason, local=f"NOT {offset}" if tz else None)


def resolve_local(batch: pa.RecordBatch, tz: str, ambiguous: Ambiguous) -> pa.RecordBatch:
    """A batch's local wall clocks (``ts`` where ``ts_local``) as the UTC instants they are.

    The zone database decides: a wall clock the clocks pass twice (they go back) is taken as
    ``ambiguous`` says, or is its row's problem, naming both instants; one they skip (they go
    forward) is always its row's problem, as no instant has it.
    """
    wall = pl.Series(batch.column("ts"))
    local = pl.Series(batch.column("ts_local")).fill_null(False)
    rule: Literal["earliest", "latest", "null"] = "null" if ambiguous == "invalid" else ambiguous
    distinct = wall.unique()
    if 2 * len(distinct) <= len(wall):
        # Bars of many symbols share each time: each is converted once (5 ms a batch of
        # 200,000 rows of 1,000 symbols, against 17-26 ms row by row).
        instants = wall.replace_strict(distinct, _instants(distinct, tz, rule))
    else:
        instants = _instants(wall, tz, rule)
    ts = instants.zip_with(local, wall)
    bad = local & wall.is_not_null() & instants.is_null()
    names = batch.schema.names
    if not bad.any():
        return batch.set_column(names.index("ts"), "ts", ts.to_arrow())
    # Only where no other field failed first: a row names one problem.
    bad &= pl.Series(batch.column("_bad_field")).is_null()
    walls = wall.filter(bad).cast(pl.Datetime("us"))
    earliest = walls.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    latest = walls.dt.replace_time_zone(tz, ambiguous="latest", non_existent="null")
    reasons = [
        f"does not exist in {tz}: the clocks skip it (a daylight-saving change)"
        if first is None
        else f"is ambiguous in {tz}: {_utc(first):%Y-%m-%d %H:%M:%S}Z or "
        f"{_utc(second):%H:%M:%S}Z (the clocks pass it twice); take one with --ambiguous "
        "earliest or latest"
        for first, second in zip(earliest, latest, strict=True)
    ]
    mask = bad.to_arrow()
    for name, values in (
        ("_bad_field", ["ts"] * len(reasons)),
        ("_bad_value", [w.isoformat(sep=" ") for w in walls]),
        ("_bad_reason", reasons),
    ):
        at = names.index(name)
        column = batch.column(at)
        batch = batch.set_column(
            at, name, pc.replace_with_mask(column, mask, pa.array(values, column.type))
        )
    ts = ts.scatter(bad.arg_true(), None)
    return batch.set_column(names.index("ts"), "ts", ts.to_arrow())


def _instants(wall: pl.Series, tz: str, rule: Literal["earliest", "latest", "null"]) -> pl.Series:
    """Wall clocks of ``tz`` (integer microseconds) as UTC ones, null where ``rule`` says none."""
    local = wall.cast(pl.Datetime("us"))
    return local.dt.replace_time_zone(tz, ambiguous=rule, non_existent="null").dt.epoch("us")


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def _epoch_expression(value: str, kind: str, unit: TsUnit, text: bool) -> _Ts:
    """SQL for an epoch in ``unit``: microseconds (null outside 1900..2200), reason, DOUBLE.

    An integer stays one (`_integer`): a double holds 53 bits, and nanoseconds of this century
    take 61. The DOUBLE is the value as given, for `_check_unit`.
    """
    per = PER_SECOND[unit]
    low = -(-MIN_TS * per // PER_SECOND["us"])  # the smallest value inside, in the unit
    high = (MAX_TS - 1) * per // PER_SECOND["us"]
    double = f"TRY_CAST({value} AS DOUBLE)"
    integer = _integer(value, kind, text, "HUGEINT")
    if unit == "ns":
        # Floored, as a nanosecond before 1970 belongs to the microsecond before it.
        exact = f"({integer} // 1000 - CASE WHEN {integer} % 1000 < 0 THEN 1 ELSE 0 END)"
        inexact = f"floor({double} / 1000)"
    else:
        exact = f"{integer} * {PER_SECOND['us'] // per}"
        inexact = f"round({double} * {PER_SECOND['us'] // per})"
    expr = f"CASE WHEN {double} BETWEEN {low} AND {high} THEN CAST({inexact} AS BIGINT) END"
    if integer is not None:
        expr = (
            f"CASE WHEN {integer} IS NOT NULL THEN CASE WHEN {integer} BETWEEN {low} AND {high} "
            f"THEN CAST({exact} AS BIGINT) END ELSE {expr} END"
        )
    reason = (
        f"CASE WHEN NOT isfinite({double}) THEN 'is not a finite number' "
        f"WHEN {double} IS NULL THEN 'is not a number (an epoch in {unit})' "
        f"ELSE 'as epoch {unit} is outside 1900..2200' END"
    )
    return _Ts(expr, reason, number=double)


def _integer(value: str, kind: str, text: bool, to: str) -> str | None:
    """SQL for the value as an integer of type ``to`` where it is written as one, else null.

    None where the column holds no integers (a float type). Text is tested before the cast,
    which would round ``'3.5'`` to 4.
    """
    if text or kind == "text":
        written = f"regexp_full_match({value}, {literal('[+-]?[0-9]+')})"
        return f"CASE WHEN {written} THEN TRY_CAST({value} AS {to}) END"
    if kind == "integer":
        return f"TRY_CAST({value} AS {to})"
    return None


def _number_expression(
    file: str, source: str, value: str, kind: str, duck_type: str, text: bool
) -> tuple[str, str]:
    if text or kind == "text":
        return f"TRY_CAST({value} AS DOUBLE)", "'is not a number'"
    if kind not in ("integer", "float"):
        raise IngestError(file, f"has type {duck_type}, not a number", column=source)
    return f"CAST({value} AS DOUBLE)", "'is not a number'"


def _count_expression(
    file: str, source: str, value: str, kind: str, duck_type: str, text: bool
) -> tuple[str, str]:
    if kind not in ("integer", "float") and not (text or kind == "text"):
        raise IngestError(file, f"has type {duck_type}, not an integer", column=source)
    integer = _integer(value, kind, text, "BIGINT")
    if kind == "integer" and not text:
        assert integer is not None
        return integer, "'is not an integer the store holds'"
    # 3.0 is 3; 3.5 is no count of trades. An integer's text is read as one, never through a
    # double, which would change 9007199254740993 to ...992.
    number = f"TRY_CAST({value} AS DOUBLE)"
    from_double = f"CASE WHEN {number} = trunc({number}) THEN TRY_CAST({number} AS BIGINT) END"
    if integer is None:
        return from_double, "'is not an integer'"
    return (
        f"CASE WHEN {integer} IS NOT NULL THEN {integer} ELSE {from_double} END",
        "'is not an integer'",
    )


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + sql_text(text) + "'"


def sql_text(text: str) -> str:
    return text.replace("'", "''")
