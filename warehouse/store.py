"""The DuckDB side: the session table, flushes into it, and SQL over the `bars` view.

`BarStore` owns one DuckDB connection behind one lock: DuckDB connections are not thread-safe,
and holding the lock across "insert + drop from the log" is what makes a flush look atomic to a
SQL reader (invariant 1: never zero copies of a bar, never two). DuckDB releases the GIL while it
works, so hot reads in other threads go on at full speed during a flush or a query.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse._memory import release_freed_memory
from warehouse._readers import Readers
from warehouse.errors import StoreError
from warehouse.queries import Queries, load_queries, load_statements
from warehouse.schema import (
    BAR_SCHEMA,
    MAX_TS,
    MIN_TS,
    STORED_SCHEMA,
    empty_table,
    from_micros,
    to_micros,
)

Params = Mapping[str, Any] | Sequence[Any] | None
#: The log as `AppendBuffer.snapshot` returns it: (unflushed bars, keys they replace).
Snapshot = tuple[pa.Table, pa.Table]
T = TypeVar("T")
#: Rows per Arrow batch and Parquet row group of an export (DuckDB's own row group size).
_PARQUET_ROWS = 122_880

TABLE = "session_bars"
#: Where flushes write, until `BarStore.compact` moves its bars into TABLE.
TAIL = "session_bars_tail"
#: The view of every flushed bar: TABLE and TAIL (what every statement that reads stored bars
#: reads).
STORED = "stored_bars"
#: The `warehouse_meta` key of the session epoch.
EPOCH_KEY = "epoch"
_EMPTY_KEYS = pa.table({"symbol": pa.array([], pa.string()),
                        "ts": pa.array([], BAR_SCHEMA.field("ts").type)})


#: Rows per row group of the warehouse's tables (DuckDB's default is 122,880). Each compaction
#: adds a run sorted by (symbol, ts), so a symbol's bars of one run sit in one row group; the
#: smaller the groups, the fewer rows a one-symbol query reads past its zone maps. Measured on
#: a full session (8,000 symbols x 390 bars, 500k-row runs): one symbol over one hour 1.0 ms at
#: 30,720 against 1.3-1.4 ms at the default, for a file 1.5 % larger; 16,384 and 8,192 gain
#: nothing more.
ROW_GROUP_SIZE = 30_720
#: DuckDB's word for a view the warehouse defines only with an archive.
_NO_ARCHIVE_VIEW = re.compile(r"Table with name (history|bars_all) does not exist")


def _attach(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the warehouse file, with `ROW_GROUP_SIZE`.

    The row group size is an option of ``ATTACH`` (not of ``duckdb.connect``), so the file is
    attached to an in-memory connection and made its default database. What DuckDB spills
    (a big sort: a compaction, an export) goes beside the file, ``<path>.tmp``, as when the
    file is the connection's own, not to a ``.tmp`` folder in the working directory.
    """
    con = duckdb.connect()
    options = f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}" + (", READ_ONLY" if read_only else "")
    try:
        con.execute(f"ATTACH {_literal(path)} AS warehouse ({options})")
        con.execute("USE warehouse")
        if path != ":memory:":
            con.execute(f"SET temp_directory = {_literal(path + '.tmp')}")
    except BaseException:
        con.close()
        raise
    return con


def _literal(text: str) -> str:
    """``text`` as a SQL string literal (for statements that take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


class BarStore:
    """The DuckDB session table of one warehouse file (or an in-memory database).

    Parameters
    ----------
    path
        A DuckDB file, created if missing, or ``":memory:"``.
    read_only
        Open an existing file without writing to it (another process may hold the writer).
    queries
        The named queries a user runs by name (`load_queries`); the package's ``sql/`` folder
        by default.
    compact_rows
        Flushed bars wait in the tail table (arrival order) until this many make `compact_due`
        true; a checkpoint compacts whatever waits.

    Attributes
    ----------
    statements
        The SQL the warehouse itself runs (`load_statements`): always the package's, whatever
        ``queries`` holds.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        queries: Queries | None = None,
        compact_rows: int = 500_000,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.compact_rows = compact_rows
        self.queries = queries if queries is not None else load_queries()
        self.statements = load_statements()
        self.lock = threading.RLock()
        try:
            self._con = _attach(self.path, read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open warehouse file {self.path}: {exc}") from exc
        self._closed = False
        try:
            # Without this, Arrow and Polars results come back in the machine's time zone.
            self._con.execute("SET TimeZone = 'UTC'")
            # Automatic checkpoints put 70-140 ms stalls into minute flushes; the warehouse
            # checkpoints from its flusher thread and on close instead.
            self._con.execute("SET checkpoint_threshold = '1GB'")
            if not read_only:
                self._con.execute(self.statements["create_origin_type"])
                self._con.execute(self.statements["create_bars_table"])
                self._con.execute(self.statements["create_tail_table"])
                self._con.execute(self.statements["create_meta_table"])
            marked = self._check_table(TABLE)
            self._tailed = self._check_table(TAIL) is not None
            if not read_only and not marked:
                for table in (TABLE, TAIL):  # a file written before bars recorded their origin
                    self._con.execute(self.statements["add_origin_column"].format(table=table))
                marked = True
            #: The temporary views defined on the connection, name to statement, in the order
            #: they depend on each other (`define_view`): `Readers` define them on their cursors.
            self._views: dict[str, str] = {}
            self.views_version = 0
            self._readers: Readers | None = None
            self._views["stored_bars"] = self.statements[
                "create_stored_bars_view_untailed" if not self._tailed
                else "create_stored_bars_view" if marked else "create_stored_bars_view_unmarked"]
            self._con.execute(self._views["stored_bars"])
            self._tail_rows = self._count(TAIL) if self._tailed else 0
            self._view: str | None = None
            self._published: Snapshot | None = None
            self._publish(empty_table(), _EMPTY_KEYS)
        except duckdb.Error as exc:
            self._con.close()
            raise StoreError(f"{self.path} is not a usable warehouse file: {exc}") from exc
        except BaseException:  # a table of other columns: the file is not held open after
            self._con.close()
            raise

    def _check_table(self, table: str) -> bool | None:
        """Whether a table records the bars' origin (None: the tail table does not exist).

        Raises if the table has other columns than bars. A file written before the tail table
        existed, opened read-only, has none: then only ``session_bars`` is read. A file written
        before bars recorded their origin lacks that column: opened for writing, it is added
        (every bar so far was live); opened read-only, the views show every bar live.
        """
        columns = self._con.sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $table AND table_schema = 'main' "
            "AND table_catalog = current_database() ORDER BY ordinal_position",
            params={"table": table},
        ).fetchall()
        found = [name for name, _ in columns]
        if table == TAIL and not found:
            return None
        if found not in (BAR_SCHEMA.names, STORED_SCHEMA.names):
            raise StoreError(
                f"{self.path}: table {table} has columns {found}, expected {STORED_SCHEMA.names}"
            )
        return bool(found == STORED_SCHEMA.names)

    # -- commands ---------------------------------------------------------------------------

    def write(self, bars: pa.Table, replaced: pa.Table) -> None:
        """Store a drained log in one transaction: delete the replaced keys, insert the bars.

        The bars go to the tail table (in arrival order, the cheapest insert); a checkpoint
        compacts them into ``session_bars`` sorted by (symbol, ts).

        Raises
        ------
        StoreError
            DuckDB refused; the transaction is rolled back and the tables are unchanged.
        """
        def steps(con: duckdb.DuckDBPyConnection) -> None:
            if replaced.num_rows:
                con.register("_flush_replaced", replaced)
                con.execute(self.statements["delete_replaced_bars"])
                con.execute(self.statements["delete_replaced_tail_bars"])
            con.register("_flush_batch", bars)
            con.execute(self.statements["insert_bars"])

        self._write_tail(steps, bars.num_rows, ("_flush_batch", "_flush_replaced"),
                         f"flush of {bars.num_rows} bars to {self.path} failed")

    def write_filled(self, bars: pa.Table) -> None:
        """Store bars that gap filling fetched, marked ``filled``, in one transaction.

        The caller has checked that no bar of the session holds their minutes (see
        `Warehouse.fill`); a live bar that arrives later replaces one as a correction does.

        Raises
        ------
        StoreError
            DuckDB refused; the transaction is rolled back and the tables are unchanged.
        """
        def steps(con: duckdb.DuckDBPyConnection) -> None:
            con.register("_fill_batch", bars)
            con.execute(self.statements["insert_filled_bars"])

        self._write_tail(steps, bars.num_rows, ("_fill_batch",),
                         f"storing {bars.num_rows} filled bars in {self.path} failed")

    def _write_tail(
        self, steps: Callable[[duckdb.DuckDBPyConnection], None], rows: int,
        registered: tuple[str, ...], failure: str,
    ) -> None:
        """Run a transaction that adds ``rows`` bars to the tail, then drop what it registered."""
        try:
            self._transaction(steps, failure)
            self._tail_rows += rows
        finally:
            with self.lock:
                for name in registered:
                    with contextlib.suppress(duckdb.Error):
                        self._con.unregister(name)

    def clear(self, epoch: int, meta: Mapping[str, str] | None = None) -> None:
        """Delete every stored bar and record the new session ``epoch``, in one transaction.

        ``meta`` entries (`set_meta`) are recorded in the same transaction. A kill at any point
        leaves the old session whole (epoch and meta unchanged) or none of it.
        """
        def steps(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(self.statements["delete_all_bars"])
            con.execute(self.statements["drop_tail_table"])
            con.execute(self.statements["create_tail_table"])
            for key, value in {EPOCH_KEY: str(epoch), **(meta or {})}.items():
                con.execute(self.statements["set_meta"], {"key": key, "value": value})

        self._transaction(steps, f"clearing {self.path} failed")
        self._tail_rows = 0

    def compact(self) -> None:
        """Move the tail's bars into ``session_bars`` sorted by (symbol, ts), in one transaction.

        Each compaction adds a run sorted by (symbol, ts) that covers a stretch of time, so
        DuckDB's zone maps skip all but a row group or two when a query reads one symbol over
        an hour (~1.3 ms over a session instead of ~2.4 in arrival order); sorting each flush
        of ~100k rows alone gains little. Compacting 500k bars takes ~90 ms, off the hot path.
        """
        if not self._tail_rows:
            return
        if self.read_only:
            raise StoreError(
                f"{self.path}: {self._tail_rows} flushed bars wait in {TAIL} (its writer stopped "
                "without closing); open the file for writing once to settle them"
            )

        def steps(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(self.statements["compact_tail_bars"])
            con.execute(self.statements["drop_tail_table"])
            con.execute(self.statements["create_tail_table"])

        with self.lock:
            self._transaction(steps, f"compacting {self.path} failed")
            self._tail_rows = 0

    @property
    def tail_rows(self) -> int:
        """Flushed bars waiting in the tail table for `compact` (replaced ones may be counted)."""
        return self._tail_rows

    @property
    def compact_due(self) -> bool:
        """Whether ``compact_rows`` flushed bars wait in the tail table."""
        return self._tail_rows >= self.compact_rows

    def _transaction(
        self, steps: Callable[[duckdb.DuckDBPyConnection], None], failure: str
    ) -> None:
        with self.lock:
            con = self._con
            try:
                con.begin()
                steps(con)
                con.commit()
            except duckdb.Error as exc:
                # The transaction may be gone already; the error below is the one to see.
                with contextlib.suppress(duckdb.Error):
                    con.rollback()
                raise StoreError(f"{failure}: {exc}") from exc

    def set_meta(self, key: str, value: str) -> None:
        """Record one of the warehouse's facts (``warehouse_meta``), replacing an earlier value."""
        self.set_metas({key: value})

    def set_metas(self, values: Mapping[str, str]) -> None:
        """Record several of the warehouse's facts in one transaction."""
        def steps(con: duckdb.DuckDBPyConnection) -> None:
            for key, value in values.items():
                con.execute(self.statements["set_meta"], {"key": key, "value": value})

        self._transaction(steps, f"recording {sorted(values)} in {self.path} failed")

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable under ``name`` (until `unregister`)."""
        with self.lock:
            self._con.register(name, table)

    def unregister(self, name: str) -> None:
        """Drop a name made by `register`."""
        with self.lock:
            self._con.unregister(name)

    def checkpoint(self) -> None:
        """Compact the tail (`compact`), then write the WAL into the database file.

        The checkpoint also shrinks the table (DuckDB compresses what it writes: a full
        session's bars take ~21 B each in the file and in DuckDB's cache); the memory the
        uncompressed rows took is then given back to the OS (`_memory`).
        """
        with self.lock:
            self.compact()
            if self._readers is not None:
                # DuckDB refuses to checkpoint after DDL (the compaction's) while another
                # transaction is open; new readers wait for the lock meanwhile.
                self._readers.quiesce()
            self.execute("CHECKPOINT")
            # Else DuckDB's allocator keeps those pages: ~35 B a bar of a full session's RSS.
            release_freed_memory()

    def execute(self, sql: str, params: Params = None) -> None:
        """Run a statement that returns nothing (DDL, COPY, a write)."""
        with self.lock:
            try:
                self._con.execute(sql, params)
            except duckdb.Error as exc:
                raise StoreError(f"{exc}") from exc

    def define_view(self, name: str, sql: str) -> None:
        """Run ``sql``, a ``CREATE OR REPLACE TEMP VIEW name`` statement, and keep it for readers.

        Temporary views belong to one connection: the cursors of `Readers` define the kept
        ones again (in the order first defined) before they read.
        """
        with self.lock:
            self.execute(sql)
            self._views[name] = sql
            self.views_version += 1

    def views(self) -> tuple[int, list[str]]:
        """The temporary views' version and their statements, in definition order."""
        with self.lock:
            return self.views_version, list(self._views.values())

    def cursor(self, unflushed: object, replaced: object) -> duckdb.DuckDBPyConnection:
        """A new connection to the same database, set up as this one, for a reader.

        The warehouse file is its default database, in UTC, with the kept views
        (`define_view`); `bars` reads ``unflushed`` (an Arrow table, or an object that gives its
        snapshot's Arrow stream each time it is scanned) as the log, and `show_replaced` makes
        it hide the stored bars that ``replaced`` (the same) replaces. Python
        objects are not found by name (DuckDB's replacement scan of the caller's variables):
        a cursor runs SQL from outside the process.
        """
        with self.lock:
            if self._closed:
                raise StoreError(f"{self.path}: the warehouse is closed")
            cursor = self._con.cursor()
        try:
            cursor.execute("USE warehouse")
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.execute("SET python_enable_replacements = false")
            cursor.register("_unflushed", unflushed)
            cursor.register("_replaced", replaced)
            _, views = self.views()
            cursor.execute(views[0])  # stored_bars, which `bars` reads
            cursor.execute(self.statements["create_bars_view_plain"])
            for sql in views[1:]:
                cursor.execute(sql)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def show_replaced(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Make `bars` of a `cursor` hide the stored bars its log replaces (costs a join)."""
        cursor.execute(self.statements["create_bars_view"])

    def readers(self, snapshot: Callable[[], Snapshot]) -> Readers:
        """The store's `Readers` (made on the first call), reading the log from ``snapshot``."""
        with self.lock:
            if self._readers is None:
                self._readers = Readers(self, snapshot, (empty_table(), _EMPTY_KEYS))
            return self._readers

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def close(self) -> None:
        """Close the connection; a second call does nothing."""
        with self.lock:
            if not self._closed:
                if self._readers is not None:
                    self._readers.close()  # their cursors would keep the file open
                self._closed = True
                self._con.close()

    # -- queries ----------------------------------------------------------------------------

    def arrow(
        self, sql: str, params: Params = None, log: Snapshot | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pa.Table:
        """Run a query and return its result as a pyarrow Table.

        Parameters
        ----------
        sql
            The query; ``bars`` is every bar, flushed or not, when ``log`` is given.
        params
            Values bound to ``$name`` (a mapping) or ``?`` (a sequence) placeholders.
        log
            The unflushed bars to show in ``bars``.
        tables
            Arrow tables the query reads by these names, registered for it alone. A name
            starting with ``_`` is refused: those are the store's own.
        """
        return self._query(sql, params, log, lambda rel: rel.to_arrow_table(), tables)

    def polars(
        self, sql: str, params: Params = None, log: Snapshot | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pl.DataFrame:
        """Run a query and return its result as a polars DataFrame (see `arrow`)."""
        frame: pl.DataFrame = self._query(sql, params, log, lambda rel: rel.pl(), tables)
        return frame

    def meta(self, key: str) -> str | None:
        """One of the warehouse's facts, or None if it was never set (or the file predates them)."""
        with self.lock:
            try:
                rows = self._con.execute(self.statements["get_meta"], {"key": key}).fetchall()
            except duckdb.CatalogException:
                return None  # a read-only open of a file written before warehouse_meta existed
            except duckdb.Error as exc:
                raise StoreError(f"reading {key!r} from {self.path} failed: {exc}") from exc
        return str(rows[0][0]) if rows else None

    def epoch(self) -> int:
        """The session epoch: bumped by every `clear`; journal segments carry theirs."""
        value = self.meta(EPOCH_KEY)
        return 0 if value is None else int(value)

    def stored_keys(self) -> pa.Table:
        """(symbol, ts) of every stored bar, in (symbol, ts) order (reopening rebuilds from it)."""
        return self.arrow(self.statements["stored_keys"])

    def recent_bars(self, n: int) -> pa.Table:
        """The last ``n`` stored bars of every symbol, in (symbol, ts) order."""
        return self.arrow(self.statements["recent_bars_per_symbol"], {"n": n})

    def symbol_totals(self, symbols: list[str] | None, log: Snapshot | None = None) -> pa.Table:
        """Session metrics totals of ``symbols`` (None: all) over `bars`, in symbol order.

        Reopening restores the metrics from them; a read recomputes stale ones.
        """
        return self.arrow(self.statements["symbol_totals"], {"symbols": symbols}, log)

    def bars_not_stored(self, journaled: pa.Table) -> pa.Table:
        """The journaled bars (last record per key) that the table does not hold exactly."""
        with self.lock:
            self.register("_journal", journaled)
            try:
                return self.arrow(self.statements["journal_bars_not_stored"])
            finally:
                self.unregister("_journal")

    def bars_between(
        self, symbols: Iterable[str] | None, start: object, end: object, log: Snapshot
    ) -> pl.DataFrame:
        """Bars of ``symbols`` (None: every symbol) in [start, end) over `bars` (`frame_query`)."""
        name, params = frame_query(symbols, start, end)
        return self.polars(self.statements[name], params, log)

    def last_bars(self, symbol: str, n: int, log: Snapshot) -> pa.Table:
        """The last ``n`` bars of one symbol over `bars`, in ts order (reads past a window)."""
        return self.arrow(self.statements["last_bars_of_symbol"], {"symbol": symbol, "n": n}, log)

    def symbol_bars_between(
        self, symbol: str, start: datetime, end: datetime, log: Snapshot
    ) -> pa.Table:
        """Bars of one symbol in [start, end) over `bars`, in ts order (reads past a window)."""
        return self.arrow(self.statements["symbol_bars_between"],
                          {"symbol": symbol, "start": start, "end": end}, log)

    def write_parquet(
        self, sql: str, params: Params, path: Path, schema: pa.Schema, *, compression: str
    ) -> None:
        """Write a query's rows to a Parquet file with exactly ``schema``, streaming.

        pyarrow writes the file, not DuckDB's ``COPY``: DuckDB marks a column required or
        optional by what it can prove of the plan, so the same columns would come out with
        different schemas from different queries; here every file has ``schema``.

        Raises
        ------
        StoreError
            DuckDB failed, or a row does not fit ``schema`` (a null in a required column).
        """
        with self.lock:
            try:
                reader = self._con.sql(sql, params=params).to_arrow_reader(_PARQUET_ROWS)
                with pq.ParquetWriter(path, schema, compression=compression) as writer:
                    for batch in reader:
                        writer.write_batch(batch.cast(schema), row_group_size=_PARQUET_ROWS)
            except (duckdb.Error, pa.ArrowException) as exc:
                raise StoreError(f"writing {path} failed: {exc}") from exc

    def history_bars(self, symbol: str | None, sessions: int | None) -> pl.DataFrame:
        """Bars of the view ``history``: one symbol or all, the last ``sessions`` or all."""
        return self.polars(self.statements["history_bars"],
                           {"symbol": symbol, "sessions": sessions})

    def stored_count(self) -> int:
        """The number of bars in the session table (flushed bars only)."""
        return self._count(STORED)

    def _count(self, table: str) -> int:
        return int(self.arrow(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py())

    def _query(
        self,
        sql: str,
        params: Params,
        log: Snapshot | None,
        fetch: Callable[[duckdb.DuckDBPyRelation], T],
        tables: Mapping[str, pa.Table] | None = None,
    ) -> T:
        with self.lock:
            if self._closed:
                raise StoreError(f"{self.path}: the warehouse is closed")
            registered = []
            try:
                if log is not None:
                    self._publish(*log)
                for name, table in (tables or {}).items():
                    if name.startswith("_"):
                        raise StoreError(f"a table the query reads cannot be named {name!r}: "
                                         "names starting with _ are the warehouse's own")
                    self._con.register(name, table)
                    registered.append(name)
                relation = self._con.sql(sql, params=params)
                if relation is None:
                    raise StoreError("the statement returns no rows; use execute() for it")
                return fetch(relation)
            except duckdb.Error as exc:
                raise StoreError(f"query failed: {_hint(exc)}") from exc
            finally:
                for name in registered:
                    self._con.unregister(name)

    def _publish(self, unflushed: pa.Table, replaced: pa.Table) -> None:
        """Point the `bars` view at the current log (called with the lock held)."""
        published = self._published
        if published is not None and published[0] is unflushed and published[1] is replaced:
            return  # the buffer hands out the same tables while the log is unchanged
        self._published = (unflushed, replaced)
        self._con.register("_unflushed", unflushed)
        self._con.register("_replaced", replaced)
        if replaced.num_rows:
            view = "create_bars_view"
        elif unflushed.num_rows:
            view = "create_bars_view_plain"
        else:  # nothing waits: no union to pay for
            view = "create_bars_view_flushed"
        if view != self._view:
            self._con.execute(self.statements[view])
            self._view = view

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> BarStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def frame_query(
    symbols: Iterable[str] | None, start: object, end: object
) -> tuple[str, dict[str, Any]]:
    """The named query and parameters of `Warehouse.frame`: bars in [start, end), by (symbol, ts).

    ``symbols`` is one symbol, several, or None for all; ``start`` and ``end`` take what
    `append` takes for ``ts`` (None: unbounded).
    """
    bounds = {"start": from_micros(MIN_TS if start is None else to_micros(start)),
              "end": from_micros(MAX_TS if end is None else to_micros(end))}
    if symbols is None:
        return "all_bars_between", bounds
    wanted = [symbols] if isinstance(symbols, str) else list(symbols)
    return "bars_between", {"symbols": wanted, **bounds}


def _hint(exc: duckdb.Error) -> str:
    """DuckDB's message, with the warehouse's hint where it names what the user left out."""
    missing = _NO_ARCHIVE_VIEW.search(str(exc))
    if isinstance(exc, duckdb.CatalogException) and missing:
        return (f"`{missing.group(1)}` holds the archive's sealed sessions, and this warehouse "
                "was opened without one: open it with archive=DIR (on the command line, "
                "--archive DIR)")
    return str(exc)
