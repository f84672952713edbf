"""The compiled `Bar`: the named tuple's public face, invisible to the garbage collector."""

from __future__ import annotations

import copy
import gc
import pickle
import sys
from datetime import UTC, datetime
from enum import IntEnum, StrEnum

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from warehouse import BAR_SCHEMA, Bar, Warehouse
from warehouse.schema import MAX_TS, MIN_TS, bars_from_table, rows_to_batch

T0 = 1_763_735_400_000_000
FIELDS = ("symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "trade_count")


def test_bar_reads_like_the_named_tuple_it_replaces() -> None:
    bar = Bar("AAPL", T0, 228.1, 228.6, 227.9, 228.4, 51_200.0, 228.3, 412)
    assert (bar.symbol, bar.ts, bar.close, bar.vwap, bar.trade_count) == (
        "AAPL", T0, 228.4, 228.3, 412)
    assert bar.time == datetime(2025, 11, 21, 14, 30, tzinfo=UTC)
    assert Bar._fields == FIELDS
    assert len(bar) == 9
    assert list(bar) == [getattr(bar, f) for f in FIELDS]
    assert bar[0] == "AAPL"
    assert bar[-1] == 412
    assert bar[2:4] == (228.1, 228.6)
    symbol, ts, *_ = bar
    assert (symbol, ts) == ("AAPL", T0)
    assert bar._asdict() == dict(zip(FIELDS, bar, strict=True))
    assert bar._replace(close=228.0).close == 228.0
    assert bar.close == 228.4  # _replace made a copy
    with pytest.raises(ValueError, match="unexpected field"):
        bar._replace(price=1.0)
    assert repr(bar).startswith("Bar(symbol='AAPL', ts=1763735400000000, open=228.1")
    assert not isinstance(bar, tuple)


def test_missing_vwap_and_trade_count_stay_distinguishable_from_values() -> None:
    missing = Bar("A", T0, 1.0, 1.0, 1.0, 1.0, 0.0)
    zero = Bar("A", T0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0)
    assert (missing.vwap, missing.trade_count) == (None, None)
    assert (zero.vwap, zero.trade_count) == (0.0, 0)
    assert missing != zero
    assert hash(missing) != hash(zero)


def test_bar_equality_hash_and_order_agree_with_tuples() -> None:
    bar = Bar("A", T0, 1.0, 2.0, 0.5, 1.5, 10.0)
    as_tuple = ("A", T0, 1.0, 2.0, 0.5, 1.5, 10.0, None, None)
    assert bar == as_tuple
    assert bar == Bar(*as_tuple)
    assert hash(bar) == hash(as_tuple)
    assert {bar, Bar(*as_tuple)} == {bar}
    later = bar._replace(ts=T0 + 1)
    assert bar < later
    assert sorted([later, bar]) == [bar, later]
    assert bar != "A"


def test_bar_pickles_and_copies() -> None:
    bar = Bar("A", T0, 1.0, 2.0, 0.5, 1.5, 10.0, None, 7)
    for again in (pickle.loads(pickle.dumps(bar)), copy.copy(bar), copy.deepcopy(bar)):
        assert again == bar
        assert again.vwap is None


def test_bar_is_not_tracked_by_the_garbage_collector_and_is_small() -> None:
    bar = Bar("A", T0, 1.0, 2.0, 0.5, 1.5, 10.0, 1.2, 3)
    assert not gc.is_tracked(bar)
    assert sys.getsizeof(bar) <= 112
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.append(*bar)
        wh.extend(pa.table({name: [value] for name, value in
                            bar._replace(ts=T0 + 60_000_000)._asdict().items()}))
        assert not any(gc.is_tracked(b) for b in wh.last_n("A", 2))


def test_bar_refuses_values_of_the_wrong_type() -> None:
    with pytest.raises(TypeError):
        Bar(None, T0, 1.0, 1.0, 1.0, 1.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Bar("A", T0, "1.0", 1.0, 1.0, 1.0, 1.0)  # type: ignore[arg-type]


bars = st.builds(
    Bar,
    st.text(min_size=1, max_size=8),
    st.integers(MIN_TS, MAX_TS - 1),
    *(st.floats(allow_nan=False) for _ in range(5)),
    st.none() | st.floats(allow_nan=False),
    st.none() | st.integers(0, 2**63 - 1),
)


@given(st.lists(bars, max_size=30))
def test_bars_to_arrow_and_back_is_exact(rows: list[Bar]) -> None:
    batch = rows_to_batch(rows)
    assert batch.schema == BAR_SCHEMA
    assert bars_from_table(pa.Table.from_batches([batch])) == rows
    # An independent reader of the same columns agrees.
    assert pa.Table.from_batches([batch]).to_pylist() == [
        {**b._asdict(), "ts": b.time} for b in rows
    ]


class Ticker(StrEnum):
    MSFT = "MSFT"


class Tagged(str):
    """A str subclass, as some feeds hand out."""


@pytest.mark.parametrize("symbol", [Ticker.MSFT, Tagged("MSFT")], ids=["StrEnum", "str-subclass"])
def test_str_subclass_symbols_are_taken_as_plain_strings(symbol: str) -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.append(symbol, T0, 1.0, 2.0, 0.5, 1.5, 10.0)
        wh.extend([Bar(symbol, T0 + 60_000_000, 1.0, 2.0, 0.5, 1.5, 10.0)])
        wh.extend([(symbol, T0 + 120_000_000, 1.0, 2.0, 0.5, 1.5, 10.0)])
        assert wh.symbols() == ["MSFT"]
        assert wh.count("MSFT") == 3
        assert all(type(b.symbol) is str for b in wh.last_n("MSFT", 3))
        assert wh.sql("SELECT symbol, count(*) AS n FROM bars GROUP BY ALL").to_pylist() == [
            {"symbol": "MSFT", "n": 3}]


class Count(IntEnum):
    SEVEN = 7


def test_int_subclass_trade_count_is_taken_as_an_int() -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.append("A", T0, 1.0, 2.0, 0.5, 1.5, 10.0, None, Count.SEVEN)
        bar = wh.latest("A")
        assert bar is not None
        assert bar.trade_count == 7
        assert type(bar.trade_count) is int
