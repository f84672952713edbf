"""Session start at the open: `start_session` after `prepare_session` vs a cold start.

An archive of trailing sessions is written once (the generated session, shifted to each of the
calendar's sessions before the one started), then each run opens a fresh warehouse on it and
times `start_session` alone: after `prepare_session` has finished in the background (what a
process does before the open), and cold (the trailing statistics computed inside the call).
"""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime
from pathlib import Path
from time import perf_counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse import Calendar, Warehouse
from warehouse.schema import BAR_SCHEMA

from . import targets
from .report import Report, Row, format_time, progress

#: The session started, and how many archived sessions before it the warehouse reads.
OPEN_DAY = date(2025, 12, 1)
TRAILING = 20


def write_trailing_archive(session: pa.Table, archive: Path, sessions: int) -> list[date]:
    """Write ``session`` as each of the ``sessions`` calendar sessions before `OPEN_DAY`."""
    calendar = Calendar("XNYS")
    days = calendar.previous_sessions(OPEN_DAY, sessions)
    ts = session.column("ts").cast(pa.int64())
    first = pc.min(ts).as_py()
    for day in days:
        progress(f"sessions: archiving {day} ({session.num_rows:,} bars)")
        shift = calendar.window(day).open - first
        moved = session.set_column(1, "ts", pc.add(ts, shift).cast(BAR_SCHEMA.field("ts").type))
        folder = archive / f"date={day.isoformat()}"
        folder.mkdir(parents=True)
        pq.write_table(moved.sort_by([("symbol", "ascending"), ("ts", "ascending")]),
                       folder / "bars.parquet", compression="zstd")
    return days


def measure_session_start(report: Report, session: pa.Table, workdir: Path,
                          repeat: int) -> None:
    """Time `start_session` with and without `prepare_session`, over `TRAILING` sessions."""
    archive = workdir / "trailing-archive"
    days = write_trailing_archive(session, archive, TRAILING)
    Calendar("XNYS").window(OPEN_DAY)  # the calendar's one-off build is not the open's cost
    symbol = session.column("symbol")[0].as_py()
    warm: list[float] = []
    cold: list[float] = []
    for run in range(repeat):
        progress(f"sessions: start_session, prefetched and cold, run {run + 1}/{repeat}")
        for prefetch, times in ((True, warm), (False, cold)):
            path = workdir / f"open-{run}-{prefetch}.duckdb"
            with Warehouse(path, archive=archive, history_sessions=TRAILING,
                           flush_interval=None) as wh:
                if prefetch:
                    wh.prepare_session(OPEN_DAY, now=datetime.now(UTC)).result()
                started = perf_counter()
                wh.start_session(OPEN_DAY)
                times.append(perf_counter() - started)
                trailing = wh.trailing(symbol)
                report.check(trailing is not None and trailing.sessions == TRAILING
                             and trailing.prev_date == days[-1],
                             "sessions: trailing statistics cover the archived sessions")
    ours, base = statistics.median(warm), statistics.median(cold)
    report.add(Row(
        f"start_session, {TRAILING} trailing sessions", format_time(ours),
        "cold start_session (no prefetch)", format_time(base), ours / base,
        f"<= {format_time(targets.SESSION_START_SECONDS)}",
        ours <= targets.SESSION_START_SECONDS,
    ))
    report.note(
        f"sessions: {len(session.column('symbol').unique()):,} symbols x {TRAILING} "
        f"archived sessions of {session.num_rows:,} bars; prepare_session ran before the timed "
        "start_session, in the background, as before an open"
    )
