"""kill -9 inside `clear()` and `close()`, at every step and at random moments (invariant 6).

The child journals (or flushes) an old session, then clears or closes; it kills itself with
SIGKILL right before or after one step of that lifecycle (the step list is the lifecycle's own
calls), or a thread kills it after a random delay. After the kill the file reopens and holds
the whole old session or none of it (clear), or every acknowledged bar exactly once (close);
bars acknowledged in the new session after the clear are all there.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

import warehouse as warehouse_package
from warehouse import Warehouse

ROOT = Path(warehouse_package.__file__).resolve().parent.parent
T0 = 1_763_735_400_000_000

CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    sys.path.insert(0, {root!r})
    from warehouse import Warehouse
    from warehouse.buffer import AppendBuffer
    from warehouse.journal import Journal
    from warehouse.store import BarStore

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    target, when, delay = {step!r}, {when!r}, {delay!r}
    armed = []
    if target != "random":
        owner_name, method = target.split(".")
        owners = {{"BarStore": BarStore, "Journal": Journal, "AppendBuffer": AppendBuffer}}
        owner = owners[owner_name]
        original = getattr(owner, method)

        def wrapped(*args, **kwargs):
            if armed and when == "before":
                die()
            result = original(*args, **kwargs)
            if armed and when == "after":
                die()
            return result

        setattr(owner, method, wrapped)

    wh = Warehouse({db!r}, journal={journal!r}, flush_interval=None)
    for i in range(300):
        wh.append("OLD", {t0} + i * 60_000_000, 1.0, 2.0, 0.5, 1.5, 10.0)
        if i == 149:
            wh.flush()  # half the old session stored, half only on the log (and journal)
    if not {journal!r}:
        wh.flush()  # without a journal, only flushed bars are acknowledged
    print("OLD 300", flush=True)
    if target == "random":
        threading.Timer(delay, die).start()
    else:
        armed.append(True)
    if {lifecycle!r} == "clear":
        wh.clear()
        armed.clear()
        print("CLEARED", flush=True)
        for i in range(100):
            wh.append("NEW", {t0} + i * 60_000_000, 1.0, 2.0, 0.5, 1.5, 10.0)
            if not {journal!r}:
                wh.flush()
            print("NEW", i + 1, flush=True)
        time.sleep(30)
    else:
        wh.close()
        print("CLOSED", flush=True)
        time.sleep(30)
    """
)

CLEAR_STEPS = ["BarStore.clear", "AppendBuffer.clear", "Journal.switch_epoch", "Journal.release",
               "BarStore.checkpoint"]
CLOSE_STEPS = ["AppendBuffer.close", "AppendBuffer.drain", "BarStore.write", "Journal.release",
               "BarStore.checkpoint", "Journal.close", "BarStore.close"]


def run_child(tmp_path: Path, lifecycle: str, step: str, when: str, journal: bool,
              delay: float = 0.0) -> tuple[Path, list[str]]:
    db = tmp_path / "wh.duckdb"
    script = CHILD.format(root=str(ROOT), db=str(db), journal=journal, step=step, when=when,
                          delay=delay, lifecycle=lifecycle, t0=T0)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert child.stdout is not None
    for line in child.stdout:
        if line.endswith("\n"):  # a line the kill cut short was never said
            lines.append(line.strip())
        if line.startswith(("NEW 100", "CLOSED")):
            child.send_signal(signal.SIGKILL)
    child.wait(60)
    assert child.stderr is not None
    errors = child.stderr.read()
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL, errors
    assert "Traceback" not in errors, errors
    return db, lines


def stored(db: Path, journal: bool) -> dict[str, list[int]]:
    with Warehouse(db, journal=journal, flush_interval=None) as wh:
        table = wh.sql("SELECT symbol, ts FROM bars ORDER BY symbol, ts")
    by_symbol: dict[str, list[int]] = {}
    for symbol, ts in zip(table.column("symbol").to_pylist(),
                          table.column("ts").cast(pa.int64()).to_pylist(), strict=True):
        by_symbol.setdefault(symbol, []).append(ts)
    return by_symbol


def minutes(n: int) -> list[int]:
    return [T0 + i * 60_000_000 for i in range(n)]


def check_clear(db: Path, lines: list[str], journal: bool) -> None:
    assert "OLD 300" in lines
    bars = stored(db, journal)
    old = bars.get("OLD", [])
    assert old in ([], minutes(300)), f"clear left {len(old)} of 300 old bars"
    if "CLEARED" in lines:
        assert old == []
    acked = max((int(line.split()[1]) for line in lines if line.startswith("NEW")), default=0)
    new = bars.get("NEW", [])
    assert new == minutes(len(new))  # in order, none twice, no hole
    assert len(new) >= acked  # every acknowledged one (one more may have been stored unsaid)




def quick(step: str, when: str, journal: bool) -> bool:
    """In the default suite: a kill right after each step (with the journal or without: a
    journal's steps never run without one); the others are `slow`."""
    return when == "after" and (journal or not step.startswith("Journal."))


CLEAR_CASES = [
    pytest.param(step, when, journal, id=f"{when}-{step}-{'journal' if journal else 'plain'}",
                 marks=() if quick(step, when, journal) else pytest.mark.slow)
    for step in CLEAR_STEPS for when in ("before", "after") for journal in (True, False)
]


@pytest.mark.parametrize(("step", "when", "journal"), CLEAR_CASES)
def test_kill_at_a_step_of_clear_leaves_whole_session_or_none(
    tmp_path: Path, step: str, when: str, journal: bool
) -> None:
    db, lines = run_child(tmp_path, "clear", step, when, journal)
    check_clear(db, lines, journal)


@pytest.mark.parametrize(
    "seed", [*range(2), *(pytest.param(s, marks=pytest.mark.slow) for s in range(2, 66))]
)
def test_kill_at_a_random_moment_of_clear_leaves_whole_session_or_none(
    tmp_path: Path, seed: int
) -> None:
    delay = random.Random(seed).uniform(0.0, 0.03)
    db, lines = run_child(tmp_path, "clear", "random", "", seed % 2 == 0, delay)
    check_clear(db, lines, seed % 2 == 0)


@pytest.mark.parametrize(("step", "when"), [
    pytest.param(step, when, id=f"{when}-{step}",
                 marks=() if quick(step, when, True) else pytest.mark.slow)
    for when in ("before", "after") for step in CLOSE_STEPS
])
def test_kill_at_a_step_of_close_keeps_every_journaled_bar_once(
    tmp_path: Path, step: str, when: str
) -> None:
    db, lines = run_child(tmp_path, "close", step, when, True)
    assert "OLD 300" in lines
    assert stored(db, True) == {"OLD": minutes(300)}


# -- kill -9 at each step of sealing a date that another warehouse sealed already ------------

SEAL_CHILD = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    sys.path.insert(0, {root!r})
    from datetime import date
    from warehouse import Warehouse, archive
    from warehouse.store import BarStore

    target, when = {target!r}, {when!r}
    armed, steps = [], []

    def kind(path):
        name = pathlib.Path(path).name
        if archive.MANIFEST_NAME in name:
            return "manifest"
        return "day file" if archive.FILE_NAME in name else "folder"

    def watch(owner, method, label):
        original = getattr(owner, method)

        def wrapped(*args, **kwargs):
            if not armed:
                return original(*args, **kwargs)
            steps.append(label(args))
            print("STEP", len(steps) - 1, steps[-1], flush=True)
            here = (steps[-1], steps.count(steps[-1])) == target
            if here and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            result = original(*args, **kwargs)
            if here and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(owner, method, wrapped)

    watch(BarStore, "write_parquet", lambda args: "write day file")
    watch(BarStore, "clear", lambda args: "clear warehouse")
    watch(archive, "_fsync", lambda args: "fsync " + kind(args[0]))
    watch(pathlib.Path, "replace", lambda args: "rename " + kind(args[0]))

    wh = Warehouse({db!r}, flush_interval=None, archive={archive!r})
    session = wh.start_session(date.fromisoformat({day!r}))
    for symbol, minute, close in {bars!r}:
        wh.append(symbol, session.open + minute * 60_000_000, 1.0, 2.0, 0.5, close, 10.0)
    wh.flush()  # acknowledged: durable without a journal
    print("READY", flush=True)
    armed.append(True)
    wh.end_session()
    armed.clear()
    print("SEALED", flush=True)
    wh.close()
    """
)
#: The steps of sealing a date already sealed, in order (the child's names for them).
RESEAL_STEPS = [
    "write day file", "fsync day file",                          # the merged file, beside
    "fsync manifest", "rename manifest", "fsync folder",         # its entry, pending
    "rename day file", "fsync folder",                           # the day's file replaced
    "fsync manifest", "rename manifest", "fsync folder",         # its entry, sealed
    "clear warehouse",
]
SEAL_DAY = "2025-11-26"
#: The first warehouse's bars (sealed before the child runs), then the second's: ES's first
#: five minutes again with another close (replaced key for key), and NQ.
FIRST = [("ES", m, 1.5) for m in range(10)] + [("CL", m, 1.5) for m in range(10)]
SECOND = [("ES", m, 1.25) for m in range(5)] + [("NQ", m, 1.25) for m in range(30)]


def seal_first(tmp_path: Path) -> Path:
    from warehouse import Calendar

    archive = tmp_path / "archive"
    opens = Calendar("XNYS").window(date.fromisoformat(SEAL_DAY)).open
    with Warehouse(tmp_path / "first.duckdb", flush_interval=None, archive=archive) as wh:
        wh.start_session(date.fromisoformat(SEAL_DAY))
        for symbol, minute, close in FIRST:
            wh.append(symbol, opens + minute * 60_000_000, 1.0, 2.0, 0.5, close, 10.0)
        wh.end_session()
    return archive


def reseal(tmp_path: Path, target: tuple[str, int] | None, when: str) -> tuple[Path, list[str]]:
    """Seal SEAL_DAY again from a second warehouse, killed at the ``target`` step (its name
    and which of the steps of that name; None: never)."""
    archive = seal_first(tmp_path)
    db = tmp_path / "second.duckdb"
    script = SEAL_CHILD.format(root=str(ROOT), db=str(db), archive=str(archive), target=target,
                               when=when, day=SEAL_DAY, bars=SECOND)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, check=False)
    lines = [line.strip() for line in child.stdout.splitlines(keepends=True)
             if line.endswith("\n")]
    if target is None:
        assert child.returncode == 0, child.stderr
    else:
        assert child.returncode == -signal.SIGKILL, child.stderr
        said = [line.split(" ", 2)[2] for line in lines if line.startswith("STEP")]
        assert (said[-1], said.count(said[-1])) == target, lines  # killed at that step
    return db, lines


def sealed_closes(archive: Path) -> dict[tuple[str, int], float]:
    import pyarrow.parquet as pq

    table = pq.read_table(archive / f"date={SEAL_DAY}" / "bars.parquet")
    minutes = table.column("ts").cast(pa.int64()).to_pylist()
    first = min(minutes)
    return {(s, (t - first) // 60_000_000): c for s, t, c in zip(
        table.column("symbol").to_pylist(), minutes, table.column("close").to_pylist(),
        strict=True)}


def check_reseal(tmp_path: Path, db: Path) -> None:
    from warehouse.archive import read_manifest, verify_archive

    archive = tmp_path / "archive"
    first = {(s, m): c for s, m, c in FIRST}
    both = {**first, **{(s, m): c for s, m, c in SECOND}}
    # As the kill left it: the day's file is the first seal's or the merged one, and the
    # manifest agrees with it, whichever it is.
    assert verify_archive(archive) == []
    assert sealed_closes(archive) in (first, both)
    with Warehouse(tmp_path / "third.duckdb", flush_interval=None, archive=archive) as other:
        session = other.start_session(date(2025, 11, 28))  # the next seal, of another date,
        other.append("ES", session.open, 1.0, 2.0, 0.5, 1.5, 10.0)  # settles it
        other.end_session()
    assert "pending" not in read_manifest(archive)
    assert verify_archive(archive) == []
    with Warehouse(db, flush_interval=None, archive=archive) as wh:
        assert wh.session is not None
        if wh.session.status == "open":  # killed before the clear: the session is whole
            assert wh.count("NQ") == 30
            wh.end_session()
    manifest = read_manifest(archive)
    assert [(s["date"], s["rows"], s["symbols"]) for s in manifest["sessions"]] == [
        (SEAL_DAY, len(both), 3), ("2025-11-28", 1, 1)]
    assert "pending" not in manifest
    assert sealed_closes(archive) == both
    assert verify_archive(archive) == []


def test_resealing_a_sealed_date_goes_through_the_steps_that_the_kills_target(
    tmp_path: Path,
) -> None:
    db, lines = reseal(tmp_path, None, "")
    assert [line.split(" ", 2)[2] for line in lines if line.startswith("STEP")] == RESEAL_STEPS
    assert lines[-1] == "SEALED"
    check_reseal(tmp_path, db)


#: Each step as (its name, which of the steps of that name).
RESEAL_TARGETS = [(name, RESEAL_STEPS[: i + 1].count(name)) for i, name in enumerate(RESEAL_STEPS)]
#: In the default suite: right after the day's file is replaced, and after each manifest
#: rename; every other step is `slow`.
DEFAULT_KILLS = {("after", ("rename day file", 1)), ("after", ("rename manifest", 1)),
                 ("after", ("rename manifest", 2))}
RESEAL_KILLS = [
    pytest.param(target, when, id=f"{when}-{target[0].replace(' ', '-')}-{target[1]}",
                 marks=() if (when, target) in DEFAULT_KILLS else pytest.mark.slow)
    for target in RESEAL_TARGETS for when in ("before", "after")
]


@pytest.mark.parametrize(("target", "when"), RESEAL_KILLS)
def test_kill_at_a_step_of_resealing_a_date_leaves_file_and_manifest_agreeing(
    tmp_path: Path, target: tuple[str, int], when: str
) -> None:
    db, _ = reseal(tmp_path, target, when)
    check_reseal(tmp_path, db)
