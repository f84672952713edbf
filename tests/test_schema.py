"""Validation rules of `warehouse.schema`: timestamps, symbols, prices, batches, columns."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from warehouse import BAR_SCHEMA, Bar, InvalidBarError, SchemaMismatchError, Warehouse
from warehouse.schema import (
    MAX_SYMBOL_LENGTH,
    MAX_TS,
    MIN_TS,
    REJECTS_SCHEMA,
    check_symbol,
    conform,
    diagnose,
    make_bar,
    partition,
    plain_unit,
    to_micros,
)

TS_TEXT = "2025-11-21T14:31:00Z"
TS = 1_763_735_460_000_000
#: How the error message renders TS.
TS_SHOWN = r"2025-11-21 14:31:00\.000000Z"
VALID: dict[str, Any] = {
    "symbol": "ES", "ts": TS, "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5,
    "volume": 10.0, "vwap": None, "trade_count": None,
}
NAN, INF = math.nan, math.inf

# (overrides of VALID, field named in the error, regex of the reason)
NUMERIC_CASES = {
    "nan_open": ({"open": NAN}, "open", r"is nan; prices must be finite"),
    "nan_high": ({"high": NAN}, "high", r"is nan"),
    "nan_low": ({"low": NAN}, "low", r"is nan"),
    "nan_close": ({"close": NAN}, "close", r"is nan"),
    "inf_high": ({"high": INF}, "high", r"is inf"),
    "neg_inf_low": ({"low": -INF}, "low", r"is -inf"),
    "inf_close": ({"close": INF}, "close", r"is inf"),
    "high_below_low": ({"high": 98.0, "open": 98.5, "close": 98.5}, "high",
                       r"98\.0 < low 99\.0; check the feed's field order"),
    "open_above_high": ({"open": 101.5}, "open", r"101\.5 is outside \[low 99\.0, high 101\.0\]"),
    "open_below_low": ({"open": 98.5}, "open", r"98\.5 is outside \[low 99\.0, high 101\.0\]"),
    "close_above_high": ({"close": 102.0}, "close", r"102\.0 is outside \[low 99\.0"),
    "close_below_low": ({"close": 1.0}, "close", r"1\.0 is outside \[low 99\.0"),
    "negative_volume": ({"volume": -1.0}, "volume", r"is negative"),
    "inf_volume": ({"volume": INF}, "volume", r"is inf"),
    "nan_volume": ({"volume": NAN}, "volume", r"is nan"),
    "nan_vwap": ({"vwap": NAN}, "vwap", r"is nan"),
    "negative_vwap": ({"vwap": -0.5}, "vwap", r"is negative"),
    "negative_trade_count": ({"trade_count": -3}, "trade_count", r"is negative"),
}
TYPE_CASES = {
    "text_price": ({"open": "cheap"}, "open", r"is 'cheap', not a number"),
    "none_price": ({"high": None}, "high", r"is missing"),
    "list_price": ({"low": [1.0]}, "low", r"is \[1\.0\], not a number"),
    "float_trade_count": ({"trade_count": 1.5}, "trade_count", r"is not an integer"),
    "bool_trade_count": ({"trade_count": True}, "trade_count", r"is not an integer"),
}
SYMBOL_CASES = {
    "empty": ("", r"bar '' "),
    "blank": ("   ", r"bar '   ' "),
    "nul": ("A\x00B", r"bar 'A\\x00B' "),
    "newline": ("A\nB", r"bar 'A\\nB' "),
    "delete_char": ("AB\x7f", r"bar 'AB\\x7f' "),
    "too_long": ("X" * (MAX_SYMBOL_LENGTH + 1), r"bar 'XXXXXXXXXXXXXXXXXXXX\.\.\.' "),
    "int": (5, r"bar 5 "),
    "none": (None, r"bar None "),
    "bytes": (b"ES", r"bar b'ES' "),
}


def fields(**overrides: Any) -> dict[str, Any]:
    return {**VALID, **overrides}


def one_row_table(values: dict[str, Any]) -> pa.Table:
    """A one-row table of BAR_SCHEMA types (nullable, so a bad value reaches validation)."""
    return pa.table(
        {name: pa.array([values[name]], BAR_SCHEMA.field(name).type) for name in BAR_SCHEMA.names}
    )


# -- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TS, TS),
        (datetime(2025, 11, 21, 14, 31, tzinfo=UTC), TS),
        (datetime(2025, 11, 21, 15, 31, tzinfo=timezone(timedelta(hours=1))), TS),
        (TS_TEXT, TS),
        ("2025-11-21T09:31:00-05:00", TS),
        ("2025-11-21T14:31:00.000001+00:00", TS + 1),
        (MIN_TS, MIN_TS),
        (MAX_TS - 1, MAX_TS - 1),
        (-1, -1),
    ],
)
def test_to_micros_with_aware_value_returns_utc_micros(value: object, expected: int) -> None:
    assert to_micros(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (datetime(2025, 11, 21, 14, 31), r"ts is naive; pass an aware datetime"),  # noqa: DTZ001
        ("2025-11-21T14:31:00", r"ts is naive"),
        ("yesterday at noon", r"ts is not an ISO 8601 timestamp"),
        ("", r"ts is not an ISO 8601 timestamp"),
        (1.7e15, r"ts has type float, not a timestamp"),
        (True, r"ts is a bool, not a timestamp"),
        (None, r"ts has type NoneType"),
        (np.datetime64("2025-11-21T14:31"), r"ts is a numpy datetime64"),
        (MIN_TS - 1, r"ts is outside 1900-01-01\.\.2200-01-01"),
        (MAX_TS, r"ts is outside 1900-01-01\.\.2200-01-01"),
        (datetime(1899, 12, 31, 23, 59, tzinfo=UTC), r"ts is outside"),
        ("2200-01-01T00:00:00Z", r"ts is outside"),
    ],
)
def test_to_micros_with_bad_value_raises_naming_symbol_and_ts(value: object, reason: str) -> None:
    with pytest.raises(InvalidBarError, match=r"^bar 'ES' .*: " + reason) as info:
        to_micros(value, "ES")
    assert info.value.field == "ts"
    assert info.value.symbol == "ES"


def test_bar_time_is_aware_utc_datetime() -> None:
    bar = Bar("ES", TS, 1.0, 1.0, 1.0, 1.0, 0.0)
    assert bar.time == datetime(2025, 11, 21, 14, 31, tzinfo=UTC)
    assert bar.time.utcoffset() == timedelta(0)


# -- one bar ---------------------------------------------------------------------------------


def test_diagnose_with_valid_bar_returns_none() -> None:
    assert diagnose(**VALID) is None
    assert diagnose(**fields(vwap=100.2, trade_count=np.int64(7), volume=0)) is None


def test_make_bar_with_valid_values_returns_normalised_bar() -> None:
    bar = make_bar("ES", TS_TEXT, 100, 101, 99, 100.5, 10, 100.25, 4)
    assert bar == Bar("ES", TS, 100.0, 101.0, 99.0, 100.5, 10.0, 100.25, 4)
    assert all(type(value) is float for value in bar[2:8])


def test_make_bar_with_flat_bar_is_valid() -> None:
    """open == high == low == close and zero volume: a bar without trades is still a bar."""
    assert make_bar("ES", TS, 5.0, 5.0, 5.0, 5.0, 0.0).volume == 0.0


@pytest.mark.parametrize(("overrides", "field", "reason"), NUMERIC_CASES.values(),
                         ids=NUMERIC_CASES.keys())
def test_make_bar_with_bad_number_raises_naming_symbol_ts_and_field(
    overrides: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidBarError, match=rf"^bar 'ES' {TS_SHOWN}: {field} {reason}") as info:
        make_bar(**fields(**overrides))
    error = info.value
    assert (error.symbol, error.ts, error.field) == ("ES", TS, field)


@pytest.mark.parametrize(("overrides", "field", "reason"), TYPE_CASES.values(),
                         ids=TYPE_CASES.keys())
def test_make_bar_with_non_number_raises_naming_field(
    overrides: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidBarError, match=rf"^bar 'ES' {TS_SHOWN}: {field} {reason}"):
        make_bar(**fields(**overrides))


@pytest.mark.parametrize(("symbol", "shown"), SYMBOL_CASES.values(), ids=SYMBOL_CASES.keys())
def test_make_bar_with_bad_symbol_raises_naming_symbol_and_ts(symbol: object, shown: str) -> None:
    with pytest.raises(InvalidBarError, match=rf"^{shown}{TS_SHOWN}: symbol ") as info:
        make_bar(**fields(symbol=symbol))
    assert info.value.field == "symbol"


def test_check_symbol_at_max_length_accepts_it() -> None:
    symbol = "X" * MAX_SYMBOL_LENGTH
    assert check_symbol(symbol) == symbol


@pytest.mark.parametrize("symbol", ["BRK.B", "ES Z5", "'; DROP TABLE bars; --", "Ünïcødé", "a"])
def test_check_symbol_with_printable_text_accepts_it_verbatim(symbol: str) -> None:
    assert check_symbol(symbol) == symbol


# -- batches ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "field", "reason"), NUMERIC_CASES.values(),
                         ids=NUMERIC_CASES.keys())
def test_conform_with_bad_row_raises_same_error_as_make_bar(
    overrides: dict[str, Any], field: str, reason: str
) -> None:
    """The vectorised check and the single-bar check agree, message included."""
    good = fields(ts=TS - 60_000_000)
    bad = fields(**overrides)
    with pytest.raises(InvalidBarError) as single:
        make_bar(**bad)
    table = pa.concat_tables([one_row_table(good), one_row_table(bad)])
    with pytest.raises(InvalidBarError, match=rf"^bar 'ES' {TS_SHOWN}: {field} {reason}") as batch:
        conform(table)
    assert str(batch.value) == str(single.value)
    with pytest.raises(InvalidBarError) as rows:
        conform([tuple(good.values()), tuple(bad.values())])
    assert str(rows.value) == str(single.value)


@pytest.mark.parametrize(
    ("symbol", "shown"),
    [value for key, value in SYMBOL_CASES.items() if isinstance(value[0], str)],
    ids=[key for key, value in SYMBOL_CASES.items() if isinstance(value[0], str)],
)
def test_conform_with_bad_symbol_column_raises_naming_symbol_and_ts(
    symbol: str, shown: str
) -> None:
    with pytest.raises(InvalidBarError, match=rf"^{shown}{TS_SHOWN}: symbol "):
        conform(one_row_table(fields(symbol=symbol)))


@pytest.mark.parametrize(
    ("ts", "reason"), [(MIN_TS - 1, "outside"), (MAX_TS, "outside")], ids=["before", "after"]
)
def test_conform_with_out_of_range_ts_column_raises(ts: int, reason: str) -> None:
    table = one_row_table(fields()).set_column(1, "ts", pa.array([ts], pa.int64()))
    with pytest.raises(InvalidBarError, match=rf"^bar 'ES' .*: ts is {reason}"):
        conform(table)


def test_conform_with_nanoseconds_in_int_ts_column_raises_naming_the_unit() -> None:
    """Epoch nanoseconds passed as microseconds would land in year ~57,000: refused, named."""
    table = one_row_table(fields()).set_column(1, "ts", pa.array([TS * 1000], pa.int64()))
    with pytest.raises(SchemaMismatchError, match="look like epoch nanoseconds"):
        conform(table)


@pytest.mark.parametrize("column", ["symbol", "ts", "open", "high", "low", "close", "volume"])
def test_conform_with_null_in_required_column_raises_naming_field(column: str) -> None:
    values = fields(vwap=100.0, trade_count=3)
    values[column] = None
    with pytest.raises(InvalidBarError, match=rf": {column} is null$") as info:
        conform(one_row_table(values))
    assert info.value.field == column


def test_conform_with_null_optional_columns_accepts_batch() -> None:
    table = conform([fields(), fields(ts=TS + 1, vwap=100.0, trade_count=2)])
    assert table.column("vwap").to_pylist() == [None, 100.0]
    assert table.column("trade_count").to_pylist() == [None, 2]


@pytest.mark.parametrize("missing", ["symbol", "ts", "open", "high", "low", "close", "volume"])
def test_conform_with_missing_column_raises_schema_mismatch(missing: str) -> None:
    table = one_row_table(fields()).drop_columns([missing])
    with pytest.raises(SchemaMismatchError, match=rf"batch lacks columns \['{missing}'\]"):
        conform(table)


def test_conform_without_optional_columns_fills_nulls() -> None:
    table = conform(one_row_table(fields()).drop_columns(["vwap", "trade_count"]))
    assert table.schema == BAR_SCHEMA
    assert table.column("vwap").null_count == 1


def test_conform_with_extra_column_raises_schema_mismatch() -> None:
    table = one_row_table(fields()).append_column("exchange", pa.array(["CME"]))
    with pytest.raises(SchemaMismatchError, match=r"unknown columns \['exchange'\]"):
        conform(table)


def test_conform_with_duplicate_column_raises_schema_mismatch() -> None:
    table = one_row_table(fields()).append_column("open", pa.array([100.0]))
    with pytest.raises(SchemaMismatchError, match="duplicate column names"):
        conform(table)


@pytest.mark.parametrize(
    ("column", "array", "found"),
    [
        ("open", pa.array(["100.0"]), "string"),
        ("volume", pa.array([True]), "bool"),
        ("symbol", pa.array([5]), "int64"),
        ("symbol", pa.array([b"ES"]), "binary"),
        ("ts", pa.array([b"2025-11-21T14:31:00Z"]), "binary"),
        ("ts", pa.array([1.5]), "double"),
        ("trade_count", pa.array(["3"]), "string"),
    ],
)
def test_conform_with_mistyped_column_raises_naming_column(
    column: str, array: pa.Array, found: str
) -> None:
    table = one_row_table(fields())
    table = table.set_column(table.schema.get_field_index(column), column, array)
    with pytest.raises(SchemaMismatchError, match=rf"column '{column}' has type {found}"):
        conform(table)


def test_conform_with_naive_ts_column_raises_schema_mismatch() -> None:
    table = one_row_table(fields()).set_column(
        1, "ts", pa.array([TS], pa.int64()).cast(pa.timestamp("us"))
    )
    with pytest.raises(SchemaMismatchError, match=r"column 'ts' is a naive timestamp"):
        conform(table)


def test_conform_with_naive_polars_datetime_raises_schema_mismatch() -> None:
    frame = pl.from_arrow(one_row_table(fields())).with_columns(
        pl.col("ts").dt.replace_time_zone(None)
    )
    with pytest.raises(SchemaMismatchError, match=r"naive timestamp.*replace_time_zone"):
        conform(frame)


def test_conform_with_nanosecond_remainder_raises_schema_mismatch() -> None:
    table = one_row_table(fields()).set_column(
        1, "ts", pa.array([TS * 1000 + 1], pa.timestamp("ns", tz="UTC"))
    )
    with pytest.raises(SchemaMismatchError, match=r"column 'ts' cannot be cast"):
        conform(table)


@pytest.mark.parametrize(
    "ts_array",
    [
        pa.array([TS], pa.int64()),
        pa.array([TS // 1_000_000], pa.timestamp("s", tz="UTC")),
        pa.array([TS * 1000], pa.timestamp("ns", tz="UTC")),
        pa.array([TS], pa.timestamp("us", tz="America/New_York")),
    ],
    ids=["int-micros", "seconds", "nanoseconds", "new-york"],
)
def test_conform_with_other_ts_encodings_gives_same_utc_instant(ts_array: pa.Array) -> None:
    table = conform(one_row_table(fields()).set_column(1, "ts", ts_array))
    assert table.schema == BAR_SCHEMA
    assert table.column("ts").cast(pa.int64()).to_pylist() == [TS]


def test_conform_with_narrower_numeric_types_casts_to_schema() -> None:
    table = pa.table({
        "symbol": pa.array(["ES"]).dictionary_encode(),
        "ts": pa.array([TS], pa.timestamp("us", tz="UTC")),
        "open": pa.array([100], pa.int32()), "high": pa.array([101.0], pa.float32()),
        "low": pa.array([99], pa.int64()), "close": pa.array([100.5], pa.float64()),
        "volume": pa.array([10], pa.uint16()), "trade_count": pa.array([3], pa.int8()),
    })
    result = conform(table)
    assert result.schema == BAR_SCHEMA
    assert result.to_pylist()[0]["high"] == 101.0


def test_conform_with_each_input_kind_gives_same_table() -> None:
    rows = [fields(), fields(ts=TS + 60_000_000, vwap=100.1, trade_count=5)]
    table = conform(rows)
    as_bars = [Bar(**row) for row in rows]
    inputs = {
        "dicts": rows,
        "bars": as_bars,
        "tuples": [tuple(bar) for bar in as_bars],
        "generator": (bar for bar in as_bars),
        "table": table,
        "record batch": table.to_batches()[0],
        "polars": pl.from_arrow(table),
    }
    for kind, batch in inputs.items():
        assert conform(batch).equals(table), kind
    assert table.schema == BAR_SCHEMA
    seven = conform([tuple(as_bars[0])[:7]])
    assert seven.equals(table.slice(0, 1))


def test_conform_with_empty_inputs_returns_empty_table() -> None:
    for batch in ([], BAR_SCHEMA.empty_table(), pl.from_arrow(BAR_SCHEMA.empty_table())):
        result = conform(batch)
        assert result.num_rows == 0
        assert result.schema == BAR_SCHEMA


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({**VALID, "exchange": "CME"}, r"unknown fields \['exchange'\]"),
        ({k: v for k, v in VALID.items() if k != "volume"}, r"bar 'ES' lacks fields \['volume'\]"),
        (("ES", TS, 1.0, 1.0, 1.0), r"cannot read a bar from"),
        ([*VALID.values()], r"cannot read a bar from"),
    ],
    ids=["extra-field", "missing-field", "short-tuple", "list-row"],
)
def test_conform_with_malformed_row_raises_schema_mismatch(row: object, match: str) -> None:
    with pytest.raises(SchemaMismatchError, match=match):
        conform([row])


@pytest.mark.parametrize("batch", [5, "ES", {"symbol": "ES"}, None], ids=repr)
def test_conform_with_non_batch_raises_schema_mismatch(batch: object) -> None:
    with pytest.raises(SchemaMismatchError, match=r"cannot read bars from a"):
        conform(batch)


def test_conform_reports_first_bad_row_of_many() -> None:
    rows = [fields(ts=TS + i) for i in range(100)]
    rows[37] = fields(ts=TS + 37, volume=-5.0)
    rows[80] = fields(ts=TS + 80, high=NAN)
    with pytest.raises(InvalidBarError, match=r"14:31:00\.000037Z: volume is negative"):
        conform(pa.Table.from_pylist(rows, schema=BAR_SCHEMA))


# -- #10: lenient batches, timestamp strings, integer units, pandas ------------------------------


def test_partition_keeps_valid_rows_and_explains_each_rejected_one() -> None:
    rows = [fields(ts=TS + i) for i in range(10)]
    rows[2] = fields(ts=TS + 2, high=98.0, open=98.5, close=98.5)
    rows[7] = fields(ts=TS + 7, volume=-5.0)
    valid, rejected = partition(pa.Table.from_pylist(rows, schema=BAR_SCHEMA))
    assert valid.schema == BAR_SCHEMA
    assert valid.column("ts").cast(pa.int64()).to_pylist() == [
        TS + i for i in range(10) if i not in (2, 7)]
    assert rejected.schema == REJECTS_SCHEMA
    assert rejected.column("row").to_pylist() == [2, 7]
    assert rejected.column("field").to_pylist() == ["high", "volume"]
    assert rejected.column("reason").to_pylist() == [
        "98.0 < low 99.0; check the feed's field order", "is negative"]
    assert rejected.column("value").to_pylist() == ["98.0", "-5.0"]
    assert rejected.column("volume").to_pylist() == [10.0, -5.0]


def test_partition_of_a_valid_batch_rejects_nothing() -> None:
    valid, rejected = partition([tuple(VALID.values())])
    assert valid.num_rows == 1
    assert rejected.num_rows == 0


def test_partition_of_python_rows_keeps_each_bad_rows_place() -> None:
    rows = [tuple(fields(ts=TS + i).values()) for i in range(4)]
    rows[1] = tuple(fields(ts=TS + 1, open="cheap").values())
    valid, rejected = partition(rows)
    assert valid.num_rows == 3
    assert rejected.column("row").to_pylist() == [1]
    assert rejected.column("reason").to_pylist() == ["is 'cheap', not a number"]


def test_partition_still_raises_for_a_missing_column() -> None:
    with pytest.raises(SchemaMismatchError, match="lacks columns"):
        partition(pa.table({"symbol": ["ES"]}))


@pytest.mark.parametrize(
    "text",
    ["2025-11-21T14:31:00Z", "2025-11-21 09:31:00-05:00", "2025-11-21T14:31:00.000000+00:00",
     "2025-11-21T15:31:00+0100"],
)
def test_conform_parses_iso_strings_with_an_offset(text: str) -> None:
    table = one_row_table(fields()).set_column(1, "ts", pa.array([text]))
    assert conform(table).column("ts").cast(pa.int64()).to_pylist() == [TS]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("2025-11-21 14:31:00", "is naive"), ("yesterday", "is not an ISO 8601 timestamp")],
)
def test_conform_with_a_ts_string_it_cannot_place_raises_naming_the_bar(
    text: str, reason: str
) -> None:
    strings = pa.array([TS_TEXT, text])
    table = pa.concat_tables([one_row_table(fields())] * 2).set_column(1, "ts", strings)
    with pytest.raises(InvalidBarError, match=rf"^bar 'ES' '{text}': ts {reason}") as info:
        conform(table)
    assert info.value.field == "ts"
    valid, rejected = partition(table)
    assert (valid.num_rows, rejected.column("row").to_pylist()) == (1, [1])


@pytest.mark.parametrize(
    ("low", "high", "unit"),
    [
        (1_732_199_400, 1_732_223_000, "s"),
        (1_732_199_400_000, 1_732_223_000_000, "ms"),
        (TS, TS + 60_000_000, "us"),
        (TS * 1000, TS * 1000, "ns"),
        (0, 60_000_000, None),  # the test suites' small microseconds: no unit's band
        (1_732_199_400, 1_732_199_400_000, None),  # mixed: no single unit
        (10**8 - 1, 10**8, None),  # before 1973-03-03 in seconds
    ],
)
def test_plain_unit_tells_units_apart_by_band(low: int, high: int, unit: str | None) -> None:
    assert plain_unit(low, high) == unit


@pytest.mark.parametrize(("scale", "unit"), [(1, "seconds"), (1000, "milliseconds")])
def test_conform_with_epoch_seconds_or_millis_refuses_instead_of_1970(
    scale: int, unit: str
) -> None:
    """Integer epochs that plainly are not microseconds never become instants of 1970 (#10)."""
    table = one_row_table(fields()).set_column(
        1, "ts", pa.array([TS // 1_000_000 * scale], pa.int64()))
    with pytest.raises(SchemaMismatchError, match=rf"look like epoch {unit} .*2025-11-21 "
                       r"14:31:00Z in " + unit):
        conform(table)


#: TS as an epoch in other units, by the unit's name in messages (nanoseconds not whole us).
EPOCHS = {"seconds": TS // 10**6, "milliseconds": TS // 10**3, "nanoseconds": TS * 10**3 + 7}
PER_SECOND_OF = {"seconds": 1, "milliseconds": 10**3, "nanoseconds": 10**9}


def _append(wh: Warehouse, row: tuple[Any, ...]) -> None:
    wh.append(*row)


def _extend_tuples(wh: Warehouse, row: tuple[Any, ...]) -> None:
    wh.extend([tuple(VALID.values()), row])


def _extend_dicts(wh: Warehouse, row: tuple[Any, ...]) -> None:
    wh.extend([VALID, dict(zip(BAR_SCHEMA.names, row, strict=True))])


def _extend_bars(wh: Warehouse, row: tuple[Any, ...]) -> None:
    wh.extend([Bar(*row)])


@pytest.mark.parametrize("how", [_append, _extend_tuples, _extend_dicts, _extend_bars])
@pytest.mark.parametrize("session", [False, True], ids=["no-session", "session"])
@pytest.mark.parametrize("unit", list(EPOCHS))
def test_an_integer_ts_that_plainly_is_another_unit_is_refused_as_a_column_is(
    how: Any, session: bool, unit: str
) -> None:
    """A single bar's epoch seconds, milliseconds or nanoseconds never become 1970's instants."""
    value = EPOCHS[unit]
    row = tuple(fields(ts=value).values())
    column = one_row_table(fields()).set_column(1, "ts", pa.array([value], pa.int64()))
    with pytest.raises(SchemaMismatchError) as refused_column:
        conform(column)
    with Warehouse(":memory:", flush_interval=None) as wh:
        if session:
            wh.start_session(date(2025, 11, 21))
        with pytest.raises(InvalidBarError, match=rf"^bar 'ES' .*: ts looks like epoch {unit} "
                           rf"\({value} is 2025-11-21 14:31:00Z in {unit}, ") as refused:
            how(wh, row)
        assert (refused.value.field, refused.value.value) == ("ts", value)
        # The same words as the column's refusal, and how to give microseconds.
        said = refused.value.reason.split("looks ", 1)[1].split(";")[0]
        assert said in str(refused_column.value)
        assert f"{value * 10**6 // PER_SECOND_OF[unit]}" in refused.value.reason
        assert wh.symbols() == []
        if how is not _append:
            valid, rejected = partition([tuple(VALID.values()), row])
            assert valid.num_rows == 1
            assert rejected.column("reason").to_pylist() == [refused.value.reason]


@pytest.mark.parametrize(
    "ts",
    [0, 60_000_000, 10**8 - 1, 7_258_118_400, 10**11 - 1, 7_258_118_400_000, TS,
     datetime(1970, 1, 1, 0, 30, tzinfo=UTC), datetime(1970, 2, 1, tzinfo=UTC)],
)
def test_an_integer_ts_in_no_units_band_or_a_datetime_of_1970_is_taken(ts: Any) -> None:
    """Only integers are judged by unit: an aware datetime says its instant itself."""
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.append(*fields(ts=ts).values())
        wh.extend([tuple(fields(symbol="NQ", ts=ts).values())])
        assert wh.latest("ES").ts == wh.latest("NQ").ts == to_micros(ts)


def test_conform_of_a_pandas_frame_goes_through_arrow() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({
        "symbol": ["ES", "ES", "NQ"],
        "ts": pd.to_datetime([TS_TEXT, "2025-11-21T14:32:00Z", TS_TEXT]),
        "open": [100.0, 100.5, 20.0], "high": [101.0, 101.0, 21.0], "low": [99.0, 100.0, 19.0],
        "close": [100.5, 100.7, 20.5], "volume": [10, 20, 30],
        "trade_count": pd.array([3, None, 5], dtype="Int64"),
    })
    filtered = frame[frame["volume"] > 10]  # a positional index left by filtering: dropped
    table = conform(filtered)
    assert table.schema == BAR_SCHEMA
    assert table.column("ts").cast(pa.int64()).to_pylist() == [TS + 60_000_000, TS]
    assert table.column("trade_count").to_pylist() == [None, 5]
    assert conform(frame.set_index("ts")).num_rows == 3  # a named index is a column


def test_conform_of_a_naive_pandas_column_says_how_to_localize() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({**{k: [v] for k, v in VALID.items() if k != "ts"},
                          "ts": pd.to_datetime(["2025-11-21 14:31:00"])})
    with pytest.raises(SchemaMismatchError, match=r"naive.*tz_localize\('UTC'\)"):
        conform(frame)


def test_conform_takes_whole_float_trade_counts_and_refuses_fractions() -> None:
    """pandas keeps an integer column with gaps as floats: whole ones are counts (#10)."""
    table = one_row_table(fields(trade_count=3))
    whole = table.set_column(8, "trade_count", pa.array([3.0]))
    assert conform(whole).column("trade_count").to_pylist() == [3]
    with pytest.raises(SchemaMismatchError, match=r"column 'trade_count' cannot be cast"):
        conform(table.set_column(8, "trade_count", pa.array([3.5])))
