"""The endpoint across processes: a writer and its clients apart, killed, many, stalled.

The writer is tests/endpoint_child.py (journaled, serving); clients are this process, or
children that stop reading and are killed.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from warehouse import EndpointError, Warehouse, connect
from warehouse import _flight_sql_pb2 as pb
from warehouse.cli import main
from warehouse.endpoint import _pack, endpoint_file

CHILD = Path(__file__).resolve().parent / "endpoint_child.py"
SYMBOLS = 50
T0 = 1_763_735_400_000_000
MINUTE = 60_000_000


class Child:
    """A child process whose stdout lines are read as they come (by a thread)."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), *arguments], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float = 60.0) -> list[str]:
        """The words of the next line starting with ``prefix`` (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                raise AssertionError(f"the child exited ({self.process.wait()}) before {prefix}")
            if line.startswith(prefix):
                return line.split()[1:]

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.kill()
        self.close()

    def close(self) -> None:
        """Wait for the process to end, then close its pipes."""
        self.process.wait(30)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def start_writer(db: Path, **config: Any) -> tuple[Child, str, str]:
    child = Child("writer", str(db), json.dumps(config))
    uri, token = child.expect("READY")
    return child, uri, token


class Writer:
    """The module's writer process (one start costs seconds): made again after a kill."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.child: Child | None = None
        self.starts = 0

    def get(self) -> tuple[Path, str, str, Child]:
        """A live writer serving a file of 20,000 bars (half flushed), flushing every 0.2 s."""
        if self.child is None or self.child.process.poll() is not None:
            self.starts += 1
            self.db = self.folder / f"live-{self.starts}.duckdb"
            self.child, self.uri, self.token = start_writer(self.db, bars=20_000,
                                                            flush_interval=0.2)
        return self.db, self.uri, self.token, self.child

    def close(self) -> None:
        if self.child is not None and self.child.process.poll() is None:
            self.child.send("close")
            self.child.expect("CLOSED")
            self.child.close()


@pytest.fixture(scope="module")
def writers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Writer]:
    made = Writer(tmp_path_factory.mktemp("writer"))
    yield made
    made.close()


@pytest.fixture
def writer(writers: Writer) -> tuple[Path, str, str, Child]:
    return writers.get()


def bar_key(j: int) -> tuple[str, int]:
    return f"S{j % SYMBOLS}", T0 + (j // SYMBOLS) * MINUTE


def test_a_bar_acknowledged_before_a_remote_query_starts_is_in_its_answer(writer: Any) -> None:
    _, uri, token, child = writer
    with connect(uri, token=token) as remote:
        for _ in range(30):  # the writer flushes every 0.2 s meanwhile: bars move to the table
            child.send("append 7")
            (acked,) = child.expect("ACK")
            total = int(acked)
            symbol, ts = bar_key(total - 1)
            found = remote.sql(
                "SELECT count(*) AS n, (SELECT count(*) FROM bars) AS total FROM bars "
                "WHERE symbol = $symbol AND epoch_us(ts) = $ts", {"symbol": symbol, "ts": ts})
            assert found.to_pylist() == [{"n": 1, "total": total}]
            assert remote.latest(symbol).ts == ts  # type: ignore[union-attr]


def test_fifty_clients_at_once(writer: Any) -> None:
    _, uri, token, _ = writer
    answers: list[Any] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with connect(uri, token=token) as remote:
                answers.append(remote.sql("SELECT symbol, count(*) AS n FROM bars "
                                          "GROUP BY symbol ORDER BY symbol").to_pylist())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len(answers) == 50


def test_cli_sql_and_query_ask_the_serving_writer(
    writer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db, *_ = writer
    assert main(["sql", "--db", str(db), "--format", "json",
                 "SELECT count(DISTINCT symbol) AS n FROM bars WHERE symbol = $s",
                 "--param", 's="S1"']) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 1}]
    assert main(["query", "session_ohlcv", "--db", str(db), "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == SYMBOLS + 1


def test_cli_sql_on_a_file_a_writer_holds_without_serving_says_how(
    writer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db, *_ = writer
    assert main(["sql", "--db", f"{db}.held", "SELECT 1"]) == 1
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1
    assert "open for writing in another process" in error
    assert "warehouse serve" in error


def test_writer_killed_while_clients_stream(writer: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db, uri, token, child = writer
    # 1 M rows of 16 bytes: more than sockets buffer, so the kill strikes mid-stream.
    descriptor = flight.FlightDescriptor.for_command(_pack(pb.CommandStatementQuery(
        query="SELECT b.ts, r.range FROM stored_bars b, range(50) r")))
    options = flight.FlightCallOptions(
        timeout=60, headers=[(b"authorization", f"Bearer {token}".encode())])
    streaming = threading.Barrier(3)
    outcomes: list[str] = []

    def pull() -> None:
        client = flight.FlightClient(uri)
        reader = client.do_get(client.get_flight_info(descriptor, options).endpoints[0].ticket,
                               options)
        reader.read_chunk()
        streaming.wait()  # every client is mid-stream before the kill
        try:
            while True:
                reader.read_chunk()
                time.sleep(0.05)
        except StopIteration:
            outcomes.append("finished")
        except (flight.FlightError, pa.ArrowException, OSError):
            outcomes.append("error")

    clients = [threading.Thread(target=pull) for _ in range(2)]
    for thread in clients:
        thread.start()
    child.send("feed")
    (acked,) = child.expect("ACK")
    streaming.wait()
    child.kill()
    killed = time.monotonic()
    for thread in clients:
        thread.join(30)
    assert not any(thread.is_alive() for thread in clients)
    assert time.monotonic() - killed < 20  # well within the clients' 60 s timeout
    assert outcomes == ["error"] * 2
    while (line := child.lines.get(timeout=10)) is not None:  # ACKs printed before the kill
        if line.startswith("ACK"):
            acked = line.split()[1]
    # The endpoint file the kill left behind: a one-line error at once, never a hang.
    started = time.monotonic()
    assert main(["sql", "--db", str(db), "SELECT 1"]) == 1
    error = capsys.readouterr().err
    assert time.monotonic() - started < 5
    assert len(error.splitlines()) == 1
    assert "stale endpoint file" in error
    # Reopened (the journal replays what the flushes had not stored): every acknowledged bar.
    with Warehouse(db, journal=True, flush_interval=None) as wh:
        minutes = int(acked) // SYMBOLS
        found = wh.sql("SELECT count(*) AS n FROM bars WHERE epoch_us(ts) < $end",
                       {"end": T0 + minutes * MINUTE})
        assert found["n"][0].as_py() == minutes * SYMBOLS
        assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() >= int(acked)


def descriptors_open() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def native_threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


@pytest.mark.parametrize("kills", [
    2, pytest.param(100, marks=pytest.mark.slow),
])
def test_clients_killed_mid_stream_leave_no_thread_cursor_or_descriptor(kills: int) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("counting threads and descriptors reads /proc")
    with Warehouse(":memory:", flush_interval=None) as wh:
        endpoint = wh.serve()
        command = _pack(pb.CommandStatementQuery(
            query="SELECT range AS n, 'a longer text that makes each row weigh' AS t "
                  "FROM range(1000000)")).hex()

        def kill_one() -> None:
            child = Child("client", endpoint.uri, endpoint.token, command)
            assert int(child.expect("GOT")[0]) > 0
            child.kill()

        kill_one()  # gRPC's threads and the reader cursor exist from now on
        threads, descriptors = native_threads(), descriptors_open()
        for _ in range(kills):
            kill_one()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
                native_threads() > threads + 2 or endpoint.stats()["queries"]):
            time.sleep(0.05)
        assert native_threads() <= threads + 2
        assert descriptors_open() <= descriptors + 2
        stats = endpoint.stats()
        assert stats["queries"] == 0
        assert stats["cursors"] <= 1
        with connect(endpoint.uri, token=endpoint.token) as remote:
            assert remote.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_stop_and_close_during_a_long_query_end_it_promptly() -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        for stopping in ("stop", "close"):
            endpoint = wh.serve()
            failures: list[Exception] = []

            def long_query(endpoint: Any = endpoint, failures: list[Exception] = failures) -> None:
                with connect(endpoint.uri, token=endpoint.token) as remote:
                    try:
                        remote.sql("SELECT count(*) FROM range(1000000000000) a")
                    except EndpointError as exc:
                        failures.append(exc)

            thread = threading.Thread(target=long_query)
            thread.start()
            while endpoint.stats()["queries"] == 0:
                time.sleep(0.001)
            started = time.monotonic()
            if stopping == "stop":
                endpoint.stop()
            else:
                wh.close()
            thread.join(30)
            assert time.monotonic() - started < 15  # the query alone would run for hours
            assert not endpoint.running
            assert len(failures) == 1
            assert "stopping" in str(failures[0]) or "closing" in str(failures[0])


def test_stop_does_not_wait_for_a_client_that_stopped_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("warehouse.endpoint.STOP_GRACE", 0.2)
    with Warehouse(":memory:", flush_interval=None) as wh:
        endpoint = wh.serve()
        command = _pack(pb.CommandStatementQuery(
            query="SELECT range AS n, 'a longer text that makes each row weigh' AS t "
                  "FROM range(2000000)")).hex()
        child = Child("client", endpoint.uri, endpoint.token, command)
        try:
            child.expect("GOT")
            started = time.monotonic()
            endpoint.stop()
            assert time.monotonic() - started < 10  # the client never reads again
        finally:
            child.kill()


def test_serve_command_serves_a_file_until_terminated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ingested.duckdb"
    with Warehouse(db, flush_interval=None) as wh:
        wh.append("AAPL", T0, 1.0, 2.0, 0.5, 1.5, 100.0)
    with subprocess.Popen([sys.executable, "-m", "warehouse", "serve", "--db", str(db)],
                          stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        try:
            line = server.stdout.readline()
            assert line.startswith(f"serving {db} at grpc://127.0.0.1:")
            assert main(["sql", "--db", str(db), "--format", "csv",
                         "SELECT symbol, close FROM bars"]) == 0
            assert capsys.readouterr().out.splitlines() == ["symbol,close", "AAPL,1.5"]
            with connect(db=db) as remote:
                assert remote.latest("AAPL").close == 1.5  # type: ignore[union-attr]
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0
            assert server.stdout.read().strip() == f"stopped serving {db}"
            assert not endpoint_file(db).exists()
        finally:
            if server.poll() is None:
                server.kill()


@pytest.mark.slow
def test_replay_serve_lets_the_replay_be_watched(tmp_path: Path) -> None:
    db, archive = tmp_path / "backtest.duckdb", tmp_path / "archive"
    with subprocess.Popen(
        [sys.executable, "-m", "warehouse", "replay", "--generate", "1", "--symbols", "3",
         "--speed", "600", "--db", str(db), "--archive", str(archive), "--serve", "0", "-q"],
        stderr=subprocess.PIPE, text=True,
    ) as replay:
        assert replay.stderr is not None
        try:
            line = replay.stderr.readline()
            assert line.startswith(f"serving {db} at grpc://127.0.0.1:"), line
            with connect(db=db) as remote:
                first = remote.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py()
                deadline = time.monotonic() + 30
                while remote.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == first:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            replay.send_signal(signal.SIGINT)
            assert replay.wait(30) == 130
            assert not endpoint_file(db).exists()
        finally:
            if replay.poll() is None:
                replay.kill()
