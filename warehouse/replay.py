"""Multi-day replay: bars of several sessions fed in time order through the session lifecycle.

`replay` splits the bars by trading session (the warehouse's calendar) and, for each session in
date order, starts it (sealing the one before), feeds its bars one timestamp at a time in
(ts, symbol) order, as a live feed would deliver them (as fast as possible, or paced to a
chosen speed), and seals it with `Warehouse.end_session`, so that the next session starts with
it in ``history`` and in its trailing statistics. `read_bars` reads the input as `ingest` does:
CSV, Parquet or NDJSON files, folders of them or glob patterns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from warehouse.calendar import Calendar
from warehouse.errors import InvalidBarError
from warehouse.ingest import input_files, scan
from warehouse.schema import BAR_SCHEMA, COLUMNS, conform, from_micros
from warehouse.warehouse import Warehouse

__all__ = ["ReplayResult", "read_bars", "replay", "sessions_of"]

#: Called as bars are fed: (session date, bars of it fed so far, bars of it in all).
ReplayProgress = Callable[[date, int, int], None]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay fed: its sessions in order, the bars, and the seconds it took."""

    sessions: tuple[date, ...]
    bars: int
    seconds: float


def read_bars(paths: Iterable[str | Path], **options: Any) -> pa.Table:
    """Read bars from files, folders (read recursively) or glob patterns, as one table.

    The files and their reading are `ingest`'s (`input_files`, `scan`): CSV, Parquet and
    NDJSON of any case of suffix, each file once; so `warehouse replay` takes every file that
    `warehouse ingest` takes, and reads it the same way. ``options`` are `scan`'s (``tz``,
    ``rename``, ``symbol``, ``ts_col``, ``time_col``, ``on_duplicate``, ...).

    Raises
    ------
    WarehouseError
        A path is missing, a folder holds no such file, or a file is not readable as bars
        (`IngestError`, naming the file, and the row and column at fault).
    """
    with scan(input_files(paths), **options) as staged:
        tables = [table.select(list(COLUMNS)) for table in staged.tables()]
    return pa.concat_tables(tables) if tables else BAR_SCHEMA.empty_table()


def replay(
    wh: Warehouse,
    bars: pa.Table,
    *,
    speed: float | None = None,
    extended_hours: bool = False,
    progress: ReplayProgress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Feed ``bars`` session by session through ``wh``: start, feed in time order, seal.

    Parameters
    ----------
    wh
        A warehouse with an ``archive`` (each session is sealed into it).
    bars
        Bars of any sessions, in any order (`read_bars`, a generated week, ...).
    speed
        Pace the feed: ``speed`` seconds of bar time per second (60: a minute of bars a
        second); None feeds as fast as the warehouse takes them.
    extended_hours
        Sessions take pre- and post-market bars too.
    progress
        Called after each timestamp's bars are fed.
    sleep
        How to wait when paced (a test passes its own).

    Returns
    -------
    ReplayResult

    Raises
    ------
    InvalidBarError
        A bar falls in no session of the calendar (nothing is fed), or fails validation.
    SessionError
        The warehouse has no archive.
    """
    started = time.perf_counter()
    table = conform(bars)
    if table.num_rows == 0:
        return ReplayResult((), 0, 0.0)
    table = table.sort_by([("ts", "ascending"), ("symbol", "ascending")])
    stamps = table.column("ts").cast(pa.int64()).to_numpy()
    unique, first_rows = np.unique(stamps, return_index=True)
    days = _session_days(table, unique, first_rows, wh.calendar(extended_hours=extended_hours))
    ends = [*first_rows.tolist()[1:], len(stamps)]
    totals: dict[date, int] = {}
    last_of: dict[date, int] = {}  # a session's last timestamp (each session's are contiguous)
    for index, (begin, end, day) in enumerate(zip(first_rows.tolist(), ends, days, strict=True)):
        totals[day] = totals.get(day, 0) + end - begin
        last_of[day] = index
    sessions: list[date] = []
    session_start, bar_start, fed = 0.0, 0, 0
    for index, (ts, begin, end, day) in enumerate(
            zip(unique.tolist(), first_rows.tolist(), ends, days, strict=True)):
        if not sessions or sessions[-1] != day:
            _begin_session(wh, day, extended_hours)
            sessions.append(day)
            session_start, bar_start, fed = time.monotonic(), ts, 0
        if speed is not None:
            wait = session_start + (ts - bar_start) / 1e6 / speed - time.monotonic()
            if wait > 0:
                sleep(wait)
        wh.extend(table.slice(begin, end - begin))
        fed += end - begin
        if progress is not None:
            progress(day, fed, totals[day])
        if index == last_of[day]:
            wh.end_session()
    return ReplayResult(tuple(sessions), table.num_rows, time.perf_counter() - started)


def sessions_of(bars: pa.Table, calendar: Calendar) -> list[date]:
    """The sessions of ``calendar`` that ``bars`` fall in, in date order.

    Raises
    ------
    InvalidBarError
        A bar falls in no session (the error names it, and why: a day that is no session, or
        a time outside the session's hours).
    """
    table = conform(bars)
    stamps = table.column("ts").cast(pa.int64()).to_numpy()
    unique, first_rows = np.unique(stamps, return_index=True)
    return sorted(set(_session_days(table, unique, first_rows, calendar)))


def _session_days(
    table: pa.Table, unique: np.ndarray, first_rows: np.ndarray, calendar: Calendar
) -> list[date]:
    """The session of each distinct ts (``unique``, first found at ``first_rows``)."""
    found = [calendar.session_of(int(ts)) for ts in unique.tolist()]
    days = [day for day in found if day is not None]
    if len(days) == len(found):
        return days
    index = found.index(None)
    at, row = int(unique[index]), int(first_rows[index])
    counts = np.diff([*first_rows.tolist(), table.num_rows])
    outside = sum(int(n) for n, d in zip(counts, found, strict=True) if d is None)
    local = from_micros(at).astimezone(ZoneInfo(calendar.tz))
    if not calendar.is_session(local.date()):
        why = (f"falls on {local:%a %Y-%m-%d} in {calendar.tz}, which is no session of "
               f"{calendar.code} (a holiday or a weekend)")
    elif calendar.extended_hours:
        why = f"is outside the extended hours of {calendar.code}'s session {local.date()}"
    else:
        why = (f"is outside the regular hours of {calendar.code}'s session {local.date()} "
               f"(pre- and post-market bars need --extended-hours; extended_hours=True in "
               f"Python)")
    raise InvalidBarError(
        table.column("symbol")[row].as_py(), at, "ts", at,
        f"{why}; {outside:,} bar{'s' if outside != 1 else ''} in no session, nothing was fed",
    )


def _begin_session(wh: Warehouse, day: date, extended_hours: bool) -> None:
    """Make ``day`` the open session: resume it, or seal the open one and start ``day``."""
    session = wh.session
    if session is not None and session.status == "open":
        if session.date == day:
            return  # resumed (a replay restarted after a crash): its bars replace their keys
        wh.end_session()
    wh.start_session(day, extended_hours=extended_hours)
