"""Exchange calendars: trading sessions, their UTC windows and their one-minute bars.

This is the only module of the package that knows exchange-local time; everything it returns
is UTC. A session is named by its trading date, the exchange's date (a `datetime.date`, which
is not always the UTC date of its open); instants are integer microseconds since the epoch,
as `Bar.ts`, or aware UTC datetimes. No pandas type leaves the module.

Holidays, early closes, late opens, lunch breaks and daylight-saving shifts come from the
`exchange_calendars` library. Building one of its calendars takes about 0.1 s (XNYS over its
default 21 years; importing the library about 0.05 s more), so the library is imported on
first use, and each (exchange, date range) is built once per process and kept as numpy arrays
that every `Calendar` of that range shares (a second `Calendar` costs ~40 us).

A session's window is half-open, ``[open, close)``: an instant at the open is in the session,
one at the close is not (the library's default ``side="left"``). A lunch break (XHKG, XTKS,
...) lies inside the window; `Calendar.minutes` leaves it out.

Extended hours (pre- and post-market) are not in `exchange_calendars`; they are defined here
for XNYS and XNAS only (their aliases included): from 04:00 exchange-local time on every
session, until 4 hours after the regular close (20:00 New York on a full day, 17:00 after a
13:00 early close). Asking another exchange for extended hours raises `CalendarError`.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import functools
import threading
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from warehouse.errors import CalendarError
from warehouse.schema import MINUTE

__all__ = ["DEFAULT_CODE", "Calendar", "SessionWindow", "resolve_code"]

#: The exchange a calendar (and a warehouse that never held a session) is of by default.
DEFAULT_CODE = "XNYS"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_US = timedelta(microseconds=1)
#: The int64 view of NaT: a session without a lunch break.
_NO_BREAK = int(np.iinfo(np.int64).min)


@dataclass(frozen=True, slots=True)
class _ExtendedHours:
    pre_open: time  # exchange-local wall-clock time the pre-market opens, every session
    post_close: timedelta  # how long the post-market runs after the regular (or early) close


#: Extended hours by canonical exchange code. XNYS and XNAS publish the same ones: pre-market
#: from 04:00, post-market until 20:00 (17:00 on a 13:00 early-close day).
_EXTENDED_HOURS = {
    "XNYS": _ExtendedHours(time(4), timedelta(hours=4)),
    "XNAS": _ExtendedHours(time(4), timedelta(hours=4)),
}


def _utc_text(micros: int) -> str:
    try:
        return (_EPOCH + micros * _ONE_US).strftime("%Y-%m-%d %H:%M:%SZ")
    except OverflowError:
        return f"{micros} us"


def _to_date(days: int) -> date:
    return date.fromordinal(int(days) + _EPOCH_ORDINAL)


def _minutes_in(start: int, stop: int) -> int:
    """How many minutes start in ``[start, stop)``, counting from ``start``."""
    return -(-(stop - start) // MINUTE)


@dataclass(frozen=True, slots=True)
class SessionWindow:
    """One session's trading window in UTC: ``[open, close)``, in microseconds since the epoch.

    Attributes
    ----------
    date
        The session's trading date (the exchange's date).
    open, close
        The first instant in the session and the first one after it.
    break_start, break_end
        The lunch break, ``[break_start, break_end)``, or ``None`` for a session without one.

    Examples
    --------
    >>> w = SessionWindow(date(2025, 11, 28), 1_764_340_200_000_000, 1_764_352_800_000_000)
    >>> w.open_time, w.minutes
    (datetime.datetime(2025, 11, 28, 14, 30, tzinfo=datetime.timezone.utc), 210)
    >>> 1_764_352_800_000_000 in w
    False
    """

    date: _dt.date
    open: int
    close: int
    break_start: int | None = None
    break_end: int | None = None

    @property
    def open_time(self) -> datetime:
        """The open as an aware UTC datetime."""
        return _EPOCH + self.open * _ONE_US

    @property
    def close_time(self) -> datetime:
        """The close as an aware UTC datetime."""
        return _EPOCH + self.close * _ONE_US

    @property
    def minutes(self) -> int:
        """How many one-minute bars the session has (a lunch break holds none)."""
        if self.break_start is None or self.break_end is None:
            return _minutes_in(self.open, self.close)
        return _minutes_in(self.open, self.break_start) + _minutes_in(self.break_end, self.close)

    def __contains__(self, ts: object) -> bool:
        """Whether the instant ``ts`` (int microseconds) is in ``[open, close)``."""
        return isinstance(ts, int | np.integer) and self.open <= int(ts) < self.close


@dataclass(frozen=True, slots=True, eq=False)
class _Schedule:
    """One exchange's sessions over one date range, as read-only parallel numpy arrays."""

    code: str
    tz: str
    days: NDArray[np.int64]  # session dates as days since 1970-01-01, ascending
    opens: NDArray[np.int64]  # UTC microseconds
    closes: NDArray[np.int64]
    break_starts: NDArray[np.int64]  # _NO_BREAK where a session has no break
    break_ends: NDArray[np.int64]


# Under pandas 3.1, exchange_calendars emits pandas deprecation warnings while it builds a
# calendar, which a `-W error` run (this project's tests) turns into failures; the build
# silences them, and since warning filters are process-wide, builds take turns.
_BUILD_LOCK = threading.Lock()


def _library() -> Any:
    # Imported on first use, so that `import warehouse` does not pay for it.
    import exchange_calendars

    return exchange_calendars


def resolve_code(code: str) -> str:
    """Return the canonical name of ``code`` (an alias such as NYSE gives XNYS).

    Raises
    ------
    CalendarError
        No exchange has that code (the message lists close matches).
    """
    xcals = _library()
    names: list[str] = xcals.get_calendar_names(include_aliases=True)
    if not isinstance(code, str) or code not in names:
        close = difflib.get_close_matches(str(code).upper(), names, n=4, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}; " if close else ""
        raise CalendarError(
            str(code),
            code,
            f"unknown exchange code {code!r}; {hint}exchange_calendars.get_calendar_names() "
            f"lists all {len(names)} (codes are ISO 10383 MICs such as XNYS, XLON, XTKS)",
        )
    return str(xcals.resolve_alias(code))


def _micros_column(column: Any) -> NDArray[np.int64]:
    values: NDArray[np.int64] = (
        column.dt.tz_convert(None).to_numpy(dtype="datetime64[us]").view(np.int64)
    )
    return values


def _frozen(values: NDArray[np.int64]) -> NDArray[np.int64]:
    values = np.ascontiguousarray(values, dtype=np.int64)
    values.flags.writeable = False
    return values


@functools.lru_cache(maxsize=32)
def _regular(code: str, start: date | None, end: date | None) -> _Schedule:
    """Build the library's calendar of ``code`` over ``start..end`` (cached per range)."""
    xcals = _library()
    with _BUILD_LOCK, warnings.catch_warnings():
        # Deprecations are the library's business with pandas, nothing a caller can act on.
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        try:
            library_calendar = xcals.get_calendar(code, start=start, end=end)
        except (xcals.errors.CalendarError, ValueError, OverflowError) as exc:
            span = f"{start or 'default'}..{end or 'default'}"
            detail = str(exc).rstrip(".")
            raise CalendarError(
                code, (start, end), f"cannot build sessions {span} ({detail}); check start and end"
            ) from exc
        schedule = library_calendar.schedule
        return _Schedule(
            code=code,
            tz=str(library_calendar.tz.key),
            days=_frozen(schedule.index.to_numpy(dtype="datetime64[D]").view(np.int64)),
            opens=_frozen(_micros_column(schedule["open"])),
            closes=_frozen(_micros_column(schedule["close"])),
            break_starts=_frozen(_micros_column(schedule["break_start"])),
            break_ends=_frozen(_micros_column(schedule["break_end"])),
        )


@functools.lru_cache(maxsize=32)
def _extended(code: str, start: date | None, end: date | None) -> _Schedule:
    """The regular schedule widened to the extended hours of `_EXTENDED_HOURS` (cached)."""
    regular = _regular(code, start, end)
    hours = _EXTENDED_HOURS[code]
    zone = ZoneInfo(regular.tz)
    pre_opens = [
        (datetime.combine(_to_date(day), hours.pre_open, zone) - _EPOCH) // _ONE_US
        for day in regular.days
    ]
    post_closes = regular.closes + hours.post_close // _ONE_US
    return replace(
        regular,
        opens=_frozen(np.minimum(np.array(pre_opens, dtype=np.int64), regular.opens)),
        closes=_frozen(post_closes),
    )


class Calendar:
    """The trading sessions of one exchange, with their windows in UTC.

    Parameters
    ----------
    code
        The exchange's code in `exchange_calendars` (ISO 10383 MIC such as ``"XNYS"``,
        ``"XLON"``, or an alias such as ``"NYSE"``).
    extended_hours
        Widen every window to the pre- and post-market (XNYS and XNAS only; see the module
        docstring for the hours).
    start, end
        The trading dates the calendar covers. By default the library's own range: 20 years
        back to one year ahead of today. Pass them to replay older sessions or to plan further.

    Attributes
    ----------
    code
        The canonical exchange code (an alias given to the constructor is resolved).
    extended_hours
        Whether windows are the extended ones.
    tz
        The exchange's IANA time zone name, for display; nothing the calendar returns is in it.

    Raises
    ------
    CalendarError
        For an unknown code (the message lists close matches), extended hours on an exchange
        without them, or a range the library cannot build.

    Examples
    --------
    >>> cal = Calendar("XNYS", start=date(2025, 11, 1), end=date(2025, 12, 31))
    >>> cal.is_session(date(2025, 11, 27))  # Thanksgiving
    False
    >>> cal.window(date(2025, 11, 28)).close_time  # early close, 13:00 New York
    datetime.datetime(2025, 11, 28, 18, 0, tzinfo=datetime.timezone.utc)
    >>> cal.previous_sessions(date(2025, 11, 28), 2)
    [datetime.date(2025, 11, 25), datetime.date(2025, 11, 26)]
    """

    __slots__ = ("_s", "code", "extended_hours", "tz")

    def __init__(
        self,
        code: str = DEFAULT_CODE,
        *,
        extended_hours: bool = False,
        start: date | None = None,
        end: date | None = None,
    ) -> None:
        name = resolve_code(code)
        for bound in (start, end):
            if bound is not None and (isinstance(bound, datetime) or not isinstance(bound, date)):
                raise CalendarError(
                    name, bound, f"range bound {bound!r} is not a date; pass a datetime.date"
                )
        if extended_hours and name not in _EXTENDED_HOURS:
            known = ", ".join(sorted(_EXTENDED_HOURS))
            raise CalendarError(
                name,
                code,
                f"no extended hours are defined for {name} (only for {known}); "
                "use extended_hours=False for its regular hours",
            )
        self._s = _extended(name, start, end) if extended_hours else _regular(name, start, end)
        self.code = name
        self.extended_hours = extended_hours
        self.tz = self._s.tz

    def __repr__(self) -> str:
        return (
            f"Calendar({self.code!r}, extended_hours={self.extended_hours}, "
            f"sessions {self.first_session}..{self.last_session})"
        )

    # -- the range ----------------------------------------------------------------------

    @property
    def first_session(self) -> date:
        """The first session the calendar covers."""
        return _to_date(self._s.days[0])

    @property
    def last_session(self) -> date:
        """The last session the calendar covers."""
        return _to_date(self._s.days[-1])

    # -- sessions by date ---------------------------------------------------------------

    def is_session(self, day: date) -> bool:
        """Whether the exchange trades on ``day``.

        Raises
        ------
        CalendarError
            If ``day`` is not a `datetime.date` or lies outside the calendar's range.
        """
        n = self._day(day)
        i = int(np.searchsorted(self._s.days, n))
        return bool(self._s.days[i] == n)

    def window(self, day: date) -> SessionWindow:
        """The session's window in UTC (regular hours, or extended ones if the calendar has them).

        Raises
        ------
        CalendarError
            If ``day`` is not a session (the message names the sessions around it) or is
            outside the calendar's range.
        """
        i = self._session(day)
        s = self._s
        session, open_, close = _to_date(s.days[i]), int(s.opens[i]), int(s.closes[i])
        break_start, break_end = int(s.break_starts[i]), int(s.break_ends[i])
        if break_start == _NO_BREAK or break_end == _NO_BREAK:
            return SessionWindow(session, open_, close)
        return SessionWindow(session, open_, close, break_start, break_end)

    def minutes(self, day: date) -> NDArray[np.int64]:
        """The UTC start, in microseconds, of every one-minute bar of the session.

        From the open (inclusive) to the close (exclusive), one minute apart, without the
        minutes of a lunch break: 390 for a full XNYS day, 210 for a 13:00 early close.

        Raises
        ------
        CalendarError
            If ``day`` is not a session or is outside the calendar's range.
        """
        w = self.window(day)
        if w.break_start is None or w.break_end is None:
            return np.arange(w.open, w.close, MINUTE, dtype=np.int64)
        return np.concatenate(
            [
                np.arange(w.open, w.break_start, MINUTE, dtype=np.int64),
                np.arange(w.break_end, w.close, MINUTE, dtype=np.int64),
            ]
        )

    def next_session(self, day: date) -> date:
        """The first session after ``day`` (which need not be a session itself).

        Raises
        ------
        CalendarError
            If there is none within the calendar's range, or ``day`` is outside it.
        """
        i = int(np.searchsorted(self._s.days, self._day(day), side="right"))
        if i == len(self._s.days):
            raise self._beyond(day, f"no session after {day} in the calendar's range", "end")
        return _to_date(self._s.days[i])

    def previous_session(self, day: date) -> date:
        """The last session before ``day`` (which need not be a session itself).

        Raises
        ------
        CalendarError
            If there is none within the calendar's range, or ``day`` is outside it.
        """
        i = int(np.searchsorted(self._s.days, self._day(day), side="left"))
        if i == 0:
            raise self._beyond(day, f"no session before {day} in the calendar's range", "start")
        return _to_date(self._s.days[i - 1])

    def previous_sessions(self, day: date, n: int) -> list[date]:
        """The ``n`` sessions before ``day``, oldest first; holidays and weekends are skipped.

        Raises
        ------
        CalendarError
            If ``n`` is negative, or the calendar's range holds fewer than ``n`` sessions
            before ``day``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise CalendarError(self.code, n, f"n must be an int >= 0, not {n!r}")
        i = int(np.searchsorted(self._s.days, self._day(day), side="left"))
        if n > i:
            raise self._beyond(
                day, f"{n} sessions before {day} asked, the calendar's range holds {i}", "start"
            )
        return [_to_date(d) for d in self._s.days[i - n : i]]

    # -- sessions by instant ------------------------------------------------------------

    def session_of(self, ts: int | np.integer[Any] | datetime) -> date | None:
        """The session whose window holds the instant ``ts``, or ``None`` between sessions.

        Parameters
        ----------
        ts
            UTC microseconds since the epoch (as `Bar.ts`), or an aware datetime.

        Raises
        ------
        CalendarError
            For a naive datetime, or an instant outside the calendar's span (from the first
            session's open to the last one's close), where it cannot tell.
        """
        micros = self._micros(ts)
        i = self._first_close_after(micros, ts)
        if self._s.opens[i] <= micros:
            return _to_date(self._s.days[i])
        return None

    def current_or_next(self, now: datetime | int | None = None) -> date:
        """The session in progress at ``now``, else the next one (after a close: the next).

        Parameters
        ----------
        now
            An aware datetime or int UTC microseconds; by default the wall clock.

        Raises
        ------
        CalendarError
            For a naive datetime, or one outside the calendar's span.
        """
        if now is None:
            now = datetime.now(UTC)
        return _to_date(self._s.days[self._first_close_after(self._micros(now), now)])

    # -- helpers ------------------------------------------------------------------------

    def _day(self, day: object) -> int:
        """``day`` as days since the epoch, checked to be a date within the range."""
        if isinstance(day, datetime) or not isinstance(day, date):
            raise CalendarError(
                self.code,
                day,
                f"{day!r} is not a date; pass the trading date (datetime.date), "
                "or use session_of() for an instant",
            )
        n = day.toordinal() - _EPOCH_ORDINAL
        if not self._s.days[0] <= n <= self._s.days[-1]:
            bound: Literal["start", "end"] = "start" if n < self._s.days[0] else "end"
            raise self._beyond(day, f"{day} is outside the calendar's range", bound)
        return n

    def _session(self, day: date) -> int:
        """The index of the session ``day``; `CalendarError` naming its neighbours if none."""
        n = self._day(day)
        days = self._s.days
        i = int(np.searchsorted(days, n))
        if days[i] != n:
            before = str(_to_date(days[i - 1])) if i > 0 else "none in range"
            raise CalendarError(
                self.code,
                day,
                f"{day} is not a session (previous session: {before}, next: "
                f"{_to_date(days[i])}); check with is_session() or use next_session()",
            )
        return i

    def _micros(self, ts: object) -> int:
        if isinstance(ts, datetime):
            if ts.tzinfo is None or ts.utcoffset() is None:
                raise CalendarError(
                    self.code,
                    ts,
                    f"naive datetime {ts.isoformat()} has no time zone; pass an aware one, "
                    "e.g. datetime(..., tzinfo=UTC)",
                )
            return (ts - _EPOCH) // _ONE_US
        if isinstance(ts, bool) or not isinstance(ts, int | np.integer):
            raise CalendarError(
                self.code,
                ts,
                f"{ts!r} is not an instant; pass int UTC microseconds or an aware datetime",
            )
        return int(ts)

    def _first_close_after(self, micros: int, ts: object) -> int:
        """The index of the first session closing after ``micros``, which must be in the span."""
        s = self._s
        first_open, last_close = int(s.opens[0]), int(s.closes[-1])
        if not first_open <= micros < last_close:
            raise self._beyond(
                ts,
                f"{_utc_text(micros)} is outside the span of the calendar's sessions, "
                f"{_utc_text(first_open)} (first open) to {_utc_text(last_close)} (last close)",
                "start" if micros < first_open else "end",
            )
        return int(np.searchsorted(s.closes, micros, side="right"))

    def _beyond(self, value: object, problem: str, bound: Literal["start", "end"]) -> CalendarError:
        """An error for a question outside the calendar's range, saying how to widen it."""
        widen = "an earlier start" if bound == "start" else "a later end"
        return CalendarError(
            self.code,
            value,
            f"{problem}; the calendar covers sessions {self.first_session}.."
            f"{self.last_session}: pass {widen} to Calendar({self.code!r}, start=..., end=...)",
        )
