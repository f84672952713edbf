"""The project's benchmark: each DESIGN.md performance target against a same-run baseline.

The session is made by `warehouse.sample.generate_session`.

Run it as ``python -m warehouse.bench`` (full session: 8,000 symbols x 390 minutes) or with
``--quick`` (500 symbols) for a smoke run. It prints one table to stdout: operation, our figure,
the baseline and its figure, the cost ratio (ours / baseline: below 1 means we are cheaper), the
target and whether it is met. Progress goes to stderr.

Baselines:

- ``dict.get``: a bare dict of symbol -> bar, the floor of any latest-bar lookup;
- the seed design (``shared/seed``): a ``SessionData`` with a dict of per-symbol deques of bar
  namedtuples, a cached latest bar and an ``asyncio.Lock``, called with ``await`` from one
  coroutine, the way its callers do;
- DuckDB on its own: Arrow insert into a fresh file, the same SQL on a plain table, ``COPY`` to
  Parquet; Polars ``group_by_dynamic`` for the resample; a deque of bar namedtuples for memory.

Figures are medians of ``--repeat`` runs (micro-operations: of ``5 x --repeat`` runs), after a
warm-up run. Reads draw their symbols in random order, so lookups are not cache-hot.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque, namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from warehouse.sample import generate_session, make_symbols
from warehouse.warehouse import Warehouse

perf_counter = time.perf_counter

#: The full session of DESIGN.md, and the smoke-run size of ``--quick``.
FULL_SYMBOLS = 8_000
QUICK_SYMBOLS = 500
MINUTES = 390
MANY = 500  # symbols per latest_many call
LAST_N = 20

# Targets from DESIGN.md, "Performance targets". Ratios are costs, ours / baseline.
LATEST_VS_DICT = 2.5
LATEST_VS_SEED = 1 / 10
LAST_N_SECONDS = 0.6e-6
LAST_N_VS_SEED = 1 / 1.5
LATEST_MANY_SECONDS = 40e-6
APPEND_RATE = 1.5e6
APPEND_VS_SEED = 1 / 2
EXTEND_RATE = 3e6
FLUSH_P99_SECONDS = 20e-3
READS_DURING_FLUSH = 2.0
SQL_HOUR_SECONDS = 2e-3
SQL_VS_PLAIN = 1.0
RESAMPLE_SECONDS = 0.4
EXPORT_VS_COPY = 1.5
BYTES_PER_BAR = 100.0
SESSIONS = 10  # sessions ingested, exported and cleared in one process (memory stays bounded)

_started = perf_counter()


def _progress(message: str) -> None:
    """One progress line on stderr, stamped with the time since the start."""
    print(f"[bench {perf_counter() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- the seed design, reimplemented small and faithful ----------------------------------------

SeedBar = namedtuple(
    "SeedBar", "symbol timestamp open high low close volume vwap trade_count"
)


class SeedSymbolData:
    """The seed's ``SymbolSessionData``: a deque of bars, the cached latest bar, metrics."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bars_1m: deque[SeedBar] = deque()
        self._latest_bar: SeedBar | None = None
        self.bar_count = 0
        self.session_volume = 0.0
        self.session_high: float | None = None
        self.session_low: float | None = None

    def update_from_bar(self, bar: SeedBar) -> None:
        """Append a bar and update the incremental session metrics, as the seed does."""
        self.bars_1m.append(bar)
        self._latest_bar = bar
        self.bar_count += 1
        self.session_volume += bar.volume
        if self.session_high is None or bar.high > self.session_high:
            self.session_high = bar.high
        if self.session_low is None or bar.low < self.session_low:
            self.session_low = bar.low


class SeedSessionData:
    """The seed's ``SessionData`` singleton: async methods behind one ``asyncio.Lock``."""

    def __init__(self) -> None:
        self._symbols: dict[str, SeedSymbolData] = {}
        self._lock = asyncio.Lock()

    async def add_bar(self, symbol: str, bar: SeedBar) -> None:
        """Store one bar (the seed validates nothing)."""
        async with self._lock:
            data = self._symbols.get(symbol)
            if data is None:
                data = self._symbols[symbol] = SeedSymbolData(symbol)
            data.update_from_bar(bar)

    async def get_latest_bar(self, symbol: str) -> SeedBar | None:
        """Return the cached latest bar, O(1)."""
        async with self._lock:
            data = self._symbols.get(symbol)
            return None if data is None else data._latest_bar

    async def get_last_n_bars(self, symbol: str, n: int) -> list[SeedBar]:
        """Return the last n bars in time order."""
        async with self._lock:
            data = self._symbols.get(symbol)
            if data is None:
                return []
            # The fastest deque slice we found (reverse-islice): the seed's "efficient slicing"
            # at its best, so the baseline is no straw man (list(d)[-n:] is 3x slower).
            bars = list(islice(reversed(data.bars_1m), n))
            bars.reverse()
            return bars

    async def get_latest_bars_multi(self, symbols: Sequence[str]) -> dict[str, SeedBar | None]:
        """Return the latest bar of each symbol, under one lock acquisition."""
        async with self._lock:
            found = self._symbols
            return {
                s: (d._latest_bar if (d := found.get(s)) is not None else None) for s in symbols
            }


# -- results and their table ------------------------------------------------------------------


@dataclass
class Row:
    """One line of the result table; ``ratio`` is a cost ratio, ours / baseline."""

    operation: str
    ours: str
    baseline: str
    base: str
    ratio: float | None
    target: str
    met: bool | None


def _time(seconds: float) -> str:
    """Format a duration in a unit that keeps about 3 significant digits."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _rate(per_second: float) -> str:
    return f"{per_second / 1e6:.2f} M bars/s"


def _print_table(rows: list[Row], header: str, notes: list[str]) -> None:
    titles = ("operation", "ours", "baseline (same run)", "baseline", "ours/base", "target", "met")
    cells = [
        (
            r.operation, r.ours, r.baseline, r.base,
            "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target,
            "-" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(t), *(len(c[i]) for c in cells)) for i, t in enumerate(titles)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(header)
    print(line.format(*titles))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line.format(*c))
    met = [r.met for r in rows if r.met is not None]
    print(f"targets met: {sum(met)} of {len(met)}")
    for note in notes:
        print(f"note: {note}")


# -- helpers ----------------------------------------------------------------------------------


def _median(runs: int, run: Callable[[], float], warmup: int = 1) -> float:
    """Return the median of ``runs`` calls of ``run`` (each returns seconds), after warm-up."""
    for _ in range(warmup):
        run()
    return statistics.median(run() for _ in range(runs))


class GcWatch:
    """Isolate a timed run from objects made before it, and time the collector during it.

    On entry, everything alive is collected and then frozen (``gc.freeze``), so a run does not
    pay for scanning the other side's millions of bars, only for the objects it makes itself;
    the pauses of the cyclic collector (any thread) are summed while the watch is on.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.longest = 0.0
        self.full = 0
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = perf_counter()
            return
        pause = perf_counter() - self._began
        self.seconds += pause
        self.longest = max(self.longest, pause)
        self.full += info["generation"] == 2

    def __enter__(self) -> GcWatch:
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)
        gc.unfreeze()


def _feed_lists(session: pa.Table) -> list[list[Any]]:
    """Return the session as 9 Python lists (str, int micros, floats, int), in arrival order.

    Built once, outside every timing, so an append loop measures the store and not the feed.
    """
    columns = []
    for name in session.column_names:
        column = session.column(name)
        if name == "ts":
            column = column.cast(pa.int64())
        columns.append(column.to_pylist())
    return columns


def _rss() -> int:
    """Resident set size of this process, in bytes."""
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]  # optional (dev extra)
    except ImportError:
        with Path("/proc/self/statm").open() as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


def _plain_db(path: Path) -> duckdb.DuckDBPyConnection:
    """Open a plain DuckDB file with the warehouse's table DDL and `BarStore`'s settings."""
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    # Same threshold as the store, so neither side pays an automatic checkpoint the other skips.
    con.execute("SET checkpoint_threshold = '1GB'")
    con.execute(
        "CREATE TABLE bars (symbol VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, "
        "open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL, "
        "volume DOUBLE NOT NULL, vwap DOUBLE, trade_count BIGINT)"
    )
    return con


# -- the benchmarks ---------------------------------------------------------------------------


class Bench:
    """All benchmarks over one generated session; each ``bench_*`` method adds rows.

    Parameters
    ----------
    symbols, minutes
        The session's size.
    repeat
        Runs per heavy measurement (micro-operations take five times as many).
    workdir
        Where the DuckDB files and Parquet exports go.
    """

    def __init__(self, symbols: int, minutes: int, repeat: int, workdir: Path) -> None:
        self.symbols = symbols
        self.minutes = minutes
        self.repeat = repeat
        self.micro_runs = 5 * repeat
        self.workdir = workdir
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.rng = random.Random(20251121)
        self._files = 0
        _progress(f"generating the session: {symbols} symbols x {minutes} minutes")
        self.session = generate_session(symbols, minutes)
        self.n_bars = self.session.num_rows
        self.names = make_symbols(symbols)
        self.start = datetime(2025, 11, 21, 14, 30, tzinfo=UTC)
        _progress("building the feed as Python lists (not timed)")
        self.feed = _feed_lists(self.session)
        self.wh: Warehouse | None = None
        self.seed: SeedSessionData | None = None
        self.plain: duckdb.DuckDBPyConnection | None = None

    def _path(self, stem: str) -> Path:
        self._files += 1
        return self.workdir / f"{stem}-{self._files}.duckdb"

    def _probes(self, count: int) -> list[str]:
        # Fresh str objects (not the dict keys themselves), drawn in random order, so every
        # structure pays a real hash compare and no lookup walks the symbols in insertion order.
        pool = [name.encode().decode() for name in self.names]
        return [self.rng.choice(pool) for _ in range(count)]

    def _check(self, ok: bool, what: str) -> None:
        if not ok:
            self.notes.append(f"CHECK FAILED: {what}")
            _progress(f"CHECK FAILED: {what}")

    # -- append ----------------------------------------------------------------------------

    def _append_ours(self, watch: GcWatch, *, journal: bool = False) -> tuple[float, Warehouse]:
        # Default flusher: 100k rows or 1 s, checkpoints.
        wh = Warehouse(self._path("append-journal" if journal else "append"), journal=journal)
        append = wh.append
        with watch:
            started = perf_counter()
            for s, t, o, h, lo, c, v, w, n in zip(*self.feed, strict=True):
                append(s, t, o, h, lo, c, v, w, n)
            # The final flush and checkpoint are what close() adds; they count. The warehouse
            # stays open so the read, SQL and export benchmarks run on this appended session.
            wh.checkpoint()
            return perf_counter() - started, wh

    def _append_seed(self, watch: GcWatch) -> tuple[float, SeedSessionData]:
        seed = SeedSessionData()

        async def feed() -> float:
            add = seed.add_bar
            with watch:
                started = perf_counter()
                for s, t, o, h, lo, c, v, w, n in zip(*self.feed, strict=True):
                    # The seed stores bar objects; making one from the feed's fields is its
                    # share of what our append does when it builds its Bar.
                    await add(s, SeedBar(s, t, o, h, lo, c, v, w, n))
                return perf_counter() - started

        return asyncio.run(feed()), seed

    def bench_append(self) -> None:
        """Sustained single-bar appends over the session, flushes included, vs seed add_bar."""
        ours: list[float] = []
        base: list[float] = []
        gc_ours, gc_seed = GcWatch(), GcWatch()
        for run in range(self.repeat):
            # Interleaved, so drift in the machine's speed hits both sides alike.
            _progress(f"append: warehouse, run {run + 1}/{self.repeat}")
            seconds, wh = self._append_ours(gc_ours)
            ours.append(seconds)
            if self.wh is not None:
                self.wh.close()
            self.wh = wh
            _progress(f"append: seed add_bar, run {run + 1}/{self.repeat}")
            self.seed = None  # free the previous run's 3 M bar objects first
            seconds, self.seed = self._append_seed(gc_seed)
            base.append(seconds)
        assert self.wh is not None
        self._check(self.wh.count(self.names[0]) == self.minutes, "append: bars per symbol")
        self._check(self.wh.stats()["unflushed"] == 0, "append: log empty after checkpoint")
        started = perf_counter()
        for _ in zip(*self.feed, strict=True):
            pass
        loop = perf_counter() - started
        rate = self.n_bars / statistics.median(ours)
        base_rate = self.n_bars / statistics.median(base)
        ratio = base_rate / rate
        self.rows.append(Row(
            "append 1 bar, validated", _rate(rate), "seed add_bar", _rate(base_rate), ratio,
            f">= {APPEND_RATE / 1e6:.1f} M/s, <= {APPEND_VS_SEED:.2f}x",
            rate >= APPEND_RATE and ratio <= APPEND_VS_SEED,
        ))
        _progress("append: warehouse with journal=True")
        journaled, wh = self._append_ours(GcWatch(), journal=True)
        wh.close()
        self.rows.append(Row(
            "append 1 bar, journal=True", _rate(self.n_bars / journaled), "append, no journal",
            _rate(rate), journaled / statistics.median(ours), "(info: the journal's cost)", None,
        ))
        flushes = self.wh.stats()
        per_bar = self.n_bars * self.repeat / 1e9
        self.notes.append(
            f"append: the feed loop alone (zip of 9 lists) costs {loop / self.n_bars * 1e9:.0f} "
            f"ns/bar of both sides; garbage collector: ours {gc_ours.seconds / per_bar:.0f} "
            f"ns/bar ({gc_ours.full // self.repeat} full collections, longest "
            f"{_time(gc_ours.longest)}), seed {gc_seed.seconds / per_bar:.0f} ns/bar "
            f"({gc_seed.full // self.repeat} full, longest {_time(gc_seed.longest)}); "
            f"{flushes['flushes']} background flushes, DuckDB write p99 "
            f"{flushes['flush_p99_ms']:.1f} ms"
        )

    # -- hot reads ---------------------------------------------------------------------------

    def bench_reads(self) -> None:
        """latest, last_n and latest_many vs dict.get and the seed's async getters."""
        wh, seed = self.wh, self.seed
        assert wh is not None
        assert seed is not None
        _progress("hot reads: latest, last_n, latest_many")
        probes = self._probes(200_000)
        bare = {bar.symbol: bar for bar in wh.latest_many(self.names).values() if bar}

        def dict_get() -> float:
            started = perf_counter()
            for s in probes:
                bare.get(s)
            return (perf_counter() - started) / len(probes)

        def latest() -> float:
            started = perf_counter()
            for s in probes:
                wh.latest(s)
            return (perf_counter() - started) / len(probes)

        def last_n() -> float:
            started = perf_counter()
            for s in probes[:100_000]:
                wh.last_n(s, LAST_N)
            return (perf_counter() - started) / 100_000

        batches = [self._probes(MANY) for _ in range(40)]

        def latest_many() -> float:
            started = perf_counter()
            for _ in range(25):
                for batch in batches:
                    wh.latest_many(batch)
            return (perf_counter() - started) / (25 * len(batches))

        t_dict = _median(self.micro_runs, dict_get)
        t_latest = _median(self.micro_runs, latest)
        t_last = _median(self.micro_runs, last_n)
        t_many = _median(self.micro_runs, latest_many)
        self._check(wh.last_n(self.names[1], LAST_N)[-1] == wh.latest(self.names[1]),
                    "last_n ends with latest")

        async def seed_runs() -> tuple[float, float, float, float]:
            async def latest_() -> float:
                started = perf_counter()
                for s in probes:
                    await seed.get_latest_bar(s)
                return (perf_counter() - started) / len(probes)

            async def last_n_() -> float:
                started = perf_counter()
                for s in probes[:100_000]:
                    await seed.get_last_n_bars(s, LAST_N)
                return (perf_counter() - started) / 100_000

            async def many_() -> float:
                # 500 x get_latest_bar, as a caller with a list of symbols writes it.
                started = perf_counter()
                for batch in batches:
                    for s in batch:
                        await seed.get_latest_bar(s)
                return (perf_counter() - started) / len(batches)

            async def multi_() -> float:
                started = perf_counter()
                for batch in batches:
                    await seed.get_latest_bars_multi(batch)
                return (perf_counter() - started) / len(batches)

            out = []
            for fn in (latest_, last_n_, many_, multi_):
                await fn()  # warm-up
                out.append(statistics.median([await fn() for _ in range(self.micro_runs)]))
            return out[0], out[1], out[2], out[3]

        s_latest, s_last, s_many, s_multi = asyncio.run(seed_runs())
        rows = self.rows
        r = t_latest / t_dict
        rows.append(Row("latest(symbol)", _time(t_latest), "bare dict.get", _time(t_dict), r,
                        f"<= {LATEST_VS_DICT}x (~65 ns)", r <= LATEST_VS_DICT))
        r = t_latest / s_latest
        rows.append(Row("latest(symbol)", _time(t_latest), "seed get_latest_bar",
                        _time(s_latest), r, f"<= {LATEST_VS_SEED:.2f}x (10x faster)",
                        r <= LATEST_VS_SEED))
        r = t_last / s_last
        rows.append(Row(f"last_n(symbol, {LAST_N})", _time(t_last),
                        f"seed get_last_n_bars({LAST_N})", _time(s_last), r,
                        f"<= {_time(LAST_N_SECONDS)}, <= {LAST_N_VS_SEED:.2f}x",
                        t_last <= LAST_N_SECONDS and r <= LAST_N_VS_SEED))
        rows.append(Row(f"latest_many({MANY} symbols)", _time(t_many),
                        f"{MANY} x seed get_latest_bar", _time(s_many), t_many / s_many,
                        f"<= {_time(LATEST_MANY_SECONDS)}", t_many <= LATEST_MANY_SECONDS))
        rows.append(Row(f"latest_many({MANY} symbols)", _time(t_many),
                        "seed get_latest_bars_multi", _time(s_multi), t_many / s_multi,
                        "(info)", None))

    # -- flush of one minute, and reads during it ----------------------------------------------

    def bench_flush(self) -> None:
        """Append minute by minute with an explicit flush after each; a thread reads meanwhile.

        The flush target is judged on the minutes without a reader. On every k-th minute (about
        40 of them) a reader thread runs through a quiet window (no writer: the main thread
        sleeps) and then the flush; its samples are sorted into the two by their start time, so
        both read latencies come from the same run, warehouse and data.
        """
        _progress(f"flush: {self.minutes} minutes of {self.symbols} bars, a reader thread")
        # No background flusher: only the explicit flush after each minute writes.
        wh = Warehouse(self._path("flush"), flush_rows=self.n_bars + 1, flush_interval=None)
        every = max(1, self.minutes // 40)
        per_sample = 16
        chunks = [tuple(self._probes(per_sample)) for _ in range(4096)]
        starts, lengths = array.array("q"), array.array("q")
        active, stop = threading.Event(), threading.Event()

        def reader() -> None:
            latest, clock, i = wh.latest, time.perf_counter_ns, 0
            put_start, put_length = starts.append, lengths.append
            while not stop.is_set():
                if not active.is_set():
                    # Idle outside its windows, so it takes no GIL from appends and flushes.
                    active.wait(0.05)
                    continue
                chunk = chunks[i & 4095]
                i += 1
                began = clock()
                for s in chunk:
                    latest(s)
                put_start(began)
                put_length(clock() - began)

        thread = threading.Thread(target=reader, name="bench-reader", daemon=True)
        thread.start()
        rows = zip(*self.feed, strict=True)
        append = wh.append
        alone: list[float] = []
        with_reader: list[float] = []
        quiet_windows: list[tuple[int, int]] = []
        flush_windows: list[tuple[int, int]] = []
        try:
            with GcWatch() as watch:
                for minute in range(self.minutes):
                    for s, t, o, h, lo, c, v, w, n in islice(rows, self.symbols):
                        append(s, t, o, h, lo, c, v, w, n)
                    reading = minute % every == every - 1
                    if reading:
                        active.set()
                        began = time.perf_counter_ns()
                        # Long enough that the reader's first, cache-cold samples after
                        # the appends do not dominate the quiet figure.
                        time.sleep(0.02)
                        quiet_windows.append((began, time.perf_counter_ns()))
                    began = time.perf_counter_ns()
                    wh.flush()
                    ended = time.perf_counter_ns()
                    if reading:
                        active.clear()
                        flush_windows.append((began, ended))
                    (with_reader if reading else alone).append((ended - began) / 1e9)
        finally:
            stop.set()
            active.set()
            thread.join()
        store_only = sorted(wh.flush_seconds)
        self._check(wh.stats()["bars"] == self.n_bars, "flush: every bar held")
        wh.close()
        for label, seconds in (("", alone), (", reader busy", with_reader)):
            if not seconds:
                continue
            p50, p99 = np.percentile(seconds, [50, 99])
            self.rows.append(Row(
                f"flush 1 minute{label}", f"p99 {_time(p99)} (p50 {_time(p50)})", "-", "-",
                None, f"p99 <= {_time(FLUSH_P99_SECONDS)}" if not label else "(info)",
                p99 <= FLUSH_P99_SECONDS if not label else None,
            ))

        start_ns = np.frombuffer(starts, dtype=np.int64)
        read_ns = np.frombuffer(lengths, dtype=np.int64) / per_sample

        def inside(windows: list[tuple[int, int]]) -> np.ndarray:
            if not windows or not len(start_ns):
                return np.empty(0)
            bounds = np.array(windows, dtype=np.int64)
            at = np.searchsorted(bounds[:, 0], start_ns, side="right") - 1
            ok = at >= 0
            ok[ok] = start_ns[ok] < bounds[at[ok], 1]
            return read_ns[ok]

        quiet, during = inside(quiet_windows), inside(flush_windows)
        if not len(quiet) or not len(during):
            self._check(False, "flush: the reader thread took no samples")
            return
        for label, stat in (("mean", np.mean), ("p99", lambda a: np.percentile(a, 99))):
            ours, base = float(stat(during)) / 1e9, float(stat(quiet)) / 1e9
            r = ours / base
            self.rows.append(Row(
                f"latest() during flush, {label}", _time(ours), "same reads, no flush",
                _time(base), r, f"<= {READS_DURING_FLUSH:.0f}x", r <= READS_DURING_FLUSH,
            ))
        self.notes.append(
            f"flush: {len(with_reader)} flushes with a reader, {len(during)} samples of "
            f"{per_sample} reads during them, slowest "
            f"{_time(float(during.max()) * per_sample / 1e9)} (quiet: {len(quiet)}, slowest "
            f"{_time(float(quiet.max()) * per_sample / 1e9)}); "
            f"DuckDB write alone p50 {_time(store_only[len(store_only) // 2])}; longest GC pause "
            f"{_time(watch.longest)}; explicit flushes never checkpoint"
        )

    # -- extend ------------------------------------------------------------------------------

    def bench_extend(self) -> None:
        """Extend by the whole session as one Arrow table, to a file, flushed; vs DuckDB."""
        ours: list[float] = []
        base: list[float] = []
        for run in range(self.repeat):
            _progress(f"extend: warehouse and DuckDB insert, run {run + 1}/{self.repeat}")
            wh = Warehouse(self._path("extend"))
            gc.collect()
            started = perf_counter()
            wh.extend(self.session)
            wh.flush()
            ours.append(perf_counter() - started)
            self._check(wh.stats()["bars"] == self.n_bars, "extend: every bar held")
            wh.close()
            if self.plain is not None:
                self.plain.close()
            con = _plain_db(self._path("plain"))
            con.register("arrow_table", self.session)
            gc.collect()
            started = perf_counter()
            con.execute("INSERT INTO bars SELECT * FROM arrow_table")
            base.append(perf_counter() - started)
            con.unregister("arrow_table")
            self.plain = con
        # The last plain file is the SQL and export baseline: settle it like the warehouse.
        assert self.plain is not None
        self.plain.execute("CHECKPOINT")
        rate = self.n_bars / statistics.median(ours)
        base_rate = self.n_bars / statistics.median(base)
        self.rows.append(Row(
            "extend session + flush, file", _rate(rate), "DuckDB INSERT from Arrow",
            _rate(base_rate), base_rate / rate, f">= {EXTEND_RATE / 1e6:.0f} M/s",
            rate >= EXTEND_RATE,
        ))

    # -- SQL ---------------------------------------------------------------------------------

    def bench_sql(self) -> None:
        """One symbol, one hour, over `bars`, vs the same query on a plain DuckDB table."""
        wh, plain = self.wh, self.plain
        assert wh is not None
        assert plain is not None
        _progress("SQL: one symbol, one hour")
        query = wh.queries["symbol_bars_between"]
        hours = max(1, self.minutes - 60)
        params = [
            {"symbol": s, "start": (b := self.start + timedelta(minutes=self.rng.randrange(hours))),
             "end": b + timedelta(hours=1)}
            for s in self._probes(200)
        ]
        self._check(wh.sql(query, params[0]).num_rows == min(60, self.minutes),
                    "SQL: one hour holds 60 bars")
        self._check(plain.sql(query, params=params[0]).to_arrow_table().num_rows
                    == min(60, self.minutes), "SQL: plain one hour holds 60 bars")

        def ours() -> float:
            started = perf_counter()
            for p in params:
                wh.sql(query, p)
            return (perf_counter() - started) / len(params)

        def base() -> float:
            started = perf_counter()
            for p in params:
                plain.sql(query, params=p).to_arrow_table()
            return (perf_counter() - started) / len(params)

        t_ours, t_base = _median(self.repeat, ours), _median(self.repeat, base)
        r = t_ours / t_base
        self.rows.append(Row(
            "SQL 1 symbol 1 hour (bars)", _time(t_ours), "same SQL, plain DuckDB table",
            _time(t_base), r, f"<= {_time(SQL_HOUR_SECONDS)}, <= {SQL_VS_PLAIN:.0f}x",
            t_ours <= SQL_HOUR_SECONDS and r <= SQL_VS_PLAIN,
        ))

    def bench_resample(self) -> None:
        """Run the named 5-minute resample of the session vs Polars group_by_dynamic."""
        wh = self.wh
        assert wh is not None
        _progress("SQL: 5-minute resample vs Polars")
        query = wh.queries["resample_bars"]
        # Sorted by (symbol, ts) outside the timing, as wh.frame() hands it over: Polars
        # resamples it 2x faster than the arrival order, so the baseline is at its best.
        frame = pl.from_arrow(self.session)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort("symbol", "ts")
        typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3

        def polars_resample() -> pl.DataFrame:
            # The same buckets and columns as resample_bars.sql, in the same order.
            return (
                frame.group_by_dynamic("ts", every="5m", group_by="symbol")
                .agg(
                    pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
                    pl.col("close").last(), pl.col("volume").sum(),
                    ((pl.col("vwap").fill_null(typical) * pl.col("volume")).sum()
                     / pl.col("volume").sum()).alias("vwap"),
                    pl.col("trade_count").sum(),
                )
                .sort("symbol", "ts")
            )

        expected = -(-self.minutes // 5) * self.symbols
        self._check(wh.sql(query, {"minutes": 5}).num_rows == expected, "resample: row count")
        self._check(polars_resample().height == expected, "resample: polars row count")

        def ours() -> float:
            started = perf_counter()
            wh.sql(query, {"minutes": 5})
            return perf_counter() - started

        def base() -> float:
            started = perf_counter()
            polars_resample()
            return perf_counter() - started

        t_ours, t_base = _median(self.repeat, ours), _median(self.repeat, base)
        self.rows.append(Row(
            "SQL 5-minute resample, session", _time(t_ours), "Polars group_by_dynamic",
            _time(t_base), t_ours / t_base, f"<= {_time(RESAMPLE_SECONDS)}",
            t_ours <= RESAMPLE_SECONDS,
        ))

    # -- Parquet -----------------------------------------------------------------------------

    def bench_export(self) -> None:
        """wh.export_parquet vs DuckDB's own COPY of the same rows, sorted, zstd."""
        wh, plain = self.wh, self.plain
        assert wh is not None
        assert plain is not None
        _progress("Parquet export vs DuckDB COPY")
        runs = iter(range(1_000_000))

        def ours() -> float:
            target = self.workdir / f"export-{next(runs)}"
            started = perf_counter()
            result = wh.export_parquet(target)
            elapsed = perf_counter() - started
            self._check(result.rows == self.n_bars, "export: every bar written")
            return elapsed

        def base() -> float:
            target = self.workdir / f"copy-{next(runs)}.parquet"
            started = perf_counter()
            plain.execute(
                f"COPY (SELECT * FROM bars ORDER BY symbol, ts) TO '{target}' "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            return perf_counter() - started

        t_ours, t_base = _median(self.repeat, ours), _median(self.repeat, base)
        r = t_ours / t_base
        self.rows.append(Row(
            "Parquet export, session", _time(t_ours), "DuckDB COPY ... ORDER BY, zstd",
            _time(t_base), r, f"<= {EXPORT_VS_COPY}x", r <= EXPORT_VS_COPY,
        ))

    # -- memory ------------------------------------------------------------------------------

    def bench_memory(self) -> None:
        """Resident bytes per bar, each side measured in a fresh interpreter."""
        figures = {}
        for kind in ("warehouse", "seed"):
            _progress(f"memory: {kind}, in a fresh subprocess")
            figures[kind] = _run_memory_probe(kind, self.symbols, self.minutes)
        ours, base = figures["warehouse"], figures["seed"]
        if ours is None or base is None:
            self._check(False, "memory: a probe subprocess failed")
            return
        self.rows.append(Row(
            "resident memory per bar", f"{ours:.0f} B", "seed deque of namedtuples",
            f"{base:.0f} B", ours / base, f"<= {BYTES_PER_BAR:.0f} B", ours <= BYTES_PER_BAR,
        ))
        _progress(f"memory: {SESSIONS} sessions (extend, export, clear), in a fresh subprocess")
        sessions = _run_memory_probe("sessions", self.symbols, self.minutes, raw=True)
        if sessions is None:
            self._check(False, "memory: the sessions probe failed")
            return
        first, worst = sessions["first"], sessions["worst"]
        self.rows.append(Row(
            f"peak RSS, worst of sessions 2-{SESSIONS}", f"{worst / 2**20:.0f} MiB",
            "peak RSS of session 1", f"{first / 2**20:.0f} MiB", worst / first,
            "<= 1.10x (bounded)", worst <= 1.10 * first,
        ))
        self.notes.append(
            "memory: peak RSS after each session, MiB: "
            + ", ".join(f"{peak / 2**20:.0f}" for peak in sessions["peaks"])
        )

    def close(self) -> None:
        """Close what is still open."""
        if self.wh is not None:
            self.wh.close()
        if self.plain is not None:
            self.plain.close()


# -- memory probes (each runs in its own interpreter) ------------------------------------------


def _run_memory_probe(
    kind: str, symbols: int, minutes: int, *, raw: bool = False
) -> Any:
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "warehouse.bench", "--memory-probe", kind,
               "--symbols", str(symbols), "--minutes", str(minutes)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures if raw else float(figures["bytes_per_bar"])


def _memory_probe(kind: str, symbols: int, minutes: int) -> dict[str, float]:
    """Load a session into one structure and report the growth of RSS per bar.

    The session is generated and both code paths warmed on a tiny session before the first
    reading, so the delta holds the stored bars and the structure's own overhead only.
    """
    session = generate_session(symbols, minutes)
    if kind == "sessions":
        return _sessions_probe(session)
    with tempfile.TemporaryDirectory(prefix="warehouse-mem-") as tmp:
        small = generate_session(10, 5)
        with Warehouse(Path(tmp) / "warm.duckdb") as warm:
            warm.extend(small)
        asyncio.run(_fill_seed(SeedSessionData(), small, 10))
        gc.collect()
        before = _rss()
        if kind == "warehouse":
            # Minute by minute, as a live feed delivers it; the default flusher runs.
            wh = Warehouse(Path(tmp) / "memory.duckdb")
            held: object = wh
            for minute in range(minutes):
                wh.extend(session.slice(minute * symbols, symbols))
            wh.checkpoint()
        else:
            seed = SeedSessionData()
            held = seed
            asyncio.run(_fill_seed(seed, session, symbols))
        gc.collect()
        after = _rss()
        figure = {"bytes_per_bar": (after - before) / session.num_rows, "rss_delta": after - before}
        if isinstance(held, Warehouse):
            held.close()
    return figure


def _sessions_probe(session: pa.Table) -> dict[str, Any]:
    """Peak RSS of each session, for sessions ingested, exported and cleared in one process.

    The first session's peak is its working set; later peaks must not rise above it. The peak
    (Linux ``VmHWM``) is reset before each session, so the session's generation does not count.
    """
    peaks: list[int] = []
    with tempfile.TemporaryDirectory(prefix="warehouse-sessions-") as tmp, Warehouse(
        Path(tmp) / "sessions.duckdb"
    ) as wh:
        for day in range(SESSIONS):
            gc.collect()
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            wh.extend(session)
            wh.export_parquet(Path(tmp) / "archive" / str(day))
            wh.clear()
            peaks.append(_peak_rss())
    return {"first": peaks[0], "worst": max(peaks[1:]), "peaks": peaks}


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


async def _fill_seed(seed: SeedSessionData, session: pa.Table, per_minute: int) -> None:
    add = seed.add_bar
    for offset in range(0, session.num_rows, per_minute):
        # One minute at a time, so the temporary Python lists stay small.
        for row in zip(*_feed_lists(session.slice(offset, per_minute)), strict=True):
            await add(row[0], SeedBar(*row))


# -- entry point ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warehouse bench",
        description="Benchmark the warehouse against same-run baselines (DESIGN.md targets).",
    )
    parser.add_argument("--symbols", type=int, default=None,
                        help=f"symbols in the session (default {FULL_SYMBOLS}, "
                             f"{QUICK_SYMBOLS} with --quick)")
    parser.add_argument("--minutes", type=int, default=MINUTES,
                        help=f"one-minute bars per symbol (default {MINUTES})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a fast smoke run: {QUICK_SYMBOLS} symbols, 1 repeat")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per heavy measurement, median taken (default 3, 1 with --quick)")
    parser.add_argument("--memory-probe", choices=("warehouse", "seed", "sessions"),
                        help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the result table.

    Parameters
    ----------
    argv
        Command-line arguments (without the program name); ``sys.argv[1:]`` if None.

    Returns
    -------
    int
        0 once the table is printed (a missed target is a result, not an error); 2 for bad
        arguments.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    symbols = args.symbols or (QUICK_SYMBOLS if args.quick else FULL_SYMBOLS)
    repeat = args.repeat or (1 if args.quick else 3)
    if symbols < 1 or args.minutes < 1 or repeat < 1:
        parser.error("--symbols, --minutes and --repeat must be positive")
    if args.memory_probe:
        print(json.dumps(_memory_probe(args.memory_probe, symbols, args.minutes)))
        return 0
    header = (
        f"warehouse bench: {symbols} symbols x {args.minutes} minutes = "
        f"{symbols * args.minutes:,} bars; repeat {repeat}; Python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}, pyarrow {pa.__version__}, polars {pl.__version__}, "
        f"{os.cpu_count()} CPUs\n"
        "ours/base is a cost ratio: below 1 means the warehouse is cheaper than the baseline."
    )
    with tempfile.TemporaryDirectory(prefix="warehouse-bench-") as tmp:
        bench = Bench(symbols, args.minutes, repeat, Path(tmp))
        try:
            bench.bench_append()
            bench.bench_reads()
            bench.seed = None  # 3 M bar objects: free them before the next benchmarks
            bench.bench_flush()
            bench.feed = []
            gc.collect()
            bench.bench_extend()
            bench.bench_sql()
            bench.bench_resample()
            bench.bench_export()
            bench.bench_memory()
        finally:
            bench.close()
    _progress("done")
    bench.notes.append(
        "each append run starts from a collected, frozen heap (gc.freeze), so neither side pays "
        "for scanning the other's bars; the collector stays on for the bars a run makes"
    )
    _print_table(bench.rows, header, bench.notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
