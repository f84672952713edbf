"""The one bar schema: the `Bar` type, its Arrow schema, and validation.

Timestamps are UTC instants held as integer microseconds since the Unix epoch (`Bar.ts`);
`Bar.time` gives the aware `datetime`. In Arrow, DuckDB, Polars and Parquet the column is
``timestamp[us, tz=UTC]``. This module imports nothing of the package but its errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse._bar import Bar as Bar
from warehouse._bar import bars_from_columns, bars_to_columns
from warehouse.errors import InvalidBarError, SchemaMismatchError

TS_TYPE = pa.timestamp("us", tz="UTC")

BAR_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        pa.field("vwap", pa.float64()),
        pa.field("trade_count", pa.int64()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(BAR_SCHEMA.names)
#: Where a stored bar came from: ``live`` (appended or extended) or ``filled`` (inserted by gap
#: filling, `Warehouse.fill`). Stored as one byte, shown in SQL as text.
ORIGINS: tuple[str, ...] = ("live", "filled")
#: A stored or archived bar: `BAR_SCHEMA` and its origin (what SQL over ``bars`` and the
#: archive's day files hold).
STORED_SCHEMA = BAR_SCHEMA.append(pa.field("origin", pa.string(), nullable=False))
#: The fields a batch may hold: a bar's, and the origin that SQL over ``bars`` and the archive
#: give, which is read past (what `extend` adds is live, what `fill` adds is filled), so bars
#: read back go in again as they are.
_READ_PAST = frozenset(STORED_SCHEMA.names)
REQUIRED: tuple[str, ...] = COLUMNS[:7]
OPTIONAL: tuple[str, ...] = COLUMNS[7:]
_NULLABLE_SCHEMA = pa.schema([pa.field(f.name, f.type) for f in BAR_SCHEMA])
# One pattern for the scalar and the vectorised check: blank, or holding a control character
# (C0, DEL or C1: U+0080..U+009F, such as the terminal escape U+009B).
_BAD_SYMBOL = r"^[ \t\n\r\f\v]*$|[\x00-\x1f\x7f-\x9f]"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: One minute in microseconds (a one-minute bar's span).
MINUTE = 60_000_000
_ONE_US = timedelta(microseconds=1)
#: Accepted timestamps: 1900-01-01 (inclusive) to 2200-01-01 (exclusive), UTC.
MIN_TS = -2_208_988_800_000_000
MAX_TS = 7_258_118_400_000_000
MAX_SYMBOL_LENGTH = 64
#: The largest trade_count the store holds (BIGINT).
MAX_COUNT = 2**63 - 1
_INF = math.inf

#: The units of an integer epoch, and how many of each make a second.
TsUnit = Literal["s", "ms", "us", "ns"]
PER_SECOND: dict[TsUnit, int] = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_UNIT_NAMES: dict[TsUnit, str] = {"s": "seconds", "ms": "milliseconds", "us": "microseconds",
                                  "ns": "nanoseconds"}
#: Integers that plainly are an epoch in one unit: in that unit, 1973-03-03T09:46:40Z (10**8
#: seconds) to 2200-01-01. Each unit's band is a thousand times the one before, with a gap
#: between them, so one band at most holds a column's smallest and largest value.
PLAIN_FROM = 10**8
PLAIN_UNTIL = MAX_TS // 10**6
_PLAIN_MICROS = (PLAIN_FROM * 10**6, PLAIN_UNTIL * 10**6)  # the usual integer ts: no other unit

#: What `partition` reports of each rejected row: its index in the batch, the field at fault,
#: the value (as text) and the reason, then the row's bar columns as far as they could be read.
REJECTS_SCHEMA = pa.schema(
    [pa.field("row", pa.int64()), pa.field("field", pa.string()),
     pa.field("value", pa.string()), pa.field("reason", pa.string()), *_NULLABLE_SCHEMA]
)


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of ``micros`` microseconds since the epoch (`to_micros` back)."""
    return EPOCH + timedelta(microseconds=micros)


def to_micros(value: object, symbol: object = None) -> int:
    """Convert a timestamp to UTC microseconds since the epoch.

    Parameters
    ----------
    value
        ``int`` (already microseconds), a timezone-aware `datetime`, or an ISO 8601 string
        with an offset (``2025-11-21T14:30:00Z``). An integer that plainly is epoch seconds,
        milliseconds or nanoseconds (`plain_unit`) is refused, never taken as 1970's instants.
    symbol
        Only used to name the bar in the error message.

    Returns
    -------
    int
        Microseconds since 1970-01-01 UTC.

    Raises
    ------
    InvalidBarError
        For naive or unparseable timestamps, integers in another unit, or ones outside
        1900..2200.

    Examples
    --------
    >>> to_micros("2025-11-21T14:30:00Z")
    1763735400000000
    """
    if isinstance(value, bool):
        raise InvalidBarError(symbol, value, "ts", value, "is a bool, not a timestamp")
    if isinstance(value, int):
        micros = int(value)  # an int subclass (IntEnum, numpy-like) becomes a plain int
        unit = None if _PLAIN_MICROS[0] <= micros < _PLAIN_MICROS[1] else plain_unit(micros, micros)
        if unit is not None:
            raise InvalidBarError(
                symbol, micros, "ts", value,
                f"looks {_looks_like(micros, unit)}; pass it in microseconds "
                f"({micros * PER_SECOND['us'] // PER_SECOND[unit]}) or as an aware datetime",
            )
    elif isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidBarError(
                symbol, value, "ts", value, "is naive; pass an aware datetime (UTC instant)"
            )
        micros = (value - EPOCH) // _ONE_US
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            reason = "is not an ISO 8601 timestamp"
            raise InvalidBarError(symbol, value, "ts", value, reason) from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise InvalidBarError(symbol, value, "ts", value,
                                  "is naive (no UTC offset); add one, such as Z or -05:00")
        return to_micros(parsed, symbol)
    elif isinstance(value, np.datetime64):
        raise InvalidBarError(
            symbol, value, "ts", value, "is a numpy datetime64, which is naive; pass int micros"
        )
    else:
        raise InvalidBarError(
            symbol, value, "ts", value, f"has type {type(value).__name__}, not a timestamp"
        )
    if not MIN_TS <= micros < MAX_TS:
        raise InvalidBarError(symbol, micros, "ts", value, "is outside 1900-01-01..2200-01-01")
    return micros


def plain_unit(low: int, high: int) -> TsUnit | None:
    """The epoch unit that integers from ``low`` to ``high`` plainly are, or None.

    Plainly: in that unit, both fall between 1973-03-03 and 2200-01-01. Seconds, milliseconds,
    microseconds and nanoseconds of those years do not overlap, so integers of one market
    data feed are told apart without doubt; small or mixed values are in no unit's band.

    Examples
    --------
    >>> plain_unit(1_732_199_400, 1_732_223_000)
    's'
    >>> plain_unit(1_732_199_400_000_000, 1_732_223_000_000_000)
    'us'
    >>> plain_unit(0, 1_732_199_400) is None
    True
    """
    for unit, per_second in PER_SECOND.items():
        if PLAIN_FROM * per_second <= low and high < PLAIN_UNTIL * per_second:
            return unit
    return None


def describe_epoch(value: int, unit: TsUnit) -> str:
    """``value`` read as an epoch in ``unit``, for messages: ``"2024-11-21 14:30:00Z"``.

    Examples
    --------
    >>> describe_epoch(1_732_199_400, "s"), describe_epoch(1_732_199_400, "us")
    ('2024-11-21 14:30:00Z', '1970-01-01 00:28:52Z')
    """
    micros = value * PER_SECOND["us"] // PER_SECOND[unit]
    if not MIN_TS <= micros < MAX_TS:
        return "outside 1900..2200"
    return f"{EPOCH + timedelta(microseconds=micros):%Y-%m-%d %H:%M:%S}Z"


def _looks_like(value: int, unit: TsUnit) -> str:
    """What an integer ts that plainly is an epoch in ``unit`` looks like, for messages.

    One wording for a column (`conform`) and a single bar (`to_micros`).
    """
    name = _UNIT_NAMES[unit]
    return (f"like epoch {name} ({value} is {describe_epoch(value, unit)} in {name}, "
            f"{describe_epoch(value, 'us')} in microseconds, the unit of an integer ts)")


def check_symbol(symbol: object, ts: object = None) -> str:
    """Return ``symbol`` if it is a usable symbol, else raise `InvalidBarError` (naming ``ts``)."""
    if not isinstance(symbol, str):
        raise InvalidBarError(symbol, ts, "symbol", symbol, "is not a string")
    if len(symbol) > MAX_SYMBOL_LENGTH:
        raise InvalidBarError(
            symbol[:20] + "...", ts, "symbol", len(symbol),
            f"is longer than {MAX_SYMBOL_LENGTH} characters",
        )
    if re.search(_BAD_SYMBOL, symbol):
        raise InvalidBarError(symbol, ts, "symbol", symbol, "is blank or has control characters")
    if not symbol.isascii():
        # A lone surrogate cannot become UTF-8: accepted, it would fail every later Arrow
        # conversion (SQL snapshot, flush) and take the valid bars on the log down with it.
        try:
            symbol.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidBarError(
                symbol, ts, "symbol", symbol, "is not valid Unicode (a lone surrogate)"
            ) from None
    return symbol


def diagnose(
    symbol: object,
    ts: object,
    open: object,
    high: object,
    low: object,
    close: object,
    volume: object,
    vwap: object = None,
    trade_count: object = None,
) -> InvalidBarError | None:
    """Return the first problem of a bar as an `InvalidBarError`, or None if it is valid.

    The slow, explaining half of validation: `AppendBuffer.append` runs a fast combined check
    and calls this only when it fails; batches call it for their first bad row.
    """
    try:
        # ts first, so that a bad symbol's error can name the bar's ts (invariant 4).
        micros = to_micros(ts, symbol)
        check_symbol(symbol, micros)
    except InvalidBarError as exc:
        return exc
    values: dict[str, float] = {}
    for field, raw in (("open", open), ("high", high), ("low", low), ("close", close),
                       ("volume", volume), ("vwap", vwap)):
        if raw is None and field == "vwap":
            continue
        if raw is None:
            return InvalidBarError(symbol, micros, field, raw, "is missing")
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return InvalidBarError(symbol, micros, field, raw, f"is {raw!r}, not a number")
        except OverflowError:
            return InvalidBarError(symbol, micros, field, raw, "is too large for a float")
        if not math.isfinite(value):
            kind = "volumes" if field == "volume" else "prices"
            return InvalidBarError(symbol, micros, field, raw, f"is {value}; {kind} must be finite")
        values[field] = value
    high_, low_ = values["high"], values["low"]
    if high_ < low_:
        return InvalidBarError(
            symbol, micros, "high", high_, f"{high_} < low {low_}; check the feed's field order"
        )
    for field in ("open", "close"):
        if not low_ <= values[field] <= high_:
            return InvalidBarError(
                symbol, micros, field, values[field],
                f"{values[field]} is outside [low {low_}, high {high_}]",
            )
    if values["volume"] < 0:
        return InvalidBarError(symbol, micros, "volume", values["volume"], "is negative")
    if "vwap" in values and values["vwap"] < 0:
        return InvalidBarError(symbol, micros, "vwap", values["vwap"], "is negative")
    if trade_count is not None:
        if isinstance(trade_count, bool) or not isinstance(trade_count, int | np.integer):
            return InvalidBarError(symbol, micros, "trade_count", trade_count, "is not an integer")
        if trade_count < 0:
            return InvalidBarError(symbol, micros, "trade_count", trade_count, "is negative")
        if trade_count > MAX_COUNT:
            return InvalidBarError(symbol, micros, "trade_count", trade_count,
                                   "is larger than 2**63 - 1, the most the store holds")
    return None


def make_bar(
    symbol: object,
    ts: object,
    open: object,
    high: object,
    low: object,
    close: object,
    volume: object,
    vwap: object = None,
    trade_count: object = None,
) -> Bar:
    """Validate one bar and return it normalised (floats, integer-microsecond ts).

    Raises
    ------
    InvalidBarError
        Naming the symbol, ts and field at fault.
    """
    problem = diagnose(symbol, ts, open, high, low, close, volume, vwap, trade_count)
    if problem is not None:
        raise problem
    return Bar(
        symbol,  # type: ignore[arg-type]
        to_micros(ts, symbol),
        float(open), float(high), float(low), float(close), float(volume),  # type: ignore[arg-type]
        None if vwap is None else float(vwap),  # type: ignore[arg-type]
        None if trade_count is None else int(trade_count),  # type: ignore[call-overload]
    )


# -- batches -------------------------------------------------------------------------------------

#: Rows refused while a batch is read, by index: a ts string that does not parse, or (in
#: `partition`) a bar given as a Python row that `make_bar` refuses.
_Problems = dict[int, InvalidBarError]


def rows_to_batch(rows: list[Bar]) -> pa.RecordBatch:
    """Convert validated bars to one record batch of `BAR_SCHEMA` (one C loop over the bars)."""
    return pa.RecordBatch.from_arrays(bars_to_columns(rows), schema=BAR_SCHEMA)


def bars_from_table(table: pa.Table, symbols: str | list[str] | None = None) -> list[Bar]:
    """Bars from a `BAR_SCHEMA` table (ts as integer microseconds).

    ``symbols``: the string objects the bars refer to, one per row (or one for every row),
    equal to the table's symbols; by default a string is made per row. Bars held for long (a
    window's) share their symbol's string instead, which saves ~56 bytes a bar.
    """
    if table.num_rows == 0:
        return []
    table = table.combine_chunks()

    def floats(name: str) -> np.ndarray:
        column = table.column(name)
        values: np.ndarray = (column.fill_null(0.0) if column.null_count else column).to_numpy()
        return values

    values = np.ascontiguousarray(
        np.stack([floats(name) for name in ("open", "high", "low", "close", "volume")])
    )
    vwap, count = table.column("vwap"), table.column("trade_count")
    names: list[str] = (
        table.column("symbol").to_pylist() if symbols is None
        else [symbols] * table.num_rows if isinstance(symbols, str) else symbols
    )
    return bars_from_columns(
        names,
        np.ascontiguousarray(table.column("ts").cast(pa.int64()).to_numpy()),
        values,
        np.ascontiguousarray(floats("vwap")),
        np.ascontiguousarray(count.fill_null(0).to_numpy()),
        np.ascontiguousarray(vwap.is_valid().to_numpy(zero_copy_only=False)),
        np.ascontiguousarray(count.is_valid().to_numpy(zero_copy_only=False)),
    )


def empty_table() -> pa.Table:
    """An empty table of `BAR_SCHEMA`."""
    return BAR_SCHEMA.empty_table()


def frame_to_arrow(frame: object) -> pa.Table:
    """A pyarrow Table or RecordBatch, or a polars or pandas DataFrame, as a pyarrow Table.

    Raises
    ------
    SchemaMismatchError
        ``frame`` is none of those, or pandas cannot convert it.
    """
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    kind = _frame_kind(frame)
    if kind == "polars":
        table: pa.Table = frame.to_arrow()  # type: ignore[attr-defined]
        return table
    if kind == "pandas":
        return _pandas_to_arrow(frame)
    raise SchemaMismatchError(
        f"cannot read bars from a {type(frame).__name__}; pass a pyarrow Table or RecordBatch, "
        "a polars or pandas DataFrame, or an iterable of Bar tuples or dicts"
    )


def _frame_kind(frame: object) -> str | None:
    """"polars" or "pandas" for their DataFrames, told apart without importing either."""
    module = type(frame).__module__
    if module.startswith("polars") and hasattr(frame, "to_arrow") and hasattr(frame, "columns"):
        return "polars"
    if module.startswith("pandas") and hasattr(frame, "columns"):
        return "pandas"
    return None


def _to_arrow(batch: object, problems: _Problems | None = None) -> pa.Table:
    if isinstance(batch, pa.Table | pa.RecordBatch) or _frame_kind(batch) is not None:
        return frame_to_arrow(batch)
    if isinstance(batch, Iterable) and not isinstance(batch, str | bytes | Mapping):
        return _rows_to_table(batch, problems)
    return frame_to_arrow(batch)  # raises, naming what it takes


def _pandas_to_arrow(frame: Any) -> pa.Table:
    """A pandas DataFrame through Arrow (pandas itself is never imported here).

    A named index (``ts`` set as the index, say) is a column like the others; a positional one
    (the default range, or what filtering left of it) is not data and is dropped.
    """
    try:
        table = pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise SchemaMismatchError(f"the pandas DataFrame cannot be read as Arrow: {exc}") from exc
    unnamed = [name for name in table.column_names if re.fullmatch(r"__index_level_\d+__", name)]
    return table.drop_columns(unnamed).replace_schema_metadata(None)


def _rows_to_table(rows: Iterable[Any], problems: _Problems | None = None) -> pa.Table:
    """Bars from Python rows; with ``problems``, a bad row is a row of nulls and its problem."""
    bars: list[Bar] = []
    places: list[int | None] = []  # each row's index in bars (None: refused)
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            extra = set(row) - _READ_PAST
            if extra:
                raise SchemaMismatchError(f"bar has unknown fields {sorted(extra)}; "
                                          f"the bar fields are {list(COLUMNS)}")
            missing = [c for c in REQUIRED if c not in row]
            if missing:
                raise SchemaMismatchError(f"bar {row.get('symbol')!r} lacks fields {missing}")
            fields = tuple(row.get(c) for c in COLUMNS)
        elif isinstance(row, Bar) or (isinstance(row, tuple) and 7 <= len(row) <= 9):
            fields = tuple(row)
        else:
            raise SchemaMismatchError(
                f"cannot read a bar from {row!r}; use a Bar, a 7-9 tuple or a dict"
            )
        try:
            bar = make_bar(*fields)
        except InvalidBarError as exc:
            if problems is None:
                raise
            problems[i] = exc
            places.append(None)
            continue
        places.append(len(bars))
        bars.append(bar)
    table = pa.Table.from_batches([rows_to_batch(bars)]) if bars else empty_table()
    if problems:
        # A null index takes a row of nulls: the refused rows keep their places.
        table = table.cast(_NULLABLE_SCHEMA).take(pa.array(places, pa.int64()))
    return table


def _is_text(source: pa.DataType) -> bool:
    return bool(pa.types.is_string(source) or pa.types.is_large_string(source)
                or pa.types.is_string_view(source))


def _cast_column(table: pa.Table, name: str, problems: _Problems) -> pa.ChunkedArray:
    column = table.column(name)
    target = BAR_SCHEMA.field(name).type
    source = column.type
    if pa.types.is_dictionary(source):
        column = column.cast(source.value_type)
        source = source.value_type
    if name == "symbol":
        ok = _is_text(source)
    elif name == "ts":
        return _cast_ts(table, column, problems)
    elif name == "trade_count":
        # Floats too, when whole (pandas keeps an integer column with gaps as floats); the
        # cast below refuses a fraction.
        ok = pa.types.is_integer(source) or pa.types.is_floating(source) \
            or pa.types.is_null(source)
    else:
        ok = pa.types.is_integer(source) or pa.types.is_floating(source) \
            or pa.types.is_decimal(source) or pa.types.is_null(source)
    if not ok:
        raise SchemaMismatchError(f"column {name!r} has type {source}, expected {target}")
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatchError(f"column {name!r} cannot be cast to {target}: {exc}") from exc


def _cast_ts(table: pa.Table, column: pa.ChunkedArray, problems: _Problems) -> pa.ChunkedArray:
    """The ts column as `TS_TYPE`: aware timestamps, ISO strings with an offset, or integers.

    Integers are microseconds; a column of them that plainly is another unit (`plain_unit`) is
    refused, never stored as instants of January 1970. A string that does not parse (or has
    no offset) becomes null, its row's problem recorded in ``problems``.
    """
    source = column.type
    if pa.types.is_timestamp(source):
        if source.tz is None:
            raise SchemaMismatchError(
                "column 'ts' is a naive timestamp; localize it first (polars: "
                ".dt.replace_time_zone('UTC'), pandas: .dt.tz_localize('UTC')), or ingest it "
                "with its zone: warehouse.ingest.ingest(wh, batch, tz='America/New_York')"
            )
    elif pa.types.is_integer(source):
        _check_integer_unit(column)
        column = column.cast(pa.int64()).cast(TS_TYPE)
    elif _is_text(source):
        return _parse_ts(table, column, problems)
    else:
        raise SchemaMismatchError(f"column 'ts' has type {source}, expected {TS_TYPE}")
    try:
        return column.cast(TS_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatchError(f"column 'ts' cannot be cast to {TS_TYPE}: {exc}") from exc


def _check_integer_unit(column: pa.ChunkedArray) -> None:
    """Refuse integers that plainly are seconds, milliseconds or nanoseconds (#10)."""
    bounds = pc.min_max(column)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None:
        return
    unit = plain_unit(low, high)
    if unit is None or unit == "us":
        return
    raise SchemaMismatchError(
        f"column 'ts' holds integers that look {_looks_like(low, unit)}; convert the column to "
        f"timestamps, or ingest it with its unit: warehouse.ingest.ingest(wh, batch, "
        f"ts_unit={unit!r})"
    )


def _parse_ts(table: pa.Table, column: pa.ChunkedArray, problems: _Problems) -> pa.ChunkedArray:
    """ISO 8601 strings with an offset; one that fails becomes null and a problem of its row."""
    try:
        return column.cast(TS_TYPE)  # vectorised: every string has an offset and parses
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Some string does not parse: each one alone, to name the rows (the slow path of bad input).
    symbols = table.column("symbol").to_pylist() if "symbol" in table.column_names else None
    micros: list[int | None] = []
    for row, text in enumerate(column.to_pylist()):
        if text is None:
            micros.append(None)
            continue
        try:
            micros.append(to_micros(text, None if symbols is None else symbols[row]))
        except InvalidBarError as exc:
            problems[row] = exc
            micros.append(None)
    return pa.chunked_array([pa.array(micros, pa.int64())]).cast(TS_TYPE)


def _conformed(batch: object, *, lenient: bool = False) -> tuple[pa.Table, _Problems]:
    """A batch in the bar columns (nullable, not validated) and its rows' problems so far.

    Bars given as Python rows are checked one by one as they are read: without ``lenient``
    the first bad one raises, with it each becomes a row of nulls and a problem.
    """
    problems: _Problems = {}
    table = _to_arrow(batch, problems if lenient else None)
    names = table.column_names
    if len(set(names)) != len(names):
        raise SchemaMismatchError(f"batch has duplicate column names: {names}")
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise SchemaMismatchError(f"batch lacks columns {missing}; it has {names}")
    extra = [c for c in names if c not in _READ_PAST]
    if extra:
        raise SchemaMismatchError(
            f"batch has unknown columns {extra}; bar columns are {list(COLUMNS)}"
        )
    arrays = [
        _cast_column(table, c, problems) if c in names
        else pa.nulls(table.num_rows, BAR_SCHEMA.field(c).type)
        for c in COLUMNS
    ]
    return pa.Table.from_arrays(arrays, schema=_NULLABLE_SCHEMA), problems


def conform(batch: object) -> pa.Table:
    """Return a batch as a validated `BAR_SCHEMA` table, or raise.

    Accepts a pyarrow Table or RecordBatch, a polars or pandas DataFrame, or an iterable of bars
    (`Bar`, 7 to 9 tuples, or dicts). ``ts`` may be an aware timestamp column, ISO 8601 strings
    with an offset, or integer microseconds (integers that plainly are seconds, milliseconds or
    nanoseconds are refused). Validation is vectorised; the first bad row is explained by
    `diagnose`, so a batch gets the same message as a single `append` would.

    Raises
    ------
    SchemaMismatchError
        Missing, unknown or mistyped columns.
    InvalidBarError
        The first row that fails validation.
    """
    table, problems = _conformed(batch)
    if table.num_rows:
        ok = _valid_mask(table)
        if not pc.all(ok).as_py():
            raise _explain(table, [int(pc.index(ok, False).as_py())], problems)[0]
    return table.cast(BAR_SCHEMA)


def partition(batch: object) -> tuple[pa.Table, pa.Table]:
    """Split a batch into its valid bars and its rejected rows, each rejection explained.

    Parameters
    ----------
    batch
        What `conform` takes.

    Returns
    -------
    (valid, rejected)
        ``valid``: the valid rows as a `BAR_SCHEMA` table, in batch order. ``rejected``: one
        row of `REJECTS_SCHEMA` per invalid row: its index in the batch (``row``), the
        ``field`` at fault, its ``value`` and the ``reason`` (what `conform` would raise for
        it), then its bar columns.

    Raises
    ------
    SchemaMismatchError
        Missing, unknown or mistyped columns: a batch-wide problem, no row of it is taken.

    Examples
    --------
    >>> valid, rejected = partition([("ES", 0, 10.0, 11.0, 9.0, 10.5, 5.0),
    ...                              ("ES", 60_000_000, 10.0, 9.0, 11.0, 10.5, 5.0)])
    >>> valid.num_rows, rejected.column("reason")[0].as_py()
    (1, "9.0 < low 11.0; check the feed's field order")
    """
    table, problems = _conformed(batch, lenient=True)
    rejected = REJECTS_SCHEMA.empty_table()
    if not table.num_rows:
        return table.cast(BAR_SCHEMA), rejected
    ok = _valid_mask(table)
    if pc.all(ok).as_py():
        return table.cast(BAR_SCHEMA), rejected
    rows = np.flatnonzero(~ok.to_numpy()).tolist()
    rejected = rejects_table(rows, _explain(table, rows, problems),
                             table.take(pa.array(rows, pa.int64())))
    return table.filter(ok).cast(BAR_SCHEMA), rejected


def rejects_table(
    rows: Iterable[int], errors: list[InvalidBarError], bars: pa.Table
) -> pa.Table:
    """A `REJECTS_SCHEMA` table: each row's index, the ``errors`` that refused them, ``bars``."""
    return pa.Table.from_arrays(
        [pa.array(list(rows), pa.int64()),
         pa.array([e.field for e in errors], pa.string()),
         pa.array([None if e.value is None else str(e.value) for e in errors], pa.string()),
         pa.array([e.reason for e in errors], pa.string()),
         *bars.cast(_NULLABLE_SCHEMA).columns],
        schema=REJECTS_SCHEMA,
    )


def _valid_mask(table: pa.Table) -> pa.ChunkedArray:
    """True for each valid row of a table of the bar columns (no nulls: a null is invalid)."""
    symbol, ts = table.column("symbol"), table.column("ts")
    o, h, lo, c, v = (table.column(n) for n in ("open", "high", "low", "close", "volume"))
    vwap, count = table.column("vwap"), table.column("trade_count")
    ts_int = ts.cast(pa.int64())
    lengths = pc.utf8_length(symbol)
    ok = pc.and_(
        pc.and_(pc.is_finite(h), pc.is_finite(lo)),
        pc.and_(pc.less_equal(lo, h), pc.and_(pc.less_equal(lo, o), pc.less_equal(o, h))),
    )
    ok = pc.and_(ok, pc.and_(pc.less_equal(lo, c), pc.less_equal(c, h)))
    ok = pc.and_(ok, pc.and_(pc.greater_equal(v, 0.0), pc.is_finite(v)))
    ok = pc.and_(ok, pc.and_(pc.greater_equal(ts_int, MIN_TS), pc.less(ts_int, MAX_TS)))
    ok = pc.and_(ok, pc.and_(pc.greater(lengths, 0), pc.less_equal(lengths, MAX_SYMBOL_LENGTH)))
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(symbol, _BAD_SYMBOL)))
    # or_kleene: plain or_ gives null for (true OR null), which would reject every null vwap.
    ok = pc.and_(ok, pc.or_kleene(pc.is_null(vwap), pc.and_(pc.is_finite(vwap),
                                                             pc.greater_equal(vwap, 0.0))))
    ok = pc.and_(ok, pc.or_kleene(pc.is_null(count), pc.greater_equal(count, 0)))
    mask: pa.ChunkedArray = pc.fill_null(ok, False)  # a null in a required column is bad
    return mask


def _explain(table: pa.Table, rows: list[int], problems: _Problems) -> list[InvalidBarError]:
    """The error of each of ``rows`` (invalid rows of ``table``), as `diagnose` words it."""
    picked = table.take(pa.array(rows, pa.int64()))
    # ts as an int: as a datetime, a value past year 9999 (ns passed as us) would overflow.
    columns = {
        name: (picked.column(name).cast(pa.int64()) if name == "ts"
               else picked.column(name)).to_pylist()
        for name in COLUMNS
    }
    errors = []
    for i, row in enumerate(rows):
        if row in problems:
            errors.append(problems[row])
            continue
        values = {name: columns[name][i] for name in COLUMNS}
        null = next((name for name in REQUIRED if values[name] is None), None)
        if null is not None:
            errors.append(InvalidBarError(values["symbol"], values["ts"], null, None, "is null"))
            continue
        problem = diagnose(*(values[name] for name in COLUMNS))
        if problem is None:  # pragma: no cover - the vectorised and scalar checks must agree
            problem = InvalidBarError(values["symbol"], values["ts"], "bar", values, "is invalid")
        errors.append(problem)
    return errors
