"""The append log: every accepted bar, in arrival order, until a flush drains it into DuckDB.

The log is a list of sealed record batches (from `extend`, or sealed single appends) followed
by the open columns of single appends (`_hot.Columns`: one growable C buffer per field, the
symbol as an int32 code), which the compiled `append` writes into. Sealing them (before a batch
goes on the log, and at a drain) hands the buffers to Arrow without a copy: a batch whose
symbol column is dictionary-encoded over the buffer's symbol names, which `as_batches` decodes
to strings (one Arrow C cast) outside the lock. A snapshot copies the rows appended since the
last one and keeps the copies, so the next seal hands over only the rows after them.

Arrival order is kept, so on a repeated (symbol, ts) the last one wins; the keys that replaced
a bar which may already be stored are kept apart, for the flush to delete.

Every method but `snapshot` and `requeue` expects the caller to hold the buffer's lock (the one
given at construction): the log is one part of a step that also changes the hot state.
`snapshot_locked` is `snapshot` for a caller that holds it.
"""

from __future__ import annotations

import pyarrow as pa

from warehouse._hot import Columns
from warehouse._lock import Lock
from warehouse._runs import Runs
from warehouse.schema import BAR_SCHEMA, empty_table

#: What `take` hands out and `put_back` takes: (chunks, replaced keys, rows in them).
Taken = tuple[list[pa.RecordBatch], set[tuple[str, int]], int]


class AppendLog:
    """The bars accepted since the last flush, and the keys among them that replace others.

    Parameters
    ----------
    lock
        The buffer's lock: `snapshot` and `requeue` take it, every other method runs under it.
    names
        The buffer's symbol names, in order of first appearance: a single append's symbol is
        held as its index here (`HotState` assigns them, as each series' ``code``).
    """

    def __init__(self, lock: Lock, names: list[str]) -> None:
        self._lock = lock
        # Sealed batches, some with the symbol still dictionary-encoded (see `as_batches`).
        self._chunks: list[pa.RecordBatch] = []
        #: The open columns of single appends (the compiled append holds them: kept in place).
        self.columns = Columns(names)
        self._sealed_rows = 0  # rows in sealed chunks
        #: Keys that replaced a bar which may be stored (the compiled append holds it too).
        self.replaced: set[tuple[str, int]] = set()
        # Single appends copied for a snapshot: batches covering the columns' rows [:done].
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
        self.columns.clear()
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
        return self._sealed_rows + len(self.columns)

    def snapshot(self) -> tuple[pa.Table, pa.Table]:
        """The log as it is now, without draining it: (bars, replaced), as a drain returns.

        Conversions are cached, so repeated queries pay only for bars that arrived since the
        last one; the open columns of single appends are left in place (their row count is the
        flush trigger): the rows appended since the last snapshot are copied.
        """
        with self._lock:
            key = (self._generation, len(self.columns), self._sealed_rows)
            cached = self._snapshot
            if cached is not None and cached[0] == key:
                return cached[1], cached[2]
            chunks = list(self._chunks)
            done = self._pending_done
            batches = list(self._pending_batches)
            fresh = self.columns.copy(done)
            replaced = set(self.replaced)
        converted = as_batches(chunks)
        pending = None if fresh is None else decode(fresh)
        with self._lock:
            if self._generation == key[0]:
                # Nothing was drained or sealed meanwhile: keep the conversions.
                self._chunks[: len(converted)] = converted
                if pending is not None and self._pending_done == done:
                    self._pending_batches.append(pending)
                    self._pending_done = done + pending.num_rows
        fresh_batches = [] if pending is None else [pending]
        bars, keys = to_tables([*converted, *batches, *fresh_batches], replaced)
        with self._lock:
            if (self._generation, len(self.columns), self._sealed_rows) == key:
                self._snapshot = (key, bars, keys)
        return bars, keys

    def snapshot_locked(self) -> tuple[pa.Table, pa.Table]:
        """`snapshot`, for a caller that holds the lock (a rare path: nothing is cached).

        The log cannot change while it runs, so it is the log at one instant, as a reader of
        the hot state under the same lock sees it.
        """
        fresh = self.columns.copy(self._pending_done)
        pending = [] if fresh is None else [decode(fresh)]
        return to_tables([*as_batches(self._chunks), *self._pending_batches, *pending],
                         set(self.replaced))

    # -- internals --------------------------------------------------------------------------

    def _seal_pending(self) -> None:
        """Move the single appends onto the chunk list (their buffers, without a copy)."""
        done = self._pending_done
        sealed = self.columns.seal()
        self._chunks.extend(self._pending_batches)
        if sealed is not None:
            self._sealed_rows += sealed.num_rows
            if sealed.num_rows > done:  # the rows before `done` are in the snapshot's copies
                self._chunks.append(sealed.slice(done))
        self._pending_batches = []
        self._pending_done = 0
        self._generation += 1


def decode(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A log batch as a `BAR_SCHEMA` batch: a dictionary-encoded symbol column becomes strings.

    One Arrow C cast (which releases the GIL); the other columns are shared, not copied.
    """
    symbol = batch.column(0)
    if not pa.types.is_dictionary(symbol.type):
        return batch
    return pa.RecordBatch.from_arrays([symbol.cast(pa.string()), *batch.columns[1:]],
                                      schema=BAR_SCHEMA)


def as_batches(chunks: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """The log's chunks as `BAR_SCHEMA` record batches (sealed single appends decoded)."""
    return [decode(c) for c in chunks]


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
