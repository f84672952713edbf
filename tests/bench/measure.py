"""The timed measurements: append, hot reads, flush, extend, SQL, resample and export.

Each ``measure_*`` method of `Session` times the warehouse and its baseline on the same
generated session, in the same run, and adds rows to the `Report`. Figures are medians of
``repeat`` runs (micro-operations: of ``5 x repeat`` runs), after a warm-up run. Reads draw
their symbols in random order, so lookups are not cache-hot.
"""

from __future__ import annotations

import array
import asyncio
import gc
import random
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from warehouse.sample import generate_session, make_symbols
from warehouse.store import TABLE, BarStore
from warehouse.warehouse import Warehouse

from . import targets
from .feed import append_in_turn, feed_lists
from .gcwatch import Collection, GcWatch
from .report import Report, Row, format_rate, format_time, progress
from .seed import SeedBar, SeedSessionData

perf_counter = time.perf_counter

MANY = 500  # symbols per latest_many call
LAST_N = 20


def _median(runs: int, run: Callable[[], float], warmup: int = 1) -> float:
    """Return the median of ``runs`` calls of ``run`` (each returns seconds), after warm-up."""
    for _ in range(warmup):
        run()
    return statistics.median(run() for _ in range(runs))


def _pause(collection: Collection | None) -> str:
    """Format the longest pause of a run: its length and generation."""
    if collection is None:
        return "none"
    return f"{format_time(collection.seconds)} (gen {collection.generation})"


def _longest(watches: list[GcWatch]) -> Collection | None:
    """The longest collection over several runs."""
    found = [c for w in watches if (c := w.longest) is not None]
    return max(found, key=lambda c: c.seconds, default=None)


def plain_store(path: Path) -> BarStore:
    """Open DuckDB on its own: a `BarStore` file, with the warehouse's settings and table DDL.

    The baselines write `session_bars` (the table the warehouse flushes to) directly, in
    arrival order; its `bars` view is then the table alone, so the same SQL runs on both sides.
    Taking the store's own settings means neither side pays an automatic checkpoint the other
    skips.
    """
    return BarStore(path)


class Session:
    """One generated session and the measurements over it.

    Parameters
    ----------
    symbols, minutes
        The session's size.
    repeat
        Runs per heavy measurement (micro-operations take five times as many).
    workdir
        Where the DuckDB files and Parquet exports go.
    report
        Where the rows and notes go.
    """

    def __init__(
        self, symbols: int, minutes: int, repeat: int, workdir: Path, report: Report
    ) -> None:
        self.symbols = symbols
        self.minutes = minutes
        self.repeat = repeat
        self.micro_runs = 5 * repeat
        self.workdir = workdir
        self.report = report
        self.rng = random.Random(20251121)
        self._files = 0
        progress(f"generating the session: {symbols} symbols x {minutes} minutes")
        self.session = generate_session(symbols, minutes)
        self.n_bars = self.session.num_rows
        self.names = make_symbols(symbols)
        self.start = datetime(2025, 11, 21, 14, 30, tzinfo=UTC)
        progress("building the feed as Python lists (not timed)")
        self.feed = feed_lists(self.session)
        self.wh: Warehouse | None = None
        self.seed: SeedSessionData | None = None
        self.plain: BarStore | None = None

    def _path(self, stem: str) -> Path:
        self._files += 1
        return self.workdir / f"{stem}-{self._files}.duckdb"

    def _probes(self, count: int) -> list[str]:
        # Fresh str objects (not the dict keys themselves), drawn in random order, so every
        # structure pays a real hash compare and no lookup walks the symbols in insertion order.
        pool = [name.encode().decode() for name in self.names]
        return [self.rng.choice(pool) for _ in range(count)]

    def drop_seed(self) -> None:
        """Free the seed's bar objects (millions) once the reads no longer need them."""
        if self.seed is not None:
            self.seed = None
            gc.collect()

    def drop_feed(self) -> None:
        """Free the feed's Python lists once the appends no longer need them."""
        if self.feed:
            self.feed = []
            gc.collect()

    def close(self) -> None:
        """Close what is still open."""
        if self.wh is not None:
            self.wh.close()
        if self.plain is not None:
            self.plain.close()

    # -- append ----------------------------------------------------------------------------

    def _append_ours(self, watch: GcWatch, *, journal: bool = False) -> tuple[float, Warehouse]:
        # As users run it: a file, the default flusher (100k rows or 1 s), checkpoints.
        wh = Warehouse(self._path("append-journal" if journal else "append"), journal=journal)
        append = wh.append
        with watch:
            started = perf_counter()
            for s, t, o, h, lo, c, v, w, n in zip(*self.feed, strict=True):
                append(s, t, o, h, lo, c, v, w, n)
            # The final flush and checkpoint are what close() adds; they count. The warehouse
            # stays open so the read, SQL and export measurements run on this appended session.
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

    def _append_pair(self) -> tuple[float, float]:
        """The session appended to two warehouses, metrics on and off (`append_in_turn`).

        Returns the seconds (metrics on, metrics off), final checkpoints included.
        """
        both = {True: Warehouse(self._path("append-metrics")),
                False: Warehouse(self._path("append-no-metrics"), metrics=False)}
        spent = append_in_turn(both, self.feed, self.minutes, self.symbols)
        self.report.check(all(wh.stats()["bars"] == self.n_bars for wh in both.values()),
                          "append pair: every bar held")
        for wh in both.values():
            wh.close()
        return spent[True], spent[False]

    def measure_append(self) -> None:
        """Sustained single-bar appends over the session, flushes included, vs seed add_bar.

        Also the collector during each run (full collections, longest pause), the cost of the
        session metrics (`_append_pair`), and one run with ``journal=True``.
        """
        report = self.report
        ours: list[float] = []
        base: list[float] = []
        gc_ours: list[GcWatch] = []
        gc_seed: list[GcWatch] = []
        for run in range(self.repeat):
            # Interleaved, so drift in the machine's speed hits both sides alike.
            progress(f"append: warehouse, run {run + 1}/{self.repeat}")
            gc_ours.append(GcWatch())
            seconds, wh = self._append_ours(gc_ours[-1])
            ours.append(seconds)
            if self.wh is not None:
                self.wh.close()
            self.wh = wh
            progress(f"append: seed add_bar, run {run + 1}/{self.repeat}")
            self.seed = None  # free the previous run's 3 M bar objects first
            gc_seed.append(GcWatch())
            seconds, self.seed = self._append_seed(gc_seed[-1])
            base.append(seconds)
        assert self.wh is not None
        report.check(self.wh.count(self.names[0]) == self.minutes, "append: bars per symbol")
        report.check(self.wh.stats()["unflushed"] == 0, "append: log empty after checkpoint")
        started = perf_counter()
        for _ in zip(*self.feed, strict=True):
            pass
        loop = perf_counter() - started
        rate = self.n_bars / statistics.median(ours)
        base_rate = self.n_bars / statistics.median(base)
        ratio = base_rate / rate
        report.add(Row(
            "append 1 bar, validated", format_rate(rate), "seed add_bar", format_rate(base_rate),
            ratio,
            f">= {targets.APPEND_RATE / 1e6:.1f} M/s, <= {targets.APPEND_VS_SEED:.2f}x",
            rate >= targets.APPEND_RATE and ratio <= targets.APPEND_VS_SEED,
        ))

        # The collector over the same runs: the worst run of each side.
        full, seed_full = max(w.full for w in gc_ours), max(w.full for w in gc_seed)
        report.add(Row(
            "GC in append session: full collections", f"{full}", "seed add_bar", f"{seed_full}",
            None, f"{targets.GC_FULL_COLLECTIONS} (none caused by bars)",
            full <= targets.GC_FULL_COLLECTIONS,
        ))
        longest, seed_longest = _longest(gc_ours), _longest(gc_seed)
        report.add(Row(
            "GC in append session: longest pause", _pause(longest), "seed add_bar",
            _pause(seed_longest),
            longest.seconds / seed_longest.seconds
            if longest is not None and seed_longest is not None and seed_longest.seconds
            else None,
            "(reported)", None,
        ))

        pairs = []
        for run in range(self.repeat):
            progress(f"append: metrics on and off, minute by minute, run {run + 1}/{self.repeat}")
            pairs.append(self._append_pair())
        with_metrics = statistics.median(on for on, _ in pairs)
        without = statistics.median(off for _, off in pairs)
        r = statistics.median(on / off for on, off in pairs)
        report.add(Row(
            "append 1 bar, metrics on", format_rate(self.n_bars / with_metrics),
            "append, metrics=False", format_rate(self.n_bars / without), r,
            f"<= {targets.METRICS_VS_PLAIN}x", r <= targets.METRICS_VS_PLAIN,
        ))
        report.note(
            "append, metrics on vs off: both warehouses take each minute's bars in turn "
            f"(first one, then the other, alternating); the cost ratios of the {self.repeat} "
            f"runs: {', '.join(f'{on / off:.3f}x' for on, off in pairs)}"
        )
        ohlcv = self.wh.query("session_ohlcv").slice(0, 1).to_pylist()[0]
        record = self.wh.metrics(ohlcv["symbol"])
        report.check(record is not None and record.bar_count == ohlcv["bar_count"]
                     and record.high == ohlcv["high"]
                     and abs(record.volume - ohlcv["volume"]) <= 1e-9 * ohlcv["volume"],
                     "append: metrics agree with session_ohlcv")

        progress("append: warehouse with journal=True")
        journaled, wh = self._append_ours(GcWatch(), journal=True)
        wh.close()
        report.add(Row(
            "append 1 bar, journal=True", format_rate(self.n_bars / journaled),
            "append, no journal", format_rate(rate), journaled / statistics.median(ours),
            "(info: the journal's cost)", None,
        ))
        flushes = self.wh.stats()
        per_bar = self.n_bars * self.repeat / 1e9

        def collections(watches: list[GcWatch]) -> str:
            counts = "/".join(str(sum(w.count(g) for w in watches) // self.repeat)
                              for g in range(3))
            return (f"{sum(w.seconds for w in watches) / per_bar:.0f} ns/bar, collections of "
                    f"generation 0/1/2 per session {counts}")

        report.note(
            f"append: the feed loop alone (zip of 9 lists) costs {loop / self.n_bars * 1e9:.0f} "
            f"ns/bar of both sides; garbage collector: ours {collections(gc_ours)}; seed "
            f"{collections(gc_seed)}; {flushes['flushes']} background flushes, DuckDB write p99 "
            f"{flushes['flush_p99_ms']:.1f} ms"
        )

    # -- hot reads ---------------------------------------------------------------------------

    def measure_reads(self) -> None:
        """latest, last_n and latest_many vs dict.get and the seed's async getters."""
        wh, seed = self.wh, self.seed
        assert wh is not None
        assert seed is not None
        progress("hot reads: latest, last_n, latest_many")
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

        def metrics() -> float:
            started = perf_counter()
            for s in probes:
                wh.metrics(s)
            return (perf_counter() - started) / len(probes)

        def metrics_frame() -> float:
            started = perf_counter()
            wh.metrics_frame()
            return perf_counter() - started

        def ohlcv_query() -> float:
            started = perf_counter()
            wh.query("session_ohlcv")
            return perf_counter() - started

        t_dict = _median(self.micro_runs, dict_get)
        t_latest = _median(self.micro_runs, latest)
        t_last = _median(self.micro_runs, last_n)
        t_many = _median(self.micro_runs, latest_many)
        t_metrics = _median(self.micro_runs, metrics)
        t_frame = _median(self.micro_runs, metrics_frame)
        t_ohlcv = _median(self.micro_runs, ohlcv_query)
        self.report.check(wh.last_n(self.names[1], LAST_N)[-1] == wh.latest(self.names[1]),
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
        add = self.report.add
        r = t_latest / t_dict
        add(Row("latest(symbol)", format_time(t_latest), "bare dict.get", format_time(t_dict), r,
                f"<= {targets.LATEST_VS_DICT}x", r <= targets.LATEST_VS_DICT))
        r = t_latest / s_latest
        add(Row("latest(symbol)", format_time(t_latest), "seed get_latest_bar",
                format_time(s_latest), r, f"<= {targets.LATEST_VS_SEED:.2f}x (10x faster)",
                r <= targets.LATEST_VS_SEED))
        add(Row(f"last_n(symbol, {LAST_N})", format_time(t_last),
                f"seed get_last_n_bars({LAST_N})", format_time(s_last), t_last / s_last,
                f"<= {format_time(targets.LAST_N_SECONDS)}", t_last <= targets.LAST_N_SECONDS))
        add(Row(f"latest_many({MANY} symbols)", format_time(t_many),
                f"{MANY} x seed get_latest_bar", format_time(s_many), t_many / s_many,
                f"<= {format_time(targets.LATEST_MANY_SECONDS)}",
                t_many <= targets.LATEST_MANY_SECONDS))
        add(Row(f"latest_many({MANY} symbols)", format_time(t_many),
                "seed get_latest_bars_multi", format_time(s_multi), t_many / s_multi,
                "(info)", None))
        add(Row("metrics(symbol)", format_time(t_metrics), "latest(symbol)",
                format_time(t_latest), t_metrics / t_latest, "(info)", None))
        add(Row(f"metrics_frame(), {self.symbols} symbols", format_time(t_frame),
                "query session_ohlcv", format_time(t_ohlcv), t_frame / t_ohlcv, "(info)", None))

    # -- flush of one minute, and reads during it ----------------------------------------------

    def measure_flush(self) -> None:
        """Append minute by minute with an explicit flush after each; a thread reads meanwhile.

        The flush target is judged on the minutes without a reader. On every k-th minute (about
        40 of them) a reader thread runs through a quiet window (no writer: the main thread
        sleeps) and then the flush; its samples are sorted into the two by their start time, so
        both read latencies come from the same run, warehouse and data.
        """
        report = self.report
        progress(f"flush: {self.minutes} minutes of {self.symbols} bars, a reader thread")
        # No background flusher: only the explicit flush after each minute writes.
        wh = Warehouse(self._path("flush"), flush_rows=self.n_bars + 1, flush_interval=None)
        every = max(2, self.minutes // 40)  # at least every other minute flushes alone
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
        report.check(wh.stats()["bars"] == self.n_bars, "flush: every bar held")
        wh.close()
        for label, seconds in (("", alone), (", reader busy", with_reader)):
            if not seconds:
                continue
            p50, p99 = np.percentile(seconds, [50, 99])
            report.add(Row(
                f"flush 1 minute{label}", f"p99 {format_time(p99)} (p50 {format_time(p50)})",
                "-", "-", None,
                f"p99 <= {format_time(targets.FLUSH_P99_SECONDS)}" if not label else "(info)",
                p99 <= targets.FLUSH_P99_SECONDS if not label else None,
            ))

        start_ns = np.frombuffer(starts, dtype=np.int64)
        read_ns = np.frombuffer(lengths, dtype=np.int64) / per_sample

        def inside(windows: list[tuple[int, int]]) -> npt.NDArray[np.float64]:
            if not windows or not len(start_ns):
                return np.empty(0)
            bounds = np.array(windows, dtype=np.int64)
            at = np.searchsorted(bounds[:, 0], start_ns, side="right") - 1
            ok = at >= 0
            ok[ok] = start_ns[ok] < bounds[at[ok], 1]
            return read_ns[ok]

        quiet, during = inside(quiet_windows), inside(flush_windows)
        if not len(quiet) or not len(during):
            report.check(False, "flush: the reader thread took no samples")
            return
        stats: tuple[tuple[str, Callable[[npt.NDArray[np.float64]], float]], ...] = (
            ("mean", lambda a: float(np.mean(a))),
            ("p99", lambda a: float(np.percentile(a, 99))),
        )
        for label, stat in stats:
            ours, base = stat(during) / 1e9, stat(quiet) / 1e9
            r = ours / base
            report.add(Row(
                f"latest() during flush, {label}", format_time(ours), "same reads, no flush",
                format_time(base), r, f"<= {targets.READS_DURING_FLUSH:.1f}x",
                r <= targets.READS_DURING_FLUSH,
            ))
        longest = watch.longest
        report.note(
            f"flush: {len(with_reader)} flushes with a reader, {len(during)} samples of "
            f"{per_sample} reads during them, slowest "
            f"{format_time(float(during.max()) * per_sample / 1e9)} (quiet: {len(quiet)}, "
            f"slowest {format_time(float(quiet.max()) * per_sample / 1e9)}); DuckDB write "
            f"alone p50 {format_time(store_only[len(store_only) // 2])}; longest GC pause "
            f"{_pause(longest)}; explicit flushes never checkpoint"
        )

    # -- extend ------------------------------------------------------------------------------

    def measure_extend(self) -> None:
        """Extend by the whole session as one Arrow table, to a file, flushed; vs DuckDB.

        Also the same with session metrics off (``metrics=False``), for their cost.
        """
        ours: list[float] = []
        base: list[float] = []
        no_metrics: list[float] = []
        for run in range(self.repeat):
            progress(f"extend: warehouse and DuckDB insert, run {run + 1}/{self.repeat}")
            for metrics, times in ((False, no_metrics), (True, ours)):
                wh = Warehouse(self._path("extend"), metrics=metrics)
                gc.collect()
                started = perf_counter()
                wh.extend(self.session)
                wh.flush()
                times.append(perf_counter() - started)
                self.report.check(wh.stats()["bars"] == self.n_bars, "extend: every bar held")
                wh.close()
            if self.plain is not None:
                self.plain.close()
            plain = plain_store(self._path("plain"))
            plain.register("arrow_table", self.session)
            gc.collect()
            started = perf_counter()
            plain.execute(f"INSERT INTO {TABLE} BY NAME SELECT * FROM arrow_table")
            base.append(perf_counter() - started)
            plain.unregister("arrow_table")
            self.plain = plain
        # The last plain file is the SQL and export baseline: settle it like the warehouse.
        assert self.plain is not None
        self.plain.checkpoint()
        rate = self.n_bars / statistics.median(ours)
        base_rate = self.n_bars / statistics.median(base)
        self.report.add(Row(
            "extend session + flush, file", format_rate(rate), "DuckDB INSERT from Arrow",
            format_rate(base_rate), base_rate / rate, f">= {targets.EXTEND_RATE / 1e6:.0f} M/s",
            rate >= targets.EXTEND_RATE,
        ))
        plain_rate = self.n_bars / statistics.median(no_metrics)
        self.report.add(Row(
            "extend session + flush, metrics on", format_rate(rate), "extend, metrics=False",
            format_rate(plain_rate), plain_rate / rate, "(info: the metrics' cost)", None,
        ))

    # -- SQL ---------------------------------------------------------------------------------

    def measure_sql(self) -> None:
        """One symbol, one hour, over `bars`, vs the same query on a plain DuckDB table."""
        wh, plain = self.wh, self.plain
        assert wh is not None
        assert plain is not None
        progress("SQL: one symbol, one hour")
        query = wh.queries["symbol_bars_between"]
        hours = max(1, self.minutes - 60)
        params = [
            {"symbol": s, "start": (b := self.start + timedelta(minutes=self.rng.randrange(hours))),
             "end": b + timedelta(hours=1)}
            for s in self._probes(200)
        ]
        expected = min(60, self.minutes)
        self.report.check(wh.sql(query, params[0]).num_rows == expected,
                          "SQL: one hour holds 60 bars")
        self.report.check(plain.arrow(query, params[0]).num_rows == expected,
                          "SQL: plain one hour holds 60 bars")

        def ours() -> float:
            started = perf_counter()
            for p in params:
                wh.sql(query, p)
            return (perf_counter() - started) / len(params)

        def base() -> float:
            started = perf_counter()
            for p in params:
                plain.arrow(query, p)
            return (perf_counter() - started) / len(params)

        t_ours, t_base = _median(self.repeat, ours), _median(self.repeat, base)
        r = t_ours / t_base
        self.report.add(Row(
            "SQL 1 symbol 1 hour (bars)", format_time(t_ours), "same SQL, plain DuckDB table",
            format_time(t_base), r,
            f"<= {format_time(targets.SQL_HOUR_SECONDS)}, < {targets.SQL_VS_PLAIN:.0f}x",
            t_ours <= targets.SQL_HOUR_SECONDS and r < targets.SQL_VS_PLAIN,
        ))

    def measure_resample(self) -> None:
        """Run the named 5-minute resample of the session vs Polars group_by_dynamic."""
        wh = self.wh
        assert wh is not None
        progress("SQL: 5-minute resample vs Polars")
        query = wh.queries["resample_bars"]
        # Sorted by (symbol, ts) outside the timing, as wh.frame() hands it over: Polars
        # resamples it 2x faster than the arrival order, so the baseline is at its best.
        frame = pl.from_arrow(self.session)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort("symbol", "ts")
        # The buckets anchored to the session's open, its first bar, as a session would.
        params = {"minutes": 5, "open": frame["ts"].min()}
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
        self.report.check(wh.sql(query, params).num_rows == expected,
                          "resample: row count")
        self.report.check(polars_resample().height == expected, "resample: polars row count")

        def ours() -> float:
            started = perf_counter()
            wh.sql(query, params)
            return perf_counter() - started

        def base() -> float:
            started = perf_counter()
            polars_resample()
            return perf_counter() - started

        t_ours, t_base = _median(self.repeat, ours), _median(self.repeat, base)
        r = t_ours / t_base
        self.report.add(Row(
            "SQL 5-minute resample, session", format_time(t_ours), "Polars group_by_dynamic",
            format_time(t_base), r, f"<= {targets.RESAMPLE_VS_POLARS}x",
            r <= targets.RESAMPLE_VS_POLARS,
        ))

    # -- Parquet -----------------------------------------------------------------------------

    def measure_export(self) -> None:
        """wh.export_parquet vs DuckDB's own COPY of the same rows, sorted, zstd."""
        wh, plain = self.wh, self.plain
        assert wh is not None
        assert plain is not None
        progress("Parquet export vs DuckDB COPY")
        runs = iter(range(1_000_000))

        def ours() -> float:
            target = self.workdir / f"export-{next(runs)}"
            started = perf_counter()
            result = wh.export_parquet(target)
            elapsed = perf_counter() - started
            self.report.check(result.rows == self.n_bars, "export: every bar written")
            return elapsed

        def base() -> float:
            target = self.workdir / f"copy-{next(runs)}.parquet"
            started = perf_counter()
            plain.execute(
                f"COPY (SELECT * FROM {TABLE} ORDER BY symbol, ts) TO '{target}' "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            return perf_counter() - started

        t_ours, t_base = _median(self.repeat, ours), _median(self.repeat, base)
        r = t_ours / t_base
        self.report.add(Row(
            "Parquet export, session", format_time(t_ours), "DuckDB COPY ... ORDER BY, zstd",
            format_time(t_base), r, f"<= {targets.EXPORT_VS_COPY}x", r <= targets.EXPORT_VS_COPY,
        ))
