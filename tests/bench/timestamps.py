"""Append with the ts as feeds send it: aware datetimes (UTC, zoneinfo) and pandas Timestamps.

The whole session is appended bar by bar to four file warehouses at once, the same bars with
the ts as integer microseconds, an aware `datetime` in UTC, a `datetime` in America/New_York
(`zoneinfo`) and a `pandas.Timestamp` in America/New_York: each minute's bars go to all four in
turn (which one first rotates), so drift and other load hit all alike; final checkpoints
included. Each row's ratio is its cost over the int-ts append's, the median over runs. The ts
objects are made outside the timing, one per minute (a feed makes one per message: the
conversion's work is the same).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from warehouse import Warehouse
from warehouse.schema import from_micros

from . import targets
from .feed import append_in_turn, feed_lists
from .report import Report, Row, format_rate, progress

ZONE = "America/New_York"
INT = "int"


def _kinds() -> dict[str, Any]:
    """Each kind of ts timed (beside int micros): the function making one from micros."""
    zone = ZoneInfo(ZONE)
    kinds: dict[str, Any] = {
        "aware UTC datetime": from_micros,
        "zoneinfo datetime": lambda t: from_micros(t).astimezone(zone),
    }
    try:
        import pandas as pd  # a dev dependency, as the benchmark's
    except ImportError:  # pragma: no cover
        return kinds
    kinds["pandas.Timestamp"] = lambda t: pd.Timestamp(t * 1000, tz=ZONE)
    return kinds


def _feeds(feed: list[list[Any]]) -> dict[str, list[list[Any]]]:
    """The int-ts feed, and the same feed with its ts in each other kind."""
    feeds = {INT: feed}
    stamps = sorted(set(feed[1]))
    for kind, make in _kinds().items():
        made = {t: make(t) for t in stamps}
        feeds[kind] = [feed[0], [made[t] for t in feed[1]], *feed[2:]]
    return feeds


def _run(session: pa.Table, feeds: dict[str, list[list[Any]]], workdir: Path, run: int,
         report: Report) -> dict[str, float]:
    symbols = len(set(feeds[INT][0][: session.num_rows]))
    minutes = session.num_rows // symbols
    both = {kind: Warehouse(workdir / f"ts-{i}-{run}.duckdb") for i, kind in enumerate(feeds)}
    spent = append_in_turn(both, feeds, minutes, symbols)
    first = str(feeds[INT][0][-1])
    report.check(
        all(wh.stats()["bars"] == session.num_rows for wh in both.values())
        and len({wh.latest(first) for wh in both.values()}) == 1,
        "timestamps: every bar held, the same bars from every kind of ts",
    )
    for wh in both.values():
        wh.close()
    return spent


def measure_timestamps(report: Report, session: pa.Table, repeat: int, workdir: Path) -> None:
    """Append rates with each kind of ts, against the int-ts append in the same run."""
    feeds = _feeds(feed_lists(session))
    runs = []
    for run in range(repeat):
        progress(f"timestamps: append with int, datetime and Timestamp ts, run {run + 1}/{repeat}")
        runs.append(_run(session, feeds, workdir, run, report))
    n = session.num_rows
    base = statistics.median(spent[INT] for spent in runs)
    for kind, share in targets.TS_VS_INT.items():
        if kind not in feeds:
            report.note(f"timestamps: {kind} not timed (pandas is not installed)")
            continue
        ratio = statistics.median(spent[kind] / spent[INT] for spent in runs)
        report.add(Row(
            f"append, {kind} ts", format_rate(n / statistics.median(s[kind] for s in runs)),
            "append, int ts", format_rate(n / base), ratio,
            f">= {share}x the int-ts rate (<= {1 / share:.2f}x)", ratio <= 1 / share,
        ))
    report.note(
        "append with each kind of ts, the same bars to four warehouses in turn; rate per run "
        "(M bars/s, and as a share of the int-ts rate): "
        + "; ".join(
            ", ".join(f"{kind} {n / spent[kind] / 1e6:.2f}"
                      + ("" if kind == INT else f" ({spent[INT] / spent[kind]:.2f}x)")
                      for kind in spent)
            for spent in runs)
    )
