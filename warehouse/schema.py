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
from typing import Any

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
REQUIRED: tuple[str, ...] = COLUMNS[:7]
OPTIONAL: tuple[str, ...] = COLUMNS[7:]
_NULLABLE_SCHEMA = pa.schema([pa.field(f.name, f.type) for f in BAR_SCHEMA])
# One pattern for the scalar and the vectorised check: blank, or holding a control character
# (C0, DEL or C1: U+0080..U+009F, such as the terminal escape U+009B).
_BAD_SYMBOL = r"^[ \t\n\r\f\v]*$|[\x00-\x1f\x7f-\x9f]"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
#: Accepted timestamps: 1900-01-01 (inclusive) to 2200-01-01 (exclusive), UTC.
MIN_TS = -2_208_988_800_000_000
MAX_TS = 7_258_118_400_000_000
MAX_SYMBOL_LENGTH = 64
#: The largest trade_count the store holds (BIGINT).
MAX_COUNT = 2**63 - 1
_INF = math.inf


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of ``micros`` microseconds since the epoch (`to_micros` back)."""
    return EPOCH + timedelta(microseconds=micros)


def to_micros(value: object, symbol: object = None) -> int:
    """Convert a timestamp to UTC microseconds since the epoch.

    Parameters
    ----------
    value
        ``int`` (already microseconds), a timezone-aware `datetime`, or an ISO 8601 string
        with an offset (``2025-11-21T14:30:00Z``).
    symbol
        Only used to name the bar in the error message.

    Returns
    -------
    int
        Microseconds since 1970-01-01 UTC.

    Raises
    ------
    InvalidBarError
        For naive or unparseable timestamps, or ones outside 1900..2200.

    Examples
    --------
    >>> to_micros("2025-11-21T14:30:00Z")
    1763735400000000
    """
    if isinstance(value, bool):
        raise InvalidBarError(symbol, value, "ts", value, "is a bool, not a timestamp")
    if isinstance(value, int):
        micros = int(value)  # an int subclass (IntEnum, numpy-like) becomes a plain int
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


def rows_to_batch(rows: list[Bar]) -> pa.RecordBatch:
    """Convert validated bars to one record batch of `BAR_SCHEMA` (one C loop over the bars)."""
    return pa.RecordBatch.from_arrays(bars_to_columns(rows), schema=BAR_SCHEMA)


def bars_from_table(table: pa.Table) -> list[Bar]:
    """Bars from a `BAR_SCHEMA` table (ts as integer microseconds)."""
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
    return bars_from_columns(
        table.column("symbol").to_pylist(),
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


def _to_arrow(batch: object) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    to_arrow = getattr(batch, "to_arrow", None)
    if to_arrow is not None and type(batch).__module__.startswith("polars"):
        return to_arrow()
    if isinstance(batch, Iterable) and not isinstance(batch, str | bytes | Mapping):
        return _rows_to_table(batch)
    raise SchemaMismatchError(
        f"cannot read bars from a {type(batch).__name__}; pass a pyarrow Table or RecordBatch, "
        "a polars DataFrame, or an iterable of Bar tuples or dicts"
    )


def _rows_to_table(rows: Iterable[Any]) -> pa.Table:
    bars = []
    for row in rows:
        if isinstance(row, Mapping):
            extra = set(row) - set(COLUMNS)
            if extra:
                raise SchemaMismatchError(f"bar has unknown fields {sorted(extra)}; "
                                          f"the bar fields are {list(COLUMNS)}")
            missing = [c for c in REQUIRED if c not in row]
            if missing:
                raise SchemaMismatchError(f"bar {row.get('symbol')!r} lacks fields {missing}")
            bars.append(make_bar(*(row.get(c) for c in COLUMNS)))
        elif isinstance(row, Bar) or (isinstance(row, tuple) and 7 <= len(row) <= 9):
            bars.append(make_bar(*row))
        else:
            raise SchemaMismatchError(
                f"cannot read a bar from {row!r}; use a Bar, a 7-9 tuple or a dict"
            )
    if not bars:
        return empty_table()
    return pa.Table.from_batches([rows_to_batch(bars)])


def _cast_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    column = table.column(name)
    target = BAR_SCHEMA.field(name).type
    source = column.type
    if pa.types.is_dictionary(source):
        column = column.cast(source.value_type)
        source = source.value_type
    if name == "symbol":
        ok = pa.types.is_string(source) or pa.types.is_large_string(source)
    elif name == "ts":
        if pa.types.is_timestamp(source) and source.tz is None:
            raise SchemaMismatchError(
                "column 'ts' is a naive timestamp; localize it to UTC first "
                "(polars: .dt.replace_time_zone('UTC'))"
            )
        ok = pa.types.is_timestamp(source) or pa.types.is_integer(source)
        if pa.types.is_integer(source):
            column = column.cast(pa.int64()).cast(TS_TYPE)
    elif name == "trade_count":
        ok = pa.types.is_integer(source) or pa.types.is_null(source)
    else:
        ok = pa.types.is_integer(source) or pa.types.is_floating(source) \
            or pa.types.is_decimal(source) or pa.types.is_null(source)
    if not ok:
        raise SchemaMismatchError(f"column {name!r} has type {source}, expected {target}")
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatchError(f"column {name!r} cannot be cast to {target}: {exc}") from exc


def conform(batch: object) -> pa.Table:
    """Return a batch as a validated `BAR_SCHEMA` table, or raise.

    Accepts a pyarrow Table or RecordBatch, a polars DataFrame, or an iterable of bars
    (`Bar`, 7 to 9 tuples, or dicts). Validation is vectorised; the first bad row is explained by
    `diagnose`, so a batch gets the same message as a single `append` would.

    Raises
    ------
    SchemaMismatchError
        Missing, unknown or mistyped columns.
    InvalidBarError
        The first row that fails validation.
    """
    table = _to_arrow(batch)
    names = table.column_names
    if len(set(names)) != len(names):
        raise SchemaMismatchError(f"batch has duplicate column names: {names}")
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise SchemaMismatchError(f"batch lacks columns {missing}; it has {names}")
    extra = [c for c in names if c not in COLUMNS]
    if extra:
        raise SchemaMismatchError(
            f"batch has unknown columns {extra}; bar columns are {list(COLUMNS)}"
        )
    arrays = [
        _cast_column(table, c) if c in names else pa.nulls(table.num_rows, BAR_SCHEMA.field(c).type)
        for c in COLUMNS
    ]
    table = pa.Table.from_arrays(arrays, schema=_NULLABLE_SCHEMA)
    if table.num_rows:
        _validate(table)
    return table.cast(BAR_SCHEMA)


def _validate(table: pa.Table) -> None:
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
    ok = pc.fill_null(ok, False)  # a null in a required column is bad
    if pc.all(ok).as_py():
        return
    row = int(pc.index(ok, False).as_py())
    # ts as an int: as a datetime, a value past year 9999 (ns passed as us) would overflow.
    values = {name: table.column(name)[row].as_py() for name in COLUMNS if name != "ts"}
    values["ts"] = ts_int[row].as_py()
    for name in REQUIRED:
        if values[name] is None:
            raise InvalidBarError(values["symbol"], values["ts"], name, None, "is null")
    problem = diagnose(*(values[name] for name in COLUMNS))
    if problem is None:  # pragma: no cover - the vectorised and scalar checks must agree
        problem = InvalidBarError(values["symbol"], values["ts"], "bar", values, "is invalid")
    raise problem
