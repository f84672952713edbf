"""`Warehouse`: the facade that owns the buffer, the store, the flusher thread and the lifecycle."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa

from warehouse.archive import (
    Compression,
    ExportResult,
    Progress,
    export_parquet,
    publish_history,
)
from warehouse.buffer import AppendBuffer
from warehouse.errors import ClosedError, StoreError, WarehouseError
from warehouse.journal import Journal, Recovery, has_segments
from warehouse.metrics import SessionMetrics
from warehouse.metrics import frame as metrics_frame
from warehouse.queries import load_queries
from warehouse.schema import EPOCH, MAX_TS, MIN_TS, Bar, bars_from_table, to_micros
from warehouse.store import BarStore, Params


class Warehouse:
    """A trading session's bars: hot reads from memory, SQL and Polars over DuckDB, Parquet out.

    Parameters
    ----------
    path
        The DuckDB file (created if missing; reopening it restores the session), or
        ``":memory:"``.
    flush_rows
        Flush in the background once this many bars wait.
    flush_interval
        Flush in the background at least this often, in seconds; ``None`` flushes only by size
        and on `flush`/`close`.
    window
        Recent bars kept in memory per symbol; ``last_n(s, n)`` with ``n <= window`` and
        ``since`` within the window never touch DuckDB.
    checkpoint_rows
        Checkpoint the DuckDB file (from the flusher thread) after this many flushed bars.
    read_only
        Open an existing file for reading only (SQL, Polars, hot reads of stored bars).
    journal
        Also record every bar in ``<path>.journal/`` before `append`/`extend` return, so a
        killed process loses no acknowledged bar; on open, bars journaled but not flushed are
        replayed.
    archive
        The Parquet archive: `export_parquet` writes there by default, and SQL sees its days
        as the view ``history`` (with a ``date`` column), next to today's ``bars``.
    sql_dir
        Read named queries from this folder instead of the package's ``sql/``.
    metrics
        Keep each symbol's session metrics as bars arrive (`metrics`, `metrics_frame`); False
        spares the append their small cost, and those reads then raise `WarehouseError`.

    Attributes
    ----------
    append(symbol, ts, open, high, low, close, volume, vwap=None, trade_count=None)
        Add one bar (`AppendBuffer.append`).
    latest(symbol) -> Bar | None
        The bar with the greatest ts of a symbol: one dict lookup.
    last_n(symbol, n) -> list[Bar]
        The last n bars in ts order.
    since(symbol, ts) -> list[Bar]
        The bars at or after ts, in ts order.
    count(symbol) -> int
        The number of bars of a symbol.
    latest_many(symbols) -> dict[str, Bar | None]
        The latest bar of each symbol.
    metrics(symbol) -> SessionMetrics | None
        The symbol's session open, high, low, close, volume, VWAP, bar count and first and
        last ts, kept as bars arrive (None for a symbol without bars).

    Examples
    --------
    >>> with Warehouse(":memory:") as wh:
    ...     wh.append("AAPL", "2025-11-21T14:30:00Z", 228.1, 228.6, 227.9, 228.4, 51_200)
    ...     wh.latest("AAPL").close, wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py()
    (228.4, 1)
    """

    append: Callable[..., None]
    latest: Callable[[str], Bar | None]
    last_n: Callable[[str, int], list[Bar]]
    since: Callable[[str, Any], list[Bar]]
    count: Callable[[str], int]
    latest_many: Callable[[Iterable[str]], dict[str, Bar | None]]
    metrics: Callable[[str], SessionMetrics | None]

    def __init__(
        self,
        path: str | Path = "warehouse.duckdb",
        *,
        flush_rows: int = 100_000,
        flush_interval: float | None = 1.0,
        window: int = 64,
        checkpoint_rows: int = 2_000_000,
        read_only: bool = False,
        journal: bool = False,
        archive: str | Path | None = None,
        sql_dir: str | Path | None = None,
        metrics: bool = True,
    ) -> None:
        if flush_interval is not None and flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive or None, got {flush_interval}")
        if journal and (read_only or str(path) == ":memory:"):
            raise ValueError("journal=True needs a warehouse file opened for writing")
        queries = load_queries(sql_dir)
        writer = None if read_only or str(path) == ":memory:" else _Writers.claim(path)
        try:
            if not journal and not read_only and has_segments(f"{path}.journal"):
                # Taking bars now would leave the journaled ones to be replayed later, over them.
                raise StoreError(
                    f"{path}.journal holds bars that a crash kept from the file; open it once "
                    "with journal=True to replay them"
                )
            self._store = BarStore(path, read_only=read_only, queries=queries)
        except BaseException:
            _Writers.release(writer)
            raise
        _Writers.bind(writer, self._store)
        self._writer = writer
        self.queries = self._store.queries
        self.read_only = read_only
        self._wake = threading.Event()
        self._since_checkpoint = 0
        self.flush_seconds: deque[float] = deque(maxlen=10_000)
        self._journal: Journal | None = None
        #: What reopening found in the journal (None without one): see `journal.Recovery`.
        self.recovery: Recovery | None = None
        self.archive = None if archive is None else Path(archive)
        try:
            if self.archive is not None:
                publish_history(self._store, self.archive)
            if journal:
                self._journal = Journal(f"{path}.journal", self._store.epoch())
            self._buffer = buffer = AppendBuffer(
                window=window, flush_rows=flush_rows, on_full=self._wake.set,
                deep_reader=self._deep_read, journal=self._journal, metrics=metrics,
                fresh_metrics=self._fresh_metrics,
            )
            with self._store.lock:
                buffer.restore(self._store.stored_keys(), self._store.recent_bars(window),
                               self._store.symbol_totals(None) if metrics else None)
            if self._journal is not None:
                self._replay_journal(self._journal)
        except BaseException:
            # A half-opened warehouse must not keep the file (and DuckDB's lock on it).
            if self._journal is not None:
                self._journal.close()
            self._store.close()
            _Writers.release(writer)
            raise
        # The hot path is the buffer's own bound methods: no extra call layer.
        self.append = self._refuse_writes if read_only else buffer.append
        self.latest = buffer.latest
        self.last_n = buffer.last_n
        self.since = buffer.since
        self.count = buffer.count
        self.latest_many = buffer.latest_many
        self.metrics = buffer.metrics
        self._flush_interval = flush_interval
        self._checkpoint_rows = checkpoint_rows
        self.flush_error: WarehouseError | None = None
        self._closed = False
        self._closing = threading.Lock()
        self._stopping = False
        self._flusher: threading.Thread | None = None
        if not read_only:
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"warehouse-flusher:{path}", daemon=True
            )
            self._flusher.start()

    # -- commands ---------------------------------------------------------------------------

    def extend(self, batch: object) -> int:
        """Add a batch of bars, all or nothing (see `AppendBuffer.extend`); returns its size."""
        if self.read_only:
            self._refuse_writes()
        return self._buffer.extend(batch)

    def flush(self) -> int:
        """Write every waiting bar to DuckDB in one transaction; returns how many.

        Raises
        ------
        StoreError
            DuckDB refused; the bars stay on the log, to be retried.
        ClosedError
            The warehouse is closed.
        """
        self._check_open()
        return self._flush()

    def clear(self) -> None:
        """Delete every bar, stored or not, to start a new session in the same file.

        Export the session first: this cannot be undone. Memory and file space are reclaimed.
        Atomic: killed anywhere inside, the file reopens with the whole session or none of it.
        An `append` racing it lands in the new session (or, once `close` began, is refused).
        """
        self._check_open()
        with self._store.lock:
            with self._buffer.lock:
                self._check_open()
                epoch = self._store.epoch() + 1
                # One DuckDB transaction deletes the bars and bumps the epoch; journal segments
                # of the old epoch are then stale wherever a kill strikes.
                self._store.clear(epoch)
                self._buffer.clear()
                if self._journal is not None:
                    self._journal.release(self._journal.switch_epoch(epoch))
            self._store.checkpoint()
            self._since_checkpoint = 0

    def checkpoint(self) -> None:
        """Flush, then fold DuckDB's write-ahead log into the file."""
        self._check_open()
        self._checkpoint()

    def export_parquet(
        self,
        directory: str | Path | None = None,
        *,
        compression: Compression = "zstd",
        progress: Progress | None = None,
    ) -> ExportResult:
        """Flush, then write the session to Parquet (see `warehouse.archive.export_parquet`).

        ``directory`` defaults to the warehouse's ``archive``; exporting there refreshes the
        ``history`` view.
        """
        target = directory if directory is not None else self.archive
        if target is None:
            raise ValueError("export_parquet needs a directory (or open with archive=...)")
        self._check_open()
        with self._store.lock:
            self._flush()
            result = export_parquet(self._store, target, compression=compression,
                                    progress=progress)
            if self.archive is not None and Path(target).resolve() == self.archive.resolve():
                publish_history(self._store, self.archive)
            return result

    def close(self) -> None:
        """Refuse new bars, stop the flusher, flush, checkpoint and close the file. Idempotent.

        From the moment `close` begins, every `append` or `extend` (bound methods included)
        either was accepted before and is stored by this close, or raises `ClosedError`.

        Raises
        ------
        StoreError
            The last flush failed: the warehouse stays open (refusing bars) with the bars on
            its log (and journal), and `close` may be called again to retry.
        """
        with self._closing:
            if self._closed:
                return
            self._buffer.close()
            self.append = self._refuse_writes
            self._stopping = True
            self._wake.set()
            if self._flusher is not None:
                self._flusher.join()
            if not self.read_only:
                self._checkpoint()  # raises with everything still open: close can be retried
            self._closed = True
            if self._journal is not None:
                self._journal.close()
                if not self.read_only:  # every bar is in the file: no segment is needed
                    self._journal.release(self._journal.sequence)
            self._store.close()
            _Writers.release(self._writer)

    # -- queries ----------------------------------------------------------------------------

    def sql(self, query: str, params: Params = None) -> pa.Table:
        """Run SQL over ``bars`` (every bar, flushed or not) and return a pyarrow Table.

        Parameters are bound (``$name`` with a mapping, ``?`` with a sequence), never formatted
        into the text. Meant for reading: a statement that writes to ``session_bars`` behind the
        warehouse's back leaves the hot reads (and counts) out of step with the table.
        """
        with self._store.lock:
            return self._store.arrow(query, params, self._buffer.snapshot())

    def sql_polars(self, query: str, params: Params = None) -> pl.DataFrame:
        """`sql`, returning a polars DataFrame."""
        with self._store.lock:
            return self._store.polars(query, params, self._buffer.snapshot())

    def query(self, name: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a named query from ``sql/`` (e.g. ``"session_ohlcv"``) with bound parameters."""
        return self.sql(self.queries[name], params)

    def frame(
        self,
        symbols: Iterable[str] | None = None,
        start: datetime | int | str | None = None,
        end: datetime | int | str | None = None,
    ) -> pl.DataFrame:
        """Bars as a polars DataFrame in (symbol, ts) order, optionally filtered.

        ``start`` is inclusive, ``end`` exclusive; both take what `append` takes for ``ts``.
        """
        first = _as_datetime(MIN_TS if start is None else to_micros(start))
        last = _as_datetime(MAX_TS if end is None else to_micros(end))
        wanted = None if symbols is None else (
            [symbols] if isinstance(symbols, str) else list(symbols))
        with self._store.lock:
            return self._store.bars_between(wanted, first, last, self._buffer.snapshot())

    def lazy_frame(
        self,
        symbols: Iterable[str] | None = None,
        start: datetime | int | str | None = None,
        end: datetime | int | str | None = None,
    ) -> pl.LazyFrame:
        """`frame` as a LazyFrame, over a snapshot taken now (later appends are not in it)."""
        return self.frame(symbols, start, end).lazy()

    def metrics_frame(self) -> pl.DataFrame:
        """Every symbol's session metrics, one row per symbol in symbol order.

        The columns and their order are those of the named query ``session_ohlcv``: symbol,
        first_ts, last_ts, bar_count, open, high, low, close, volume, vwap. Taken from memory
        without a lock, like `metrics`: each row is one symbol's metrics at one instant (a batch
        being added may show in some rows and not yet in others).

        Raises
        ------
        WarehouseError
            The warehouse was opened with ``metrics=False``.
        """
        names, counts, first, last, values, stale = self._buffer.metrics_columns()
        if stale.any():
            with self._store.lock, self._buffer.lock:
                self._buffer.refresh_metrics_locked(
                    [name for name, old in zip(names, stale.tolist(), strict=True) if old],
                    self._store.symbol_totals,
                )
                names, counts, first, last, values, stale = self._buffer.metrics_columns()
        return metrics_frame(names, counts, first, last, values)

    def symbols(self) -> list[str]:
        """The symbols that have bars, sorted."""
        return self._buffer.symbols()

    def has_bars(self, symbol: str) -> bool:
        """Whether ``symbol`` has any bar."""
        return self._buffer.has_bars(symbol)

    def stats(self) -> dict[str, Any]:
        """Counters: bars, symbols, unflushed bars, replacements, flushes and their timing."""
        seconds = sorted(self.flush_seconds)
        return {
            "bars": self._buffer.total_count(),
            "symbols": len(self._buffer.symbols()),
            "unflushed": self._buffer.unflushed_count(),
            "replacements": self._buffer.replacements,
            "flushes": len(seconds),
            "flush_p99_ms": seconds[int(0.99 * (len(seconds) - 1))] * 1e3 if seconds else None,
            "flush_error": None if self.flush_error is None else str(self.flush_error),
        }

    @property
    def replacements(self) -> int:
        """How many bars replaced an earlier bar of the same (symbol, ts)."""
        return self._buffer.replacements

    # -- internals --------------------------------------------------------------------------

    def _flush(self) -> int:
        with self._store.lock:
            started = time.perf_counter()
            bars, replaced = self._buffer.drain()
            mark = self._buffer.journal_mark
            if bars.num_rows or replaced.num_rows:
                try:
                    self._store.write(bars, replaced)
                except BaseException:
                    # Whatever went wrong, the drained bars go back: nothing is lost.
                    self._buffer.requeue(bars, replaced)
                    raise
                self.flush_seconds.append(time.perf_counter() - started)
                self._since_checkpoint += bars.num_rows
            if self._journal is not None and mark is not None:
                self._journal.release(mark)  # what it held is committed now
                with contextlib.suppress(StoreError):
                    # The next segment, made now so that no append waits for it; on a full
                    # disk the append that needs it reports the error.
                    self._journal.prepare()
        return int(bars.num_rows)

    def _checkpoint(self) -> None:
        with self._store.lock:
            self._flush()
            self._store.checkpoint()
            self._since_checkpoint = 0

    def _check_open(self) -> None:
        if self._closed or self._stopping:
            raise ClosedError(f"the warehouse {self._store.path} is closed")

    def _flush_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                if self._journal is not None:
                    self._journal.sync()  # group commit against power loss
                self._flush()
                if self._since_checkpoint >= self._checkpoint_rows:
                    self._checkpoint()
                self.flush_error = None
            except Exception as exc:  # any error: the thread must live to retry
                # Bars stay on the log; the next interval retries. Readers see them meanwhile.
                self.flush_error = (
                    exc if isinstance(exc, WarehouseError)
                    else StoreError(f"background flush failed: {exc!r}")
                )
                time.sleep(self._flush_interval or 1.0)

    def _replay_journal(self, journal: Journal) -> None:
        """Re-ingest journaled bars that a crash kept from DuckDB, then flush them."""
        if not journal.leftover:
            return
        table, self.recovery = journal.recover()
        self._buffer.extend(self._store.bars_not_stored(table))
        self._flush()  # seals the open segment; once committed, every older one is released

    def _deep_read(self, symbol: str, n: int | None, since: int | None) -> list[Bar]:
        """A read past a symbol's window: down to the store, over `bars` (the log included)."""
        with self._store.lock:
            log = self._buffer.snapshot()
            if n is not None:
                table = self._store.last_bars(symbol, n, log)
            else:
                start = _as_datetime(MIN_TS if since is None else since)
                table = self._store.symbol_bars_between(symbol, start, _as_datetime(MAX_TS), log)
        return bars_from_table(table)

    def _fresh_metrics(self, symbol: str) -> SessionMetrics | None:
        """A symbol's metrics after recomputing its stale totals from all its bars (rare path).

        The store's lock first, then the buffer's (the order a flush takes them): while both are
        held no bar arrives and none moves between the log and the table, so one SQL aggregate
        over `bars` is exact; appends wait for it (one query over the symbol's bars).
        """
        with self._store.lock, self._buffer.lock:
            self._buffer.refresh_metrics_locked([symbol], self._store.symbol_totals)
            return self._buffer.hot.metrics_locked(symbol)

    def _refuse_writes(self, *args: object, **kwargs: object) -> None:
        if not self.read_only:
            raise ClosedError(f"the warehouse {self._store.path} is closed; it takes no bars")
        raise WarehouseError(f"the warehouse {self._store.path} is read-only; it takes no bars")

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Warehouse({self._store.path!r}, bars={self._buffer.total_count()})"


def _as_datetime(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


class _Writers:
    """The warehouse files open for writing in this process, so that a second handle is refused.

    DuckDB's file lock keeps other processes out, but not a second connection in this one: two
    handles would store the same keys twice and, with the journal, release each other's
    segments. Keyed by the file's real path; a handle whose store is closed no longer counts.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    # None while the claiming handle is still opening its store.
    _open: ClassVar[dict[str, weakref.ref[BarStore] | None]] = {}

    @classmethod
    def claim(cls, path: str | Path) -> str:
        key = os.path.realpath(path)
        with cls._lock:
            if key in cls._open:
                ref = cls._open[key]
                holder = None if ref is None else ref()
                if ref is None or (holder is not None and not holder.closed):
                    raise StoreError(
                        f"{path} is already open for writing in this process; use that "
                        "Warehouse (or close it first): two writers would store bars twice"
                    )
            cls._open[key] = None
        return key

    @classmethod
    def bind(cls, key: str | None, store: BarStore) -> None:
        if key is not None:
            with cls._lock:
                cls._open[key] = weakref.ref(store)

    @classmethod
    def release(cls, key: str | None) -> None:
        if key is not None:
            with cls._lock:
                cls._open.pop(key, None)
