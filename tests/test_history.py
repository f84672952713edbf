"""Trailing history: the views `history` and `bars_all` over sealed sessions, `history()`,
trailing statistics (`prev_close`, `trailing`) as hot reads, and `prepare_session` prefetch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from warehouse import Calendar, CalendarError, SessionError, Warehouse

XNYS = Calendar("XNYS")
DAYS = [date(2025, 11, 24), date(2025, 11, 25), date(2025, 11, 26), date(2025, 11, 28)]
TODAY = date(2025, 12, 1)


def price(day: date, symbol: str, minute: int) -> float:
    return 100.0 + day.day + len(symbol) + minute / 100


def seal_sessions(tmp_path: Path) -> Path:
    """Four sealed sessions in the archive: ES and NQ every day, CL only on the first."""
    archive = tmp_path / "archive"
    with Warehouse(tmp_path / "past.duckdb", flush_interval=None, archive=archive) as wh:
        for day in DAYS:
            wh.start_session(day)
            for minute, ts in enumerate(XNYS.minutes(day)[:30].tolist()):
                for symbol in ("ES", "NQ", "CL") if day == DAYS[0] else ("ES", "NQ"):
                    p = price(day, symbol, minute)
                    wh.append(symbol, ts, p, p + 1, p - 1, p + 0.5, 10.0 * (minute + 1))
            wh.end_session()
    return archive


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return seal_sessions(tmp_path)


def open_live(tmp_path: Path, archive: Path, sessions: int | None = 2) -> Warehouse:
    return Warehouse(tmp_path / "live.duckdb", flush_interval=None, archive=archive,
                     history_sessions=sessions)


def test_history_is_the_last_sessions_before_today_and_bars_all_adds_today(
    tmp_path: Path, archive: Path
) -> None:
    with open_live(tmp_path, archive) as wh:
        wh.start_session(TODAY)
        wh.append("ES", XNYS.window(TODAY).open, 1.0, 2.0, 0.5, 1.5, 5.0)
        dates = wh.sql("SELECT DISTINCT date FROM history ORDER BY date")["date"].to_pylist()
        assert dates == DAYS[-2:]
        counts = wh.sql("SELECT date, count(*) AS n FROM bars_all GROUP BY date ORDER BY date")
        assert counts.to_pylist() == [{"date": DAYS[2], "n": 60}, {"date": DAYS[3], "n": 60},
                                      {"date": TODAY, "n": 1}]
        frame = wh.history("ES", sessions=1)
        assert frame["date"].unique().to_list() == [DAYS[-1]]
        assert frame.height == 30
        assert frame["ts"].is_sorted()
        assert wh.history(sessions=None).height == 120


def test_trailing_statistics_agree_with_the_archive_read_independently(
    tmp_path: Path, archive: Path
) -> None:
    files = pl.read_parquet(archive / "**" / "*.parquet", hive_partitioning=True)
    with open_live(tmp_path, archive, sessions=3) as wh:
        assert wh.trailing("ES") is None  # no session: nothing computed
        wh.start_session(TODAY)
        window = files.filter(pl.col("date").is_in(DAYS[-3:]))
        for symbol in ("ES", "NQ"):
            mine = window.filter(pl.col("symbol") == symbol).sort("ts")
            last = mine.filter(pl.col("date") == DAYS[-1])
            found = wh.trailing(symbol)
            assert found is not None
            assert found.prev_date == DAYS[-1]
            assert found.prev_close == last["close"][-1] == wh.prev_close(symbol)
            assert found.prev_high == last["high"].max()
            assert found.prev_low == last["low"].min()
            assert found.prev_volume == last["volume"].sum()
            assert found.sessions == 3
            assert found.avg_daily_volume == pytest.approx(mine["volume"].sum() / 3)
        assert wh.trailing("CL") is None  # traded only before the trailing window
        assert wh.prev_close("NEW") is None
    with open_live(tmp_path, archive, sessions=None) as wh:  # reopened mid-session
        found = wh.trailing("CL")
        assert found is not None
        assert found.prev_date == DAYS[0]
        assert found.avg_daily_volume == pytest.approx(
            files.filter(pl.col("symbol") == "CL")["volume"].sum() / len(DAYS))


def test_prepare_session_prefetches_what_start_session_then_takes(
    tmp_path: Path, archive: Path
) -> None:
    with open_live(tmp_path, archive) as cold:
        cold.start_session(TODAY)
        expected = {s: cold.trailing(s) for s in ("ES", "NQ")}
        cold.clear()
    (tmp_path / "warm").mkdir()
    with open_live(tmp_path / "warm", archive) as wh:
        future = wh.prepare_session(TODAY)
        session = future.result(timeout=60)
        assert session.date == TODAY
        assert wh.session is None  # prepared, not started
        assert wh.start_session() == session  # the default session is the prepared one
        assert {s: wh.trailing(s) for s in ("ES", "NQ")} == expected


def test_prepare_session_of_a_holiday_fails_in_the_future_and_in_start_session(
    tmp_path: Path, archive: Path
) -> None:
    with open_live(tmp_path, archive) as wh:
        future = wh.prepare_session(date(2025, 11, 27))
        with pytest.raises(CalendarError, match="not a session"):
            future.result(timeout=60)
        with pytest.raises(CalendarError, match="not a session"):
            wh.start_session(date(2025, 11, 27))
        assert wh.session is None
        assert wh.start_session(TODAY).date == TODAY


def test_without_an_archive_history_export_and_end_session_raise_the_same_error(
    tmp_path: Path,
) -> None:
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None) as wh:
        wh.start_session(TODAY)
        for call in (lambda: wh.history("ES"), wh.export_parquet, wh.end_session):
            with pytest.raises(SessionError, match="archive="):
                call()


@pytest.mark.parametrize(("args", "kwargs", "says"), [
    ((5,), {}, r"symbol must be a string or None, got 5.*sessions=5"),
    ((), {"sessions": "x"}, r"sessions must be a whole number of sessions.*got 'x'"),
    ((), {"sessions": -1}, r"sessions must be .* 0 or more.*got -1"),
    ((), {"sessions": 2.5}, r"got 2.5"),
    ((), {"sessions": True}, r"got True"),
])
def test_history_with_a_bad_argument_raises_naming_it(
    tmp_path: Path, archive: Path, args: tuple[object, ...], kwargs: dict[str, object],
    says: str,
) -> None:
    with open_live(tmp_path, archive) as wh:
        with pytest.raises(ValueError, match=says):
            wh.history(*args, **kwargs)  # type: ignore[arg-type]
        assert wh.history(sessions=0).height == 0
        assert wh.history("ES", sessions=1).height == 30


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "footer":
        path.write_bytes(bytes(data[: len(data) // 2]))  # cut short: no footer
    else:  # the footer whole, the pages zeroed: only reading the data finds it
        data[4 : len(data) // 2] = bytes(len(data) // 2 - 4)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["footer", "pages"])
def test_a_damaged_day_is_left_out_of_trailing_statistics_and_never_blocks_a_session(
    tmp_path: Path, archive: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = archive / f"date={DAYS[-1].isoformat()}" / "bars.parquet"
    damage(damaged, how)
    with open_live(tmp_path, archive, sessions=None) as wh:
        wh.start_session(TODAY)  # the damaged day is skipped: the others still count
        found = wh.trailing("ES")
        assert found is not None
        assert found.prev_date == DAYS[-2]
        assert found.sessions == 3
        assert str(damaged) in caplog.text
        wh.append("ES", XNYS.window(TODAY).open, 1.0, 2.0, 0.5, 1.5, 5.0)
    with Warehouse(tmp_path / "live.duckdb", read_only=True, archive=archive) as reader:
        assert reader.session is not None  # a read-only open of the open session works too
        assert reader.count("ES") == 1
        assert reader.prev_close("ES") == found.prev_close


def test_a_crashed_session_is_recovered_from_its_journal_over_a_damaged_archive(
    tmp_path: Path, archive: Path, abandon: Callable[[Warehouse], None]
) -> None:
    wh = Warehouse(tmp_path / "live.duckdb", flush_interval=None, archive=archive, journal=True)
    session = wh.start_session(TODAY)
    stamps = XNYS.minutes(TODAY)[:100].tolist()
    for symbol in ("ES", "NQ", "CL"):
        for ts in stamps:
            wh.append(symbol, ts, 1.0, 2.0, 0.5, 1.5, 5.0)
    abandon(wh)  # killed: 300 acknowledged bars in the journal only
    damage(archive / f"date={DAYS[0].isoformat()}" / "bars.parquet", "pages")
    with Warehouse(tmp_path / "live.duckdb", flush_interval=None, archive=archive,
                   journal=True) as wh:
        assert wh.session == session
        assert wh.recovery is not None
        assert wh.recovery.records == 300
        assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 300
        assert wh.trailing("NQ") is not None
        assert wh.trailing("CL") is None  # its one archived day is the damaged one


def test_a_session_prepared_before_the_previous_one_is_sealed_takes_that_session_too(
    tmp_path: Path,
) -> None:
    """prepare_session(next) while today is open, then roll(): the prefetch ran before today
    was sealed, so its trailing statistics are computed again, with today."""
    days = [date(2025, 11, 24), date(2025, 11, 25), date(2025, 11, 26)]
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        first = wh.start_session(days[0])
        wh.append("ES", first.open, 100.0, 100.0, 100.0, 100.0, 10.0)
        second = wh.roll()
        wh.append("ES", second.open, 200.0, 200.0, 200.0, 200.0, 10.0)
        assert wh.prepare_session(days[2]).result(timeout=60).date == days[2]
        assert wh.roll().date == days[2]
        found = wh.trailing("ES")
        assert found is not None
        assert (found.prev_date, found.prev_close, found.sessions) == (days[1], 200.0, 2)
        # Prepared with nothing sealed since: taken as it is.
        wh.append("ES", XNYS.window(days[2]).open, 300.0, 300.0, 300.0, 300.0, 10.0)
        wh.end_session()
        prepared = wh.prepare_session(TODAY).result(timeout=60)
        assert wh.start_session() == prepared
        assert wh.prev_close("ES") == 300.0
