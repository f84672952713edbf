"""Session metrics per symbol: open, high, low, close, volume, VWAP, bar count, first and last ts.

Each symbol's `Series` (compiled, `_hot.pyx`) keeps its metrics as running totals (`Totals`):
the bar count, first and last ts, open, high, low, close, volume, and ``pv``, the sum of price
x volume, the price being the bar's vwap or else its typical price (high + low + close) / 3, as
``sql/session_ohlcv.sql`` defines the VWAP. A read turns them into a `SessionMetrics` (VWAP =
pv / volume, None when the volume is 0). What keeps them, on each path:

- an in-order bar (`append`, ts after the symbol's last): the compiled append adds it in C;
- a late bar (older than the last, a new key): `combine` adds it (`HotState.place_older`);
- a correction (a bar replacing a held (symbol, ts)): `combine` subtracts the old bar's volume
  and pv and adds the new one's; open and close follow when it is the first or last bar. When
  the old bar held the high or the low and the new one does not reach it, when the old bar is
  no longer in memory (older than the symbol's window), or when the subtraction cancels most
  of the volume or pv (see below), the totals are recomputed from the symbol's bars: at once
  from the window if it holds them all, else they are marked stale and the next read
  recomputes them with one SQL aggregate over the symbol's bars (`Warehouse._fresh_metrics`:
  O(bars of the symbol), under the store's and the buffer's locks; this path is rare);
- a batch (`extend`): `batch_totals` aggregates each symbol's rows with numpy (no loop per
  bar), then `combine` merges them once per symbol, corrections as above;
- reopening a file: `from_table` over one SQL ``GROUP BY`` of the stored bars
  (``sql/internal/symbol_totals.sql``); journal replay goes through `extend`;
- `clear`: the series go, and their totals with them.

Every path but the compiled append replaces a series' totals whole, with one compiled call
(`Series.set_totals`), under the buffer's lock; reads copy them in one compiled call and take
no lock, so a reader never sees a half-updated record.

Rounding: sums kept by adding and subtracting differ from the SQL's sums in the last bits (the
order of additions differs). A subtraction can cancel: taking back most of a sum leaves its
rounding error large beside what remains. The totals therefore carry the largest volume and
|pv| seen since they were last exact (``volume_scale``, ``pv_scale``); a correction that
leaves the volume or |pv| under half of that recomputes instead, which bounds the relative
error by about (corrections since exact) x 2 x 2**-53, and makes a volume that falls to 0 an
exact 0 (so the VWAP is None, as in SQL).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from warehouse._bar import Bar, bars_to_columns
from warehouse._metrics import SessionMetrics as SessionMetrics
from warehouse._runs import Runs

#: The columns of `frame`: those of the named query ``session_ohlcv``, in its order.
COLUMNS = (
    "symbol",
    "first_ts",
    "last_ts",
    "bar_count",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
)


class Totals(NamedTuple):
    """A symbol's session metrics as running totals (the field order of `Series.set_totals`)."""

    bar_count: int
    last_ts: int
    high: float
    low: float
    close: float
    volume: float
    pv: float
    first_ts: int
    open: float
    volume_scale: float
    pv_scale: float
    stale: bool


#: The totals of no bars.
EMPTY = Totals(0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0, False)


def _exact(
    bar_count: int,
    last_ts: int,
    high: float,
    low: float,
    close: float,
    volume: float,
    pv: float,
    first_ts: int,
    open_: float,
) -> Totals:
    """Totals computed from the bars themselves: their scales are their own sums."""
    return Totals(
        bar_count, last_ts, high, low, close, volume, pv, first_ts, open_, volume, abs(pv), False
    )


def of_bar(bar: Bar) -> Totals:
    """The totals of one bar."""
    vwap = bar.vwap
    price = (bar.high + bar.low + bar.close) / 3 if vwap is None else vwap
    return _exact(
        1, bar.ts, bar.high, bar.low, bar.close, bar.volume, price * bar.volume, bar.ts, bar.open
    )


def _prices(high: np.ndarray, low: np.ndarray, close: np.ndarray, vwap: np.ndarray) -> np.ndarray:
    """Each bar's price: its vwap (NaN where none), else (high + low + close) / 3."""
    missing = np.isnan(vwap)
    if not missing.any():
        return vwap
    with np.errstate(over="ignore", invalid="ignore"):  # inf, as in SQL, for huge prices
        prices: np.ndarray = np.where(missing, (high + low + close) / 3, vwap)
    return prices


def of_bars(bars: list[Bar], only: np.ndarray | None = None) -> Totals:
    """The totals of bars in ts order (vectorised); ``only``: just those with these ts."""
    columns = bars_to_columns(bars)
    ts = columns[1].cast(pa.int64()).to_numpy()
    open_, high, low, close, volume = (c.to_numpy() for c in columns[2:7])
    vwap = columns[7].to_numpy(zero_copy_only=False)
    if only is not None:
        keep = np.isin(ts, only)
        ts, open_, high, low, close, volume, vwap = (
            a[keep] for a in (ts, open_, high, low, close, volume, vwap)
        )
    if not len(ts):
        return EMPTY
    with np.errstate(over="ignore", invalid="ignore"):  # inf, as in SQL, for huge values
        pv = float(np.dot(_prices(high, low, close, vwap), volume))
    return _exact(
        len(ts),
        int(ts[-1]),
        float(high.max()),
        float(low.min()),
        float(close[-1]),
        float(volume.sum()),
        pv,
        int(ts[0]),
        float(open_[0]),
    )


def batch_totals(runs: Runs) -> list[Totals]:
    """The totals of each run of a batch (one per symbol), vectorised over all its rows."""
    table, order, starts, ends = runs.table, runs.order, runs.starts, runs.ends
    n = len(starts)
    if n == 0:
        return []
    # Each row's run, in the table's (arrival) order: sums and extremes without sorting rows.
    run_of_row = np.empty(len(order), dtype=np.int64)
    run_of_row[order] = np.repeat(np.arange(n), ends - starts)
    open_, high, low, close, volume = (
        table.column(name).to_numpy() for name in ("open", "high", "low", "close", "volume")
    )
    vwap = table.column("vwap").to_numpy()  # nulls become NaN
    with np.errstate(over="ignore", invalid="ignore"):  # inf, as in SQL, for huge values
        pv = np.bincount(run_of_row, weights=_prices(high, low, close, vwap) * volume, minlength=n)
        volumes = np.bincount(run_of_row, weights=volume, minlength=n)
    highs = np.full(n, -np.inf)
    np.maximum.at(highs, run_of_row, high)
    lows = np.full(n, np.inf)
    np.minimum.at(lows, run_of_row, low)
    firsts, lasts = order[starts], order[ends - 1]
    return list(
        map(
            _exact,
            (ends - starts).tolist(),
            runs.stamps[ends - 1].tolist(),
            highs.tolist(),
            lows.tolist(),
            close[lasts].tolist(),
            volumes.tolist(),
            pv.tolist(),
            runs.stamps[starts].tolist(),
            open_[firsts].tolist(),
        )
    )


def from_table(table: pa.Table) -> dict[str, Totals]:
    """Exact totals per symbol from rows of ``sql/internal/symbol_totals.sql``."""
    columns = [
        table.column(name)
        for name in (
            "symbol",
            "bar_count",
            "last_ts",
            "high",
            "low",
            "close",
            "volume",
            "pv",
            "first_ts",
            "open",
        )
    ]
    for k in (2, 8):
        columns[k] = columns[k].cast(pa.int64())
    symbols, *values = (c.to_pylist() for c in columns)
    return dict(zip(symbols, map(_exact, *values), strict=True))


def combine(totals: Totals, added: Totals, removed: Totals = EMPTY) -> Totals | None:
    """The totals after ``added`` bars came in and the ``removed`` ones they correct went out.

    ``added`` may hold new keys and corrections; ``removed`` holds the bars the corrections
    replace (their keys are among ``added``'s). None when the result needs the symbol's bars:
    a removed bar held the high or the low and no added one reaches it, or the subtraction
    cancelled most of the volume or pv (see the module's note on rounding).
    """
    if totals.bar_count == 0:
        return added
    corrects = removed.bar_count > 0
    if corrects and (
        (removed.high >= totals.high and added.high < totals.high)
        or (removed.low <= totals.low and added.low > totals.low)
    ):
        return None
    volume = totals.volume - removed.volume + added.volume
    pv = totals.pv - removed.pv + added.pv
    volume_scale = max(totals.volume_scale, totals.volume)
    pv_scale = max(totals.pv_scale, abs(totals.pv))
    # Written so that a NaN or an infinite sum (huge values) recomputes too: inf - inf is no sum.
    if corrects and not (
        math.isfinite(volume)
        and math.isfinite(pv)
        and volume >= volume_scale / 2
        and abs(pv) >= pv_scale / 2
    ):
        return None
    # A corrected first or last bar has the same ts in `added`, which then takes its place.
    first_ts, open_ = (
        (added.first_ts, added.open)
        if added.first_ts <= totals.first_ts
        else (totals.first_ts, totals.open)
    )
    last_ts, close = (
        (added.last_ts, added.close)
        if added.last_ts >= totals.last_ts
        else (totals.last_ts, totals.close)
    )
    return Totals(
        totals.bar_count - removed.bar_count + added.bar_count,
        last_ts,
        max(totals.high, added.high),
        min(totals.low, added.low),
        close,
        volume,
        pv,
        first_ts,
        open_,
        volume_scale,
        pv_scale,
        False,
    )


def frame(
    names: list[str],
    counts: np.ndarray,
    first_ts: np.ndarray,
    last_ts: np.ndarray,
    values: np.ndarray,
) -> pl.DataFrame:
    """Every symbol's metrics, one row per symbol in symbol order, as ``session_ohlcv``'s rows.

    From `_hot.Reader.metrics_columns`: ``values`` holds open, high, low, close, volume, pv.
    """
    stamp = pl.Datetime("us", "UTC")
    columns = {
        "symbol": pl.Series(names, dtype=pl.String),
        "first_ts": pl.Series(first_ts).cast(stamp),
        "last_ts": pl.Series(last_ts).cast(stamp),
        "bar_count": pl.Series(counts, dtype=pl.Int64),
    }
    for name, column in zip(("open", "high", "low", "close", "volume", "pv"), values, strict=True):
        columns[name] = pl.Series(column, dtype=pl.Float64)
    volume = pl.col("volume")
    return (
        pl.DataFrame(columns)
        .with_columns(pl.when(volume != 0).then(pl.col("pv") / volume).alias("vwap"))
        .select(COLUMNS)
        .sort("symbol")
    )
