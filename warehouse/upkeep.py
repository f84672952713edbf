"""Upkeep: a thread that finds the open session's gaps and fills them from a `BarSource`.

Every ``interval`` seconds a round scans the session's completeness (`Warehouse.quality`, as of
``delay`` seconds ago, so a live bar still on its way is not asked for) and, for each symbol
with gaps, asks the source for the span from its first gap's start to its last gap's end. The
answer goes through `Warehouse.fill`: only bars in minutes the symbol still misses are added,
marked ``origin = 'filled'``; a live bar arriving later for the same minute replaces it.

A source is never trusted: each question runs in a worker thread of its own and is given up
after ``timeout`` seconds (the thread is left to finish; at most `MAX_STUCK` are left running
before a round stops asking); an exception, a timeout or an answer that is not bars is a
failure; malformed rows and rows of another symbol are dropped and counted (rows outside
the span asked for are dropped too: a source may answer with more). All of it is logged on
the ``warehouse.upkeep`` logger and counted in `UpkeepStats`, and never reaches the appending
threads: ingestion goes on whatever the source does.

A symbol that still misses minutes after its question (a failure, or the source did not have
them) waits before it is asked again, twice as long each time, from ``retry_base`` up to
``retry_max`` seconds; a symbol whose gaps are all filled starts over. The thread stops at
`Upkeep.stop`, which `Warehouse.end_session` and `Warehouse.close` call.
"""

from __future__ import annotations

import logging
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
from warehouse.schema import partition
from warehouse.sources import BarSource

if TYPE_CHECKING:
    from warehouse.warehouse import Warehouse

__all__ = ["MAX_STUCK", "Upkeep", "UpkeepStats"]

log = logging.getLogger("warehouse.upkeep")

#: Questions given up on (timed out) but still running, past which a round stops asking.
MAX_STUCK = 4


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
        Questions that raised, or whose answer was not bars (timeouts apart).
    timeouts
        Questions given up after ``timeout`` seconds.
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
    value: object = None
    error: BaseException | None = None


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
        Seconds a question may take.
    delay
        Minutes that ended less than this many seconds ago are not asked for yet.
    retry_base, retry_max
        The first and the longest wait before a symbol is asked again, in seconds.
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
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        self.warehouse = warehouse
        self.source = source
        self.interval = interval
        self.timeout = timeout
        self.delay = timedelta(seconds=delay)
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
                got = self._ask(symbol, ranges[0]["start"], ranges[-1]["end"])
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
                answer.value = self.source.fetch(symbol, start, end)
            except BaseException as exc:
                answer.error = exc
            finally:
                answer.done.set()

        worker = threading.Thread(target=call, name=f"warehouse-upkeep-fetch:{symbol}",
                                  daemon=True)
        worker.start()
        deadline = time.monotonic() + self.timeout
        while not answer.done.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if self._stop.is_set() or time.monotonic() >= deadline:
                self._stuck.append(worker)
                if not self._stop.is_set():
                    self._count(timeouts=1)
                    self._note(f"{symbol}: the source gave no answer in {self.timeout} s")
                return 0
        if answer.error is not None:
            self._failed(f"{symbol}: the source failed: {answer.error!r}")
            return 0
        return self._fill(symbol, start, end, answer.value)

    def _fill(self, symbol: str, start: datetime, end: datetime, value: object) -> int:
        try:
            table, invalid = partition(value)
        except (WarehouseError, TypeError, ValueError, pa.ArrowException) as exc:
            self._failed(f"{symbol}: the source's answer is not bars: {exc}")
            return 0
        ours = table.filter(pc.equal(table.column("symbol"), symbol))
        dropped = invalid.num_rows + table.num_rows - ours.num_rows
        if dropped:
            self._count(rejected=dropped)
            log.warning("upkeep: %s: dropped %d rows of the source's answer (malformed, or of "
                        "another symbol)", symbol, dropped)
        ts = ours.column("ts")
        # Rows outside the span asked for are left out: a source may answer with more.
        kept = ours.filter(pc.and_(pc.greater_equal(ts, pa.scalar(start, ts.type)),
                                   pc.less(ts, pa.scalar(end, ts.type))))
        if self._stop.is_set():
            return 0
        try:
            result = self.warehouse.fill(kept, on_invalid="report")
        except StoreError as exc:
            self._failed(f"{symbol}: storing {kept.num_rows} filled bars failed: {exc}")
            return 0
        if result.rejected.num_rows:
            self._count(rejected=result.rejected.num_rows)
        if result.added:
            log.info("upkeep: %s: filled %d bars", symbol, result.added)
        return result.added

    def _retry_later(self, symbol: str) -> None:
        waiting = self._backoff.setdefault(symbol, _Backoff())
        waiting.attempts += 1
        pause = min(self.retry_max, self.retry_base * 2 ** (waiting.attempts - 1))
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
