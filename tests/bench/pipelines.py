"""Pipelines over every day: `scan_archive` of one symbol one day, and as-of joins.

Scan: the generated session is exported once, as `Warehouse.export_parquet` writes a day (zstd,
sorted by (symbol, ts), its row groups), and that file is hard-linked as each of `DAYS`
partitions ``date=...`` (every day holds the same bytes: a query for one day reads one file
either way, and the archive costs one file of disk). Each run asks for one random symbol of
one random day:

- ours: ``scan_archive(dir).filter(date == day, symbol == s)``;
- the file read directly: ``pl.scan_parquet(that day's file).filter(symbol == s)``;
- a scan of every file: ``pl.scan_parquet(every day file).filter(symbol == s)``, what a scan
  without partition pruning reads (Polars still skips row groups by their statistics).

As-of join: `EVENTS` events (random symbols of the session, random instants in it, sorted by
time) joined to the session's bars:

- ``asof(events, bars)`` against Polars' ``join_asof`` on the same frames, the bars with their
  known instant (ts + 1 minute) computed before the clock starts;
- ``wh.asof(events, bars="bars")`` over a warehouse file holding the session (flushed and
  compacted) against DuckDB's own ``ASOF JOIN`` of the events (registered Arrow table) to the
  warehouse's table, fetched as Arrow; the named query ``asof_bars`` is shown beside it.

Each pair is timed in turn, round after round, so that the machine's drifting load hits both.
"""

from __future__ import annotations

import os
import random
import statistics
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from time import perf_counter

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse import Warehouse, asof, scan_archive
from warehouse.store import TABLE

from . import targets
from .report import Report, Row, format_time, progress

#: Archived sessions the scan chooses one day of.
DAYS = 250
#: Events joined to the session.
EVENTS = 1_000_000
#: One-symbol queries per timed run (a run's figure is their median).
QUERIES = 15
DAY0 = date(2024, 1, 2)
MINUTE = timedelta(minutes=1)


def _in_turn(runs: int, *timed: Callable[[], float]) -> list[float]:
    """The median of ``runs`` calls of each of ``timed``, called in turn (the first one each
    round rotating), after a warm-up round: the machine's load drifts, and hits each alike."""
    for run in timed:
        run()  # warm-up: the file cache and Polars' first use
    times: list[list[float]] = [[] for _ in timed]
    for n in range(runs):
        for k in range(len(timed)):
            which = (n + k) % len(timed)
            times[which].append(timed[which]())
    return [statistics.median(t) for t in times]


def measure_pipelines(report: Report, session: pa.Table, repeat: int, workdir: Path) -> None:
    """Add the rows of a one-symbol one-day scan and of the as-of joins."""
    measure_scan(report, session, repeat, workdir)
    measure_asof(report, session, repeat, workdir)


def _archive(session: pa.Table, workdir: Path) -> tuple[Path, list[Path]]:
    """`DAYS` partitions, each a hard link to the session exported as one day file."""
    exported = workdir / "pipelines-export"
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.extend(session)
        result = wh.export_parquet(exported)
    (day_file,) = result.files
    root = workdir / "pipelines-archive"
    files = []
    for n in range(DAYS):
        folder = root / f"date={DAY0 + timedelta(days=n)}"
        folder.mkdir(parents=True)
        os.link(day_file, folder / "bars.parquet")
        files.append(folder / "bars.parquet")
    return root, files


def measure_scan(report: Report, session: pa.Table, repeat: int, workdir: Path) -> None:
    """One symbol, one day, out of `DAYS`: ours vs that file alone vs every file."""
    progress(f"pipelines: an archive of {DAYS} days of {session.num_rows:,} bars")
    root, files = _archive(session, workdir)
    symbols = pc.unique(session.column("symbol")).to_pylist()
    draw = random.Random(7)
    asks = [(draw.randrange(DAYS), draw.choice(symbols)) for _ in range(QUERIES)]
    expected = session.filter(pc.equal(session.column("symbol"), asks[0][1])).num_rows

    def ours_one(day: int, symbol: str) -> pl.DataFrame:
        return scan_archive(root).filter(
            pl.col("date") == DAY0 + timedelta(days=day), pl.col("symbol") == symbol).collect()

    def direct_one(day: int, symbol: str) -> pl.DataFrame:
        return pl.scan_parquet(files[day]).filter(pl.col("symbol") == symbol).collect()

    def each(query: Callable[[int, str], pl.DataFrame]) -> Callable[[], float]:
        def run() -> float:
            times = []
            for day, symbol in asks:
                started = perf_counter()
                query(day, symbol)
                times.append(perf_counter() - started)
            return statistics.median(times)
        return run

    def every_file() -> float:
        started = perf_counter()
        pl.scan_parquet(files).filter(pl.col("symbol") == asks[0][1]).collect()
        return perf_counter() - started

    report.check(ours_one(*asks[0]).height == expected == direct_one(*asks[0]).height,
                 "pipelines: the scan finds the symbol's bars of the day")
    progress(f"pipelines: scan one symbol one day, {repeat} runs of {QUERIES} queries, and "
             "over every file")
    ours, direct, everything = _in_turn(repeat, each(ours_one), each(direct_one), every_file)
    report.add(Row(
        f"scan 1 symbol 1 day of {DAYS} sessions", format_time(ours),
        "Polars scan_parquet of that day's file", format_time(direct), ours / direct,
        f"<= {targets.SCAN_VS_FILE}x", ours / direct <= targets.SCAN_VS_FILE,
    ))
    report.add(Row(
        f"scan 1 symbol 1 day of {DAYS} sessions", format_time(ours),
        f"Polars scan_parquet of all {DAYS} files", format_time(everything), ours / everything,
        f"<= {targets.SCAN_VS_ALL:.2f}x", ours / everything <= targets.SCAN_VS_ALL,
    ))
    report.note(f"pipelines: {DAYS} day partitions, each a hard link to one exported session "
                f"file of {files[0].stat().st_size / 1e6:.0f} MB (the file cache holds it); "
                f"a run is the median of {QUERIES} queries of random days and symbols")


def _events(session: pa.Table) -> pl.DataFrame:
    """`EVENTS` events: random symbols of the session at random instants in it, time-sorted."""
    symbols = pc.unique(session.column("symbol")).to_numpy(zero_copy_only=False)
    ts = session.column("ts").cast(pa.int64())
    low, high = pc.min(ts).as_py(), pc.max(ts).as_py() + 60_000_000
    draw = np.random.default_rng(11)
    at = np.sort(draw.integers(low, high, EVENTS))
    return pl.DataFrame({
        "symbol": symbols[draw.integers(0, len(symbols), EVENTS)],
        "ts": pl.Series(at).cast(pl.Datetime("us", "UTC")),
        "qty": draw.integers(-500, 500, EVENTS),
    })


def measure_asof(report: Report, session: pa.Table, repeat: int, workdir: Path) -> None:
    """1 M events x the session: ours vs Polars join_asof, and vs DuckDB's ASOF JOIN."""
    events = _events(session)
    bars = pl.from_arrow(session)
    assert isinstance(bars, pl.DataFrame)
    bars = bars.sort("symbol", "ts")
    known = bars.with_columns(known=pl.col("ts") + MINUTE)

    def timed(run: Callable[[], object]) -> Callable[[], float]:
        def once() -> float:
            started = perf_counter()
            run()
            return perf_counter() - started
        return once

    def polars_join() -> pl.DataFrame:
        return events.join_asof(known, left_on="ts", right_on="known", by="symbol",
                                check_sortedness=False)

    mine = asof(events, bars)
    theirs = polars_join()
    report.check(mine["close"].equals(theirs["close"]),
                 "pipelines: asof equals Polars join_asof on ts + 1 minute")
    progress(f"pipelines: asof of {EVENTS:,} events, ours and Polars, {repeat} runs")
    ours, base = _in_turn(repeat, timed(lambda: asof(events, bars)), timed(polars_join))
    report.add(Row(
        f"asof {EVENTS / 1e6:.0f} M events x session", format_time(ours),
        "Polars join_asof, sorted frames", format_time(base), ours / base,
        f"<= {targets.ASOF_VS_BASELINE}x", ours / base <= targets.ASOF_VS_BASELINE,
    ))

    path = workdir / "pipelines-asof.duckdb"
    empty = workdir / "pipelines-no-days"  # an archive without days: bars_all is the session
    with Warehouse(path, flush_interval=None, archive=empty) as wh:
        wh.extend(session)
        wh.checkpoint()
        con = wh._store._con  # DuckDB alone, on the warehouse's own table and connection
        sql = (
            f"SELECT e.*, b.ts AS bar_ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, "
            f"b.trade_count FROM events AS e ASOF LEFT JOIN "
            f"(SELECT *, ts + INTERVAL 1 MINUTE AS known FROM {TABLE}) AS b "
            f"ON e.symbol = b.symbol AND e.ts >= b.known"
        )
        arrow_events = events.to_arrow()

        def duckdb_join() -> pa.Table:
            with wh._store.lock:
                con.register("events", arrow_events)
                try:
                    return con.sql(sql).to_arrow_table()
                finally:
                    con.unregister("events")

        def named_query() -> pa.Table:
            return wh.query("asof_bars", {"known_after": MINUTE, "tolerance": None},
                            tables={"events": events})

        report.check(wh.asof(events, bars="bars")["close"].equals(mine["close"]),
                     "pipelines: wh.asof equals asof over the same bars")
        progress(f"pipelines: wh.asof, DuckDB ASOF JOIN and asof_bars, {repeat} runs")
        ours, base, named = _in_turn(repeat, timed(lambda: wh.asof(events, bars="bars")),
                                     timed(duckdb_join), timed(named_query))
    report.add(Row(
        f"wh.asof {EVENTS / 1e6:.0f} M events x session", format_time(ours),
        "DuckDB ASOF JOIN on the table", format_time(base), ours / base,
        f"<= {targets.ASOF_VS_BASELINE}x", ours / base <= targets.ASOF_VS_BASELINE,
    ))
    report.add(Row(
        "named query asof_bars (info)", format_time(named),
        "DuckDB ASOF JOIN on the table", format_time(base), named / base, "-", None,
    ))
