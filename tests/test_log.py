"""The append log: columnar single appends, sealed to Arrow without a copy, and snapshots."""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Callable

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse import AppendBuffer, Bar
from warehouse import buffer as buffer_module
from warehouse.log import as_batches, to_tables
from warehouse.schema import BAR_SCHEMA, rows_to_batch

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
#: Non-ASCII names too: the log holds codes, Arrow gets the names' UTF-8.
NAMED = ["AAPL", "ES", "Ä.DE", "日本株", "😀-USD", "NQ"]


def bar_of(symbol: str, minute: int, price: float, vwap: float | None,
           count: int | None) -> Bar:
    return Bar(symbol, T0 + minute * MINUTE, price, price + 1.0, price - 1.0, price + 0.5,
               price * 10.0, vwap, count)


def table_of(bars: list[Bar]) -> pa.Table:
    return pa.Table.from_batches([rows_to_batch(bars)], schema=BAR_SCHEMA)


def take(buffer: AppendBuffer) -> tuple[list[pa.RecordBatch], set[tuple[str, int]]]:
    """The log's batches as a drain converts them (before de-duplication)."""
    with buffer.lock:
        chunks, replaced, rows = buffer.log.take()
    batches = as_batches(chunks)
    assert sum(b.num_rows for b in batches) == rows
    assert all(b.schema.equals(BAR_SCHEMA) for b in batches)
    return batches, replaced


def assert_same(batches: list[pa.RecordBatch], bars: list[Bar]) -> None:
    """The batches hold exactly ``bars``, column for column, as `rows_to_batch` gives them."""
    got = pa.Table.from_batches(batches, schema=BAR_SCHEMA).combine_chunks()
    want = table_of(bars).combine_chunks()
    assert got.schema.equals(BAR_SCHEMA, check_metadata=True)
    for name in BAR_SCHEMA.names:
        assert got.column(name).equals(want.column(name)), name


def run_stream(ops: list[tuple[str, int, int, float, bool, bool]]) -> None:
    """Apply appends, seals, snapshots, takes and clears to a buffer and to a model; compare."""
    buffer = AppendBuffer(window=4, flush_rows=10**9)
    log: list[Bar] = []  # the model: every bar on the log, in arrival order
    for kind, symbol_index, minute, price, has_vwap, has_count in ops:
        if kind == "append":
            symbol = NAMED[symbol_index % len(NAMED)] if symbol_index < 40 else f"S{symbol_index}"
            bar = bar_of(symbol, minute, price, price if has_vwap else None,
                         symbol_index * 7 + minute if has_count else None)
            buffer.append(*bar)
            log.append(bar)
        elif kind == "seal":
            with buffer.lock:
                buffer.log._seal_pending()
        elif kind == "clear":
            with buffer.lock:
                buffer.clear()
            log = []
        elif kind == "snapshot":
            bars, keys = buffer.snapshot()
            want_bars, want_keys = to_tables([rows_to_batch(log)] if log else [],
                                             buffer.log.replaced)
            assert bars.equals(want_bars)
            assert bars.schema.equals(BAR_SCHEMA)
            assert keys.equals(want_keys)
        else:
            batches, _ = take(buffer)
            if log:
                assert_same(batches, log)
            else:
                assert batches == []
            log = []
        assert buffer.unflushed_count() == len(log)
    batches, _ = take(buffer)
    if log:
        assert_same(batches, log)


OPS = st.tuples(
    st.sampled_from(["append"] * 12 + ["seal", "snapshot", "take", "clear"]),
    st.integers(0, 300),  # below 40: a named symbol (non-ASCII too); else one of many
    st.integers(0, 30),  # minutes: late bars and corrections come often
    st.floats(1.0, 1e6, allow_nan=False),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(OPS, max_size=200))
def test_log_gives_the_batches_rows_to_batch_gives_for_any_stream(
    ops: list[tuple[str, int, int, float, bool, bool]],
) -> None:
    run_stream(ops)


@pytest.mark.parametrize("seed", range(6))
def test_log_of_long_streams_matches_rows_to_batch_across_growth(seed: int) -> None:
    # Thousands of rows: the buffers grow (realloc) and seals and snapshots land anywhere.
    rng = random.Random(seed)
    ops = [
        (rng.choice(["append"] * 400 + ["seal", "snapshot", "snapshot", "take", "clear"]),
         rng.randrange(1000), rng.randrange(3000), rng.uniform(1.0, 500.0),
         rng.random() < 0.7, rng.random() < 0.6)
        for _ in range(rng.randrange(3000, 6000))
    ]
    run_stream(ops)


def test_sealed_batches_stay_valid_after_the_log_moves_on() -> None:
    buffer = AppendBuffer(window=4, flush_rows=10**9)
    first = [bar_of(f"S{i % 37}", i, 10.0 + i, None if i % 3 else 1.0, i) for i in range(3000)]
    for bar in first:
        buffer.append(*bar)
    snapshot, _ = buffer.snapshot()  # a copy of the rows, its own memory
    with buffer.lock:
        chunks, _, _ = buffer.log.take()  # the buffers themselves, now Arrow's
    raw = chunks[0]
    # The log moves on: new buffers, grown and written over, then everything forgotten.
    for i in range(5000):
        buffer.append("X", T0 + i, 1.0, 2.0, 0.5, 1.5, 3.0, 1.2, 9)
    buffer.snapshot()
    with buffer.lock:
        buffer.clear()
    for i in range(2000):
        buffer.append("Y", T0 + i, 5.0, 6.0, 4.0, 5.5, 1.0)
    gc.collect()
    raw.validate(full=True)
    assert_same(as_batches(chunks), first)
    assert snapshot.equals(table_of(first))
    del snapshot
    gc.collect()
    assert_same(as_batches(chunks), first)  # the seal's buffers do not depend on the copy


def test_clear_empties_columns_and_resets_symbol_codes() -> None:
    buffer = AppendBuffer(window=4, flush_rows=10**9)
    buffer.append(*bar_of("B", 0, 10.0, 1.0, 1))
    buffer.append(*bar_of("B", 1, 10.0, 1.0, 1))
    buffer.extend([bar_of("A", 0, 10.0, None, None), bar_of("C", 0, 10.0, 1.0, 1)])
    buffer.append(*bar_of("B", 2, 10.0, 1.0, 1))
    assert buffer.hot.names == ["B", "A", "C"]
    assert [buffer.hot.series[s].code for s in ("B", "A", "C")] == [0, 1, 2]
    with buffer.lock:
        buffer.clear()
    assert buffer.hot.names == []
    assert buffer.unflushed_count() == 0
    later = [bar_of("C", 1, 20.0, None, None), bar_of("日本株", 1, 30.0, 2.0, 4)]
    for bar in later:
        buffer.append(*bar)
    assert buffer.hot.series["C"].code == 0
    batches, _ = take(buffer)
    assert_same(batches, later)


def test_restore_and_batches_assign_codes_as_appends_do() -> None:
    stored = [bar_of("ES", m, 10.0, None, None) for m in range(5)] + [
        bar_of("NQ", m, 20.0, None, None) for m in range(3)]
    table = pa.Table.from_pylist([b._asdict() for b in stored], schema=BAR_SCHEMA)
    buffer = AppendBuffer(window=4, deep_reader=lambda *args: [])
    buffer.restore(table.select(["symbol", "ts"]), table)
    buffer.extend([bar_of("ZZ", 0, 5.0, None, None), bar_of("ES", 9, 5.0, None, None)])
    buffer.append(*bar_of("AA", 0, 5.0, None, None))
    assert buffer.hot.names == ["ES", "NQ", "ZZ", "AA"]
    assert [buffer.hot.series[s].code for s in buffer.hot.names] == [0, 1, 2, 3]
    bars = [bar_of(s, 20, 7.0, 1.0, 3) for s in ("NQ", "AA", "ES", "ZZ")]
    for bar in bars:
        buffer.append(*bar)
    batches, _ = take(buffer)
    assert pa.Table.from_batches(batches).slice(3).equals(table_of(bars))


def test_failed_conversion_puts_every_bar_back(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = AppendBuffer(window=4, flush_rows=10**9)
    bars = [bar_of(f"S{i % 5}", i % 40, 10.0, 1.0 if i % 2 else None, i) for i in range(300)]
    for bar in bars[:200]:
        buffer.append(*bar)
    buffer.snapshot()  # some rows copied, the rest still only in the columns
    for bar in bars[200:]:
        buffer.append(*bar)

    def broken(*args: object) -> None:
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(buffer_module, "to_tables", broken)
    with pytest.raises(RuntimeError, match="conversion failed"):
        buffer.drain()
    assert buffer.unflushed_count() == 300
    monkeypatch.undo()
    buffer.append(*bar_of("late", 0, 1.0, None, None))
    batches, replaced = take(buffer)
    assert_same(batches, [*bars, bar_of("late", 0, 1.0, None, None)])
    assert replaced == {(b.symbol, b.ts) for b in bars[5 * 40 :]}


def test_repeated_snapshot_pays_only_for_new_rows() -> None:
    buffer = AppendBuffer(window=4, flush_rows=10**9)
    for i in range(100):
        buffer.append(*bar_of("A", i, 10.0, None, None))
    first = buffer.snapshot()
    assert buffer.snapshot() is first or buffer.snapshot()[0] is first[0]
    for i in range(100, 103):
        buffer.append(*bar_of("A", i, 10.0, None, None))
    bars, _ = buffer.snapshot()
    assert bars.num_rows == 103
    assert [b.num_rows for b in buffer.log._pending_batches] == [100, 3]
    assert buffer.unflushed_count() == 103  # a snapshot seals nothing


def test_drain_of_single_appends_makes_no_per_row_python_objects() -> None:
    # The numeric columns are handed over, not copied: a drain allocates about the symbol
    # strings in Arrow's pool and nearly nothing in Python's (rows_to_batch allocates ~7 MB).
    n = 100_000
    buffer = AppendBuffer(window=4, flush_rows=10**9)
    append: Callable[..., None] = buffer.append
    for i in range(n):
        append(f"S{i % 500}", T0 + i, 10.0, 11.0, 9.0, 10.5, 100.0, 10.2 if i % 3 else None)
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        bars, _ = buffer.drain()
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bars.num_rows == n
    assert python_peak < 200_000
    assert pa.total_allocated_bytes() - arrow_before < 2 * n * 8  # string offsets + bytes
