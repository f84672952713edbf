"""Hot state and append log: where every bar lands first.

Per symbol the buffer keeps a `Series`: the sorted timestamps of all its bars this session
(8 bytes a bar, so counts, ordering and replacements are exact without asking DuckDB) and a
bounded window of its most recent `Bar` objects, which latest, last-N and since are served from.
Every accepted bar is also put on the append log, which the flusher drains into DuckDB as one
Arrow table.

Concurrency: writers (`append`, `extend`, `drain`) take one short lock. Hot reads take none: they
read a dict or slice a list, which CPython does atomically, and every mutation leaves the window a
sorted suffix of the symbol's bars, so a reader never sees a half-written bar.
"""

from __future__ import annotations

import array
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse._hot import Appender, Reader, Series
from warehouse.errors import ClosedError, InvalidBarError, WarehouseError
from warehouse.journal import Journal
from warehouse.schema import (
    BAR_SCHEMA,
    MIN_TS,
    Bar,
    bars_from_table,
    check_symbol,
    conform,
    diagnose,
    empty_table,
    rows_to_batch,
    to_micros,
)

#: Reads that reach past a symbol's window: (symbol, n or None, since-ts or None) -> bars.
DeepReader = Callable[[str, int | None, int | None], list[Bar]]

_INF = float("inf")
_ts_of = attrgetter("ts")
_NO_TS = MIN_TS - 1


class AppendBuffer:
    """In-memory hot state and append log of a session's bars.

    Parameters
    ----------
    window
        Bars kept in memory per symbol after they are flushed; ``last_n(symbol, n)`` for
        ``n <= window`` never leaves memory.
    flush_rows
        When this many bars wait on the log, ``on_full`` is called (once per drain).
    on_full
        Called from the appending thread when the log reaches ``flush_rows``.
    deep_reader
        Answers reads that reach past the window (the warehouse wires DuckDB in here).
    journal
        Where every accepted bar is also recorded before `append` or `extend` returns.

    Attributes
    ----------
    append(symbol, ts, open, high, low, close, volume, vwap=None, trade_count=None)
        Validate and add one bar (thread-safe). A closure built per instance: the hot path.
    latest(symbol) -> Bar | None
        The bound ``get`` of the latest-bar dict, so a lookup costs one C call.

    Examples
    --------
    >>> buf = AppendBuffer()
    >>> buf.append("AAPL", "2025-11-21T14:30:00Z", 10.0, 11.0, 9.5, 10.5, 1200)
    >>> buf.latest("AAPL").close
    10.5
    """

    append: Callable[..., None]
    latest: Callable[[str], Bar | None]
    last_n: Callable[[str, int], list[Bar]]

    def __init__(
        self,
        *,
        window: int = 64,
        flush_rows: int = 100_000,
        on_full: Callable[[], None] | None = None,
        deep_reader: DeepReader | None = None,
        journal: Journal | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be at least 1, got {flush_rows}")
        self._window = window
        # A window grows to window + slack before it is cut back, so trimming is amortised.
        self._window_cap = window + max(16, window // 4)
        self._flush_rows = flush_rows
        self._on_full = on_full
        self.journal = journal  # fixed at construction: the append closure holds it
        #: The journal segment sealed by the last `drain` (None without a journal).
        self.journal_mark: int | None = None
        self.deep_reader = deep_reader
        #: Held by every writer; `Warehouse.clear` holds it across the whole clear.
        self.lock = threading.Lock()
        self._closed = False
        self._series: dict[str, Series] = {}
        self._latest: dict[str, Bar] = {}
        self.latest = self._latest.get
        # The append log: sealed chunks (record batches, or lists of bars not converted yet)
        # followed by the open list of single appends. Arrival order is kept: on a repeated
        # (symbol, ts) the last one wins.
        self._chunks: list[pa.RecordBatch | list[Bar]] = []
        self._pending: list[Bar] = []
        self._pending_rows = 0  # rows in sealed chunks
        self._replaced: set[tuple[str, int]] = set()
        self.replacements = 0
        # Single appends already converted for a snapshot: batches covering _pending[:done].
        self._pending_batches: list[pa.RecordBatch] = []
        self._pending_done = 0
        # Bumped whenever the log is sealed, drained or refilled; keys snapshot caches.
        self._generation = 0
        self._snapshot: tuple[tuple[int, int, int], pa.Table, pa.Table] | None = None
        self._appender = Appender(
            self._series, self._latest, self._pending, self.lock, self._new_series,
            self._place_older, self._explain, on_full,
            None if journal is None else journal.write_bar, to_micros, ClosedError,
            window, self._window_cap, flush_rows,
        )
        #: Validate and add one bar (thread-safe): the compiled hot path, see `_hot.Appender`.
        self.append = self._appender.append
        #: The last ``n`` bars of ``symbol`` in ts order (fewer if it has fewer).
        self.last_n = Reader(self._series, self._last_n).last_n

    # -- commands ---------------------------------------------------------------------------

    def extend(self, batch: object) -> int:
        """Validate a batch and add all of it, or none of it.

        Parameters
        ----------
        batch
            A pyarrow Table or RecordBatch, a polars DataFrame, or an iterable of bars (`Bar`,
            tuples in `Bar` field order, or dicts).

        Returns
        -------
        int
            The number of bars added.

        Raises
        ------
        SchemaMismatchError
            Missing, unknown or mistyped columns.
        InvalidBarError
            The first invalid row; nothing of the batch is stored.
        """
        runs = _Runs(conform(batch))
        table, keep = runs.table, self._window
        if table.num_rows == 0:
            return 0
        # Rows each window will hold: the last `keep` of every run, sorted by (symbol, ts).
        firsts = np.maximum(runs.starts, runs.ends - keep)
        recent = table.take(pa.array(runs.order[_ranges(firsts, runs.ends)]))
        offsets = np.concatenate(([0], np.cumsum(runs.ends - firsts)))
        # Bars are made now, before the lock, only for runs short enough to be held whole; a
        # long run's window stays Arrow until a read needs it (see `_materialize`).
        long = (runs.ends - runs.starts) >= keep
        short_rows = np.repeat(~long, runs.ends - firsts)
        eager = bars_from_table(recent.filter(pa.array(short_rows)))
        lasts = bars_from_table(table.take(pa.array(runs.order[runs.ends[long] - 1])))
        with self.lock:
            if self._closed:
                raise ClosedError(f"the warehouse is closed; the batch of {table.num_rows} bars "
                                  "was not stored")
            for name in runs.names:
                if name not in self._series:
                    check_symbol(name)
            if self.journal is not None:
                self.journal.write_batch(table)
            self.replacements += runs.dropped
            i_eager = i_last = 0
            for k, name in enumerate(runs.names):
                start, end = int(runs.starts[k]), int(runs.ends[k])
                size = end - int(firsts[k])
                # Every new name was checked above, before anything changed.
                series = self._series.get(name) or self._series.setdefault(name, Series())
                stamps = runs.stamps[start:end]
                if int(stamps[0]) > series.last_ts:
                    series.stamps.frombytes(stamps.tobytes())
                    series.last_ts = int(stamps[-1])
                    if long[k]:
                        series.window = []
                        series.lazy = recent.slice(int(offsets[k]), size)
                        self._latest[name] = lasts[i_last]
                    else:
                        self._materialize_locked(series)
                        window = series.window
                        window.extend(eager[i_eager : i_eager + size])
                        if len(window) > self._window_cap:
                            del window[:-keep]
                        self._latest[name] = window[-1]
                else:
                    self._materialize_locked(series)
                    rows = table.take(pa.array(runs.order[start:end]))
                    self._merge_older(series, name, stamps, rows)
                i_last += int(long[k])
                i_eager += 0 if long[k] else size
            self._seal_pending()
            self._chunks.extend(table.to_batches())
            self._pending_rows += table.num_rows
            waiting = self._pending_rows
        if waiting >= self._flush_rows and self._on_full:
            self._on_full()
        return int(table.num_rows)

    def drain(self) -> tuple[pa.Table, pa.Table]:
        """Take everything on the log, for a flush.

        Returns
        -------
        (bars, replaced)
            ``bars``: the log as one table, one row per (symbol, ts), last arrival winning.
            ``replaced``: the (symbol, ts) keys that replaced a bar which may already be in the
            store; the flush deletes those before it inserts.
        """
        with self.lock:
            self._seal_pending()
            self.journal_mark = None if self.journal is None else self.journal.seal()
            chunks, self._chunks = self._chunks, []
            replaced, self._replaced = self._replaced, set()
            rows, self._pending_rows = self._pending_rows, 0
            self._snapshot = None
        try:
            return _log_table(_as_batches(chunks), replaced)
        except BaseException:
            # Validation should make this impossible; if it happens anyway, no bar is lost.
            with self.lock:
                self._chunks[:0] = chunks
                self._pending_rows += rows
                self._replaced.update(replaced)
                self._generation += 1
            raise

    def close(self) -> None:
        """Refuse every later `append` and `extend` (with `ClosedError`), bound ones included."""
        with self.lock:
            self._closed = True
            self._appender.close()

    def clear(self) -> None:
        """Forget every bar: hot state, log and counters (the containers are kept in place).

        The caller holds `lock`, so that a clear and what goes with it (the store's delete,
        the journal's new epoch) are one step to a concurrent writer.
        """
        self._series.clear()
        self._latest.clear()
        self._chunks.clear()
        self._pending.clear()
        self._pending_batches = []
        self._pending_done = 0
        self._pending_rows = 0
        self._replaced.clear()
        self.replacements = 0
        self._generation += 1
        self._snapshot = None

    def requeue(self, bars: pa.Table, replaced: pa.Table) -> None:
        """Put a drained log back in front of the current one (after a failed flush)."""
        keys = zip(replaced.column("symbol").to_pylist(),
                   replaced.column("ts").cast(pa.int64()).to_pylist(), strict=True)
        with self.lock:
            self._chunks[:0] = bars.to_batches()
            self._pending_rows += bars.num_rows
            self._replaced.update(keys)
            self._generation += 1
            self._snapshot = None

    def restore(self, stamps: pa.Table, recent: pa.Table) -> None:
        """Rebuild the hot state of bars that are already stored (when a file is reopened).

        ``stamps`` holds (symbol, ts) of every stored bar sorted by symbol and ts; ``recent``
        the last bars of each symbol, sorted the same way.
        """
        if recent.num_rows == 0:
            return
        symbols = stamps.column("symbol").combine_chunks()
        ts = stamps.column("ts").cast(pa.int64()).to_numpy()
        recent_ends = _run_ends(recent.column("symbol").combine_chunks())
        recent_starts = np.concatenate(([0], recent_ends[:-1]))
        lasts = bars_from_table(recent.take(pa.array(recent_ends - 1)))
        windows = {
            bar.symbol: (bar, recent.slice(int(first), int(end - first)))
            for bar, first, end in zip(lasts, recent_starts, recent_ends, strict=True)
        }
        with self.lock:
            start = 0
            for end in _run_ends(symbols).tolist():
                name = symbols[start].as_py()
                series = self._series.setdefault(name, Series())
                series.stamps = array.array("q", ts[start:end].tobytes())
                series.last_ts = int(ts[end - 1])
                self._latest[name], series.lazy = windows[name]
                series.window = []
                start = end

    # -- queries ----------------------------------------------------------------------------

    def _last_n(self, symbol: str, n: int) -> list[Bar]:
        """`last_n` past the window (or with ``n <= 0``): the compiled path's fallback."""
        series = self._series.get(symbol)
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
        series = self._series.get(symbol)
        if series is None:
            return []
        if series.lazy is not None:
            self._materialize(series)
        window = series.window[:]
        if window and (window[0].ts <= ts or len(window) == len(series.stamps)):
            return window[bisect_left(window, ts, key=_ts_of):]
        return self._deep(symbol, None, ts)

    def count(self, symbol: str) -> int:
        """The number of bars of ``symbol`` this session (a replaced bar counts once)."""
        series = self._series.get(symbol)
        return 0 if series is None else len(series.stamps)

    def latest_many(self, symbols: Iterable[str]) -> dict[str, Bar | None]:
        """The latest bar of each symbol (None for a symbol with no bars)."""
        names = symbols if isinstance(symbols, list | tuple) else list(symbols)
        return dict(zip(names, map(self._latest.get, names), strict=True))  # C loops: ~40% faster

    def has_bars(self, symbol: str) -> bool:
        """Whether ``symbol`` has any bar this session."""
        return symbol in self._latest

    def symbols(self) -> list[str]:
        """The symbols with bars, sorted."""
        return sorted(self._latest)

    def total_count(self) -> int:
        """The number of bars held, all symbols."""
        return sum(len(s.stamps) for s in list(self._series.values()))

    def unflushed_count(self) -> int:
        """The number of bars on the log, waiting for a flush."""
        return self._pending_rows + len(self._pending)

    def snapshot(self) -> tuple[pa.Table, pa.Table]:
        """The log as it is now, without draining it: (bars, replaced), as `drain` returns.

        Conversions are cached, so repeated queries pay only for bars that arrived since the
        last one; the open list of single appends is left in place (its length is the flush
        trigger).
        """
        with self.lock:
            key = (self._generation, len(self._pending), self._pending_rows)
            cached = self._snapshot
            if cached is not None and cached[0] == key:
                return cached[1], cached[2]
            chunks = list(self._chunks)
            done = self._pending_done
            batches = list(self._pending_batches)
            fresh = self._pending[done:]
            replaced = set(self._replaced)
        converted = _as_batches(chunks)
        pending = rows_to_batch(fresh) if fresh else None
        with self.lock:
            if self._generation == key[0]:
                # Nothing was drained or sealed meanwhile: keep the conversions.
                self._chunks[: len(converted)] = converted
                if pending is not None:
                    self._pending_batches.append(pending)
                    self._pending_done = done + len(fresh)
        bars, keys = _log_table([*converted, *batches, *([pending] if pending else [])], replaced)
        with self.lock:
            if (self._generation, len(self._pending), self._pending_rows) == key:
                self._snapshot = (key, bars, keys)
        return bars, keys

    # -- internals --------------------------------------------------------------------------

    def _new_series(self, symbol: str, ts: int | None = None) -> Series:
        check_symbol(symbol, ts)
        series = self._series[symbol] = Series()
        return series

    def _seal_pending(self) -> None:
        """Move the single appends onto the chunk list (lock held)."""
        pending = self._pending
        self._chunks.extend(self._pending_batches)
        if len(pending) > self._pending_done:
            self._chunks.append(pending[self._pending_done :])
        self._pending_rows += len(pending)
        # The list object itself stays: the append closure holds it.
        pending.clear()
        self._pending_batches = []
        self._pending_done = 0
        self._generation += 1

    def _materialize(self, series: Series) -> None:
        with self.lock:
            self._materialize_locked(series)

    def _materialize_locked(self, series: Series) -> None:
        """Turn a series' Arrow rows into window bars (lock held)."""
        lazy = series.lazy
        if lazy is None:
            return
        window = bars_from_table(lazy) + series.window
        # The window first, then the flag: a lock-free reader that sees no flag sees it whole.
        series.window = window[-self._window :] if len(window) > self._window_cap else window
        series.lazy = None

    def _place_older(self, series: Series, bar: Bar) -> None:
        """Place a bar that is not newer than its symbol's latest: a correction or a late bar."""
        self._materialize_locked(series)
        ts = bar.ts
        stamps = series.stamps
        window = series.window  # never empty here: the symbol has bars
        at = bisect_left(stamps, ts)
        if at < len(stamps) and stamps[at] == ts:
            self.replacements += 1
            self._replaced.add((bar.symbol, ts))
            if window[0].ts <= ts:
                window[bisect_left(window, ts, key=_ts_of)] = bar
            if ts == series.last_ts:
                self._latest[bar.symbol] = bar
            return
        held_all = len(window) == len(stamps)
        stamps.insert(at, ts)
        if held_all or window[0].ts < ts:
            window.insert(bisect_left(window, ts, key=_ts_of), bar)
            if len(window) > self._window_cap:
                del window[: -self._window]

    def _merge_older(self, series: Series, symbol: str, run: np.ndarray, rows: pa.Table) -> None:
        """Merge a batch's run of one symbol that reaches back before its latest bar."""
        old = np.frombuffer(series.stamps, dtype=np.int64)
        known = np.isin(run, old)
        self.replacements += int(known.sum())
        self._replaced.update((symbol, t) for t in run[known].tolist())
        held_all = len(series.window) == len(old)
        floor = _NO_TS if held_all else series.window[0].ts
        series.stamps = array.array("q", np.union1d(old, run).tobytes())
        by_ts = {bar.ts: bar for bar in series.window}
        fresh = run >= floor
        if fresh.any():
            for bar in bars_from_table(rows.filter(pa.array(fresh))):
                by_ts[bar.ts] = bar
        window = [by_ts[t] for t in sorted(by_ts)]
        series.window = window[-self._window :] if len(window) > self._window_cap else window
        series.last_ts = series.stamps[-1]
        self._latest[symbol] = series.window[-1]

    def _deep(self, symbol: str, n: int | None, ts: int | None) -> list[Bar]:
        if self.deep_reader is None:
            raise WarehouseError(
                f"{symbol}: the read reaches past the in-memory window and no store is attached"
            )
        return self.deep_reader(symbol, n, ts)

    @staticmethod
    def _explain(*fields: object) -> InvalidBarError:
        problem = diagnose(*fields)
        if problem is None:  # pragma: no cover - the fast and slow checks must agree
            problem = InvalidBarError(fields[0], fields[1], "bar", fields, "is invalid")
        return problem


def _run_ends(sorted_symbols: pa.Array) -> np.ndarray:
    """End offsets of the runs of equal values in a sorted string array."""
    n = len(sorted_symbols)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    change = pc.not_equal(sorted_symbols[1:], sorted_symbols[:-1]).to_numpy(zero_copy_only=False)
    return np.append(np.nonzero(change)[0] + 1, n).astype(np.int64)


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, e)`` for each pair, without a Python loop."""
    lengths = ends - starts
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    ranges: np.ndarray = np.arange(int(lengths.sum()), dtype=np.int64) + offsets
    return ranges


class _Runs:
    """A batch de-duplicated (last arrival wins) and grouped by symbol, sorted by ts inside.

    ``table`` keeps arrival order; ``order`` lists its rows sorted by (symbol, ts); run ``k``
    is ``order[starts[k]:ends[k]]``, of symbol ``names[k]``, with timestamps
    ``stamps[starts[k]:ends[k]]``.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        n = table.num_rows
        encoded = table.column("symbol").combine_chunks().dictionary_encode()
        codes = encoded.indices.to_numpy()
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        # Sorting int codes beats sorting strings; lexsort is stable, so of equal keys the
        # last arrival sorts last.
        order = np.lexsort((ts, codes))
        codes, ts = codes[order], ts[order]
        same = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
        self.dropped = int(same.sum())
        if self.dropped:
            kept = np.append(~same, True)
            mask = np.ones(n, dtype=bool)
            mask[order[:-1][same]] = False
            self.table = table.filter(pa.array(mask))
            order = (np.cumsum(mask) - 1)[order[kept]]
            codes, ts = codes[kept], ts[kept]
        change = np.nonzero(codes[1:] != codes[:-1])[0] + 1
        self.order = order
        self.stamps = ts
        self.starts = np.concatenate(([0], change)).astype(np.int64)
        self.ends = np.append(change, len(codes)).astype(np.int64)
        self.names: list[str] = (
            encoded.dictionary.take(pa.array(codes[self.starts])).to_pylist() if n else []
        )


def _as_batches(chunks: list[pa.RecordBatch | list[Bar]]) -> list[pa.RecordBatch]:
    """The log's chunks as record batches (lists of single appends converted)."""
    return [rows_to_batch(c) if isinstance(c, list) else c for c in chunks]


def _log_table(
    batches: list[pa.RecordBatch], replaced: set[tuple[str, int]]
) -> tuple[pa.Table, pa.Table]:
    """The log's batches as one table, and the replaced keys as another.

    If any key was replaced, only the last arrival of each key is kept.
    """
    bars = pa.Table.from_batches(batches, schema=BAR_SCHEMA) if batches else empty_table()
    if replaced:
        bars = _Runs(bars).table
    keys = pa.table(
        {
            "symbol": pa.array([k[0] for k in replaced], pa.string()),
            "ts": pa.array([k[1] for k in replaced], pa.int64()).cast(BAR_SCHEMA.field("ts").type),
        }
    )
    return bars, keys
