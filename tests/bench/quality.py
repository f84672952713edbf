"""A quality scan of the full session (issue 9): `Warehouse.quality` vs the named query `gaps`.

The session is extended into a fresh in-memory warehouse with its session started, a few bars
deleted so that there are gaps to find, then `quality()` is timed over every symbol at the
close (the scan copies every symbol's timestamps under the buffer's lock and works them out with
numpy), next to the named SQL query `gaps` answering the same question in DuckDB.
"""

from __future__ import annotations

import statistics
from datetime import date
from time import perf_counter, thread_time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse import Calendar, Warehouse
from warehouse.calendar import MINUTE

from . import targets
from .report import Report, Row, format_time, progress

#: The generated session's trading date (`warehouse.sample.SAMPLE_DAY`: it opens 14:30 UTC).
DAY = date(2025, 11, 21)


def measure_quality(report: Report, session: pa.Table, repeat: int) -> None:
    """Time `Warehouse.quality` over the session, and the `gaps` query as the baseline."""
    calendar = Calendar("XNYS")
    # The end of the session's last minute: the close for a full session, earlier for --minutes.
    close = pc.max(session["ts"].cast(pa.int64())).as_py() + MINUTE
    # Every 97th bar missing: gaps in most symbols, as after a patchy feed.
    kept = session.filter(pa.array(np.arange(session.num_rows) % 97 != 0))
    with Warehouse(":memory:", flush_interval=None, calendar=calendar) as wh:
        wh.start_session(DAY)
        progress(f"quality: extending {kept.num_rows:,} bars")
        wh.extend(kept)
        wh.flush()
        wh.quality(now=close)  # warm: the calendar's minutes, numpy's first calls
        ours: list[float] = []
        cpu: list[float] = []
        for _ in range(5 * repeat):
            started, used = perf_counter(), thread_time()
            frame = wh.quality(now=close)
            ours.append(perf_counter() - started)
            cpu.append(thread_time() - used)
        progress(f"quality: {len(ours)} scans, then the gaps query")
        params = wh.gaps_params(now=close)
        base: list[float] = []
        for _ in range(repeat):
            started = perf_counter()
            sql = wh.query("gaps", params)
            base.append(perf_counter() - started)
        missing = int(frame["missing"].sum())
        report.check(
            missing == session.num_rows - kept.num_rows, "quality: the scan finds every deleted bar"
        )
        report.check(
            sql.num_rows == int(frame["gaps"].sum()),
            "quality: the gaps query finds the same ranges",
        )
    mine, theirs = statistics.median(ours), statistics.median(base)
    report.add(
        Row(
            "quality scan, session",
            format_time(mine),
            "named query gaps (DuckDB)",
            format_time(theirs),
            mine / theirs,
            f"<= {format_time(targets.QUALITY_SCAN_SECONDS)}",
            mine <= targets.QUALITY_SCAN_SECONDS,
        )
    )
    report.note(
        f"quality: {frame.height:,} symbols, {kept.num_rows:,} bars ({missing:,} deleted, "
        f"{int(frame['gaps'].sum()):,} gaps); scan: median CPU time of the calling thread "
        f"{format_time(statistics.median(cpu))}, "
        f"wall max {format_time(max(ours))} over {len(ours)} runs"
    )
