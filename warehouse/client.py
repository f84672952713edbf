"""The client of a served warehouse (`Warehouse.serve`): the same reads, from another process.

`connect` returns a `RemoteWarehouse` whose methods mirror the writer's own: `sql`,
`sql_polars`, `query` and `frame` run on the writer's endpoint over Arrow Flight SQL (what it
would answer in-process, unflushed bars included), and the hot reads `latest`, `last_n`,
`latest_many`, `metrics` and `latest_derived` are answered from the writer's memory. Code moves
between a notebook and the writer unchanged.

Any Flight SQL client works too: ADBC's (``adbc_driver_flightsql``), JDBC's, Polars through
ADBC; this one adds the warehouse's own vocabulary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import polars as pl
import pyarrow as pa
import pyarrow.flight as flight

from warehouse import _flight_sql_pb2 as pb
from warehouse.derive import DerivedBar, Interval
from warehouse.endpoint import ACTION_PREFIX, QUERY_TEXT, _pack, _unpack, endpoint_file
from warehouse.errors import EndpointError
from warehouse.metrics import SessionMetrics
from warehouse.queries import load_statements
from warehouse.schema import Bar
from warehouse.store import Params, frame_query

__all__ = ["RemoteWarehouse", "connect"]

#: pyarrow appends the transport's detail to a server's message: the message is what counts.
_DETAIL = re.compile(r"\. (?:Detail|gRPC client debug context): .*\Z", re.DOTALL)


def connect(
    uri: str | None = None,
    *,
    token: str | None = None,
    db: str | Path | None = None,
    tls_root_certs: str | Path | bytes | None = None,
    timeout: float | None = 300.0,
) -> RemoteWarehouse:
    """Connect to a warehouse another process serves (`Warehouse.serve`).

    Parameters
    ----------
    uri
        The endpoint's uri (``grpc://host:port``, ``grpc+tls://host:port``).
    token
        Its bearer token.
    db
        Instead of ``uri`` and ``token``: the warehouse file a live process serves; its
        endpoint file (``<db>.endpoint``) gives them.
    tls_root_certs
        PEM certificate(s) the server's certificate must chain to (a file or its bytes), for
        a ``grpc+tls`` endpoint with a certificate of its own making.
    timeout
        Seconds any one call may take before it fails (None: no limit).

    Returns
    -------
    RemoteWarehouse
        Connected: the endpoint answered and took the token.

    Raises
    ------
    EndpointError
        Nothing answers at ``uri`` (or the endpoint file is stale: its process is gone), the
        token is refused, or neither ``uri`` nor ``db`` was given.
    """
    if db is not None:
        if uri is not None:
            raise EndpointError("give uri= (and token=) or db=, not both")
        uri, token = read_endpoint_file(db)
    if uri is None or token is None:
        raise EndpointError("connect() needs uri= and token=, or db= (a file a process serves)")
    remote = RemoteWarehouse(uri, token=token, tls_root_certs=tls_root_certs, timeout=timeout)
    try:
        remote.ping(timeout=10.0 if timeout is None else min(timeout, 10.0))
    except EndpointError as exc:
        remote.close()
        if db is not None:
            raise EndpointError(_stale(db, uri, str(exc))) from None
        raise
    return remote


def read_endpoint_file(db: str | Path) -> tuple[str, str]:
    """The uri and token in the endpoint file of ``db`` (`Warehouse.serve` writes it).

    Raises
    ------
    EndpointError
        There is none (no process serves ``db``), it cannot be read, or the process that wrote
        it is gone (it was killed before it could remove the file).
    """
    path = endpoint_file(db)
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        uri, token, pid = str(found["uri"]), str(found["token"]), found.get("pid")
    except FileNotFoundError:
        raise EndpointError(
            f"no process serves {db}: it has no endpoint file {path} (the writer serves it with "
            "wh.serve(), or `warehouse serve --db FILE`)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EndpointError(f"cannot read the endpoint file {path}: {exc}") from None
    host = urlparse(uri).hostname or ""
    if isinstance(pid, int) and host in ("127.0.0.1", "::1", "localhost") and not _alive(pid):
        raise EndpointError(_stale(db, uri, f"its process {pid} is gone"))
    return uri, token


def _stale(db: str | Path, uri: str, why: str) -> str:
    return (f"stale endpoint file {endpoint_file(db)}: nothing serves {db} at {uri} ({why}); "
            "the serving process did not stop cleanly. Open the file again (the writer, or "
            f"`warehouse serve --db {db}`), or remove the endpoint file")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class RemoteWarehouse:
    """A served warehouse, read from another process (`connect`).

    Parameters
    ----------
    uri, token, tls_root_certs, timeout
        As for `connect` (which also checks that the endpoint answers).
    """

    def __init__(
        self,
        uri: str,
        *,
        token: str,
        tls_root_certs: str | Path | bytes | None = None,
        timeout: float | None = 300.0,
    ) -> None:
        self.uri = uri
        certificates = (tls_root_certs if isinstance(tls_root_certs, bytes | None)
                        else Path(tls_root_certs).read_bytes())
        try:
            self._client = flight.FlightClient(uri, tls_root_certs=certificates)
        except (pa.ArrowException, OSError) as exc:
            raise EndpointError(f"cannot connect to {uri}: {exc}") from None
        self._headers = [(b"authorization", f"Bearer {token}".encode())]
        self._options = flight.FlightCallOptions(timeout=timeout, headers=self._headers)
        self._texts: dict[str, str] = {}

    # -- SQL --------------------------------------------------------------------------------

    def sql(self, query: str, params: Params = None) -> pa.Table:
        """Run SQL on the served warehouse and return a pyarrow Table (`Warehouse.sql`).

        ``$name`` parameters take a mapping, ``?`` (or ``$1``) ones a sequence; they are bound
        by the server, never formatted into the text. The endpoint runs only statements that
        read.
        """
        with self._errors():
            if params is None:
                command = pb.CommandStatementQuery(query=query)
                return self._fetch(flight.FlightDescriptor.for_command(_pack(command)))
            handle = self._prepare(query)
            try:
                descriptor = flight.FlightDescriptor.for_command(_pack(
                    pb.CommandPreparedStatementQuery(prepared_statement_handle=handle)))
                batch = _parameters(params)
                writer, reader = self._client.do_put(descriptor, batch.schema, self._options)
                writer.write_table(batch)
                writer.done_writing()
                reader.read()  # the server's answer (if any), once it has the parameters
                writer.close()
                return self._fetch(descriptor)
            finally:
                self._close_prepared(handle)

    def sql_polars(self, query: str, params: Params = None) -> pl.DataFrame:
        """`sql`, returning a polars DataFrame."""
        frame = pl.from_arrow(self.sql(query, params))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def query(self, name: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run one of the served warehouse's named queries (``sql/``) with bound parameters."""
        text = self._texts.get(name)
        if text is None:
            text = self._texts[name] = str(self._action(QUERY_TEXT, name))
        return self.sql(text, params or None)

    def frame(
        self,
        symbols: Iterable[str] | None = None,
        start: object = None,
        end: object = None,
    ) -> pl.DataFrame:
        """Bars as a polars DataFrame in (symbol, ts) order, filtered as `Warehouse.frame` does.

        ``start`` is inclusive, ``end`` exclusive; both take what `append` takes for ``ts``.
        """
        name, params = frame_query(symbols, start, end)
        return self.sql_polars(load_statements()[name], params)

    # -- hot reads, from the writer's memory ------------------------------------------------

    def latest(self, symbol: str) -> Bar | None:
        """The bar with the greatest ts of a symbol (`Warehouse.latest`)."""
        fields = self._action("latest", symbol)
        return None if fields is None else Bar(*fields)

    def last_n(self, symbol: str, n: int) -> list[Bar]:
        """The last n bars of a symbol in ts order (`Warehouse.last_n`)."""
        return [Bar(*fields) for fields in self._action("last_n", symbol, n)]

    def latest_many(self, symbols: Iterable[str]) -> dict[str, Bar | None]:
        """The latest bar of each symbol (`Warehouse.latest_many`)."""
        found = self._action("latest_many", list(symbols))
        return {symbol: None if fields is None else Bar(*fields)
                for symbol, fields in found.items()}

    def metrics(self, symbol: str) -> SessionMetrics | None:
        """A symbol's session metrics (`Warehouse.metrics`)."""
        fields = self._action("metrics", symbol)
        return None if fields is None else SessionMetrics(*fields)

    def latest_derived(self, symbol: str, interval: Interval) -> DerivedBar | None:
        """The newest N-minute bar of a symbol (`Warehouse.latest_derived`)."""
        fields = self._action("latest_derived", symbol, interval)
        return None if fields is None else DerivedBar(*fields)

    # -- connection -------------------------------------------------------------------------

    def ping(self, *, timeout: float = 10.0) -> None:
        """Check that the endpoint answers and takes the token (one round trip)."""
        options = flight.FlightCallOptions(timeout=timeout, headers=self._headers)
        with self._errors():
            list(self._client.list_actions(options))

    def close(self) -> None:
        """Close the connection (the served warehouse goes on)."""
        with contextlib.suppress(pa.ArrowException, OSError):
            self._client.close()

    def __enter__(self) -> RemoteWarehouse:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteWarehouse({self.uri!r})"

    # -- internals --------------------------------------------------------------------------

    def _fetch(self, descriptor: flight.FlightDescriptor) -> pa.Table:
        info = self._client.get_flight_info(descriptor, self._options)
        tables = [self._client.do_get(point.ticket, self._options).read_all()
                  for point in info.endpoints]
        if len(tables) == 1:
            return tables[0]
        return pa.concat_tables(tables) if tables else info.schema.empty_table()

    def _prepare(self, query: str) -> bytes:
        request = pb.ActionCreatePreparedStatementRequest(query=query)
        results = list(self._client.do_action(
            flight.Action("CreatePreparedStatement", _pack(request)), self._options))
        answer = _unpack(results[0].body.to_pybytes())
        if not isinstance(answer, pb.ActionCreatePreparedStatementResult):
            raise EndpointError(f"{self.uri} answered CreatePreparedStatement with "
                                f"{type(answer).__name__}")
        return bytes(answer.prepared_statement_handle)

    def _close_prepared(self, handle: bytes) -> None:
        request = pb.ActionClosePreparedStatementRequest(prepared_statement_handle=handle)
        with contextlib.suppress(flight.FlightError, pa.ArrowException, OSError):
            list(self._client.do_action(
                flight.Action("ClosePreparedStatement", _pack(request)), self._options))

    def _action(self, name: str, *arguments: Any) -> Any:
        with self._errors():
            results = list(self._client.do_action(
                flight.Action(ACTION_PREFIX + name, json.dumps(arguments).encode()),
                self._options))
        return json.loads(results[0].body.to_pybytes())

    @contextlib.contextmanager
    def _errors(self) -> Any:
        """Flight's errors as `EndpointError`, with the server's message."""
        try:
            yield
        except flight.FlightUnauthenticatedError as exc:
            raise EndpointError(f"{self.uri} refused the token: {_message(exc)}") from None
        except flight.FlightUnavailableError as exc:
            raise EndpointError(f"{self.uri} is unavailable: {_message(exc)}") from None
        except flight.FlightTimedOutError as exc:
            raise EndpointError(f"{self.uri} timed out: {_message(exc)}") from None
        except (flight.FlightError, pa.ArrowException, OSError) as exc:
            raise EndpointError(f"{self.uri}: {_message(exc)}") from None


def _message(exc: Exception) -> str:
    return _DETAIL.sub("", str(exc)).strip()


def _parameters(params: Mapping[str, Any] | Sequence[Any]) -> pa.Table:
    """One row of parameters: columns named as ``$name`` ones, or numbered in order."""
    if isinstance(params, Mapping):
        named = dict(params)
    elif isinstance(params, str | bytes):
        raise EndpointError("params is a mapping ($name) or a sequence (?), not a string")
    else:
        named = {str(i): value for i, value in enumerate(params, start=1)}
    try:
        return pa.table({name: [value] for name, value in named.items()})
    except (pa.ArrowException, TypeError) as exc:
        raise EndpointError(f"a parameter cannot be sent: {exc}") from None
