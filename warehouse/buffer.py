"""`AppendBuffer`: where every bar lands first, the hot state and the append log in one step.

Each accepted bar changes two things at once, under one short lock: its symbol's hot state
(`hot.HotState`: timestamps, window, latest bar, session metrics) and the append log
(`log.AppendLog`), which the flusher drains into DuckDB as one Arrow table. The single-bar
`append` is compiled (`_hot.Appender`); batches (`extend`), drains, clears and reopening are
Python, built from the hot state's and the log's commands. Hot reads take no lock (see `hot`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse._hot import Appender, Reader
from warehouse._lock import Lock
from warehouse._runs import Runs
from warehouse.errors import ClosedError, InvalidBarError, WarehouseError
from warehouse.hot import DeepReader, HotState
from warehouse.journal import Journal
from warehouse.log import AppendLog, as_batches, to_tables
from warehouse.metrics import SessionMetrics
from warehouse.schema import (
    Bar,
    conform,
    diagnose,
    partition,
    rejects_table,
    to_micros,
)

__all__ = [
    "AppendBuffer",
    "DeepReader",
    "ExtendResult",
    "FreshMetrics",
    "OnInvalid",
    "Outside",
    "TotalsReader",
]

#: Explains why a valid bar (symbol, ts micros) is refused for its time (see `set_window`).
Outside = Callable[[str, int], InvalidBarError]
#: What `extend` does with invalid rows: refuse the batch, drop them, or drop and return them.
OnInvalid = Literal["raise", "skip", "report"]


@dataclass(frozen=True)
class ExtendResult:
    """What ``extend(batch, on_invalid="report")`` did.

    Attributes
    ----------
    added
        The rows of the batch taken (as ``extend`` counts them otherwise).
    rejected
        Every row refused, one row each (`warehouse.schema.REJECTS_SCHEMA`): its index in the
        batch (``row``), the ``field`` at fault, its ``value`` as text, the ``reason``, then
        the row's bar columns as far as they could be read.
    """

    added: int
    rejected: pa.Table

#: Recomputes a symbol's stale session metrics and returns them (the warehouse takes the
#: store's lock, then the buffer's, and calls `AppendBuffer.refresh_metrics_locked`).
FreshMetrics = Callable[[str], SessionMetrics | None]
#: (symbols, the log's snapshot) -> their metrics' totals over every bar
#: (``sql/internal/symbol_totals.sql``).
TotalsReader = Callable[[list[str], tuple[pa.Table, pa.Table]], pa.Table]


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
    metrics
        Keep each symbol's session metrics (`metrics(symbol)`); False saves their cost.
    fresh_metrics
        Recomputes metrics that a correction left stale (the warehouse wires DuckDB in here);
        without it, reading such metrics raises `WarehouseError`.
    derived_steps
        The steps (microseconds) of the derived intervals each symbol's forming bucket is kept
        for (`warehouse.derive.derived_steps`); none by default.

    Attributes
    ----------
    append(symbol, ts, open, high, low, close, volume, vwap=None, trade_count=None)
        Validate and add one bar (thread-safe): the compiled hot path, `_hot.Appender`.
    latest(symbol) -> Bar | None
        The bound ``get`` of the latest-bar dict, so a lookup costs one C call.
    last_n(symbol, n) -> list[Bar]
        The last n bars in ts order: a window slice in C, `_hot.Reader`.
    metrics(symbol) -> SessionMetrics | None
        The symbol's session metrics, copied from its totals in C, `_hot.Reader`.

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
    metrics: Callable[[str], SessionMetrics | None]
    metrics_columns: Callable[[], tuple[Any, ...]]
    since: Callable[[str, Any], list[Bar]]
    count: Callable[[str], int]
    latest_many: Callable[[Iterable[str]], dict[str, Bar | None]]
    has_bars: Callable[[str], bool]
    symbols: Callable[[], list[str]]
    total_count: Callable[[], int]
    unflushed_count: Callable[[], int]
    snapshot: Callable[[], tuple[pa.Table, pa.Table]]
    requeue: Callable[[pa.Table, pa.Table], None]

    def __init__(
        self,
        *,
        window: int = 64,
        flush_rows: int = 100_000,
        on_full: Callable[[], None] | None = None,
        deep_reader: DeepReader | None = None,
        journal: Journal | None = None,
        metrics: bool = True,
        fresh_metrics: FreshMetrics | None = None,
        derived_steps: tuple[int, ...] = (),
    ) -> None:
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be at least 1, got {flush_rows}")
        #: Held by every writer; `Warehouse.clear` holds it across the whole clear.
        self.lock = Lock()
        self.hot = hot = HotState(window, self.lock, deep_reader, metrics=metrics,
                                  derived_steps=derived_steps)
        self.log = log = AppendLog(self.lock, hot.names)
        self._flush_rows = flush_rows
        self._on_full = on_full
        self.journal = journal  # fixed at construction: the compiled append holds it
        #: The journal segment sealed by the last `drain` (None without a journal).
        self.journal_mark: int | None = None
        self._closed = False
        #: Explains a valid bar outside the window (`set_window`); None: any time is taken.
        self._outside: Outside | None = None
        self._appender = Appender(
            hot.series, hot.latest_bars, log.columns, log.replaced, self.lock, hot.new_series,
            hot.place_older, self._explain, on_full,
            None if journal is None else journal.write_bar,
            None if journal is None else journal.writer, to_micros, ClosedError,
            hot.keep, hot.cap, flush_rows, metrics, derived_steps,
        )
        self.append = self._appender.append
        self.latest = hot.latest
        reader = Reader(hot.series, hot.latest_bars, hot.last_n, metrics,
                        fresh_metrics or _no_store, _metrics_off)
        self.last_n = reader.last_n
        self.latest_many = reader.latest_many
        self.metrics = reader.metrics
        self.metrics_columns = reader.metrics_columns
        self.since = hot.since
        self.count = hot.count
        self.has_bars = hot.has_bars
        self.symbols = hot.symbols
        self.total_count = hot.total_count
        self.unflushed_count = log.unflushed_count
        self.snapshot = log.snapshot
        self.requeue = log.requeue

    # -- commands ---------------------------------------------------------------------------

    @overload
    def extend(self, batch: object, *, on_invalid: Literal["raise", "skip"] = ...) -> int: ...
    @overload
    def extend(self, batch: object, *, on_invalid: Literal["report"]) -> ExtendResult: ...
    @overload
    def extend(self, batch: object, *, on_invalid: OnInvalid) -> int | ExtendResult: ...

    def extend(self, batch: object, *, on_invalid: OnInvalid = "raise") -> int | ExtendResult:
        """Validate a batch and add all of it, or none of it (or, leniently, its valid rows).

        Parameters
        ----------
        batch
            A pyarrow Table or RecordBatch, a polars or pandas DataFrame, or an iterable of
            bars (`Bar`, tuples in `Bar` field order, or dicts).
        on_invalid
            ``"raise"`` (the default): one invalid row refuses the whole batch. ``"skip"``:
            the valid rows are added and the invalid ones dropped. ``"report"``: as skip, and
            the dropped rows are returned with the field and reason of each. A row outside the
            open session's window counts as invalid. Column problems (a missing or mistyped
            column) refuse the batch whatever the choice.

        Returns
        -------
        int or ExtendResult
            The number of bars added; with ``"report"``, an `ExtendResult` (added, rejected).

        Raises
        ------
        SchemaMismatchError
            Missing, unknown or mistyped columns.
        InvalidBarError
            With ``"raise"``: the first invalid row; nothing of the batch is stored.
        ClosedError
            The warehouse is closed (or closing); nothing of the batch is stored.
        """
        return self._add(batch, on_invalid, None)

    def fill(
        self, batch: object, write: Callable[[pa.Table], None], *,
        on_invalid: OnInvalid = "raise",
    ) -> int | ExtendResult:
        """Add bars fetched to fill gaps: only those whose minute no bar of the session holds.

        Validated as `extend` validates (``on_invalid`` alike). Of the valid rows, a row whose
        symbol already has a bar in its minute, and any later row in the same minute, is left
        out (counted neither as added nor as rejected): gap filling never replaces a bar. The
        rest are handed to ``write`` (the store, which marks them filled) and then added to
        the hot state, all under the lock, so that no bar arrives meanwhile; they skip the
        log and the journal, being stored once ``write`` returns. If ``write`` raises, nothing
        changed.

        Returns
        -------
        int or ExtendResult
            How many bars were added (with ``"report"``, and the rejected rows).
        """
        return self._add(batch, on_invalid, write)

    def _add(
        self, batch: object, on_invalid: OnInvalid, write: Callable[[pa.Table], None] | None
    ) -> int | ExtendResult:
        """`extend`, or with ``write`` given, `fill`."""
        if on_invalid not in ("raise", "skip", "report"):
            raise ValueError(f"on_invalid must be 'raise', 'skip' or 'report', got {on_invalid!r}")
        if on_invalid == "raise":
            table, invalid = conform(batch), None
        else:
            table, invalid = partition(batch)
            kept = np.ones(table.num_rows + invalid.num_rows, dtype=bool)
            kept[invalid.column("row").to_numpy()] = False
            positions = np.flatnonzero(kept)  # each valid row's index in the batch
        while True:
            window = self._window()
            taken, rejected = table, invalid
            if invalid is not None and window[2] is not None:
                taken, outside = self._split_window(table, positions, window)
                if outside.num_rows:
                    rejected = pa.concat_tables([invalid, outside]).sort_by("row")
            added = self._add_valid(taken, window, write)
            if added is not None:
                break
            # The window changed while the batch was planned (a session started or ended):
            # split it again against the new one.
        if rejected is None or on_invalid == "skip":
            return added
        return ExtendResult(added, rejected)

    def _add_valid(
        self, table: pa.Table, window: tuple[int, int, Outside | None],
        write: Callable[[pa.Table], None] | None,
    ) -> int | None:
        """Add a conformed batch; None if the window is no longer ``window`` (nothing added)."""
        if table.num_rows == 0:
            return 0
        runs = Runs(table)
        table = runs.table  # of a key given twice, the last arrival
        plan = None if write is not None else self.hot.plan(runs)
        with self.lock:
            if self._closed:
                raise ClosedError(f"the warehouse is closed; the batch of {table.num_rows} bars "
                                  "was not stored")
            if self._window() != window:
                return None
            self.hot.check_new_symbols(runs.names)
            self._check_window(table)
            if write is not None:
                return self._fill_locked(runs, write)
            assert plan is not None
            if self.journal is not None:
                self.journal.write_batch(table)  # before any change: a full disk changes nothing
            self.log.replaced.update(self.hot.apply(plan))
            waiting = self.log.add_batch(table)
        if waiting >= self._flush_rows and self._on_full:
            self._on_full()
        return int(table.num_rows)

    def _fill_locked(self, runs: Runs, write: Callable[[pa.Table], None]) -> int:
        """Store and add the rows of ``runs`` in minutes no bar holds (lock held; see `fill`)."""
        table = runs.table.filter(pa.array(self.hot.unheld_minutes(runs)))
        if table.num_rows == 0:
            return 0
        runs = Runs(table)
        plan = self.hot.plan(runs)
        write(table)
        self.hot.apply(plan)  # replaces nothing: every row's minute was free
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
            taken = self.log.take()
            self.journal_mark = None if self.journal is None else self.journal.seal()
        try:
            return to_tables(as_batches(taken[0]), taken[1])
        except BaseException:
            # Validation should make this impossible; if it happens anyway, no bar is lost.
            with self.lock:
                self.log.put_back(taken)
            raise

    def close(self) -> None:
        """Refuse every later `append` and `extend` (with `ClosedError`), bound ones included."""
        with self.lock:
            self._closed = True
            self._appender.close()

    def set_window(self, start: int, end: int, outside: Outside | None) -> None:
        """Take only bars with ``start <= ts < end`` from now on; ``outside`` explains a refusal.

        The caller holds `lock` (a session starts or ends as one step to a concurrent writer).
        """
        self._appender.window_open, self._appender.window_close = start, end
        self._outside = outside

    def clear(self) -> None:
        """Forget every bar: hot state, log and counters.

        The caller holds `lock`, so that a clear and what goes with it (the store's delete,
        the journal's new epoch) are one step to a concurrent writer.
        """
        self.hot.clear()
        self.log.clear()

    def restore(self, stamps: pa.Table, recent: pa.Table, totals: pa.Table | None = None) -> None:
        """Rebuild the hot state of bars already stored (see `HotState.restore`)."""
        self.hot.restore(stamps, recent, totals)

    def refresh_metrics_locked(self, symbols: list[str], read_totals: TotalsReader) -> None:
        """Recompute the stale session metrics among ``symbols`` from all their bars.

        The caller holds the store's lock and then `lock`, so that no bar moves between the
        log and the store, and no bar arrives, while ``read_totals`` aggregates them.
        """
        stale = self.hot.stale_symbols(symbols)
        if stale:
            self.hot.set_exact_totals(stale, read_totals(stale, self.log.snapshot_locked()))

    # -- queries ----------------------------------------------------------------------------

    @property
    def replacements(self) -> int:
        """How many bars replaced an earlier bar of the same (symbol, ts)."""
        return self.hot.replacements

    # -- internals --------------------------------------------------------------------------

    def _explain(self, *fields: Any) -> InvalidBarError:
        """The error of a bar the compiled fast check refused, from the one explaining check."""
        problem = diagnose(*fields)
        if problem is None and self._outside is not None:
            # Valid, so refused for its time: outside the window.
            problem = self._outside(fields[0], to_micros(fields[1], fields[0]))
        if problem is None:  # pragma: no cover - the fast and slow checks must agree
            problem = InvalidBarError(fields[0], fields[1], "bar", fields, "is invalid")
        return problem

    def _window(self) -> tuple[int, int, Outside | None]:
        return self._appender.window_open, self._appender.window_close, self._outside

    def _split_window(
        self, table: pa.Table, positions: np.ndarray, window: tuple[int, int, Outside | None]
    ) -> tuple[pa.Table, pa.Table]:
        """The rows of ``table`` inside ``window``, and the others as rejects.

        ``positions`` gives each row's index in the batch as it was passed (before `partition`
        took its invalid rows out).
        """
        start, end, outside = window
        assert outside is not None
        ts = table.column("ts").cast(pa.int64())
        inside = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))
        if pc.all(inside).as_py():
            return table, rejects_table([], [], table.slice(0, 0))
        rows = np.flatnonzero(~inside.to_numpy(zero_copy_only=False))
        out = table.take(pa.array(rows))
        errors = [outside(s, t) for s, t in zip(out.column("symbol").to_pylist(),
                                                  out.column("ts").cast(pa.int64()).to_pylist(),
                                                  strict=True)]
        return table.filter(inside), rejects_table(positions[rows], errors, out)

    def _check_window(self, table: pa.Table) -> None:
        """Raise the `set_window` refusal of a batch's first bar outside the window."""
        if self._outside is None:
            return
        ts = table.column("ts").cast(pa.int64())
        start, end = self._appender.window_open, self._appender.window_close
        inside = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))
        if not pc.all(inside).as_py():
            row = int(pc.index(inside, False).as_py())
            raise self._outside(table.column("symbol")[row].as_py(), ts[row].as_py())


def _metrics_off() -> WarehouseError:
    """The error of a metrics read where they are not kept."""
    return WarehouseError(
        "session metrics are off (metrics=False); open the warehouse with metrics=True, the "
        "default, to keep them"
    )


def _no_store(symbol: str) -> SessionMetrics | None:
    """Stale metrics of a buffer without a store: they cannot be recomputed."""
    raise WarehouseError(
        f"{symbol}: its session metrics need its bars (a correction replaced a bar older than "
        "the window) and no store is attached"
    )
