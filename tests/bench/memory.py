"""Resident memory: bytes per bar, and peak RSS over many sessions, each in a fresh interpreter.

The parent (`measure_memory`) runs each probe as ``python -m tests.bench.memory KIND`` and reads
one JSON line from its stdout, so no probe sees the heap of the benchmark or of another probe.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

import warehouse
from warehouse.sample import generate_session
from warehouse.warehouse import Warehouse

from . import targets
from .report import Report, Row, progress
from .seed import SeedSessionData, fill_seed

SESSIONS = 10  # sessions ingested, exported and cleared in one process (memory stays bounded)
KINDS = ("warehouse", "seed", "sessions")


def measure_memory(report: Report, symbols: int, minutes: int) -> None:
    """Add the resident-memory rows: bytes per bar (ours vs the seed), peak RSS over sessions."""
    figures = {}
    for kind in ("warehouse", "seed"):
        progress(f"memory: {kind}, in a fresh subprocess")
        figures[kind] = run_probe(kind, symbols, minutes)
    ours, base = figures["warehouse"], figures["seed"]
    if ours is None or base is None:
        report.check(False, "memory: a probe subprocess failed")
        return
    ours_bytes, base_bytes = float(ours["bytes_per_bar"]), float(base["bytes_per_bar"])
    report.add(Row(
        "resident memory per bar", f"{ours_bytes:.0f} B", "seed deque of namedtuples",
        f"{base_bytes:.0f} B", ours_bytes / base_bytes, f"<= {targets.BYTES_PER_BAR:.0f} B",
        ours_bytes <= targets.BYTES_PER_BAR,
    ))
    progress(f"memory: {SESSIONS} sessions (extend, export, clear), in a fresh subprocess")
    sessions = run_probe("sessions", symbols, minutes)
    if sessions is None:
        report.check(False, "memory: the sessions probe failed")
        return
    first, worst = sessions["first"], sessions["worst"]
    report.add(Row(
        f"peak RSS, worst of sessions 2-{SESSIONS}", f"{worst / 2**20:.0f} MiB",
        "peak RSS of session 1", f"{first / 2**20:.0f} MiB", worst / first,
        f"<= {targets.PEAK_RSS_GROWTH:.2f}x (bounded)", worst <= targets.PEAK_RSS_GROWTH * first,
    ))
    report.note(
        "memory: peak RSS after each session, MiB: "
        + ", ".join(f"{peak / 2**20:.0f}" for peak in sessions["peaks"])
    )


def run_probe(kind: str, symbols: int, minutes: int) -> dict[str, Any] | None:
    """Run one probe in a fresh interpreter; its figures, or None if it failed."""
    # The child imports this folder and the same `warehouse` as this process, from any cwd.
    clone = Path(__file__).resolve().parents[2]
    package_parent = Path(warehouse.__file__).resolve().parents[1]
    env = dict(os.environ)
    paths = dict.fromkeys([str(clone), str(package_parent), env.get("PYTHONPATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    command = [sys.executable, "-m", __name__, kind, "--symbols", str(symbols),
               "--minutes", str(minutes)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# -- the probes (each runs in its own interpreter) ---------------------------------------------


def _rss() -> int:
    """Resident set size of this process, in bytes."""
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]  # optional (dev extra)
    except ImportError:
        with Path("/proc/self/statm").open() as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def probe(kind: str, symbols: int, minutes: int) -> dict[str, Any]:
    """Load a session into one structure and report the growth of RSS per bar.

    The session is generated and both code paths warmed on a tiny session before the first
    reading, so the delta holds the stored bars and the structure's own overhead only.
    """
    session = generate_session(symbols, minutes)
    if kind == "sessions":
        return _sessions_probe(session)
    with tempfile.TemporaryDirectory(prefix="warehouse-mem-") as tmp:
        small = generate_session(10, 5)
        with Warehouse(Path(tmp) / "warm.duckdb") as warm:
            warm.extend(small)
        asyncio.run(fill_seed(SeedSessionData(), small, 10))
        gc.collect()
        before = _rss()
        if kind == "warehouse":
            # Minute by minute, as a live feed delivers it; the default flusher runs.
            wh = Warehouse(Path(tmp) / "memory.duckdb")
            held: object = wh
            for minute in range(minutes):
                wh.extend(session.slice(minute * symbols, symbols))
            wh.checkpoint()
        else:
            seed = SeedSessionData()
            held = seed
            asyncio.run(fill_seed(seed, session, symbols))
        gc.collect()
        after = _rss()
        figure = {"bytes_per_bar": (after - before) / session.num_rows, "rss_delta": after - before}
        if isinstance(held, Warehouse):
            held.close()
    return figure


def _sessions_probe(session: pa.Table) -> dict[str, Any]:
    """Peak RSS of each session, for sessions ingested, exported and cleared in one process.

    The first session's peak is its working set; later peaks must not rise above it. The peak
    (Linux ``VmHWM``) is reset before each session, so the session's generation does not count.
    """
    peaks: list[int] = []
    with tempfile.TemporaryDirectory(prefix="warehouse-sessions-") as tmp, Warehouse(
        Path(tmp) / "sessions.duckdb"
    ) as wh:
        for day in range(SESSIONS):
            gc.collect()
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            wh.extend(session)
            wh.export_parquet(Path(tmp) / "archive" / str(day))
            wh.clear()
            peaks.append(_peak_rss())
    return {"first": peaks[0], "worst": max(peaks[1:]), "peaks": peaks}


def main(argv: list[str] | None = None) -> int:
    """Run one probe and print its figures as one JSON line (what `run_probe` reads)."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.memory",
                                     description="One resident-memory probe of the benchmark.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--symbols", type=int, required=True)
    parser.add_argument("--minutes", type=int, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.kind, args.symbols, args.minutes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
