"""Crash recovery (invariants 6 and 7): a child process ingests a session and is killed with
SIGKILL at random points (mid-flush, mid-export, mid-checkpoint, right after an acknowledgement,
at a random time); after each kill the file reopens, every acknowledged bar is there exactly
once with the values written, the archive holds only whole Parquet files, and ingestion resumes.

Each case has a fixed seed: the kill plan, the session and so every failure reproduce. The child
is tests/crash_child.py; the acknowledgement that makes bars durable depends on the warehouse
mode, so a journal mode is one more entry in MODES.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import warehouse as warehouse_package
from warehouse import Warehouse

CHILD_PATH = Path(__file__).resolve().with_name("crash_child.py")
ROOT = Path(warehouse_package.__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("crash_child", CHILD_PATH)
assert _spec is not None
assert _spec.loader is not None
child = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("crash_child", child)
_spec.loader.exec_module(child)

TEMP_NAME = re.compile(r"\.bars\.parquet\.[0-9a-f]{32}\.tmp")
KILL_KINDS = ("mid-flush", "after-flush", "mid-export", "after-export", "at-resume", "random")
#: kind -> (the line that arms the kill, which of those lines at most, the longest random delay
#: after it in seconds). A flush of a chunk takes ~5 ms, an export ~8 ms on the 2-core machine.
TRIGGERS = {
    "mid-flush": ("FLUSHING", 2, 0.006),
    "after-flush": ("FLUSHED", 2, 0.0),
    "mid-export": ("EXPORTING", 2, 0.010),
    "after-export": ("EXPORTED", 2, 0.0),
    "at-resume": ("START", 1, 0.02),
}
#: How long the child may stay silent before it counts as hung (a loaded machine is slow).
LINE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Mode:
    """A warehouse configuration, and the child's line that acknowledges bars as durable."""

    options: dict[str, Any]
    ack: str


MODES = [
    pytest.param(Mode({}, "FLUSHED"), id="flush-acknowledges"),
    # With the journal, a bar is acknowledged as soon as its append returns.
    pytest.param(Mode({"journal": True}, "APPENDED"), id="journal"),
]


# -- the child ------------------------------------------------------------------------------------


@dataclass
class Run:
    """One child process: its lines as they come, and what it acknowledged."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    errors: str = ""
    ended: bool = False

    def next_line(self, timeout: float = LINE_TIMEOUT) -> str | None:
        """The child's next line; None at its end; raises `queue.Empty` if none came in time
        (short timeouts), or fails the test showing the stacks of a child gone silent."""
        if self.ended:
            return None
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            if timeout < LINE_TIMEOUT:
                raise
            raise AssertionError(f"the child went silent (hung?) after {self.seen[-3:]}; "
                                 f"its threads:\n{self.stacks()}") from None
        if line is None:
            self.ended = True
        else:
            self.seen.append(line)
        return line

    def read_until(self, deadline: float, most_chunks: int) -> bool:
        """Read lines until ``deadline`` or until ``most_chunks`` chunks were appended; False at
        the child's end."""
        chunks = 0
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.next_line(timeout=left)
            except queue.Empty:
                return True
            if line is None:
                return False
            if line.startswith("APPENDED"):
                chunks += 1
                if chunks >= most_chunks:
                    return True
        return True

    def wait_for(self, word: str, occurrence: int) -> bool:
        """Read lines until the occurrence-th one starting with ``word``, or DONE (the child
        finished first); False at the end."""
        count = 0
        while (line := self.next_line()) is not None:
            if line.startswith("DONE"):
                return True
            if line.split()[0] == word:
                count += 1
                if count == occurrence:
                    return True
        return False

    def finish(self) -> None:
        """Read what is left after the child exited or was killed."""
        while self.next_line() is not None:
            pass
        self.process.wait(LINE_TIMEOUT)
        assert self.process.stderr is not None
        self.errors = self.process.stderr.read()

    def stacks(self) -> str:
        """Every thread's stack of a live child (faulthandler on SIGUSR1), then kill it."""
        if self.process.poll() is not None:
            return "(it exited)"
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        self.process.kill()
        self.process.wait(LINE_TIMEOUT)
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def close(self) -> None:
        """Never leave a child or a pipe behind, whatever failed."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(LINE_TIMEOUT)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def acked(self, word: str) -> int:
        return max([int(s.split()[1]) for s in self.seen if s.split()[0] == word], default=0)

    def exported(self) -> int:
        return max([int(s.split()[1]) for s in self.seen if s.startswith("EXPORTED")], default=0)


@contextlib.contextmanager
def spawned(db: Path, archive: Path, config: dict[str, Any]) -> Iterator[Run]:
    run = spawn(db, archive, config)
    try:
        yield run
    finally:
        run.close()


def spawn(db: Path, archive: Path, config: dict[str, Any]) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(CHILD_PATH), str(db), str(archive), json.dumps(config)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    run = Run(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            run.lines.put(line.strip())
        run.lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return run


def kill_run(run: Run, kind: str, rng: random.Random, started: float) -> bool:
    """Kill the child at a point of ``kind`` (after its DONE if it got no further: it holds
    there); False if it exited."""
    if kind == "random":
        # Anywhere from interpreter start-up, reopening (WAL replay, restore) to a few chunks in.
        if not run.read_until(started + rng.uniform(0.05, 0.8), most_chunks=3):
            return False
    else:
        word, most, delay = TRIGGERS[kind]
        if not run.wait_for(word, rng.randint(1, most)):
            return False
        if delay:
            time.sleep(rng.uniform(0.0, delay))
    if run.process.poll() is not None:
        return False
    os.kill(run.process.pid, signal.SIGKILL)
    return True


# -- what a reopened warehouse and its archive must hold -------------------------------------------


@dataclass
class Expected:
    """The session, and for every bar its correction target status."""

    table: pa.Table
    position: dict[tuple[str, int], int]
    due_by: dict[int, int]  # correction target t -> the bar j that brings it

    @classmethod
    def of(cls, table: pa.Table) -> Expected:
        keys = zip(table.column("symbol").to_pylist(),
                   table.column("ts").cast(pa.int64()).to_pylist(), strict=True)
        position = {key: j for j, key in enumerate(keys)}
        due_by = {t: j for j, t in child.correction_targets(0, table.num_rows)}
        return cls(table, position, due_by)

    def check(self, got: pa.Table, *, prefix: bool) -> np.ndarray:
        """Check bars read back; return their session positions.

        Every bar is a session bar, once, with the values written (original, or corrected if it
        is a correction target); with ``prefix``, the bars are exactly the first N of the session.
        """
        keys = zip(got.column("symbol").to_pylist(),
                   got.column("ts").cast(pa.int64()).to_pylist(), strict=True)
        at = np.array([self.position.get(key, -1) for key in keys], dtype=np.int64)
        assert (at >= 0).all(), "a bar that was never written"
        assert len(np.unique(at)) == len(at), "a bar is stored twice"
        if prefix:
            assert np.array_equal(np.sort(at), np.arange(len(at))), "stored bars are no prefix"
        want = self.table.take(pa.array(at))
        for name in want.column_names:
            if name != "volume":
                assert got.column(name).equals(want.column(name).cast(got.schema.field(
                    name).type)), f"column {name} differs from what was written"
        volume = got.column("volume").to_numpy()
        original = want.column("volume").to_numpy()
        is_target = np.array([t in self.due_by for t in at.tolist()], dtype=bool)
        fixed = volume == original + 0.5
        assert ((volume == original) | (is_target & fixed)).all(), "a torn or foreign volume"
        return at

    def check_corrections(self, got: pa.Table, at: np.ndarray, acked: int, stored: int) -> None:
        """Corrections brought by acknowledged bars are in; none from bars never stored is."""
        volume = got.column("volume").to_numpy()
        original = self.table.column("volume").to_numpy()[at]
        for row, t in enumerate(at.tolist()):
            j = self.due_by.get(t)
            if j is None:
                continue
            if j < acked or j + child.CHUNK < stored:
                assert volume[row] == original[row] + 0.5, f"lost the correction of bar {t}"
            if j >= stored:
                assert volume[row] == original[row], f"correction of bar {t} came from nowhere"


def stored_bars(wh: Warehouse) -> pa.Table:
    return wh.sql("SELECT * EXCLUDE (origin) FROM bars ORDER BY symbol, ts")


def check_reopened(wh: Warehouse, expected: Expected, acked: int) -> int:
    """The reopened warehouse: a prefix of at least ``acked`` bars, once each, hot reads agreeing.

    Returns the number of bars stored.
    """
    got = stored_bars(wh)
    at = expected.check(got, prefix=True)
    stored = len(at)
    assert stored >= acked, f"acknowledged {acked} bars, only {stored} survived"
    expected.check_corrections(got, at, acked, stored)
    assert wh.stats()["bars"] == stored
    assert wh.stats()["unflushed"] == 0
    per_symbol = wh.sql(
        "SELECT symbol, count(*) AS n, max(ts) AS last FROM bars GROUP BY symbol").to_pylist()
    for row in per_symbol:
        assert wh.count(row["symbol"]) == row["n"]
        latest = wh.latest(row["symbol"])
        assert latest is not None
        assert latest.time == row["last"]
    check_metrics(wh)
    return stored


def check_metrics(wh: Warehouse) -> None:
    """Session metrics, restored from the file and the journal's replay, agree with SQL."""
    ohlcv = {row["symbol"]: row for row in wh.query("session_ohlcv").to_pylist()}
    frame = wh.metrics_frame()
    assert frame["symbol"].to_list() == list(ohlcv)
    for row in frame.to_dicts():
        expected = ohlcv[row["symbol"]]
        record = wh.metrics(row["symbol"])
        assert record is not None
        assert record.bar_count == expected["bar_count"]
        for name in ("first_ts", "last_ts", "bar_count", "open", "high", "low", "close"):
            assert row[name] == expected[name], (name, row, expected)
        for name in ("volume", "vwap"):
            assert row[name] == pytest.approx(expected[name], rel=1e-9), (name, row, expected)


def check_archive(archive: Path, expected: Expected, stored_per_day: dict[str, int],
                  previous: dict[str, int]) -> tuple[dict[str, int], int]:
    """Each day: no file, or one whole Parquet file of at most the stored rows, never fewer rows
    than before; only temporary files beside it, which no reader of *.parquet sees.

    Returns rows per day and the number of temporary files.
    """
    if not archive.exists():
        return {}, 0
    rows: dict[str, int] = {}
    temps = 0
    for entry in sorted(archive.rglob("*")):
        if entry.is_dir():
            assert re.fullmatch(r"date=\d{4}-\d{2}-\d{2}", entry.name), entry
            continue
        if TEMP_NAME.fullmatch(entry.name):
            temps += 1
            continue
        assert entry.name == "bars.parquet", f"unexpected file {entry}"
        day = entry.parent.name.removeprefix("date=")
        table = pq.read_table(entry)  # a partial file would not parse
        assert table.num_rows == pq.ParquetFile(entry).metadata.num_rows
        at = expected.check(table, prefix=False)
        keys = table.select(["symbol", "ts"])
        assert keys.equals(keys.take(pc.sort_indices(keys, [("symbol", "ascending"),
                                                             ("ts", "ascending")])))
        assert table.num_rows <= stored_per_day.get(day, 0), f"{day}: more rows than stored"
        assert table.num_rows >= previous.get(day, 0), f"{day}: an export lost rows"
        assert len(at) == table.num_rows
        rows[day] = table.num_rows
    globbed = sorted(p.name for p in archive.glob("**/*.parquet"))
    assert globbed == ["bars.parquet"] * len(rows), "a temporary file looks like data"
    dataset = ds.dataset(archive, format="parquet", partitioning="hive")
    assert dataset.count_rows() == sum(rows.values())
    return rows, temps


def stored_per_day(wh: Warehouse) -> dict[str, int]:
    table = wh.sql("SELECT strftime(ts, '%Y-%m-%d') AS day, count(*) AS n FROM bars GROUP BY 1")
    return {row["day"]: row["n"] for row in table.to_pylist()}


# -- the test -------------------------------------------------------------------------------------


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    temps: int = 0


def crash_case(tmp_path: Path, mode: Mode, seed: int, kills: int, tally: Tally,
               **session: Any) -> None:
    """``kills`` runs of the child, each killed at a point the seeded plan picks, checked after
    each; then a run that completes the session. A kill costs the session at most 5 chunks."""
    rng = random.Random(seed)
    config = {**child.DEFAULTS, **session, "seed": seed,
              "options": {**child.DEFAULTS["options"], **mode.options}}
    table = child.session(config)
    expected = Expected.of(table)
    db, archive = tmp_path / "crash.duckdb", tmp_path / "archive"
    plan = [KILL_KINDS[(seed + k) % len(KILL_KINDS)] for k in range(kills)]
    rng.shuffle(plan)
    exported: dict[str, int] = {}
    stored = 0
    for kind in plan:
        with spawned(db, archive, {**config, "hold": True}) as run:
            killed = kill_run(run, kind, rng, time.monotonic())
            run.finish()
        assert killed, f"the child ended before a {kind} kill: {run.seen[-3:]} {run.errors}"
        assert run.process.returncode == -signal.SIGKILL, run.errors
        tally.kills[kind] += 1
        starts = [int(s.split()[1]) for s in run.seen if s.startswith("START")]
        assert starts in ([], [stored]), "the child resumed elsewhere than the stored bars"
        with Warehouse(db, flush_interval=None, **mode.options) as wh:
            acked = max(run.acked(mode.ack), stored)
            stored = check_reopened(wh, expected, acked)
            exported, temps = check_archive(archive, expected, stored_per_day(wh), exported)
            assert sum(exported.values()) >= run.exported()
            tally.temps = max(tally.temps, temps)
            # Ingestion resumes here too: the next chunk, flushed, adds up.
            start = child.resume(wh, table)
            stop = min(start + child.CHUNK, table.num_rows)
            child.feed(wh, table, start, stop, batch=bool(stored % 2))
            assert wh.flush() >= stop - start
            assert wh.stats()["bars"] == stop
            assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == stop
            stored = stop
    # The last run is not killed: it completes the session, and everything adds up.
    with spawned(db, archive, config) as run:
        run.finish()
    assert run.process.returncode == 0, run.errors
    assert run.seen[-1] == f"DONE {table.num_rows}"
    with Warehouse(db, flush_interval=None, **mode.options) as wh:
        assert check_reopened(wh, expected, table.num_rows) == table.num_rows
        days = stored_per_day(wh)
        exported, temps = check_archive(archive, expected, days, exported)
        assert exported == days
    final = pl.scan_parquet(archive / "**" / "*.parquet", hive_partitioning=True).collect()
    assert final.height == table.num_rows
    glob = str(archive / "**" / "*.parquet")
    assert duckdb.sql("SELECT count(*) FROM read_parquet($glob)", params={"glob": glob}
                      ).fetchall() == [(table.num_rows,)]


@pytest.mark.parametrize("mode", MODES)
# One seed a mode by default: its six kills take each kind once (the plan cycles the kinds).
@pytest.mark.parametrize(
    "seed", [11, *(pytest.param(s, marks=pytest.mark.slow) for s in (23, 37, 41))])
def test_kill_at_random_points_keeps_acknowledged_bars_once_and_archive_whole(
    tmp_path: Path, mode: Mode, seed: int
) -> None:
    tally = Tally()
    crash_case(tmp_path, mode, seed, kills=6, tally=tally)
    assert sorted(tally.kills) == sorted(KILL_KINDS)
    assert sum(tally.kills.values()) == 6
    print(f"seed {seed}: kills {dict(tally.kills)}, temporary files left {tally.temps}")


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(100, 110))
def test_many_kills_at_random_points_keep_acknowledged_bars_once_and_archive_whole(
    tmp_path: Path, mode: Mode, seed: int
) -> None:
    tally = Tally()
    crash_case(tmp_path, mode, seed, kills=12, tally=tally, symbols=100)
    assert sum(tally.kills.values()) == 12
