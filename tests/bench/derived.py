"""Derived bars (issue 9): `latest_derived(symbol, "5m")` vs `latest(symbol)`, same warehouse.

The session is extended into a fresh in-memory warehouse with its session started (derived bars
are anchored to its open), so every symbol holds the session's bars and the newest 5-minute bar
is read from its window. Derived bars are computed on read: the append pays nothing for them,
so there is no "append with derivation on" row (it would be the plain append).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from datetime import date
from time import perf_counter

import pyarrow as pa

from warehouse import Calendar, Warehouse

from . import targets
from .report import Report, Row, format_time, progress

#: The generated session's trading date (`warehouse.sample.SAMPLE_DAY`: it opens 14:30 UTC).
DAY = date(2025, 11, 21)
PROBES = 100_000
RUNS = 5


def _per_call(run: Callable[[list[str]], None], probes: list[str]) -> float:
    run(probes[:1_000])  # warm
    times = []
    for _ in range(RUNS):
        started = perf_counter()
        run(probes)
        times.append((perf_counter() - started) / len(probes))
    return statistics.median(times)


def measure_derived(report: Report, session: pa.Table) -> None:
    """Time `latest_derived` and `last_n_derived` against `latest` on the session's symbols."""
    with Warehouse(":memory:", flush_interval=None, calendar=Calendar("XNYS")) as wh:
        wh.start_session(DAY)
        progress(f"derived bars: extending {session.num_rows:,} bars")
        wh.extend(session)
        wh.flush()
        rng = random.Random(7)
        pool = [name.encode().decode() for name in wh.symbols()]
        probes = [rng.choice(pool) for _ in range(PROBES)]
        for name in pool:  # the windows as Arrow rows after extend: made bars before timing
            wh.last_n(name, wh.window)
        progress("derived bars: latest_derived vs latest")

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
            get = wh.last_n_derived
            for s in names:
                get(s, 4, "15m")

        t_latest = _per_call(latest, probes)
        t_5m = _per_call(derived("5m"), probes)
        t_15m = _per_call(derived("15m"), probes)
        t_last = _per_call(last_n, probes[: PROBES // 10])
        sql = wh.query("resample_bars", wh.resample_params("5m"))
        report.check(
            sql.num_rows == -(-(session.num_rows // len(pool)) // 5) * len(pool),
            "derived: resample_bars row count",
        )
        first = pool[0]
        latest_5m = wh.latest_derived(first, "5m")
        rows = sql.filter(pa.compute.equal(sql["symbol"], first)).to_pylist()
        report.check(
            latest_5m is not None and rows[-1]["close"] == latest_5m.close,
            "derived: latest_derived is the last resample_bars row",
        )
    for label, t in (
        ('latest_derived(symbol, "5m")', t_5m),
        ('latest_derived(symbol, "15m")', t_15m),
    ):
        report.add(
            Row(
                label,
                format_time(t),
                "latest(symbol)",
                format_time(t_latest),
                t / t_latest,
                f"<= {targets.DERIVED_LATEST_VS_LATEST}x",
                t / t_latest <= targets.DERIVED_LATEST_VS_LATEST,
            )
        )
    report.add(
        Row(
            'last_n_derived(symbol, 4, "15m")',
            format_time(t_last),
            "latest(symbol)",
            format_time(t_latest),
            t_last / t_latest,
            "-",
            None,
        )
    )
