"""The network endpoint and its client: Flight SQL over a served warehouse, in one process.

What crosses process boundaries (kills, many clients, read-your-writes from another process)
is in test_endpoint_faults.py.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from polars.testing import assert_frame_equal

import warehouse
from warehouse import EndpointError, Limits, Warehouse, connect
from warehouse import _flight_sql_pb2 as pb
from warehouse.endpoint import _pack, _unpack, check_statement, endpoint_file

PACKAGE = Path(warehouse.__file__).resolve().parent
T0 = 1_763_735_400_000_000
MINUTE = 60_000_000


def feed(wh: Warehouse, sample: pa.Table) -> None:
    """Half the sample flushed, the rest waiting in the log, and one bar replaced after a flush."""
    half = sample.num_rows // 2
    wh.extend(sample.slice(0, half))
    wh.flush()
    wh.extend(sample.slice(half))
    first = sample.slice(0, 1).to_pylist()[0]
    wh.append(first["symbol"], first["ts"], 1.0, 2.0, 0.5, 1.5, 7.0)  # replaces a flushed bar


@pytest.fixture
def served(sample_bars: pa.Table) -> Iterator[Warehouse]:
    """An in-memory warehouse with flushed, unflushed and replaced bars, served on loopback."""
    wh = Warehouse(":memory:", flush_interval=None)
    feed(wh, sample_bars)
    wh.serve()
    yield wh
    wh.close()


@pytest.fixture
def remote(served: Warehouse) -> Iterator[Any]:
    assert served.endpoint is not None
    with connect(served.endpoint.uri, token=served.endpoint.token) as client:
        yield client


def raw_client(wh: Warehouse) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
    assert wh.endpoint is not None
    options = flight.FlightCallOptions(
        timeout=10, headers=[(b"authorization", f"Bearer {wh.endpoint.token}".encode())])
    return flight.FlightClient(wh.endpoint.uri), options


def ordered(table: pa.Table) -> pa.Table:
    return table.sort_by([("symbol", "ascending"), ("ts", "ascending")])


# -- the generated protocol module -------------------------------------------------------------


def test_generated_flight_sql_module_matches_its_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    shutil.copy(PACKAGE / "_flight_sql.proto", tmp_path)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}",
                    f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
                    str(tmp_path / "_flight_sql.proto")], check=True)
    for name in ("_flight_sql_pb2.py", "_flight_sql_pb2.pyi"):
        assert (tmp_path / name).read_text() == (PACKAGE / name).read_text(), name


# -- queries -----------------------------------------------------------------------------------


def test_remote_sql_sees_what_sql_sees_unflushed_and_replaced_bars_included(
    served: Warehouse, remote: Any
) -> None:
    query = "SELECT * FROM bars"
    assert served.stats()["unflushed"] > 0
    assert ordered(remote.sql(query)).equals(ordered(served.sql(query)))
    count = "SELECT count(*) AS n, sum(volume)::BIGINT AS v FROM bars"
    assert remote.sql(count).equals(served.sql(count))


def test_remote_sql_binds_named_and_positional_parameters(served: Warehouse, remote: Any) -> None:
    named = "SELECT count(*) AS n FROM bars WHERE symbol = $symbol AND volume > $volume"
    params = {"symbol": "AAPL", "volume": 1000.0}
    assert remote.sql(named, params).equals(served.sql(named, params))
    positional = "SELECT count(*) AS n FROM bars WHERE symbol = ? AND volume > ?"
    assert remote.sql(positional, ["AAPL", 1000.0]).equals(
        served.sql(positional, ["AAPL", 1000.0]))
    frame = remote.sql_polars("SELECT $1::INT + 1 AS x", [41])
    assert frame.to_dicts() == [{"x": 42}]


def test_remote_query_and_frame_equal_the_writers(served: Warehouse, remote: Any) -> None:
    params = {"symbols": ["AAPL", "MSFT"], "start": "2025-11-21T14:30:00Z",
              "end": "2025-11-21T15:30:00Z"}
    assert remote.query("bars_between", params).equals(served.query("bars_between", params))
    # Sums of doubles may differ in their last bits from one run to the next (DuckDB adds in
    # parallel), in-process too.
    assert_frame_equal(pl.from_arrow(remote.query("session_ohlcv")),
                       pl.from_arrow(served.query("session_ohlcv")), check_exact=False)
    assert remote.frame(["AAPL"], T0, T0 + 30 * MINUTE).equals(
        served.frame(["AAPL"], T0, T0 + 30 * MINUTE))
    assert remote.frame().equals(served.frame())
    with pytest.raises(EndpointError, match="no query named 'nope'"):
        remote.query("nope")


def test_hot_reads_over_the_wire_equal_the_writers(sample_bars: pa.Table) -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.start_session(date(2025, 11, 21))
        feed(wh, sample_bars)
        endpoint = wh.serve()
        with connect(endpoint.uri, token=endpoint.token) as remote:
            assert remote.latest("AAPL") == wh.latest("AAPL")
            assert remote.latest("NOPE") is None
            assert remote.last_n("AAPL", 5) == wh.last_n("AAPL", 5)
            assert remote.latest_many(["AAPL", "NOPE"]) == wh.latest_many(["AAPL", "NOPE"])
            assert remote.metrics("AAPL") == wh.metrics("AAPL")
            assert remote.latest_derived("AAPL", "5m") == wh.latest_derived("AAPL", "5m")
            with pytest.raises(EndpointError, match="interval"):
                remote.latest_derived("AAPL", "5 parsecs")


def test_results_larger_than_the_cap_are_refused(sample_bars: pa.Table) -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        feed(wh, sample_bars)
        endpoint = wh.serve(limits=Limits(max_rows=100))
        with connect(endpoint.uri, token=endpoint.token) as remote:
            assert remote.sql("SELECT * FROM bars LIMIT 100").num_rows == 100
            with pytest.raises(EndpointError, match=r"cap of 100 rows.*LIMIT"):
                remote.sql("SELECT * FROM bars")
        endpoint.stop()
        endpoint = wh.serve(limits=Limits(max_bytes=10_000))
        with connect(endpoint.uri, token=endpoint.token) as remote, \
                pytest.raises(EndpointError, match="cap of 10,000 bytes"):
            remote.sql("SELECT * FROM bars")


def test_a_result_of_many_batches_streams_whole_and_its_cap_holds_while_it_streams() -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        endpoint = wh.serve(limits=Limits(max_rows=250_000))
        with connect(endpoint.uri, token=endpoint.token) as remote:
            # More than the batches read before FlightInfo: the rest comes from a reader thread.
            table = remote.sql("SELECT range AS n FROM range(240000)")
            assert table.num_rows == 240_000
            assert table.column("n").to_pylist() == list(range(240_000))
            with pytest.raises(EndpointError, match="cap of 250,000 rows"):
                remote.sql("SELECT range AS n FROM range(300000)")
            assert remote.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]
        assert endpoint.stats()["queries"] == 0


def test_results_are_paced_while_the_writer_takes_bars_and_not_while_it_is_idle() -> None:
    query = "SELECT range AS n FROM range(200000)"  # 1.6 MB in 4 batches
    with Warehouse(":memory:", flush_interval=None) as wh:
        endpoint = wh.serve(limits=Limits(feeding_rate=4e6))
        with connect(endpoint.uri, token=endpoint.token) as remote:
            started = time.monotonic()
            assert remote.sql(query).num_rows == 200_000
            idle = time.monotonic() - started
            wh.append("AAPL", T0, 1.0, 2.0, 0.5, 1.5, 100.0)  # a bar waits for a flush
            started = time.monotonic()
            assert remote.sql(query).num_rows == 200_000
            paced = time.monotonic() - started
    assert paced >= 0.35  # the 3 batches after the first wait their turn at 4 MB/s
    assert idle < 0.35


def test_a_query_past_its_timeout_is_interrupted_and_the_endpoint_goes_on(
    served: Warehouse, remote: Any
) -> None:
    assert served.endpoint is not None
    served.endpoint.stop()
    endpoint = served.serve(limits=Limits(timeout=0.3))
    with connect(endpoint.uri, token=endpoint.token) as slow, \
            pytest.raises(EndpointError, match=r"timeout of 0\.3 s"):
        slow.sql("SELECT count(*) FROM range(1000000000000) a")
    with connect(endpoint.uri, token=endpoint.token) as client:
        assert client.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    assert endpoint.stats()["queries"] == 0


# -- what is refused ---------------------------------------------------------------------------

REFUSED = {
    "INSERT INTO session_bars SELECT * FROM session_bars": "INSERT statement",
    "DELETE FROM session_bars": "DELETE statement",
    "UPDATE session_bars SET volume = 0": "UPDATE statement",
    "DROP TABLE session_bars": "DROP statement",
    "CREATE TABLE x AS SELECT 1": "CREATE statement",
    "COPY session_bars TO 'out.csv'": "COPY statement",
    "ATTACH 'other.duckdb'": "ATTACH statement",
    "DETACH warehouse": "DETACH statement",
    "INSTALL httpfs": "LOAD statement",
    "LOAD icu": "LOAD statement",
    "SET threads = 1": "SET statement",
    "PRAGMA version": "PRAGMA statement",
    "CHECKPOINT": "CALL statement",
    "EXPORT DATABASE 'out'": "EXPORT statement",
    "BEGIN TRANSACTION": "TRANSACTION statement",
    "SELECT 1; SELECT 2": "2 statements",
    "SELECT 1; DELETE FROM session_bars": "2 statements",
    "": "no statement",
    "EXPLAIN DELETE FROM session_bars": "DELETE statement",
    "EXPLAIN ANALYZE EXPLAIN SELECT 1": "cannot be parsed",
    "SELECT * FROM read_csv('/etc/passwd')": r"read_csv\(\) reads the server's files",
    "SELECT * FROM read_text('/etc/passwd')": r"read_text\(\) reads",
    "SELECT * FROM read_parquet('x.parquet')": r"read_parquet\(\) reads",
    "SELECT * FROM glob('/*')": r"glob\(\) reads",
    "SELECT * FROM parquet_metadata('x.parquet')": r"parquet_metadata\(\) reads",
    "SELECT * FROM '/etc/passwd.csv'": "names a file",
    "DESCRIBE 'x.parquet'": "names a file",
    "SELECT * FROM bars WHERE symbol IN (SELECT * FROM read_csv('s.csv'))": "read_csv",
    "SELECT * FROM query('DELETE FROM session_bars')": r"query\(\) is not run",
    "SELECT * FROM checkpoint()": r"checkpoint\(\) is not run",
}


@pytest.mark.parametrize(("query", "reason"), REFUSED.items())
def test_statements_that_do_more_than_read_are_refused(query: str, reason: str) -> None:
    with pytest.raises(EndpointError, match=reason):
        check_statement(query)


@pytest.mark.parametrize("query", [
    "SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT * FROM a", "VALUES (1), (2)",
    "DESCRIBE bars", "SHOW TABLES", "SUMMARIZE SELECT 1 AS x", "EXPLAIN SELECT * FROM bars",
    "EXPLAIN ANALYZE SELECT 1", "FROM bars LIMIT 1", "SELECT * FROM range(3)",
    "SELECT * FROM duckdb_tables()", "/* note */ EXPLAIN SELECT 1",
])
def test_reading_statements_pass_the_check(query: str) -> None:
    assert check_statement(query).query == query


def test_refused_statements_change_nothing_over_the_wire(
    served: Warehouse, remote: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = served.sql("SELECT count(*) AS n, sum(volume)::BIGINT AS v FROM bars")
    for query in REFUSED:
        with pytest.raises(EndpointError):
            remote.sql(query)
    assert served.sql("SELECT count(*) AS n, sum(volume)::BIGINT AS v FROM bars").equals(before)
    assert list(tmp_path.iterdir()) == []  # no COPY or EXPORT output


def test_file_functions_may_be_allowed_by_the_writer(tmp_path: Path) -> None:
    data = tmp_path / "extra.csv"
    data.write_text("a\n1\n2\n")
    assert check_statement(f"SELECT * FROM read_csv('{data}')", allow_files=True)
    with Warehouse(":memory:", flush_interval=None) as wh:
        endpoint = wh.serve(limits=Limits(allow_files=True))
        with connect(endpoint.uri, token=endpoint.token) as remote:
            assert remote.sql(f"SELECT sum(a) AS s FROM read_csv('{data}')").to_pylist() == [
                {"s": 3}]
            with pytest.raises(EndpointError, match="DELETE"):
                remote.sql("DELETE FROM session_bars")


def test_missing_or_wrong_token_is_refused(served: Warehouse) -> None:
    assert served.endpoint is not None
    uri = served.endpoint.uri
    with pytest.raises(EndpointError, match="refused the token: wrong bearer token"):
        connect(uri, token="x" * 43)
    client = flight.FlightClient(uri)
    with pytest.raises(flight.FlightUnauthenticatedError, match="no bearer token"):
        list(client.list_actions())
    descriptor = flight.FlightDescriptor.for_command(
        _pack(pb.CommandStatementQuery(query="SELECT 1")))
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.get_flight_info(descriptor)


def test_malformed_flight_sql_messages_are_refused_and_the_endpoint_goes_on(
    served: Warehouse, remote: Any
) -> None:
    client, options = raw_client(served)
    bad = [
        lambda: client.get_flight_info(flight.FlightDescriptor.for_command(b"\xff\x00junk"),
                                       options),
        lambda: client.get_flight_info(flight.FlightDescriptor.for_path("bars"), options),
        lambda: client.get_flight_info(flight.FlightDescriptor.for_command(
            _pack(pb.CommandStatementUpdate(query="DELETE FROM session_bars"))), options),
        lambda: client.get_flight_info(flight.FlightDescriptor.for_command(
            _pack(pb.ActionBeginTransactionRequest())), options),
        lambda: client.do_get(flight.Ticket(b"not a ticket"), options).read_all(),
        lambda: client.do_get(flight.Ticket(_pack(pb.TicketStatementQuery(
            statement_handle=b"0" * 16))), options).read_all(),
        lambda: list(client.do_action(flight.Action("CreatePreparedStatement", b"\x01\x02"),
                                      options)),
        lambda: list(client.do_action(flight.Action("warehouse.latest", b"{not json"), options)),
        lambda: list(client.do_action(flight.Action("warehouse.latest", b'["a", "b", 3]'),
                                      options)),
        lambda: list(client.do_action(flight.Action("BeginTransaction", b""), options)),
    ]
    for call in bad:
        with pytest.raises(flight.FlightError) as caught:
            call()
        assert "Traceback" not in str(caught.value)  # the server's code stays its own
    assert remote.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_get_schema_binds_without_running_and_prepared_queries_take_one_row(
    served: Warehouse,
) -> None:
    client, options = raw_client(served)
    descriptor = flight.FlightDescriptor.for_command(
        _pack(pb.CommandStatementQuery(query="SELECT symbol, ts FROM bars")))
    assert client.get_schema(descriptor, options).schema.names == ["symbol", "ts"]
    created = list(client.do_action(flight.Action("CreatePreparedStatement", _pack(
        pb.ActionCreatePreparedStatementRequest(query="SELECT $1::INT AS x"))), options))
    answer = _unpack(created[0].body.to_pybytes())
    assert isinstance(answer, pb.ActionCreatePreparedStatementResult)
    prepared = flight.FlightDescriptor.for_command(_pack(pb.CommandPreparedStatementQuery(
        prepared_statement_handle=answer.prepared_statement_handle)))
    two_rows = pa.table({"1": [1, 2]})
    writer, _ = client.do_put(prepared, two_rows.schema, options)
    writer.write_table(two_rows)
    writer.close()
    with pytest.raises(flight.FlightError, match="2 rows of parameters were bound"):
        client.get_flight_info(prepared, options)


# -- standard clients --------------------------------------------------------------------------


def adbc_connect(wh: Warehouse) -> Any:
    dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")
    assert wh.endpoint is not None
    return dbapi.connect(
        wh.endpoint.uri, autocommit=True,
        db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {wh.endpoint.token}"})


def test_adbc_runs_queries_with_parameters_and_polars_reads_them(served: Warehouse) -> None:
    with adbc_connect(served) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) AS n FROM bars WHERE symbol = ?", ["AAPL"])
        assert cursor.fetchall() == [(served.count("AAPL"),)]
        cursor.execute("SELECT count(*) FROM bars")
        assert cursor.fetchone() == (served.sql("SELECT count(*) AS n FROM bars")["n"][0]
                                     .as_py(),)
        query = "SELECT * FROM bars WHERE symbol = 'MSFT' ORDER BY ts"
        frame = pl.read_database(query, conn)
        assert frame.equals(served.sql_polars(query))
        with pytest.raises(Exception, match="DELETE statement is refused"):
            cursor.execute("DELETE FROM session_bars")


def test_adbc_reads_catalogs_tables_with_schemas_table_types_and_info(served: Warehouse) -> None:
    with adbc_connect(served) as conn:
        assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "warehouse"
        assert info["vendor_arrow_version"] == pa.__version__
        objects = conn.adbc_get_objects().read_all().to_pylist()
        tables = {(c["catalog_name"], s["db_schema_name"], t["table_name"], t["table_type"])
                  for c in objects for s in c["catalog_db_schemas"]
                  for t in s["db_schema_tables"]}
        assert ("temp", "main", "bars", "VIEW") in tables
        assert ("warehouse", "main", "session_bars", "TABLE") in tables
        assert not [t for t in tables if t[2].startswith("_")]
        schema = conn.adbc_get_table_schema("bars")
        assert schema.names == served.sql("SELECT * FROM bars LIMIT 0").schema.names


# -- serving -----------------------------------------------------------------------------------


def test_a_non_loopback_address_needs_tls_or_insecure(caplog: pytest.LogCaptureFixture) -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        with pytest.raises(EndpointError, match=r"clear text.*--tls-cert"):
            wh.serve("0.0.0.0")
        endpoint = wh.serve("0.0.0.0", insecure=True)
        assert "WITHOUT TLS" in caplog.text
        assert endpoint.uri.startswith("grpc://127.0.0.1:")
        with connect(endpoint.uri, token=endpoint.token) as remote:
            assert remote.sql("SELECT 2 AS two").to_pylist() == [{"two": 2}]


def test_tls_endpoint_takes_clients_that_trust_its_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("making a certificate needs openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with Warehouse(":memory:", flush_interval=None) as wh:
        endpoint = wh.serve(tls=(cert, key))
        assert endpoint.uri.startswith("grpc+tls://")
        with connect(endpoint.uri, token=endpoint.token, tls_root_certs=cert) as remote:
            assert remote.sql("SELECT 3 AS three").to_pylist() == [{"three": 3}]
        with pytest.raises(EndpointError):
            connect(endpoint.uri, token=endpoint.token, timeout=5)  # untrusted certificate


def test_the_endpoint_file_holds_uri_and_token_for_the_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "live.duckdb"
    with Warehouse(db, flush_interval=None) as wh:
        endpoint = wh.serve()
        path = endpoint_file(db)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        found = json.loads(path.read_text())
        assert (found["uri"], found["token"]) == (endpoint.uri, endpoint.token)
        with connect(db=db) as remote:
            assert remote.sql("SELECT 4 AS four").to_pylist() == [{"four": 4}]
        endpoint.stop()
        assert not path.exists()
        with pytest.raises(EndpointError, match="no process serves"):
            connect(db=db)
        wh.serve()
        assert path.exists()
    assert not path.exists()  # close() stopped it


def test_tokens_are_random_256_bits_unless_given() -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        first = wh.serve()
        assert len(first.token) >= 43
        with pytest.raises(EndpointError, match="served already"):
            wh.serve()
        first.stop()
        assert wh.serve().token != first.token
        wh.endpoint.stop()  # type: ignore[union-attr]
        assert wh.serve(token="a-token-of-my-own!").token == "a-token-of-my-own!"
        wh.endpoint.stop()  # type: ignore[union-attr]
        with pytest.raises(EndpointError, match="at least 16"):
            wh.serve(token="short")


def test_close_stops_the_endpoint_and_leaves_no_cursor(sample_bars: pa.Table) -> None:
    wh = Warehouse(":memory:", flush_interval=None)
    feed(wh, sample_bars)
    endpoint = wh.serve()
    with connect(endpoint.uri, token=endpoint.token) as remote:
        for _ in range(3):
            remote.sql("SELECT count(*) FROM bars")
        readers = wh._store._readers
        assert readers is not None
        assert readers.cursors >= 1
        wh.close()
        assert not endpoint.running
        assert readers.cursors == 0
        with pytest.raises(EndpointError, match="unavailable"):
            remote.sql("SELECT 1")


def test_a_checkpoint_interrupts_remote_queries_still_running_after_its_grace(
    tmp_path: Path, sample_bars: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("warehouse._readers.CHECKPOINT_GRACE", 0.05)
    with Warehouse(tmp_path / "w.duckdb", flush_interval=None, compact_rows=10) as wh:
        feed(wh, sample_bars)
        wh.flush()  # bars wait in the tail: the checkpoint compacts them (DDL) first
        endpoint = wh.serve()
        failures: list[Exception] = []

        def long_query() -> None:
            with connect(endpoint.uri, token=endpoint.token) as remote:
                try:
                    remote.sql("SELECT count(*) FROM range(1000000000000) a")
                except EndpointError as exc:
                    failures.append(exc)

        thread = threading.Thread(target=long_query)
        thread.start()
        while endpoint.stats()["queries"] == 0:
            time.sleep(0.001)
        wh.checkpoint()  # DuckDB would refuse it with the query's transaction open
        thread.join()
        assert len(failures) == 1
        assert "the writer had to checkpoint its file; run it again" in str(failures[0])
        with connect(endpoint.uri, token=endpoint.token) as remote:
            assert remote.sql("SELECT count(*) AS n FROM bars").equals(
                wh.sql("SELECT count(*) AS n FROM bars"))


def test_duckdb_errors_reach_the_client_as_one_line(remote: Any) -> None:
    with pytest.raises(EndpointError, match=r"the query failed: .*nope") as caught:
        remote.sql("SELECT * FROM nope")
    assert "Traceback" not in str(caught.value)
