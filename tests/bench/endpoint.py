"""The network endpoint: remote queries and hot reads, a full-session pull, and the writer's cost.

The writer is another process (``python -m tests.bench.endpoint writer ...``), as a feed's
process is: it holds the session in a warehouse file and serves it; this process is the client.
The in-process baselines run here on the same session, in memory.

Then the cost to the feed: the writer appends the session bar by bar (the default flusher, a
file, served) with no client, and with 4 client processes pulling the whole of `bars` over and
over (``... pull URI TOKEN``); the two runs alternate which goes first.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import subprocess
import sys
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse import EndpointError, Warehouse, connect

from . import targets
from .feed import feed_lists
from .report import Report, Row, format_rate, format_time, progress

#: Round trips per latency figure (median), and the client processes pulling in the last row.
CALLS = 500
PULLERS = 4
THOUSAND_ROWS = "SELECT * FROM bars LIMIT 1000"
FULL_PULL = "SELECT * FROM bars"


class _Process:
    """A child of this module's command line, read line by line."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.endpoint", *arguments],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            cwd=Path(__file__).resolve().parent.parent.parent)

    def expect(self, word: str) -> list[str]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(word):
                return line.split()[1:]
        raise RuntimeError(f"the child ended ({self.process.wait()}) before {word}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def _median_seconds(call: Any, calls: int) -> float:
    call()
    times = []
    for _ in range(calls):
        started = perf_counter()
        call()
        times.append(perf_counter() - started)
    return statistics.median(times)


def measure_endpoint(report: Report, session: pa.Table, repeat: int, workdir: Path) -> None:
    """The endpoint's rows: SELECT 1, 1,000 rows, latest, a full pull, and the feed's cost."""
    source = workdir / "endpoint-session.parquet"
    pq.write_table(session, source)
    symbols = session.column("symbol").unique().to_pylist()
    progress(f"endpoint: writer process loading {session.num_rows:,} bars")
    writer = _Process("writer", str(source), str(workdir / "endpoint-served.duckdb"))
    local = Warehouse(":memory:", flush_interval=None)
    try:
        uri, token = writer.expect("READY")
        local.extend(session)
        local.flush()
        with connect(uri, token=token) as remote:
            _latencies(report, remote, local, symbols, repeat)
            _full_pull(report, remote, local, session.num_rows, repeat)
        writer.send("done")
        writer.process.wait()
    finally:
        local.close()
        writer.stop()
    _feed_with_pullers(report, source, workdir, session.num_rows, repeat)


def _latencies(report: Report, remote: Any, local: Warehouse, symbols: list[str],
               repeat: int) -> None:
    rows = {
        "remote SELECT 1 (endpoint)": ("SELECT 1", targets.REMOTE_SELECT_1_SECONDS),
        "remote 1,000 rows (endpoint)": (THOUSAND_ROWS, targets.REMOTE_1000_ROWS_SECONDS),
    }
    for operation, (query, target) in rows.items():
        progress(f"endpoint: {operation}, {repeat} x {CALLS} round trips")
        ours = statistics.median(_median_seconds(lambda q=query: remote.sql(q), CALLS)
                                 for _ in range(repeat))
        base = statistics.median(_median_seconds(lambda q=query: local.sql(q), CALLS)
                                 for _ in range(repeat))
        report.check(remote.sql(query).num_rows == local.sql(query).num_rows,
                     f"endpoint: {query} gives the in-process rows")
        report.add(Row(operation, f"median {format_time(ours)}", "in-process wh.sql",
                       format_time(base), ours / base, f"<= {format_time(target)} median",
                       ours <= target))
    progress(f"endpoint: latest over the wire, {repeat} x {CALLS * 4} calls")
    drawn = [random.choice(symbols) for _ in range(CALLS * 4)]

    def reads(read: Any) -> float:
        times = []
        for symbol in drawn:
            started = perf_counter()
            read(symbol)
            times.append(perf_counter() - started)
        return statistics.median(times)

    ours = statistics.median(reads(remote.latest) for _ in range(repeat))
    base = statistics.median(reads(local.latest) for _ in range(repeat))
    report.check(remote.latest(symbols[0]) == local.latest(symbols[0]),
                 "endpoint: latest over the wire is the writer's bar")
    report.add(Row("latest(symbol) over the wire", f"median {format_time(ours)}",
                   "in-process wh.latest", format_time(base), ours / base,
                   f"<= {format_time(targets.REMOTE_LATEST_SECONDS)} median",
                   ours <= targets.REMOTE_LATEST_SECONDS))


def _full_pull(report: Report, remote: Any, local: Warehouse, bars: int, repeat: int) -> None:
    ours: list[float] = []
    base: list[float] = []
    for run in range(repeat):
        progress(f"endpoint: full-session pull, run {run + 1}/{repeat}")
        started = perf_counter()
        pulled = remote.sql(FULL_PULL)
        ours.append(perf_counter() - started)
        report.check(pulled.num_rows == bars, "endpoint: the pull holds every bar")
        del pulled
        started = perf_counter()
        local.sql(FULL_PULL)
        base.append(perf_counter() - started)
    rate, base_rate = bars / statistics.median(ours), bars / statistics.median(base)
    report.add(Row("remote full-session pull (endpoint)", format_rate(rate).replace("bars", "rows"),
                   "in-process wh.sql (Arrow)", format_rate(base_rate).replace("bars", "rows"),
                   base_rate / rate, f">= {targets.REMOTE_PULL_RATE / 1e6:.0f} M rows/s",
                   rate >= targets.REMOTE_PULL_RATE))


def _feed_with_pullers(report: Report, source: Path, workdir: Path, bars: int,
                       repeat: int) -> None:
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for run in range(repeat):
        for pulling in (False, True) if run % 2 == 0 else (True, False):
            progress(f"endpoint: writer appends the session, {PULLERS if pulling else 0} "
                     f"clients pulling, run {run + 1}/{repeat}")
            runs[pulling].append(_feed(source, workdir / f"fed-{run}-{pulling}.duckdb",
                                       pulling))
    rate = {k: bars / statistics.median(s for s, _ in v) for k, v in runs.items()}
    p99 = {k: statistics.median(p for _, p in v) for k, v in runs.items()}
    slower = rate[False] / rate[True]
    report.add(Row(f"append rate, {PULLERS} remote clients pulling", format_rate(rate[True]),
                   "no client, same run", format_rate(rate[False]), slower,
                   f"<= {targets.FEED_WITH_CLIENTS:.1f}x", slower <= targets.FEED_WITH_CLIENTS))
    worse = p99[True] / p99[False]
    report.add(Row(f"flush p99, {PULLERS} remote clients pulling", format_time(p99[True]),
                   "no client, same run", format_time(p99[False]), worse,
                   f"<= {targets.FEED_WITH_CLIENTS:.1f}x", worse <= targets.FEED_WITH_CLIENTS))


def _feed(source: Path, db: Path, pulling: bool) -> tuple[float, float]:
    """One run of the writer appending the session: its seconds and its flush p99."""
    writer = _Process("feed", str(source), str(db))
    pullers: list[_Process] = []
    try:
        uri, token = writer.expect("SERVING")
        if pulling:
            pullers = [_Process("pull", uri, token) for _ in range(PULLERS)]
            for puller in pullers:
                puller.expect("PULLED")  # each has its connection and pulls from now on
        writer.send("go")
        seconds, p99 = writer.expect("DONE")
        return float(seconds), float(p99)
    finally:
        for puller in pullers:
            puller.stop()
        writer.stop()


# -- the child processes ----------------------------------------------------------------------


def _serve(source: str, db: str) -> None:
    with Warehouse(db, flush_interval=None) as wh:
        wh.extend(pq.read_table(source))
        wh.checkpoint()
        endpoint = wh.serve()
        print(f"READY {endpoint.uri} {endpoint.token}", flush=True)
        sys.stdin.readline()


def _append(source: str, db: str) -> None:
    feed = feed_lists(pq.read_table(source))
    with Warehouse(db) as wh:  # the default flusher, as a feed runs
        endpoint = wh.serve()
        print(f"SERVING {endpoint.uri} {endpoint.token}", flush=True)
        sys.stdin.readline()
        append = wh.append
        started = perf_counter()
        for s, t, o, h, lo, c, v, w, n in zip(*feed, strict=True):
            append(s, t, o, h, lo, c, v, w, n)
        wh.flush()
        seconds = perf_counter() - started
        p99 = float(np.percentile(list(wh.flush_seconds), 99))
    print(f"DONE {seconds} {p99}", flush=True)


def _pull(uri: str, token: str) -> None:
    with connect(uri, token=token) as remote:
        print(f"PULLED {remote.sql(FULL_PULL).num_rows}", flush=True)
        with contextlib.suppress(EndpointError):  # the writer is done: the run is over
            while True:  # until killed
                remote.sql(FULL_PULL)


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    {"writer": _serve, "feed": _append, "pull": _pull}[command](*arguments)
