"""Synthetic but realistic sessions of 1-minute bars, for the demo, the tests and the benchmark.

Prices follow a geometric random walk per symbol with a U-shaped intraday volume profile; bars
are rounded to cents and always valid (low <= open, close <= high). The same seed gives the same
session on every machine.
"""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import pyarrow as pa

from warehouse.calendar import Calendar
from warehouse.schema import BAR_SCHEMA

#: 09:30 New York during standard time.
SESSION_OPEN_UTC = time(14, 30)
SAMPLE_DAY = date(2025, 11, 21)
WELL_KNOWN = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY", "QQQ", "JPM"]
_PACKAGE = Path(__file__).resolve().parent
_SAMPLE_NAME = "sample_session.parquet"


def sample_path() -> Path:
    """The bundled sample session (400 symbols x 390 one-minute bars of 2025-11-21), a Parquet file.

    Inside an installed wheel it is the package's ``data/`` folder, in a checkout the top-level
    ``data/``: either way this path, from any working directory.

    Examples
    --------
    >>> import pyarrow.parquet as pq
    >>> pq.read_metadata(sample_path()).num_rows
    156000
    """
    installed = _PACKAGE / "data" / _SAMPLE_NAME
    return installed if installed.exists() else _PACKAGE.parent / "data" / _SAMPLE_NAME


def make_symbols(count: int, *, seed: int = 7) -> list[str]:
    """``count`` distinct ticker-like symbols, well-known ones first, in a stable order."""
    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_uppercase))
    symbols = WELL_KNOWN[:count]
    seen = set(symbols)
    while len(symbols) < count:
        name = "".join(rng.choice(letters, int(rng.integers(2, 6))))
        if name not in seen:
            seen.add(name)
            symbols.append(name)
    return symbols


def generate_session(
    symbols: int = 400,
    minutes: int = 390,
    *,
    day: date = SAMPLE_DAY,
    seed: int = 7,
    start: datetime | None = None,
) -> pa.Table:
    """One session of 1-minute bars in arrival order (minute by minute, symbols within).

    Parameters
    ----------
    symbols
        How many symbols.
    minutes
        Bars per symbol (390 is a full US equity session).
    day
        The session's date; bars start at 14:30 UTC.
    seed
        Random seed.
    start
        The first bar's time (an aware datetime), instead of ``day`` at 14:30 UTC.

    Returns
    -------
    pyarrow.Table
        ``symbols * minutes`` rows of `BAR_SCHEMA`.

    Examples
    --------
    >>> generate_session(3, 2).num_rows
    6
    """
    rng = np.random.default_rng(seed)
    names = make_symbols(symbols, seed=seed)
    if start is None:
        start = datetime.combine(day, SESSION_OPEN_UTC, tzinfo=UTC)
    start_us = int(start.timestamp()) * 1_000_000
    base = np.exp(rng.normal(np.log(60.0), 1.0, symbols)).clip(2.0, 2_000.0)
    sigma = rng.uniform(0.0005, 0.002, symbols)
    returns = rng.normal(0.0, 1.0, (minutes, symbols)) * sigma
    closes = base * np.exp(np.cumsum(returns, axis=0))
    opens = np.vstack([base, closes[:-1]]) * np.exp(rng.normal(0.0, 0.0002, (minutes, symbols)))
    wick = np.abs(rng.normal(0.0, 1.0, (2, minutes, symbols))) * sigma * 0.6
    opens, closes = np.round(opens, 2), np.round(closes, 2)
    highs = np.ceil(np.maximum(opens, closes) * (1 + wick[0]) * 100) / 100
    lows = np.floor(np.minimum(opens, closes) * (1 - wick[1]) * 100) / 100
    lows = np.maximum(lows, 0.01)
    minute = np.arange(minutes)[:, None]
    profile = 1.0 + 2.5 * (np.exp(-minute / 30.0) + np.exp(-(minutes - 1 - minute) / 30.0))
    liquidity = np.exp(rng.normal(8.0, 1.2, symbols))
    volumes = np.round(liquidity * profile * rng.lognormal(0.0, 0.5, (minutes, symbols)))
    vwaps = np.round(np.clip((highs + lows + 2 * closes) / 4, lows, highs), 4)
    trades = np.maximum(1, (volumes / rng.uniform(50, 150, symbols))).astype(np.int64)
    ts = start_us + np.repeat(np.arange(minutes, dtype=np.int64) * 60_000_000, symbols)
    columns = {
        "symbol": pa.array(np.tile(np.array(names, dtype=object), minutes), pa.string()),
        "ts": pa.array(ts, pa.int64()).cast(BAR_SCHEMA.field("ts").type),
        "open": opens.ravel(),
        "high": highs.ravel(),
        "low": lows.ravel(),
        "close": closes.ravel(),
        "volume": volumes.ravel(),
        "vwap": vwaps.ravel(),
        "trade_count": trades.ravel(),
    }
    return pa.table(columns, schema=BAR_SCHEMA)


def generate_sessions(
    calendar: Calendar, first: date, sessions: int, symbols: int = 400, *, seed: int = 7
) -> list[pa.Table]:
    """``sessions`` consecutive sessions of ``calendar`` from ``first`` (or the next session).

    Each holds a bar per minute of its session (210 on an early close) for each symbol, from
    its open as the calendar gives it (so the UTC open follows daylight saving).
    """
    day = first if calendar.is_session(first) else calendar.next_session(first)
    tables = []
    for index in range(sessions):
        window = calendar.window(day)
        tables.append(generate_session(symbols, window.minutes, start=window.open_time,
                                       seed=seed + index))
        day = calendar.next_session(day)
    return tables
