"""Batch grouping: a batch's rows de-duplicated and grouped by symbol, in (symbol, ts) order.

Used by `extend` (to update each symbol's hot state once per batch), by the log (to keep the
last arrival of each key) and by reopening (to rebuild each symbol's state from stored rows).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def run_ends(sorted_symbols: pa.Array) -> np.ndarray:
    """End offsets of the runs of equal values in a sorted string array."""
    n = len(sorted_symbols)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    change = pc.not_equal(sorted_symbols[1:], sorted_symbols[:-1]).to_numpy(zero_copy_only=False)
    return np.append(np.nonzero(change)[0] + 1, n).astype(np.int64)


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, e)`` for each pair, without a Python loop."""
    lengths = ends - starts
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    ranges: np.ndarray = np.arange(int(lengths.sum()), dtype=np.int64) + offsets
    return ranges


class Runs:
    """A batch de-duplicated (last arrival wins) and grouped by symbol, sorted by ts inside.

    ``table`` keeps arrival order; ``order`` lists its rows sorted by (symbol, ts); run ``k``
    is ``order[starts[k]:ends[k]]``, of symbol ``names[k]``, with timestamps
    ``stamps[starts[k]:ends[k]]``.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        n = table.num_rows
        encoded = table.column("symbol").combine_chunks().dictionary_encode()
        codes = encoded.indices.to_numpy()
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        # Sorting int codes beats sorting strings; lexsort is stable, so of equal keys the
        # last arrival sorts last.
        order = np.lexsort((ts, codes))
        codes, ts = codes[order], ts[order]
        same = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
        self.dropped = int(same.sum())
        if self.dropped:
            kept = np.append(~same, True)
            mask = np.ones(n, dtype=bool)
            mask[order[:-1][same]] = False
            self.table = table.filter(pa.array(mask))
            order = (np.cumsum(mask) - 1)[order[kept]]
            codes, ts = codes[kept], ts[kept]
        change = np.nonzero(codes[1:] != codes[:-1])[0] + 1
        self.order = order
        self.stamps = ts
        self.starts = np.concatenate(([0], change)).astype(np.int64)
        self.ends = np.append(change, len(codes)).astype(np.int64)
        self.names: list[str] = (
            encoded.dictionary.take(pa.array(codes[self.starts])).to_pylist() if n else []
        )

