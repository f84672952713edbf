"""The benchmark's command line: ``python -m tests.bench [--symbols N] [--minutes M] ...``.

Runs every measurement over one generated session (by default DESIGN.md's full session: 8,000
symbols x 390 one-minute bars) and prints one table to stdout: operation, our figure, the
baseline and its figure, the cost ratio (ours / baseline: below 1 means we are cheaper), the
target and whether it is met. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from .derived import measure_derived
from .endpoint import measure_endpoint
from .ingest import measure_ingest
from .measure import Session
from .memory import measure_memory
from .pipelines import measure_pipelines
from .quality import measure_quality
from .report import Report, progress
from .sessions import measure_session_start
from .timestamps import measure_timestamps

#: The full session of DESIGN.md, and the smoke-run size of ``--quick``.
FULL_SYMBOLS = 8_000
QUICK_SYMBOLS = 500
MINUTES = 390
#: The measurements, in the order they run, each with those whose state it needs (reads use
#: the appended warehouse and the seed; SQL and export also the plain DuckDB file of extend).
GROUPS: dict[str, tuple[str, ...]] = {
    "append": (),
    "reads": ("append",),
    "flush": (),
    "extend": (),
    "sql": ("append", "extend"),
    "resample": ("append",),
    "export": ("append", "extend"),
    "sessions": (),
    "quality": (),
    "ingest": (),
    "derived": (),
    "endpoint": (),
    "timestamps": (),
    "pipelines": (),
    "memory": (),
}


def _groups(only: str | None) -> list[str]:
    """The measurement groups to run for ``--only`` (all of them for None), needs included."""
    if only is None:
        return list(GROUPS)
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    unknown = wanted - set(GROUPS)
    if unknown or not wanted:
        raise ValueError(f"--only takes some of {', '.join(GROUPS)}; got {only!r}")
    for name in list(wanted):
        wanted.update(GROUPS[name])
    return [name for name in GROUPS if name in wanted]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Benchmark the warehouse against same-run baselines (DESIGN.md targets).",
    )
    parser.add_argument("--symbols", type=int, default=None,
                        help=f"symbols in the session (default {FULL_SYMBOLS}, "
                             f"{QUICK_SYMBOLS} with --quick)")
    parser.add_argument("--minutes", type=int, default=MINUTES,
                        help=f"one-minute bars per symbol (default {MINUTES})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a fast smoke run: {QUICK_SYMBOLS} symbols, 1 repeat")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per heavy measurement, median taken (default 3, 1 with --quick)")
    parser.add_argument("--only", default=None, metavar="GROUP[,GROUP...]",
                        help=f"run only these measurements ({', '.join(GROUPS)}), and those "
                             "they need (reads, sql, resample and export need append)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the result table.

    Parameters
    ----------
    argv
        Command-line arguments (without the program name); ``sys.argv[1:]`` if None.

    Returns
    -------
    int
        0 once the table is printed (a missed target is a result, not an error); argparse
        exits with 2 for bad arguments.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    symbols = args.symbols or (QUICK_SYMBOLS if args.quick else FULL_SYMBOLS)
    repeat = args.repeat or (1 if args.quick else 3)
    if symbols < 1 or args.minutes < 1 or repeat < 1:
        parser.error("--symbols, --minutes and --repeat must be positive")
    try:
        groups = _groups(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    header = (
        f"warehouse bench: {symbols} symbols x {args.minutes} minutes = "
        f"{symbols * args.minutes:,} bars; repeat {repeat}; Python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}, pyarrow {pa.__version__}, polars {pl.__version__}, "
        f"{os.cpu_count()} CPUs"
        + ("" if args.only is None else f"; only {', '.join(groups)}")
        + "\n"
        "ours/base is a cost ratio: below 1 means the warehouse is cheaper than the baseline."
    )
    report = Report()
    with tempfile.TemporaryDirectory(prefix="warehouse-bench-") as tmp:
        session = Session(symbols, args.minutes, repeat, Path(tmp), report)
        steps = {
            "append": session.measure_append,
            "reads": session.measure_reads,
            "flush": session.measure_flush,
            "extend": session.measure_extend,
            "sql": session.measure_sql,
            "resample": session.measure_resample,
            "export": session.measure_export,
            "sessions": lambda: measure_session_start(report, session.session, Path(tmp), repeat),
            "quality": lambda: measure_quality(report, session.session, repeat),
            "ingest": lambda: measure_ingest(report, session.session, repeat, Path(tmp)),
            "derived": lambda: measure_derived(report, session.session, repeat, Path(tmp)),
            "endpoint": lambda: measure_endpoint(report, session.session, repeat, Path(tmp)),
            "timestamps": lambda: measure_timestamps(report, session.session, repeat, Path(tmp)),
            "pipelines": lambda: measure_pipelines(report, session.session, repeat, Path(tmp)),
        }
        try:
            for name in groups:
                if name not in ("append", "reads"):
                    session.drop_seed()  # 3 M bar objects: free them before the next ones
                if name not in ("append", "reads", "flush"):
                    session.drop_feed()
                if name in steps:
                    steps[name]()
        finally:
            session.close()
    if "memory" in groups:
        measure_memory(report, symbols, args.minutes)
    progress("done")
    report.note(
        "each append run starts from a collected, frozen heap (gc.freeze), so neither side pays "
        "for scanning the other's bars; the collector stays on for the bars a run makes"
    )
    report.print_table(header)
    return 0
