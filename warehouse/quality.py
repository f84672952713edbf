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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from warehouse._lock import Lock
from warehouse.calendar import Calendar
from warehouse.errors import SessionError
from warehouse.hot import HotState
from warehouse.schema import EPOCH, MINUTE, check_symbol, to_micros
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
    lock: Lock,
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


def coverage(
    lengths: NDArray[np.int64], stamps: NDArray[np.int64], expected: Expected
) -> NDArray[np.bool_]:
    """Which due minutes each symbol has a bar in: a (symbols, due) boolean matrix.

    ``stamps`` holds the symbols' timestamps one symbol after the other, ``lengths`` how many
    each has. Every stamp is looked up by its whole minute since the session's first; a
    stamp outside the due minutes (before the open, in a lunch break, not yet due) lands in a
    spare last column, which is cut off. Several bars within one minute mark it once.
    """
    minutes, due = expected.minutes, expected.due
    n_symbols = len(lengths)
    width = due + 1  # the spare column
    if not len(minutes) or not due:
        return np.zeros((n_symbols, due), dtype=bool)
    base = int(minutes[0]) // MINUTE
    span = int(minutes[-1]) // MINUTE - base + 1
    index: type[np.integer[Any]] = np.int32 if n_symbols * width < 2**31 else np.int64
    slot_of = np.full(span + 2, due, dtype=index)  # [-1] and [span]: outside, spare column
    slot_of[minutes[:due] // MINUTE - base] = np.arange(due, dtype=index)
    grid = stamps // MINUTE
    grid -= base
    np.clip(grid, -1, span, out=grid)
    cells: NDArray[np.integer[Any]] = slot_of[grid]
    cells += np.repeat(np.arange(0, n_symbols * width, width, dtype=index), lengths)
    matrix = np.zeros((n_symbols, width), dtype=bool)
    matrix.ravel()[cells] = True
    return matrix[:, :due]


def _report(
    names: list[str], lengths: NDArray[np.int64], stamps: NDArray[np.int64], expected: Expected
) -> pl.DataFrame:
    """The report from the symbols' sorted timestamps, concatenated in ``names`` order."""
    minutes, due = expected.minutes, expected.due
    n_symbols = len(names)
    present_cells = coverage(lengths, stamps, expected)
    present = present_cells.sum(axis=1, dtype=np.int64)
    # Runs of missing minutes: +1 where one starts, -1 one past where it ends.
    missing = np.zeros((n_symbols, due + 2), dtype=np.int8)
    np.logical_not(present_cells, out=missing[:, 1:-1], casting="unsafe")
    steps = np.diff(missing, axis=1)
    owner, first_slot = np.divmod(np.flatnonzero(steps == 1), due + 1)
    end_slot = np.flatnonzero(steps == -1) % (due + 1)  # in row order: paired with the starts
    gaps = np.bincount(owner, minlength=n_symbols).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(gaps))).astype(np.int32)
    ranges = pa.StructArray.from_arrays(
        [
            pa.array(minutes[first_slot], pa.int64()).cast(_TS),
            pa.array(minutes[end_slot - 1] + MINUTE, pa.int64()).cast(_TS),
            pa.array(end_slot - first_slot, pa.int64()),
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
