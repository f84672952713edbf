"""Trading sessions: the session a warehouse holds, its window, and the policy for bars outside.

A warehouse on which no session was started takes bars of any time. `Warehouse.start_session`
picks a session of an exchange calendar (`warehouse.calendar`); from then on a bar must fall
in the session's window, ``[open, close)`` in UTC: regular hours, or pre- and post-market too
when the session was started with ``extended_hours=True``. Any other bar is refused with an
`InvalidBarError` that names the window. `Warehouse.end_session` seals the session: its bars go
to the archive and leave the warehouse in one step, after which bars are refused until the next
session starts (`Warehouse.roll` does both).

The session is recorded in the file's ``warehouse_meta`` table, in the same DuckDB transaction
as the change it belongs to, so a reopened file resumes the session it held: open (bars of its
window taken), or sealed. The calendar is needed to start a session, never to resume one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

from warehouse.calendar import SessionWindow
from warehouse.errors import InvalidBarError
from warehouse.schema import from_micros

__all__ = ["META_KEYS", "Session", "SessionStatus"]

#: ``open``: bars of its window are taken; ``ending``: `end_session` is sealing it (bars are
#: refused meanwhile); ``sealed``: archived and cleared, bars refused until the next session.
SessionStatus = Literal["open", "ending", "sealed"]
#: The ``warehouse_meta`` keys a session is recorded under.
META_KEYS = ("session_date", "session_status", "session_calendar", "session_extended_hours",
             "session_open", "session_close")


@dataclass(frozen=True, slots=True)
class Session:
    """A trading session as a warehouse holds it.

    Attributes
    ----------
    date
        The exchange's trading date (not the UTC date).
    calendar
        The exchange code, e.g. ``"XNYS"``.
    extended_hours
        Whether the window includes pre- and post-market.
    open, close
        The window, UTC microseconds: bars with ``open <= ts < close`` are taken.
    status
        ``"open"``, ``"ending"`` or ``"sealed"`` (see `SessionStatus`).
    """

    date: date
    calendar: str
    extended_hours: bool
    open: int
    close: int
    status: SessionStatus = "open"

    @classmethod
    def of(cls, window: SessionWindow, calendar: str, extended_hours: bool) -> Session:
        """The open session of a calendar's window."""
        return cls(window.date, calendar, extended_hours, window.open, window.close)

    @property
    def open_time(self) -> datetime:
        """The window's start as an aware UTC datetime."""
        return from_micros(self.open)

    @property
    def close_time(self) -> datetime:
        """The window's end (exclusive) as an aware UTC datetime."""
        return from_micros(self.close)

    def with_status(self, status: SessionStatus) -> Session:
        """The same session with another status."""
        return replace(self, status=status)

    def refusal(self, symbol: str, ts: int) -> InvalidBarError:
        """The error of a bar at ``ts`` that this session does not take."""
        if self.status == "open":
            hours = "extended hours" if self.extended_hours else "regular hours"
            reason = (
                f"is outside session {self.date} of {self.calendar} ({hours}: "
                f"{self.open_time:%Y-%m-%d %H:%M}Z to {self.close_time:%H:%M}Z); "
                "check the feed's clock, or start the session with extended_hours=True"
            )
        elif self.status == "ending":
            reason = f"arrived while session {self.date} was being sealed; it takes no more bars"
        else:
            reason = (
                f"arrived after session {self.date} was sealed; start the next session "
                "(start_session() or roll()) first"
            )
        return InvalidBarError(symbol, ts, "ts", ts, reason)

    def meta(self) -> dict[str, str]:
        """The ``warehouse_meta`` entries that record this session."""
        return dict(zip(META_KEYS, (
            self.date.isoformat(), self.status, self.calendar,
            "1" if self.extended_hours else "0", str(self.open), str(self.close),
        ), strict=True))

    @classmethod
    def from_meta(cls, values: dict[str, str | None]) -> Session | None:
        """The session recorded in ``warehouse_meta`` (None if none ever started)."""
        if values.get("session_date") is None:
            return None
        recorded = values["session_status"]
        if recorded not in ("open", "sealed"):  # "ending" is never recorded
            raise ValueError(f"unknown session status {recorded!r} in warehouse_meta")
        status: SessionStatus = "open" if recorded == "open" else "sealed"
        return cls(
            date.fromisoformat(str(values["session_date"])), str(values["session_calendar"]),
            values["session_extended_hours"] == "1", int(str(values["session_open"])),
            int(str(values["session_close"])), status,
        )
