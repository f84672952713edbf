"""The network endpoint: a writer's live session served to other processes over Arrow Flight SQL.

DuckDB lets one process write a file, or many read it, never both: while a feed writes, no other
process can open the file. The writing process serves it instead (`Warehouse.serve`), speaking
Arrow Flight SQL, which ADBC (Python, Go, Java, R, C), JDBC (DBeaver, BI tools) and Polars speak
already; `warehouse.client` is the warehouse's own client.

Protocol. pyarrow.flight's `FlightServerBase`; the Flight SQL messages are protobuf classes
generated from Arrow's ``FlightSql.proto`` (`_flight_sql_pb2`). A statement runs when the client
asks for its `FlightInfo` (``GetFlightInfo``): its result is kept, under a random ticket, until
the client fetches it (``DoGet``) or the query's time runs out. Prepared statements take their
parameters by ``DoPut``. Catalogs, schemas, tables, table types and SQL info are answered from
DuckDB's catalog. The hot reads (`latest`, `last_n`, ...) are Flight actions answered from the
writer's memory, in JSON.

Security. Every call needs the bearer token (``authorization: Bearer <token>``), compared in
constant time; a random 256-bit one is made per start unless given. A non-loopback address needs
TLS (or ``insecure=True``, logged). The endpoint only reads: one statement of a reading kind
(SELECT, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN), table functions only from a short
list of harmless ones, never one that reads or lists the server's files (``read_csv``,
``read_parquet``, ``glob``, a file name as a table...) unless ``allow_files``; and each runs in
a read-only DuckDB transaction that is rolled back. Each query has a time limit (its cursor is
interrupted) and caps on its result's rows and bytes (`Limits`).

The feed comes first. A query runs on a reader cursor of its own (`warehouse._readers`) over a
consistent snapshot, holding the store's lock only to take it; its result is read (within the
caps) by a thread of its own while it is sent, so the transaction ends when DuckDB is done and
a slow or stalled client holds nothing the writer needs. At most ``max_queries`` queries run at
once, and while the writer takes bars large results go out at `Limits.feeding_rate`.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, ParamSpec, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from warehouse import _flight_sql_pb2 as pb
from warehouse._readers import INTERRUPT_EVERY, Reader, Readers
from warehouse.derive import DerivedBar, Interval
from warehouse.errors import EndpointError, WarehouseError
from warehouse.metrics import SessionMetrics
from warehouse.queries import Queries, load_statements
from warehouse.schema import Bar

__all__ = ["Certificate", "Endpoint", "Limits", "Source", "check_statement", "endpoint_file"]

log = logging.getLogger("warehouse")

#: Rows per record batch of a result (about 4 MB of bars: ADBC takes messages up to 16 MiB).
BATCH_ROWS = 65_536
#: Batches read before a query's `FlightInfo` is answered: a result of no more is whole by
#: then (and its size known), a larger one is read on by a reader thread as it is sent.
INLINE_BATCHES = 2
#: Seconds `Endpoint.stop` lets calls finish before it closes the connections of clients
#: that do not read what they asked for.
STOP_GRACE = 2.0
#: The state of a listening socket in /proc/net/tcp.
_LISTENING = "0A"
#: Prepared statements kept per endpoint; the least recently used beyond it are closed.
MAX_PREPARED = 1_000
#: A TLS certificate and its private key: PEM files, or their bytes.
Certificate = tuple[str | Path | bytes, str | Path | bytes]
#: The warehouse's own actions are named ``warehouse.<name>``: the reads answered from the
#: writer's memory, and the one that gives a named query's text.
ACTION_PREFIX = "warehouse."
HOT_ACTIONS = ("latest", "last_n", "latest_many", "metrics", "latest_derived")
QUERY_TEXT = "query_text"
_CREATE_PREPARED = "CreatePreparedStatement"
_CLOSE_PREPARED = "ClosePreparedStatement"

#: Table functions a query may call: they read nothing outside the database.
_SAFE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each",
                                   "json_tree"})
_SAFE_TABLE_PREFIXES = ("duckdb_", "pragma_")
#: Table functions that read or list files of the server (allowed with ``allow_files``).
_FILE_FUNCTIONS = frozenset({"glob", "sniff_csv", "parquet_scan", "iceberg_scan",
                             "delta_scan", "st_read"})
_FILE_PREFIXES = ("read_", "parquet_")
#: The views that show the log's unflushed bars: a query reading them needs its snapshot.
_LOG_VIEWS = frozenset({"bars", "bars_all"})
_COMMENTS = r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
_EXPLAIN = re.compile(_COMMENTS + r"EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?",
                      re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Limits:
    """What one remote query may take; each is a keyword of `Warehouse.serve`.

    Attributes
    ----------
    timeout
        Seconds a query may run, waiting for its turn included (its cursor is then
        interrupted); also how long a result waits for the client to fetch it.
    max_rows, max_bytes
        The largest result: a query whose result grows past either is stopped with an error
        that says to narrow it (the writer's memory holds a result while it is sent).
    max_queries
        Queries run at once (each on a DuckDB cursor and the writer's cores); others wait
        their turn within their timeout.
    allow_files
        Let queries call the table functions that read or list the server's files
        (``read_csv``, ``read_parquet``, ``glob``...): anyone with the token could then read
        any file the writer can.
    feeding_rate
        Bytes a second sent to all clients together while the writer takes bars (its log
        holds bars not flushed yet), in results of more than one batch; None: no pace. What
        a client pulls costs CPU on both sides (and the clients may share the writer's
        machine): paced, the feed keeps its cores. An idle writer sends at full speed.
    """

    timeout: float = 60.0
    max_rows: int = 20_000_000
    max_bytes: int = 2 << 30
    max_queries: int = 4
    allow_files: bool = False
    feeding_rate: float | None = 64e6

    def __post_init__(self) -> None:
        for name in ("timeout", "max_rows", "max_bytes", "max_queries", "feeding_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class Source:
    """What an endpoint serves, handed over by the warehouse (never the warehouse itself).

    Attributes
    ----------
    path
        The warehouse file (``":memory:"`` for none): names it in messages, and its endpoint
        file (`endpoint_file`) is written beside it.
    readers
        The store's reader cursors (`warehouse._readers`).
    queries
        The named queries, for `warehouse.client.RemoteWarehouse.query`.
    latest, last_n, latest_many, metrics, latest_derived
        The warehouse's hot reads.
    unflushed
        How many bars wait for a flush: more than none while the writer takes bars.
    """

    path: str
    readers: Readers
    queries: Queries
    unflushed: Callable[[], int]
    latest: Callable[[str], Bar | None]
    last_n: Callable[[str, int], list[Bar]]
    latest_many: Callable[[Iterable[str]], dict[str, Bar | None]]
    metrics: Callable[[str], SessionMetrics | None]
    latest_derived: Callable[[str, Interval], DerivedBar | None]
    hot: Mapping[str, Callable[..., Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hot", {name: getattr(self, name) for name in HOT_ACTIONS})


def endpoint_file(path: str | Path) -> Path:
    """Where the process serving the warehouse file ``path`` writes its uri and token."""
    return Path(f"{path}.endpoint")


# -- statements -------------------------------------------------------------------------------


class Checked(NamedTuple):
    """A statement the endpoint runs: its text, its parameters, whether it reads the log."""

    query: str
    parameters: tuple[str, ...]
    reads_log: bool


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _parse(query: str) -> tuple[list[duckdb.Statement], str | None]:
    """DuckDB's statements of ``query``, and the JSON of the first if it is a SELECT."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(config={"threads": 1})
        try:
            statements = _parser.extract_statements(query)
        except duckdb.Error as exc:
            raise EndpointError(f"the statement cannot be parsed: {exc}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            return statements, None
        row = _parser.execute("SELECT json_serialize_sql($q)", {"q": query}).fetchone()
    return statements, None if row is None else str(row[0])


@functools.lru_cache(maxsize=512)  # dashboards send the same few queries again and again
def check_statement(query: str, *, allow_files: bool = False) -> Checked:
    """Refuse anything but one statement that only reads the database.

    Parameters
    ----------
    query
        The SQL text a client sent.
    allow_files
        Let the statement call table functions that read the server's files.

    Returns
    -------
    Checked
        The statement, its ``$name``/``?`` parameters in order, and whether it reads ``bars``
        or ``bars_all`` (then it needs the log's snapshot).

    Raises
    ------
    EndpointError
        Not exactly one statement; not of a reading kind; a table function that is not
        allowed; a file read by its name.

    Examples
    --------
    >>> check_statement("SELECT count(*) FROM bars WHERE symbol = $symbol")
    Checked(query='SELECT count(*) FROM bars WHERE symbol = $symbol', parameters=('symbol',), reads_log=True)
    >>> check_statement("DELETE FROM session_bars")
    Traceback (most recent call last):
    ...
    warehouse.errors.EndpointError: the endpoint only reads: a DELETE statement is refused (one SELECT, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN statement is run)
    """  # noqa: E501
    statements, tree = _parse(query)
    if not statements:
        raise EndpointError("the query holds no statement")
    if len(statements) > 1:
        raise EndpointError(
            f"the query holds {len(statements)} statements; the endpoint runs exactly one")
    kind = statements[0].type
    if kind == duckdb.StatementType.EXPLAIN:
        found = _EXPLAIN.match(query)
        inner = query[found.end():] if found else ""
        if not inner.strip() or _EXPLAIN.match(inner):
            raise EndpointError("EXPLAIN is run over one SELECT statement")
        return check_statement(inner, allow_files=allow_files)._replace(query=query)
    if kind != duckdb.StatementType.SELECT or tree is None:
        name = "PIVOT without an IN list (name the values)" if kind.name == "MULTI" \
            else f"a {kind.name} statement"
        raise EndpointError(
            f"the endpoint only reads: {name} is refused (one SELECT, WITH, VALUES, DESCRIBE, "
            "SHOW, SUMMARIZE or EXPLAIN statement is run)")
    parsed = json.loads(tree)
    if parsed.get("error"):
        raise EndpointError(f"the statement cannot be parsed: {parsed.get('error_message')}")
    parameters: dict[str, None] = {}
    reads_log = False
    for node in _nodes(parsed["statements"]):
        ref = node.get("type")
        if ref == "TABLE_FUNCTION":
            function = node.get("function")
            called = function.get("function_name") if isinstance(function, dict) else None
            _check_table_function(str(called).lower() if called else None, allow_files)
        elif ref == "BASE_TABLE":
            table = str(node.get("table_name", ""))
            if any(mark in table for mark in "./\\*:") and not allow_files:
                raise EndpointError(
                    f"{table!r} names a file; the endpoint does not read the server's files")
            reads_log = reads_log or (
                table.lower() in _LOG_VIEWS and node.get("schema_name") in ("", "main")
                and node.get("catalog_name") in ("", "temp"))
        elif node.get("class") == "PARAMETER":
            parameters[str(node.get("identifier"))] = None
    return Checked(query, tuple(parameters), reads_log)


def _check_table_function(name: str | None, allow_files: bool) -> None:
    if name is None:
        raise EndpointError("a table function given by an expression is not run")
    if name in _SAFE_TABLE_FUNCTIONS or name.startswith(_SAFE_TABLE_PREFIXES):
        return
    if name in _FILE_FUNCTIONS or name.startswith(_FILE_PREFIXES):
        if allow_files:
            return
        raise EndpointError(
            f"{name}() reads the server's files, which the endpoint refuses (a writer may "
            "serve with allow_files=True to permit it)")
    raise EndpointError(f"the table function {name}() is not run by the endpoint")


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every object of a JSON tree, depth first."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _bind(checked: Checked, parameters: pa.Table | None) -> list[Any] | dict[str, Any] | None:
    """DuckDB's parameters for ``checked`` from the one row a client bound."""
    if not checked.parameters:
        return None
    if parameters is None or parameters.num_rows == 0:
        raise EndpointError(
            f"the statement takes parameters ({', '.join(checked.parameters)}); none were bound")
    if parameters.num_rows > 1:
        raise EndpointError(
            f"{parameters.num_rows} rows of parameters were bound; a query takes one row")
    row = parameters.slice(0, 1).to_pylist()[0]
    values = list(row.values())
    if all(name.isdigit() for name in checked.parameters):
        return values
    if set(checked.parameters) <= set(row):
        return {name: row[name] for name in checked.parameters}
    if len(values) == len(checked.parameters):
        return dict(zip(checked.parameters, values, strict=True))
    raise EndpointError(
        f"the statement takes parameters {', '.join(checked.parameters)}; bound were "
        f"{', '.join(row) or 'none'}")


# -- results ----------------------------------------------------------------------------------


class _Deadlines:
    """One thread that interrupts the readers whose query ran out of time."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Reader]] = []
        self._live: set[int] = set()
        self._count = 0
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="warehouse-endpoint-deadlines",
                                        daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def watch(self, reader: Reader, at: float) -> Iterator[None]:
        with self._wake:
            self._count += 1
            key = self._count
            heapq.heappush(self._heap, (at, key, reader))
            self._live.add(key)
            if self._heap[0][1] == key:  # the thread sleeps until a later deadline
                self._wake.notify()
        try:
            yield
        finally:
            with self._wake:  # under the lock: never interrupts the cursor's next query
                self._live.discard(key)

    def _run(self) -> None:
        with self._wake:
            while not self._stopped:
                now = time.monotonic()
                while self._heap and (self._heap[0][1] not in self._live
                                      or self._heap[0][0] <= now):
                    _, key, reader = heapq.heappop(self._heap)
                    if key in self._live:
                        reader.interrupt("timeout")
                        # Again soon, until the query ends: DuckDB forgets an interrupt that
                        # comes before its query starts.
                        heapq.heappush(self._heap, (now + INTERRUPT_EVERY, key, reader))
                self._wake.wait(self._heap[0][0] - now if self._heap else None)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join()


def _ipc_schema(schema: pa.Schema) -> bytes:
    return bytes(schema.serialize())


class _Refused(flight.FlightServerError):  # type: ignore[misc]
    """A request the endpoint does not run: the client gets the message, not a traceback."""


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _guarded(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """A Flight method whose unexpected errors reach the client as one line (logged here).

    pyarrow sends a Python exception's traceback to the client unless it is a Flight error.
    """
    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except flight.FlightError:
            raise
        except Exception as exc:
            log.exception("the endpoint failed in %s", method.__name__)
            raise flight.FlightInternalError(
                f"the endpoint failed: {type(exc).__name__}: {exc}") from None

    return guarded


def _pack(message: Message) -> bytes:
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return bytes(wrapped.SerializeToString())


_COMMANDS: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls for cls in (
        pb.CommandStatementQuery, pb.CommandPreparedStatementQuery, pb.TicketStatementQuery,
        pb.CommandGetCatalogs, pb.CommandGetDbSchemas, pb.CommandGetTables,
        pb.CommandGetTableTypes, pb.CommandGetSqlInfo, pb.CommandGetPrimaryKeys,
        pb.CommandGetExportedKeys, pb.CommandGetImportedKeys, pb.CommandGetCrossReference,
        pb.CommandGetXdbcTypeInfo, pb.CommandStatementUpdate, pb.CommandPreparedStatementUpdate,
        pb.CommandStatementIngest, pb.CommandStatementSubstraitPlan,
        pb.ActionCreatePreparedStatementRequest, pb.ActionClosePreparedStatementRequest,
        pb.ActionCreatePreparedStatementResult,
    )
}
_WRITES = (pb.CommandStatementUpdate, pb.CommandPreparedStatementUpdate,
           pb.CommandStatementIngest)


def _unpack(data: bytes) -> Message:
    """The Flight SQL message in a protobuf ``Any`` (what every Flight SQL client sends)."""
    wrapped = any_pb2.Any()
    try:
        wrapped.ParseFromString(data)
    except DecodeError:
        raise _Refused("the request is not a Flight SQL message (a protobuf Any)") \
            from None
    cls = _COMMANDS.get(wrapped.TypeName())
    if cls is None:
        raise _Refused(
            f"the endpoint does not answer {wrapped.type_url or 'an empty command'!r}")
    message = cls()
    if not wrapped.Unpack(message):
        raise _Refused(f"malformed {wrapped.TypeName()}")
    return message


#: The schemas of Flight SQL's catalog results (as Arrow's own servers give them).
_CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8(), False)])
_DB_SCHEMAS_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8()),
                                pa.field("db_schema_name", pa.utf8(), False)])
_TABLES_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8()),
                            pa.field("db_schema_name", pa.utf8()),
                            pa.field("table_name", pa.utf8(), False),
                            pa.field("table_type", pa.utf8(), False)])
_TABLES_SCHEMA_WITH_SCHEMA = _TABLES_SCHEMA.append(pa.field("table_schema", pa.binary(), False))
_TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", pa.utf8(), False)])
_KEYS_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8()),
                          pa.field("db_schema_name", pa.utf8()),
                          pa.field("table_name", pa.utf8(), False),
                          pa.field("column_name", pa.utf8(), False),
                          pa.field("key_sequence", pa.int32(), False),
                          pa.field("key_name", pa.utf8())])
_FOREIGN_KEYS_SCHEMA = pa.schema(
    [pa.field(name, pa.utf8(), nullable) for name, nullable in (
        ("pk_catalog_name", True), ("pk_db_schema_name", True), ("pk_table_name", False),
        ("pk_column_name", False), ("fk_catalog_name", True), ("fk_db_schema_name", True),
        ("fk_table_name", False), ("fk_column_name", False))]
    + [pa.field("key_sequence", pa.int32(), False), pa.field("fk_key_name", pa.utf8()),
       pa.field("pk_key_name", pa.utf8()), pa.field("update_rule", pa.uint8(), False),
       pa.field("delete_rule", pa.uint8(), False)])
_SQL_INFO_VALUE = pa.dense_union([
    pa.field("string_value", pa.utf8(), False),
    pa.field("bool_value", pa.bool_(), False),
    pa.field("bigint_value", pa.int64(), False),
    pa.field("int32_bitmask", pa.int32(), False),
    pa.field("string_list", pa.list_(pa.utf8()), False),
    pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32())), False),
])
_SQL_INFO_SCHEMA = pa.schema([pa.field("info_name", pa.uint32(), False),
                              pa.field("value", _SQL_INFO_VALUE, False)])


def _sql_info(wanted: Iterable[int], version: str) -> pa.Table:
    """Flight SQL's SqlInfo rows the endpoint knows (all of them when none is asked for)."""
    known: dict[int, str | bool | int] = {
        pb.FLIGHT_SQL_SERVER_NAME: "warehouse",
        pb.FLIGHT_SQL_SERVER_VERSION: version,
        pb.FLIGHT_SQL_SERVER_ARROW_VERSION: pa.__version__,
        pb.FLIGHT_SQL_SERVER_READ_ONLY: True,
        pb.FLIGHT_SQL_SERVER_SQL: True,
        pb.FLIGHT_SQL_SERVER_SUBSTRAIT: False,
        pb.FLIGHT_SQL_SERVER_TRANSACTION: pb.SQL_SUPPORTED_TRANSACTION_NONE,
        pb.FLIGHT_SQL_SERVER_CANCEL: False,
        pb.SQL_DDL_CATALOG: False,
        pb.SQL_DDL_SCHEMA: False,
        pb.SQL_DDL_TABLE: False,
        pb.SQL_IDENTIFIER_QUOTE_CHAR: '"',
        pb.SQL_TRANSACTIONS_SUPPORTED: False,
    }
    names = [int(n) for n in wanted if int(n) in known] or sorted(known)
    children: list[list[Any]] = [[], [], [], []]
    types: list[int] = []
    offsets: list[int] = []
    for name in names:
        value = known[name]
        kind = 0 if isinstance(value, str) else 1 if isinstance(value, bool) else 3
        types.append(kind)
        offsets.append(len(children[kind]))
        children[kind].append(value)
    arrays = [pa.array(children[0], pa.utf8()), pa.array(children[1], pa.bool_()),
              pa.array(children[2], pa.int64()), pa.array(children[3], pa.int32()),
              pa.array([], pa.list_(pa.utf8())),
              pa.array([], pa.map_(pa.int32(), pa.list_(pa.int32())))]
    # From buffers: from_dense would make the children nullable, unlike Flight SQL's schema.
    value = pa.Array.from_buffers(
        _SQL_INFO_VALUE, len(names),
        [None, pa.array(types, pa.int8()).buffers()[1],
         pa.array(offsets, pa.int32()).buffers()[1]],
        children=arrays)
    return pa.Table.from_arrays([pa.array(names, pa.uint32()), value],
                                schema=_SQL_INFO_SCHEMA)


class _Pace:
    """Shares `Limits.feeding_rate` among the streams while the writer takes bars.

    Each batch books the next slot of the shared line (its bytes at the rate) and waits for
    it; an idle writer, or no rate, books nothing. `stop` ends every wait at once.
    """

    def __init__(self, rate: float | None, unflushed: Callable[[], int]) -> None:
        self._rate = rate
        self._unflushed = unflushed
        self._lock = threading.Lock()
        self._free_at = 0.0
        self._stopped = threading.Event()

    def wait(self, size: int) -> None:
        """Wait for the turn of ``size`` bytes; raises once the endpoint stops."""
        if self._rate is None or not self._unflushed():
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._free_at)
            self._free_at = start + size / self._rate
        if self._stopped.wait(start - now):
            raise flight.FlightUnavailableError("the endpoint is stopping; run it again")

    def stop(self) -> None:
        self._stopped.set()


class _Result:
    """A query's result, read from DuckDB by one thread while another sends it to the client.

    Reading ends the query's transaction as soon as DuckDB is done, however slowly the client
    takes the rows; sending starts with the first batch, not after the last.
    """

    def __init__(self, schema: pa.Schema, limits: Limits) -> None:
        self.schema = schema
        self.created = time.monotonic()
        self._limits = limits
        self._batches: deque[pa.RecordBatch] = deque()
        self._ready = threading.Condition()
        self._error: Exception | None = None
        self.done = False
        self.rows = self.bytes = 0

    @classmethod
    def of(cls, table: pa.Table, limits: Limits) -> _Result:
        result = cls(table.schema, limits)
        for batch in table.to_batches():
            result.put(batch)
        result.finish()
        return result

    def put(self, batch: pa.RecordBatch) -> None:
        """Add a batch; raises `_Refused` once the result outgrows the caps."""
        limits = self._limits
        with self._ready:
            self.rows += batch.num_rows
            self.bytes += batch.nbytes
            if self.rows > limits.max_rows or self.bytes > limits.max_bytes:
                what = (f"{limits.max_rows:,} rows" if self.rows > limits.max_rows
                        else f"{limits.max_bytes:,} bytes")
                raise _Refused(
                    f"the result is larger than the endpoint's cap of {what}: narrow the query "
                    "(a WHERE or a LIMIT), or serve with larger max_rows / max_bytes")
            self._batches.append(batch)
            self._ready.notify_all()

    def finish(self, error: Exception | None = None) -> None:
        """Mark the result whole, or failed with ``error`` (what the client then gets)."""
        with self._ready:
            self.done = True
            self._error = error
            self._ready.notify_all()

    def flight_stream(self, pace: _Pace) -> Any:
        """The Flight stream that sends the result: from C++ alone if it is one batch."""
        with self._ready:
            if self.done and self._error is None and len(self._batches) <= 1:
                return flight.RecordBatchStream(
                    pa.Table.from_batches(list(self._batches), self.schema))
        return flight.GeneratorStream(self.schema, self._batches_as_read(pace))

    def _batches_as_read(self, pace: _Pace) -> Iterator[pa.RecordBatch]:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._batches or self.done)
                if self._batches:
                    batch = self._batches.popleft()  # sent: its memory goes with it
                elif self._error is not None:
                    raise self._error
                else:
                    return
            pace.wait(batch.nbytes)
            yield batch


class _Prepared:
    __slots__ = ("checked", "parameters")

    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.parameters: pa.Table | None = None


# -- the server -------------------------------------------------------------------------------


class _TokenCheck(flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Refuses every call without ``authorization: Bearer <token>`` (compared in constant time)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._expected = f"Bearer {token}".encode()

    def start_call(self, info: Any, headers: Mapping[str, list[str | bytes]]) -> None:
        given = headers.get("authorization")
        if not given:
            raise flight.FlightUnauthenticatedError(
                "no bearer token: send the header 'authorization: Bearer <token>' with the "
                "token the serving process gave (its endpoint file holds it)")
        value = given[0] if isinstance(given[0], bytes) else given[0].encode()
        if not hmac.compare_digest(value, self._expected):
            raise flight.FlightUnauthenticatedError("wrong bearer token")


class _Server(flight.FlightServerBase):  # type: ignore[misc]
    def __init__(self, source: Source, limits: Limits, location: str, token: str,
                 tls: list[tuple[bytes, bytes]] | None, version: str) -> None:
        super().__init__(location, tls_certificates=tls,
                         middleware={"token": _TokenCheck(token)})
        self.source = source
        self.limits = limits
        self.version = version
        self._slots = threading.BoundedSemaphore(limits.max_queries)
        self._deadlines = _Deadlines()
        self._pace = _Pace(limits.feeding_rate, source.unflushed)
        self._lock = threading.Lock()
        self._results: dict[bytes, _Result] = {}
        self._pool = ThreadPoolExecutor(limits.max_queries,
                                         thread_name_prefix="warehouse-endpoint-reader")
        self._prepared: OrderedDict[bytes, _Prepared] = OrderedDict()
        self.stopping = False
        #: The warehouse actions: the hot reads and the named queries' text.
        self._reads: dict[str, Callable[..., Any]] = {**source.hot,
                                                      QUERY_TEXT: self._query_text}

    # -- Flight methods ------------------------------------------------------------------------

    @_guarded
    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor) -> Any:
        command = self._command(descriptor)
        result = self._answer(command)
        handle = self._keep(result)
        ticket = flight.Ticket(_pack(pb.TicketStatementQuery(statement_handle=handle)))
        whole = result.done  # else its size is not known yet
        return flight.FlightInfo(result.schema, descriptor, [flight.FlightEndpoint(ticket, [])],
                                 result.rows if whole else -1, result.bytes if whole else -1)

    @_guarded
    def get_schema(self, context: Any, descriptor: flight.FlightDescriptor) -> Any:
        command = self._command(descriptor)
        if isinstance(command, pb.CommandStatementQuery):
            checked = self._check(command.query)
            return flight.SchemaResult(self._schema(checked))
        return flight.SchemaResult(self._answer(command).schema)

    @_guarded
    def do_get(self, context: Any, ticket: flight.Ticket) -> Any:
        message = _unpack(ticket.ticket)
        if not isinstance(message, pb.TicketStatementQuery):
            raise _Refused("a ticket is what GetFlightInfo returned")
        with self._lock:
            result = self._results.pop(bytes(message.statement_handle), None)
        if result is None:
            raise flight.FlightServerError(
                "unknown or expired ticket: a result is kept for the query's timeout "
                f"({self.limits.timeout:g} s) after GetFlightInfo, and fetched once")
        return result.flight_stream(self._pace)

    @_guarded
    def do_put(self, context: Any, descriptor: flight.FlightDescriptor, reader: Any,
               writer: Any) -> None:
        command = self._command(descriptor)
        if not isinstance(command, pb.CommandPreparedStatementQuery):
            raise _Refused(f"the endpoint takes no {type(command).__name__}: it only reads")
        prepared = self._prepared_statement(command.prepared_statement_handle)
        parameters = reader.read_all()
        with self._lock:
            prepared.parameters = parameters

    @_guarded
    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [
            (_CREATE_PREPARED, "Prepare a reading statement (Flight SQL)"),
            (_CLOSE_PREPARED, "Close a prepared statement (Flight SQL)"),
            (ACTION_PREFIX + QUERY_TEXT, "A named query's SQL text: [name] -> text (JSON)"),
            *((ACTION_PREFIX + name, f"The writer's {name}(...), from memory: [arguments] -> "
               "answer (JSON)") for name in HOT_ACTIONS),
        ]

    @_guarded
    def do_action(self, context: Any, action: flight.Action) -> list[flight.Result]:
        kind = action.type
        body = action.body.to_pybytes() if action.body is not None else b""
        if kind.startswith(ACTION_PREFIX):
            answer = self._warehouse_action(kind.removeprefix(ACTION_PREFIX), body)
            return [flight.Result(pa.py_buffer(answer))]
        if kind == _CREATE_PREPARED:
            request = _unpack(body)
            if not isinstance(request, pb.ActionCreatePreparedStatementRequest):
                raise _Refused("CreatePreparedStatement takes its request message")
            return [flight.Result(pa.py_buffer(self._prepare(request.query)))]
        if kind == _CLOSE_PREPARED:
            request = _unpack(body)
            if not isinstance(request, pb.ActionClosePreparedStatementRequest):
                raise _Refused("ClosePreparedStatement takes its request message")
            with self._lock:
                self._prepared.pop(bytes(request.prepared_statement_handle), None)
            return []
        raise _Refused(f"the endpoint has no action {kind!r} (it only reads)")

    # -- answers -------------------------------------------------------------------------------

    def _command(self, descriptor: flight.FlightDescriptor) -> Message:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise _Refused("the endpoint takes Flight SQL commands, not paths")
        command = _unpack(descriptor.command)
        if isinstance(command, _WRITES):
            raise _Refused(
                f"the endpoint only reads: {type(command).__name__} is refused")
        return command

    def _answer(self, command: Message) -> _Result:
        if isinstance(command, pb.CommandStatementQuery):
            return self._run(self._check(command.query), None)
        if isinstance(command, pb.CommandPreparedStatementQuery):
            prepared = self._prepared_statement(command.prepared_statement_handle)
            return self._run(prepared.checked, prepared.parameters)
        return _Result.of(self._metadata(command), self.limits)

    def _metadata(self, command: Message) -> pa.Table:
        if isinstance(command, pb.CommandGetSqlInfo):
            return _sql_info(command.info, self.version)
        if isinstance(command, pb.CommandGetTableTypes):
            return pa.table({"table_type": ["TABLE", "VIEW"]}, schema=_TABLE_TYPES_SCHEMA)
        if isinstance(command, pb.CommandGetCatalogs | pb.CommandGetDbSchemas
                      | pb.CommandGetTables):
            return self._catalog(command)
        if isinstance(command, pb.CommandGetPrimaryKeys):
            return _KEYS_SCHEMA.empty_table()  # bars have no declared keys
        if isinstance(command, pb.CommandGetExportedKeys | pb.CommandGetImportedKeys
                      | pb.CommandGetCrossReference):
            return _FOREIGN_KEYS_SCHEMA.empty_table()
        raise _Refused(f"the endpoint does not answer {type(command).__name__}")

    def _check(self, query: str) -> Checked:
        try:
            return check_statement(query, allow_files=self.limits.allow_files)
        except EndpointError as exc:
            raise _Refused(str(exc)) from None

    @contextlib.contextmanager
    def _reading(self, reads_log: bool) -> Iterator[tuple[Reader, float]]:
        """A reader cursor for one query, within its time and the endpoint's query slots."""
        deadline = time.monotonic() + self.limits.timeout
        if self.stopping:
            raise flight.FlightUnavailableError("the endpoint is stopping")
        if not self._slots.acquire(timeout=self.limits.timeout):
            raise flight.FlightTimedOutError(
                f"the query waited {self.limits.timeout:g} s for one of the "
                f"{self.limits.max_queries} queries that run at once to end")
        try:
            with self.source.readers.read(log=reads_log) as reader, \
                    self._deadlines.watch(reader, deadline):
                yield reader, deadline
        except WarehouseError as exc:
            raise flight.FlightUnavailableError(str(exc)) from None
        finally:
            self._slots.release()

    def _run(self, checked: Checked, parameters: pa.Table | None) -> _Result:
        """Start a query: a small result is read here, a larger one by a reader thread."""
        try:
            bound = _bind(checked, parameters)
        except EndpointError as exc:
            raise _Refused(str(exc)) from None
        held = contextlib.ExitStack()  # the query's slot, cursor, transaction and deadline
        reader, _ = held.enter_context(self._reading(checked.reads_log))
        try:
            try:
                relation = reader.cursor.sql(checked.query, params=bound)
                if relation is None:
                    raise _Refused("the statement returns no rows")
                stream = relation.to_arrow_reader(BATCH_ROWS)
            except duckdb.Error as exc:
                raise self._failed(exc, reader) from None
            result = _Result(stream.schema, self.limits)
            if self._read(stream, result, reader, INLINE_BATCHES):
                held.close()
                return result
            self._pool.submit(self._read_rest, stream, result, reader, held)
        except BaseException:
            held.close()
            raise
        return result

    def _read(self, stream: pa.RecordBatchReader, result: _Result, reader: Reader,
              batches: int | None) -> bool:
        """Read up to ``batches`` batches (None: all) into ``result``; True once it is whole."""
        count = 0
        while batches is None or count < batches:
            try:
                batch = stream.read_next_batch()
            except StopIteration:
                result.finish()
                return True
            except (duckdb.Error, pa.ArrowException, OSError) as exc:
                # DuckDB's errors reach pyarrow's reader as OSError or ArrowException.
                raise self._failed(exc, reader) from None
            result.put(batch)
            count += 1
        return False

    def _read_rest(self, stream: pa.RecordBatchReader, result: _Result, reader: Reader,
                   held: contextlib.ExitStack) -> None:
        """In a reader thread: the rest of a result, then the transaction and slot go."""
        with held:
            try:
                self._read(stream, result, reader, None)
            except flight.FlightError as exc:
                result.finish(exc)
            except Exception as exc:
                log.exception("the endpoint failed reading a result")
                result.finish(flight.FlightInternalError(
                    f"the endpoint failed: {type(exc).__name__}: {exc}"))
            finally:
                stream.close()

    def _failed(self, exc: Exception, reader: Reader) -> Exception:
        """The client's error for a query DuckDB stopped (interrupted) or refused."""
        interrupted = isinstance(exc, duckdb.InterruptException) or (
            not isinstance(exc, duckdb.Error) and "INTERRUPT Error" in str(exc))
        if interrupted or reader.reason is not None:
            return self._interrupted(reader)
        return _Refused(f"the query failed: {exc}")

    def _interrupted(self, reader: Reader) -> Exception:
        error: Exception
        if reader.reason == "timeout":
            error = flight.FlightTimedOutError(
                f"the query ran past the endpoint's timeout of {self.limits.timeout:g} s and "
                "was stopped; narrow it, or serve with a larger timeout")
        else:
            error = flight.FlightUnavailableError(
                f"the query was stopped: {reader.reason or 'interrupted'}; run it again")
        return error

    def _schema(self, checked: Checked) -> pa.Schema:
        """The schema of a statement's result, without reading its rows (empty if unbound)."""
        if checked.parameters:
            return pa.schema([])
        with self._reading(checked.reads_log) as (reader, _):
            try:
                relation = reader.cursor.sql(checked.query)
                if relation is None:
                    return pa.schema([])
                return relation.limit(0).to_arrow_table().schema
            except duckdb.InterruptException:
                raise self._interrupted(reader) from None
            except duckdb.Error as exc:
                raise _Refused(f"the query failed: {exc}") from None

    def _catalog(self, command: Message) -> pa.Table:
        tables = isinstance(command, pb.CommandGetTables)
        params = {
            "catalog": command.catalog if command.HasField("catalog") else None,
            "schema_pattern": (command.db_schema_filter_pattern
                               if not isinstance(command, pb.CommandGetCatalogs)
                               and command.HasField("db_schema_filter_pattern") else None),
            "table_pattern": (command.table_name_filter_pattern
                              if tables and command.HasField("table_name_filter_pattern")
                              else None),
            "types": list(command.table_types) if tables and command.table_types else None,
        } if not isinstance(command, pb.CommandGetCatalogs) else {
            "catalog": None, "schema_pattern": None, "table_pattern": None, "types": None}
        with self._reading(False) as (reader, _):
            cursor = reader.cursor
            try:
                found = cursor.sql(load_statements()["catalog_tables"],
                                   params=params).to_arrow_table()
                if isinstance(command, pb.CommandGetCatalogs):
                    names = sorted(set(found.column("catalog_name").to_pylist()))
                    return pa.table({"catalog_name": names}, schema=_CATALOGS_SCHEMA)
                if isinstance(command, pb.CommandGetDbSchemas):
                    pairs = sorted(set(zip(found.column("catalog_name").to_pylist(),
                                           found.column("db_schema_name").to_pylist(),
                                           strict=True)))
                    return pa.table({"catalog_name": [p[0] for p in pairs],
                                     "db_schema_name": [p[1] for p in pairs]},
                                    schema=_DB_SCHEMAS_SCHEMA)
                found = found.cast(_TABLES_SCHEMA)
                if not command.include_schema:
                    return found
                schemas = [_ipc_schema(self._table_schema(cursor, *row))
                           for row in zip(*(found.column(i).to_pylist() for i in range(3)),
                                          strict=True)]
                return found.append_column(_TABLES_SCHEMA_WITH_SCHEMA.field("table_schema"),
                                           pa.array(schemas, pa.binary()))
            except duckdb.InterruptException:
                raise self._interrupted(reader) from None
            except duckdb.Error as exc:
                raise _Refused(f"reading the catalog failed: {exc}") from None

    @staticmethod
    def _table_schema(cursor: duckdb.DuckDBPyConnection, *names: str) -> pa.Schema:
        name = ".".join('"' + part.replace('"', '""') + '"' for part in names)
        try:
            return cursor.sql(f"SELECT * FROM {name} LIMIT 0").to_arrow_table().schema
        except duckdb.Error:  # a view over an unreadable archive: its columns are unknown
            return pa.schema([])

    def _keep(self, result: _Result) -> bytes:
        handle = secrets.token_bytes(16)
        now = time.monotonic()
        with self._lock:
            expired = [key for key, kept in self._results.items()
                       if now - kept.created > self.limits.timeout]
            for key in expired:
                del self._results[key]
            self._results[handle] = result
        return handle

    def _prepare(self, query: str) -> bytes:
        checked = self._check(query)
        handle = secrets.token_bytes(16)
        try:
            schema = self._schema(checked)
        except pa.ArrowInvalid:
            schema = pa.schema([])  # the query fails when it runs, with its error
        with self._lock:
            self._prepared[handle] = _Prepared(checked)
            while len(self._prepared) > MAX_PREPARED:
                self._prepared.popitem(last=False)
        return _pack(pb.ActionCreatePreparedStatementResult(
            prepared_statement_handle=handle, dataset_schema=_ipc_schema(schema),
            parameter_schema=_ipc_schema(pa.schema([]))))

    def _prepared_statement(self, handle: bytes) -> _Prepared:
        with self._lock:
            prepared = self._prepared.get(bytes(handle))
            if prepared is None:
                raise _Refused(
                    "unknown prepared statement (closed, or one of more than "
                    f"{MAX_PREPARED:,} kept)")
            self._prepared.move_to_end(bytes(handle))
            return prepared

    def _warehouse_action(self, name: str, body: bytes) -> bytes:
        """A warehouse action: its body is the JSON array of the read's arguments."""
        try:
            arguments = json.loads(body or b"[]")
            if not isinstance(arguments, list):
                raise TypeError("not an array")
        except (ValueError, TypeError) as exc:
            raise _Refused(f"{ACTION_PREFIX}{name}: the body is not a JSON array of the "
                           f"arguments: {exc}") from None
        read = self._reads.get(name)
        if read is None:
            raise _Refused(f"the endpoint has no action '{ACTION_PREFIX}{name}'")
        try:
            answer = read(*arguments)
        except WarehouseError as exc:
            raise _Refused(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise _Refused(f"{ACTION_PREFIX}{name}{tuple(arguments)!r}: {exc}") from None
        return json.dumps(_plain(answer)).encode()

    def _query_text(self, name: str) -> str:
        return self.source.queries[name]

    def stop(self) -> None:
        self.stopping = True
        self._pace.stop()
        self.source.readers.stop_all("the endpoint is stopping")
        # gRPC's shutdown waits for every call; a stream to a client that stopped reading
        # never ends (pyarrow cannot cancel a call), and it would hold the process at exit too.
        shutdown = threading.Thread(target=self.shutdown, name="warehouse-endpoint-shutdown",
                                    daemon=True)
        shutdown.start()
        shutdown.join(STOP_GRACE)
        if shutdown.is_alive():
            dropped = _drop_connections(self.port)
            log.warning("the endpoint at port %d closed %d connection(s) of clients that did "
                        "not read their results within %g s", self.port, dropped, STOP_GRACE)
            shutdown.join(STOP_GRACE)
        self._pool.shutdown(wait=True)  # each was interrupted, or is done
        self._deadlines.stop()
        with self._lock:
            self._results.clear()
            self._prepared.clear()


def _drop_connections(port: int) -> int:
    """Shut down this process's TCP connections accepted on ``port``; returns how many.

    Linux only (read from ``/proc``; elsewhere none). Each socket is shut down through a
    duplicate of its descriptor, so gRPC, which owns it, sees the peer gone and ends the call,
    then closes it itself.
    """
    inodes: set[str] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == port and state != _LISTENING:
                    inodes.add(inode)
    dropped = 0
    with contextlib.suppress(OSError):
        for entry in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError, ValueError):
                target = str(entry.readlink())
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    with socket.socket(fileno=os.dup(int(entry.name))) as duplicate:
                        duplicate.shutdown(socket.SHUT_RDWR)
                    dropped += 1
    return dropped


def _plain(answer: Any) -> Any:
    """A hot read's answer as JSON: a bar (or metrics) as the list of its fields."""
    if answer is None or isinstance(answer, str | int | float):
        return answer
    if isinstance(answer, dict):
        return {key: _plain(value) for key, value in answer.items()}
    if isinstance(answer, Bar | SessionMetrics | DerivedBar):
        return list(answer)
    return [_plain(item) for item in answer]


# -- the endpoint -----------------------------------------------------------------------------


class Endpoint:
    """A running Flight SQL endpoint over one warehouse (`Warehouse.serve` makes it).

    Attributes
    ----------
    uri
        Where clients connect (``grpc://host:port``, or ``grpc+tls://`` with TLS).
    token
        The bearer token every call must carry.
    limits
        What one query may take.
    """

    def __init__(
        self,
        source: Source,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        tls: Certificate | None = None,
        insecure: bool = False,
        limits: Limits | None = None,
        version: str = "0",
    ) -> None:
        if not _is_loopback(host) and tls is None:
            if not insecure:
                raise EndpointError(
                    f"serving on {host} (not loopback) sends the token and the data in clear "
                    "text: give tls=(cert, key) (--tls-cert/--tls-key), or insecure=True "
                    "(--insecure) on a network you trust")
            log.warning("serving %s on %s WITHOUT TLS: the token and every result cross the "
                        "network in clear text", source.path, host)
        if token is not None and len(token) < 16:
            raise EndpointError("a token must have at least 16 characters")
        self.token = token if token is not None else secrets.token_urlsafe(32)
        self.limits = limits or Limits()
        certificates = None if tls is None else [(_pem(tls[0]), _pem(tls[1]))]
        scheme = "grpc+tls" if tls is not None else "grpc"
        bind = f"[{host}]" if ":" in host else host
        try:
            self._server = _Server(source, self.limits, f"{scheme}://{bind}:{port}", self.token,
                                   certificates, version)
        except (pa.ArrowException, OSError) as exc:
            raise EndpointError(f"cannot serve on {host}:{port}: {exc}") from None
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        shown = f"[{shown}]" if ":" in shown else shown
        self.uri = f"{scheme}://{shown}:{self._server.port}"
        self._source = source
        self._stopped = False
        self._file: Path | None = None
        if source.path != ":memory:":
            self._file = endpoint_file(source.path)
            _write_private(self._file, json.dumps(
                {"uri": self.uri, "token": self.token, "pid": os.getpid()}))
        log.info("serving %s at %s", source.path, self.uri)

    @property
    def running(self) -> bool:
        """Whether the endpoint answers (until `stop`)."""
        return not self._stopped

    def stats(self) -> dict[str, int]:
        """Counters: queries running, results waiting, prepared statements, cursors open."""
        server = self._server
        readers = self._source.readers
        with server._lock:
            return {"queries": readers.active, "results": len(server._results),
                    "prepared": len(server._prepared), "cursors": readers.cursors}

    def stop(self) -> None:
        """Stop answering: running queries are interrupted, then the server shuts down. Idempotent.

        The endpoint file is removed (if it still holds this endpoint's token).
        """
        if self._stopped:
            return
        self._stopped = True
        if self._file is not None:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self._file.read_text()).get("token") == self.token:
                    self._file.unlink()
        self._server.stop()
        log.info("stopped serving %s at %s", self._source.path, self.uri)

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Endpoint({self.uri!r}, {state})"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _pem(value: str | Path | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise EndpointError(f"cannot read the TLS file {value}: {exc}") from None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600), replacing it at once."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
