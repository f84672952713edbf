"""Readers: DuckDB cursors that answer what `Warehouse.sql` answers without the store's lock.

`Warehouse.sql` holds the store's lock for its whole query, so that a flush (which moves bars
from the log into the table under that lock) never shows a bar twice or not at all. A reader
holds the lock only while it takes the log's snapshot and opens a read-only DuckDB transaction
pinned at that instant; DuckDB's MVCC then hides every later flush from it, so the snapshot of
the log and the table agree, and the query runs without blocking the feed's flushes.

A cursor is a connection of its own to the same database: it gets the store's temporary views
(`BarStore.cursor`), its `bars` reading the snapshot through stand-ins (`_Log`). Cursors are
kept for the next reader (setting one up costs about a millisecond, as much as a small query).
Every transaction is rolled back: a reader changes nothing.

DuckDB refuses a ``CHECKPOINT`` after DDL (the compaction drops and makes the tail table) while
another transaction is open, so `quiesce` lets the readers that run finish (or interrupts them)
before the store checkpoints; new ones wait on the store's lock meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from warehouse.errors import StoreError

if TYPE_CHECKING:
    from warehouse.store import BarStore, Snapshot

log = logging.getLogger("warehouse")

#: How long a checkpoint lets running readers finish before it interrupts them.
CHECKPOINT_GRACE = 1.0
#: How long interrupted readers are waited for, and how often the interrupt is repeated.
_STOP_WAIT = 10.0
INTERRUPT_EVERY = 0.05
#: Binding a table of the file starts the transaction there: its snapshot is pinned from now.
_PIN = "SELECT 1 FROM session_bars LIMIT 0"


class _Log:
    """One table of the log's snapshot, as a cursor scans it.

    DuckDB asks a registered object for a new Arrow stream each time a query scans it, so one
    registration per cursor serves every snapshot: registering a table (and defining `bars`
    over it) for each query would cost about as much as a small query.
    """

    __slots__ = ("table",)

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.table.__arrow_c_stream__(requested_schema)


class Reader:
    """One cursor, used by one reader at a time; `interrupt` stops its query from any thread."""

    __slots__ = ("cursor", "reason", "replaced", "unflushed", "version")

    def __init__(self, store: BarStore, version: int, empty: Snapshot) -> None:
        self.unflushed = _Log(empty[0])
        self.replaced = _Log(empty[1])
        self.cursor = store.cursor(self.unflushed, self.replaced)
        self.version = version
        #: Why the running query was interrupted (None: it was not).
        self.reason: str | None = None

    def show(self, log: Snapshot) -> None:
        """Show ``log`` in the cursor's `bars`."""
        self.unflushed.table, self.replaced.table = log

    def interrupt(self, reason: str) -> None:
        """Stop the query the cursor runs (it raises `duckdb.InterruptException`)."""
        self.reason = reason
        self.cursor.interrupt()


class Readers:
    """The store's reader cursors (`BarStore.readers`).

    Parameters
    ----------
    store
        The store whose database the cursors read.
    snapshot
        The log's snapshot (unflushed bars, keys they replace), taken with the store's lock held.
    empty
        The snapshot of an empty log, shown to readers that do not read the log.
    keep
        Idle cursors kept for later readers.
    """

    def __init__(
        self, store: BarStore, snapshot: Callable[[], Snapshot], empty: Snapshot, *,
        keep: int = 8,
    ) -> None:
        self._store = store
        self._snapshot = snapshot
        self._empty = empty
        self._keep = keep
        self._idle: list[Reader] = []
        self._active: set[Reader] = set()
        self._changed = threading.Condition()
        self._closed = False

    @contextlib.contextmanager
    def read(self, *, log: bool = True) -> Iterator[Reader]:
        """A cursor in a read-only transaction, for one query; rolled back on leaving.

        Parameters
        ----------
        log
            Show the log's unflushed bars in `bars` (and `bars_all`), as `Warehouse.sql`
            does; a query that reads neither can skip the snapshot.

        Raises
        ------
        StoreError
            The store is closed.
        """
        reader = self._take()
        store = self._store
        try:
            with store.lock:
                if self._closed or store.closed:
                    raise StoreError(f"{store.path}: the warehouse is closed")
                reader.cursor.execute("BEGIN TRANSACTION READ ONLY")
                snapshot = None
                if log:
                    snapshot = self._snapshot()
                    reader.cursor.execute(_PIN)
                with self._changed:
                    self._active.add(reader)
        except BaseException:
            reader.cursor.close()
            raise
        try:
            # Without the snapshot, `bars` shows the stored bars alone.
            reader.show(snapshot if snapshot is not None else self._empty)
            if snapshot is not None and snapshot[1].num_rows:
                store.show_replaced(reader.cursor)  # in the transaction: rolled back with it
            yield reader
        finally:
            self._give_back(reader)  # its transaction ends before it stops counting as active

    def _take(self) -> Reader:
        version = self._store.views_version
        with self._changed:
            while self._idle:
                reader = self._idle.pop()
                if reader.version == version:
                    reader.reason = None
                    return reader
                reader.cursor.close()  # made before the views changed
        return Reader(self._store, version, self._empty)

    def _give_back(self, reader: Reader) -> None:
        try:
            reader.cursor.execute("ROLLBACK")
            usable = True
        except duckdb.Error:
            usable = False  # no transaction left, or the cursor is unusable: a new one
        with self._changed:
            self._active.discard(reader)
            self._changed.notify_all()
            if usable and not self._closed and len(self._idle) < self._keep:
                self._idle.append(reader)
            else:
                reader.cursor.close()

    def quiesce(self, grace: float | None = None) -> None:
        """Wait (the store's lock held) until no reader runs; interrupt those left after grace.

        ``grace`` is in seconds, `CHECKPOINT_GRACE` by default.
        """
        grace = CHECKPOINT_GRACE if grace is None else grace
        deadline = time.monotonic() + grace
        with self._changed:
            while self._active and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            if not self._active:
                return
            log.warning("interrupting %d remote queries for a checkpoint of %s",
                        len(self._active), self._store.path)
        self.stop_all("the writer had to checkpoint its file")

    def stop_all(self, reason: str) -> bool:
        """Interrupt the running readers' queries until none runs; returns whether none does.

        DuckDB forgets an interrupt that comes before its query starts, so it is repeated
        until the reader leaves (DuckDB stops a query within milliseconds of one).
        """
        deadline = time.monotonic() + _STOP_WAIT
        with self._changed:
            while self._active and time.monotonic() < deadline:
                for reader in self._active:
                    reader.interrupt(reason)
                self._changed.wait(INTERRUPT_EVERY)
            return not self._active

    @property
    def active(self) -> int:
        """How many readers run now."""
        with self._changed:
            return len(self._active)

    @property
    def cursors(self) -> int:
        """How many cursors are open: running readers' and idle ones."""
        with self._changed:
            return len(self._active) + len(self._idle)

    def close(self) -> None:
        """Stop the running readers (`stop_all`), close the idle cursors; later reads raise.

        A running reader closes its cursor as it leaves; until then it keeps the file open.
        """
        with self._changed:
            self._closed = True
            for reader in self._idle:
                reader.cursor.close()
            self._idle.clear()
        self.stop_all("the warehouse is closing")
