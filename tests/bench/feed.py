"""The session as a live feed delivers it: Python values, one bar after the other."""

from __future__ import annotations

from itertools import islice
from time import perf_counter
from typing import Any

import pyarrow as pa

from warehouse import Warehouse

from .gcwatch import GcWatch


def feed_lists(session: pa.Table) -> list[list[Any]]:
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


def append_in_turn(
    both: dict[bool, Warehouse], feed: list[list[Any]], minutes: int, symbols: int
) -> dict[bool, float]:
    """Append the feed to two warehouses minute by minute; the seconds each spent.

    Each minute's bars go to both in turn (which one first alternates), so the machine's drift
    and the load of other processes hit both alike: one warehouse after the other would put
    noise of +-20% between runs on this shared machine, far more than what is measured. The
    final checkpoints count.
    """
    feeds = {on: zip(*feed, strict=True) for on in both}
    spent = dict.fromkeys(both, 0.0)
    with GcWatch():
        for minute in range(minutes):
            for on in (True, False) if minute % 2 else (False, True):
                append = both[on].append
                rows = islice(feeds[on], symbols)
                started = perf_counter()
                for s, t, o, h, lo, c, v, w, n in rows:
                    append(s, t, o, h, lo, c, v, w, n)
                spent[on] += perf_counter() - started
        for on, wh in both.items():
            started = perf_counter()
            wh.checkpoint()
            spent[on] += perf_counter() - started
    return spent
