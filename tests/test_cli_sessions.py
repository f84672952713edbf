"""A trading day from the command line: `session`, `info`, and `quality`/`plot` of sealed days."""

from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from warehouse import Warehouse, WarehouseError
from warehouse.calendar import Calendar
from warehouse.cli import main
from warehouse.sample import generate_session

DAY1, DAY2 = "2025-11-24", "2025-11-25"


def day_bars(day: str, symbols: int = 3, minutes: int = 30):
    window = Calendar("XNYS").window(datetime.fromisoformat(day).date())
    return generate_session(symbols, minutes, start=window.open_time)


@pytest.fixture
def day_files(tmp_path):
    """Two sessions' bars as Parquet files (3 symbols x 30 minutes from each open)."""
    paths = []
    for day in (DAY1, DAY2):
        path = tmp_path / f"{day}.parquet"
        pq.write_table(day_bars(day), path)
        paths.append(path)
    return paths


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_whole_day_from_the_command_line(tmp_path, day_files, capsys):
    """start -> ingest -> quality -> end -> roll -> quality/plot of the sealed day -> info."""
    db, archive = tmp_path / "live.duckdb", tmp_path / "archive"
    code, out, _ = run(capsys, "session", "start", "--db", db, "--archive", archive, "--date", DAY1)
    assert code == 0
    assert f"session {DAY1} XNYS regular hours: open, 14:30Z to 21:00Z (09:30 to 16:00 " \
           "America/New_York)" in out
    assert run(capsys, "ingest", day_files[0], "--db", db, "-q")[0] == 0
    code, out, _ = run(capsys, "quality", "--db", db, "--now", f"{DAY1}T15:30:00Z")
    assert code == 0
    assert f"session {DAY1} XNYS: 60 of 390 minutes due, 3 symbols" in out
    code, out, _ = run(capsys, "session", "end", "--db", db, "--archive", archive)
    assert code == 0
    assert f"sealed session {DAY1} (XNYS) into {archive}: 90 bars" in out
    assert "sealed" in out
    # The next session, from the calendar, by roll after a start.
    assert run(capsys, "session", "start", "--db", db, "--archive", archive, "--date", DAY2)[0] == 0
    assert run(capsys, "ingest", day_files[1], "--db", db, "-q")[0] == 0
    code, out, _ = run(capsys, "session", "roll", "--db", db, "--archive", archive)
    assert code == 0
    assert f"sealed session {DAY2} (XNYS)" in out
    assert "session 2025-11-26 XNYS regular hours: open" in out
    # Sealed days read from the archive.
    code, out, _ = run(capsys, "quality", "--date", DAY1, "--archive", archive,
                       "--now", f"{DAY1}T15:00:00Z")
    assert code == 0
    assert f"session {DAY1} XNYS: 30 of 390 minutes due, 3 symbols, 3 complete; bar quality " \
           "100.00% (90 of 90 bars)" in out
    png = tmp_path / "aapl.png"
    code, out, _ = run(capsys, "plot", "AAPL", "--date", DAY2, "--archive", archive, "--png", png,
                       "--now", f"{DAY2}T21:00:00Z")
    assert code == 0, out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "30 one-minute bars of AAPL, session 2025-11-25 XNYS; 1 gap, 360 minutes" in out
    code, out, _ = run(capsys, "info", "--db", db, "--archive", archive)
    assert code == 0
    assert "bars: 0 bars of 0 symbols" in out
    assert "session 2025-11-26 XNYS regular hours: open" in out
    assert f"archive: {archive}: 2 sealed sessions, {DAY1} to {DAY2}" in out


def test_session_start_on_a_holiday_is_refused_and_stores_nothing(tmp_path, capsys):
    db = tmp_path / "w.duckdb"
    code, _, err = run(capsys, "session", "start", "--db", db, "--date", "2025-11-27")
    assert code == 1
    assert "2025-11-27 is not a session" in err
    assert "next: 2025-11-28" in err
    code, out, _ = run(capsys, "session", "status", "--db", db)
    assert (code, out.strip()) == (0, "no session was started: the file takes bars of any time")


@pytest.mark.parametrize(("calendar", "extended"), [("XLON", False), ("XNYS", True)])
def test_session_start_takes_the_calendar_and_extended_hours(tmp_path, capsys, calendar,
                                                             extended):
    db = tmp_path / "w.duckdb"
    code, out, _ = run(capsys, "session", "start", "--db", db, "--date", "2025-11-26",
                       "--calendar", calendar, *(["--extended-hours"] if extended else []))
    assert code == 0
    hours = "extended" if extended else "regular"
    assert f"session 2025-11-26 {calendar} {hours} hours: open" in out
    with Warehouse(db, read_only=True) as wh:
        assert wh.session is not None
        assert (wh.session.calendar, wh.session.extended_hours) == (calendar, extended)


@pytest.mark.parametrize(("argv", "message"), [
    (["session", "end"], "pass --archive DIR"),
    (["session", "roll"], "pass --archive DIR"),
    (["session", "end", "--archive", "A", "--date", DAY1], "--date and --calendar are for start"),
    (["session", "status", "--date", DAY1], "takes --db (and --archive) only"),
])
def test_session_misuse_is_one_line(tmp_path, capsys, argv, message):
    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        wh.start_session(datetime.fromisoformat(DAY1).date())
    code, _, err = run(capsys, *argv, "--db", db)
    assert code == 1
    assert err.count("\n") == 1
    assert message in err


def test_end_without_an_open_session_names_the_command_to_start_one(tmp_path, capsys):
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    code, _, err = run(capsys, "session", "end", "--db", db, "--archive", tmp_path / "a")
    assert code == 1
    assert "no session is open" in err


@pytest.mark.parametrize("command", [["quality"], ["plot", "AAPL"]])
def test_quality_and_plot_of_a_day_not_sealed_name_the_sealed_ones(tmp_path, capsys, command):
    db, archive = tmp_path / "w.duckdb", tmp_path / "archive"
    with Warehouse(db, archive=archive) as wh:
        wh.start_session(datetime.fromisoformat(DAY1).date())
        wh.extend(day_bars(DAY1))
        wh.end_session()
    code, _, err = run(capsys, *command, "--date", DAY2, "--archive", archive)
    assert code == 1
    assert f"session {DAY2} is not sealed in {archive} (sealed, latest last: {DAY1})" in err
    code, _, err = run(capsys, *command, "--date", DAY1)
    assert code == 1
    assert "pass --archive DIR" in err
    code, _, err = run(capsys, *command)
    assert code == 1
    assert "pass --db FILE" in err


def test_quality_of_a_sealed_day_counts_its_filled_bars_as_present(tmp_path, capsys):
    """The day file's origin survives the reread: filled bars are present, and drawn filled."""
    db, archive = tmp_path / "w.duckdb", tmp_path / "archive"
    bars = day_bars(DAY1, symbols=1, minutes=10)
    with Warehouse(db, archive=archive) as wh:
        wh.start_session(datetime.fromisoformat(DAY1).date())
        wh.extend(bars.slice(0, 5))
        wh.fill(bars.slice(5))
        wh.end_session()
    now = datetime(2025, 11, 24, 14, 40, tzinfo=UTC).isoformat()
    code, out, _ = run(capsys, "quality", "--date", DAY1, "--archive", archive, "--now", now)
    assert code == 0
    assert "bar quality 100.00% (10 of 10 bars)" in out
    code, out, _ = run(capsys, "plot", "AAPL", "--date", DAY1, "--archive", archive, "--now", now,
                       "--png", tmp_path / "p.png")
    assert code == 0
    assert "; 5 filled" in out


def test_info_names_journal_segments_a_crash_left(tmp_path, capsys):
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    journal = tmp_path / "w.duckdb.journal"
    journal.mkdir()
    (journal / "00000001.journal").write_bytes(b"")
    code, out, _ = run(capsys, "info", "--db", db)
    assert code == 0
    assert "journal: 1 segment a crashed writer left" in out


def test_sql_over_history_without_an_archive_says_to_pass_one(tmp_path, capsys):
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    code, _, err = run(capsys, "sql", "SELECT count(*) FROM history", "--db", db)
    assert code == 1
    assert "`history` holds the archive's sealed sessions" in err
    assert "--archive DIR" in err
    assert "Catalog Error" not in err
    with Warehouse(":memory:") as wh, pytest.raises(WarehouseError, match="archive=DIR"):
        wh.sql("SELECT * FROM bars_all")


def test_sql_over_an_empty_bars_after_a_seal_points_at_the_archive(tmp_path, capsys):
    db, archive = tmp_path / "w.duckdb", tmp_path / "archive"
    with Warehouse(db, archive=archive) as wh:
        wh.start_session(datetime.fromisoformat(DAY1).date())
        wh.extend(day_bars(DAY1))
        wh.end_session()
    code, out, err = run(capsys, "sql", "SELECT count(*) AS n FROM bars", "--db", db, "--csv")
    assert (code, out) == (0, "n\n0\n")
    assert f"note: bars is empty: session {DAY1} was sealed" in err
    code, out, err = run(capsys, "sql", "SELECT count(*) AS n FROM bars_all", "--db", db,
                         "--archive", archive, "--csv")
    assert (code, out, err) == (0, "n\n90\n", "")
