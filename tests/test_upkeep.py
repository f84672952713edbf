"""Gap filling (issue 9, item 2): `Warehouse.fill`, the bars' origin, and the upkeep thread
against sources that fail, hang and answer with malformed bars, on real threads, a real
calendar and real DuckDB files (killed with -9 where durability is the question)."""

from __future__ import annotations

import itertools
import logging
import math
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from warehouse import Calendar, ClosedError, SessionError, Warehouse
from warehouse.calendar import MINUTE
from warehouse.sample import generate_sessions
from warehouse.schema import BAR_SCHEMA
from warehouse.upkeep import MAX_STUCK

XNYS = Calendar("XNYS", start=date(2025, 11, 1), end=date(2025, 12, 31))
DAY = date(2025, 11, 21)
OPEN = XNYS.window(DAY).open
WINDOW_CLOSE = XNYS.window(DAY).close
AFTER = datetime(2025, 11, 22, tzinfo=UTC)  # the session is over: every minute is due
FULL = generate_sessions(XNYS, DAY, 1, 6)[0]  # 6 symbols x 390 minutes
HOLES = {"AAPL": (60, 90), "MSFT": (0, 5), "NVDA": (385, 390)}  # [first, last) minute


def minute_of(table: pa.Table) -> pa.Array:
    return pc.divide(pc.subtract(table["ts"].cast(pa.int64()), OPEN), MINUTE)


def in_holes(table: pa.Table, holes: dict[str, tuple[int, int]] = HOLES) -> pa.Array:
    minute = minute_of(table)
    mask = pa.array([False] * table.num_rows)
    for symbol, (first, last) in holes.items():
        inside = pc.and_(pc.greater_equal(minute, first), pc.less(minute, last))
        mask = pc.or_(mask, pc.and_(pc.equal(table["symbol"], symbol), inside))
    return mask


def live_part() -> pa.Table:
    return FULL.filter(pc.invert(in_holes(FULL)))


def held_in_holes() -> int:
    return sum(last - first for first, last in HOLES.values())


def session(path: Path, **options: object) -> Warehouse:
    wh = Warehouse(path, flush_interval=None, calendar=XNYS, **options)
    if wh.session is None:
        wh.start_session(DAY)
    return wh


def by_symbol(symbol: str, start: datetime, end: datetime) -> pa.Table:
    """A source holding the whole session (more than it is asked for)."""
    return FULL.filter(pc.equal(FULL["symbol"], symbol))


def origins(wh: Warehouse) -> dict[str, int]:
    rows = wh.sql("SELECT origin, count(*) AS n FROM bars GROUP BY origin").to_pylist()
    return {row["origin"]: row["n"] for row in rows}


def assert_each_key_once(wh: Warehouse) -> None:
    row = wh.sql("SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS keys, "
                 "count(DISTINCT (symbol, date_trunc('minute', ts))) AS minutes "
                 "FROM bars").to_pylist()[0]
    assert row["n"] == row["keys"] == row["minutes"]


# -- fill --------------------------------------------------------------------------------------


def test_fill_adds_only_free_minutes_marks_them_filled_and_updates_every_read(tmp_path):
    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(live_part())
        before = wh.metrics("AAPL")
        assert wh.fill(FULL) == held_in_holes()  # every other minute is held: left out
        assert origins(wh) == {"live": FULL.num_rows - held_in_holes(), "filled": held_in_holes()}
        assert_each_key_once(wh)
        assert wh.count("AAPL") == 390
        assert [b.ts for b in wh.last_n("NVDA", 5)] == [OPEN + m * MINUTE for m in range(385, 390)]
        after = wh.metrics("AAPL")
        assert after.bar_count == before.bar_count + 30
        hole = FULL.filter(pc.and_(in_holes(FULL), pc.equal(FULL["symbol"], "AAPL")))
        assert after.volume == pytest.approx(before.volume + pc.sum(hole["volume"]).as_py())
        assert wh.quality(now=AFTER)["missing"].sum() == 0
        assert wh.fill(FULL) == 0  # nothing left to fill: nothing duplicated
        wh.flush()
        assert_each_key_once(wh)
        filled = wh.sql("SELECT symbol, count(*) AS n FROM bars WHERE origin = 'filled' "
                        "GROUP BY symbol ORDER BY symbol").to_pylist()
        assert filled == [{"symbol": "AAPL", "n": 30}, {"symbol": "MSFT", "n": 5},
                          {"symbol": "NVDA", "n": 5}]


@pytest.mark.parametrize("interval", [5, 15])
def test_filled_minutes_show_in_the_derived_bars_they_fall_in_as_sql_resamples_them(
    tmp_path, interval
):
    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(live_part())
        before = wh.last_n_derived("AAPL", 100, f"{interval}m")
        wh.fill(FULL)
        after = wh.last_n_derived("AAPL", 100, f"{interval}m")
        sql = pl.from_arrow(wh.query("resample_bars", wh.resample_params(interval)))
        sql = sql.filter(pl.col("symbol") == "AAPL").sort("ts")
        assert [(b.open, b.high, b.low, b.close, b.volume) for b in after] == list(
            sql.select("open", "high", "low", "close", "volume").iter_rows())
        assert sum(b.bar_count for b in after) == 390
        assert sum(b.bar_count for b in before) == 360
        latest = wh.latest_derived("NVDA", f"{interval}m")  # its last 5 minutes were filled
        assert latest.end == WINDOW_CLOSE
        assert not latest.partial


def test_fill_never_replaces_a_live_bar_within_its_minute(tmp_path):
    with session(tmp_path / "w.duckdb") as wh:
        wh.append("AAPL", OPEN + 10_000_000, 1.0, 2.0, 0.5, 1.5, 10.0)  # 09:30:10
        assert wh.fill([("AAPL", OPEN, 9.0, 9.0, 9.0, 9.0, 9.0),  # the same minute
                        ("AAPL", OPEN + MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0),
                        ("AAPL", OPEN + MINUTE + 5, 2.0, 2.0, 2.0, 2.0, 2.0)]) == 1  # first only
        rows = wh.sql("SELECT epoch_us(ts) AS ts, origin, volume FROM bars ORDER BY ts").to_pylist()
        assert rows == [{"ts": OPEN + 10_000_000, "origin": "live", "volume": 10.0},
                        {"ts": OPEN + MINUTE, "origin": "filled", "volume": 1.0}]


@pytest.mark.parametrize("flush_between", [False, True])
def test_a_live_bar_arriving_after_a_filled_one_wins(tmp_path, flush_between):
    with session(tmp_path / "w.duckdb") as wh:
        wh.append("AAPL", OPEN + 2 * MINUTE, 1.0, 2.0, 0.5, 1.5, 10.0)
        assert wh.fill([("AAPL", OPEN + MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0)]) == 1
        if flush_between:
            wh.flush()
        # Late, with the very values the filled bar has: still live, and once.
        wh.append("AAPL", OPEN + MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0)
        for _ in range(2):
            rows = wh.sql("SELECT epoch_us(ts) AS ts, origin FROM bars ORDER BY ts").to_pylist()
            assert rows == [{"ts": OPEN + MINUTE, "origin": "live"},
                            {"ts": OPEN + 2 * MINUTE, "origin": "live"}]
            wh.flush()
        assert wh.metrics("AAPL").volume == 11.0


def test_fill_refuses_bars_outside_the_session_and_on_closed_or_read_only_warehouses(tmp_path):
    path = tmp_path / "w.duckdb"
    with session(path) as wh:
        outside = [("AAPL", OPEN - MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0),
                   ("AAPL", OPEN, 1.0, 0.5, 1.0, 1.0, 1.0)]  # high < low
        result = wh.fill(outside, on_invalid="report")
        assert result.added == 0
        assert sorted(result.rejected["field"].to_pylist()) == ["high", "ts"]
        with pytest.raises(Exception, match=r"window|session"):
            wh.fill(outside[:1])
    with pytest.raises(ClosedError):
        wh.fill(FULL)
    with Warehouse(path, read_only=True) as reader, pytest.raises(Exception, match="read-only"):
        reader.fill(FULL)


def test_bars_read_back_with_their_origin_go_in_again_as_live_bars(tmp_path):
    """SQL over bars and the archive's day files hold origin: extend and replay read past it."""
    from warehouse.replay import read_bars, replay

    archive = tmp_path / "archive"
    with session(tmp_path / "w.duckdb", archive=archive) as wh:
        wh.extend(live_part())
        assert wh.fill(FULL) == held_in_holes()
        everything = wh.sql("SELECT * FROM bars")
        wh.end_session()
    with Warehouse(":memory:", flush_interval=None) as copy:
        assert copy.extend(everything) == FULL.num_rows
        assert copy.extend(everything.slice(0, 5).to_pylist()) == 5  # as dicts too
        assert origins(copy) == {"live": FULL.num_rows}
    again = tmp_path / "again"
    with Warehouse(tmp_path / "again.duckdb", flush_interval=None, calendar=XNYS,
                   archive=again) as wh:
        assert replay(wh, read_bars([archive])).bars == FULL.num_rows
    day = pq.read_table(again / f"date={DAY.isoformat()}" / "bars.parquet")
    assert day["origin"].unique().to_pylist() == ["live"]


FILL_THEN_DIE = """
import os, signal, sys
from datetime import date
import pyarrow.parquet as pq
from warehouse import Calendar, Warehouse
cal = Calendar("XNYS", start=date(2025, 11, 1), end=date(2025, 12, 31))
wh = Warehouse(sys.argv[1], flush_interval=None, calendar=cal, journal=True)
wh.start_session(date(2025, 11, 21))
wh.extend(pq.read_table(sys.argv[2]))
wh.flush()
print(wh.fill(pq.read_table(sys.argv[3])), flush=True)
{after}
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("late_live", [False, True])
def test_filled_bars_are_durable_when_fill_returns_and_a_journaled_live_bar_still_wins(
    tmp_path, late_live
):
    """kill -9 right after fill (and after a late live bar for a filled minute, journaled
    only): the reopened file holds each filled bar, filled, or the live one, live."""
    path = tmp_path / "w.duckdb"
    live, fills = tmp_path / "live.parquet", tmp_path / "fills.parquet"
    pq.write_table(live_part(), live)
    pq.write_table(FULL, fills)
    # The late live bar repeats the filled bar's values exactly: origin alone tells them apart.
    after = ("row = pq.read_table(sys.argv[3]).filter(__import__('pyarrow.compute').compute"
             ".equal(pq.read_table(sys.argv[3])['symbol'], 'MSFT')).slice(0, 1).to_pylist()[0]\n"
             "row['ts'] = int(row['ts'].timestamp() * 1e6)\n"
             "wh.append(**row)") if late_live else ""
    child = subprocess.run(
        [sys.executable, "-c", FILL_THEN_DIE.format(after=after), str(path), str(live),
         str(fills)], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split() == [str(held_in_holes())]
    with Warehouse(path, journal=True, flush_interval=None, calendar=XNYS) as wh:
        filled = held_in_holes() - (1 if late_live else 0)
        assert origins(wh) == {"live": FULL.num_rows - filled, "filled": filled}
        assert_each_key_once(wh)
        msft_first = wh.sql("SELECT origin FROM bars WHERE symbol = 'MSFT' ORDER BY ts LIMIT 1")
        assert msft_first["origin"].to_pylist() == ["live" if late_live else "filled"]


# -- the upkeep thread -------------------------------------------------------------------------


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_upkeep_fills_exactly_the_holes_then_the_session_is_complete(tmp_path):
    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(live_part())
        upkeep = wh.start_upkeep(by_symbol, interval=0.05, now=lambda: AFTER)
        wait_for(lambda: upkeep.stats.filled == held_in_holes())
        wh.stop_upkeep()
        assert not upkeep.running
        stats = upkeep.stats
        assert (stats.requests, stats.failures, stats.timeouts, stats.rejected) == (3, 0, 0, 0)
        assert stats.missing == 0
        assert wh.quality(now=AFTER)["quality"].to_list() == [100.0] * 6
        assert wh.query("gaps", wh.gaps_params(now=AFTER)).num_rows == 0
        keys = wh.sql("SELECT symbol, epoch_us(ts) AS ts FROM bars WHERE origin = 'filled' "
                      "ORDER BY ALL")
        expected = FULL.filter(in_holes(FULL)).select(["symbol", "ts"])
        expected = expected.set_column(1, "ts", expected["ts"].cast(pa.int64()))
        assert keys.to_pylist() == expected.sort_by([("symbol", "ascending"),
                                                     ("ts", "ascending")]).to_pylist()


def test_upkeep_fills_a_named_symbol_without_any_bar(tmp_path):
    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(FULL.filter(pc.not_equal(FULL["symbol"], "META")))
        upkeep = wh.start_upkeep(by_symbol, interval=0.05, symbols=["META"],
                                 now=lambda: AFTER)
        wait_for(lambda: upkeep.stats.filled == 390)
        wh.stop_upkeep()
        assert wh.count("META") == 390


def test_upkeep_retries_a_failing_source_with_growing_pauses_and_fills_once_it_answers(
    tmp_path, caplog
):
    asked: list[float] = []

    def flaky(symbol: str, start: datetime, end: datetime) -> pa.Table:
        asked.append(time.monotonic())
        if len(asked) <= 3:
            raise ConnectionError(f"feed down ({len(asked)})")
        return by_symbol(symbol, start, end)

    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(FULL.filter(pc.invert(in_holes(FULL, {"AAPL": (60, 90)}))))
        with caplog.at_level(logging.WARNING, logger="warehouse.upkeep"):
            upkeep = wh.start_upkeep(flaky, interval=0.02, retry_base=0.1, now=lambda: AFTER)
            wait_for(lambda: upkeep.stats.filled == 30)
            wh.stop_upkeep()
        assert upkeep.stats.failures == 3
        assert "feed down (3)" in upkeep.stats.last_error
        assert sum("feed down" in r.getMessage() for r in caplog.records) == 3
        pauses = [b - a for a, b in itertools.pairwise(asked)]
        assert pauses[0] >= 0.1
        assert pauses[1] >= 0.2
        assert pauses[2] >= 0.4
        assert origins(wh)["filled"] == 30


def test_upkeep_gives_up_on_a_hung_source_while_appends_go_on_and_stops_promptly(tmp_path):
    release = threading.Event()

    def hung(symbol: str, start: datetime, end: datetime) -> pa.Table:
        release.wait(30)
        return by_symbol(symbol, start, end)

    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(FULL.filter(pc.invert(in_holes(FULL, {"AAPL": (60, 90)}))))
        threads = threading.active_count()
        upkeep = wh.start_upkeep(hung, interval=0.02, timeout=0.2, retry_base=0.01,
                                 retry_max=0.01, now=lambda: AFTER)
        wait_for(lambda: upkeep.stats.timeouts >= MAX_STUCK)
        started = time.monotonic()
        for k in range(2000):  # ingestion is never held up by the source
            wh.append("LIVE", OPEN + k * MINUTE // 8, 1.0, 1.0, 1.0, 1.0, 1.0)
        assert wh.count("LIVE") == 2000
        assert time.monotonic() - started < 10  # the source hangs for 30 s
        assert upkeep.stats.requests == upkeep.stats.timeouts  # stuck: asks no more
        started = time.monotonic()
        wh.stop_upkeep()
        assert time.monotonic() - started < 10
        release.set()  # the stuck answers come back after the stop: nothing is added
        wait_for(lambda: threading.active_count() <= threads)  # every thread it left is done
        assert upkeep.stats.filled == 0
        assert origins(wh) == {"live": wh.count("LIVE") + FULL.num_rows - 30}
        assert "no answer in 0.2 s" in upkeep.stats.last_error


def test_upkeep_drops_malformed_and_foreign_rows_and_survives_answers_that_are_not_bars(
    tmp_path
):
    answers: list[object] = [
        "not bars at all",
        pa.table({"symbol": ["AAPL"], "price": [1.0]}),  # the wrong columns
        None,
    ]

    def bad(symbol: str, start: datetime, end: datetime) -> object:
        if answers:
            return answers.pop(0)
        good = by_symbol(symbol, start, end)
        crossed = good.slice(60, 5).set_column(3, "high", pa.array([0.0] * 5))  # high < low
        foreign = FULL.filter(pc.equal(FULL["symbol"], "MSFT")).slice(60, 5)
        return pa.concat_tables([good.slice(0, 60), crossed, good.slice(65), foreign],
                                promote_options="permissive")

    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(FULL.filter(pc.invert(in_holes(FULL, {"AAPL": (60, 90)}))))
        upkeep = wh.start_upkeep(bad, interval=0.02, retry_base=0.01, now=lambda: AFTER)
        wait_for(lambda: upkeep.stats.filled == 25)
        wh.stop_upkeep()
        stats = upkeep.stats
        assert stats.failures == 3  # a string, the wrong columns, None
        assert stats.rejected == 10  # 5 crossed + 5 of another symbol
        assert stats.missing == 5  # the crossed minutes are still missing
        assert wh.quality(now=AFTER).filter(pl.col("symbol") == "AAPL")["missing"].item() == 5
        assert_each_key_once(wh)


def test_live_feed_racing_the_upkeep_keeps_each_minute_once_and_live_wherever_it_came(
    tmp_path
):
    """A feed appends the session bar by bar while the upkeep fills from a source holding all
    of it: a minute the feed reached first stays live, a minute filled first turns live when
    the feed's bar arrives; in the end every bar is there once and every bar the feed sent
    is live."""
    feed = FULL.filter(pc.invert(in_holes(FULL))).sort_by("ts")
    columns = [feed[name].to_pylist() for name in BAR_SCHEMA.names]
    columns[1] = feed["ts"].cast(pa.int64()).to_pylist()
    clock = {"now": datetime.fromtimestamp(OPEN / 1e6, UTC)}
    with session(tmp_path / "w.duckdb") as wh:
        upkeep = wh.start_upkeep(by_symbol, interval=0.001, delay=0, retry_base=0.001,
                                 retry_max=0.001, symbols=FULL["symbol"].unique().to_pylist(),
                                 now=lambda: clock["now"])
        for i, row in enumerate(zip(*columns, strict=True)):
            wh.append(*row)
            if i % 6 == 5:  # one minute of six symbols later, the clock moves past it
                clock["now"] = datetime.fromtimestamp((row[1] + 2 * MINUTE) / 1e6, UTC)
            if i % 97 == 0:
                wh.flush()
        clock["now"] = AFTER
        wait_for(lambda: wh.quality(now=AFTER)["missing"].sum() == 0)
        wh.stop_upkeep()
        assert upkeep.stats.filled >= held_in_holes()
        wh.flush()
        assert_each_key_once(wh)
        assert wh.sql("SELECT count(*) AS n FROM bars").column("n")[0].as_py() == FULL.num_rows
        live = wh.sql("SELECT symbol, epoch_us(ts) AS ts FROM bars WHERE origin = 'live' "
                      "ORDER BY ALL").to_pylist()
        sent = sorted(zip(columns[0], columns[1], strict=True))
        assert [(r["symbol"], r["ts"]) for r in live] == sent


def test_end_session_stops_the_upkeep_and_archives_the_origin(tmp_path):
    archive = tmp_path / "archive"
    with session(tmp_path / "w.duckdb", archive=archive) as wh:
        wh.extend(live_part())
        upkeep = wh.start_upkeep(by_symbol, interval=0.05, now=lambda: AFTER)
        wait_for(lambda: upkeep.stats.filled == held_in_holes())
        with pytest.raises(SessionError, match="runs already"):
            wh.start_upkeep(by_symbol)
        wh.end_session()
        assert not upkeep.running
    day = pq.read_table(archive / f"date={DAY.isoformat()}" / "bars.parquet")
    assert day.schema.field("origin").type == pa.string()
    assert pc.sum(pc.equal(day["origin"], "filled")).as_py() == held_in_holes()
    assert day.num_rows == FULL.num_rows


def test_close_stops_the_upkeep(tmp_path):
    wh = session(tmp_path / "w.duckdb")
    upkeep = wh.start_upkeep(by_symbol, interval=0.01, now=lambda: AFTER)
    wait_for(lambda: upkeep.stats.rounds > 2)
    wh.close()
    assert not upkeep.running


def test_upkeep_without_an_open_session_asks_nothing(tmp_path):
    with Warehouse(tmp_path / "w.duckdb", flush_interval=None, calendar=XNYS) as wh:
        upkeep = wh.start_upkeep(by_symbol, interval=0.01, now=lambda: AFTER)
        wait_for(lambda: upkeep.stats.rounds > 2)
        wh.stop_upkeep()
        assert upkeep.stats.requests == 0


def test_upkeep_options_are_checked(tmp_path):
    with session(tmp_path / "w.duckdb") as wh:
        for bad in ({"interval": 0}, {"timeout": -1}, {"delay": -1}, {"retry_max": 0}):
            with pytest.raises(ValueError, match=next(iter(bad))):
                wh.start_upkeep(by_symbol, **bad)
        with pytest.raises(TypeError, match="fetch"):
            wh.start_upkeep(42)  # type: ignore[arg-type]


def test_upkeep_stats_show_missing_minutes_it_could_not_fill(tmp_path):
    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(live_part())
        upkeep = wh.start_upkeep(lambda *_: [], interval=0.01, retry_base=0.01,
                                 now=lambda: AFTER + timedelta(days=1))
        wait_for(lambda: upkeep.stats.rounds > 3)
        wh.stop_upkeep()
        assert upkeep.stats.missing == held_in_holes()
        assert upkeep.stats.filled == 0


def rows_of(symbol: str) -> list[dict[str, object]]:
    return FULL.filter(pc.equal(FULL["symbol"], symbol)).to_pylist()


def in_a_thread(call) -> threading.Thread:
    """Run ``call`` in a daemon thread (a test that fails must not hang on it)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("stop", ["stop_upkeep", "end_session", "close"])
def test_an_answer_that_stalls_part_way_is_timed_out_and_never_holds_the_lifecycle(
    tmp_path, caplog, stop
):
    """The timeout covers reading the answer: an iterator that yields a few bars and then
    hangs is a timeout in `fill_gaps`, and `stop_upkeep`, `end_session` and `close` give up a
    question in flight at once (counted, logged) instead of waiting for it."""
    release = threading.Event()

    def stalling(stalled: threading.Event):
        def fetch(symbol: str, start: datetime, end: datetime) -> object:
            def rows():
                yield from rows_of(symbol)[:10]
                stalled.set()
                release.wait(30)  # the connection hangs after ten rows
                yield from rows_of(symbol)[10:]
            return rows()
        return fetch

    wh = session(tmp_path / "w.duckdb", archive=tmp_path / "archive")
    try:
        wh.extend(live_part())
        started = time.monotonic()
        stats = wh.fill_gaps(stalling(threading.Event()), timeout=0.2, now=AFTER)
        assert stats.timeouts == len(HOLES)
        assert stats.filled == 0
        assert time.monotonic() - started < 10
        assert "no answer in 0.2 s" in stats.last_error
        stalled = threading.Event()
        upkeep = wh.start_upkeep(stalling(stalled), timeout=60, interval=60, now=lambda: AFTER)
        assert stalled.wait(20)
        with caplog.at_level(logging.WARNING, logger="warehouse.upkeep"):
            stopping = in_a_thread(getattr(wh, stop))
            stopping.join(15)
        assert not stopping.is_alive(), f"{stop} waits for the stalled source"
        assert not upkeep.running
        assert upkeep.stats.abandoned == 1
        assert upkeep.stats.filled == 0
        assert any("stopped while the source was answering" in r.getMessage()
                   for r in caplog.records)
    finally:
        release.set()
        wh.close()
    with Warehouse(tmp_path / "w.duckdb", read_only=True) as wh:
        assert "filled" not in origins(wh)  # what came after the stop was dropped


def resetting(symbol: str, start: datetime, end: datetime) -> object:
    """A source whose connection resets while AAPL's answer is read (a lazy answer)."""
    def rows():
        for k, row in enumerate(rows_of(symbol)):
            if symbol == "AAPL" and k == 100:
                raise ConnectionResetError("connection reset by peer")
            yield row
    return rows()


def test_an_answer_that_fails_while_it_is_read_fails_its_symbol_alone(tmp_path):
    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(live_part())
        stats = wh.fill_gaps(resetting, now=AFTER)
        assert stats.failures == 1
        assert "AAPL: reading the source's answer failed: ConnectionResetError" in (
            stats.last_error)
        assert stats.filled == 10  # MSFT's and NVDA's holes
        assert stats.missing == 30
        assert wh.count("MSFT") == wh.count("NVDA") == 390
        assert wh.count("AAPL") == 360


def test_upkeep_counts_a_symbol_whose_answer_fails_while_read_and_retries_it(tmp_path):
    """The failing symbol is counted and asked again in later rounds; the round goes on
    with the others, and once its source recovers it is filled too."""
    asked: list[str] = []

    def recovering(symbol: str, start: datetime, end: datetime) -> object:
        asked.append(symbol)
        if asked.count("AAPL") > 2:
            return by_symbol(symbol, start, end)
        return resetting(symbol, start, end)

    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(live_part())
        upkeep = wh.start_upkeep(recovering, interval=0.02, retry_base=0.01, retry_max=0.01,
                                 now=lambda: AFTER)
        wait_for(lambda: upkeep.stats.filled == held_in_holes())
        wh.stop_upkeep()
        stats = upkeep.stats
        assert stats.failures == 2
        assert stats.rounds >= 3
        assert asked.count("AAPL") == 3
        assert wh.quality(now=AFTER)["missing"].sum() == 0


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_upkeep_counts_and_logs_an_answer_with_ts_in_another_epoch_unit(tmp_path, caplog, unit):
    """Integer ts read as microseconds: seconds and milliseconds land in 1970, nanoseconds
    past 2200; each row is counted as rejected and the log names the unit."""
    per_second = {"s": 1, "ms": 1_000, "ns": 1_000_000_000}[unit]

    def epochs(symbol: str, start: datetime, end: datetime) -> list[tuple[object, ...]]:
        return [(r["symbol"], int(r["ts"].timestamp()) * per_second, r["open"], r["high"],
                 r["low"], r["close"], r["volume"]) for r in rows_of(symbol)]

    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(live_part())
        with caplog.at_level(logging.WARNING, logger="warehouse.upkeep"):
            stats = wh.fill_gaps(epochs, now=AFTER)
        assert stats.filled == 0
        assert stats.rejected == 390 * len(HOLES)
        assert stats.missing == held_in_holes()
        logged = " ".join(r.getMessage() for r in caplog.records)
        if unit != "ns":  # nanoseconds are past 2200: malformed rows
            assert "like epoch " + {"s": "seconds", "ms": "milliseconds"}[unit] in logged


def test_upkeep_options_are_finite_seconds_and_a_huge_delay_asks_for_nothing(tmp_path):
    with session(tmp_path / "w.duckdb") as wh:
        wh.extend(live_part())
        stats = wh.fill_gaps(by_symbol, delay=1e30, now=AFTER)  # no minute is due yet
        assert (stats.requests, stats.filled, stats.missing) == (0, 0, 0)
        for bad in ({"delay": math.inf}, {"delay": math.nan}, {"delay": -1},
                    {"timeout": math.inf}, {"timeout": math.nan}, {"timeout": 0},
                    {"delay": "60"}):
            name = next(iter(bad))
            with pytest.raises(ValueError, match=f"^{name} .*seconds"):
                wh.fill_gaps(by_symbol, now=AFTER, **bad)
        upkeep = wh.start_upkeep(by_symbol, interval=1e30, timeout=np.float32(1e30),
                                 retry_base=np.int64(5), retry_max=1e30,
                                 now=lambda: AFTER)
        wait_for(lambda: upkeep.stats.rounds == 1)
        started = time.monotonic()
        wh.stop_upkeep()  # the thread's wait of 1e30 s ends at once
        assert time.monotonic() - started < 5
        assert upkeep.stats.filled == held_in_holes()


# -- warehouse fill ----------------------------------------------------------------------------


def test_fill_command_fills_from_an_archive_and_from_a_duckdb_file(tmp_path, capsys):
    from warehouse.cli import main

    archive = tmp_path / "archive"
    with Warehouse(tmp_path / "other.duckdb", flush_interval=None, calendar=XNYS,
                   archive=archive) as other:
        other.start_session(DAY)
        other.extend(FULL.filter(pc.not_equal(FULL["symbol"], "NVDA")))
        other.end_session()
    db = tmp_path / "w.duckdb"
    with session(db) as wh:
        wh.extend(live_part())
    assert main(["fill", "--db", str(db), "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert f"filled 35 bars for 3 symbols with gaps from ArchiveSource('{archive}')" in out
    assert "5 minutes still missing" in out  # NVDA's: the archive has none of its bars
    assert main(["fill", "--db", str(db), "--duckdb", str(tmp_path / "other.duckdb")]) == 0
    assert "filled 0 bars for 1 symbol with gaps" in capsys.readouterr().out
    with Warehouse(db, read_only=True) as wh:
        assert origins(wh) == {"live": FULL.num_rows - held_in_holes(), "filled": 35}


def test_fill_command_refuses_what_it_cannot_use(tmp_path, capsys):
    from warehouse.cli import main

    db = tmp_path / "w.duckdb"
    with Warehouse(db, flush_interval=None, calendar=XNYS):
        pass
    assert main(["fill", "--db", str(tmp_path / "none.duckdb"), "--archive", "."]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["fill", "--db", str(db), "--archive", str(tmp_path / "nowhere")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert main(["fill", "--db", str(db), "--archive", str(tmp_path)]) == 1
    assert "needs an open session" in capsys.readouterr().err
    for delay in ("-1", "nan", "inf"):
        assert main(["fill", "--db", str(db), "--archive", ".", "--delay", delay]) == 2
        assert f"--delay: {delay} is not a number of seconds, 0 or more" in (
            capsys.readouterr().err)
    with session(db) as wh:
        wh.extend(live_part())
    assert main(["fill", "--db", str(db), "--duckdb", str(tmp_path / "missing.duckdb")]) == 1
    assert "missing.duckdb does not exist" in capsys.readouterr().err
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()  # no table of bars in it
    assert main(["fill", "--db", str(db), "--duckdb", str(tmp_path / "empty.duckdb")]) == 1
    assert "3 questions to the source failed" in capsys.readouterr().err



FEED_AND_FILL = """
import os, signal, sys, threading
from datetime import date
import pyarrow.compute as pc, pyarrow.parquet as pq
from warehouse import Calendar, Warehouse
cal = Calendar("XNYS", start=date(2025, 11, 1), end=date(2025, 12, 31))
feed, holes = pq.read_table(sys.argv[2]), pq.read_table(sys.argv[3])
opened = cal.window(date(2025, 11, 21)).open
wh = Warehouse(sys.argv[1], flush_interval=0.05, calendar=cal, journal=True)
wh.start_session(date(2025, 11, 21))
kill_at, delay = int(sys.argv[4]), float(sys.argv[5])
minute = 0
for bar in feed.to_pylist():
    bar["ts"] = int(bar["ts"].timestamp() * 1_000_000)
    if (bar["ts"] - opened) // 60_000_000 > minute:
        print("ACK", minute, flush=True)  # every bar of the minute was appended
        if minute == kill_at:  # once said: a few ms on, amid a fill, appends or a flush
            threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
        if minute % 7 == 6:
            due = pc.less(pc.subtract(holes["ts"].cast("int64"), opened), (minute + 1) * 60_000_000)
            wh.fill(holes.filter(due))
            print("FILLED", minute, flush=True)
        minute = (bar["ts"] - opened) // 60_000_000
    wh.append(**bar)
threading.Event().wait()  # a feed done before the timer fired waits for it: the kill lands
"""


def keys_of(table: pa.Table) -> set[tuple[str, int]]:
    return set(zip(table["symbol"].to_pylist(), table["ts"].cast(pa.int64()).to_pylist(),
                   strict=True))


@pytest.mark.parametrize(("kill_at", "delay"), [
    (13, 0.002), pytest.param(160, 0.006, marks=pytest.mark.slow),
    pytest.param(300, 0.012, marks=pytest.mark.slow)])
def test_kill_while_appends_and_fills_interleave_keeps_every_acknowledged_bar_once(
    tmp_path, kill_at, delay
):
    """kill -9 at a moment of a feed that fills its gaps as it goes (journal on, the flusher
    running): after a reopen every acknowledged live bar is there, live, every acknowledged
    filled bar is there, filled, each key once, and nothing that was never sent."""
    path, feed_path, hole_path = (tmp_path / n for n in ("w.duckdb", "feed.pq", "holes.pq"))
    feed = FULL.filter(pc.invert(in_holes(FULL))).sort_by("ts")
    holes = FULL.filter(in_holes(FULL)).sort_by("ts")
    pq.write_table(feed, feed_path)
    pq.write_table(holes, hole_path)
    child = subprocess.run(
        [sys.executable, "-c", FEED_AND_FILL, str(path), str(feed_path), str(hole_path),
         str(kill_at), str(delay)], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    said = [line.split() for line in child.stdout.splitlines()]
    said = [words for words in said if len(words) == 2 and words[1].isdigit()]  # whole lines
    acked = max((int(m) for what, m in said if what == "ACK"), default=-1)
    filled_to = max((int(m) for what, m in said if what == "FILLED"), default=-1)
    with Warehouse(path, journal=True, flush_interval=None, calendar=XNYS) as wh:
        assert_each_key_once(wh)
        rows = wh.sql("SELECT symbol, epoch_us(ts) AS ts, origin FROM bars").to_pylist()
    origin = {(r["symbol"], r["ts"]): r["origin"] for r in rows}
    live = keys_of(feed.filter(pc.less_equal(minute_of(feed), acked)))
    filled = keys_of(holes.filter(pc.less_equal(minute_of(holes), filled_to)))
    assert {origin.get(key) for key in live} <= {"live"}
    assert {origin.get(key) for key in filled} <= {"filled"}
    assert set(origin) <= keys_of(FULL)
    assert {key for key, o in origin.items() if o == "filled"} <= keys_of(holes)
    assert kill_at <= acked  # the timer starts once the feed has said minute kill_at
    assert filled_to >= kill_at - 7
