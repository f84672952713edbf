"""Resident memory: bytes per bar, and peak RSS over many sessions, each in a fresh interpreter.

The parent (`measure_memory`) runs each probe as ``python -m tests.bench.memory KIND`` and reads
one JSON line from its stdout, so no probe sees the heap of the benchmark or of another probe.
The warehouse probe also says where its bytes went (`_breakdown`), as a note under the table;
``python -m tests.bench.memory warehouse --symbols 8000 --minutes 390`` prints it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import re
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
MIB = 2**20


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
    parts = ours.get("breakdown")
    if parts:
        report.note("memory: where the warehouse's bytes are, B/bar: " + ", ".join(
            f"{name} {size / (symbols * minutes):.1f}" for name, size in parts.items()))
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _heaps() -> dict[str, int]:
    """Bytes the process's heaps hold now: pymalloc's arenas, glibc's malloc, Arrow's pool.

    pymalloc (objects up to 512 B: the bars) from ``sys._debugmallocstats``; glibc's
    ``mallinfo2`` (larger Python blocks: timestamp arrays, window lists), where there is one.
    """
    import pyarrow as pa

    heaps = {"arrow": pa.total_allocated_bytes()}
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)  # the stats go to C's stderr
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    for key, pattern in (("pymalloc_used", r"# bytes in allocated blocks\s*=\s*([\d,]+)"),
                         ("pymalloc_arenas", r"\nTotal\s*=\s*([\d,]+)")):
        found = re.search(pattern, text)
        heaps[key] = int(found.group(1).replace(",", "")) if found else 0
    heaps.update(_jemalloc())
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return heaps
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    heaps["malloc_used"] = info.uordblks + info.hblkhd
    heaps["malloc_free"] = info.fordblks
    return heaps


def _jemalloc() -> dict[str, int]:
    """DuckDB's jemalloc: bytes allocated, and resident (freed pages not yet purged too)."""
    import duckdb  # loads the extension module that holds the allocator

    module = sys.modules.get("_duckdb") or sys.modules.get("duckdb.duckdb")
    try:
        call = ctypes.CDLL(getattr(module, "__file__", None) or duckdb.__file__).duckdb_je_mallctl
    except (OSError, AttributeError):
        return {}  # a build without jemalloc's mallctl: its part stays in `rest`
    value, size = ctypes.c_uint64(1), ctypes.c_size_t(8)
    call(b"epoch", None, None, ctypes.byref(value), ctypes.c_size_t(8))  # refresh the stats
    figures = {}
    for key in ("allocated", "resident"):
        if call(f"stats.{key}".encode(), ctypes.byref(value), ctypes.byref(size), None, 0) == 0:
            figures[f"duckdb_{key}"] = value.value
    return figures


def _breakdown(wh: Warehouse, heaps: dict[str, int], rss_delta: int) -> dict[str, int]:
    """Where the RSS growth of a session went, in bytes (each part measured, the rest inferred).

    The hot state's parts (sizes of its objects) live in the heaps: bars and their symbol
    strings in pymalloc's arenas, timestamp arrays and window lists in malloc's. DuckDB's part
    is its buffer pool (``duckdb_memory()``), what else its allocator has handed out, and the
    pages it holds freed. ``rest``: the interpreter's and libraries' own growth, and rounding.
    """
    hot = wh._buffer.hot
    series = list(hot.series.values())
    bars = [bar for s in series for bar in s.window]
    now = _heaps()
    grown = {key: now[key] - heaps.get(key, 0) for key in now}
    duckdb_pool = int(wh.sql("SELECT sum(memory_usage_bytes) AS b FROM duckdb_memory()")
                      .column("b")[0].as_py())
    parts = {
        "timestamps": sum(sys.getsizeof(s.stamps) for s in series),
        "window bars": sum(sys.getsizeof(bar) for bar in bars),
        "symbol strings": sum(sys.getsizeof(name) for name in
                              {id(bar.symbol): bar.symbol for bar in bars}.values()),
        "window lists": sum(sys.getsizeof(s.window) for s in series),
        "symbols' state": sum(sys.getsizeof(s) for s in series)
        + sys.getsizeof(hot.series) + sys.getsizeof(hot.latest_bars) + sys.getsizeof(hot.names),
        "pymalloc unused": grown["pymalloc_arenas"] - grown["pymalloc_used"],
        "malloc free": grown.get("malloc_free", 0),
        "arrow": grown["arrow"],
        "duckdb buffer pool": duckdb_pool,
    }
    if "duckdb_allocated" in grown:
        parts["duckdb other"] = grown["duckdb_allocated"] - duckdb_pool
        parts["duckdb freed, resident"] = grown["duckdb_resident"] - grown["duckdb_allocated"]
    parts["rest"] = rss_delta - sum(parts.values())
    return parts


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
        heaps = _heaps()
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
        figure: dict[str, Any] = {"bytes_per_bar": (after - before) / session.num_rows,
                                  "rss_delta": after - before}
        if isinstance(held, Warehouse):
            figure["breakdown"] = _breakdown(held, heaps, after - before)
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
