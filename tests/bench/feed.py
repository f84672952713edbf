"""The session as a live feed delivers it: Python values, one bar after the other."""

from __future__ import annotations

from typing import Any

import pyarrow as pa


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
