"""The ``warehouse`` command: ingest files, replay the sample session, run SQL, export, generate.

The benchmark is no subcommand: it is a tool of the clone, ``python -m tests.bench``.

Only this module prints. Every failure is one line on stderr, ``warehouse: error: ...``, and a
non-zero exit (never a traceback):

- 1: a `WarehouseError` or an `OSError`; an error of DuckDB, pyarrow or polars that escaped
  unwrapped (the line names its type); anything else (the line names the type and says it is
  a bug; ``WAREHOUSE_TRACEBACK=1`` prints the traceback before it).
- 2: a usage error (unknown option, missing argument).
- 130: interrupted (Ctrl-C).
- 141 (128 + SIGPIPE, what a shell shows for a tool killed by a closed pipe): stdout was closed
  by its reader, as in ``warehouse sql ... | head``; nothing is printed, as for ``yes | head``.

No command deletes or replaces a warehouse file it did not create: `demo` reuses only a file it
made itself (``origin = demo`` in ``warehouse_meta``), and `sql`, `query` and `export` never
create the file they read. No output option writes over the warehouse file, its WAL or journal,
an input or an archive, by any name of them (`_refuse_overwrites`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn, get_args
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from warehouse import __version__
from warehouse._files import Protected
from warehouse._output import (
    FORMATS,
    TABLE_ROWS,
    OutputFormat,
    format_of,
    output_format,
    write_frame,
)
from warehouse.archive import MANIFEST_NAME, entry_problem, read_manifest, verify_archive
from warehouse.calendar import DEFAULT_CODE, Calendar
from warehouse.client import connect
from warehouse.derive import interval_minutes, resample_params
from warehouse.endpoint import Limits, endpoint_file
from warehouse.errors import StoreError, WarehouseError
from warehouse.ingest import Ambiguous, IngestResult, OnDuplicate, input_files, scan
from warehouse.journal import has_segments
from warehouse.quality import open_session, session_calendar
from warehouse.queries import Queries, load_queries
from warehouse.replay import read_bars, replay, sessions_of
from warehouse.sample import generate_session, generate_sessions, sample_path
from warehouse.schema import COLUMNS, MINUTE, STORED_SCHEMA, TsUnit, conform
from warehouse.session import Session
from warehouse.sources import ArchiveSource, BarSource, DuckDBSource
from warehouse.warehouse import View, Warehouse

#: Exit statuses besides 0 and 1 (see the module docstring).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
#: The `warehouse_meta` key, and its value, that mark a warehouse file the demo created.
ORIGIN_KEY = "origin"
DEMO_ORIGIN = "demo"
#: Set (to anything non-empty) to print the traceback of an unexpected error.
TRACEBACK_ENV = "WAREHOUSE_TRACEBACK"
#: Errors of the libraries underneath that the package normally wraps; one that escaped
#: unwrapped is still a user-facing failure (a damaged file, an odd query), not a crash.
_LIBRARY_ERRORS = (duckdb.Error, pa.ArrowException, pl.exceptions.PolarsError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _run(arguments)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): what is left to print goes nowhere. Python's advice
        # for SIGPIPE: point stdout at devnull so that the flush at exit does not fail again.
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except (WarehouseError, OSError) as exc:
        _error(str(exc) or type(exc).__name__)
        return 1
    except _LIBRARY_ERRORS as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return 1
    except Exception as exc:
        # Last resort, so that a user never gets a traceback; the line still names the type,
        # and WAREHOUSE_TRACEBACK=1 shows where it came from: a bug is not hidden.
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        _error(f"unexpected {type(exc).__name__}: {exc} (a bug; {TRACEBACK_ENV}=1 shows "
               "the traceback)")
        return 1


def _run(arguments: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help (0), or a usage error already printed (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return int(args.run(args))


def _error(message: str) -> None:
    """Print ``message`` as the one ``warehouse: error:`` line (multi-line messages joined)."""
    lines = (line.strip() for line in message.splitlines())
    # DuckDB's messages carry a "LINE 1: ..." excerpt and a caret line under it: drop the caret.
    text = " ".join(line for line in lines if line.strip("^ "))
    with contextlib.suppress(OSError, ValueError):  # stderr gone too: the status is all left
        print(f"warehouse: error: {text}", file=sys.stderr, flush=True)


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor behind stdout (io.StringIO)
        pass


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line too (the subcommands' parsers are of this class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"warehouse: error: {self.prog}: {message} "
                              f"(`{self.prog} --help` shows the usage)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds, 0 or more")
    return value


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset; add Z or +00:00")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="warehouse", description="A DuckDB-backed warehouse for a trading session's bars."
    )
    parser.add_argument("--version", action="version", version=f"warehouse {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest", help="load bars from CSV, Parquet or NDJSON files into a warehouse file",
        description="Load bars from vendor files (CSV, Parquet, NDJSON; folders and glob "
        "patterns of them) into a warehouse file, in batches. Columns are matched without "
        "regard to case, vendors' names included (datetime, date, ticker, o/h/l/c/v, ...). "
        "Every input is read and checked before anything is stored: with --on-invalid raise "
        "(the default) one bad row stores nothing. --db is created if missing.",
    )
    ingest.add_argument("files", nargs="+", metavar="FILE",
                        help="file, folder or glob pattern (.csv, .parquet, .ndjson, .jsonl; "
                        "optionally .gz)")
    ingest.add_argument("--db", type=Path, required=True, help="warehouse file (created if "
                        "missing)")
    _input_options(ingest)
    ingest.add_argument("--on-invalid", choices=["raise", "skip", "report"], default="raise",
                        help="a bad row: stop, storing nothing (raise, the default); store "
                        "the other rows (skip); or also list the rejected rows (report)")
    ingest.add_argument("--rejects", type=Path, metavar="FILE",
                        help="with --on-invalid report: write the rejected rows here (.csv, "
                        ".json, .ndjson, .parquet) instead of stdout (CSV)")
    ingest.add_argument("--batch-rows", type=_positive_int, default=200_000,
                        help="rows per batch read and stored (default: 200000)")
    _quiet_option(ingest)
    ingest.set_defaults(run=_ingest)

    demo = commands.add_parser(
        "demo", help="replay a session bar by bar as a live feed, query it, export it",
        description="Replay a session file bar by bar into a warehouse file, then print "
        "throughput, latest bars, an SQL aggregate and the Parquet export. The input is read "
        "and checked first. --db is created if missing; an existing file is emptied and reused "
        "only if an earlier demo created it, and any other file is refused, untouched.",
    )
    demo.add_argument("--data", type=Path, default=sample_path(),
                      help="session Parquet file to replay (default: the bundled sample)")
    demo.add_argument("--db", type=Path, default=Path("out/demo.duckdb"),
                      help="warehouse file to create, or to reuse if the demo created it "
                      "(default: out/demo.duckdb)")
    demo.add_argument("--out", type=Path, default=Path("out/archive"),
                      help="Parquet archive directory (default: out/archive)")
    demo.set_defaults(run=_demo)

    sql = commands.add_parser(
        "sql", help="run ad-hoc SQL over `bars` in a warehouse file",
        description="Run one SQL statement over the warehouse file, opened read-only (or, while "
        "a process serves it, asked of that process: see `warehouse serve`): `bars` "
        "holds its bars (the open session's, or any time's without a session), and with "
        "--archive the views `history` (the archive's sealed sessions, with a `date` column) "
        "and `bars_all` (both). $name parameters are bound from --param, never formatted into "
        "the text. The result is printed as a table, or written as CSV, JSON, NDJSON or "
        "Parquet (--format, or --output's suffix).",
    )
    sql.add_argument("query", help="SQL text; the table is `bars`")
    _db_options(sql)
    sql.set_defaults(run=_sql)

    query = commands.add_parser(
        "query", help="run a named query from sql/ on a warehouse file",
        description="Run a named query of sql/ (`warehouse queries` lists them with their "
        "parameters) over the warehouse file, opened read-only (or asked of the process that "
        "serves it). Each --param is checked "
        "against the query's parameters before anything runs. Output as for `warehouse sql`.",
    )
    query.add_argument("name", help="query name (see `warehouse queries`)")
    _db_options(query)
    query.set_defaults(run=_query)

    asof_ = commands.add_parser(
        "asof", help="join events to the bar known at each one's time (no look-ahead)",
        description="An as-of join (Warehouse.asof): each event of EVENTS_FILE (Parquet, CSV "
        "or NDJSON; a time column with its offset, and a symbol column) with the latest bar "
        "of its symbol known at its time, read from the warehouse file (opened read-only) and "
        "with --archive its sealed sessions. A bar is known at its end (ts + 1 minute, or + "
        "--interval), so no event sees a bar that had not finished; --known start joins on the "
        "bar's start instead (look-ahead). The events come back in their order with bar_ts, "
        "open, high, low, close, volume, vwap and trade_count; output as for `warehouse sql`.",
    )
    asof_.add_argument("events", type=Path, metavar="EVENTS_FILE",
                       help="the events: .parquet, .csv or .ndjson")
    asof_.add_argument("--db", type=Path, required=True, help="warehouse file (opened read-only)")
    asof_.add_argument("--archive", type=Path, default=None,
                       help="Parquet archive of sealed sessions, joined to as well")
    asof_.add_argument("--on", default="ts", help="the events' time column (default: ts)")
    asof_.add_argument("--by", default="symbol",
                       help="the events' symbol column (default: symbol)")
    asof_.add_argument("--bars", choices=["bars_all", "bars", "history"], default=None,
                       help="the bars joined to: bars_all (the default with --archive), bars "
                       "(the warehouse's, the default without) or history (the archive's)")
    asof_.add_argument("--known", choices=["end", "start"], default="end",
                       help="a bar is known at its end (default) or at its start (look-ahead)")
    asof_.add_argument("--tolerance", default=None, metavar="MINUTES",
                       help="leave out a bar known longer than this before the event (5m, 1h)")
    asof_.add_argument("--interval", default=None, metavar="MINUTES",
                       help="join to derived bars of this interval (5m, 15m, 1h)")
    _output_options(asof_)
    asof_.set_defaults(run=_asof)

    listing = commands.add_parser(
        "queries", help="list the named queries, what each answers and its parameters",
        description="List the named queries of sql/ (run one with `warehouse query NAME`): "
        "what each answers and the $parameters it binds (--param NAME=VALUE).",
    )
    listing.set_defaults(run=_queries)

    export = commands.add_parser(
        "export", help="export a warehouse file to Parquet",
        description="Export a warehouse file to Parquet. The file is opened read-only, unless "
        "<db>.journal/ holds bars a crashed process journaled: then they are replayed into it "
        "first.",
    )
    export.add_argument("--db", type=Path, required=True, help="warehouse file (must exist)")
    export.add_argument("--out", type=Path, required=True, help="archive directory")
    export.add_argument("--compression", choices=["zstd", "snappy", "uncompressed"],
                        default="zstd", help="Parquet codec (default: zstd)")
    _quiet_option(export)
    export.set_defaults(run=_export)

    archive = commands.add_parser(
        "archive", help="list or verify the sealed sessions of a Parquet archive",
        description="The sessions end_session() sealed into an archive, from its manifest "
        "(_manifest.json): `list` prints one line per session; `verify` recomputes each "
        "file's rows, symbols, first and last ts and SHA-256 and names what differs (exit 1).",
    )
    archive.add_argument("action", choices=["list", "verify"])
    archive.add_argument("--archive", type=Path, required=True, help="archive directory")
    archive.set_defaults(run=_archive)

    replay_ = commands.add_parser(
        "replay", help="replay several sessions through the session lifecycle, sealing each",
        description="Feed bars of several trading sessions into a warehouse in time order, one "
        "session after the other: each is started, fed (as fast as possible, or at --speed), "
        "then sealed into the archive, so the next starts with it in `history`. The input is "
        "files, folders or glob patterns of them as `ingest` takes them (CSV, Parquet, NDJSON), or "
        "--generate N sessions of the calendar.",
    )
    replay_.add_argument("data", nargs="*", type=Path,
                         help="files, folders or glob patterns (as for ingest)")
    replay_.add_argument("--db", type=Path, required=True, help="warehouse file")
    replay_.add_argument("--archive", type=Path, required=True,
                         help="archive directory the sessions are sealed into")
    replay_.add_argument("--calendar", default=None,
                         help="exchange code (default: the one of the session --db holds, else "
                         f"{DEFAULT_CODE})")
    replay_.add_argument("--extended-hours", action="store_true",
                         help="sessions take pre- and post-market bars")
    replay_.add_argument("--speed", type=_positive_float, default=None,
                         help="seconds of bar time per second (default: as fast as possible)")
    replay_.add_argument("--generate", type=_positive_int, metavar="N",
                         help="replay N generated sessions instead of files")
    replay_.add_argument("--start", type=date.fromisoformat, default=date(2025, 11, 24),
                         help="first generated session (default: 2025-11-24)")
    replay_.add_argument("--symbols", type=_positive_int, default=400,
                         help="symbols per generated session (default: 400)")
    replay_.add_argument("--serve", type=_address, metavar="[HOST:]PORT",
                         help="serve the warehouse while the replay runs, so that other "
                         "processes query it (`warehouse sql --db`, warehouse.connect, ADBC); "
                         "HOST is 127.0.0.1 unless given")
    _tls_options(replay_)
    _input_options(replay_)
    _quiet_option(replay_)
    replay_.set_defaults(run=_replay)

    serve = commands.add_parser(
        "serve", help="serve a warehouse file to other processes over Arrow Flight SQL",
        description="Serve a warehouse file that no other process holds (an ingested or "
        "replayed file) over Arrow Flight SQL until interrupted (Ctrl-C, SIGTERM): read-only, "
        "every call with the bearer token, loopback unless --host says otherwise (then with "
        "--tls-cert/--tls-key, or --insecure). The uri and token are written to <db>.endpoint "
        "(mode 0600), which `warehouse sql|query --db` and warehouse.connect(db=...) read; "
        "ADBC, JDBC (DBeaver) and Polars connect with them.",
    )
    serve.add_argument("--db", type=Path, required=True, help="warehouse file (must exist)")
    serve.add_argument("--archive", type=Path, default=None,
                       help="the archive: the views history and bars_all read it")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                       "127.0.0.1)")
    serve.add_argument("--port", type=int, default=0,
                       help="port to listen on (default: 0, a free one)")
    serve.add_argument("--timeout", type=_positive_float, default=Limits.timeout,
                       help=f"seconds a query may run (default: {Limits.timeout:g})")
    serve.add_argument("--max-rows", type=_positive_int, default=Limits.max_rows,
                       help=f"rows a result may hold (default: {Limits.max_rows})")
    _tls_options(serve)
    serve.set_defaults(run=_serve)

    quality_ = commands.add_parser(
        "quality", help="how complete a session is: per symbol, and as a picture",
        description="Per symbol of the warehouse's open session (or, with --date and "
        "--archive, of a sealed session read from the archive): the one-minute bars expected "
        "from the calendar by --now (default: the wall clock; at most the close), the ones "
        "present, bar quality in percent and the gaps, least complete first. --png also draws "
        "the coverage (symbols x minutes, gaps in red; needs pip install \"warehouse[plot]\").",
    )
    _session_options(quality_)
    quality_.add_argument("--now", type=_aware_datetime, default=None,
                          help="ISO time with offset the expected minutes run to")
    quality_.add_argument("--symbols", default="",
                          help="comma-separated symbols expected besides those with bars")
    quality_.add_argument("--rows", type=_positive_int, default=20,
                          help="symbols to print and to draw (default: 20)")
    quality_.add_argument("--png", type=Path, default=None, help="write the picture here")
    quality_.set_defaults(run=_quality)

    plot = commands.add_parser(
        "plot", help="draw one symbol's session as candlesticks, its gaps and filled bars marked",
        description="Draw SYMBOL's bars of the warehouse's open session (or, with --date and "
        "--archive, of a sealed session read from the archive) as candlesticks over a "
        "volume panel, on the session's time axis in the exchange's local time: the minutes "
        "due by --now without a bar shaded (the gaps `quality` reports), bars that gap filling "
        "inserted in a colour of their own, the minutes not yet due in grey (their bars, if "
        "any, are not drawn). --interval draws the session-anchored bars of the named query "
        "resample_bars instead; one holding a "
        "filled minute is drawn as filled. Writes a PNG: --png, by default SYMBOL.png (or "
        "SYMBOL_5m.png with --interval 5m) in the current directory. Needs pip install "
        "\"warehouse[plot]\".",
    )
    plot.add_argument("symbol", metavar="SYMBOL", help="the symbol to draw")
    _session_options(plot)
    plot.add_argument("--interval", default=None, metavar="N",
                      help="draw N-minute bars anchored to the open: 5m, 15min, 1h (default: "
                      "the one-minute bars)")
    plot.add_argument("--now", type=_aware_datetime, default=None,
                      help="ISO time with offset the due minutes run to (default: the wall "
                      "clock)")
    plot.add_argument("--png", type=Path, default=None, metavar="FILE",
                      help="the picture to write (default: SYMBOL.png, SYMBOL_5m.png with "
                      "--interval 5m)")
    plot.set_defaults(run=_plot)

    fill = commands.add_parser(
        "fill", help="fill the open session's gaps once, from an archive or a DuckDB file",
        description="One round of gap filling: per symbol of the warehouse's open session, the "
        "minutes due by --now (less --delay) without a bar are asked of the source; the bars "
        "it has for them are added, marked origin = 'filled' (a bar already held is never "
        "replaced). Prints what was filled and what is still missing; exit 1 if the source "
        "failed.",
    )
    fill.add_argument("--db", type=Path, required=True, help="warehouse file to fill")
    source = fill.add_mutually_exclusive_group(required=True)
    source.add_argument("--archive", type=Path, metavar="DIR",
                        help="a Parquet archive of day partitions (date=YYYY-MM-DD/bars.parquet)")
    source.add_argument("--duckdb", type=Path, metavar="FILE",
                        help="another DuckDB database file (read-only)")
    fill.add_argument("--table", default=None,
                      help="with --duckdb: its table or view of bars (default: the file is "
                      "another warehouse's, whose stored bars are read)")
    fill.add_argument("--symbols", default="",
                      help="comma-separated symbols to fill besides those with bars")
    fill.add_argument("--now", type=_aware_datetime, default=None,
                      help="ISO time with offset the due minutes run to (default: now)")
    fill.add_argument("--delay", type=_seconds, default=60.0,
                      help="seconds a minute must be over before it is asked for (default: 60)")
    fill.add_argument("--timeout", type=_positive_float, default=30.0,
                      help="seconds each question to the source may take (default: 30)")
    fill.set_defaults(run=_fill)

    session_ = commands.add_parser(
        "session", help="start, end, roll or show the trading session of a warehouse file",
        description="The session lifecycle from the command line. `start` opens a session of "
        "the calendar (--date, by default the one in progress or the next): from then on the "
        "file takes only bars inside its hours. `end` seals it: its bars go to the archive's "
        "partition of its trading date, recorded in the manifest, and leave the file. `roll` "
        "ends it and starts the calendar's next session. `status` shows the session held. "
        "Each is crash-safe as its Python counterpart (start_session, end_session, roll).",
    )
    session_.add_argument("action", choices=["start", "end", "roll", "status"])
    session_.add_argument("--db", type=Path, required=True,
                          help="warehouse file (`start` creates it if missing)")
    session_.add_argument("--archive", type=Path, default=None,
                          help="archive directory sessions are sealed into (needed by end and "
                          "roll; start reads its trailing sessions)")
    session_.add_argument("--date", type=date.fromisoformat, default=None,
                          help="with start: the session's trading date, YYYY-MM-DD (default: "
                          "the session in progress, or the next)")
    session_.add_argument("--calendar", default=None,
                          help="exchange code for start, e.g. XNYS, XLON (default: the one the "
                          "file's sessions use, else XNYS)")
    session_.add_argument("--extended-hours", action="store_true",
                          help="with start or roll: take pre- and post-market bars too")
    session_.set_defaults(run=_session)

    info = commands.add_parser(
        "info", help="what a warehouse file holds: bars, symbols, session, journal, archive",
        description="Describe a warehouse file, read-only: its bars (rows, symbols, first and "
        "last ts), the session it holds and its status, journal segments a crashed writer "
        "left, and with --archive the sealed sessions of the archive.",
    )
    info.add_argument("--db", type=Path, required=True, help="warehouse file (read-only)")
    info.add_argument("--archive", type=Path, default=None, help="archive directory")
    info.set_defaults(run=_info)

    generate = commands.add_parser(
        "generate", help="write a synthetic session to Parquet",
        description="Write a synthetic session of one-minute bars (a random walk per symbol "
        "with a U-shaped volume profile, from 2025-11-21 14:30Z) to a Parquet file, in arrival "
        "order: the same --seed gives the same file on every machine. The benchmark's and the "
        "demo's data.",
    )
    generate.add_argument("--symbols", type=_positive_int, default=8000,
                          help="number of symbols")
    generate.add_argument("--minutes", type=_positive_int, default=390, help="bars per symbol")
    generate.add_argument("--seed", type=int, default=7, help="random seed")
    generate.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    _quiet_option(generate)
    generate.set_defaults(run=_generate)
    return parser


def _db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, required=True, help="warehouse file (opened read-only)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="bind $NAME; VALUE is JSON (numbers, lists, \"strings\"), an ISO "
                        "timestamp with offset, or else a plain string; repeatable")
    parser.add_argument("--archive", type=Path, default=None,
                        help="Parquet archive to query as the view `history`")
    _output_options(parser)


def _output_options(parser: argparse.ArgumentParser) -> None:
    """--format (--csv, --json, --nl), --rows and --output: where and how a result goes."""
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--format", choices=FORMATS, default=None,
                         help="output format (default: table, or what --output's suffix says)")
    for flag, fmt in (("--csv", "csv"), ("--json", "json"), ("--nl", "ndjson")):
        formats.add_argument(flag, dest="format", action="store_const", const=fmt,
                             help=f"the same as --format {fmt}")
    parser.add_argument("--rows", type=_row_limit, default=None, metavar="N|all",
                        help=f"rows to write (default: {TABLE_ROWS} for the table, all for the "
                        "other formats)")
    parser.add_argument("--output", "-o", type=Path, default=None, metavar="FILE",
                        help="write to FILE instead of stdout")


def _session_options(parser: argparse.ArgumentParser) -> None:
    """--db, or --date with --archive: which session `quality` and `plot` read."""
    parser.add_argument("--db", type=Path, default=None,
                        help="warehouse file whose open session is read (read-only)")
    parser.add_argument("--date", type=date.fromisoformat, default=None,
                        help="a sealed session's trading date, YYYY-MM-DD, read from --archive "
                        "(or the --db file's session of that date)")
    parser.add_argument("--archive", type=Path, default=None,
                        help="with --date: the archive the session was sealed into")


def _tls_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", type=Path, metavar="FILE",
                        help="serve over TLS with this PEM certificate (and --tls-key)")
    parser.add_argument("--tls-key", type=Path, metavar="FILE",
                        help="the certificate's PEM private key")
    parser.add_argument("--insecure", action="store_true",
                        help="serve a non-loopback address without TLS (the token and the data "
                        "cross the network in clear text)")


def _address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (an IPv6 host in brackets) as (host, port)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not [HOST:]PORT") from None
    if not 0 <= number < 65536:
        raise argparse.ArgumentTypeError(f"port {number} is not in 0..65535")
    return host.strip("[]") or "127.0.0.1", number


def _tls(args: argparse.Namespace) -> tuple[Path, Path] | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise WarehouseError("--tls-cert and --tls-key go together")
    return None if args.tls_cert is None else (args.tls_cert, args.tls_key)


def _input_options(parser: argparse.ArgumentParser) -> None:
    """How input files are read: ingest's and replay's options (one input rule)."""
    parser.add_argument("--symbol", help="the symbol of every row (a single-symbol file)")
    parser.add_argument("--symbol-col", metavar="NAME", help="the column holding the symbol")
    parser.add_argument("--ts-col", metavar="NAME", help="the column holding the timestamp")
    parser.add_argument("--time-col", metavar="NAME",
                        help="the column holding the time of day, where the --ts-col column "
                        "holds the date (a Date and a Time column are found without it)")
    parser.add_argument("--rename", action="append", default=[], metavar="COLUMN=FIELD",
                        help="take COLUMN as the bar field FIELD (open, high, low, close, "
                        "volume, vwap, trade_count, ...); repeatable")
    parser.add_argument("--tz", help="zone of timestamps without an offset, dates and naive "
                        "times (America/New_York, UTC); required for them")
    parser.add_argument("--ts-unit", choices=get_args(TsUnit),
                        help="unit of integer epoch timestamps; required unless they plainly "
                        "are microseconds")
    parser.add_argument("--ts-format", metavar="FORMAT",
                        help="strptime codes for timestamps that are not ISO 8601, e.g. "
                        "'%%m/%%d/%%Y %%H:%%M'")
    parser.add_argument("--ambiguous", choices=get_args(Ambiguous), default="invalid",
                        help="a local time the clocks pass twice (they go back): a bad row "
                        "(invalid, the default), or its earliest or latest instant")
    parser.add_argument("--on-duplicate", choices=get_args(OnDuplicate), default="invalid",
                        help="two rows of one symbol and ts in the inputs: both bad rows "
                        "(invalid, the default), or the last one stored (last)")


def _scan_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `scan` that `_input_options` gave ``args``."""
    if args.symbol is not None and args.symbol_col is not None:
        raise WarehouseError("pass --symbol (one symbol for every row) or --symbol-col, not "
                             "both")
    rename = {}
    for item in args.rename:
        column, sep, field = item.rpartition("=")
        if not sep or not column or field not in COLUMNS:
            raise WarehouseError(f"--rename {item!r}: expected COLUMN=FIELD, FIELD one of "
                                 f"{', '.join(COLUMNS)}")
        rename[column] = field
    return {"symbol": args.symbol, "symbol_col": args.symbol_col, "ts_col": args.ts_col,
            "time_col": args.time_col, "rename": rename, "tz": args.tz,
            "ts_unit": args.ts_unit, "ts_format": args.ts_format,
            "ambiguous": args.ambiguous, "on_duplicate": args.on_duplicate}


def _quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bar and no summary (errors are still reported)")


def _row_limit(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer or 'all'") from None


def _parse_params(
    items: list[str], expected: dict[str, str | None] | None = None, query: str = ""
) -> dict[str, Any]:
    """``--param`` values, checked against a named query's parameters when ``expected``."""
    params: dict[str, Any] = {}
    raws: dict[str, str] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip().removeprefix("$")
        if not sep or not name:
            raise WarehouseError(f"--param {item!r}: expected NAME=VALUE, e.g. --param "
                                 "symbol=AAPL")
        value: Any
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            try:
                value = datetime.fromisoformat(raw)
            except ValueError:
                value = raw
            else:
                if value.tzinfo is None:
                    fixed = f"{raw}Z" if ("T" in raw or " " in raw) else f"{raw}T00:00:00Z"
                    raise WarehouseError(
                        f"--param {item!r}: ${name} is a timestamp without an offset; add one, "
                        f"e.g. --param {name}={fixed}"
                    ) from None
        params[name] = value
        raws[name] = raw
    if expected is None:
        return params
    listed = ", ".join(f"${p}" for p in expected) or "none"
    for name in params:
        if name not in expected:
            raise WarehouseError(f"--param {name}: query {query} has no parameter ${name}; its "
                                 f"parameters: {listed}")
    for name, kind in expected.items():
        if name not in params:
            raise WarehouseError(f"query {query} needs ${name}: pass "
                                 f"{_param_form(name, kind)}")
        params[name] = _check_param(name, kind, params[name], raws[name])
    return params


def _param_form(name: str, kind: str | None) -> str:
    """How to pass a parameter of a type, as an example."""
    upper = (kind or "").upper()
    if upper.startswith("LIST"):
        return f"a JSON list, e.g. --param '{name}=[\"AAPL\",\"MSFT\"]'"
    if "TIMESTAMP" in upper:
        return f"an ISO timestamp with an offset, e.g. --param {name}=2025-11-21T14:30:00Z"
    if "INT" in upper:
        return f"an integer, e.g. --param {name}=20"
    if upper in ("DOUBLE", "FLOAT", "REAL") or upper.startswith("DECIMAL"):
        return f"a number, e.g. --param {name}=1.5"
    return f"--param {name}=VALUE"


def _check_param(name: str, kind: str | None, value: Any, raw: str) -> Any:
    """``value`` if it has the form ``kind`` needs (a string parameter takes the raw text)."""
    upper = (kind or "").upper()
    if upper == "VARCHAR":
        return value if isinstance(value, str) else raw
    if upper.startswith("LIST"):
        ok = isinstance(value, list)
    elif "TIMESTAMP" in upper:
        ok = isinstance(value, datetime)
    elif "INT" in upper:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif upper in ("DOUBLE", "FLOAT", "REAL") or upper.startswith("DECIMAL"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        return value
    if not ok:
        article = "" if upper.startswith("LIST") else "a "
        raise WarehouseError(f"--param {name}={raw}: ${name} takes {article}{kind}; pass "
                             f"{_param_form(name, kind)}")
    return value


def _sql_param_error(exc: WarehouseError) -> WarehouseError:
    """DuckDB's word on a missing or excess parameter of ad-hoc SQL, in the CLI's terms."""
    text = str(exc)
    missing = re.search(r"not provided for the following (?:prepared statement )?parameters: "
                        r"(.+?)$", text, re.M)
    if missing:
        names = [n.strip() for n in missing.group(1).split(",")]
        return WarehouseError(
            f"the SQL uses {', '.join('$' + n for n in names)}: pass --param "
            f"{names[0]}=VALUE for each (JSON, an ISO timestamp with an offset, or text)")
    excess = re.search(r"excess parameters: (.+?)$", text, re.M)
    if excess:
        names = [n.strip() for n in excess.group(1).split(",")]
        return WarehouseError(f"--param {names[0]}: the SQL has no ${names[0]}")
    if re.search(r"count mismatch .*Expected 0, got", text, re.S):
        return WarehouseError("--param given, but the SQL has no $parameters to bind")
    return exc


def _require_file(db: Path) -> None:
    """Refuse a --db that is missing or not a file, before anything opens (and creates) it."""
    if not db.exists():
        raise WarehouseError(f"{db} does not exist")
    if not db.is_file():
        raise WarehouseError(f"{db} is not a file")


def _refuse_overwrites(
    outputs: dict[str, Path | None],
    *,
    db: Path | None = None,
    archive: Path | None = None,
    inputs: Sequence[Path] = (),
) -> None:
    """Refuse an output (option to path) that would write over what the command must keep.

    That is the warehouse file ``db`` with its WAL and journal, the ``archive`` (and any
    archive's partitions and manifest), and the ``inputs``, by any name of them: a hard link or
    a symlink too (`Protected`). Called before anything is written, so a refusal leaves every
    file as it was.
    """
    protected = Protected.around(db, archive=archive, inputs=tuple(inputs))
    for option, path in outputs.items():
        if path is not None:
            protected.check(path, option)


def _open_read_only(db: Path, archive: Path | None = None) -> Warehouse:
    """``db`` (which must exist) opened read-only, with a word if its journal holds bars.

    A crashed writer's journaled bars (acknowledged, never flushed) are replayed by a writer
    open only: a read-only open must not write the file, nor take the journal's segments. So
    the command says on stderr that they are not in what it reads, and how to settle them.
    """
    _require_file(db)
    try:
        wh = Warehouse(db, read_only=True, archive=archive)
    except StoreError as exc:
        if "Conflicting lock" not in str(exc):
            raise
        raise StoreError(
            f"{db} is open for writing in another process, and DuckDB lets no other process "
            "read it meanwhile; that process can serve it (wh.serve(), or `warehouse serve "
            f"--db {db}` for a file no process writes), then this command asks it") from exc
    pending = _pending_segments(db)
    if pending:
        with contextlib.suppress(OSError, ValueError):
            print(f"warehouse: warning: {db}.journal holds {_count(pending, 'segment')} of bars a "
                  "crashed writer acknowledged but never flushed; a read-only command does not "
                  f"read them: `warehouse export --db {db} --out DIR` replays them into the "
                  "file", file=sys.stderr, flush=True)
    return wh


def _pending_segments(db: Path) -> int:
    """Journal segments a crashed writer left beside ``db``, not replayed into it yet."""
    return len(list(Path(f"{db}.journal").glob("*.journal")))


def _progress_bar(quiet: bool = False, **options: Any) -> Any:
    """A tqdm bar on stderr that draws only on a terminal (logs get no carriage returns)."""
    return tqdm(file=sys.stderr, disable=quiet or not sys.stderr.isatty(), **options)


def _say(args: argparse.Namespace, text: str, *, file: Any = None) -> None:
    """Print a summary line, unless --quiet."""
    if not getattr(args, "quiet", False):
        print(text, file=file)


def _result_format(args: argparse.Namespace) -> OutputFormat:
    """The format --format or the suffix of --output names (refused: a suffix of none)."""
    return output_format(args.output, args.format, flag="--output", default="table")


def _write_result(args: argparse.Namespace, frame: pl.DataFrame) -> None:
    """A query's result in the format and place the options say."""
    fmt = _result_format(args)
    if args.rows is None:
        rows: int | None = TABLE_ROWS if fmt == "table" else None
    else:
        rows = None if args.rows == "all" else int(args.rows)
    write_frame(frame, fmt, rows=rows, output=args.output)


def _sql(args: argparse.Namespace) -> int:
    _refuse_overwrites({"--output": args.output}, db=args.db, archive=args.archive)
    _result_format(args)  # a suffix of no format: refused before the query runs
    params = _parse_params(args.param) or None
    if endpoint_file(args.db).exists():  # a live writer holds the file: ask it
        with connect(db=args.db) as remote:
            frame = remote.sql_polars(args.query, params)
        _write_result(args, frame)
        return 0
    with _open_read_only(args.db, args.archive) as wh:
        try:
            frame = wh.sql_polars(args.query, params)
        except StoreError as exc:
            raise _sql_param_error(exc) from exc
        note = _sealed_note(wh, args.query)
    _write_result(args, frame)
    if note:
        print(note, file=sys.stderr)
    return 0


def _sealed_note(wh: Warehouse, query: str) -> str | None:
    """A word on an empty ``bars`` whose session was sealed: its bars are in the archive."""
    session = wh.session
    if session is None or session.status != "sealed" or wh.symbols() \
            or not re.search(r"\bbars\b", query, re.IGNORECASE):
        return None
    where = ("the views history and bars_all" if wh.archive is not None
             else "the view history, with --archive DIR")
    return (f"note: bars is empty: session {session.date} was sealed, and its bars are in the "
            f"archive ({where})")


def _query(args: argparse.Namespace) -> int:
    queries: Queries = load_queries()
    text = queries[args.name]  # an unknown name fails before the file is opened
    params = _parse_params(args.param, queries.parameter_types(args.name), args.name)
    _refuse_overwrites({"--output": args.output}, db=args.db, archive=args.archive)
    _result_format(args)  # a suffix of no format: refused before the query runs
    if endpoint_file(args.db).exists():  # a live writer holds the file: ask it
        with connect(db=args.db) as remote:
            frame = remote.sql_polars(text, params or None)
    else:
        with _open_read_only(args.db, args.archive) as wh:
            frame = wh.sql_polars(text, params or None)
    _write_result(args, frame)
    return 0


def _asof(args: argparse.Namespace) -> int:
    _refuse_overwrites({"--output": args.output}, db=args.db, archive=args.archive,
                       inputs=[args.events])
    _result_format(args)  # a suffix of no format: refused before the join runs
    events = _read_events(args.events, args.on)
    bars: View = args.bars or ("bars" if args.archive is None else "bars_all")
    if bars != "bars" and args.archive is None:
        raise WarehouseError(f"--bars {bars} reads the archive's sealed sessions: pass "
                             "--archive DIR")
    with _open_read_only(args.db, args.archive) as wh:
        frame = wh.asof(events, on=args.on, by=args.by, bars=bars, known=args.known,
                        tolerance=args.tolerance, interval=args.interval)
    _write_result(args, frame)
    return 0


def _read_events(path: Path, on: str) -> pl.DataFrame:
    """The events of a Parquet, CSV or NDJSON file; times in text read as ISO 8601.

    Raises
    ------
    WarehouseError
        Another kind of file, or a time that is not ISO 8601.
    """
    fmt = format_of(path)
    if fmt not in ("parquet", "csv", "ndjson"):
        raise WarehouseError(f"EVENTS_FILE {path}: give a .parquet, .csv or .ndjson file")
    if not path.is_file():
        raise WarehouseError(f"EVENTS_FILE {path} does not exist")
    try:
        if fmt == "parquet":
            events = pl.read_parquet(path)
        elif fmt == "csv":
            events = pl.read_csv(path)
        else:
            events = pl.read_ndjson(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise WarehouseError(f"EVENTS_FILE {path} cannot be read: {exc}") from exc
    if events.schema.get(on) == pl.String:
        try:
            # Eagerly, on the Series: an expression refuses strings with offsets.
            events = events.with_columns(events[on].str.to_datetime(time_unit="us"))
        except pl.exceptions.PolarsError as exc:
            raise WarehouseError(
                f"EVENTS_FILE {path}: the column {on!r} (--on) holds times that are not ISO "
                f"8601, e.g. 2025-11-21T14:31:00+00:00: {exc}") from exc
    return events


def _quality(args: argparse.Namespace) -> int:
    _refuse_overwrites({"--png": args.png}, db=args.db, archive=args.archive)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    with _session_view(args, "warehouse quality") as wh:
        report = wh.quality(now=args.now, symbols=symbols)
        session = wh.session
        assert session is not None  # quality() raised otherwise
        calendar = session_calendar(wh.calendar(), session)
        minutes, tz = calendar.minutes(session.date), calendar.tz
    due = int(report["expected"].to_numpy().max()) if report.height else 0
    present, expected = int(report["present"].sum()), due * report.height
    overall = f"{present / expected * 100:.2f}%" if expected else "-"
    complete = int((report["missing"] == 0).sum())
    print(f"session {session.date} {session.calendar}: {due} of {len(minutes)} minutes due, "
          f"{_count(report.height, 'symbol')}, {complete} complete; bar quality {overall} "
          f"({present:,} of {_count(expected, 'bar')})")
    table = report.sort(["quality", "symbol"], nulls_last=True).select(
        "symbol", "expected", "present", pl.col("quality").round(2).alias("quality %"), "gaps",
        pl.col("ranges").list.first().struct.field("start").dt.strftime("%H:%M").alias(
            "first gap (UTC)"),
    )
    write_frame(table, "table", rows=args.rows)
    if args.png is not None:
        from warehouse.plot import write_coverage_png

        write_coverage_png(report, minutes, args.png, rows=args.rows, tz=tz,
                           title=f"Coverage of session {session.date} ({session.calendar}): "
                           f"bar quality {overall}")
        print(f"picture: {args.png}")
    return 0


@contextlib.contextmanager
def _session_view(args: argparse.Namespace, what: str) -> Iterator[Warehouse]:
    """The warehouse whose open session ``what`` reads: --db's, or a sealed one (--date).

    A sealed session is read from the archive's day file into a warehouse in memory, with the
    session started as it was sealed (calendar, hours), so that every read is the one of the
    open session; nothing is written anywhere.
    """
    if args.date is None:
        if args.archive is not None:
            raise WarehouseError(f"{what}: --archive reads a sealed session; pass --date "
                                 "YYYY-MM-DD too")
        if args.db is None:
            raise WarehouseError(f"{what}: pass --db FILE (its open session), or --date "
                                 "YYYY-MM-DD with --archive DIR (a sealed session)")
        with _open_read_only(args.db) as wh:
            yield wh
        return
    if args.db is not None:
        with _open_read_only(args.db) as wh:
            held = wh.session
            if held is not None and held.status == "open" and held.date == args.date:
                yield wh
                return
    if args.archive is None:
        where = f"{args.db} holds no open session of {args.date}; " if args.db else ""
        raise WarehouseError(f"{what} --date {args.date}: {where}pass --archive DIR, the "
                             "archive the session was sealed into")
    with _archived_session(args.archive, args.date) as wh:
        yield wh


@contextlib.contextmanager
def _archived_session(archive: Path, day: date) -> Iterator[Warehouse]:
    """Session ``day`` of ``archive``, reopened in memory from its day file."""
    if not archive.is_dir():
        raise WarehouseError(f"--archive {archive} is not an archive directory")
    entries = [e for e in read_manifest(archive)["sessions"]
               if isinstance(e, dict) and e.get("date") == day.isoformat()]
    if not entries or not isinstance(entries[-1].get("file"), str):
        sealed = [e.get("date") for e in read_manifest(archive)["sessions"] if isinstance(e, dict)]
        shown = ", ".join(str(d) for d in sealed[-5:]) or "none"
        raise WarehouseError(f"session {day} is not sealed in {archive} (sealed, latest last: "
                             f"{shown}); `warehouse archive list --archive {archive}` lists them")
    entry = entries[-1]
    path = archive / entry["file"]
    try:
        table = pq.read_table(path, schema=STORED_SCHEMA)
    except (pa.ArrowException, OSError) as exc:
        raise WarehouseError(f"session {day}: its file {path} cannot be read ({exc}); "
                             f"`warehouse archive verify --archive {archive}` checks the "
                             "archive") from exc
    filled = pc.equal(table["origin"], "filled")
    with Warehouse(":memory:", flush_interval=None,
                   calendar=str(entry.get("calendar", "XNYS"))) as wh:
        wh.start_session(day, extended_hours=bool(entry.get("extended_hours", False)))
        wh.extend(table.filter(pc.invert(filled)))
        wh.fill(table.filter(filled))
        yield wh


def _session(args: argparse.Namespace) -> int:
    if args.action == "status":
        if args.date is not None or args.calendar is not None or args.extended_hours:
            raise WarehouseError("warehouse session status takes --db (and --archive) only")
        _require_file(args.db)
        with Warehouse(args.db, read_only=True) as wh:
            print(_describe_session(wh))
        return 0
    if args.action in ("end", "roll") and args.archive is None:
        raise WarehouseError(f"warehouse session {args.action} seals the session into the "
                             "archive: pass --archive DIR")
    if args.action != "start" and (args.date is not None or args.calendar is not None):
        raise WarehouseError(f"warehouse session {args.action}: --date and --calendar are for "
                             "start (roll takes the calendar's next session)")
    if args.action == "start":
        _make_directory(args.db.parent)
    else:
        _require_file(args.db)
    if args.archive is not None:
        _make_directory(args.archive)
    options: dict[str, Any] = {} if args.calendar is None else {"calendar": args.calendar}
    journal = has_segments(f"{args.db}.journal")  # a crashed writer's bars: replay them
    with Warehouse(args.db, flush_interval=None, journal=journal, archive=args.archive,
                   **options) as wh:
        if args.action == "start":
            wh.start_session(args.date, extended_hours=args.extended_hours)
        elif args.action == "end":
            ended = wh.session
            result = wh.end_session()
            assert ended is not None
            print(f"sealed session {ended.date} ({ended.calendar}) into {args.archive}: "
                  f"{_count(result.rows, 'bar')}")
        else:
            ended = wh.session
            wh.roll(extended_hours=args.extended_hours or None)
            assert ended is not None
            print(f"sealed session {ended.date} ({ended.calendar}) into {args.archive}")
        print(_describe_session(wh))
    return 0


def _describe_session(wh: Warehouse) -> str:
    """One line: the session ``wh`` holds, its status, hours and window in exchange time."""
    session = wh.session
    if session is None:
        return "no session was started: the file takes bars of any time"
    tz = ZoneInfo(session_calendar(wh.calendar(), session).tz)
    hours = "extended hours" if session.extended_hours else "regular hours"
    opened, closed = session.open_time, session.close_time
    return (f"session {session.date} {session.calendar} {hours}: {session.status}, "
            f"{opened:%H:%M}Z to {closed:%H:%M}Z ({opened.astimezone(tz):%H:%M} to "
            f"{closed.astimezone(tz):%H:%M} {tz})")


def _count(n: int, noun: str) -> str:
    """``n`` with ``noun``, plural unless one: "1 bar", "2,000 bars"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _info(args: argparse.Namespace) -> int:
    _require_file(args.db)
    pending = _pending_segments(args.db)
    with Warehouse(args.db, read_only=True) as wh:
        facts = wh.sql("SELECT count(*) AS rows, count(DISTINCT symbol) AS symbols, "
                       "min(ts) AS first, max(ts) AS last FROM bars").to_pylist()[0]
        described = _describe_session(wh)
    size = args.db.stat().st_size
    print(f"file: {args.db} ({size / 1e6:,.1f} MB)")
    span = (f", {facts['first']:%Y-%m-%d %H:%M}Z to {facts['last']:%Y-%m-%d %H:%M}Z"
            if facts["rows"] else "")
    print(f"bars: {_count(facts['rows'], 'bar')} of {_count(facts['symbols'], 'symbol')}{span}")
    print(described)
    if pending:
        print(f"journal: {_count(pending, 'segment')} a crashed writer left in {args.db}.journal "
              "(not in the counts above); any writing command replays them (warehouse session "
              "status reads as it is)")
    if args.archive is not None:
        if not args.archive.is_dir():
            raise WarehouseError(f"--archive {args.archive} is not an archive directory")
        sessions = [e for e in read_manifest(args.archive)["sessions"] if isinstance(e, dict)]
        dates = [str(e.get("date")) for e in sessions]
        span = f", {dates[0]} to {dates[-1]}" if dates else ""
        print(f"archive: {args.archive}: {_count(len(sessions), 'sealed session')}{span}")
    return 0


def _fill(args: argparse.Namespace) -> int:
    _require_file(args.db)
    if args.archive is not None:
        if not args.archive.is_dir():
            raise WarehouseError(f"--archive {args.archive} is not a folder")
        source: BarSource = ArchiveSource(args.archive)
    else:
        _require_file(args.duckdb)
        source = DuckDBSource(args.duckdb, table=args.table)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    journal = has_segments(f"{args.db}.journal")  # a crashed writer's bars: replay them
    with Warehouse(args.db, flush_interval=None, journal=journal) as wh:
        open_session(wh.session, "warehouse fill")
        stats = wh.fill_gaps(source, timeout=args.timeout, delay=args.delay, symbols=symbols,
                             now=args.now)
    print(f"filled {_count(stats.filled, 'bar')} for {_count(stats.requests, 'symbol')} with "
          f"gaps from {source!r}; {_count(stats.missing, 'minute')} still missing")
    if stats.rejected:
        print(f"dropped {_count(stats.rejected, 'malformed row')} of the source's answers")
    if stats.failures or stats.timeouts:
        print(f"error: {stats.failures + stats.timeouts} questions to the source failed; the "
              f"last: {stats.last_error}", file=sys.stderr)
        return 1
    return 0


def _plot(args: argparse.Namespace) -> int:
    symbol = args.symbol
    try:
        interval = 1 if args.interval is None else interval_minutes(args.interval)
    except ValueError as exc:
        raise WarehouseError(f"--interval: {exc}") from None
    png = args.png or Path(re.sub(r"[^\w.-]", "_", symbol)
                           + (f"_{interval}m" if args.interval is not None else "") + ".png")
    _refuse_overwrites({"--png": png}, db=args.db, archive=args.archive)
    with _session_view(args, "warehouse plot") as wh:
        session = open_session(wh.session, "warehouse plot")
        report = wh.quality(now=args.now, symbols=[symbol]).filter(pl.col("symbol") == symbol)
        if not report["has_bars"].item():
            known = wh.symbols()
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            raise WarehouseError(f"{symbol} has no bars in session {session.date} "
                                 f"({session.calendar}); symbols with bars ({len(known)}): "
                                 f"{shown or 'none'}")
        bars = _symbol_bars(wh, symbol, session, interval)
        calendar = session_calendar(wh.calendar(), session)
    gaps = report["ranges"].explode().drop_nulls().struct.unnest()
    due, quality = int(report["expected"].item()), report["quality"].item()
    minutes = calendar.minutes(session.date)
    if due < len(minutes):  # bars of minutes not yet due are not drawn (see candle_figure)
        later = bars.height
        bars = bars.filter(pl.col("ts").dt.epoch("us") < int(minutes[due]))
        later -= bars.height
    else:
        later = 0
    filled = int((bars["origin"] == "filled").sum()) if "origin" in bars.columns else 0
    size = "one-minute" if interval == 1 else f"{interval}-minute"
    share = "-" if quality is None else f"{quality:.2f}%"
    from warehouse.plot import write_candle_png

    write_candle_png(bars, minutes, png, interval=interval, gaps=gaps,
                     due=due, tz=calendar.tz,
                     title=f"{symbol}: {size} bars of session {session.date} "
                     f"({session.calendar}), bar quality {share} of {due} minutes due")
    missing = int(gaps["minutes"].sum()) if gaps.height else 0
    after = f" ({later} after --now, not drawn)" if later else ""
    print(f"wrote {png}: {_count(bars.height, f'{size} bar')} of {symbol}{after}, session "
          f"{session.date} {session.calendar}; {_count(gaps.height, 'gap')}, "
          f"{_count(missing, 'minute')} without a bar; {filled} filled")
    return 0


def _symbol_bars(wh: Warehouse, symbol: str, session: Session, interval: int) -> pl.DataFrame:
    """``symbol``'s bars of ``session`` (``interval`` minutes each) to draw, ``origin`` too."""
    minute_bars = wh.sql_polars(
        "SELECT ts, open, high, low, close, volume, origin "
        f"FROM (\n{wh.queries['symbol_bars_between']}\n) ORDER BY ts",
        {"symbol": symbol, "start": session.open_time, "end": session.close_time},
    )
    if interval == 1:
        return minute_bars
    derived = wh.sql_polars(
        f"SELECT ts, open, high, low, close, volume FROM (\n{wh.queries['resample_bars']}\n) "
        "WHERE symbol = $symbol ORDER BY ts",
        {**resample_params(session, interval), "symbol": symbol},
    )
    return _mark_filled(derived, minute_bars, session.open, interval)


def _mark_filled(
    derived: pl.DataFrame, minute_bars: pl.DataFrame, open_: int, interval: int
) -> pl.DataFrame:
    """``derived`` with ``origin`` 'filled' for a bar holding any filled minute, else 'live'."""
    step = interval * MINUTE
    since_open = pl.col("ts").dt.epoch("us") - open_
    buckets = minute_bars.filter(pl.col("origin") == "filled").select(since_open // step * step)
    return derived.with_columns(
        origin=pl.when(since_open.is_in(buckets.to_series().implode()))
        .then(pl.lit("filled"))
        .otherwise(pl.lit("live"))
    )


def _ingest(args: argparse.Namespace) -> int:
    if args.rejects is not None and args.on_invalid != "report":
        raise WarehouseError("--rejects FILE lists the rows --on-invalid report rejects; pass "
                             "--on-invalid report too")
    options = _scan_options(args)
    started = time.perf_counter()
    files = input_files(args.files)
    _refuse_overwrites({"--db": args.db}, inputs=files)
    _refuse_overwrites({"--rejects": args.rejects}, db=args.db, inputs=files)
    rejects_format = output_format(args.rejects, None, flag="--rejects", default="csv",
                                   format_flag=False)
    staging = args.db.parent if args.db.parent.is_dir() else None
    # Every input is read and checked before the warehouse is opened: bad input leaves --db
    # as it was (or not there at all).
    with _progress_bar(args.quiet, desc="read", unit="row", unit_scale=True) as bar:
        staged = scan(files, **options, on_invalid=args.on_invalid,
                      batch_rows=args.batch_rows, staging_dir=staging,
                      progress=lambda _, done: bar.update(done - bar.n))
    with staged:
        _make_directory(args.db.parent)
        journal = has_segments(f"{args.db}.journal")  # a crashed writer's bars: replay them
        with Warehouse(args.db, flush_interval=None, journal=journal) as wh, \
                _progress_bar(args.quiet, desc="store", total=staged.staged, unit="bar",
                              unit_scale=True) as bar:
            result = staged.store(wh, started=started,
                                  progress=lambda _, done: bar.update(done - bar.n))
    rejects_to_stdout = args.on_invalid == "report" and args.rejects is None
    if args.on_invalid == "report":
        write_frame(pl.DataFrame(result.rejects), rejects_format, output=args.rejects)
    for line in _ingest_summary(args, result):
        _say(args, line, file=sys.stderr if rejects_to_stdout else None)
    return 0


def _ingest_summary(args: argparse.Namespace, result: IngestResult) -> list[str]:
    files = len(result.files)
    lines = [f"ingested {_count(result.added, 'bar')} from {_count(files, 'file')} "
             f"into {args.db} in {result.seconds:.2f} s ({result.rate:,.0f} bars/s)"]
    if result.rejected:
        where = {"skip": "skipped",
                 "report": f"listed in {args.rejects}" if args.rejects else "written to stdout"}
        lines.append(f"{_count(result.rejected, 'row')} rejected "
                     f"({where[args.on_invalid]})")
    if result.replaced:
        lines.append(f"{_count(result.replaced, 'bar')} replaced bars of the same symbol and "
                     "ts")
    ignored = sorted({c for columns in result.ignored.values() for c in columns})
    if ignored:
        lines.append(f"ignored columns: {', '.join(ignored)}")
    return lines


def _queries(args: argparse.Namespace) -> int:
    queries = load_queries()
    width = max((len(name) for name in queries), default=0)
    for name in queries:
        names = ", ".join(f"${p}" for p in queries.parameters(name)) or "none"
        print(f"{name:<{width}}  {queries.summary(name)}")
        print(f"{'':<{width}}  parameters: {names}")
    return 0


def _export(args: argparse.Namespace) -> int:
    _require_file(args.db)
    _refuse_overwrites({"--out": args.out}, db=args.db)
    # Read-only: exporting changes nothing in the file, unless a crashed process left bars to
    # settle first, which takes a writer: journaled ones to replay (a plain writer open refuses
    # the file then), or flushed ones still to compact.
    journal = has_segments(f"{args.db}.journal")
    read_only = not journal
    if read_only:
        with Warehouse(args.db, read_only=True) as probe:
            read_only = not probe.stats()["uncompacted"]
    with Warehouse(args.db, flush_interval=None, read_only=read_only, journal=journal) as wh, \
            _progress_bar(args.quiet, desc="export", unit="day") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = wh.export_parquet(args.out, compression=args.compression, progress=progress)
    _say(args, f"exported {_count(result.rows, 'bar')} to {_count(len(result.files), 'file')} "
         f"under {result.directory}")
    return 0


def _archive(args: argparse.Namespace) -> int:
    if not args.archive.is_dir():
        raise WarehouseError(f"{args.archive} is not an archive directory")
    sessions = read_manifest(args.archive)["sessions"]
    exported = _exported_days(args.archive)
    if exported:
        print(f"{_count(exported, 'exported day')}, no sealed session: export_parquet writes "
              "days; end_session seals sessions")
        return 0
    if args.action == "list":
        for number, entry in enumerate(sessions, start=1):
            problem = entry_problem(entry)
            if problem is not None:
                print(f"entry {number}: {problem}")
                continue
            hours = "extended" if entry.get("extended_hours") else "regular"
            print(f"{entry['date']}  {entry.get('calendar')} {hours}  "
                  f"{_recorded(entry.get('rows'), 'bar'):>16}  "
                  f"{_recorded(entry.get('symbols'), 'symbol'):>14}  {entry['file']}")
        print(f"{_count(len(sessions), 'sealed session')} in {args.archive}")
        return 0
    problems = verify_archive(args.archive)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{_count(len(problems), 'problem')} in {args.archive}", file=sys.stderr)
        return 1
    print(f"{_count(len(sessions), 'sealed session')} in {args.archive} verified: counts and "
          "checksums match")
    return 0


def _exported_days(folder: Path) -> int:
    """Days export_parquet wrote into ``folder`` when it holds no manifest (else 0)."""
    if (folder / MANIFEST_NAME).exists():
        return 0
    return sum(1 for day in folder.glob("date=*") if day.is_dir())


def _recorded(value: object, noun: str) -> str:
    """A manifest's count with its noun ("? bars" where the entry lacks it)."""
    return _count(value, noun) if isinstance(value, int) else f"? {noun}s"


def _held_calendar(db: Path) -> str | None:
    """The calendar of the session ``db`` holds (None: no such file, or no session yet)."""
    if not db.is_file():
        return None
    with Warehouse(db, read_only=True) as wh:
        return None if wh.session is None else wh.session.calendar


def _replay(args: argparse.Namespace) -> int:
    if bool(args.data) == bool(args.generate):
        raise WarehouseError("pass input files or folders, or --generate N (one of them)")
    code = args.calendar or _held_calendar(args.db) or DEFAULT_CODE
    calendar = Calendar(code, extended_hours=args.extended_hours)
    if args.data:
        options = _scan_options(args)
        files = input_files(args.data)
        _refuse_overwrites({"--db": args.db}, inputs=files)
        bars = read_bars(files, **options)
        sessions_of(bars, calendar)  # a bar in no session: refused before anything is made
    else:
        bars = pa.concat_tables(generate_sessions(calendar, args.start, args.generate,
                                                  args.symbols))
    tls = _tls(args)
    _make_directory(args.archive)
    with Warehouse(args.db, journal=True, archive=args.archive, calendar=code) as wh, \
            _progress_bar(args.quiet, total=bars.num_rows, desc="replay", unit="bar",
                          unit_scale=True) as bar:
        if args.serve is not None:
            endpoint = wh.serve(*args.serve, tls=tls, insecure=args.insecure)
            print(f"serving {args.db} at {endpoint.uri} while the replay runs (token in "
                  f"{endpoint_file(args.db)})", file=sys.stderr, flush=True)
        done: dict[date, int] = {}

        def progress(day: date, fed: int, total: int) -> None:
            bar.update(fed - done.get(day, 0))
            done[day] = fed

        result = replay(wh, bars, speed=args.speed, extended_hours=args.extended_hours,
                        progress=progress)
    rate = result.bars / result.seconds if result.seconds else 0.0
    for day in result.sessions:
        _say(args, f"sealed {day} into {args.archive}")
    _say(args, f"replayed {_count(result.bars, 'bar')} of "
         f"{_count(len(result.sessions), 'session')} in "
         f"{result.seconds:.2f} s ({rate:,.0f} bars/s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    _require_file(args.db)
    tls = _tls(args)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        journal = has_segments(f"{args.db}.journal")  # a crashed writer's bars: replay them
        with Warehouse(args.db, flush_interval=None, journal=journal,
                       archive=args.archive) as wh:
            endpoint = wh.serve(args.host, args.port, tls=tls, insecure=args.insecure,
                                limits=Limits(timeout=args.timeout, max_rows=args.max_rows))
            print(f"serving {args.db} at {endpoint.uri} (token in {endpoint_file(args.db)}); "
                  "Ctrl-C stops", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while not stop.wait(0.5):
                    pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"stopped serving {args.db}", flush=True)
    return 0


def _generate(args: argparse.Namespace) -> int:
    table = generate_session(args.symbols, args.minutes, seed=args.seed)
    try:
        _make_directory(args.out.parent)
        pq.write_table(table, args.out, compression="zstd")
    except (pa.ArrowException, OSError) as exc:
        raise WarehouseError(f"cannot write {args.out}: {exc}") from exc
    _say(args, f"wrote {_count(table.num_rows, 'bar')} ({_count(args.symbols, 'symbol')} x "
         f"{_count(args.minutes, 'minute')}) to {args.out}")
    return 0


def _make_directory(path: Path) -> None:
    """``mkdir -p``; the error names the directory asked for, not only the part that failed."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WarehouseError(f"cannot create directory {path}: {exc}") from exc


def _read_session(path: Path) -> pa.Table:
    """The whole --data file, read and validated (`conform`), or a `WarehouseError` naming it."""
    if not path.exists():
        raise WarehouseError(f"{path} does not exist; `warehouse generate --out` makes one")
    if not path.is_file():
        raise WarehouseError(f"{path} is not a file; --data takes one Parquet file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise WarehouseError(f"{path} cannot be read as Parquet: {exc}") from exc
    try:
        return conform(table)
    except (WarehouseError, pa.ArrowException) as exc:
        raise WarehouseError(f"{path} does not hold valid bars: {exc}") from exc


def _open_demo_warehouse(db: Path) -> Warehouse:
    """Open ``db`` for the demo: a new file (marked as the demo's), or the demo's own, emptied.

    Never unlinks: the open goes through DuckDB's lock, so a file another process holds is
    refused untouched. A file the demo did not create is refused untouched as well.
    """
    refusal = f"{db} is a warehouse the demo did not create; pass another --db"
    existed = db.exists() or db.is_symlink()
    if existed:
        if not db.is_file():
            raise WarehouseError(f"{db} is not a file; pass another --db")
        # Look before taking it for writing: a writer open would add the warehouse's tables to
        # any DuckDB file. A damaged or locked file fails here with DuckDB's reason.
        with Warehouse(db, read_only=True) as probe:
            if probe._store.meta(ORIGIN_KEY) != DEMO_ORIGIN:
                raise WarehouseError(refusal)
    else:
        _make_directory(db.parent)
    wh = Warehouse(db)
    try:
        # Decided again under DuckDB's lock, where no other process can change it.
        origin = wh._store.meta(ORIGIN_KEY)
        if origin == DEMO_ORIGIN:
            wh.clear()  # what "replace" means: the demo's own file, emptied
        elif not existed and origin is None and not wh.symbols():
            wh._store.set_meta(ORIGIN_KEY, DEMO_ORIGIN)
        else:  # someone else's, made between the look and the open
            raise WarehouseError(refusal)
    except BaseException:
        wh.close()
        raise
    return wh


def _demo(args: argparse.Namespace) -> int:
    _refuse_overwrites({"--db": args.db, "--out": args.out}, inputs=[args.data])
    _refuse_overwrites({"--out": args.out}, db=args.db)
    table = _read_session(args.data)
    # An unusable --out fails now, before the warehouse is touched, not after the replay.
    _make_directory(args.out)
    columns = [table.column(name).to_pylist() for name in ("symbol", "open", "high", "low",
                                                            "close", "volume", "vwap",
                                                            "trade_count")]
    stamps = table.column("ts").cast("int64").to_pylist()
    rows = list(zip(columns[0], stamps, *columns[1:], strict=True))
    with _open_demo_warehouse(args.db) as wh:
        append = wh.append
        step = max(1, len(rows) // 200)
        started = time.perf_counter()
        with _progress_bar(total=len(rows), desc="replay", unit="bar",
                           unit_scale=True) as progress:
            for i in range(0, len(rows), step):
                for row in rows[i : i + step]:
                    append(*row)
                progress.update(min(step, len(rows) - i))
        elapsed = time.perf_counter() - started
        symbols = wh.symbols()
        print(f"replayed {_count(len(rows), 'bar')} of {_count(len(symbols), 'symbol')} in "
              f"{elapsed:.2f} s "
              f"({len(rows) / elapsed:,.0f} bars/s, flushed in the background)")
        print("\nlatest bars:")
        shown = [s for s in ("AAPL", "MSFT", "NVDA") if wh.has_bars(s)] or symbols[:3]
        for symbol in shown:
            bar = wh.latest(symbol)
            if bar is not None:
                print(f"  {symbol:<6} {bar.time:%Y-%m-%d %H:%M}Z  close {bar.close:>9.2f}  "
                      f"volume {bar.volume:>12,.0f}  last 20 closes avg "
                      f"{sum(b.close for b in wh.last_n(symbol, 20)) / 20:.2f}")
        print("\nsession leaders by traded value (SQL over `bars`, named query session_ohlcv):")
        leaders = wh.sql_polars(
            "SELECT symbol, open, high, low, close, volume, round(vwap, 4) AS vwap, "
            "round(volume * vwap / 1e6, 1) AS value_musd "
            f"FROM ({wh.queries['session_ohlcv']}) ORDER BY value_musd DESC LIMIT 5"
        )
        write_frame(leaders, "table", rows=5)
        result = wh.export_parquet(args.out)
    print(f"\nwarehouse file: {args.db}")
    print(f"parquet: {_count(result.rows, 'bar')} in {', '.join(str(f) for f in result.files)}")
    print(f"try: python -m warehouse sql \"SELECT count(*) FROM bars\" --db {args.db}")
    return 0
