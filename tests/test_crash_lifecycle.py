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


CLEAR_CASES = [
    pytest.param(step, when, journal, id=f"{when}-{step}-{'journal' if journal else 'plain'}")
    for step in CLEAR_STEPS for when in ("before", "after") for journal in (True, False)
]


@pytest.mark.parametrize(("step", "when", "journal"), CLEAR_CASES)
def test_kill_at_a_step_of_clear_leaves_whole_session_or_none(
    tmp_path: Path, step: str, when: str, journal: bool
) -> None:
    db, lines = run_child(tmp_path, "clear", step, when, journal)
    check_clear(db, lines, journal)


@pytest.mark.parametrize(
    "seed", [*range(6), *(pytest.param(s, marks=pytest.mark.slow) for s in range(6, 66))]
)
def test_kill_at_a_random_moment_of_clear_leaves_whole_session_or_none(
    tmp_path: Path, seed: int
) -> None:
    delay = random.Random(seed).uniform(0.0, 0.03)
    db, lines = run_child(tmp_path, "clear", "random", "", seed % 2 == 0, delay)
    check_clear(db, lines, seed % 2 == 0)


@pytest.mark.parametrize("step", CLOSE_STEPS)
@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_at_a_step_of_close_keeps_every_journaled_bar_once(
    tmp_path: Path, step: str, when: str
) -> None:
    db, lines = run_child(tmp_path, "close", step, when, True)
    assert "OLD 300" in lines
    assert stored(db, True) == {"OLD": minutes(300)}
