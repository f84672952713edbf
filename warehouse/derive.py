"""Derived bars: N-minute bars anchored to the session open, kept as bars arrive or read on demand.

A derived bar covers ``[open + k * N, open + (k + 1) * N)`` minutes of the open session, cut
at the close: the first hourly bar of a 09:30 New York open is 09:30-10:30 (whatever the UTC
offset that day), the last bar of a 13:00 early close ends at 13:00, and no bar spans two
sessions. These are the buckets of the named query ``resample_bars`` given the session's open
(`resample_params`), and the bars are the same (tested equal, and equal to Polars'
``group_by_dynamic`` offset to the open).

Declared intervals (``Warehouse(derived=("5m", "15m"))``, the default; at most
`MAX_DERIVED`) are kept incrementally: each symbol's `Series` holds, per interval,
the running aggregate of the bucket of its newest bar (OHLC, volume, the vwap's numerator,
trade and bar counts). What keeps it, on each path:

- an in-order bar (`append`, ts after the symbol's last): the compiled append adds it in C in
  O(1), or starts the bucket afresh when the bar opens a new one;
- a late bar or a correction (`HotState.place_older`): when it falls in the forming bucket,
  the bucket is recomputed from the window (`forming_of`), or marked stale if the window does
  not reach back to its start; a bar in an older bucket changes nothing kept;
- a batch (`extend`, gap fills, journal replay), reopening a file, a session starting or
  ending: the buckets of the symbols concerned are marked stale;
- stale: the next read recomputes the bucket from the symbol's bars (window, or store), under
  the buffer's lock (`Deriver._refresh`); the next in-order bar that opens a bucket makes it
  known again.

`latest_derived` of a declared interval is then a hot read (`_derive.Latest`): the
`DerivedBar` is built from the bucket once and cached in the series until the bucket changes.

`last_n_derived` of a declared interval is hot too (`_derive.Latest.last_n`): the finished
bars before the forming one come from a cache per (symbol, interval), made by the first read
that needs them (`Deriver._last_n`, from the window or the store) and kept while current:

- a new bucket starting leaves it behind the forming bucket's start: the next read adds the
  bucket(s) finished since, computed from the window (which holds a bucket just finished);
- a change that may touch a finished bucket (a late bar or a correction before a forming
  bucket, a batch, a reopen, a session starting or ending) bumps the series' ``revision``;
  a cache made at another revision is not used, and the next read makes it afresh. Reads
  take no lock: the revision is read before the bars, so a cache made from bars that a change
  overtook carries a revision that is already old.

Only symbols read get a cache, of at most ``2 * max(n, 32)`` bars.

Any other interval is computed when read from the symbol's window of recent one-minute bars
(`HotState`), as are the finished bars a cache is made of: the latest
N-minute bar needs at most its bars since the bucket start, which a window of at least N bars
holds (a read past the window goes to the store, as `since` does); the compiled
`_derive.newest` aggregates them. Both paths give the same bars, bit for bit: the same sums
in the same order.

The reads are separate methods (`Warehouse.latest_derived`, `Warehouse.last_n_derived`), not
an ``interval=`` keyword of `Warehouse.latest`: that one stays the bound ``get`` of a dict.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from operator import attrgetter, index
from typing import TYPE_CHECKING, Any, NamedTuple, SupportsIndex

from warehouse._derive import Latest
from warehouse._derive import newest as _newest
from warehouse._lock import Lock
from warehouse.errors import SessionError
from warehouse.schema import MINUTE, Bar
from warehouse.session import Session

if TYPE_CHECKING:
    from warehouse._hot import Series
    from warehouse.hot import HotState

__all__ = [
    "DEFAULT_DERIVED",
    "MAX_DERIVED",
    "DerivedBar",
    "Deriver",
    "Forming",
    "Interval",
    "bars_wanted",
    "derived_steps",
    "forming_of",
    "interval_minutes",
    "resample_params",
]

#: An interval: minutes as an int, or text such as ``"5m"``, ``"15min"`` or ``"1h"``.
Interval = int | str

#: The intervals a `Warehouse` keeps incrementally unless told otherwise.
DEFAULT_DERIVED: tuple[Interval, ...] = ("5m", "15m")
#: The most intervals kept incrementally (the compiled series has room for this many).
MAX_DERIVED = 4
#: A forming bucket as `Series.set_derived` takes it: start, end, last_ts, bar count, open,
#: high, low, close, volume, pv (the vwap's numerator), trade count, whether some bar had a
#: trade count, stale.
Forming = tuple[int, int, int, int, float, float, float, float, float, float, int, bool, bool]

_ts_of = attrgetter("ts")
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


def bars_wanted(n: object) -> int:
    """``n`` of `Warehouse.last_n_derived`: a whole number of bars, 0 or more.

    Raises
    ------
    ValueError
        It is not (the message shows the call's order and the intervals it takes).

    Examples
    --------
    >>> bars_wanted(3)
    3
    """
    # Any integer (numpy's too), not 2.5, "5m", None or True.
    count = index(n) if isinstance(n, SupportsIndex) and not isinstance(n, bool) else -1
    if count < 0:
        raise ValueError(
            f"n must be a whole number of bars, 0 or more; got {n!r}. The call is "
            "last_n_derived(symbol, n, interval), the interval a number of minutes: 5, '5m', "
            "'15min' or '1h'"
        )
    return count


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


def derived_steps(intervals: Iterable[Interval]) -> tuple[int, ...]:
    """The steps in microseconds of the intervals to keep incrementally, checked.

    Raises
    ------
    ValueError
        An interval is not a number of minutes, two are the same, or there are more than
        `MAX_DERIVED`.

    Examples
    --------
    >>> derived_steps(("5m", "1h"))
    (300000000, 3600000000)
    """
    if isinstance(intervals, (str, int)):
        intervals = (intervals,)
    steps: list[int] = []
    for interval in intervals:
        step = interval_minutes(interval) * MINUTE
        if step in steps:
            raise ValueError(f"derived interval {interval!r} is given twice")
        steps.append(step)
    if len(steps) > MAX_DERIVED:
        raise ValueError(
            f"at most {MAX_DERIVED} intervals can be kept incrementally, got {len(steps)}; "
            "any other interval is still read on demand"
        )
    return tuple(steps)


def forming_of(bars: list[Bar], start: int, end: int) -> Forming:
    """The forming bucket ``[start, end)`` of ``bars`` (ts-ordered, non-empty, all in it)."""
    first = bars[0]
    high, low, volume, pv = first.high, first.low, 0.0, 0.0
    trades, counted = 0, False
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
            trades += bar.trade_count
            counted = True
    last = bars[-1]
    return (start, end, last.ts, len(bars), first.open, high, low, last.close, volume, pv,
            trades, counted, False)


def _bar_of(symbol: str, forming: Forming, partial: bool) -> DerivedBar:
    """The derived bar of a forming bucket."""
    start, end, _, count, open_, high, low, close, volume, pv, trades, counted, _ = forming
    return DerivedBar(
        symbol, start, end, open_, high, low, close, volume,
        pv / volume if volume else None, trades if counted else None, count, partial,
    )


#: Finished bars a cache keeps at least (it is cut back once past twice what reads ask for).
_FINISHED_KEPT = 32


class _Finished(NamedTuple):
    """A symbol's cache of finished bars of one declared interval (`Deriver.last_n`)."""

    series: Series  # the series it was made for (`clear` makes new ones)
    revision: int  # the series' revision when its bars were read
    lo: int  # it holds every bar of the buckets that start in [lo, upto)
    upto: int  # the start of the bucket that was forming
    bars: list[DerivedBar]  # oldest first; a new list on every change, never changed in place
    whole: bool  # the symbol has no bar before lo


def _step(interval: Interval) -> int:
    step = _STEPS.get(interval)
    if step is None:
        step = _STEPS[interval] = interval_minutes(interval) * MINUTE
    return step


def _aggregate(symbol: str, start: int, end: int, bars: list[Bar], partial: bool) -> DerivedBar:
    """The derived bar of ``bars`` (ts-ordered, non-empty), as ``resample_bars`` computes it."""
    return _bar_of(symbol, forming_of(bars, start, end), partial)


class Deriver:
    """Derived bars of the open session, read from the hot state.

    Parameters
    ----------
    hot
        The hot state the one-minute bars are read from; its ``derived_steps`` are the
        intervals kept incrementally (see the module's docstring).
    lock
        The buffer's lock (held by every command): a stale bucket is recomputed under it.
    keys
        The declared intervals as the warehouse was given them (in the order of
        ``hot.derived_steps``): a read naming one of these very objects skips a dict lookup.

    Attributes
    ----------
    latest(symbol, interval) -> DerivedBar | None
        The newest ``interval`` bar: the compiled hot read (`_derive.Latest`) for a declared
        interval, computed on read (`compute_latest`) for any other.
    last_n(symbol, n, interval) -> list[DerivedBar]
        The last ``n`` ``interval`` bars of ``symbol`` that hold bars, oldest first; only the
        newest can be partial, and buckets without a bar are skipped, as in SQL. For a
        declared interval, the finished bars come from the symbol's cache of them and the
        newest from `latest` (the compiled `_derive.Latest.last_n` when both are current,
        else `_last_n`); for any other, all are computed on read (`compute_last_n`). Raises
        `SessionError` without an open session, `ValueError` for an interval that is not a
        number of minutes or a negative ``n``.
    """

    latest: Callable[[str, Interval], DerivedBar | None]
    last_n: Callable[[str, int, Interval], list[DerivedBar]]

    def __init__(
        self, hot: HotState, lock: Lock, keys: tuple[Interval, ...] = ()
    ) -> None:
        self._hot = hot
        self._lock = lock
        self._series = hot.series
        #: The open session's window, UTC microseconds (None: no open session).
        self._open: int | None = None
        self._close = 0
        self._steps = hot.derived_steps
        self._slot_of_step = {step: k for k, step in enumerate(self._steps)}
        #: Interval as given (str or int) -> its slot among the declared ones, -1 if none.
        self._slots: dict[Interval, int] = {}
        #: Per declared interval, symbol -> its cache of finished bars (`last_n`).
        self._finished: list[dict[str, _Finished]] = hot.finished_caches
        self._reader = Latest(self._series, hot.derived_caches, keys, self._slots,
                              self._latest_slow, self.compute_latest, self._refresh, DerivedBar,
                              self._finished, self._last_n)
        self.latest = self._reader.latest
        self.last_n = self._reader.last_n

    def set_session(self, session: Session | None) -> None:
        """Anchor to ``session`` if it is open; otherwise reads raise `SessionError`.

        The caller holds the buffer's lock. Every forming bucket becomes stale: its anchor may
        have moved.
        """
        if session is not None and session.status == "open":
            self._open, self._close = session.open, session.close
        else:
            self._open = None
        self._hot.mark_derived_stale()
        self._reader.anchored = self._open is not None

    # -- queries ----------------------------------------------------------------------------

    def compute_latest(self, symbol: str, interval: Interval) -> DerivedBar | None:
        """The newest ``interval`` bar of ``symbol`` computed from its one-minute bars.

        What `latest` returns for an interval that is not kept incrementally (and, for one
        that is, the same bar).

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

    def _latest_slow(self, symbol: str, interval: Interval) -> DerivedBar | None:
        """`latest` for an interval not seen before, one not declared, or without a session."""
        if self._open is None:
            raise self._no_session()
        k = self._slot(interval)  # the next read of this spelling is the hot one
        if k < 0:
            return self.compute_latest(symbol, interval)
        found: DerivedBar | None = self._reader.latest_of(symbol, k)
        return found

    def _refresh(self, symbol: str, k: int) -> DerivedBar | None:
        """Recompute the stale forming bucket of declared interval ``k`` from the bars.

        From the window under the buffer's lock when it reaches back to the bucket's start;
        otherwise the bars are read (from the store) without the lock and installed if the
        bucket did not change meanwhile (its version), else read again.
        """
        step = self._steps[k]
        while True:
            with self._lock:
                anchor = self._open
                if anchor is None:
                    raise self._no_session()
                series = self._series.get(symbol)
                if series is None:
                    return None
                known = series.get_derived(k)
                if not known[12] and known[3]:  # recomputed meanwhile
                    return _bar_of(symbol, known[:13], known[2] + MINUTE < known[1])
                start = anchor + (series.last_ts - anchor) // step * step
                end = min(start + step, self._close)
                self._hot.materialize_locked(series)
                window = series.window
                if window and (window[0].ts <= start or len(window) == len(series.stamps)):
                    return self._install(series, symbol, k, window, start, end)
                version = known[13]
            bars = self._hot.since(symbol, start)
            with self._lock:
                if self._series.get(symbol) is series and series.get_derived(k)[13] == version:
                    return self._install(series, symbol, k, bars, start, end)

    def _install(
        self, series: Series, symbol: str, k: int, bars: list[Bar], start: int, end: int
    ) -> DerivedBar | None:
        """Set bucket ``k`` of ``series`` from ``bars`` from its start on (lock held)."""
        bars = bars[bisect_left(bars, start, key=_ts_of):]
        if not bars:  # pragma: no cover - the symbol's newest bar is in its bucket
            return None
        forming = forming_of(bars, start, end)
        series.set_derived(k, *forming)
        return _bar_of(symbol, forming, bars[-1].ts + MINUTE < end)

    def _last_n(self, symbol: str, n: int, interval: Interval) -> list[DerivedBar]:
        """`last_n` when its compiled warm read does not answer: makes or extends the cache."""
        if self._open is None:
            raise self._no_session()
        n = bars_wanted(n)
        k = self._slots.get(interval) if type(interval) in (str, int) else None
        if k is None:
            k = self._slot(interval)
        if k < 0:
            return self.compute_last_n(symbol, n, interval)
        forming = self.latest(symbol, interval)
        if forming is None or n < 2:
            return [forming] if forming is not None and n else []
        series = self._series.get(symbol)
        if series is None:  # cleared meanwhile
            return []
        found = self._finished[k].get(symbol)
        if (found is None or found.series is not series or found.revision != series.revision
                or found.upto != forming.ts or (len(found.bars) < n - 1 and not found.whole)):
            done = self._finish(series, symbol, k, forming.ts, n - 1, found)
        else:
            done = found.bars
        return [*done[1 - n:], forming]

    def compute_last_n(self, symbol: str, n: int, interval: Interval) -> list[DerivedBar]:
        """The last ``n`` ``interval`` bars of ``symbol`` computed from its one-minute bars.

        What `last_n` returns for an interval that is not kept incrementally (and, for one
        that is, the same bars).

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
        n = bars_wanted(n)
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

    def _slot(self, interval: Interval) -> int:
        """The slot of ``interval`` among the declared ones (-1 if none), learnt for the next read.

        Raises
        ------
        ValueError
            ``interval`` is not a number of minutes.
        """
        if type(interval) in (str, int):
            step = _STEPS.get(interval) or _step(interval)
        else:  # parsed, not looked up: 5.0 or True equal a cached 5 or 1 but are no intervals
            step = interval_minutes(interval) * MINUTE
        k = self._slot_of_step.get(step, -1)
        if type(interval) in (str, int) and len(self._slots) < 1_000:
            self._slots[interval] = k
        return k

    def _finish(
        self, series: Series, symbol: str, k: int, upto: int, need: int, found: _Finished | None
    ) -> list[DerivedBar]:
        """At least ``need`` finished bars of declared interval ``k`` before ``upto``; cached.

        Fewer if the symbol has fewer; from the cache ``found`` extended, or made afresh.
        Without the lock: the revision is read before the bars, so a change that lands while
        they are read leaves a cache that the next read does not take.
        """
        anchor, step = self._open, self._steps[k]
        if anchor is None:
            raise self._no_session()
        revision = series.revision
        if found is not None and found.series is series and found.revision == revision:
            done, lo, whole = found.bars, found.lo, found.whole
            if found.upto > upto:  # extended meanwhile past the bucket this read saw forming
                done = [bar for bar in done if bar.ts < upto]
                if len(done) >= need or whole:
                    return done  # not cached: the cache is newer
            else:
                if found.upto < upto:  # buckets finished since: from the window, as a rule
                    done = done + self._finished_between(symbol, anchor, step, found.upto, upto)
                if len(done) >= need or whole:
                    return self._keep(series, symbol, k, need, _Finished(
                        series, revision, lo, upto, done, whole))
        reach = need
        while True:
            lo = upto - reach * step
            done = self._finished_between(symbol, anchor, step, lo, upto)
            stamps = series.stamps
            whole = not len(stamps) or stamps[0] >= lo
            if len(done) >= need or whole:
                return self._keep(series, symbol, k, need, _Finished(
                    series, revision, lo, upto, done, whole))
            reach *= 2  # buckets without bars: look further back

    def _keep(
        self, series: Series, symbol: str, k: int, need: int, made: _Finished
    ) -> list[DerivedBar]:
        """Cache ``made`` (its oldest bars cut when it grew well past what reads ask for)."""
        keep = max(need, _FINISHED_KEPT)
        if len(made.bars) > 2 * keep:
            bars = made.bars[-keep:]
            made = made._replace(lo=bars[0].ts, bars=bars, whole=False)
        if self._series.get(symbol) is series:  # not cleared meanwhile
            self._finished[k][symbol] = made
        return made.bars

    def _finished_between(
        self, symbol: str, anchor: int, step: int, lo: int, upto: int
    ) -> list[DerivedBar]:
        """The finished bars of ``symbol`` of buckets starting in ``[lo, upto)``."""
        bars = self._hot.since(symbol, lo)
        bars = bars[: bisect_left(bars, upto, key=_ts_of)]
        return self._buckets(symbol, anchor, step, bars, finished=True)

    def _buckets(
        self, symbol: str, anchor: int, step: int, bars: list[Bar], *, finished: bool = False
    ) -> list[DerivedBar]:
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
        if out and not finished:
            last = out[-1]
            out[-1] = last._replace(partial=bars[-1].ts + MINUTE < last.end)
        return out

    @staticmethod
    def _no_session() -> SessionError:
        return SessionError(
            "derived bars need an open session (they are anchored to its open); call "
            "start_session() first, or resample any bars with the named query resample_bars"
        )
