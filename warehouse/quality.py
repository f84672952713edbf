"""Completeness of the open session: expected one-minute bars, present ones, gaps, bar_quality.

The minutes a session should have bars for come from its exchange calendar
(`Calendar.minutes`: open to close, lunch break left out). By an instant ``now`` the expected
minutes are those whose bar is complete, ``m + 1 minute <= min(now, close)``. A minute is
*present* for a symbol when the symbol has a bar stamped within it (``floor(ts, 1 minute) ==
m``); missing minutes are merged into gap ranges, half-open ``[start, end)`` in UTC, that run
across a lunch break when both sides of it are missing. ``quality`` is present / expected x 100
(null while nothing is expected yet, before the first minute has passed).

Which symbols are expected: every symbol with a bar this session, plus the ones a caller names;
a named symbol without any bar is reported with ``has_bars`` false and one gap over everything
expected.

The answer is kept current by the hot state, not by this module: every append (late bars and
batches included) keeps each symbol's sorted timestamps (`Series.stamps`), so a scan copies those
arrays under the buffer's lock (about 25 MB for a full session of 8,000 symbols x 390 bars, a
few milliseconds) and works out every symbol at once with numpy, without a Python loop per bar
or per symbol. The named query ``gaps`` (``sql/gaps.sql``) answers the same from SQL over
``bars``; `gaps_params` gives its parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from warehouse.calendar import MINUTE, Calendar
from warehouse.errors import SessionError
from warehouse.hot import HotState
from warehouse.schema import EPOCH, check_symbol, to_micros
from warehouse.session import Session

__all__ = [
    "COLUMNS",
    "Expected",
    "expected_minutes",
    "gaps_params",
    "open_session",
    "scan",
    "session_calendar",
]

#: The columns of a quality report, in order.
COLUMNS = ("symbol", "expected", "present", "missing", "quality", "gaps", "has_bars", "ranges")

_TS = pa.timestamp("us", tz="UTC")
_ONE_US = timedelta(microseconds=1)
_RANGE = pa.struct([("start", _TS), ("end", _TS), ("minutes", pa.int64())])


@dataclass(frozen=True, slots=True)
class Expected:
    """The one-minute bars a session should hold by an instant.

    Attributes
    ----------
    session
        The session.
    minutes
        The UTC start (microseconds) of every minute of the session, from the calendar.
    due
        How many of them are expected by ``now`` (a prefix of ``minutes``).
    now
        The instant, UTC microseconds.
    break_start, break_end
        The session's lunch break, or ``None``.
    """

    session: Session
    minutes: NDArray[np.int64]
    due: int
    now: int
    break_start: int | None = None
    break_end: int | None = None


def session_calendar(calendar: str | Calendar, session: Session) -> Calendar:
    """The calendar of ``session``: ``calendar`` if it is the session's, else built for it."""
    if (
        isinstance(calendar, Calendar)
        and calendar.code == session.calendar
        and calendar.extended_hours == session.extended_hours
    ):
        return calendar
    return Calendar(session.calendar, extended_hours=session.extended_hours)


def open_session(session: Session | None, what: str) -> Session:
    """``session`` if it is open, else the `SessionError` saying what ``what`` needs."""
    if session is None:
        raise SessionError(
            f"{what} needs an open session: none was started; call start_session() first"
        )
    if session.status != "open":
        raise SessionError(
            f"{what} needs an open session: session {session.date} is {session.status} (its "
            "bars are in the archive); start the next session (start_session() or roll()) first"
        )
    return session


def expected_minutes(
    calendar: Calendar, session: Session, now: datetime | int | str | None = None
) -> Expected:
    """The minutes of ``session`` whose bar is due by ``now`` (by default the wall clock).

    Parameters
    ----------
    calendar
        The session's exchange calendar (see `session_calendar`).
    session
        The session.
    now
        An aware datetime, int UTC microseconds or an ISO 8601 string with an offset.

    Returns
    -------
    Expected
        The session's minutes and how many of them are due.

    Examples
    --------
    >>> from datetime import date
    >>> cal = Calendar("XNYS", start=date(2025, 11, 1), end=date(2025, 12, 31))
    >>> session = Session.of(cal.window(date(2025, 11, 28)), "XNYS", False)
    >>> expected_minutes(cal, session, "2025-11-28T15:30:00Z").due  # 09:30 to 10:30 New York
    60
    >>> expected_minutes(cal, session, "2025-11-29T00:00:00Z").due  # early close, 13:00
    210
    """
    micros = to_micros(datetime.now(UTC) if now is None else now)
    window = calendar.window(session.date)
    minutes = calendar.minutes(session.date)
    limit = min(micros, window.close)
    due = int(np.searchsorted(minutes, limit - MINUTE, side="right"))
    return Expected(session, minutes, due, micros, window.break_start, window.break_end)


def gaps_params(expected: Expected, symbols: Iterable[str] | None = None) -> dict[str, Any]:
    """The parameters of the named query ``gaps`` for the same question as `scan`."""
    session = expected.session

    def utc(micros: int | None) -> datetime | None:
        return None if micros is None else EPOCH + micros * _ONE_US

    return {
        "open": utc(session.open),
        "close": utc(session.close),
        "now": utc(expected.now),
        "break_start": utc(expected.break_start),
        "break_end": utc(expected.break_end),
        "symbols": _checked(symbols),
    }


def scan(
    hot: HotState,
    lock: threading.Lock,
    expected: Expected,
    symbols: Iterable[str] | None = None,
) -> pl.DataFrame:
    """The quality report of every symbol of ``hot`` (and of ``symbols``), in symbol order.

    Parameters
    ----------
    hot
        The hot state; its timestamps are copied under ``lock`` (appends wait meanwhile).
    lock
        The buffer's lock, which every change to the timestamps holds.
    expected
        The minutes due (`expected_minutes`).
    symbols
        More symbols to report, with or without bars.

    Returns
    -------
    polars.DataFrame
        One row per symbol, the columns of `COLUMNS`: ``expected``, ``present`` and
        ``missing`` minutes, ``quality`` (percent, null while nothing is due), ``gaps`` (how
        many ranges), ``has_bars`` (any bar this session, due or not) and ``ranges``, a list
        of ``{start, end, minutes}`` structs, ``[start, end)`` in UTC.
    """
    extra = _checked(symbols)
    with lock:
        items = [(name, series.stamps) for name, series in hot.series.items()]
        lengths = np.fromiter((len(s) for _, s in items), np.int64, len(items))
        stamps = np.frombuffer(b"".join([s for _, s in items]), dtype=np.int64)
    names = [name for name, _ in items]
    known = set(names)
    missing_names = sorted({s for s in extra if s not in known})
    names += missing_names
    lengths = np.concatenate([lengths, np.zeros(len(missing_names), np.int64)])
    return _report(names, lengths, stamps, expected)


def _checked(symbols: Iterable[str] | None) -> list[str]:
    if symbols is None:
        return []
    if isinstance(symbols, str):
        symbols = [symbols]
    listed = list(symbols)
    for symbol in listed:
        check_symbol(symbol)
    return listed


def _report(
    names: list[str], lengths: NDArray[np.int64], stamps: NDArray[np.int64], expected: Expected
) -> pl.DataFrame:
    """The report from the symbols' sorted timestamps, concatenated in ``names`` order."""
    minutes, due = expected.minutes, expected.due
    n_symbols = len(names)
    # Each due minute's slot (its index in `minutes`), looked up by whole minutes since the
    # first one: a lunch break's minutes and the ones not yet due have none (-1).
    base = int(minutes[0]) // MINUTE if len(minutes) else 0
    span = int(minutes[-1]) // MINUTE - base + 1 if len(minutes) else 0
    slot_of = np.full(span + 1, -1, dtype=np.int64)  # the last entry: out of the session
    slot_of[minutes[:due] // MINUTE - base] = np.arange(due, dtype=np.int64)
    grid = stamps // MINUTE - base
    np.clip(grid, -1, span, out=grid)  # before the first minute: -1, the sentinel's index too
    slots = slot_of[grid]
    valid = slots >= 0
    # Per symbol, its due slots: cumulative counts of valid stamps at the symbols' ends.
    ends = np.cumsum(lengths)
    counted = np.concatenate(([0], np.cumsum(valid)))
    per_symbol = counted[ends] - counted[ends - lengths]
    slots = slots[valid]
    firsts = np.cumsum(per_symbol) - per_symbol  # where each symbol's slots start
    # Bars stamped within the same minute (sorted, so adjacent) count once.
    keep = np.ones(len(slots), dtype=bool)
    keep[1:] = slots[1:] != slots[:-1]
    keep[firsts[per_symbol > 0]] = True
    if not keep.all():
        counted = np.concatenate(([0], np.cumsum(keep)))
        per_symbol = counted[firsts + per_symbol] - counted[firsts]
        slots = slots[keep]
        firsts = np.cumsum(per_symbol) - per_symbol
    present = per_symbol
    # Gaps: each symbol's slots between the sentinels -1 and `due`; a step of more than one
    # slot is a gap. A step from one symbol's `due` to the next one's -1 is negative.
    bounds = np.stack([firsts, firsts + present], axis=1).ravel()
    fences = np.tile(np.array([-1, due], dtype=np.int64), n_symbols)
    fenced = np.insert(slots, bounds, fences)
    steps = np.diff(fenced)
    at = np.flatnonzero(steps > 1)
    first_slot, last_slot = fenced[at] + 1, fenced[at + 1] - 1
    starts_in_fenced = firsts + 2 * np.arange(n_symbols, dtype=np.int64)
    owner = np.searchsorted(starts_in_fenced, at, side="right") - 1
    gaps = np.bincount(owner, minlength=n_symbols).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(gaps))).astype(np.int32)
    ranges = pa.StructArray.from_arrays(
        [
            pa.array(minutes[first_slot], pa.int64()).cast(_TS),
            pa.array(minutes[last_slot] + MINUTE, pa.int64()).cast(_TS),
            pa.array(last_slot - first_slot + 1, pa.int64()),
        ],
        fields=list(_RANGE),
    )
    expected_count = np.full(n_symbols, due, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        quality = present * 100.0 / expected_count
    table = pa.table(
        {
            "symbol": pa.array(names, pa.string()),
            "expected": expected_count,
            "present": present,
            "missing": expected_count - present,
            "quality": pa.array(quality, mask=expected_count == 0),
            "gaps": gaps,
            "has_bars": lengths > 0,
            "ranges": pa.ListArray.from_arrays(pa.array(offsets), ranges),
        }
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.sort("symbol")
