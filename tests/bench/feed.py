"""The session as a live feed delivers it: Python values, one bar after the other."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from time import perf_counter
from typing import Any, TypeVar

import pyarrow as pa

from warehouse import Warehouse

from .gcwatch import GcWatch

K = TypeVar("K")


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
    both: Mapping[K, Warehouse], feed: list[list[Any]] | Mapping[K, list[list[Any]]],
    minutes: int, symbols: int,
) -> dict[K, float]:
    """Append the feed to several warehouses minute by minute; the seconds each spent.

    ``feed`` is one feed for all, or one per warehouse (the same bars, the ts in another type,
    say). Each minute's bars go to every warehouse in turn (which one first rotates), so the
    machine's drift and the load of other processes hit all alike: one warehouse after the
    other would put noise of +-20% between runs on this shared machine, far more than what is
    measured. The final checkpoints count.
    """
    keys = list(both)
    feeds = {key: zip(*(feed[key] if isinstance(feed, Mapping) else feed), strict=True)
             for key in keys}
    spent = dict.fromkeys(keys, 0.0)
    with GcWatch():
        for minute in range(minutes):
            first = minute % len(keys)
            for key in keys[first:] + keys[:first]:
                append = both[key].append
                rows = islice(feeds[key], symbols)
                started = perf_counter()
                for s, t, o, h, lo, c, v, w, n in rows:
                    append(s, t, o, h, lo, c, v, w, n)
                spent[key] += perf_counter() - started
        for key, wh in both.items():
            started = perf_counter()
            wh.checkpoint()
            spent[key] += perf_counter() - started
    return spent
