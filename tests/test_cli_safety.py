"""The command line never destroys what it did not create, and fails in one line.

- `demo` checks its input before it touches anything, reuses only a warehouse file it created
  itself (marked ``origin = demo`` in ``warehouse_meta``), and goes through DuckDB's lock.
- `sql`, `query` and `export` never create the file they are asked to read.
- No output (``--output``, ``--rejects``, ``--png``, ``--out``, an ingest's ``--db``) writes over
  the warehouse file, its WAL or journal, an input or an archive file, by any name of them.
- Every failure is one ``warehouse: error: ...`` line on stderr and a non-zero exit: no traceback.
- Progress bars draw only on a terminal.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import warehouse as warehouse_package
import warehouse.cli as cli
from warehouse import Warehouse
from warehouse.calendar import Calendar
from warehouse.cli import main
from warehouse.sample import generate_session

ROOT = Path(warehouse_package.__file__).resolve().parent.parent
CHILD_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
PREFIX = "warehouse: error: "
#: A sealed session and an open one (XNYS).
DAY0, DAY1 = date(2025, 11, 21), date(2025, 11, 24)


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def session_file(tmp_path: Path) -> Path:
    """A small session: 5 symbols x 30 one-minute bars."""
    path = tmp_path / "session.parquet"
    pq.write_table(generate_session(5, 30), path)
    return path


@pytest.fixture
def plain_db(tmp_path: Path, session_file: Path) -> Path:
    """A warehouse file made through the library (not by the demo) holding the 150 bars."""
    path = tmp_path / "wh.duckdb"
    with Warehouse(path, flush_interval=None) as wh:
        wh.extend(pq.read_table(session_file))
    return path


@pytest.fixture
def demo_db(tmp_path: Path, session_file: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A warehouse file the demo created (and so may reuse)."""
    path = tmp_path / "demo.duckdb"
    code = main(["demo", "--data", str(session_file), "--db", str(path),
                 "--out", str(tmp_path / "demo_archive")])
    assert code == 0
    capsys.readouterr()
    return path


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    """A regular file: a path under it cannot be created, even by root."""
    path = tmp_path / "somefile"
    path.write_text("not a directory\n")
    return path


Fingerprint = tuple[bytes, int, bool]


def fingerprint(path: Path) -> Fingerprint:
    """The bytes and mtime of a file, and whether a WAL sits beside it."""
    return path.read_bytes(), path.stat().st_mtime_ns, Path(f"{path}.wal").exists()


def one_error_line(err: str) -> str:
    """The message of the single error line in ``err``, which must be all of stderr."""
    assert "Traceback" not in err, err
    assert err.endswith("\n"), repr(err)
    assert err.count("\n") == 1, err
    assert err.startswith(PREFIX), err
    return err[len(PREFIX):-1]


def bar_count(path: Path) -> int:
    with Warehouse(path, read_only=True) as wh:
        return int(wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py())


def demo(data: Path, db: Path, out: Path) -> int:
    return main(["demo", "--data", str(data), "--db", str(db), "--out", str(out)])


# -- 1. demo: input first, its own file only, through DuckDB's lock ----------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _not_bars(path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}), path)


def _mistyped(path: Path) -> None:
    table = generate_session(2, 3)
    index = table.schema.get_field_index("ts")
    seconds = table.column("ts").cast(pa.int64()).cast(pa.float64())  # no timestamp type
    pq.write_table(table.set_column(index, "ts", seconds), path)


def _invalid_bar(path: Path) -> None:
    table = generate_session(2, 3)
    index = table.schema.get_field_index("high")
    highs = table.column("high").to_pylist()
    highs[-1] = -1.0  # high below low: the last bar is invalid
    pq.write_table(table.set_column(index, "high", pa.array(highs, pa.float64())), path)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_garbage, "cannot be read as Parquet"),
        (_empty, "cannot be read as Parquet"),
        (_not_bars, "lacks columns"),
        (_mistyped, "'ts'"),
        (_invalid_bar, "high"),
        (None, "does not exist"),
    ],
    ids=["garbage", "zero-bytes", "no-bar-columns", "mistyped-column", "invalid-last-bar",
         "missing"],
)
def test_demo_with_bad_input_fails_before_touching_the_warehouse(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], None] | None, expected: str,
) -> None:
    data = tmp_path / "input.parquet"
    if make is not None:
        make(data)
    before = fingerprint(demo_db)
    assert demo(data, demo_db, tmp_path / "out") == 1
    message = one_error_line(capsys.readouterr().err)
    assert str(data) in message
    assert expected in message
    assert fingerprint(demo_db) == before
    assert not (tmp_path / "out").exists()


def test_demo_with_a_directory_as_input_fails(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fingerprint(demo_db)
    assert demo(tmp_path, demo_db, tmp_path / "out") == 1
    assert str(tmp_path) in one_error_line(capsys.readouterr().err)
    assert fingerprint(demo_db) == before


def test_demo_marks_the_file_it_creates(
    demo_db: Path, session_file: Path
) -> None:
    with Warehouse(demo_db, read_only=True) as wh:
        assert wh._store.meta("origin") == "demo"
    assert bar_count(demo_db) == 150


def test_demo_reuses_its_own_file_by_emptying_it(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(generate_session(3, 10, seed=11), other)
    assert demo(other, demo_db, tmp_path / "out") == 0
    assert "replayed 30 bars of 3 symbols" in capsys.readouterr().out
    assert bar_count(demo_db) == 30
    with Warehouse(demo_db, read_only=True) as wh:
        assert wh._store.meta("origin") == "demo"


def test_demo_refuses_a_warehouse_it_did_not_create(
    plain_db: Path, session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fingerprint(plain_db)
    assert demo(session_file, plain_db, tmp_path / "out") == 1
    message = one_error_line(capsys.readouterr().err)
    assert message == f"{plain_db} is a warehouse the demo did not create; pass another --db"
    assert fingerprint(plain_db) == before
    assert bar_count(plain_db) == 150
    assert not (tmp_path / "out" / "date=2025-11-21").exists()


def test_demo_refuses_a_foreign_duckdb_file(
    session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "theirs.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE accounts AS SELECT range AS id FROM range(10)")
    before = fingerprint(path)
    assert demo(session_file, path, tmp_path / "out") == 1
    assert str(path) in one_error_line(capsys.readouterr().err)
    assert fingerprint(path) == before


@pytest.mark.parametrize("content", [b"", b"garbage " * 512], ids=["zero-bytes", "garbage"])
def test_demo_refuses_a_file_that_is_not_a_duckdb_database(
    session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_bytes(content)
    before = fingerprint(path)
    assert demo(session_file, path, tmp_path / "out") == 1
    assert str(path) in one_error_line(capsys.readouterr().err)
    assert fingerprint(path) == before


HOLDER = textwrap.dedent("""
    import sys
    from warehouse import Warehouse
    wh = Warehouse(sys.argv[1], flush_interval=None)
    print("READY", flush=True)
    sys.stdin.readline()
    wh.close()
""")


def test_demo_does_not_replace_a_file_another_process_holds(
    demo_db: Path, session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(demo_db)], cwd=ROOT, env=CHILD_ENV, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "READY"
        before = fingerprint(demo_db)
        time.sleep(0.01)  # an mtime written by a replacement would differ
        assert demo(session_file, demo_db, tmp_path / "out") == 1
        message = one_error_line(capsys.readouterr().err)
        assert str(demo_db) in message
        assert "lock" in message
        assert fingerprint(demo_db) == before
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)
        for pipe in (holder.stdin, holder.stdout, holder.stderr):
            if pipe is not None:
                pipe.close()
    assert bar_count(demo_db) == 150


# -- 2. commands that read a warehouse never create it -----------------------------------------


READERS = {
    "sql": ["sql", "SELECT count(*) FROM bars"],
    "query": ["query", "session_ohlcv"],
    "export": ["export", "--out", "{out}"],
}


@pytest.mark.parametrize("command", sorted(READERS))
def test_read_commands_on_a_missing_file_fail_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "missing.duckdb"
    args = [a.format(out=tmp_path / "out") for a in READERS[command]]
    assert main([*args, "--db", str(path)]) == 1
    message = one_error_line(capsys.readouterr().err)
    assert str(path) in message
    assert "does not exist" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(READERS))
def test_read_commands_on_a_directory_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "dir.duckdb"
    path.mkdir()
    args = [a.format(out=tmp_path / "out") for a in READERS[command]]
    assert main([*args, "--db", str(path)]) == 1
    assert str(path) in one_error_line(capsys.readouterr().err)
    assert list(path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(READERS))
def test_read_commands_on_a_file_that_is_not_duckdb_fail_and_leave_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "garbage.duckdb"
    path.write_bytes(os.urandom(8192))
    before = fingerprint(path)
    args = [a.format(out=tmp_path / "out") for a in READERS[command]]
    assert main([*args, "--db", str(path)]) == 1
    assert str(path) in one_error_line(capsys.readouterr().err)
    assert fingerprint(path) == before


def test_export_does_not_write_to_a_foreign_duckdb_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "theirs.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE accounts AS SELECT range AS id FROM range(10)")
    before = fingerprint(path)
    assert main(["export", "--db", str(path), "--out", str(tmp_path / "out")]) == 1
    assert str(path) in one_error_line(capsys.readouterr().err)
    assert fingerprint(path) == before


CRASHER = textwrap.dedent("""
    import os, sys
    from warehouse import Warehouse
    wh = Warehouse(sys.argv[1], journal=True, flush_interval=None)
    for m in range(3):
        wh.append("CRASH", f"2025-11-21T14:3{m}:00Z", 10.0, 11.0, 9.0, 10.5, 100.0 + m)
    os._exit(0)  # no flush, no close: the bars are only in the journal
""")


FLUSHED_CRASHER = textwrap.dedent("""
    import os, sys
    from warehouse import Warehouse
    wh = Warehouse(sys.argv[1], flush_interval=None)
    for m in range(3):
        wh.append("CRASH", f"2025-11-21T14:3{m}:00Z", 10.0, 11.0, 9.0, 10.5, 100.0 + m)
    wh.flush()
    os._exit(0)  # flushed, never compacted or closed: the bars wait in the tail table
""")


@pytest.mark.parametrize("crasher", [CRASHER, FLUSHED_CRASHER], ids=["journaled", "flushed"])
def test_export_settles_what_a_crashed_process_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], crasher: str
) -> None:
    path = tmp_path / "crashed.duckdb"
    subprocess.run([sys.executable, "-c", crasher, str(path)], cwd=ROOT, env=CHILD_ENV,
                   check=True, timeout=60)
    out = tmp_path / "out"
    assert main(["export", "--db", str(path), "--out", str(out)]) == 0
    assert "exported 3 bars" in capsys.readouterr().out
    table = pq.read_table(out / "date=2025-11-21" / "bars.parquet")
    assert table.column("volume").to_pylist() == [100.0, 101.0, 102.0]
    assert not list(Path(f"{path}.journal").glob("*.journal"))
    assert bar_count(path) == 3


SESSION_CRASHER = textwrap.dedent("""
    import os, sys
    from warehouse import Warehouse
    wh = Warehouse(sys.argv[1], journal=True, flush_interval=None)  # its session open
    for m in range(3):
        wh.append("AAPL", f"2025-11-24T14:3{m}:00Z", 10.0, 11.0, 9.0, 10.5, 100.0 + m)
    os._exit(0)  # no flush, no close: the bars are only in the journal
""")


def test_read_only_commands_say_that_a_crashed_writers_journaled_bars_are_not_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "crashed.duckdb"
    with Warehouse(db, flush_interval=None) as wh:
        wh.start_session(DAY1)
    subprocess.run([sys.executable, "-c", SESSION_CRASHER, str(db)], cwd=ROOT, env=CHILD_ENV,
                   check=True, timeout=60)
    segments = len(list(Path(f"{db}.journal").glob("*.journal")))
    assert segments >= 1
    before = _snapshot(tmp_path)
    now = "2025-11-24T15:00:00+00:00"
    # sql's open is query's too, and plot's is quality's.
    for argv in (["sql", "SELECT count(*) AS n FROM bars", "--csv"],
                 ["plot", "AAPL", "--now", now, "--png", str(tmp_path / "a.png")]):
        code = main([*argv, "--db", str(db)])
        err = capsys.readouterr().err
        # plot has no bar of AAPL to draw: the journaled ones are not read
        assert code == (1 if argv[0] == "plot" else 0), err
        warning = err.splitlines()[0]
        assert warning == (
            f"warehouse: warning: {db}.journal holds {segments} segment"
            f"{'s' if segments != 1 else ''} of bars a crashed writer acknowledged but never "
            "flushed; a read-only command does not read them: "
            f"`warehouse export --db {db} --out DIR` replays them into the file")
    assert _snapshot(tmp_path) == before  # read-only: nothing written, the journal kept
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert main(["sql", "SELECT count(*) AS n FROM bars", "--csv", "--db", str(db)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "n\n3\n"
    assert captured.err == ""


# -- 3. every failure is one line ----------------------------------------------------------------


def test_export_under_a_regular_file_fails_in_one_line(
    plain_db: Path, regular_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = regular_file / "archive"
    assert main(["export", "--db", str(plain_db), "--out", str(out)]) == 1
    assert str(regular_file) in one_error_line(capsys.readouterr().err)


def test_generate_under_a_regular_file_fails_in_one_line(
    regular_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = regular_file / "gen" / "session.parquet"
    assert main(["generate", "--symbols", "2", "--minutes", "2", "--out", str(out)]) == 1
    assert str(regular_file) in one_error_line(capsys.readouterr().err)
    assert regular_file.read_text() == "not a directory\n"


def test_demo_with_an_unusable_out_fails_before_making_the_warehouse(
    session_file: Path, regular_file: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "fresh.duckdb"
    assert demo(session_file, db, regular_file / "archive") == 1
    assert str(regular_file) in one_error_line(capsys.readouterr().err)
    assert not db.exists()


def test_demo_with_a_db_under_a_regular_file_fails_in_one_line(
    session_file: Path, regular_file: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert demo(session_file, regular_file / "demo.duckdb", tmp_path / "out") == 1
    assert str(regular_file) in one_error_line(capsys.readouterr().err)


def test_demo_with_a_directory_as_db_fails_in_one_line(
    session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "dir.duckdb"
    db.mkdir()
    assert demo(session_file, db, tmp_path / "out") == 1
    assert str(db) in one_error_line(capsys.readouterr().err)
    assert list(db.iterdir()) == []


def test_a_multi_line_database_error_is_printed_on_one_line(
    plain_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "SELECT nope FROM bars", "--db", str(plain_db)]) == 1
    message = one_error_line(capsys.readouterr().err)
    assert "nope" in message
    assert "Candidate bindings" in message


@pytest.mark.parametrize(
    "argv",
    [["sql"], ["demo", "--bogus"], ["generate", "--out", "{tmp}/x.parquet", "--symbols", "0"],
     ["nonsense"]],
    ids=["missing-argument", "unknown-option", "not-positive", "unknown-command"],
)
def test_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_help_returns_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    assert "--db" in capsys.readouterr().out


def test_keyboard_interrupt_exits_130_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_queries", interrupted)
    try:
        code = main(["queries"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main()")
    assert code == 130
    assert one_error_line(capsys.readouterr().err) == "interrupted"


def test_keyboard_interrupt_during_the_replay_leaves_a_reopenable_file(
    session_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Interrupting:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __enter__(self) -> Interrupting:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "tqdm", Interrupting)
    db = tmp_path / "demo.duckdb"
    try:
        code = demo(session_file, db, tmp_path / "out")
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main()")
    assert code == 130
    assert one_error_line(capsys.readouterr().err) == "interrupted"
    monkeypatch.undo()
    assert demo(session_file, db, tmp_path / "out") == 0  # still the demo's own file


def _raiser(exc: BaseException) -> Callable[..., object]:
    def raise_it(*args: object, **kwargs: object) -> object:
        raise exc

    return raise_it


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (PermissionError(13, "Permission denied", "/some/where"), "Permission denied"),
        (OSError(28, "No space left on device"), "No space left on device"),
    ],
    ids=["permission", "enospc"],
)
def test_an_os_error_from_anywhere_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    exc: OSError, expected: str,
) -> None:
    monkeypatch.setattr(cli, "load_queries", _raiser(exc))
    assert main(["queries"]) == 1
    assert expected in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        (pa.ArrowInvalid("arrow broke\nsecond line"), "ArrowInvalid"),
        (pl.exceptions.ComputeError("polars broke"), "ComputeError"),
        (duckdb.IOException("duck broke"), "IOException"),
    ],
    ids=["pyarrow", "polars", "duckdb"],
)
def test_a_library_error_that_escapes_unwrapped_is_one_line_naming_its_type(
    plain_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    exc: Exception, name: str,
) -> None:
    monkeypatch.setattr(Warehouse, "sql_polars", _raiser(exc))
    assert main(["sql", "SELECT 1", "--db", str(plain_db)]) == 1
    message = one_error_line(capsys.readouterr().err)
    assert name in message
    assert "broke" in message


def test_an_unexpected_error_is_one_line_naming_its_type(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_queries", _raiser(RuntimeError("boom")))
    monkeypatch.delenv("WAREHOUSE_TRACEBACK", raising=False)
    assert main(["queries"]) == 1
    message = one_error_line(capsys.readouterr().err)
    assert "RuntimeError" in message
    assert "boom" in message


def test_an_unexpected_error_shows_its_traceback_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_queries", _raiser(RuntimeError("boom")))
    monkeypatch.setenv("WAREHOUSE_TRACEBACK", "1")
    assert main(["queries"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith(PREFIX)


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head(1)")
def test_a_closed_stdout_pipe_ends_quietly_without_a_traceback(plain_db: Path) -> None:
    producer = subprocess.Popen(
        [sys.executable, "-m", "warehouse", "sql", "SELECT range AS n FROM range(300000)",
         "--db", str(plain_db), "--rows", "100000"],
        cwd=ROOT, env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert producer.stdout is not None
    assert producer.stderr is not None
    head = subprocess.Popen(["head", "-1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # head alone reads it now: its exit closes the pipe
    first, _ = head.communicate(timeout=60)
    err = producer.stderr.read().decode()
    producer.stderr.close()
    code = producer.wait(60)
    assert first.startswith(b"shape: (300_000, 1)")
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err
    assert err == ""
    assert code == cli.EXIT_BROKEN_PIPE == 141


# -- 4. progress bars only on a terminal ----------------------------------------------------------


def test_progress_bars_stay_off_when_stderr_is_not_a_terminal(
    session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.duckdb"
    assert demo(session_file, db, tmp_path / "a") == 0
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "b")]) == 0
    assert main(["ingest", str(session_file), "--db", str(tmp_path / "in.duckdb")]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "\r" not in captured.out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_draw_on_a_terminal(
    session_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    db = tmp_path / "demo.duckdb"
    assert demo(session_file, db, tmp_path / "a") == 0
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "b")]) == 0
    assert main(["ingest", str(session_file), "--db", str(tmp_path / "in.duckdb")]) == 0
    drawn = terminal.getvalue()
    assert "replay" in drawn
    assert "export" in drawn
    assert "read" in drawn
    assert "store" in drawn
    assert "\r" in drawn


def test_quiet_draws_no_progress_bar_even_on_a_terminal(
    session_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    db = tmp_path / "in.duckdb"
    assert main(["ingest", str(session_file), "--db", str(db), "--quiet"]) == 0
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert terminal.getvalue() == ""
    assert capsys.readouterr().out == ""


# -- 5. no output over the warehouse file, its WAL and journal, an input or an archive -----------

def day_bars(day: date, symbols: int = 3, minutes: int = 30) -> pa.Table:
    return generate_session(symbols, minutes, start=Calendar("XNYS").window(day).open_time)


@pytest.fixture(scope="module")
def live_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journaled warehouse with DAY0 sealed into its archive and DAY1 open (90 bars each)."""
    folder = tmp_path_factory.mktemp("live")
    with Warehouse(folder / "wh.duckdb", journal=True, flush_interval=None,
                   archive=folder / "archive") as wh:
        wh.start_session(DAY0)
        wh.extend(day_bars(DAY0))
        wh.end_session()
        wh.start_session(DAY1)
        wh.extend(day_bars(DAY1))
    return folder


@pytest.fixture
def live(live_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of `live_template`'s folder: wh.duckdb, wh.duckdb.journal/, archive/."""
    folder = tmp_path / "live"
    shutil.copytree(live_template, folder)
    return folder


def _hard_link(target: Path, tmp_path: Path, name: str) -> Path:
    link = tmp_path / "links" / name
    link.parent.mkdir(exist_ok=True)
    link.hardlink_to(target)
    return link


def _symlink(target: Path, tmp_path: Path, name: str) -> Path:
    link = tmp_path / "links" / name
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(target)
    return link


#: Ways to name what no output may replace: (db, archive, tmp_path) -> the output path.
OVERWRITES: dict[str, Callable[[Path, Path, Path], Path]] = {
    "the-file": lambda db, archive, tmp: db,
    "another-spelling": lambda db, archive, tmp: db.parent / "." / db.name,
    "a-hard-link": lambda db, archive, tmp: _hard_link(db, tmp, "hard.csv"),
    "a-symlink": lambda db, archive, tmp: _symlink(db, tmp, "soft.csv"),
    "its-wal": lambda db, archive, tmp: Path(f"{db}.wal"),
    "a-symlink-to-its-wal": lambda db, archive, tmp: _symlink(Path(f"{db}.wal"), tmp, "w.csv"),
    "into-its-journal": lambda db, archive, tmp: Path(f"{db}.journal") / "out.csv",
    "a-day-file": lambda db, archive, tmp: archive / f"date={DAY0}" / "bars.parquet",
    "the-manifest": lambda db, archive, tmp: archive / "_manifest.json",
}

#: Every output option, on the --db of the `live` folder: {db}, {out}, {csv} filled in.
OUTPUT_OPTIONS = {
    "sql--output": ["sql", "SELECT * FROM bars", "--db", "{db}", "--output", "{out}"],
    "query--output": ["query", "session_ohlcv", "--db", "{db}", "--output", "{out}"],
    "ingest--rejects": ["ingest", "{csv}", "--db", "{db}", "--on-invalid", "report",
                        "--rejects", "{out}"],
    "quality--png": ["quality", "--db", "{db}", "--png", "{out}"],
    "plot--png": ["plot", "AAPL", "--db", "{db}", "--png", "{out}"],
}


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (links not followed): its bytes and mtime."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _bars_csv(path: Path) -> Path:
    """One bar of DAY1 and one crossed (rejected) bar."""
    path.write_text("symbol,ts,open,high,low,close,volume\n"
                    "ES,2025-11-24T15:00:00Z,10,11,9,10.5,100\n"
                    "ES,2025-11-24T15:01:00Z,10,9,11,10.5,100\n")
    return path


@pytest.mark.parametrize(("command", "target"), [  # by default each command and each target once
    pytest.param(c, t, id=f"{c}-{t}",
                 marks=() if c == "sql--output" or t == "the-file" else pytest.mark.slow)
    for t in sorted(OVERWRITES) for c in sorted(OUTPUT_OPTIONS)
])
def test_output_path_that_names_the_warehouse_journal_or_archive_is_refused(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, target: str
) -> None:
    db, archive = live / "wh.duckdb", live / "archive"
    csv = _bars_csv(tmp_path / "bars.csv")
    out = OVERWRITES[target](db, archive, tmp_path)
    before = _snapshot(live)
    argv = [a.format(db=db, out=out, csv=csv) for a in OUTPUT_OPTIONS[command]]
    assert main(argv) == 1
    message = one_error_line(capsys.readouterr().err)
    assert f"{out} would write over " in message
    assert message.endswith(f"; pass another {argv[-2]}")
    assert _snapshot(live) == before  # nothing written: not the file, its WAL, journal, archive
    assert bar_count(db) == 90


def test_output_into_the_archive_given_or_a_hard_link_to_its_files_is_refused(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, archive = live / "wh.duckdb", live / "archive"
    day_file = archive / f"date={DAY0}" / "bars.parquet"
    before = _snapshot(live)
    for out in (archive / "notes.csv", _hard_link(day_file, tmp_path, "day.parquet"),
                _symlink(archive, tmp_path, "arch") / "x.csv"):
        assert main(["sql", "SELECT * FROM history", "--db", str(db), "--archive",
                     str(archive), "--output", str(out)]) == 1
        message = one_error_line(capsys.readouterr().err)
        assert f"--output {out} would write over " in message
        assert str(archive) in message
    assert _snapshot(live) == before
    assert pq.read_table(day_file).num_rows == 90


def test_a_sealed_session_drawn_over_its_own_day_file_is_refused(
    live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = live / "archive"
    day_file = archive / f"date={DAY0}" / "bars.parquet"
    before = _snapshot(live)
    for command in (["quality"], ["plot", "AAPL"]):
        assert main([*command, "--date", str(DAY0), "--archive", str(archive), "--png",
                     str(day_file)]) == 1
        assert "would write over" in one_error_line(capsys.readouterr().err)
    assert _snapshot(live) == before


@pytest.mark.parametrize("given", ["the-file", "its-folder", "a-glob"])
def test_ingest_rejects_over_one_of_its_inputs_is_refused_before_anything_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    first = _bars_csv(data / "a.csv")
    _bars_csv(data / "b.csv")
    source = {"the-file": first, "its-folder": data, "a-glob": data / "*.csv"}[given]
    before = _snapshot(data)
    db = tmp_path / "wh.duckdb"
    for out in (first, data / "b.csv", _hard_link(first, tmp_path, "a_again.csv")):
        if given == "the-file" and out == data / "b.csv":
            continue  # not an input then
        assert main(["ingest", str(source), "--db", str(db), "--on-invalid", "report",
                     "--rejects", str(out)]) == 1
        message = one_error_line(capsys.readouterr().err)
        assert message.startswith(f"--rejects {out} would write over the input file ")
        assert _snapshot(data) == before
        assert not db.exists()


def test_ingest_into_one_of_its_inputs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _bars_csv(tmp_path / "bars.csv")
    before = data.read_bytes()
    assert main(["ingest", str(data), "--db", str(data)]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"--db {data} would write over the input file {data}; pass another --db")
    assert data.read_bytes() == before
