"""`AppendBuffer` on its own: hot reads, ordering, replacement, the append log, append vs extend."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from warehouse import AppendBuffer, Bar, InvalidBarError, SchemaMismatchError, WarehouseError
from warehouse.schema import BAR_SCHEMA

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000

MakeBar = Callable[..., Bar]


def keyed(table: pa.Table) -> dict[tuple[str, int], Bar]:
    """A drained or snapshot log as {(symbol, ts): bar}, failing on a repeated key."""
    table = table.set_column(1, "ts", table.column("ts").cast(pa.int64()))
    bars = [Bar(**row) for row in table.to_pylist()]
    result = {(b.symbol, b.ts): b for b in bars}
    assert len(result) == len(bars), "a key appears twice in the log"
    return result


def state(buffer: AppendBuffer, symbols: list[str]) -> dict[str, Any]:
    """Everything a reader can observe without a store."""
    bars, replaced = buffer.snapshot()
    return {
        "latest": buffer.latest_many(symbols),
        "last": {s: buffer.last_n(s, 10) for s in symbols},
        "count": {s: buffer.count(s) for s in symbols},
        "total": buffer.total_count(),
        "unflushed": buffer.unflushed_count(),
        "symbols": buffer.symbols(),
        "replacements": buffer.replacements,
        "log": keyed(bars),
        "replaced": sorted(replaced.column("symbol").to_pylist()),
    }


# -- hot reads -------------------------------------------------------------------------------


def fresh(symbol: str) -> str:
    """An equal string that is a new object (as a feed that parses each message makes)."""
    return "".join(list(symbol))


def test_held_bars_share_their_symbols_string_whatever_the_path(bar: MakeBar) -> None:
    buffer = AppendBuffer(window=8)
    buffer.append(*bar(fresh("AAPL"), 0))
    buffer.append(*bar(fresh("AAPL"), 2))
    buffer.append(*bar(fresh("AAPL"), 1))  # a late bar
    buffer.extend([bar(fresh("AAPL"), m) for m in (3, 4)])  # a short run
    buffer.extend([bar(fresh("AAPL"), m) for m in range(10, 30)])  # a run longer than a window
    buffer.extend([bar(fresh("AAPL"), m) for m in (5, 27, 40)])  # a run that reaches back
    name = buffer.hot.series["AAPL"].symbol
    held = buffer.last_n("AAPL", 8)
    assert [b.ts for b in held] == [T0 + m * MINUTE for m in (23, 24, 25, 26, 27, 28, 29, 40)]
    assert all(b.symbol is name for b in held)
    assert buffer.latest("AAPL").symbol is name  # type: ignore[union-attr]




def test_append_then_hot_reads_see_bar_at_once(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    b = bar("AAPL", 0, vwap=100.2, trade_count=9)
    buffer.append(*b)
    assert buffer.latest("AAPL") == b
    assert buffer.last_n("AAPL", 5) == [b]
    assert buffer.since("AAPL", T0) == [b]
    assert buffer.count("AAPL") == 1
    assert buffer.latest_many(["AAPL", "MSFT"]) == {"AAPL": b, "MSFT": None}
    assert buffer.has_bars("AAPL")
    assert not buffer.has_bars("MSFT")
    assert buffer.symbols() == ["AAPL"]
    assert buffer.total_count() == 1
    assert buffer.unflushed_count() == 1


def test_hot_reads_of_unknown_symbol_return_empty() -> None:
    buffer = AppendBuffer()
    assert buffer.latest("NOPE") is None
    assert buffer.last_n("NOPE", 3) == []
    assert buffer.since("NOPE", T0) == []
    assert buffer.count("NOPE") == 0


def test_append_normalises_ts_and_prices(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    buffer.append("ES", datetime(2025, 11, 21, 14, 30, tzinfo=UTC), 100, 101, 99, 100, 5)
    buffer.append("ES", "2025-11-21T14:31:00+00:00", np.float64(100), 101, 99, 100, 5)
    first, second = buffer.last_n("ES", 2)
    assert (first.ts, second.ts) == (T0, T0 + MINUTE)
    assert all(type(value) is float for value in first[2:7])


def test_last_n_with_zero_returns_empty_and_negative_raises(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    buffer.append(*bar("ES", 0))
    assert buffer.last_n("ES", 0) == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        buffer.last_n("ES", -1)


def test_since_accepts_datetime_and_iso_text(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    for minute in range(5):
        buffer.append(*bar("ES", minute))
    start = datetime(2025, 11, 21, 14, 33, tzinfo=UTC)
    assert [b.ts for b in buffer.since("ES", start)] == [T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert buffer.since("ES", "2025-11-21T14:33:00Z") == buffer.since("ES", start)
    assert buffer.since("ES", T0 + 10 * MINUTE) == []


def test_append_out_of_order_keeps_ts_order(bar: MakeBar) -> None:
    buffer = AppendBuffer(window=100)
    minutes = list(range(50))
    random.Random(5).shuffle(minutes)
    for minute in minutes:
        buffer.append(*bar("ES", minute))
    assert [b.ts for b in buffer.last_n("ES", 50)] == [T0 + m * MINUTE for m in range(50)]
    assert [b.ts for b in buffer.since("ES", T0 + 45 * MINUTE)] == [
        T0 + m * MINUTE for m in range(45, 50)
    ]
    assert buffer.latest("ES").ts == T0 + 49 * MINUTE


# -- replacement -----------------------------------------------------------------------------


def test_append_of_repeated_key_replaces_bar_and_counts_replacement(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    buffer.append(*bar("ES", 0, price=10.0))
    buffer.append(*bar("ES", 1, price=11.0))
    buffer.append(*bar("ES", 1, price=12.0))  # correction of the latest bar
    buffer.append(*bar("ES", 0, price=13.0))  # correction of an older bar
    assert buffer.count("ES") == 2
    assert buffer.replacements == 2
    assert buffer.latest("ES").open == 12.0
    assert [b.open for b in buffer.last_n("ES", 5)] == [13.0, 12.0]
    log, replaced = buffer.drain()
    assert {k: b.open for k, b in keyed(log).items()} == {
        ("ES", T0): 13.0, ("ES", T0 + MINUTE): 12.0
    }
    assert replaced.num_rows == 2


def test_extend_with_duplicates_in_batch_keeps_last(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    added = buffer.extend([bar("ES", 0, price=1.0), bar("ES", 1), bar("ES", 0, price=2.0)])
    assert added == 2
    assert buffer.count("ES") == 2
    assert buffer.replacements == 1
    assert buffer.last_n("ES", 2)[0].open == 2.0
    assert keyed(buffer.drain()[0])[("ES", T0)].open == 2.0


def test_extend_replacing_appended_bars_counts_each(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    for minute in range(3):
        buffer.append(*bar("ES", minute, price=1.0))
    buffer.extend([bar("ES", 1, price=5.0), bar("ES", 2, price=6.0), bar("ES", 3, price=7.0)])
    assert buffer.replacements == 2
    assert [b.open for b in buffer.last_n("ES", 10)] == [1.0, 5.0, 6.0, 7.0]
    assert buffer.latest("ES").open == 7.0


# -- windows ---------------------------------------------------------------------------------


def test_constructor_with_bad_sizes_raises() -> None:
    with pytest.raises(ValueError, match="window must be at least 1"):
        AppendBuffer(window=0)
    with pytest.raises(ValueError, match="flush_rows must be at least 1"):
        AppendBuffer(flush_rows=0)


def test_read_past_window_without_store_raises(bar: MakeBar) -> None:
    buffer = AppendBuffer(window=2)
    for minute in range(100):
        buffer.append(*bar("ES", minute))
    assert len(buffer.last_n("ES", 2)) == 2
    with pytest.raises(WarehouseError, match="past the in-memory window"):
        buffer.last_n("ES", 100)
    with pytest.raises(WarehouseError, match="past the in-memory window"):
        buffer.since("ES", T0)


def test_read_past_window_asks_deep_reader(bar: MakeBar) -> None:
    calls: list[tuple[str, int | None, int | None]] = []

    def deep(symbol: str, n: int | None, ts: int | None) -> list[Bar]:
        calls.append((symbol, n, ts))
        return []

    buffer = AppendBuffer(window=2, deep_reader=deep)
    for minute in range(100):
        buffer.append(*bar("ES", minute))
    buffer.last_n("ES", 50)
    buffer.since("ES", T0 + MINUTE)
    assert calls == [("ES", 50, None), ("ES", None, T0 + MINUTE)]
    # Within the window no deep read happens.
    assert [b.ts for b in buffer.since("ES", T0 + 99 * MINUTE)] == [T0 + 99 * MINUTE]
    assert len(calls) == 2


def test_extend_with_run_longer_than_window_keeps_window_contiguous(bar: MakeBar) -> None:
    """A batch longer than the window must not leave a gap after the bars already held."""
    deep_calls: list[Any] = []
    buffer = AppendBuffer(window=4, deep_reader=lambda *args: deep_calls.append(args) or [])
    buffer.append(*bar("ES", 0))
    buffer.append(*bar("ES", 1))
    buffer.extend([bar("ES", minute) for minute in range(10, 20)])
    tail = buffer.last_n("ES", 4)
    assert [b.ts for b in tail] == [T0 + m * MINUTE for m in range(16, 20)]
    # Five bars are not all in memory: the buffer must ask the store, not answer from a gap.
    got = buffer.last_n("ES", 5)
    assert deep_calls or [b.ts for b in got] == [T0 + m * MINUTE for m in range(15, 20)]
    deep_calls.clear()
    got = buffer.since("ES", T0)
    assert deep_calls or [b.ts for b in got] == [T0 + m * MINUTE for m in (0, 1, *range(10, 20))]


# -- all or nothing --------------------------------------------------------------------------

BAD_BARS = {
    "nan-open": {"open": math.nan},
    "high-below-low": {"high": 50.0, "open": 49.5, "close": 49.5},
    "close-above-high": {"close": 1e9},
    "negative-volume": {"volume": -1.0},
    "naive-ts": {"ts": datetime(2025, 11, 21, 15, 0)},  # noqa: DTZ001
    "bad-ts-text": {"ts": "not a time"},
    "empty-symbol": {"symbol": ""},
    "control-symbol": {"symbol": "ES\t"},
    "long-symbol": {"symbol": "S" * 65},
    "int-symbol": {"symbol": 42},
    "negative-trade-count": {"trade_count": -1},
}


@pytest.mark.parametrize("overrides", BAD_BARS.values(), ids=BAD_BARS.keys())
def test_rejected_append_or_extend_changes_nothing(bar: MakeBar, overrides: dict[str, Any]) -> None:
    buffer = AppendBuffer(window=3)
    for minute in range(5):
        buffer.append(*bar("ES", minute))
    before = state(buffer, ["ES", ""])
    bad = bar("ES", 2)._asdict() | overrides
    with pytest.raises(InvalidBarError) as single:
        buffer.append(**bad)
    assert state(buffer, ["ES", ""]) == before
    batch = [bar("ES", 10), bar("NEW", 0), tuple(bad.values())]
    with pytest.raises(InvalidBarError) as batched:
        buffer.extend(batch)
    assert str(batched.value) == str(single.value)
    assert state(buffer, ["ES", ""]) == before
    assert not buffer.has_bars("NEW")


def test_extend_with_schema_mismatch_changes_nothing(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    buffer.append(*bar("ES", 0))
    before = state(buffer, ["ES"])
    table = pa.Table.from_pylist([bar("ES", 1)._asdict()], schema=BAR_SCHEMA)
    with pytest.raises(SchemaMismatchError):
        buffer.extend(table.drop_columns(["volume"]))
    with pytest.raises(SchemaMismatchError):
        buffer.extend(table.append_column("extra", pa.array([1])))
    assert state(buffer, ["ES"]) == before


def test_append_with_unhashable_symbol_raises_invalid_bar(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    with pytest.raises(InvalidBarError, match="symbol is not a string"):
        buffer.append(["ES"], *bar()[1:])
    assert buffer.total_count() == 0


def test_append_with_numpy_integer_trade_count_matches_extend(bar: MakeBar) -> None:
    """`diagnose` accepts numpy integers; the single-bar fast path must agree with batches."""
    appended, extended = AppendBuffer(), AppendBuffer()
    b = bar("ES", 0, trade_count=np.int64(12))
    extended.extend([b])
    appended.append(*b)
    assert appended.latest("ES") == extended.latest("ES")
    assert type(appended.latest("ES").trade_count) is int


@pytest.mark.parametrize(
    "value", ["100.0", True, Decimal("100.0")], ids=["text", "bool", "decimal"]
)
def test_append_and_extend_of_bars_convert_values_with_float(bar: MakeBar, value: object) -> None:
    """Values go through float(), in append and in iterables of bars alike (documented)."""
    fast, rows = AppendBuffer(), AppendBuffer()
    b = (*bar("ES", 0, price=1.0)[:6], value)  # raw feed values: a tuple (a Bar holds floats)
    fast.append(*b)
    rows.extend([b])
    assert fast.latest("ES") == rows.latest("ES")
    assert fast.latest("ES").volume == float(value)
    assert type(fast.latest("ES").volume) is float


def test_append_with_unconvertible_price_is_rejected_like_extend(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    b = (*bar("ES", 0, price=1.0)[:6], "lots")
    with pytest.raises(InvalidBarError, match="volume"):
        buffer.extend([b])
    with pytest.raises(InvalidBarError, match="volume"):
        buffer.append(*b)
    assert buffer.count("ES") == 0


# -- append vs extend ------------------------------------------------------------------------


def _stream(bar: MakeBar, seed: int) -> list[Bar]:
    rng = random.Random(seed)
    return [
        bar(rng.choice("ABC"), rng.randrange(30), price=float(rng.randrange(10, 20)),
            volume=float(rng.randrange(100)),
            vwap=rng.choice([None, 15.0]), trade_count=rng.choice([None, 3]))
        for _ in range(200)
    ]


@pytest.mark.parametrize("seed", range(4))
def test_append_and_extend_of_same_stream_give_same_state(bar: MakeBar, seed: int) -> None:
    stream = _stream(bar, seed)
    by_append, by_batch, by_one_row_batches = AppendBuffer(), AppendBuffer(), AppendBuffer()
    for b in stream:
        by_append.append(*b)
        by_one_row_batches.extend([b])
    by_batch.extend(stream)
    symbols = ["A", "B", "C"]
    appended = state(by_append, symbols)
    assert state(by_one_row_batches, symbols) == appended
    batched = state(by_batch, symbols)
    # One batch collapses its own duplicates before they reach the log: same bars, same count
    # of replacements, but fewer rows waiting and no replaced keys for the store to delete.
    log_only = {"replaced", "unflushed"}
    assert {k: v for k, v in batched.items() if k not in log_only} == {
        k: v for k, v in appended.items() if k not in log_only
    }
    assert batched["unflushed"] == batched["total"]


@pytest.mark.parametrize(
    "kind", ["table", "record-batch", "polars", "bars", "tuples", "dicts"]
)
def test_extend_with_each_batch_kind_matches_append(bar: MakeBar, kind: str) -> None:
    stream = _stream(bar, 11)
    table = pa.Table.from_pylist([b._asdict() for b in stream], schema=BAR_SCHEMA)
    batch: object = {
        "table": table,
        "record-batch": table.combine_chunks().to_batches()[0],
        "polars": pl.from_arrow(table),
        "bars": stream,
        "tuples": [tuple(b) for b in stream],
        "dicts": [b._asdict() for b in stream],
    }[kind]
    reference, buffer = AppendBuffer(), AppendBuffer()
    for b in stream:
        reference.append(*b)
    assert buffer.extend(batch) == len({(b.symbol, b.ts) for b in stream})
    symbols = ["A", "B", "C"]
    assert state(buffer, symbols)["last"] == state(reference, symbols)["last"]
    assert keyed(buffer.drain()[0]) == keyed(reference.drain()[0])


def test_extend_with_empty_batch_adds_nothing() -> None:
    buffer = AppendBuffer()
    assert buffer.extend([]) == 0
    assert buffer.extend(BAR_SCHEMA.empty_table()) == 0
    assert buffer.extend(pl.from_arrow(BAR_SCHEMA.empty_table())) == 0
    assert buffer.total_count() == 0
    assert buffer.unflushed_count() == 0
    assert buffer.drain()[0].num_rows == 0


# -- the log ---------------------------------------------------------------------------------


def test_drain_takes_log_once_and_keeps_hot_state(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    buffer.append(*bar("ES", 0))
    buffer.extend([bar("NQ", 0), bar("NQ", 1)])
    bars, replaced = buffer.drain()
    assert bars.schema == BAR_SCHEMA
    assert set(keyed(bars)) == {("ES", T0), ("NQ", T0), ("NQ", T0 + MINUTE)}
    assert replaced.num_rows == 0
    assert buffer.unflushed_count() == 0
    assert buffer.drain()[0].num_rows == 0
    assert buffer.count("NQ") == 2
    assert buffer.latest("ES") == bar("ES", 0)


def test_replacement_after_drain_reports_key_to_delete(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    buffer.append(*bar("ES", 0, price=1.0))
    buffer.drain()
    buffer.append(*bar("ES", 0, price=2.0))
    bars, replaced = buffer.drain()
    assert keyed(bars)[("ES", T0)].open == 2.0
    assert replaced.column("symbol").to_pylist() == ["ES"]
    assert replaced.column("ts").cast(pa.int64()).to_pylist() == [T0]


def test_snapshot_shows_log_without_draining(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    buffer.append(*bar("ES", 0))
    first, _ = buffer.snapshot()
    assert first.num_rows == 1
    buffer.append(*bar("ES", 1))
    buffer.extend([bar("NQ", 0)])
    second, _ = buffer.snapshot()
    assert set(keyed(second)) == {("ES", T0), ("ES", T0 + MINUTE), ("NQ", T0)}
    assert buffer.unflushed_count() == 3
    assert set(keyed(buffer.drain()[0])) == set(keyed(second))


def test_requeue_puts_log_back_before_newer_bars(bar: MakeBar) -> None:
    buffer = AppendBuffer()
    buffer.append(*bar("ES", 0, price=1.0))
    bars, replaced = buffer.drain()
    buffer.append(*bar("ES", 0, price=2.0))  # arrives while the failed flush runs
    buffer.requeue(bars, replaced)
    log = keyed(buffer.drain()[0])
    assert log[("ES", T0)].open == 2.0


def test_on_full_fires_when_log_reaches_flush_rows(bar: MakeBar) -> None:
    fired: list[int] = []
    buffer = AppendBuffer(flush_rows=5, on_full=lambda: fired.append(1))
    for minute in range(4):
        buffer.append(*bar("ES", minute))
    assert fired == []
    buffer.append(*bar("ES", 4))
    assert len(fired) >= 1
    buffer.drain()
    fired.clear()
    buffer.extend([bar("NQ", minute) for minute in range(7)])
    assert len(fired) >= 1


def test_on_full_fires_with_snapshots_between_appends(bar: MakeBar) -> None:
    """SQL readers snapshot the log often; that must not stop the flush by size."""
    fired: list[int] = []
    buffer = AppendBuffer(flush_rows=10, on_full=lambda: fired.append(1))
    for minute in range(25):
        buffer.append(*bar("ES", minute))
        if minute % 3 == 0:
            buffer.snapshot()
    assert fired


def test_restore_rebuilds_hot_state_from_stored_bars(bar: MakeBar) -> None:
    stored = [bar("ES", m) for m in range(10)] + [bar("NQ", m) for m in range(3)]
    table = pa.Table.from_pylist([b._asdict() for b in stored], schema=BAR_SCHEMA)
    buffer = AppendBuffer(window=4, deep_reader=lambda *args: [])
    buffer.restore(table.select(["symbol", "ts"]), table)
    assert buffer.count("ES") == 10
    assert buffer.latest("ES") == stored[9]
    assert buffer.last_n("ES", 4) == stored[6:10]
    assert buffer.last_n("NQ", 10) == stored[10:]
    assert buffer.unflushed_count() == 0
    buffer.append(*bar("ES", 3, price=50.0))
    assert buffer.replacements == 1
    assert buffer.count("ES") == 10
