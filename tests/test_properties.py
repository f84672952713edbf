"""Properties: for any stream of bars, every reader agrees with a dict keyed by (symbol, ts)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse import AppendBuffer, Bar, InvalidBarError, Warehouse
from warehouse.schema import BAR_SCHEMA, MAX_TS, MIN_TS, conform, diagnose

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
SYMBOLS = ["A", "B"]
MINUTES = 40  # more than a window holds (window + 16), so deep reads happen



@st.composite
def bars(draw: st.DrawFn) -> Bar:
    low = draw(st.integers(1, 50))
    spread = draw(st.integers(0, 5))
    return Bar(
        draw(st.sampled_from(SYMBOLS)),
        T0 + draw(st.integers(0, MINUTES - 1)) * MINUTE,
        float(low + draw(st.integers(0, spread))),
        float(low + spread),
        float(low),
        float(low + draw(st.integers(0, spread))),
        float(draw(st.integers(0, 10_000))),
        draw(st.none() | st.just(float(low))),
        draw(st.none() | st.integers(0, 500)),
    )


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), bars()),
        st.tuples(st.just("extend"), st.lists(bars(), max_size=12)),
        st.tuples(st.just("fill"), st.lists(bars(), max_size=12)),
        st.tuples(st.just("flush"), st.none()),
        # A checkpoint compacts the flushed bars into sorted runs; replacements then reach both
        # the runs and the tail.
        st.tuples(st.just("checkpoint"), st.none()),
        st.tuples(st.just("check"), st.none()),
    ),
    max_size=50,
)


class Model:
    """The specification: last write wins per (symbol, ts); a fill only takes free keys.

    Every generated bar is stamped on a whole minute, so a free key is a free minute.
    """

    def __init__(self) -> None:
        self.bars: dict[tuple[str, int], Bar] = {}
        self.origins: dict[tuple[str, int], str] = {}
        self.replacements = 0

    def put(self, bar: Bar) -> None:
        key = (bar.symbol, bar.ts)
        self.replacements += key in self.bars
        self.bars[key] = bar
        self.origins[key] = "live"

    def fill(self, batch: list[Bar]) -> int:
        last = {(bar.symbol, bar.ts): bar for bar in batch}  # of a key given twice, the last
        free = {key: bar for key, bar in last.items() if key not in self.bars}
        self.bars.update(free)
        self.origins.update(dict.fromkeys(free, "filled"))
        return len(free)

    def sorted(self, symbol: str | None = None) -> list[Bar]:
        return sorted((b for b in self.bars.values() if symbol in (None, b.symbol)),
                      key=lambda b: (b.symbol, b.ts))


def table_bars(table: pa.Table) -> list[Bar]:
    table = table.set_column(1, "ts", table.column("ts").cast(pa.int64()))
    return [Bar(**row) for row in table.to_pylist()]


def check_hot(wh: Warehouse, model: Model) -> None:
    assert wh.replacements == model.replacements
    assert wh.symbols() == sorted({b.symbol for b in model.bars.values()})
    for symbol in SYMBOLS:
        mine = model.sorted(symbol)
        assert wh.count(symbol) == len(mine)
        assert wh.latest(symbol) == (mine[-1] if mine else None)
        for n in (1, 3, 20, len(mine), len(mine) + 1):
            assert wh.last_n(symbol, n) == mine[-n:], n
        for bar in mine[:: max(1, len(mine) // 4)]:
            assert wh.since(symbol, bar.ts) == [b for b in mine if b.ts >= bar.ts]


def check_all(wh: Warehouse, model: Model, export_to: Path | None = None) -> None:
    check_hot(wh, model)
    expected = model.sorted()
    assert table_bars(wh.sql("SELECT * EXCLUDE (origin) FROM bars ORDER BY symbol, ts")) == expected
    origins = wh.sql("SELECT origin FROM bars ORDER BY symbol, ts")["origin"].to_pylist()
    assert origins == [model.origins[(b.symbol, b.ts)] for b in expected]
    frame = wh.frame().drop("origin").with_columns(pl.col("ts").dt.epoch("us"))
    assert [Bar(*row) for row in frame.rows()] == expected
    if export_to is not None:
        result = wh.export_parquet(export_to)
        days = [pq.read_table(path) for path in result.files]
        assert [o for day in days for o in day["origin"].to_pylist()] == [
            model.origins[(b.symbol, b.ts)] for b in expected]
        exported = [bar for day in days for bar in table_bars(day.drop_columns(["origin"]))]
        assert exported == expected
        assert result.rows == len(expected)


def run(wh: Warehouse, model: Model, ops: list[tuple[str, Any]]) -> None:
    for op, arg in ops:
        if op == "append":
            wh.append(*arg)
            model.put(arg)
        elif op == "extend":
            assert wh.extend(arg) == len({(b.symbol, b.ts) for b in arg})
            for bar in arg:
                model.put(bar)
        elif op == "fill":
            assert wh.fill(arg) == model.fill(arg)
        elif op == "flush":
            wh.flush()
        elif op == "checkpoint":
            wh.checkpoint()
        else:
            check_hot(wh, model)


@given(ops=operations, window=st.sampled_from([1, 3, 64]))
def test_any_stream_with_flushes_agrees_with_model(ops: list[tuple[str, Any]], window: int) -> None:
    model = Model()
    with Warehouse(":memory:", flush_interval=None, window=window) as wh, \
            tempfile.TemporaryDirectory() as tmp:
        run(wh, model, ops)
        check_all(wh, model, Path(tmp))
        wh.flush()
        check_all(wh, model)


@given(before=operations, after=operations, window=st.sampled_from([1, 4]))
def test_any_stream_survives_close_and_reopen(
    before: list[tuple[str, Any]], after: list[tuple[str, Any]], window: int
) -> None:
    model = Model()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "session.duckdb"
        with Warehouse(path, flush_interval=None, window=window) as wh:
            run(wh, model, before)
        model.replacements = 0  # the counter is per process, not stored
        with Warehouse(path, flush_interval=None, window=window) as wh:
            check_all(wh, model)
            run(wh, model, after)
            check_all(wh, model, Path(tmp) / "archive")


@given(stream=st.lists(bars(), max_size=60), cut=st.integers(0, 60))
def test_append_and_extend_of_any_stream_give_same_reads(stream: list[Bar], cut: int) -> None:
    model = Model()
    for bar in stream:
        model.put(bar)
    with Warehouse(":memory:", flush_interval=None, window=2) as one, \
            Warehouse(":memory:", flush_interval=None, window=2) as many:
        for bar in stream:
            one.append(*bar)
        many.extend(stream[:cut])
        many.flush()
        many.extend(pa.Table.from_pylist([b._asdict() for b in stream[cut:]], schema=BAR_SCHEMA))
        check_all(one, model)
        check_all(many, model)


# -- validation: the fast, vectorised and explaining checks agree ----------------------------

prices = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 99.0, 100.0, 101.0, -1.0]),
)
symbols = st.one_of(
    st.sampled_from(["ES", "", " ", "A\tB", "x" * 64, "x" * 65, "\x7f", "é"]),
    st.text(max_size=70),
)
stamps = st.one_of(
    st.integers(MIN_TS - 10, MIN_TS + 10), st.integers(MAX_TS - 10, MAX_TS + 10),
    st.integers(-(2**62), 2**62), st.just(T0),
)


@settings(max_examples=150, deadline=None)
@given(symbol=symbols, ts=stamps, open_=prices, high=prices, low=prices, close=prices,
       volume=prices, vwap=st.none() | prices, trade_count=st.none() | st.integers(-5, 5))
def test_single_and_batch_validation_agree_with_diagnose(
    symbol: str, ts: int, open_: float, high: float, low: float, close: float, volume: float,
    vwap: float | None, trade_count: int | None,
) -> None:
    values = (symbol, ts, open_, high, low, close, volume, vwap, trade_count)
    problem = diagnose(*values)
    table = pa.table({name: pa.array([value], BAR_SCHEMA.field(name).type)
                      for name, value in zip(BAR_SCHEMA.names, values, strict=True)})
    buffer = AppendBuffer()
    outcomes = []
    for attempt in (lambda: buffer.append(*values), lambda: conform(table),
                    lambda: conform([values])):
        try:
            attempt()
        except InvalidBarError as exc:
            outcomes.append(str(exc))
        else:
            outcomes.append(None)
    assert outcomes == [None if problem is None else str(problem)] * 3
    assert buffer.count(symbol) == (problem is None)


def test_since_and_last_n_after_a_batch_and_appends_that_trim_the_window() -> None:
    # A batch leaves a window as Arrow rows; single appends after it trim the window: the rows
    # must go with what was trimmed, or a read puts them before the window, with a gap.
    with Warehouse(":memory:", flush_interval=None, window=1) as wh:
        wh.extend([Bar("A", T0, 1.0, 1.0, 1.0, 1.0, 0.0)])
        for k in range(1, 19):
            wh.append("A", T0 + k * MINUTE, 10.0, 10.0, 9.0, 9.5, 1.0)
        assert [(b.ts - T0) // MINUTE for b in wh.since("A", T0 + 16 * MINUTE)] == [16, 17, 18]
        assert [(b.ts - T0) // MINUTE for b in wh.last_n("A", 3)] == [16, 17, 18]
