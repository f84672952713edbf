"""The append log: every accepted bar, in arrival order, until a flush drains it into DuckDB.

The log is a list of sealed chunks (record batches from `extend`, or lists of single appends
not converted yet) followed by the open list of single appends, which the compiled `append`
extends in place. Arrival order is kept, so on a repeated (symbol, ts) the last one wins; the
keys that replaced a bar which may already be stored are kept apart, for the flush to delete.

Every method but `snapshot` and `requeue` expects the caller to hold the buffer's lock (the one
given at construction): the log is one part of a step that also changes the hot state.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from warehouse._runs import Runs
from warehouse.schema import BAR_SCHEMA, Bar, empty_table, rows_to_batch

#: What `take` hands out and `put_back` takes: (chunks, replaced keys, rows in them).
Taken = tuple[list[pa.RecordBatch | list[Bar]], set[tuple[str, int]], int]


class AppendLog:
    """The bars accepted since the last flush, and the keys among them that replace others.

    Parameters
    ----------
    lock
        The buffer's lock: `snapshot` and `requeue` take it, every other method runs under it.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._chunks: list[pa.RecordBatch | list[Bar]] = []
        #: The open list of single appends (the compiled append holds it: kept in place).
        self.pending: list[Bar] = []
        self._sealed_rows = 0  # rows in sealed chunks
        #: Keys that replaced a bar which may be stored (the compiled append holds it too).
        self.replaced: set[tuple[str, int]] = set()
        # Single appends already converted for a snapshot: batches covering pending[:done].
        self._pending_batches: list[pa.RecordBatch] = []
        self._pending_done = 0
        # Bumped whenever the log is sealed, drained or refilled; keys the snapshot cache.
        self._generation = 0
        self._snapshot: tuple[tuple[int, int, int], pa.Table, pa.Table] | None = None

    # -- commands (lock held) ---------------------------------------------------------------

    def add_batch(self, table: pa.Table) -> int:
        """Append a validated batch after everything on the log; returns the rows waiting."""
        self._seal_pending()
        self._chunks.extend(table.to_batches())
        self._sealed_rows += table.num_rows
        return self._sealed_rows

    def take(self) -> Taken:
        """Empty the log for a flush; `to_tables` converts what it returns."""
        self._seal_pending()
        chunks, self._chunks = self._chunks, []
        replaced = set(self.replaced)
        self.replaced.clear()
        rows, self._sealed_rows = self._sealed_rows, 0
        self._snapshot = None
        return chunks, replaced, rows

    def put_back(self, taken: Taken) -> None:
        """Undo a `take` whose conversion failed: its chunks go back in front."""
        chunks, replaced, rows = taken
        self._chunks[:0] = chunks
        self._sealed_rows += rows
        self.replaced.update(replaced)
        self._generation += 1

    def clear(self) -> None:
        """Forget every bar on the log."""
        self._chunks.clear()
        self.pending.clear()
        self._pending_batches = []
        self._pending_done = 0
        self._sealed_rows = 0
        self.replaced.clear()
        self._generation += 1
        self._snapshot = None

    def requeue(self, bars: pa.Table, replaced: pa.Table) -> None:
        """Put a drained log back in front of the current one (after a failed flush)."""
        keys = zip(replaced.column("symbol").to_pylist(),
                   replaced.column("ts").cast(pa.int64()).to_pylist(), strict=True)
        with self._lock:
            self._chunks[:0] = bars.to_batches()
            self._sealed_rows += bars.num_rows
            self.replaced.update(keys)
            self._generation += 1
            self._snapshot = None

    # -- queries ----------------------------------------------------------------------------

    def unflushed_count(self) -> int:
        """The number of bars on the log, waiting for a flush."""
        return self._sealed_rows + len(self.pending)

    def snapshot(self) -> tuple[pa.Table, pa.Table]:
        """The log as it is now, without draining it: (bars, replaced), as a drain returns.

        Conversions are cached, so repeated queries pay only for bars that arrived since the
        last one; the open list of single appends is left in place (its length is the flush
        trigger).
        """
        with self._lock:
            key = (self._generation, len(self.pending), self._sealed_rows)
            cached = self._snapshot
            if cached is not None and cached[0] == key:
                return cached[1], cached[2]
            chunks = list(self._chunks)
            done = self._pending_done
            batches = list(self._pending_batches)
            fresh = self.pending[done:]
            replaced = set(self.replaced)
        converted = as_batches(chunks)
        pending = rows_to_batch(fresh) if fresh else None
        with self._lock:
            if self._generation == key[0]:
                # Nothing was drained or sealed meanwhile: keep the conversions.
                self._chunks[: len(converted)] = converted
                if pending is not None:
                    self._pending_batches.append(pending)
                    self._pending_done = done + len(fresh)
        bars, keys = to_tables([*converted, *batches, *([pending] if pending else [])], replaced)
        with self._lock:
            if (self._generation, len(self.pending), self._sealed_rows) == key:
                self._snapshot = (key, bars, keys)
        return bars, keys

    # -- internals --------------------------------------------------------------------------

    def _seal_pending(self) -> None:
        """Move the single appends onto the chunk list."""
        pending = self.pending
        self._chunks.extend(self._pending_batches)
        if len(pending) > self._pending_done:
            self._chunks.append(pending[self._pending_done :])
        self._sealed_rows += len(pending)
        pending.clear()  # the list object itself stays: the compiled append holds it
        self._pending_batches = []
        self._pending_done = 0
        self._generation += 1


def as_batches(chunks: list[pa.RecordBatch | list[Bar]]) -> list[pa.RecordBatch]:
    """The log's chunks as record batches (lists of single appends converted)."""
    return [rows_to_batch(c) if isinstance(c, list) else c for c in chunks]


def to_tables(
    batches: list[pa.RecordBatch], replaced: set[tuple[str, int]]
) -> tuple[pa.Table, pa.Table]:
    """The log's batches as one table, and the replaced keys as another.

    If any key was replaced, only the last arrival of each key is kept.
    """
    bars = pa.Table.from_batches(batches, schema=BAR_SCHEMA) if batches else empty_table()
    if replaced:
        bars = Runs(bars).table
    keys = pa.table(
        {
            "symbol": pa.array([k[0] for k in replaced], pa.string()),
            "ts": pa.array([k[1] for k in replaced], pa.int64()).cast(BAR_SCHEMA.field("ts").type),
        }
    )
    return bars, keys
