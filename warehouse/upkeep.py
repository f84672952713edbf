"""Upkeep: a thread that finds the open session's gaps and fills them from a `BarSource`.

Every ``interval`` seconds a round scans the session's completeness (`Warehouse.quality`, as of
``delay`` seconds ago, so a live bar still on its way is not asked for) and, for each symbol
with gaps, asks the source for the span from its first gap's start to its last gap's end. The
answer goes through `Warehouse.fill`: only bars in minutes the symbol still misses are added,
marked ``origin = 'filled'``; a live bar arriving later for the same minute replaces it.

A source is never trusted: each question runs in a worker thread of its own, which also reads
the answer whole (an iterator is drained there, so one that stalls or fails part-way is the
question's timeout or failure), and is given up after ``timeout`` seconds (the thread is left
to finish as a daemon; at most `MAX_STUCK` are left running before a round stops asking); an
exception, a timeout or an answer that is not bars is a failure of that symbol alone, and the
round goes on with the others; malformed rows, rows of another symbol and rows outside the
session (e.g. a ts in epoch seconds read as microseconds) are dropped and counted (rows of the
session outside the span asked for are dropped uncounted: a source may answer with more). All
of it is logged on the ``warehouse.upkeep`` logger and counted in `UpkeepStats`, and never
reaches the appending threads: ingestion goes on whatever the source does. Nor does the
lifecycle wait on a source: `Upkeep.stop` gives up a question in flight at once.

A symbol that still misses minutes after its question (a failure, or the source did not have
them) waits before it is asked again, twice as long each time, from ``retry_base`` up to
``retry_max`` seconds; a symbol whose gaps are all filled starts over. The thread stops at
`Upkeep.stop`, which `Warehouse.end_session` and `Warehouse.close` call.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.errors import ClosedError, SessionError, StoreError, WarehouseError
from warehouse.schema import _UNIT_NAMES, describe_epoch, partition, plain_unit, to_micros
from warehouse.sources import BarSource

if TYPE_CHECKING:
    from warehouse.warehouse import Warehouse

__all__ = ["MAX_STUCK", "Upkeep", "UpkeepStats"]

log = logging.getLogger("warehouse.upkeep")

#: Questions given up on (timed out) but still running, past which a round stops asking.
MAX_STUCK = 4
#: The longest wait the options mean anything for (a century, in seconds): a longer ``delay``
#: or ``interval`` is taken as this one, so that no finite option overflows a datetime or a
#: thread's wait.
_LONGEST = 100 * 365 * 86_400.0
#: What converting an answer into bars raises when it is not bars.
_NOT_BARS = (WarehouseError, TypeError, ValueError, pa.ArrowException)


@dataclass(frozen=True)
class UpkeepStats:
    """What the upkeep has done so far (`Upkeep.stats`).

    Attributes
    ----------
    rounds
        Rounds run (a round without an open session counts, and asks nothing).
    requests
        Questions asked of the source.
    filled
        Bars added.
    failures
        Questions that raised, or whose answer failed while it was read or was not bars
        (timeouts apart), and symbols whose filling failed otherwise.
    timeouts
        Questions given up after ``timeout`` seconds.
    abandoned
        Questions still in flight when the upkeep stopped, given up (their threads are left
        to finish; what they bring is dropped).
    rejected
        Rows dropped from answers: malformed, of another symbol, or outside the session.
    missing
        Minutes still missing, all symbols, after the last round.
    last_error
        The last failure or timeout, as text (None if there was none).
    """

    rounds: int = 0
    requests: int = 0
    filled: int = 0
    failures: int = 0
    timeouts: int = 0
    abandoned: int = 0
    rejected: int = 0
    missing: int = 0
    last_error: str | None = None


@dataclass
class _Backoff:
    attempts: int = 0
    next_try: float = 0.0


@dataclass
class _Answer:
    done: threading.Event = field(default_factory=threading.Event)
    bars: tuple[pa.Table, pa.Table] | None = None  # `partition` of the answer
    error: str | None = None  # why there are none


class Upkeep:
    """Fills the open session's gaps from a source, in a thread (see the module docstring).

    Made by `Warehouse.start_upkeep`; `run_once` runs one round in the caller's thread.

    Parameters
    ----------
    warehouse
        The warehouse to fill.
    source
        Where missing bars come from.
    interval
        Seconds between rounds.
    timeout
        Seconds a question may take, its answer read whole.
    delay
        Minutes that ended less than this many seconds ago are not asked for yet.
    retry_base, retry_max
        The first and the longest wait before a symbol is asked again, in seconds.

    Each of those is a finite number of seconds, greater than 0 (``delay``: 0 or more).
    symbols
        Symbols to fill even if they have no bar at all this session (every symbol with a bar
        is filled anyway).
    now
        The clock (aware datetimes); the wall clock by default.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        source: BarSource,
        *,
        interval: float = 60.0,
        timeout: float = 30.0,
        delay: float = 60.0,
        retry_base: float = 5.0,
        retry_max: float = 60.0,
        symbols: Iterable[str] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        for name, value in (("interval", interval), ("timeout", timeout),
                            ("retry_base", retry_base), ("retry_max", retry_max)):
            _check_seconds(name, value, positive=True)
        _check_seconds("delay", delay, positive=False)
        self.warehouse = warehouse
        self.source = source
        self.interval = min(interval, _LONGEST)
        self.timeout = timeout
        self.delay = timedelta(seconds=min(delay, _LONGEST))
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.symbols = None if symbols is None else list(symbols)
        self._now = now or (lambda: datetime.now(UTC))
        self._stats = UpkeepStats()
        self._stats_lock = threading.Lock()
        self._backoff: dict[str, _Backoff] = {}
        self._stuck: list[threading.Thread] = []
        self._stop = threading.Event()
        self._round = threading.Lock()  # one round at a time (the thread's, or run_once's)
        self._thread: threading.Thread | None = None

    # -- commands ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run a round now and then every ``interval`` seconds, in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("this upkeep was started already; make a new one")
        self._thread = threading.Thread(target=self._loop, name="warehouse-upkeep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it: a question in flight is given up, nothing is added.

        Idempotent; called from the thread itself, it only asks it to stop.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def run_once(self) -> int:
        """One round: scan the gaps, ask the source, fill what it gives; returns bars added.

        Raises
        ------
        ClosedError
            The warehouse is closed.
        """
        with self._round:
            try:
                report = self.warehouse.quality(now=self._now() - self.delay,
                                                symbols=self.symbols)
            except SessionError:
                self._count(rounds=1)
                return 0  # no open session: nothing to fill yet
            gaps = report.filter(pl.col("gaps") > 0)
            missing = int(gaps["missing"].sum()) if gaps.height else 0
            added = 0
            if gaps.height == 0:
                self._backoff.clear()
            for symbol, ranges, short in gaps.select("symbol", "ranges", "missing").iter_rows():
                if self._stop.is_set() or self._too_many_stuck():
                    break
                waiting = self._backoff.get(symbol)
                if waiting is not None and waiting.next_try > time.monotonic():
                    continue
                try:
                    got = self._ask(symbol, ranges[0]["start"], ranges[-1]["end"])
                except ClosedError:
                    raise
                except Exception as exc:  # one symbol's trouble: the others are still filled
                    log.exception("upkeep: %s: filling failed", symbol)
                    self._failed(f"{symbol}: filling failed: {exc!r}")
                    got = 0
                added += got
                if got >= short:
                    self._backoff.pop(symbol, None)
                else:
                    self._retry_later(symbol)
            self._count(rounds=1, filled=added)
            with self._stats_lock:
                self._stats = replace(self._stats, missing=missing - added)
            return added

    # -- queries ----------------------------------------------------------------------------

    @property
    def stats(self) -> UpkeepStats:
        """The counters so far (a snapshot)."""
        with self._stats_lock:
            return self._stats

    @property
    def running(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- internals --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except ClosedError:
                return
            except Exception as exc:  # a bug or the store failing: log it, try next round
                log.exception("upkeep round failed")
                self._failed(f"round failed: {exc!r}")
            self._stop.wait(self.interval)

    def _ask(self, symbol: str, start: datetime, end: datetime) -> int:
        """Ask the source for ``symbol``'s bars in [start, end) and fill with them."""
        self._count(requests=1)
        answer = _Answer()

        def call() -> None:
            try:
                value = self.source.fetch(symbol, start, end)
            except BaseException as exc:
                answer.error = f"the source failed: {exc!r}"
            else:
                # Read here, within the timeout: an answer may be lazy (an iterator, a stream)
                # and stall or fail part-way as the source itself may.
                try:
                    answer.bars = partition(value)
                except _NOT_BARS as exc:
                    answer.error = f"the source's answer is not bars: {exc}"
                except BaseException as exc:
                    answer.error = f"reading the source's answer failed: {exc!r}"
            finally:
                answer.done.set()

        worker = threading.Thread(target=call, name=f"warehouse-upkeep-fetch:{symbol}",
                                  daemon=True)
        worker.start()
        deadline = time.monotonic() + self.timeout
        while not answer.done.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if self._stop.is_set() or time.monotonic() >= deadline:
                self._stuck.append(worker)  # a daemon thread: left to finish, never waited for
                if self._stop.is_set():
                    self._count(abandoned=1)
                    log.warning("upkeep: %s: stopped while the source was answering; its "
                                "answer is dropped", symbol)
                else:
                    self._count(timeouts=1)
                    self._note(f"{symbol}: the source gave no answer in {self.timeout} s")
                return 0
        if answer.bars is None:
            self._failed(f"{symbol}: {answer.error}")
            return 0
        return self._fill(symbol, start, end, *answer.bars)

    def _fill(
        self, symbol: str, start: datetime, end: datetime, table: pa.Table, invalid: pa.Table
    ) -> int:
        ours = table.filter(pc.equal(table.column("symbol"), symbol))
        dropped = invalid.num_rows + table.num_rows - ours.num_rows
        if dropped:
            self._count(rejected=dropped)
            first = invalid["reason"][0].as_py() if invalid.num_rows else "of another symbol"
            log.warning("upkeep: %s: dropped %d rows of the source's answer (malformed, or of "
                        "another symbol), the first: %s", symbol, dropped, first)
        # Rows of the session outside the span asked for are left out (a source may answer
        # with more); rows outside the session go to `fill`, which refuses and reports them.
        ts = ours.column("ts").cast(pa.int64())
        session = self.warehouse.session
        keep = pc.and_(pc.greater_equal(ts, to_micros(start)), pc.less(ts, to_micros(end)))
        if session is not None:
            keep = pc.or_(keep, pc.invert(pc.and_(pc.greater_equal(ts, session.open),
                                                  pc.less(ts, session.close))))
        kept = ours.filter(keep)
        if self._stop.is_set():
            return 0
        try:
            result = self.warehouse.fill(kept, on_invalid="report")
        except StoreError as exc:
            self._failed(f"{symbol}: storing {kept.num_rows} filled bars failed: {exc}")
            return 0
        if result.rejected.num_rows:
            self._count(rejected=result.rejected.num_rows)
            log.warning("upkeep: %s: dropped %d rows of the source's answer, the first: %s%s",
                        symbol, result.rejected.num_rows, result.rejected["reason"][0],
                        _unit_hint(result.rejected))
        if result.added:
            log.info("upkeep: %s: filled %d bars", symbol, result.added)
        return result.added

    def _retry_later(self, symbol: str) -> None:
        waiting = self._backoff.setdefault(symbol, _Backoff())
        waiting.attempts += 1
        # The exponent stops growing long before the pause could overflow a float.
        pause = min(self.retry_max, self.retry_base * 2 ** min(waiting.attempts - 1, 64))
        waiting.next_try = time.monotonic() + pause

    def _too_many_stuck(self) -> bool:
        self._stuck = [t for t in self._stuck if t.is_alive()]
        if len(self._stuck) >= MAX_STUCK:
            self._note(f"{len(self._stuck)} questions to the source still run past their "
                       "timeout; asking no more this round")
            return True
        return False

    def _failed(self, message: str) -> None:
        self._count(failures=1)
        self._note(message)

    def _note(self, message: str) -> None:
        log.warning("upkeep: %s", message)
        with self._stats_lock:
            self._stats = replace(self._stats, last_error=message)

    def _count(self, **increments: Any) -> None:
        with self._stats_lock:
            self._stats = replace(self._stats, **{
                name: getattr(self._stats, name) + value for name, value in increments.items()
            })

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Upkeep({self.source!r}, every {self.interval} s, {state})"


def _check_seconds(name: str, value: float, *, positive: bool) -> None:
    """Refuse an option that is no finite number of seconds in its range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's too
        raise ValueError(f"{name} is a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise ValueError(f"{name} must be a finite number of seconds, {bound}; got {value!r}")


def _unit_hint(rejected: pa.Table) -> str:
    """A word on rejected rows whose ts were plainly integers of another epoch unit."""
    ts = rejected["ts"].cast(pa.int64())
    bounds = pc.min_max(ts)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    unit = None if low is None else plain_unit(low, high)
    if unit is None or unit == "us":
        return ""
    name = _UNIT_NAMES[unit]
    return (f" (their ts look like epoch {name} read as microseconds: {low} is "
            f"{describe_epoch(low, unit)} in {name}; give the source's ts as timestamps)")
