"""Hot state: per symbol, its timestamps, a window of its bars, its latest bar, its metrics.

A symbol's `Series` (compiled, `_hot.pyx`) holds the sorted timestamps of all its bars this
session (8 bytes a bar, so counts, ordering and replacements are exact without asking DuckDB)
and a bounded window of its most recent `Bar` objects, which latest, last-N and since are
served from. Reads that reach past the window go to the deep reader (the store). It also holds
the running totals of the symbol's session metrics, which the rare paths here keep with
`metrics` (late bars, corrections, batches, reopening; see that module).

Concurrency: commands run under the buffer's lock (given at construction). Reads take none:
they read a dict or slice a list, which CPython does atomically, and every command leaves a
window a sorted suffix of the symbol's bars, so a reader never sees a half-written bar.
"""

from __future__ import annotations

import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa

from warehouse._hot import Series
from warehouse._lock import Lock
from warehouse._runs import Runs, ranges, run_ends
from warehouse.derive import forming_of
from warehouse.errors import WarehouseError
from warehouse.metrics import (
    EMPTY,
    SessionMetrics,
    Totals,
    batch_totals,
    combine,
    from_table,
    of_bar,
    of_bars,
)
from warehouse.schema import MIN_TS, MINUTE, Bar, bars_from_table, check_symbol, to_micros

#: Reads that reach past a symbol's window: (symbol, n or None, since-ts or None) -> bars.
DeepReader = Callable[[str, int | None, int | None], list[Bar]]

_ts_of = attrgetter("ts")
_NO_TS = MIN_TS - 1


@dataclass
class BatchPlan:
    """What a batch does to the windows, worked out before the lock is taken (see `plan`)."""

    runs: Runs
    firsts: np.ndarray  # per run, the first row its window keeps
    recent: pa.Table  # the rows the windows keep, run after run
    offsets: np.ndarray  # per run, where its rows start in `recent`
    long: np.ndarray  # per run, whether it fills a window (which then stays Arrow rows)
    eager: list[Bar]  # the bars of the short runs' windows
    lasts: list[Bar]  # the last bar of each long run
    totals: list[Totals]  # per run, the totals of its bars (empty with metrics off)


class HotState:
    """The hot state of every symbol of a session.

    Parameters
    ----------
    window
        Bars kept in memory per symbol.
    lock
        The buffer's lock (held by every command; taken here to materialise a window).
    deep_reader
        Answers reads that reach past the window.
    metrics
        Keep each symbol's session metrics (the compiled append is told the same).
    derived_steps
        The steps (microseconds) of the intervals whose forming bucket each series keeps
        (`warehouse.derive`; the compiled append is told the same).
    """

    def __init__(
        self,
        window: int,
        lock: Lock,
        deep_reader: DeepReader | None,
        *,
        metrics: bool = True,
        derived_steps: tuple[int, ...] = (),
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.keep = window
        # A window grows to keep + slack before it is cut back, so trimming is amortised.
        self.cap = window + max(16, window // 4)
        self._lock = lock
        self.deep_reader = deep_reader
        self.metrics = metrics
        self.derived_steps = derived_steps
        #: Per declared interval, symbol -> the `DerivedBar` of its forming bucket, while
        #: current (`_derive.Latest` fills them; every change of a bucket takes its bar out).
        self.derived_caches: list[dict[str, Any]] = [{} for _ in derived_steps]
        #: Per declared interval, symbol -> the cache of its finished derived bars, made by
        #: the first `last_n_derived` that needs it (`warehouse.derive.Deriver.last_n`).
        self.finished_caches: list[dict[str, Any]] = [{} for _ in derived_steps]
        self.series: dict[str, Series] = {}
        #: Every symbol with a series, in order of first appearance: a series' ``code`` is its
        #: symbol's index here (the append log holds single appends' symbols as these codes).
        self.names: list[str] = []
        self.latest_bars: dict[str, Bar] = {}
        #: The latest bar of a symbol: the bound ``get`` of a dict, one C call.
        self.latest = self.latest_bars.get
        #: How many bars replaced an earlier bar of the same (symbol, ts).
        self.replacements = 0

    # -- commands (lock held) ---------------------------------------------------------------

    def new_series(self, symbol: str, ts: int | None = None) -> Series:
        """The state of a symbol seen for the first time (its name checked first)."""
        check_symbol(symbol, ts)
        return self._add_series(symbol)

    def place_older(self, series: Series, bar: Bar) -> bool:
        """Place a bar not newer than its symbol's latest; True if it replaced a bar."""
        self.materialize_locked(series)
        ts = bar.ts
        stamps = series.stamps
        window = series.window  # never empty here: the symbol has bars
        at = bisect_left(stamps, ts)
        if at < len(stamps) and stamps[at] == ts:
            self.replacements += 1
            old = None  # the bar it replaces, if the window holds it
            if window[0].ts <= ts:
                i = bisect_left(window, ts, key=_ts_of)
                old, window[i] = window[i], bar
            if ts == series.last_ts:
                self.latest_bars[bar.symbol] = bar
            if self.metrics:
                self._retotal(series, of_bar(bar), None if old is None else of_bar(old))
            self._rederive(series, ts)
            return True
        held_all = len(window) == len(stamps)
        stamps.insert(at, ts)
        if held_all or window[0].ts < ts:
            window.insert(bisect_left(window, ts, key=_ts_of), bar)
            if len(window) > self.cap:
                del window[: -self.keep]
        if self.metrics:
            self._retotal(series, of_bar(bar))
        self._rederive(series, ts)
        return False

    def plan(self, runs: Runs) -> BatchPlan:
        """Work out a batch's windows without the lock: the rows they keep, as bars or rows.

        Bars are made only for runs short enough to be held whole; a long run's window stays
        Arrow rows until a read needs it (see `materialize`).
        """
        table, keep = runs.table, self.keep
        firsts = np.maximum(runs.starts, runs.ends - keep)
        recent = table.take(pa.array(runs.order[ranges(firsts, runs.ends)]))
        sizes = runs.ends - firsts
        offsets = np.concatenate(([0], np.cumsum(sizes)))
        long = (runs.ends - runs.starts) >= keep
        short_rows = np.repeat(~long, sizes)
        # Each run's bars refer to one string, its series' name where it has one already.
        names = np.empty(len(runs.names), dtype=object)
        names[:] = [self.name_of(name) for name in runs.names]
        return BatchPlan(
            runs, firsts, recent, offsets, long,
            eager=bars_from_table(recent.filter(pa.array(short_rows)),
                                  np.repeat(names[~long], sizes[~long]).tolist()),
            lasts=bars_from_table(table.take(pa.array(runs.order[runs.ends[long] - 1])),
                                  names[long].tolist()),
            totals=batch_totals(runs) if self.metrics else [],
        )

    def check_new_symbols(self, names: list[str]) -> None:
        """Raise `InvalidBarError` for the first name that is new and not a usable symbol."""
        for name in names:
            if name not in self.series:
                check_symbol(name)

    def apply(self, plan: BatchPlan) -> list[tuple[str, int]]:
        """Add a planned batch to every symbol it holds; returns the keys it replaced."""
        runs = plan.runs
        replaced: list[tuple[str, int]] = []
        self.replacements += runs.dropped
        late = self._late_bars(runs)
        i_eager = i_last = 0
        for k, name in enumerate(runs.names):
            start, end = int(runs.starts[k]), int(runs.ends[k])
            size = end - int(plan.firsts[k])
            # Every new name was checked (`check_new_symbols`) before anything changed.
            series = self.series.get(name) or self._add_series(name)
            stamps = runs.stamps[start:end]
            if k not in late:  # all after the symbol's latest bar
                series.stamps.frombytes(stamps.tobytes())
                series.last_ts = int(stamps[-1])
                if plan.long[k]:
                    series.window = []
                    series.lazy = plan.recent.slice(int(plan.offsets[k]), size)
                    self.latest_bars[name] = plan.lasts[i_last]
                else:
                    self.materialize_locked(series)
                    window = series.window
                    window.extend(plan.eager[i_eager : i_eager + size])
                    if len(window) > self.cap:
                        del window[: -self.keep]
                    self.latest_bars[name] = window[-1]
                if self.metrics:
                    self._retotal(series, plan.totals[k])
            else:
                self.materialize_locked(series)
                added = plan.totals[k] if self.metrics else None
                replaced.extend(
                    (name, t) for t in self._merge_older(series, name, stamps, late[k], added))
            if self.derived_steps:
                series.mark_derived_stale()
            i_last += int(plan.long[k])
            i_eager += 0 if plan.long[k] else size
        return replaced

    def restore(self, stamps: pa.Table, recent: pa.Table, totals: pa.Table | None = None) -> None:
        """Rebuild the hot state of bars that are already stored (when a file is reopened).

        ``stamps`` holds (symbol, ts) of every stored bar sorted by symbol and ts; ``recent``
        the last bars of each symbol, sorted the same way; ``totals`` the metrics' totals of
        each symbol (``sql/internal/symbol_totals.sql``): with metrics on, a symbol they do not
        cover gets stale totals, which its next metrics read recomputes. Takes the lock.
        """
        if recent.num_rows == 0:
            return
        exact = {} if totals is None else from_table(totals)
        symbols = stamps.column("symbol").combine_chunks()
        ts = stamps.column("ts").cast(pa.int64()).to_numpy()
        recent_ends = run_ends(recent.column("symbol").combine_chunks())
        recent_starts = np.concatenate(([0], recent_ends[:-1]))
        lasts = bars_from_table(recent.take(pa.array(recent_ends - 1)))
        windows = {
            bar.symbol: (bar, recent.slice(int(first), int(end - first)))
            for bar, first, end in zip(lasts, recent_starts, recent_ends, strict=True)
        }
        with self._lock:
            start = 0
            for end in run_ends(symbols).tolist():
                name = symbols[start].as_py()
                series = self.series.get(name) or self._add_series(name)
                series.stamps = array.array("q", ts[start:end].tobytes())
                series.last_ts = int(ts[end - 1])
                self.latest_bars[name], series.lazy = windows[name]
                series.window = []
                if self.metrics:
                    unknown = EMPTY._replace(bar_count=end - start, stale=True)
                    series.set_totals(*exact.get(name, unknown))
                series.mark_derived_stale()
                start = end

    def clear(self) -> None:
        """Forget every symbol (in place: the compiled paths and the log hold the containers).

        The log is cleared with it: its single appends hold codes into `names`.
        """
        self.series.clear()
        for cache in self.derived_caches + self.finished_caches:  # after the series: no
            cache.clear()  # reader caches a bar again
        self.latest_bars.clear()
        self.names.clear()
        self.replacements = 0

    def mark_derived_stale(self) -> None:
        """Mark every symbol's forming buckets unknown (lock held; a session starts or ends)."""
        for series in list(self.series.values()):
            series.mark_derived_stale()
        for cache in self.finished_caches:  # their revisions moved: no longer of use
            cache.clear()

    def set_exact_totals(self, symbols: list[str], totals: pa.Table) -> None:
        """Replace the metrics' totals of ``symbols`` with exact ones (lock held).

        ``totals`` holds the rows of ``sql/internal/symbol_totals.sql`` for them, over every
        bar at this instant: the caller holds the store's lock and this one around both.
        """
        exact = from_table(totals)
        for name in symbols:
            series = self.series.get(name)
            if series is not None:
                series.set_totals(*exact.get(name, EMPTY))

    def materialize_locked(self, series: Series) -> None:
        """Turn a series' Arrow rows into window bars."""
        lazy = series.lazy
        if lazy is None:
            return
        window = bars_from_table(lazy, series.symbol) + series.window
        # The window first, then the flag: a lock-free reader that sees no flag sees it whole.
        series.window = window[-self.keep :] if len(window) > self.cap else window
        series.lazy = None

    # -- queries ----------------------------------------------------------------------------

    def last_n(self, symbol: str, n: int) -> list[Bar]:
        """The last ``n`` bars of ``symbol`` in ts order (fewer if it has fewer).

        The compiled `_hot.Reader.last_n` serves reads within the window and falls back here.
        """
        series = self.series.get(symbol)
        if series is None:
            return []
        window = series.window
        if n <= len(window):
            if n > 0:
                return window[-n:]
            if n < 0:
                raise ValueError(f"n must be >= 0, got {n}")
            return []
        if series.lazy is not None:
            self._materialize(series)
            return self.last_n(symbol, n)
        if len(window) == len(series.stamps):
            return window[:]
        return self._deep(symbol, n, None)

    def since(self, symbol: str, ts: int | Any) -> list[Bar]:
        """The bars of ``symbol`` with a timestamp at or after ``ts``, in ts order."""
        if type(ts) is not int:
            ts = to_micros(ts, symbol)
        series = self.series.get(symbol)
        if series is None:
            return []
        if series.lazy is not None:
            self._materialize(series)
        window = series.window[:]
        if window and (window[0].ts <= ts or len(window) == len(series.stamps)):
            return window[bisect_left(window, ts, key=_ts_of):]
        return self._deep(symbol, None, ts)

    def unheld_minutes(self, runs: Runs) -> np.ndarray:
        """Which rows of a batch fall in a minute that no bar of their symbol holds yet.

        A mask over ``runs.table``: of several rows in one such minute, the earliest only. The
        caller holds the lock (gap filling: `AppendBuffer.fill`), so no bar arrives meanwhile.
        """
        keep = np.zeros(runs.table.num_rows, dtype=bool)
        for k, name in enumerate(runs.names):
            start, end = int(runs.starts[k]), int(runs.ends[k])
            minutes = runs.stamps[start:end] // MINUTE
            fresh = np.ones(end - start, dtype=bool)
            fresh[1:] = minutes[1:] != minutes[:-1]
            series = self.series.get(name)
            if series is not None and len(series.stamps):
                held = np.frombuffer(series.stamps, dtype=np.int64)
                # The first held bar at or after each minute's start: in that minute or not?
                at = np.searchsorted(held, minutes * MINUTE)
                inside = at < len(held)
                inside[inside] = held[at[inside]] < (minutes[inside] + 1) * MINUTE
                fresh &= ~inside
            keep[runs.order[start:end][fresh]] = True
        return keep

    def name_of(self, symbol: str) -> str:
        """The string a symbol's bars refer to: its series' name, else ``symbol`` itself."""
        series = self.series.get(symbol)
        return symbol if series is None or series.symbol is None else series.symbol

    def count(self, symbol: str) -> int:
        """The number of bars of ``symbol`` this session (a replaced bar counts once)."""
        series = self.series.get(symbol)
        return 0 if series is None else len(series.stamps)

    def stale_symbols(self, symbols: list[str]) -> list[str]:
        """Those of ``symbols`` whose metrics need recomputing from their bars."""
        return [
            name for name in symbols
            if (series := self.series.get(name)) is not None and Totals(*series.get_totals()).stale
        ]

    def metrics_locked(self, symbol: str) -> SessionMetrics | None:
        """The session metrics of ``symbol``, for a caller holding the lock (not stale)."""
        series = self.series.get(symbol)
        return None if series is None else series.metrics(symbol)

    def has_bars(self, symbol: str) -> bool:
        """Whether ``symbol`` has any bar this session."""
        return symbol in self.latest_bars

    def symbols(self) -> list[str]:
        """The symbols with bars, sorted."""
        return sorted(self.latest_bars)

    def total_count(self) -> int:
        """The number of bars held, all symbols."""
        return sum(len(s.stamps) for s in list(self.series.values()))

    def ts_span(self) -> tuple[int, int] | None:
        """The least and the greatest ts of the bars held (None while there is none)."""
        held = [s for s in list(self.series.values()) if len(s.stamps)]
        if not held:
            return None
        return min(s.stamps[0] for s in held), max(s.last_ts for s in held)

    # -- internals --------------------------------------------------------------------------

    def _add_series(self, symbol: str) -> Series:
        """A new symbol's series, its code the next index of `names`."""
        series = self.series[symbol] = Series(len(self.names), symbol, self.derived_caches)
        self.names.append(symbol)
        return series

    def _materialize(self, series: Series) -> None:
        with self._lock:
            self.materialize_locked(series)

    def _late_bars(self, runs: Runs) -> dict[int, list[Bar]]:
        """The bars of each run that reaches back before its symbol's latest bar, by run.

        Its keys are the late runs: every other run lies after its symbol's latest bar (a new
        symbol's included).

        Made with one conversion for all of them: a batch of late bars for every symbol (a
        market-wide gap filled, say) would otherwise pay a conversion per symbol.
        """
        late = []
        for k, name in enumerate(runs.names):
            series = self.series.get(name)
            if series is not None and int(runs.stamps[runs.starts[k]]) <= series.last_ts:
                late.append(k)
        if not late:
            return {}
        starts, ends = runs.starts[late], runs.ends[late]
        rows = runs.table.take(pa.array(runs.order[ranges(starts, ends)]))
        names = [self.name_of(runs.names[k]) for k in late]
        bars = bars_from_table(rows, np.repeat(np.array(names, dtype=object),
                                               ends - starts).tolist())
        offsets = np.concatenate(([0], np.cumsum(ends - starts))).tolist()
        return {k: bars[offsets[i] : offsets[i + 1]] for i, k in enumerate(late)}

    def _merge_older(
        self, series: Series, symbol: str, run: np.ndarray, bars: list[Bar],
        added: Totals | None,
    ) -> list[int]:
        """Merge a batch's run that reaches back before its latest bar; returns replaced ts.

        ``run``: its timestamps (sorted, distinct); ``bars``: its bars, in that order;
        ``added``: its totals (None with metrics off).
        """
        old = np.frombuffer(series.stamps, dtype=np.int64)
        at = np.searchsorted(old, run)
        known = old[np.minimum(at, len(old) - 1)] == run if len(old) else np.zeros(len(run), bool)
        self.replacements += int(known.sum())
        held_all = len(series.window) == len(old)
        floor = _NO_TS if held_all else series.window[0].ts
        corrected = run[known]
        removed: Totals | None = EMPTY  # what the run corrects, if the window holds it
        if added is not None and len(corrected):
            removed = of_bars(series.window, corrected) if corrected[0] >= floor else None
        series.stamps = array.array("q", np.insert(old, at[~known], run[~known]).tobytes())
        by_ts = {bar.ts: bar for bar in series.window}
        for bar in bars[int(np.searchsorted(run, floor)) :]:  # those at or after the floor
            by_ts[bar.ts] = bar
        window = [by_ts[t] for t in sorted(by_ts)]
        series.window = window[-self.keep :] if len(window) > self.cap else window
        series.last_ts = series.stamps[-1]
        self.latest_bars[symbol] = series.window[-1]
        if added is not None:
            self._retotal(series, added, removed)
        replaced: list[int] = corrected.tolist()
        return replaced

    def _retotal(self, series: Series, added: Totals, removed: Totals | None = EMPTY) -> None:
        """Publish a series' totals once ``added`` came in, correcting ``removed`` (lock held).

        Called after its timestamps and window are updated. ``removed``: the totals of the
        bars the corrections replace, None if they are not in memory. Totals that `combine`
        cannot carry forward are recomputed from the window when it holds every bar of the
        symbol, else marked stale (the next read recomputes them from the store).
        """
        totals = Totals(*series.get_totals())
        if totals.stale:
            return  # the next read recomputes them from every bar
        new = None if removed is None else combine(totals, added, removed)
        if new is None:
            held_all = series.lazy is None and len(series.window) == len(series.stamps)
            new = of_bars(series.window) if held_all else totals._replace(stale=True)
        series.set_totals(*new)

    def _rederive(self, series: Series, ts: int) -> None:
        """Keep the forming buckets after a bar at ``ts`` (not the newest) was placed.

        Called with the lock held, after the timestamps and window are updated. A bucket the
        bar falls in is recomputed from the window when it reaches back to the bucket's start,
        else marked stale (the next read recomputes it from the store). A bar in an older
        bucket changes nothing kept here, but drops the cached finished bars (`revision`).
        """
        finished = False
        for k in range(len(self.derived_steps)):
            known = series.get_derived(k)
            start, stale = known[0], known[12]
            finished = finished or stale or ts < start
            if stale or ts >= start:
                window = series.window
                covered = series.lazy is None and window and (
                    window[0].ts <= start or len(window) == len(series.stamps))
                if stale or not covered:
                    # Stale again, with a new version: a refresh reading meanwhile retries.
                    series.set_derived(k, *known[:12], True)
                else:
                    bars = window[bisect_left(window, start, key=_ts_of):]
                    series.set_derived(k, *forming_of(bars, start, known[1]))
        if finished:  # after the window changed: a cache made meanwhile is dropped too
            series.revision += 1

    def _deep(self, symbol: str, n: int | None, ts: int | None) -> list[Bar]:
        if self.deep_reader is None:
            raise WarehouseError(
                f"{symbol}: the read reaches past the in-memory window and no store is attached"
            )
        return self.deep_reader(symbol, n, ts)
