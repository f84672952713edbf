"""Session metrics: `metrics()` and `metrics_frame()` agree with the named query session_ohlcv and
with an independent oracle (plain Python over the bars, last write wins per key), on every path
that changes them: in-order and late bars, corrections, batches, flushes, reopening, journal
replay and clear; and concurrent readers never see a half-updated record."""

from __future__ import annotations

import math
import pickle
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from warehouse import AppendBuffer, Bar, SessionMetrics, Warehouse, WarehouseError

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SYMBOLS = ["A", "B", "C"]
MINUTES = 60  # more than a small window holds (window + 16), so old bars leave memory
COLUMNS = [
    "symbol",
    "first_ts",
    "last_ts",
    "bar_count",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
]
#: Sums are kept in another order than SQL's (and than the oracle's exact ones).
RTOL = 1e-9


def bar(
    symbol: str,
    minute: int,
    low: float = 10.0,
    spread: float = 2.0,
    volume: float = 100.0,
    vwap: float | None = None,
    open_at: float = 0.5,
    close_at: float = 0.5,
) -> Bar:
    return Bar(
        symbol,
        T0 + minute * MINUTE,
        low + open_at * spread,
        low + spread,
        low,
        low + close_at * spread,
        volume,
        vwap,
    )


def price(b: Bar) -> float:
    return (b.high + b.low + b.close) / 3 if b.vwap is None else b.vwap


# -- the oracle ---------------------------------------------------------------------------------


class Oracle:
    """Plain Python over the bars appended: last write wins per (symbol, ts)."""

    def __init__(self) -> None:
        self.bars: dict[tuple[str, int], Bar] = {}

    def put(self, b: Bar) -> None:
        self.bars[(b.symbol, b.ts)] = b

    def symbols(self) -> list[str]:
        return sorted({s for s, _ in self.bars})

    def metrics(self, symbol: str) -> dict[str, Any] | None:
        bars = sorted((b for (s, _), b in self.bars.items() if s == symbol), key=lambda b: b.ts)
        if not bars:
            return None
        volume = math.fsum(b.volume for b in bars)
        pv = math.fsum(price(b) * b.volume for b in bars)
        return {
            "symbol": symbol,
            "first_ts": bars[0].ts,
            "last_ts": bars[-1].ts,
            "bar_count": len(bars),
            "open": bars[0].open,
            "high": max(b.high for b in bars),
            "low": min(b.low for b in bars),
            "close": bars[-1].close,
            "volume": volume,
            "vwap": pv / volume if volume else None,
            # How large the VWAP's rounding can be: the sum of |price x volume| over the volume.
            "vwap_scale": math.fsum(abs(price(b)) * b.volume for b in bars) / volume
            if volume
            else 0.0,
        }


def as_micros(value: Any) -> int:
    if isinstance(value, datetime):
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(value)


def assert_agree(got: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    """One symbol's metrics: exact where SQL is exact, within RTOL where sums are involved."""
    for name in ("symbol", "bar_count", "open", "high", "low", "close"):
        assert got[name] == expected[name], (what, name, got, expected)
    for name in ("first_ts", "last_ts"):
        assert as_micros(got[name]) == expected[name], (what, name, got, expected)
    assert math.isclose(got["volume"], expected["volume"], rel_tol=RTOL), (what, got, expected)
    if expected["vwap"] is None:
        assert got["vwap"] is None, (what, got, expected)
    else:
        assert got["vwap"] is not None, (what, got, expected)
        assert abs(got["vwap"] - expected["vwap"]) <= RTOL * expected["vwap_scale"], (
            what,
            got,
            expected,
        )


def check(wh: Warehouse, oracle: Oracle) -> None:
    """metrics(), metrics_frame() and session_ohlcv against the oracle, every symbol."""
    sql = {row["symbol"]: row for row in wh.query("session_ohlcv").to_pylist()}
    # One symbol read first, the others after the frame: stale metrics are recomputed by
    # either read.
    records = {SYMBOLS[0]: wh.metrics(SYMBOLS[0])}
    frame = wh.metrics_frame()
    records.update((s, wh.metrics(s)) for s in SYMBOLS[1:])
    assert frame.columns == COLUMNS
    assert frame["symbol"].to_list() == oracle.symbols() == list(sql)
    rows = {row["symbol"]: row for row in frame.to_dicts()}
    for symbol in SYMBOLS:
        expected = oracle.metrics(symbol)
        record = records[symbol]
        if expected is None:
            assert record is None
            assert symbol not in rows
            continue
        assert record is not None
        assert_agree(record._asdict(), expected, "metrics()")
        assert_agree(rows[symbol], expected, "metrics_frame()")
        assert_agree(sql[symbol], expected, "session_ohlcv")
        assert record.first_time == rows[symbol]["first_ts"]
        assert record.last_time == rows[symbol]["last_ts"]


def stale(wh: Warehouse) -> list[str]:
    return wh._buffer.hot.stale_symbols(SYMBOLS)


# -- the record ---------------------------------------------------------------------------------


def test_metrics_of_in_order_appends_match_sql_and_oracle(wh: Warehouse) -> None:
    oracle = Oracle()
    for minute in range(30):
        for k, symbol in enumerate(SYMBOLS[:2]):
            b = bar(
                symbol,
                minute,
                low=10.0 + (minute * 7 + k) % 11,
                volume=100.0 + minute,
                vwap=None if minute % 3 else 11.0 + k,
                open_at=(minute % 5) / 4,
            )
            wh.append(*b)
            oracle.put(b)
    check(wh, oracle)
    assert wh.metrics("C") is None  # a symbol without bars, as latest() answers it


def test_metrics_record_is_immutable_and_has_session_ohlcv_fields(wh: Warehouse) -> None:
    wh.append(*bar("A", 0, volume=0.0))
    wh.append(*bar("A", 1, volume=50.0, vwap=12.5))
    record = wh.metrics("A")
    assert isinstance(record, SessionMetrics)
    assert list(record._asdict()) == COLUMNS == list(SessionMetrics._fields)
    assert record.first_time == datetime(2025, 11, 21, 14, 30, tzinfo=UTC)
    assert record.last_time == datetime(2025, 11, 21, 14, 31, tzinfo=UTC)
    assert record.first_ts == T0
    assert record.vwap == 12.5
    assert len(record) == 10
    assert tuple(record) == tuple(record._asdict().values())
    with pytest.raises(AttributeError):
        record.close = 1.0  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(record)) == record
    assert hash(record) == hash(SessionMetrics(*record))
    assert record != SessionMetrics(*[*record][:-1], None)
    assert "bar_count=2" in repr(record)


def test_vwap_is_none_while_the_volume_is_zero(wh: Warehouse) -> None:
    wh.append(*bar("A", 0, volume=0.0, vwap=11.0))
    wh.append(*bar("A", 1, volume=0.0))
    record = wh.metrics("A")
    assert record is not None
    assert record.volume == 0.0
    assert record.vwap is None
    assert wh.metrics_frame()["vwap"].to_list() == [None]
    assert wh.query("session_ohlcv")["vwap"].to_pylist() == [None]


def test_metrics_frame_has_the_schema_of_session_ohlcv(wh: Warehouse) -> None:
    expected = pl.from_arrow(wh.query("session_ohlcv"))
    assert isinstance(expected, pl.DataFrame)
    empty = wh.metrics_frame()
    assert empty.schema == expected.schema
    assert empty.height == 0
    oracle = Oracle()
    for b in (bar("B", 0), bar("A", 0)):
        wh.append(*b)
        oracle.put(b)
    expected = pl.from_arrow(wh.query("session_ohlcv"))
    assert isinstance(expected, pl.DataFrame)
    assert wh.metrics_frame().schema == expected.schema
    check(wh, oracle)


def test_metrics_off_raises_a_clear_error(tmp_path: Path) -> None:
    with Warehouse(":memory:", flush_interval=None, metrics=False) as wh:
        wh.append(*bar("A", 0))
        wh.extend([bar("A", 1), bar("A", 0, low=5.0)])
        assert wh.latest("A") == bar("A", 1)
        with pytest.raises(WarehouseError, match="metrics=False"):
            wh.metrics("A")
        with pytest.raises(WarehouseError, match="metrics=False"):
            wh.metrics_frame()
    db = tmp_path / "wh.duckdb"
    with Warehouse(db, flush_interval=None) as wh:
        wh.append(*bar("A", 0))
    # Reopened without them: nothing is restored, and reading them still says why.
    with (
        Warehouse(db, flush_interval=None, metrics=False) as wh,
        pytest.raises(WarehouseError, match="metrics=False"),
    ):
        wh.metrics("A")


def test_metrics_of_str_subclass_symbol_is_the_plain_string(wh: Warehouse) -> None:
    class Name(str):
        pass

    wh.append(*bar("A", 0))
    record = wh.metrics(Name("A"))
    assert record is not None
    assert type(record.symbol) is str


# -- rare paths ---------------------------------------------------------------------------------


def test_late_bar_moves_open_and_first_ts_and_keeps_close(wh: Warehouse) -> None:
    oracle = Oracle()
    for b in (
        bar("A", 5, open_at=0.0),
        bar("A", 6, close_at=1.0),
        bar("A", 2, low=3.0, open_at=1.0),
        bar("A", 4, low=20.0),
    ):
        wh.append(*b)
        oracle.put(b)
    check(wh, oracle)
    record = wh.metrics("A")
    assert record is not None
    assert (record.first_ts, record.open, record.close) == (T0 + 2 * MINUTE, 5.0, 12.0)


@pytest.mark.parametrize("flush", [False, True])
@pytest.mark.parametrize("minute", [0, 20, 59])
def test_correction_of_first_middle_or_last_bar(wh: Warehouse, flush: bool, minute: int) -> None:
    oracle = Oracle()
    for m in range(60):
        b = bar("A", m, low=10.0 + m % 7, volume=10.0 + m)
        wh.append(*b)
        oracle.put(b)
    if flush:
        wh.flush()
    correction = bar("A", minute, low=10.5, spread=0.5, volume=3.0, open_at=0.0, close_at=1.0)
    wh.append(*correction)
    oracle.put(correction)
    check(wh, oracle)


def test_correction_of_the_high_outside_the_window_recomputes_from_the_store() -> None:
    oracle = Oracle()
    with Warehouse(":memory:", flush_interval=None, window=1) as wh:
        for m in range(40):
            b = bar("A", m, low=50.0 if m == 3 else 10.0)  # minute 3 holds the high and low
            wh.append(*b)
            oracle.put(b)
        wh.flush()
        correction = bar("A", 3, low=11.0)
        wh.append(*correction)
        oracle.put(correction)
        assert stale(wh) == ["A"]  # its old bar is not in memory: the next read recomputes
        check(wh, oracle)
        assert stale(wh) == []
        wh.append(*bar("A", 40))  # in order again: added in C to exact totals
        oracle.put(bar("A", 40))
        check(wh, oracle)


def test_correction_held_in_the_window_subtracts_without_recomputing(wh: Warehouse) -> None:
    oracle = Oracle()
    for m in range(10):
        b = bar("A", m, volume=100.0)
        wh.append(*b)
        oracle.put(b)
    correction = bar("A", 4, volume=7.0, vwap=10.5)
    wh.append(*correction)
    oracle.put(correction)
    totals = wh._buffer.hot.series["A"].get_totals()
    assert totals[5] == 907.0  # 1000 - 100 + 7: subtracted, not recomputed
    assert totals[-3] == 1000.0  # its volume_scale keeps the largest volume seen
    check(wh, oracle)


def test_correction_cancelling_most_of_the_volume_is_exact() -> None:
    oracle = Oracle()
    with Warehouse(":memory:", flush_interval=None, window=1) as wh:
        volumes = [0.1, 0.2, 1e15, 0.3] + [0.0] * 30
        for m, v in enumerate(volumes):
            b = bar("A", m, volume=v)
            wh.append(*b)
            oracle.put(b)
        wh.flush()
        for m in (2, 0, 1, 3):  # take back the huge volume, then every other one
            correction = bar("A", m, volume=0.0)
            wh.append(*correction)
            oracle.put(correction)
            check(wh, oracle)
        record = wh.metrics("A")
        assert record is not None
        assert record.volume == 0.0  # exactly: recomputed, not 1e15 - 1e15 + rounding
        assert record.vwap is None


def test_extend_with_new_keys_late_rows_and_corrections(wh: Warehouse) -> None:
    oracle = Oracle()
    first = [
        bar(s, m, low=10.0 + (m * 3) % 8, volume=float(m)) for s in SYMBOLS for m in range(0, 50, 2)
    ]
    wh.extend(first)
    for b in first:
        oracle.put(b)
    wh.flush()
    second = [
        bar("A", 60, low=1.0),
        bar("A", 1, low=40.0),  # new last, late
        bar("B", 0, low=11.0),
        bar("B", 0, low=12.0),  # a correction, corrected again
        bar("C", 48, volume=0.0, close_at=1.0),
    ]  # the last bar corrected
    wh.extend(second)
    for b in second:
        oracle.put(b)
    check(wh, oracle)


def test_corrections_after_a_batch_and_appends_that_trim_the_window() -> None:
    # A batch leaves the window as Arrow rows; appends then trim it (a case that once left old
    # rows before the trimmed window, so a correction missed the bar it replaced).
    oracle = Oracle()
    with Warehouse(":memory:", flush_interval=None, window=1) as wh:
        stream = [bar("A", m, low=10.0 + m % 4, volume=float(m % 5)) for m in range(19)]
        wh.extend(stream[:1])
        for b in stream[1:]:
            wh.append(*b)
        for b in stream:
            oracle.put(b)
        wh.append(*stream[0])
        wh.extend([stream[1]])
        check(wh, oracle)


@pytest.mark.parametrize("batch", [False, True])
def test_sums_beyond_a_float_are_inf_as_in_sql_until_corrected(wh: Warehouse, batch: bool) -> None:
    huge = bar("A", 0, low=1.0, spread=1e300, volume=1e10, open_at=0.0, close_at=0.0)
    rest = [bar("A", m) for m in range(1, 4)]
    if batch:
        wh.extend([huge, *rest])
    else:
        for b in (huge, *rest):
            wh.append(*b)
    record, (sql,) = wh.metrics("A"), wh.query("session_ohlcv").to_pylist()
    assert record is not None
    assert record.vwap == sql["vwap"] == math.inf  # the price x volume overflows in both
    fix = bar("A", 0)
    if batch:
        wh.extend([fix])
    else:
        wh.append(*fix)
    oracle = Oracle()
    for b in (fix, *rest):
        oracle.put(b)
    check(wh, oracle)  # inf - inf is no sum: recomputed


def test_stale_metrics_are_recomputed_by_metrics_frame() -> None:
    oracle = Oracle()
    with Warehouse(":memory:", flush_interval=None, window=1) as wh:
        batch = [bar(s, m, low=30.0 if m == 0 else 10.0) for s in SYMBOLS for m in range(30)]
        wh.extend(batch)
        for b in batch:
            oracle.put(b)
        wh.flush()
        fixes = [bar(s, 0) for s in SYMBOLS]
        wh.extend(fixes)
        for b in fixes:
            oracle.put(b)
        assert stale(wh) == SYMBOLS
        frame = wh.metrics_frame()
        assert stale(wh) == []
        for row in frame.to_dicts():
            expected = oracle.metrics(row["symbol"])
            assert expected is not None
            assert_agree(row, expected, "metrics_frame()")


def test_stale_metrics_of_a_buffer_without_store_raise() -> None:
    buffer = AppendBuffer(window=1)
    for m in range(40):
        buffer.append(*bar("A", m, low=50.0 if m == 0 else 10.0))
    buffer.append(*bar("A", 0))
    with pytest.raises(WarehouseError, match="no store"):
        buffer.metrics("A")


def test_clear_resets_metrics(wh: Warehouse) -> None:
    wh.extend([bar("A", m) for m in range(5)])
    wh.append(*bar("B", 0))
    wh.clear()
    assert wh.metrics("A") is None
    assert wh.metrics_frame().height == 0
    wh.append(*bar("A", 9, low=3.0))
    oracle = Oracle()
    oracle.put(bar("A", 9, low=3.0))
    check(wh, oracle)


def test_clear_racing_appends_leaves_metrics_of_the_bars_after_it(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb", flush_rows=500, flush_interval=0.005)
    stop = threading.Event()
    sent: list[Bar] = []

    def feed() -> None:
        m = 0
        while not stop.is_set():
            b = bar("A", m, low=10.0 + m % 9, volume=1.0 + m % 4)
            wh.append(*b)
            sent.append(b)
            m += 1

    feeder = threading.Thread(target=feed)
    feeder.start()
    while len(sent) < 2_000 and feeder.is_alive():
        pass
    wh.clear()
    cleared_at = len(sent)
    while len(sent) < cleared_at + 2_000 and feeder.is_alive():  # acknowledged after the clear
        pass
    stop.set()
    feeder.join(30)
    kept = wh.count("A")
    assert 0 < kept < len(sent)
    oracle = Oracle()
    for b in sent[-kept:]:  # the clear cut the arrivals once: what follows it is kept
        oracle.put(b)
    check(wh, oracle)
    wh.close()


# -- reopening ---------------------------------------------------------------------------------


def test_reopen_restores_metrics_from_the_store(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    oracle = Oracle()
    with Warehouse(db, flush_interval=None, window=2) as wh:
        for m in range(40):
            for s in SYMBOLS:
                b = bar(
                    s, m, low=10.0 + (m * 5) % 13, volume=float(m % 6), vwap=None if m % 2 else 12.0
                )
                wh.append(*b)
                oracle.put(b)
    with Warehouse(db, flush_interval=None, window=2) as wh:
        check(wh, oracle)
        fix = bar("B", 7, low=9.0)  # a correction of a bar the reopened window does not hold
        wh.append(*fix)
        oracle.put(fix)
        check(wh, oracle)
    with Warehouse(db, read_only=True) as wh:
        check(wh, oracle)


def test_journal_replay_restores_metrics_with_its_corrections(
    tmp_path: Path, abandon: Callable[[Warehouse], None]
) -> None:
    db = tmp_path / "wh.duckdb"
    oracle = Oracle()
    wh = Warehouse(db, journal=True, flush_interval=None, window=2)
    first = [bar(s, m, low=10.0 + m % 5, volume=10.0) for s in SYMBOLS for m in range(30)]
    wh.extend(first)
    wh.flush()
    later = [
        bar("A", 30),
        bar("A", 0, low=40.0, volume=1.0),
        bar("B", 3, low=1.0),
        bar("C", 29, volume=0.0),
    ]
    for b in later:
        wh.append(*b)
    for b in [*first, *later]:
        oracle.put(b)
    abandon(wh)
    with Warehouse(db, journal=True, flush_interval=None, window=2) as again:
        assert again.recovery is not None
        check(again, oracle)


# -- any stream ---------------------------------------------------------------------------------



@st.composite
def bars(draw: st.DrawFn, symbols: list[str] = SYMBOLS) -> Bar:
    low = draw(st.one_of(st.floats(0.01, 1e4), st.floats(-100.0, 100.0)))
    spread = draw(st.floats(0.0, 50.0))
    return Bar(
        draw(st.sampled_from(symbols)),
        T0 + draw(st.integers(0, MINUTES - 1)) * MINUTE,
        low + draw(st.floats(0.0, 1.0)) * spread,
        low + spread,
        low,
        low + draw(st.floats(0.0, 1.0)) * spread,
        draw(st.one_of(st.just(0.0), st.integers(0, 10**6).map(float), st.floats(0.0, 1e6))),
        draw(st.none() | st.floats(0.01, 1e4)),
    )


@st.composite
def runs(draw: st.DrawFn) -> list[Bar]:
    """A symbol's run of consecutive minutes (fills windows, so old bars leave memory)."""
    symbol = draw(st.sampled_from(SYMBOLS))
    start = draw(st.integers(0, MINUTES - 1))
    length = draw(st.integers(1, MINUTES - start))
    return [
        Bar(
            symbol,
            T0 + (start + k) * MINUTE,
            10.0,
            10.0 + (k % 7),
            9.0 - (k % 3),
            9.5,
            float(k % 5),
            None,
        )
        for k in range(length)
    ]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), bars()),
        st.tuples(st.just("extend"), st.lists(bars(), max_size=12)),
        st.tuples(st.just("extend"), runs()),
        st.tuples(st.just("appends"), runs()),
        st.tuples(st.just("flush"), st.none()),
        st.tuples(st.just("check"), st.none()),
    ),
    max_size=30,
)


def run(wh: Warehouse, oracle: Oracle, ops: list[tuple[str, Any]]) -> None:
    for op, arg in ops:
        if op == "append":
            wh.append(*arg)
            oracle.put(arg)
        elif op == "appends":
            for b in arg:
                wh.append(*b)
                oracle.put(b)
        elif op == "extend":
            wh.extend(arg)
            for b in arg:
                oracle.put(b)
        elif op == "flush":
            wh.flush()
        else:
            check(wh, oracle)


@given(ops=operations, window=st.sampled_from([1, 3, 64]))
def test_any_stream_keeps_metrics_equal_to_sql_and_oracle(
    ops: list[tuple[str, Any]], window: int
) -> None:
    oracle = Oracle()
    with Warehouse(":memory:", flush_interval=None, window=window) as wh:
        run(wh, oracle, ops)
        check(wh, oracle)
        wh.flush()
        check(wh, oracle)


@given(
    before=operations,
    unflushed=operations,
    after=operations,
    journal=st.booleans(),
    window=st.sampled_from([1, 4]),
)
def test_any_stream_keeps_metrics_across_reopen_and_journal_replay(
    before: list[tuple[str, Any]],
    unflushed: list[tuple[str, Any]],
    after: list[tuple[str, Any]],
    journal: bool,
    window: int,
    abandon: Callable[[Warehouse], None],
) -> None:
    oracle = Oracle()
    options: dict[str, Any] = {"flush_interval": None, "window": window, "journal": journal}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "wh.duckdb"
        wh = Warehouse(db, **options)
        run(wh, oracle, before)
        wh.flush()
        # With the journal, the last bars reach the file only by replay.
        run(wh, oracle, [op for op in unflushed if op[0] != "flush"])
        if journal:
            abandon(wh)
        else:
            wh.close()
        with Warehouse(db, **options) as again:
            check(again, oracle)
            run(again, oracle, after)
            check(again, oracle)


@given(stream=st.lists(bars(), max_size=80), cut=st.integers(0, 80))
def test_single_appends_and_one_batch_give_the_same_metrics(stream: list[Bar], cut: int) -> None:
    oracle = Oracle()
    for b in stream:
        oracle.put(b)
    with (
        Warehouse(":memory:", flush_interval=None, window=2) as one,
        Warehouse(":memory:", flush_interval=None, window=2) as many,
    ):
        for b in stream:
            one.append(*b)
        many.extend(stream[:cut])
        many.flush()
        many.extend(
            pa.Table.from_pylist(
                [b._asdict() for b in stream[cut:]],
                schema=one.sql("SELECT * EXCLUDE (origin) FROM bars").schema
            )
        )
        check(one, oracle)
        check(many, oracle)


# -- readers racing a writer -----------------------------------------------------------------


def test_readers_never_see_a_half_updated_record(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb", flush_rows=5_000, flush_interval=0.002, window=4)
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        last_count = {s: 0 for s in SYMBOLS}
        while not stop.is_set():
            for s in SYMBOLS:
                m = wh.metrics(s)
                if m is None:
                    continue
                reads[0] += 1
                if m.bar_count < last_count[s]:
                    problems.append(f"{s}: bar_count went back {last_count[s]} -> {m}")
                last_count[s] = m.bar_count
                # The bar of minute k has low k, high k + 1, close k + 0.5 and volume 1, and
                # minutes arrive in order from 0: a record made of one set of bars satisfies
                # these exactly, a half-updated one would not.
                first, last = (m.first_ts - T0) // MINUTE, (m.last_ts - T0) // MINUTE
                if not (
                    m.low <= m.high
                    and first <= last
                    and m.bar_count == last + 1
                    and m.low == first == 0
                    and m.high == last + 1
                    and m.close == last + 0.5
                    and m.volume == m.bar_count
                ):
                    problems.append(f"{s}: inconsistent {m}")
            frame = wh.metrics_frame()
            if not (frame["low"] <= frame["high"]).all():
                problems.append("frame: low above high")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for k in range(6_000):
            for s in SYMBOLS:
                low = float(k)
                if k % 500 == 307:
                    # A batch of corrections (the same values again) now and then: of bars the
                    # window holds (subtracted), and of one it does not (stale: readers
                    # recompute it from the store, racing the writer).
                    wh.extend(
                        [
                            Bar(
                                s,
                                T0 + j * MINUTE,
                                j + 0.5,
                                j + 1.0,
                                float(j),
                                j + 0.5,
                                1.0,
                                j + 0.5,
                            )
                            for j in (k - 300, k - 3, k - 1)
                        ]
                    )
                wh.append(s, T0 + k * MINUTE, low + 0.5, low + 1.0, low, low + 0.5, 1.0, low + 0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert problems == []
    assert reads[0] > 0
    for s in SYMBOLS:
        m = wh.metrics(s)
        assert m is not None
        assert m.bar_count == 6_000
    wh.close()


def test_restore_without_totals_leaves_metrics_to_be_recomputed() -> None:
    buffer = AppendBuffer(window=2)
    table = pa.Table.from_pylist(
        [bar("A", m)._asdict() for m in range(5)], schema=AppendBuffer().snapshot()[0].schema
    )
    buffer.restore(table.select(["symbol", "ts"]), table)
    assert buffer.hot.stale_symbols(["A"]) == ["A"]  # unknown, never silently empty
    with pytest.raises(WarehouseError, match="no store"):
        buffer.metrics("A")
