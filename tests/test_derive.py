"""Derived bars: session-anchored N-minute bars, hot (`latest_derived`, `last_n_derived`) and in
SQL (`resample_bars`), equal to each other and to Polars' `group_by_dynamic` offset to the open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import polars.testing as plt
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
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
            pl.col("trade_count").sum().cast(pl.Int64),
            pl.len().alias("bars"),
        )
        .with_columns(
            pl.when(pl.col("trade_count") == 0)
            .then(None)
            .otherwise(pl.col("trade_count"))
            .alias("trade_count")
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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
