"""Derived bars: session-anchored N-minute bars, hot (`latest_derived`, `last_n_derived`) and in
SQL (`resample_bars`), equal to each other and to Polars' `group_by_dynamic` offset to the open.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import polars.testing as plt
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from warehouse import SessionError, Warehouse
from warehouse.derive import MINUTE, DerivedBar, interval_minutes
from warehouse.sample import generate_session

FULL_DAY_EST = date(2025, 11, 3)  # the first session after the switch to EST: opens 14:30Z
FULL_DAY_EDT = date(2025, 10, 31)  # the last session in EDT: opens 13:30Z
EARLY_CLOSE = date(2025, 11, 28)  # 13:00 New York close: 18:00Z, 210 minutes
DAYS = {FULL_DAY_EST: (14, 390), FULL_DAY_EDT: (13, 390), EARLY_CLOSE: (14, 210)}
COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"]
TYPICAL = (pl.col("high") + pl.col("low") + pl.col("close")) / 3


def session_bars(day: date, symbols: int = 3, seed: int = 3) -> pa.Table:
    """A whole session of bars of ``day``, a few missing, some without vwap or trade count."""
    hour, minutes = DAYS[day]
    table = generate_session(
        symbols,
        minutes,
        start=datetime.combine(day, datetime.min.time().replace(hour=hour, minute=30), tzinfo=UTC),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    keep = rng.random(table.num_rows) > 0.1
    table = table.filter(pa.array(keep))
    for column in ("vwap", "trade_count"):
        values = table.column(column).to_pylist()
        nulls = rng.random(len(values)) < 0.2
        index = table.schema.get_field_index(column)
        table = table.set_column(
            index,
            column,
            pa.array(
                [None if gone else v for v, gone in zip(values, nulls, strict=True)],
                table.schema.field(column).type,
            ),
        )
    return table


def oracle(frame: pl.DataFrame, open_: datetime, minutes: int) -> pl.DataFrame:
    """Polars' resample: windows of ``minutes`` offset to the session open, per symbol."""
    every = minutes * MINUTE
    offset = int(open_.timestamp() * 1_000_000) % every
    return (
        frame.sort("symbol", "ts")
        .group_by_dynamic(
            "ts",
            every=f"{minutes}m",
            offset=f"{offset}us",
            group_by="symbol",
            closed="left",
            label="left",
        )
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.when(pl.col("volume").sum() != 0)
            .then(
                (pl.col("vwap").fill_null(TYPICAL) * pl.col("volume")).sum()
                / pl.col("volume").sum()
            )
            .alias("vwap"),
            # The sum of the counts given; null if none was (a sum of zeros is 0).
            pl.when(pl.col("trade_count").count() > 0)
            .then(pl.col("trade_count").sum())
            .cast(pl.Int64)
            .alias("trade_count"),
            pl.len().alias("bars"),
        )
        .sort("symbol", "ts")
    )


def derived_frame(bars: list[DerivedBar]) -> pl.DataFrame:
    """Derived bars as a frame with `resample_bars`' columns and types."""
    return pl.DataFrame(
        [
            (b.symbol, b.time, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count)
            for b in bars
        ],
        schema={
            "symbol": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
            "vwap": pl.Float64,
            "trade_count": pl.Int64,
        },
        orient="row",
    )


def all_derived(wh: Warehouse, minutes: int) -> pl.DataFrame:
    out: list[DerivedBar] = []
    for symbol in wh.symbols():
        out.extend(wh.last_n_derived(symbol, 10_000, f"{minutes}m"))
    return derived_frame(out)


def sql_resample(wh: Warehouse, minutes: int) -> pl.DataFrame:
    got = pl.from_arrow(wh.query("resample_bars", wh.resample_params(minutes)))
    assert isinstance(got, pl.DataFrame)
    return got


@pytest.fixture
def session_wh() -> Iterator[Warehouse]:
    """An in-memory warehouse with a small window (derived reads reach the store too)."""
    with Warehouse(":memory:", flush_interval=None, window=8) as wh:
        yield wh


# -- intervals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "minutes"), [(5, 5), ("5m", 5), ("15min", 15), ("1h", 60), (" 30M ", 30)]
)
def test_interval_minutes_reads_ints_and_text(interval: int | str, minutes: int) -> None:
    assert interval_minutes(interval) == minutes


@pytest.mark.parametrize("interval", [0, -5, "5s", "m", "", 5.0, True])
def test_interval_minutes_rejects_what_is_not_whole_minutes(interval: object) -> None:
    with pytest.raises(ValueError, match="interval"):
        interval_minutes(interval)  # type: ignore[arg-type]


# -- SQL vs the oracle, and the hot reads vs SQL ------------------------------------------


@pytest.mark.parametrize("day", list(DAYS), ids=str)
@pytest.mark.parametrize("minutes", [5, 15, 30, 60])
def test_derived_bars_equal_sql_resample_equal_polars_oracle(
    session_wh: Warehouse, day: date, minutes: int
) -> None:
    wh = session_wh
    session = wh.start_session(day)
    table = session_bars(day)
    half = table.num_rows // 2
    wh.extend(table.slice(0, half))
    wh.flush()
    for row in table.slice(half).to_pylist():
        wh.append(**row)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    expected = oracle(frame, session.open_time, minutes)
    got = sql_resample(wh, minutes)
    plt.assert_frame_equal(got, expected.select(COLUMNS), rel_tol=1e-9)
    plt.assert_frame_equal(all_derived(wh, minutes), got, rel_tol=1e-9)
    starts = got["ts"].unique().sort()
    assert starts[0] == session.open_time
    # Every bucket starts a whole number of intervals after the open.
    offsets = (starts - session.open_time).dt.total_microseconds()
    assert (offsets % (minutes * MINUTE) == 0).all()


def test_first_hourly_bar_runs_from_the_open_not_the_hour(session_wh: Warehouse) -> None:
    session_wh.start_session(FULL_DAY_EDT)
    session_wh.extend(session_bars(FULL_DAY_EDT))
    first = session_wh.last_n_derived(session_wh.symbols()[0], 7, "1h")[0]
    assert first.time == datetime(2025, 10, 31, 13, 30, tzinfo=UTC)  # 09:30 New York
    assert first.end - first.ts == 60 * MINUTE


def test_last_bar_of_an_early_close_ends_at_the_close(session_wh: Warehouse) -> None:
    session = session_wh.start_session(EARLY_CLOSE)
    table = generate_session(2, 210, start=session.open_time)
    session_wh.extend(table)
    for symbol in session_wh.symbols():
        bars = session_wh.last_n_derived(symbol, 100, "1h")
        assert [b.time.hour for b in bars] == [14, 15, 16, 17]
        assert bars[-1].end == session.close  # 17:30Z to 18:00Z: cut at the close
        assert bars[-1].bar_count == 30
        assert not bars[-1].partial
        assert session_wh.latest_derived(symbol, "1h") == bars[-1]


# -- partial --------------------------------------------------------------------------------


def test_derived_bar_is_partial_until_its_last_minute_arrives(session_wh: Warehouse) -> None:
    session = session_wh.start_session(FULL_DAY_EST)
    t0 = session.open
    for minute in range(4):
        session_wh.append("ES", t0 + minute * MINUTE, 10, 11, 9, 10.5, 100)
        latest = session_wh.latest_derived("ES", "5m")
        assert latest is not None
        assert (latest.ts, latest.bar_count, latest.partial) == (t0, minute + 1, True)
    session_wh.append("ES", t0 + 4 * MINUTE, 10, 12, 9, 11, 100)
    latest = session_wh.latest_derived("ES", "5m")
    assert latest is not None
    assert (latest.bar_count, latest.partial, latest.high, latest.close) == (5, False, 12, 11)
    session_wh.append("ES", t0 + 6 * MINUTE, 10, 11, 9, 10.5, 100)
    done, forming = session_wh.last_n_derived("ES", 2, "5m")
    assert not done.partial
    assert forming.partial
    assert forming.ts == t0 + 5 * MINUTE


# -- late bars, corrections, batches ------------------------------------------------------


def test_late_bar_and_correction_update_the_bucket_they_fall_in(session_wh: Warehouse) -> None:
    session = session_wh.start_session(FULL_DAY_EST)
    t0 = session.open
    for minute in (0, 1, 3, 4, 5):
        session_wh.append("ES", t0 + minute * MINUTE, 10, 11, 9, 10, 100)
    session_wh.append("ES", t0 + 2 * MINUTE, 10, 20, 9, 10, 50)  # late
    session_wh.append("ES", t0 + 4 * MINUTE, 10, 11, 1, 10, 7)  # correction
    first = session_wh.last_n_derived("ES", 2, "5m")[0]
    assert (first.bar_count, first.high, first.low, first.volume) == (5, 20, 1, 357)


def test_derived_bars_without_open_session_raise_session_error(wh: Warehouse) -> None:
    wh.append("ES", "2025-11-21T14:30:00Z", 10, 11, 9, 10, 100)
    with pytest.raises(SessionError, match=r"open session.*start_session"):
        wh.latest_derived("ES", "5m")
    with pytest.raises(SessionError, match=r"open session"):
        wh.last_n_derived("ES", 3, "5m")
    assert wh.resample_params("5m") == {"minutes": 5, "open": None}


def test_unknown_symbol_has_no_derived_bars(session_wh: Warehouse) -> None:
    session_wh.start_session(FULL_DAY_EST)
    assert session_wh.latest_derived("NOPE", "5m") is None
    assert session_wh.last_n_derived("NOPE", 3, "5m") == []


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.integers(0, 389),  # minute of the session
            st.floats(1, 100),  # price
            st.floats(0, 1_000),  # volume
            st.booleans(),  # with vwap
        ),
        min_size=1,
        max_size=120,
    ),
    st.sampled_from([5, 15, 60]),
    st.integers(0, 120),
    st.sampled_from([4, 64]),  # the window: short of a bucket (read from the store), or not
)
def test_stream_with_late_bars_and_corrections_matches_sql_and_oracle(
    stream: list[tuple[str, int, float, float, bool]], minutes: int, flush_at: int, window: int
) -> None:
    with Warehouse(":memory:", flush_interval=None, window=window) as wh:
        session = wh.start_session(FULL_DAY_EST)
        rows: dict[tuple[str, int], dict[str, object]] = {}
        for i, (symbol, minute, price, volume, with_vwap) in enumerate(stream):
            if i == flush_at:
                wh.flush()
            bar = {
                "symbol": symbol,
                "ts": session.open + minute * MINUTE,
                "open": price,
                "high": price + 1,
                "low": price - 1,
                "close": price + 0.5,
                "volume": volume,
                "vwap": price + 0.25 if with_vwap else None,
                "trade_count": None,
            }
            wh.append(**bar)
            rows[(symbol, minute)] = bar
            latest = wh.latest_derived(symbol, minutes)
            assert latest is not None
            newest = wh.latest(symbol)
            assert newest is not None
            assert latest.ts <= newest.ts < latest.end
        frame = pl.DataFrame(
            list(rows.values()),
            schema_overrides={"ts": pl.Int64, "trade_count": pl.Int64, "vwap": pl.Float64},
        ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
        got = sql_resample(wh, minutes)
        expected = oracle(frame, session.open_time, minutes).select(COLUMNS)
        plt.assert_frame_equal(got, expected, rel_tol=1e-9, abs_tol=1e-6)
        plt.assert_frame_equal(all_derived(wh, minutes), got, rel_tol=1e-9, abs_tol=1e-6)
        for symbol in wh.symbols():
            latest = wh.latest_derived(symbol, minutes)
            assert latest is not None
            assert not got.filter(symbol=symbol).is_empty()
            assert latest == wh.last_n_derived(symbol, 1, minutes)[0]


def until_read(reads: Callable[[], int]) -> None:
    """Hold the writer until the reader thread has read once: the race runs whatever the load."""
    deadline = time.monotonic() + 30
    while not reads() and time.monotonic() < deadline:
        time.sleep(0.001)


def test_derived_reads_from_another_thread_see_whole_buckets(session_wh: Warehouse) -> None:
    session = session_wh.start_session(FULL_DAY_EST)
    t0, step = session.open, 5 * MINUTE
    seen: list[DerivedBar] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            found = session_wh.latest_derived("ES", "5m")
            if found is not None:
                seen.append(found)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for minute in range(390):
            session_wh.append("ES", t0 + minute * MINUTE, 10, 11, 9, 10, 1)
            if minute % 7 == 6:  # a correction of the bar before
                session_wh.append("ES", t0 + (minute - 1) * MINUTE, 10, 11, 9, 10, 1)
            if minute % 3 == 0:
                time.sleep(0)  # let the reader in between appends
            if minute == 100:
                until_read(lambda: len(seen))
    finally:
        done.set()
        reader.join()
    assert seen
    for bar in seen:
        assert (bar.ts - t0) % step == 0
        assert bar.end == bar.ts + step
        # Every bar of its bucket held at the read, each of volume 1: whole, never torn.
        assert bar.volume == bar.bar_count
        assert 1 <= bar.bar_count <= 5
        assert bar.partial == (bar.bar_count < 5)
    last = session_wh.latest_derived("ES", "5m")
    assert last is not None
    assert (last.ts, last.bar_count, last.partial) == (t0 + 385 * MINUTE, 5, False)


# -- declared intervals, kept as bars arrive (issue 9) --------------------------------------

#: Kept incrementally by the warehouses under test; 30 minutes is read on demand by both.
DECLARED = ("5m", "15m", "1h")
READ = ("5m", "15m", "1h", 30, 5, "15min")
#: Last-N sizes read: within a cache, past it (extended from the window or the store), and
#: past the session (every bar).
LAST_N = (2, 3, 7, 40, 500)


@pytest.mark.parametrize(
    ("derived", "match"),
    [
        (("5m", "5min"), "twice"),
        (("1m", "2m", "3m", "4m", "5m"), "at most 4"),
        (("5s",), "interval"),
        ((0,), "at least one minute"),
    ],
)
def test_derived_option_rejects_bad_intervals(derived: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Warehouse(":memory:", flush_interval=None, derived=derived)  # type: ignore[arg-type]


@pytest.mark.parametrize("derived", ["5m", 5, (), ("1h", 5)])
def test_any_declared_intervals_give_the_bars_computed_on_read(derived: object) -> None:
    with Warehouse(":memory:", flush_interval=None, derived=derived) as wh:  # type: ignore[arg-type]
        session = wh.start_session(FULL_DAY_EST)
        for minute in range(17):
            wh.append("ES", session.open + minute * MINUTE, 10, 11 + minute, 9, 10.5, 100,
                      10.2 if minute % 2 else None, minute if minute % 3 else None)
            for interval in READ:
                assert wh.latest_derived("ES", interval) == wh._deriver.compute_latest(
                    "ES", interval)


def test_declared_interval_spelt_otherwise_or_not_an_interval(session_wh: Warehouse) -> None:
    session = session_wh.start_session(FULL_DAY_EST)
    session_wh.append("ES", session.open, 10, 11, 9, 10.5, 100)
    first = session_wh.latest_derived("ES", "5m")
    assert first is not None
    assert session_wh.latest_derived("ES", "5m") is first  # cached until the bucket changes
    assert session_wh.latest_derived("ES", 5) == first
    assert session_wh.latest_derived("ES", " 5MIN ") == first
    for bad in (5.0, True, "5s"):
        with pytest.raises(ValueError, match="interval"):
            session_wh.latest_derived("ES", bad)  # type: ignore[arg-type]
    session_wh.append("ES", session.open + MINUTE, 10, 12, 9, 10.5, 100)
    second = session_wh.latest_derived("ES", "5m")
    assert second is not None
    assert (second.bar_count, second.high) == (2, 12)


def test_last_n_derived_takes_a_whole_number_of_bars_and_says_so(session_wh: Warehouse) -> None:
    session = session_wh.start_session(FULL_DAY_EST)
    for minute in range(12):
        session_wh.append("ES", session.open + minute * MINUTE, 10, 11, 9, 10.5, 100)
    for interval in ("5m", "7m"):  # declared (the compiled read first) or computed on read
        assert len(session_wh.last_n_derived("ES", np.int64(2), interval)) == 2
        for bad in (2.5, "5m", None, True, -1):
            with pytest.raises(ValueError, match=r"n must be a whole number of bars.*'5m'"):
                session_wh.last_n_derived("ES", bad, interval)  # type: ignore[arg-type]


def test_session_started_over_held_bars_anchors_them_to_its_open() -> None:
    with Warehouse(":memory:", flush_interval=None, window=4) as wh:
        open_ = int(datetime(2025, 11, 3, 14, 30, tzinfo=UTC).timestamp()) * 1_000_000
        for minute in range(3, 12):  # no session yet: bars of any time are taken
            wh.append("ES", open_ + minute * MINUTE, 10, 11 + minute, 9, 10.5, 100)
        with pytest.raises(SessionError):
            wh.latest_derived("ES", "5m")
        wh.start_session(FULL_DAY_EST)
        latest = wh.latest_derived("ES", "15m")
        assert latest is not None
        assert (latest.ts, latest.bar_count, latest.high) == (open_, 9, 22)
        wh.append("ES", open_ + 12 * MINUTE, 10, 30, 9, 10.5, 100)
        assert wh.latest_derived("ES", "15m") == wh._deriver.compute_latest("ES", "15m")


@st.composite
def bar_rows(draw: st.DrawFn, minutes: int) -> dict[str, Any]:
    """One bar of the session as a row: symbol, minute, prices, volume, maybe vwap and count."""
    low = draw(st.floats(1.0, 100.0))
    spread = draw(st.floats(0.0, 5.0))
    return {
        "symbol": draw(st.sampled_from(["A", "B"])),
        "minute": draw(st.integers(0, minutes - 1)),
        "open": low + draw(st.floats(0.0, 1.0)) * spread,
        "high": low + spread,
        "low": low,
        "close": low + draw(st.floats(0.0, 1.0)) * spread,
        "volume": draw(st.sampled_from([0.0, 1.0, 250.0]) | st.floats(0.0, 1e4)),
        "vwap": draw(st.none() | st.floats(1.0, 100.0)),
        "trade_count": draw(st.none() | st.integers(0, 500)),
    }


@st.composite
def streams(draw: st.DrawFn) -> tuple[date, list[tuple[str, Any]]]:
    """A session day and what happens to it: in-order runs, late bars and repeats (corrections),
    batches, gap fills, flushes, checks and last-N reads (which make and keep their caches)."""
    day = draw(st.sampled_from(list(DAYS)))
    minutes = DAYS[day][1]
    row = bar_rows(minutes)

    @st.composite
    def run(draw: st.DrawFn) -> list[dict[str, Any]]:  # consecutive minutes of one symbol
        first = draw(row)
        length = draw(st.integers(1, 40))
        out = []
        for k in range(min(length, minutes - first["minute"])):
            bar = dict(first, minute=first["minute"] + k)
            bar["close"] = min(bar["high"], bar["low"] + (k % 4))
            bar["volume"] = float(k % 5)
            out.append(bar)
        return out

    ops = draw(st.lists(
        st.one_of(
            st.tuples(st.just("append"), row),
            st.tuples(st.just("appends"), run()),
            st.tuples(st.just("extend"), st.lists(row, min_size=1, max_size=10)),
            st.tuples(st.just("extend"), run()),
            st.tuples(st.just("fill"), st.lists(row, min_size=1, max_size=10)),
            st.tuples(st.just("fill"), run()),
            st.tuples(st.just("flush"), st.none()),
            st.tuples(st.just("check"), st.none()),
            st.tuples(st.just("last_n"), st.sampled_from(LAST_N)),
        ),
        min_size=1,
        max_size=25,
    ))
    return day, ops


def as_row(bar: dict[str, Any], open_: int) -> dict[str, Any]:
    """A drawn bar as a row of the session opening at ``open_``: its minute made a ts."""
    row = {k: v for k, v in bar.items() if k != "minute"}
    row["ts"] = open_ + bar["minute"] * MINUTE
    return row


def feed(whs: list[Warehouse], rows: dict[tuple[str, int], dict[str, Any]],
         ops: list[tuple[str, Any]]) -> None:
    """Apply ``ops`` to every warehouse in ``whs`` (``rows`` keeps the last bar of each key)."""
    for op, arg in ops:
        if op == "check":
            check_declared(whs[0], whs[1])
            continue
        if op == "last_n":
            check_last_n(whs[0], whs[1], (arg,))
            continue
        for wh in whs:
            open_ = wh.session.open if wh.session is not None else 0
            bars = [arg] if op == "append" else arg
            as_bars = [as_row(b, open_) for b in bars or []]
            if op in ("append", "appends"):
                for b in as_bars:
                    wh.append(**b)
            elif op == "extend":
                wh.extend(as_bars)
            elif op == "fill":
                wh.fill(as_bars)
            else:
                wh.flush()
        if op == "fill":  # only minutes no bar holds; of a key given twice, the last
            fresh = {(b["symbol"], b["minute"]): b for b in arg}
            rows.update((key, b) for key, b in fresh.items() if key not in rows)
        elif op != "flush":
            for b in [arg] if op == "append" else arg:
                rows[(b["symbol"], b["minute"])] = b


def check_declared(hot: Warehouse, cold: Warehouse) -> None:
    """Every read interval of every symbol: the incremental path equals compute-on-read."""
    assert hot.symbols() == cold.symbols()
    for symbol in hot.symbols():
        for interval in READ:
            got = hot.latest_derived(symbol, interval)
            assert got == cold.latest_derived(symbol, interval), (symbol, interval)
            assert got == hot._deriver.compute_latest(symbol, interval)
            assert got is not None
            assert hot.last_n_derived(symbol, 1, interval) == [got]
    check_last_n(hot, cold, LAST_N)


def check_last_n(hot: Warehouse, cold: Warehouse, sizes: tuple[int, ...]) -> None:
    """Every read interval of every symbol: last-N from the caches equals compute-on-read."""
    for symbol in hot.symbols():
        for interval in READ:
            for n in sizes:
                got = hot.last_n_derived(symbol, n, interval)
                assert got == cold.last_n_derived(symbol, n, interval), (symbol, interval, n)
                assert got == hot._deriver.compute_last_n(symbol, n, interval)
                assert len(got) <= n
                assert [b.partial for b in got[:-1]] == [False] * (len(got) - 1)


def check_against_sql_and_oracle(
    wh: Warehouse, rows: dict[tuple[str, int], dict[str, Any]]
) -> None:
    session = wh.session
    assert session is not None
    if not rows:
        return
    frame = pl.DataFrame(
        [as_row(b, session.open) for b in rows.values()],
        schema_overrides={"ts": pl.Int64, "trade_count": pl.Int64, "vwap": pl.Float64},
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    for minutes in (5, 15, 60):
        got = sql_resample(wh, minutes)
        expected = oracle(frame, session.open_time, minutes).select(COLUMNS)
        plt.assert_frame_equal(got, expected, rel_tol=1e-9, abs_tol=1e-6)
        # The hot newest bar of each symbol is its last resample_bars row.
        newest = derived_frame(
            [bar for s in wh.symbols() if (bar := wh.latest_derived(s, f"{minutes}m"))]
        )
        plt.assert_frame_equal(
            newest, got.group_by("symbol", maintain_order=True).last(), rel_tol=1e-9,
            abs_tol=1e-6,
        )


@given(stream=streams(), window=st.sampled_from([3, 64]))
def test_incremental_derived_bars_equal_computed_on_read_sql_and_oracle(
    stream: tuple[date, list[tuple[str, Any]]], window: int
) -> None:
    day, ops = stream
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    with (
        Warehouse(":memory:", flush_interval=None, window=window, derived=DECLARED) as hot,
        Warehouse(":memory:", flush_interval=None, window=window, derived=()) as cold,
    ):
        hot.start_session(day)
        cold.start_session(day)
        feed([hot, cold], rows, ops)
        check_declared(hot, cold)
        check_against_sql_and_oracle(hot, rows)
        for symbol in hot.symbols():
            newest = hot.latest(symbol)
            latest = hot.latest_derived(symbol, "5m")
            assert newest is not None
            assert latest is not None
            assert latest.ts <= newest.ts < latest.end
            assert latest.partial == (newest.ts + MINUTE < latest.end)


@given(stream=streams(), cut=st.integers(0, 25), journal=st.booleans())
def test_incremental_derived_bars_survive_reopen_and_journal_replay(
    stream: tuple[date, list[tuple[str, Any]]],
    cut: int,
    journal: bool,
    abandon: Callable[[Warehouse], None],
) -> None:
    day, stream_ops = stream
    ops = [op for op in stream_ops[:cut] if op[0] != "check"]
    later = [op for op in stream_ops[cut:] if op[0] != "check"]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    options: dict[str, Any] = {"flush_interval": None, "window": 4, "derived": DECLARED}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "wh.duckdb"
        first = Warehouse(db, journal=journal, **options)
        first.start_session(day)
        with Warehouse(":memory:", flush_interval=None, window=4, derived=()) as cold:
            cold.start_session(day)
            feed([first, cold], rows, ops)
            for symbol in first.symbols():  # built and cached before the kill
                first.latest_derived(symbol, "5m")
            if journal:
                abandon(first)  # as a kill -9: the unflushed bars are in the journal only
            else:
                first.close()
            with Warehouse(db, journal=journal, **options) as again:
                check_declared(again, cold)
                # Bars of the same minutes, as the other stream has them, after the reopen.
                feed([again, cold], rows, later)
                check_declared(again, cold)
                check_against_sql_and_oracle(again, rows)


def test_reader_racing_appends_never_sees_a_torn_derived_bar(session_wh: Warehouse) -> None:
    session = session_wh.start_session(FULL_DAY_EST)
    t0 = session.open
    problems: list[str] = []
    reads = [0]
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for interval, size in (("5m", 5), ("15m", 15)):
                for symbol in ("ES", "NQ"):
                    bar = session_wh.latest_derived(symbol, interval)
                    if bar is None:
                        continue
                    reads[0] += 1
                    # Each bar of the stream has volume 1 and trade count 1, and its high and
                    # low are the extremes of its open and close: a whole bucket says so too.
                    if not (
                        bar.high >= max(bar.open, bar.close)
                        and bar.low <= min(bar.open, bar.close)
                        and bar.volume == bar.bar_count == bar.trade_count
                        and 1 <= bar.bar_count <= size
                        and bar.vwap is not None
                        and bar.low <= bar.vwap <= bar.high
                        and (bar.ts - t0) % (size * MINUTE) == 0
                        and bar.partial == (bar.bar_count < size)
                    ):
                        problems.append(repr(bar))

    reader = threading.Thread(target=read)
    reader.start()
    rng = np.random.default_rng(5)
    try:
        for minute in range(390):
            for symbol in ("ES", "NQ"):
                o, c = rng.uniform(10, 20, 2)
                session_wh.append(symbol, t0 + minute * MINUTE, o, max(o, c), min(o, c), c, 1,
                                  None, 1)
                if minute % 7 == 6:  # a correction of the bar before: recomputes the bucket
                    o, c = rng.uniform(10, 20, 2)
                    session_wh.append(symbol, t0 + (minute - 1) * MINUTE, o, max(o, c),
                                      min(o, c), c, 1, None, 1)
            if minute % 50 == 49:  # a batch: the buckets go stale and are recomputed
                session_wh.extend([("ES", t0 + (minute - 2) * MINUTE, 15, 16, 14, 15, 1, None, 1)])
            if minute % 3 == 0:
                time.sleep(0)
            if minute == 100:
                until_read(lambda: reads[0])
    finally:
        done.set()
        reader.join()
    assert reads[0] > 0
    assert problems == []
    for symbol in ("ES", "NQ"):
        for interval in ("5m", "15m"):
            assert session_wh.latest_derived(symbol, interval) == (
                session_wh._deriver.compute_latest(symbol, interval))


def test_last_n_reader_racing_appends_never_sees_a_torn_or_out_of_order_list(
    session_wh: Warehouse,
) -> None:
    session = session_wh.start_session(FULL_DAY_EST)
    t0 = session.open
    problems: list[str] = []
    reads = [0]
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for interval, size, n in (("5m", 5, 6), ("15m", 15, 4), ("5m", 5, 30)):
                bars = session_wh.last_n_derived("ES", n, interval)
                if not bars:
                    continue
                reads[0] += 1
                step = size * MINUTE
                # Every minute has a bar of volume 1: the buckets follow each other, and each
                # finished one holds its every minute, whatever the corrections did.
                if not (
                    len(bars) <= n
                    and all(b.ts + step == c.ts for b, c in pairwise(bars))
                    and (bars[0].ts - t0) % step == 0
                    and all(b.volume == b.bar_count == size and not b.partial
                            for b in bars[:-1])
                    and bars[-1].volume == bars[-1].bar_count <= size
                    and bars[-1].partial == (bars[-1].bar_count < size)
                ):
                    problems.append(repr(bars))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for minute in range(390):
            session_wh.append("ES", t0 + minute * MINUTE, 10, 11, 9, 10, 1)
            if minute % 7 == 6:  # a correction in a finished bucket: drops the caches
                session_wh.append("ES", t0 + (minute - 6) * MINUTE, 10, 12, 9, 10, 1)
            if minute % 50 == 49:  # a batch correcting an older bar: so does it
                session_wh.extend([("ES", t0 + (minute - 20) * MINUTE, 10, 11, 8, 10, 1)])
            if minute % 3 == 0:
                time.sleep(0)
            if minute == 100:
                until_read(lambda: reads[0])
    finally:
        done.set()
        reader.join()
    assert reads[0] > 0
    assert problems == []
    for interval, n in (("5m", 6), ("15m", 4), ("5m", 30), ("5m", 100)):
        assert session_wh.last_n_derived("ES", n, interval) == (
            session_wh._deriver.compute_last_n("ES", n, interval))


def test_finished_bars_are_cached_only_for_symbols_read_and_extended_as_buckets_finish(
    session_wh: Warehouse,
) -> None:
    session = session_wh.start_session(FULL_DAY_EST)
    t0 = session.open
    for minute in range(12):
        for symbol in ("ES", "NQ", "YM"):
            session_wh.append(symbol, t0 + minute * MINUTE, 10, 11, 9, 10, 1)
    caches = session_wh._buffer.hot.finished_caches
    assert [len(c) for c in caches] == [0, 0]
    assert len(session_wh.last_n_derived("ES", 3, "5m")) == 3
    assert list(caches[0]) == ["ES"]
    assert caches[1] == {}
    made = caches[0]["ES"]
    for minute in range(12, 23):  # two more buckets finish: the cache is extended, not made anew
        session_wh.append("ES", t0 + minute * MINUTE, 10, 11, 9, 10, 1)
    bars = session_wh.last_n_derived("ES", 4, "5m")
    assert [b.ts for b in bars] == [t0 + k * 5 * MINUTE for k in range(1, 5)]
    assert caches[0]["ES"].lo == made.lo
    assert caches[0]["ES"].bars[: len(made.bars)] == made.bars
    session_wh.append("ES", t0 + 2 * MINUTE, 10, 30, 9, 10, 1)  # a correction: dropped
    assert session_wh.last_n_derived("ES", 5, "5m")[0].high == 30
    dropped = caches[0]["ES"]
    session_wh.extend([("ES", t0 + 7 * MINUTE, 10, 11, 2, 10, 1)])  # a batch: dropped too
    assert session_wh.last_n_derived("ES", 5, "5m") == (
        session_wh._deriver.compute_last_n("ES", 5, "5m"))
    assert session_wh.last_n_derived("ES", 5, "5m")[1].low == 2
    assert caches[0]["ES"].revision != dropped.revision
