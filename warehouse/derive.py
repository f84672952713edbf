"""Derived bars: N-minute bars anchored to the session open, read hot from the one-minute bars.

A derived bar covers ``[open + k * N, open + (k + 1) * N)`` minutes of the open session, cut
at the close: the first hourly bar of a 09:30 New York open is 09:30-10:30 (whatever the UTC
offset that day), the last bar of a 13:00 early close ends at 13:00, and no bar spans two
sessions. These are the buckets of the named query ``resample_bars`` given the session's open
(`resample_params`), and the bars are the same (tested equal, and equal to Polars'
``group_by_dynamic`` offset to the open).

Derived bars are computed when read, from the symbol's window of recent one-minute bars
(`HotState`): the latest N-minute bar needs at most its bars since the bucket start, which a
window of at least N bars holds (a read past the window goes to the store, as `since` does);
the compiled `_derive.newest` aggregates them.
So the append pays nothing for them, any interval can be read without being declared first,
and late, corrected and batch bars show in the derived bar they fall in as soon as they are
in the window: there is no derived state to keep in step.

The reads are separate methods (`Warehouse.latest_derived`, `Warehouse.last_n_derived`), not
an ``interval=`` keyword of `Warehouse.latest`: that one stays the bound ``get`` of a dict.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from warehouse._derive import newest as _newest
from warehouse.errors import SessionError
from warehouse.hot import HotState
from warehouse.schema import Bar
from warehouse.session import Session

__all__ = ["DerivedBar", "Deriver", "Interval", "interval_minutes", "resample_params"]

MINUTE = 60_000_000
#: An interval: minutes as an int, or text such as ``"5m"``, ``"15min"`` or ``"1h"``.
Interval = int | str

_TEXT = re.compile(r"\s*(\d+)\s*(m|min|h)\s*", re.IGNORECASE)
#: Intervals already parsed: text -> microseconds (a dict lookup on the read path).
_STEPS: dict[Interval, int] = {}


class DerivedBar(NamedTuple):
    """One N-minute bar of a symbol, anchored to the session open.

    Attributes
    ----------
    symbol
        The symbol.
    ts, end
        The bucket ``[ts, end)`` in UTC microseconds; ``end`` is the close on the session's
        last, shorter bucket.
    open, high, low, close, volume
        Of its one-minute bars: the first open, highest high, lowest low, last close, total
        volume.
    vwap
        Volume-weighted price: each bar's vwap, or ``(high + low + close) / 3`` without one,
        weighted by its volume (None when the volume is 0).
    trade_count
        The sum of its bars' trade counts (None if none has one).
    bar_count
        How many one-minute bars it holds.
    partial
        Still forming: the symbol has no bar yet in the bucket's last minute or after it.
    """

    symbol: str
    ts: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None
    trade_count: int | None
    bar_count: int
    partial: bool

    @property
    def time(self) -> datetime:
        """The bucket start as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts // 1_000_000, UTC).replace(
            microsecond=self.ts % 1_000_000
        )


def interval_minutes(interval: Interval) -> int:
    """The minutes of ``interval`` (``5``, ``"5m"``, ``"15min"``, ``"1h"``).

    Raises
    ------
    ValueError
        Not a positive whole number of minutes.

    Examples
    --------
    >>> interval_minutes("5m"), interval_minutes("1h"), interval_minutes(15)
    (5, 60, 15)
    """
    if isinstance(interval, int) and not isinstance(interval, bool):
        minutes = interval
    else:
        found = _TEXT.fullmatch(interval) if isinstance(interval, str) else None
        if found is None:
            raise ValueError(
                f"interval {interval!r} is not a number of minutes; give e.g. 5, '5m' or '1h'"
            )
        minutes = int(found[1]) * (60 if found[2].lower() == "h" else 1)
    if minutes < 1:
        raise ValueError(f"interval {interval!r} must be at least one minute")
    return minutes


def resample_params(session: Session | None, minutes: Interval) -> dict[str, Any]:
    """The parameters of the named query ``resample_bars`` for ``session``'s derived bars.

    ``open`` is the session's open (None without an open session: the query then anchors each
    UTC day to its first bar).
    """
    is_open = session is not None and session.status == "open"
    return {
        "minutes": interval_minutes(minutes),
        "open": session.open_time if is_open and session is not None else None,
    }


def _step(interval: Interval) -> int:
    step = _STEPS.get(interval)
    if step is None:
        step = _STEPS[interval] = interval_minutes(interval) * MINUTE
    return step


def _aggregate(symbol: str, start: int, end: int, bars: list[Bar], partial: bool) -> DerivedBar:
    """The derived bar of ``bars`` (ts-ordered, non-empty), as ``resample_bars`` computes it."""
    first = bars[0]
    high, low, volume, pv = first.high, first.low, 0.0, 0.0
    trades: int | None = None
    for bar in bars:
        if bar.high > high:
            high = bar.high
        if bar.low < low:
            low = bar.low
        v = bar.volume
        volume += v
        price = bar.vwap
        pv += (((bar.high + bar.low + bar.close) / 3) if price is None else price) * v
        if bar.trade_count is not None:
            trades = bar.trade_count if trades is None else trades + bar.trade_count
    return DerivedBar(
        symbol,
        start,
        end,
        first.open,
        high,
        low,
        bars[-1].close,
        volume,
        pv / volume if volume else None,
        trades,
        len(bars),
        partial,
    )


class Deriver:
    """Derived bars of the open session, read from the hot state.

    Parameters
    ----------
    hot
        The hot state the one-minute bars are read from.
    """

    def __init__(self, hot: HotState) -> None:
        self._hot = hot
        self._series = hot.series
        #: The open session's window, UTC microseconds (None: no open session).
        self._open: int | None = None
        self._close = 0

    def set_session(self, session: Session | None) -> None:
        """Anchor to ``session`` if it is open; otherwise reads raise `SessionError`."""
        if session is not None and session.status == "open":
            self._open, self._close = session.open, session.close
        else:
            self._open = None

    # -- queries ----------------------------------------------------------------------------

    def latest(self, symbol: str, interval: Interval) -> DerivedBar | None:
        """The newest ``interval`` bar of ``symbol`` (None without bars); see `DerivedBar`.

        Raises
        ------
        SessionError
            No session is open: derived bars are anchored to its open.
        ValueError
            ``interval`` is not a number of minutes.
        """
        anchor = self._open
        if anchor is None:
            raise self._no_session()
        step = _STEPS.get(interval) or _step(interval)
        series = self._series.get(symbol)
        if series is None:
            return None
        found = _newest(series.window, anchor, step, self._close, symbol, DerivedBar)
        if found is not None:
            return found  # type: ignore[no-any-return]
        # The window does not reach back to the bucket's start (or is empty): read its bars.
        start = anchor + (series.last_ts - anchor) // step * step
        bars = self._hot.since(symbol, start)
        end = min(start + step, self._close)
        if not bars:  # the symbol was cleared meanwhile
            return None
        return _aggregate(symbol, start, end, bars, bars[-1].ts + MINUTE < end)

    def last_n(self, symbol: str, n: int, interval: Interval) -> list[DerivedBar]:
        """The last ``n`` ``interval`` bars of ``symbol`` that hold bars, oldest first.

        Only the newest can be partial. Buckets without a bar are skipped, as in SQL.

        Raises
        ------
        SessionError
            No session is open: derived bars are anchored to its open.
        ValueError
            ``interval`` is not a number of minutes, or ``n`` is negative.
        """
        anchor = self._open
        if anchor is None:
            raise self._no_session()
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        step = _STEPS.get(interval) or _step(interval)
        series = self._series.get(symbol)
        if series is None or n == 0:
            return []
        newest = anchor + (series.last_ts - anchor) // step * step
        reach = n
        while True:
            since = newest - (reach - 1) * step
            bars = self._hot.since(symbol, since)
            buckets = self._buckets(symbol, anchor, step, bars)
            stamps = series.stamps
            if len(buckets) >= n or not len(stamps) or stamps[0] >= since:
                return buckets[-n:]
            reach *= 2  # buckets without bars: look further back

    # -- internals --------------------------------------------------------------------------

    def _buckets(self, symbol: str, anchor: int, step: int, bars: list[Bar]) -> list[DerivedBar]:
        out: list[DerivedBar] = []
        i, count = 0, len(bars)
        while i < count:
            start = anchor + (bars[i].ts - anchor) // step * step
            end = min(start + step, self._close)
            j = i + 1
            while j < count and bars[j].ts < start + step:
                j += 1
            out.append(_aggregate(symbol, start, end, bars[i:j], False))
            i = j
        if out:
            last = out[-1]
            out[-1] = last._replace(partial=bars[-1].ts + MINUTE < last.end)
        return out

    @staticmethod
    def _no_session() -> SessionError:
        return SessionError(
            "derived bars need an open session (they are anchored to its open); call "
            "start_session() first, or resample any bars with the named query resample_bars"
        )
