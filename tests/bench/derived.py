"""Derived bars (issue 9): hot reads of declared intervals, and what keeping them costs the append.

Reads: the session is extended into a fresh in-memory warehouse with its session started
(derived bars are anchored to its open) and the default declared intervals (``"5m"``,
``"15m"``), so every symbol holds the session's bars; `latest_derived(symbol, "5m")` is timed
against `latest(symbol)` and a bare ``dict.get`` in the same run, on the same random symbols.
An interval not declared (``"30m"``) is computed on read, for comparison.

Append: the whole session is appended bar by bar to two file warehouses at once, one keeping
5m and 15m derived bars (and session metrics, and the per-series timestamps that the quality
scan reads), one with ``derived=()``: each minute's bars go to both in turn (which one first
alternates), so drift and other load hit both alike; final checkpoints included; ratio: the
median over runs.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from datetime import date
from pathlib import Path
from time import perf_counter

import pyarrow as pa
import pyarrow.compute as pc

from warehouse import Calendar, Warehouse

from . import targets
from .feed import append_in_turn, feed_lists
from .report import Report, Row, format_rate, format_time, progress

#: The generated session's trading date (`warehouse.sample.SAMPLE_DAY`: it opens 14:30 UTC).
DAY = date(2025, 11, 21)
PROBES = 100_000
RUNS = 5
DECLARED = ("5m", "15m")


def _per_call(run: Callable[[list[str]], None], probes: list[str]) -> float:
    run(probes[:1_000])  # warm
    times = []
    for _ in range(RUNS):
        started = perf_counter()
        run(probes)
        times.append((perf_counter() - started) / len(probes))
    return statistics.median(times)


def _interleaved(
    runs: dict[str, Callable[[list[str]], None]], probes: list[str], rounds: int = 2 * RUNS
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per call of each run, timed in turn round after round (median over rounds).

    Load from other processes then hits every run alike. Also returns each run's median
    ratio to the first one, round by round.
    """
    for run in runs.values():
        run(probes[:1_000])  # warm
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = perf_counter()
            run(probes)
            times[name].append((perf_counter() - started) / len(probes))
    first = times[next(iter(runs))]
    return (
        {name: statistics.median(t) for name, t in times.items()},
        {name: statistics.median(a / b for a, b in zip(t, first, strict=True))
         for name, t in times.items()},
    )


def measure_derived(report: Report, session: pa.Table, repeat: int, workdir: Path) -> None:
    """Time the derived reads against `latest`, and the append with derivation against without."""
    _measure_reads(report, session)
    _measure_append(report, session, repeat, workdir)


def _measure_reads(report: Report, session: pa.Table) -> None:
    calendar = Calendar("XNYS")
    with Warehouse(":memory:", flush_interval=None, calendar=calendar, derived=DECLARED) as wh:
        wh.start_session(DAY)
        progress(f"derived bars: extending {session.num_rows:,} bars")
        wh.extend(session)
        wh.flush()
        rng = random.Random(7)
        pool = [name.encode().decode() for name in wh.symbols()]
        probes = [rng.choice(pool) for _ in range(PROBES)]
        plain = {name: wh.latest(name) for name in pool}
        for name in pool:  # the windows as Arrow rows after extend: made bars before timing
            wh.last_n(name, wh.window)
        progress("derived bars: latest_derived vs latest vs dict.get")

        def dict_get(names: list[str]) -> None:
            get = plain.get
            for s in names:
                get(s)

        def latest(names: list[str]) -> None:
            get = wh.latest
            for s in names:
                get(s)

        def derived(interval: str) -> Callable[[list[str]], None]:
            def run(names: list[str]) -> None:
                get = wh.latest_derived
                for s in names:
                    get(s, interval)

            return run

        def last_n(names: list[str]) -> None:
            get = wh.last_n
            for s in names:
                get(s, 20)

        def last_n_derived(n: int, interval: str) -> Callable[[list[str]], None]:
            def run(names: list[str]) -> None:
                get = wh.last_n_derived
                for s in names:
                    get(s, n, interval)

            return run

        def computed(names: list[str]) -> None:
            get = wh._deriver.compute_last_n
            for s in names:
                get(s, 4, "15m")

        # The first read of each symbol after the batch recomputes its buckets (stale after
        # extend); every later one is the hot read. Warmed once over every symbol.
        for name in pool:
            wh.latest_derived(name, "5m")
            wh.latest_derived(name, "15m")
        # In turn, round after round: the ratios are what the targets are about.
        each, ratios = _interleaved(
            {"latest": latest, "dict": dict_get, "5m": derived("5m"), "15m": derived("15m")},
            probes,
        )
        t_dict, t_latest, t_5m, t_15m = each["dict"], each["latest"], each["5m"], each["15m"]
        t_30m = _per_call(derived("30m"), probes[: PROBES // 10])
        # The finished bars' caches made once over every symbol: the reads timed are warm.
        for name in pool:
            wh.last_n_derived(name, 4, "15m")
            wh.last_n_derived(name, 20, "5m")
        last, last_ratios = _interleaved(
            {"1m": last_n, "4x15m": last_n_derived(4, "15m"), "20x5m": last_n_derived(20, "5m")},
            probes,
        )
        t_computed = _per_call(computed, probes[: PROBES // 10])
        sql = wh.query("resample_bars", wh.resample_params("5m"))
        report.check(
            sql.num_rows == -(-(session.num_rows // len(pool)) // 5) * len(pool),
            "derived: resample_bars row count",
        )
        first = pool[0]
        latest_5m = wh.latest_derived(first, "5m")
        rows = sql.filter(pc.equal(sql["symbol"], first)).to_pylist()
        report.check(
            latest_5m is not None and rows[-1]["close"] == latest_5m.close
            and rows[-1]["high"] == latest_5m.high and rows[-1]["volume"] == latest_5m.volume,
            "derived: latest_derived is the last resample_bars row",
        )
        report.check(
            all(wh.latest_derived(s, "15m") == wh._deriver.compute_latest(s, "15m")
                for s in pool[:200]),
            "derived: kept 15m bars equal those computed on read",
        )
    for label, t, ratio in (
        ('latest_derived(symbol, "5m")', t_5m, ratios["5m"]),
        ('latest_derived(symbol, "15m")', t_15m, ratios["15m"]),
    ):
        report.add(
            Row(
                label,
                format_time(t),
                "latest(symbol)",
                format_time(t_latest),
                ratio,
                f"<= {targets.DERIVED_LATEST_VS_LATEST}x",
                ratio <= targets.DERIVED_LATEST_VS_LATEST,
            )
        )
    report.add(Row("latest(symbol), derived group", format_time(t_latest), "bare dict.get",
                   format_time(t_dict), ratios["dict"] and 1 / ratios["dict"], "(info)", None))
    report.add(Row('latest_derived(symbol, "30m"), not declared', format_time(t_30m),
                   "latest(symbol)", format_time(t_latest), t_30m / t_latest,
                   "(info: computed on read)", None))
    for label, key in (('last_n_derived(symbol, 4, "15m")', "4x15m"),
                       ('last_n_derived(symbol, 20, "5m")', "20x5m")):
        report.add(Row(label, format_time(last[key]), "last_n(symbol, 20)", format_time(last["1m"]),
                       last_ratios[key], "(info: cached finished bars)", None))
    report.add(Row('last_n_derived(symbol, 4, "15m"), computed on read', format_time(t_computed),
                   "last_n(symbol, 20)", format_time(last["1m"]), t_computed / last["1m"],
                   "(info: past the window from DuckDB)", None))
    report.note(
        f"derived reads, timed in turn over {2 * RUNS} rounds of {PROBES:,} random symbols: "
        f"dict.get {format_time(t_dict)}, latest {format_time(t_latest)}, latest_derived 5m "
        f"{format_time(t_5m)} ({ratios['5m']:.2f}x latest), 15m {format_time(t_15m)} "
        f"({ratios['15m']:.2f}x); ratios are medians of each round's"
    )
    report.note(
        f"last-N derived reads, timed in turn with last_n(symbol, 20) over {2 * RUNS} rounds: "
        f"last_n {format_time(last['1m'])}, 4 x 15m {format_time(last['4x15m'])} "
        f"({last_ratios['4x15m']:.2f}x), 20 x 5m {format_time(last['20x5m'])} "
        f"({last_ratios['20x5m']:.2f}x); computed on read, 4 x 15m {format_time(t_computed)}"
    )


def _append_pair(session: pa.Table, feed: list[list[object]], workdir: Path, run: int,
                 report: Report) -> tuple[float, float]:
    """The session appended to two warehouses, derivation on and off (`append_in_turn`).

    Returns the seconds (derivation on, off), final checkpoints included.
    """
    symbols = len(set(feed[0][: session.num_rows]))
    minutes = session.num_rows // symbols
    calendar = Calendar("XNYS")
    both = {
        True: Warehouse(workdir / f"derived-on-{run}.duckdb", calendar=calendar,
                        derived=DECLARED),
        False: Warehouse(workdir / f"derived-off-{run}.duckdb", calendar=calendar, derived=()),
    }
    for wh in both.values():
        wh.start_session(DAY)
    spent = append_in_turn(both, feed, minutes, symbols)
    first = str(feed[0][0])
    report.check(
        all(wh.stats()["bars"] == session.num_rows for wh in both.values())
        and both[True].latest_derived(first, "15m") == both[False].latest_derived(first, "15m"),
        "derived append pair: every bar held, the same derived bars",
    )
    for wh in both.values():
        wh.close()
    return spent[True], spent[False]


def _measure_append(report: Report, session: pa.Table, repeat: int, workdir: Path) -> None:
    feed = feed_lists(session)
    pairs = []
    for run in range(repeat):
        progress(f"derived bars: append with 5m/15m and without, run {run + 1}/{repeat}")
        pairs.append(_append_pair(session, feed, workdir, run, report))
    n = session.num_rows
    with_derived = statistics.median(on for on, _ in pairs)
    without = statistics.median(off for _, off in pairs)
    ratio = statistics.median(on / off for on, off in pairs)
    rate = n / with_derived
    report.add(Row(
        "append 1 bar, 5m + 15m derived", format_rate(rate), "append, derived=()",
        format_rate(n / without), ratio,
        f">= {targets.DERIVED_APPEND_RATE / 1e6:.1f} M/s, <= {targets.DERIVED_VS_PLAIN}x",
        rate >= targets.DERIVED_APPEND_RATE and ratio <= targets.DERIVED_VS_PLAIN,
    ))
    report.note(
        "append, 5m + 15m derived vs derived=(): both warehouses (metrics on) take each "
        "minute's bars in turn; per run "
        + ", ".join(f"{n / on / 1e6:.2f} vs {n / off / 1e6:.2f} M/s ({on / off:.3f}x)"
                    for on, off in pairs)
    )
