"""Trading sessions on a real exchange calendar: start, the window policy, end, roll, reopen,
the session-dated archive and its manifest, and kill -9 anywhere in end_session/roll."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import warehouse as warehouse_package
from warehouse import (
    Calendar,
    CalendarError,
    ExportError,
    InvalidBarError,
    SessionError,
    Warehouse,
)
from warehouse.archive import MANIFEST_NAME, read_manifest, verify_archive
from warehouse.sample import generate_sessions
from warehouse.schema import from_micros

ROOT = Path(warehouse_package.__file__).resolve().parent.parent
MINUTE = 60_000_000
XNYS = Calendar("XNYS")


def open_wh(tmp_path: Path, **options: object) -> Warehouse:
    return Warehouse(tmp_path / "wh.duckdb", flush_interval=None, archive=tmp_path / "archive",
                     **options)  # type: ignore[arg-type]


def feed(wh: Warehouse, day: date, symbols: tuple[str, ...] = ("ES", "NQ"),
         minutes: int | None = None) -> list[tuple[str, int]]:
    """Append a bar per minute of the session for each symbol; return the keys."""
    stamps = XNYS.minutes(day)[:minutes]
    keys = []
    for ts in stamps.tolist():
        for symbol in symbols:
            wh.append(symbol, ts, 10.0, 11.0, 9.0, 10.5, 100.0)
            keys.append((symbol, ts))
    return keys


def keys_of(table: pa.Table) -> list[tuple[str, int]]:
    return sorted(zip(table.column("symbol").to_pylist(),
                      table.column("ts").cast(pa.int64()).to_pylist(), strict=True))


def held(wh: Warehouse) -> list[tuple[str, int]]:
    return keys_of(wh.sql("SELECT symbol, ts FROM bars"))


def partition(archive: Path, day: date) -> Path:
    return archive / f"date={day.isoformat()}" / "bars.parquet"


# -- the window ------------------------------------------------------------------------------


def test_session_window_comes_from_the_calendar_early_close_included(tmp_path: Path) -> None:
    with open_wh(tmp_path) as wh:
        session = wh.start_session(date(2025, 11, 28))  # the day after Thanksgiving: 13:00 close
        assert (session.open_time, session.close_time) == (
            datetime(2025, 11, 28, 14, 30, tzinfo=UTC), datetime(2025, 11, 28, 18, 0, tzinfo=UTC))
        assert session.status == "open"
        assert wh.session == session
        wh.append("ES", session.open, 10.0, 11.0, 9.0, 10.5, 1.0)  # the open is inside
        wh.append("ES", session.close - MINUTE, 10.0, 11.0, 9.0, 10.5, 1.0)
        for ts in (session.close, session.open - 1, session.close + 3_600 * 1_000_000):
            with pytest.raises(InvalidBarError, match=r"outside session 2025-11-28 of XNYS"):
                wh.append("ES", ts, 10.0, 11.0, 9.0, 10.5, 1.0)
        batch = [("NQ", session.open, 1.0, 2.0, 0.5, 1.5, 1.0),
                 ("NQ", session.close, 1.0, 2.0, 0.5, 1.5, 1.0)]
        with pytest.raises(InvalidBarError, match=r"'NQ' 2025-11-28 18:00:00.*outside session"):
            wh.extend(batch)
        assert wh.count("ES") == 2
        assert not wh.has_bars("NQ")  # all of the batch or none of it


def test_daylight_saving_moves_the_utc_open_by_an_hour(tmp_path: Path) -> None:
    with open_wh(tmp_path) as wh:
        friday = wh.start_session(date(2025, 3, 7))
        feed(wh, friday.date, minutes=2)
        monday = wh.roll()
    assert monday.date == date(2025, 3, 10)
    assert friday.open_time.hour == 14
    assert monday.open_time.hour == 13
    assert monday.open_time.minute == friday.open_time.minute == 30


def test_default_session_is_the_current_or_next_one(tmp_path: Path) -> None:
    with open_wh(tmp_path) as wh:
        thanksgiving = datetime(2025, 11, 27, 15, 0, tzinfo=UTC)
        assert wh.start_session(now=thanksgiving).date == date(2025, 11, 28)
    (tmp_path / "b").mkdir()
    with open_wh(tmp_path / "b") as wh:
        during = datetime(2025, 11, 26, 16, 0, tzinfo=UTC)
        assert wh.start_session(now=during).date == date(2025, 11, 26)


def test_extended_hours_take_pre_and_post_market_and_the_partition_is_the_trading_date(
    tmp_path: Path,
) -> None:
    """Post-market of 2025-11-26 ends at 20:00 New York, 01:00 UTC on the 27th: its late bars
    belong to the session of the 26th, and so does their partition."""
    with open_wh(tmp_path) as wh:
        session = wh.start_session(date(2025, 11, 26), extended_hours=True)
        assert session.open_time == datetime(2025, 11, 26, 9, 0, tzinfo=UTC)
        assert session.close_time == datetime(2025, 11, 27, 1, 0, tzinfo=UTC)
        late = int(datetime(2025, 11, 27, 0, 30, tzinfo=UTC).timestamp()) * 1_000_000
        wh.append("ES", session.open, 10.0, 11.0, 9.0, 10.5, 1.0)
        wh.append("ES", late, 10.0, 11.0, 9.0, 10.5, 1.0)
        result = wh.end_session()
    assert result.files == (partition(tmp_path / "archive", date(2025, 11, 26)),)
    assert pq.read_table(result.files[0]).num_rows == 2
    assert not partition(tmp_path / "archive", date(2025, 11, 27)).exists()


@pytest.mark.parametrize(("calendar", "extended"), [("XNYS", True), ("XASX", False)])
def test_export_parquet_of_an_open_session_never_touches_the_session_archive(
    tmp_path: Path, calendar: str, extended: bool
) -> None:
    """XNYS extended hours run past midnight UTC; XASX opens at 23:00 UTC the day before, on
    the date of the session sealed before it. An export by UTC date into the archive would
    write among the sealed sessions' trading-date partitions: it is refused, the archive
    stays whole, and another folder gets the export."""
    archive = tmp_path / "archive"
    with open_wh(tmp_path, calendar=calendar) as wh:
        first = wh.start_session(date(2025, 11, 20), extended_hours=extended)
        stamps = wh.calendar(extended_hours=extended).minutes(first.date)
        for ts in (stamps[0], stamps[1], stamps[-2], stamps[-1]):
            wh.append("X", int(ts), 10.0, 11.0, 9.0, 10.5, 1.0)
        second = wh.roll()
        stamps = wh.calendar(extended_hours=extended).minutes(second.date)
        for ts in (stamps[0], stamps[1], stamps[-2], stamps[-1]):
            wh.append("X", int(ts), 10.0, 11.0, 9.0, 10.5, 1.0)
        assert {from_micros(int(stamps[0])).date(), from_micros(int(stamps[-1])).date()} \
            != {second.date}  # its UTC dates are not (all) its trading date
        before = files_of(archive)
        with pytest.raises(SessionError, match=r"session 2025-11-21 is open.*end_session"):
            wh.export_parquet()
        with pytest.raises(SessionError, match="another folder"):
            wh.export_parquet(str(archive) + "/")
        assert files_of(archive) == before
        assert wh.export_parquet(tmp_path / "elsewhere").rows == 4  # another folder: by UTC date
        assert wh.history()["date"].to_list() == [first.date] * 4
        wh.end_session()
        assert wh.history()["date"].to_list() == [first.date] * 4 + [second.date] * 4
    assert verify_archive(archive) == []
    # A warehouse without sessions exports by UTC date: never into an archive of sessions.
    with Warehouse(tmp_path / "plain.duckdb", flush_interval=None) as plain:
        plain.append("X", int(stamps[-1]), 10.0, 11.0, 9.0, 10.5, 1.0)
        with pytest.raises(ExportError, match=r"sealed sessions.*end_session.*another folder"):
            plain.export_parquet(archive)
    assert verify_archive(archive) == []


def files_of(folder: Path) -> list[tuple[Path, bytes]]:
    return sorted((p.relative_to(folder), p.read_bytes()) for p in folder.rglob("*")
                  if p.is_file())


# -- misuse ----------------------------------------------------------------------------------


def test_steps_out_of_order_are_refused_and_change_nothing(tmp_path: Path) -> None:
    with open_wh(tmp_path) as wh:
        with pytest.raises(SessionError, match="no session is open"):
            wh.end_session()
        with pytest.raises(CalendarError, match="2025-11-27 is not a session"):
            wh.start_session(date(2025, 11, 27))
        assert wh.session is None
        session = wh.start_session(date(2025, 11, 26))
        keys = feed(wh, session.date, minutes=3)
        with pytest.raises(SessionError, match="session 2025-11-26 is open"):
            wh.start_session(date(2025, 11, 28))
        assert wh.session == session
        assert held(wh) == sorted(keys)
    with Warehouse(tmp_path / "bad.duckdb", calendar="XNOPE") as wh, \
            pytest.raises(CalendarError, match="unknown exchange code 'XNOPE'"):
        wh.start_session(date(2025, 11, 26))


def test_end_session_needs_an_archive(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None) as wh:
        wh.start_session(date(2025, 11, 26))
        feed(wh, date(2025, 11, 26), minutes=1)
        with pytest.raises(SessionError, match="archive="):
            wh.end_session()
        assert wh.session is not None
        assert wh.session.status == "open"
        assert wh.count("ES") == 1


def test_bars_held_outside_the_window_keep_a_session_from_starting(tmp_path: Path) -> None:
    with open_wh(tmp_path) as wh:
        wh.append("ES", XNYS.window(date(2025, 11, 25)).open, 10.0, 11.0, 9.0, 10.5, 1.0)
        with pytest.raises(SessionError, match=r"outside session 2025-11-26.*clear"):
            wh.start_session(date(2025, 11, 26))
        assert wh.session is None
        assert wh.start_session(date(2025, 11, 25)).status == "open"  # they fit this one


def test_after_end_session_bars_are_refused_until_the_next_session(tmp_path: Path) -> None:
    with open_wh(tmp_path) as wh:
        wh.start_session(date(2025, 11, 26))
        feed(wh, date(2025, 11, 26), minutes=2)
        wh.end_session()
        assert wh.session is not None
        assert wh.session.status == "sealed"
        assert wh.symbols() == []
        with pytest.raises(InvalidBarError, match="after session 2025-11-26 was sealed"):
            wh.append("ES", XNYS.window(date(2025, 11, 26)).open, 10.0, 11.0, 9.0, 10.5, 1.0)
        with pytest.raises(SessionError, match="no session is open"):
            wh.end_session()
        assert wh.start_session(date(2025, 11, 28)).status == "open"


def test_read_only_warehouse_refuses_lifecycle_steps(tmp_path: Path) -> None:
    with open_wh(tmp_path) as wh:
        wh.start_session(date(2025, 11, 26))
    with Warehouse(tmp_path / "wh.duckdb", read_only=True) as reader:
        assert reader.session is not None
        assert reader.session.date == date(2025, 11, 26)
        with pytest.raises(warehouse_package.WarehouseError, match="read-only"):
            reader.start_session(date(2025, 11, 28))
        with pytest.raises(warehouse_package.WarehouseError, match="read-only"):
            reader.end_session()


# -- end, roll, reopen -----------------------------------------------------------------------


def test_reopening_mid_session_resumes_it(tmp_path: Path) -> None:
    with open_wh(tmp_path) as wh:
        session = wh.start_session(date(2025, 11, 26))
        keys = feed(wh, session.date, minutes=5)
    with open_wh(tmp_path) as wh:
        assert wh.session == session
        assert held(wh) == sorted(keys)
        with pytest.raises(InvalidBarError, match="outside session 2025-11-26"):
            wh.append("ES", session.close, 10.0, 11.0, 9.0, 10.5, 1.0)
        keys += feed(wh, session.date, symbols=("CL",), minutes=1)
        wh.end_session()
    with open_wh(tmp_path) as wh:
        assert wh.session is not None
        assert wh.session.status == "sealed"
        assert wh.symbols() == []
    assert keys_of(pq.read_table(partition(tmp_path / "archive", session.date))) == sorted(keys)


def test_reopening_without_a_calendar_takes_the_one_of_the_files_session(tmp_path: Path) -> None:
    """An XLON session of 11-26 reopened without calendar=: roll() goes to XLON's 11-27 (a
    London session on US Thanksgiving), not to XNYS's 11-28."""
    with open_wh(tmp_path, calendar="XLON") as wh:
        session = wh.start_session(date(2025, 11, 26))
        wh.append("VOD", session.open, 10.0, 11.0, 9.0, 10.5, 1.0)
    with open_wh(tmp_path) as wh:
        assert wh.calendar().code == "XLON"
        nxt = wh.roll()
        assert (nxt.calendar, nxt.date) == ("XLON", date(2025, 11, 27))
        wh.append("VOD", nxt.open, 10.0, 11.0, 9.0, 10.5, 1.0)  # London hours are taken
        wh.end_session()
    with open_wh(tmp_path) as wh:  # sealed: the next session is the file's calendar's too
        assert wh.start_session().calendar == "XLON"


def test_reopening_an_open_session_with_another_calendar_is_refused(tmp_path: Path) -> None:
    with open_wh(tmp_path, calendar="XLON") as wh:
        session = wh.start_session(date(2025, 11, 26))
    with pytest.raises(SessionError, match=r"XLON.*'XNYS'|'XNYS'.*XLON"):
        open_wh(tmp_path, calendar="XNYS")
    with pytest.raises(SessionError, match="XLON"):
        open_wh(tmp_path, calendar=Calendar("XNYS"))
    with open_wh(tmp_path, calendar="XLON") as wh:  # its own calendar: resumed
        assert wh.session == session
        wh.end_session()
    with open_wh(tmp_path, calendar="XNYS") as wh:  # sealed: another exchange may follow
        assert wh.start_session(date(2025, 11, 28)).calendar == "XNYS"


def test_three_sessions_replayed_end_to_end_read_back_by_three_readers(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    expected: dict[date, list[tuple[str, int]]] = {}
    with open_wh(tmp_path) as wh:
        session = wh.start_session(date(2025, 11, 25))
        for _ in range(3):
            expected[session.date] = sorted(feed(wh, session.date, symbols=("ES", "NQ", "CL")))
            wh.append("ES", session.open, 10.0, 11.0, 9.0, 10.75, 100.0)  # a correction
            if len(expected) < 3:
                session = wh.roll()
            else:
                wh.end_session()
    assert list(expected) == [date(2025, 11, 25), date(2025, 11, 26), date(2025, 11, 28)]
    assert expected[date(2025, 11, 28)][-1][1] < XNYS.window(date(2025, 11, 28)).close
    manifest = read_manifest(archive)
    assert [s["date"] for s in manifest["sessions"]] == [d.isoformat() for d in expected]
    assert [s["rows"] for s in manifest["sessions"]] == [len(k) for k in expected.values()]
    assert all(s["calendar"] == "XNYS" and s["symbols"] == 3 for s in manifest["sessions"])
    assert verify_archive(archive) == []
    everything = sorted(k for keys in expected.values() for k in keys)
    # pyarrow, polars and DuckDB read the same archive, partition column included.
    table = pq.read_table(archive)
    assert keys_of(table) == everything
    frame = pl.read_parquet(archive / "**" / "*.parquet", hive_partitioning=True)
    assert frame.height == len(everything)
    assert frame["ts"].dtype == pl.Datetime("us", "UTC")
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT date, count(*) AS n FROM read_parquet('{archive}/*/*.parquet', "
        "hive_partitioning = true) GROUP BY date ORDER BY date"
    ).fetchall()
    assert rows == [(d, len(k)) for d, k in expected.items()]
    closes = con.sql(f"SELECT close FROM read_parquet('{archive}/date=2025-11-25/*.parquet') "
                     "WHERE symbol = 'ES' ORDER BY ts LIMIT 1").fetchall()
    assert closes == [(10.75,)]
    con.close()


def test_verify_names_a_damaged_or_missing_session_file(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    with open_wh(tmp_path) as wh:
        wh.start_session(date(2025, 11, 25))
        feed(wh, date(2025, 11, 25), minutes=30)
        wh.roll()
        feed(wh, date(2025, 11, 26), minutes=30)
        wh.end_session()
    first, second = partition(archive, date(2025, 11, 25)), partition(archive, date(2025, 11, 26))
    table = pq.ParquetFile(first).read()
    pq.write_table(table.slice(1), first)  # a bar lost: rows and checksum differ
    second.unlink()
    problems = verify_archive(archive)
    assert any("session 2025-11-25" in p and "rows is 59" in p for p in problems)
    assert any("session 2025-11-25" in p and "sha256" in p for p in problems)
    assert any("session 2025-11-26" in p and "missing" in p for p in problems)


def test_a_session_sealed_again_replaces_its_manifest_entry_and_keeps_its_bars(
    tmp_path: Path,
) -> None:
    """The same trading date sealed twice (another file, or a re-run after a crash): the
    partition is merged key for key, and the manifest holds one entry with the new counts."""
    archive = tmp_path / "archive"
    for name, symbols in (("one", ("ES",)), ("two", ("NQ",))):
        with Warehouse(tmp_path / f"{name}.duckdb", flush_interval=None, archive=archive) as wh:
            wh.start_session(date(2025, 11, 26))
            feed(wh, date(2025, 11, 26), symbols=symbols, minutes=10)
            wh.end_session()
    sessions = json.loads((archive / MANIFEST_NAME).read_text())["sessions"]
    assert [(s["date"], s["rows"], s["symbols"]) for s in sessions] == [("2025-11-26", 20, 2)]
    assert verify_archive(archive) == []


def test_damaged_manifest_entries_are_named_kept_and_never_crash_verify_list_or_a_seal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries a seal does not understand (not an object, no file, no date, a file outside the
    archive) are named by verify and list, and a seal keeps them as they are."""
    from warehouse.cli import main

    archive = tmp_path / "archive"
    with open_wh(tmp_path) as wh:
        wh.start_session(date(2025, 11, 25))
        feed(wh, date(2025, 11, 25), minutes=3)
        wh.roll()
        feed(wh, date(2025, 11, 26), minutes=3)
        path = archive / MANIFEST_NAME
        manifest = json.loads(path.read_text())
        damaged = [5, {"date": "2025-11-26", "rows": 6}, {"file": "date=2025-11-20/bars.parquet"},
                   {"date": "2025-11-21", "file": "../elsewhere.parquet"}]
        manifest["sessions"] += damaged
        path.write_text(json.dumps(manifest))
        problems = verify_archive(archive)
        assert len(problems) == 4, problems
        assert "entry 2 of " in problems[0]
        assert "is not an object" in problems[0]
        assert "entry 3" in problems[1]
        assert "no 'file'" in problems[1]
        assert "entry 4" in problems[2]
        assert "no valid 'date'" in problems[2]
        assert "entry 5" in problems[3]
        assert "not inside the archive" in problems[3]
        wh.end_session()  # seals 11-26 beside an entry of that date it does not understand
    sessions = read_manifest(archive)["sessions"]
    assert [s for s in sessions if s not in damaged] == [
        s for s in sessions if isinstance(s, dict) and set(s) > {"date", "file", "rows"}]
    assert [s["date"] for s in sessions if s not in damaged] == ["2025-11-25", "2025-11-26"]
    assert [s for s in sessions if s in damaged] == damaged  # kept, unchanged, in their order
    assert len(verify_archive(archive)) == 4
    assert main(["archive", "verify", "--archive", str(archive)]) == 1
    captured = capsys.readouterr()
    assert "entry 3 of " in captured.out  # the sessions first, then what is not understood
    assert "4 problems" in captured.err
    assert "bug" not in captured.err
    assert main(["archive", "list", "--archive", str(archive)]) == 0
    captured = capsys.readouterr()
    assert "2025-11-26  XNYS regular" in captured.out
    assert "entry 3: is not an object" in captured.out
    assert "bug" not in captured.err


# -- kill -9 anywhere in end_session and roll --------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading
    sys.path.insert(0, {root!r})
    from datetime import date
    from warehouse import Warehouse

    wh = Warehouse({db!r}, journal=True, flush_interval=None, archive={archive!r})
    days = [date(2025, 11, 25), date(2025, 11, 26), date(2025, 11, 28)]
    if wh.session is None:
        wh.start_session(days[0])
    print("START", flush=True)
    for i, day in enumerate(days):
        stamps = wh.calendar().minutes(day)[:{minutes}].tolist()
        for ts in stamps:
            for s in range({symbols}):
                wh.append(f"S{{s:02d}}", ts, 10.0, 11.0, 9.0, 10.5, 100.0)
        print("APPENDED", day, flush=True)
        if i == {kill_at}:  # said: the kill lands a moment later, in this day's roll or seal
            threading.Timer({delay!r}, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
        if i < len(days) - 1:
            wh.roll()
        else:
            wh.end_session()
        print("SEALED", day, flush=True)
    threading.Event().wait()  # done before the timer fired: wait for the kill
    """
)
SYMBOLS, MINUTES = 20, 100
DAYS = [date(2025, 11, 25), date(2025, 11, 26), date(2025, 11, 28)]


def session_keys(day: date) -> list[tuple[str, int]]:
    return sorted((f"S{s:02d}", ts) for ts in XNYS.minutes(day)[:MINUTES].tolist()
                  for s in range(SYMBOLS))


def kill_during_lifecycle(tmp_path: Path, seed: int) -> None:
    db, archive = tmp_path / "wh.duckdb", tmp_path / "archive"
    delay = random.Random(seed).uniform(0.0, 0.04)  # into the roll or seal that follows
    script = CHILD.format(root=str(ROOT), db=str(db), archive=str(archive), delay=delay,
                          kill_at=seed % len(DAYS), minutes=MINUTES, symbols=SYMBOLS)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "Traceback" not in child.stderr, child.stderr
    # A line the kill cut short was never said.
    said = [line.split() for line in child.stdout.splitlines(keepends=True) if line.endswith("\n")]
    appended = {date.fromisoformat(w[1]) for w in said if w[0] == "APPENDED"}
    sealed = {date.fromisoformat(w[1]) for w in said if w[0] == "SEALED"}
    with Warehouse(db, journal=True, flush_interval=None, archive=archive) as wh:
        session = wh.session
        assert session is not None
        inside = held(wh)
        manifest = {s["date"]: s for s in read_manifest(archive)["sessions"]}
        for day in DAYS:
            stored = partition(archive, day)
            if session.status == "open" and session.date == day:
                # Still open: whole in the warehouse (every acknowledged bar), nothing else.
                if day in appended:
                    assert inside == session_keys(day)
                else:
                    assert set(inside) <= set(session_keys(day))
                if stored.exists():  # an export before the kill: the whole session, again
                    assert keys_of(pq.read_table(stored)) == session_keys(day)
            elif day in appended or day in sealed or day < session.date:
                # Sealed: whole in the archive and its manifest, gone from the warehouse.
                assert keys_of(pq.read_table(stored)) == session_keys(day)
                assert manifest[day.isoformat()]["rows"] == len(session_keys(day))
                assert not set(inside) & set(session_keys(day))
            else:
                assert not stored.exists()
        assert sealed <= {d for d in DAYS if d < session.date or session.status == "sealed"}
        assert verify_archive(archive) == []
        # The interrupted day goes on: sealing it again leaves it whole.
        if session.status == "open":
            wh.end_session()
            assert set(inside) <= set(keys_of(pq.read_table(partition(archive, session.date))))
    assert verify_archive(archive) == []


@pytest.mark.parametrize(  # each day's roll or seal once; more under -m slow
    "seed", [*range(3), *(pytest.param(s, marks=pytest.mark.slow) for s in range(3, 20))])
def test_kill_at_random_points_of_end_session_and_roll_leaves_each_session_whole_or_sealed(
    tmp_path: Path, seed: int
) -> None:
    kill_during_lifecycle(tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 160))
def test_many_kills_during_end_session_and_roll(tmp_path: Path, seed: int) -> None:
    kill_during_lifecycle(tmp_path, seed)


# -- the command line ------------------------------------------------------------------------


def test_cli_archive_list_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from warehouse.cli import main

    archive = tmp_path / "archive"
    with open_wh(tmp_path) as wh:
        wh.start_session(date(2025, 11, 26))
        feed(wh, date(2025, 11, 26), minutes=10)
        wh.end_session()
    assert main(["archive", "list", "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "2025-11-26  XNYS regular" in out
    assert "20 bars" in out
    assert "1 sealed session" in out
    assert main(["archive", "verify", "--archive", str(archive)]) == 0
    assert "verified" in capsys.readouterr().out
    path = partition(archive, date(2025, 11, 26))
    path.write_bytes(path.read_bytes()[:-100])  # a torn file
    assert main(["archive", "verify", "--archive", str(archive)]) == 1
    captured = capsys.readouterr()
    assert "session 2025-11-26" in captured.out
    assert "1 problem" in captured.err
    assert main(["archive", "list", "--archive", str(tmp_path / "absent")]) == 1
    assert "is not an archive directory" in capsys.readouterr().err


def test_end_session_onto_a_full_archive_disk_keeps_the_session_open_and_whole(
    tmp_path: Path, tiny_disk: Callable[[str], None]
) -> None:
    """The archive's disk is full: end_session fails with ExportError, the session stays open
    with every bar (and takes bars again), no partial file is left; with room, it seals."""
    archive = tmp_path / "disk" / "archive"
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None, archive=archive) as wh:
        session = wh.start_session(date(2025, 11, 26))
        bars = generate_sessions(XNYS, session.date, 1, 400)[0]  # ~2.5 MB of Parquet
        wh.extend(bars)
        keys = keys_of(bars)
        with pytest.raises(ExportError, match="2025-11-26"):
            wh.end_session()
        assert wh.session == session
        assert held(wh) == sorted(keys)
        assert not [p for p in archive.rglob("*") if p.is_file()]
        keys += feed(wh, session.date, symbols=("LATE",), minutes=1)  # bars are taken again
        tiny_disk("64m")
        wh.end_session()
    assert keys_of(pq.ParquetFile(partition(archive, session.date)).read()) == sorted(keys)
    assert verify_archive(archive) == []


def test_end_session_racing_appends_archives_every_acknowledged_bar_once(tmp_path: Path) -> None:
    """A thread appends while the main thread seals the session: each append is either
    acknowledged (and then in the sealed partition, once) or refused; none is lost."""
    import threading

    stamps = XNYS.minutes(date(2025, 11, 26)).tolist()
    acknowledged: list[tuple[str, int]] = []
    started = threading.Event()

    def writer(wh: Warehouse) -> None:
        for i in range(20_000):
            key = (f"S{i % 50:02d}", stamps[(i // 50) % len(stamps)])
            try:
                wh.append(*key, 10.0, 11.0, 9.0, 10.5, 1.0)
            except InvalidBarError:
                continue  # refused: the session was ending or sealed
            acknowledged.append(key)
            started.set()

    with open_wh(tmp_path) as wh:
        wh.start_session(date(2025, 11, 26))
        thread = threading.Thread(target=writer, args=(wh,))
        thread.start()
        started.wait(30)
        wh.end_session()
        thread.join(60)
        assert wh.symbols() == []
    archived = keys_of(pq.ParquetFile(partition(tmp_path / "archive", date(2025, 11, 26))).read())
    assert archived == sorted(set(acknowledged))
    assert len(archived) == len(set(archived))
