"""The seed design (``shared/seed``), reimplemented small and faithful: the main baseline.

A ``SessionData`` holds a dict of per-symbol deques of bar namedtuples, a cached latest bar and
incremental metrics, behind one ``asyncio.Lock``; callers ``await`` its methods from one
coroutine. It validates nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import NamedTuple

import pyarrow as pa

from .feed import feed_lists


class SeedBar(NamedTuple):
    """The seed's bar: a namedtuple."""

    symbol: str
    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None
    trade_count: int | None


class SeedSymbolData:
    """The seed's ``SymbolSessionData``: a deque of bars, the cached latest bar, metrics."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bars_1m: deque[SeedBar] = deque()
        self._latest_bar: SeedBar | None = None
        self.bar_count = 0
        self.session_volume = 0.0
        self.session_high: float | None = None
        self.session_low: float | None = None

    def update_from_bar(self, bar: SeedBar) -> None:
        """Append a bar and update the incremental session metrics, as the seed does."""
        self.bars_1m.append(bar)
        self._latest_bar = bar
        self.bar_count += 1
        self.session_volume += bar.volume
        if self.session_high is None or bar.high > self.session_high:
            self.session_high = bar.high
        if self.session_low is None or bar.low < self.session_low:
            self.session_low = bar.low


class SeedSessionData:
    """The seed's ``SessionData`` singleton: async methods behind one ``asyncio.Lock``."""

    def __init__(self) -> None:
        self._symbols: dict[str, SeedSymbolData] = {}
        self._lock = asyncio.Lock()

    async def add_bar(self, symbol: str, bar: SeedBar) -> None:
        """Store one bar (the seed validates nothing)."""
        async with self._lock:
            data = self._symbols.get(symbol)
            if data is None:
                data = self._symbols[symbol] = SeedSymbolData(symbol)
            data.update_from_bar(bar)

    async def get_latest_bar(self, symbol: str) -> SeedBar | None:
        """Return the cached latest bar, O(1)."""
        async with self._lock:
            data = self._symbols.get(symbol)
            return None if data is None else data._latest_bar

    async def get_last_n_bars(self, symbol: str, n: int) -> list[SeedBar]:
        """Return the last n bars in time order."""
        async with self._lock:
            data = self._symbols.get(symbol)
            if data is None:
                return []
            # The fastest deque slice we found (reverse-islice): the seed's "efficient slicing"
            # at its best, so the baseline is no straw man (list(d)[-n:] is 3x slower).
            bars = list(islice(reversed(data.bars_1m), n))
            bars.reverse()
            return bars

    async def get_latest_bars_multi(self, symbols: Sequence[str]) -> dict[str, SeedBar | None]:
        """Return the latest bar of each symbol, under one lock acquisition."""
        async with self._lock:
            found = self._symbols
            return {
                s: (d._latest_bar if (d := found.get(s)) is not None else None) for s in symbols
            }


async def fill_seed(seed: SeedSessionData, session: pa.Table, per_minute: int) -> None:
    """Add every bar of ``session`` to ``seed``, one minute (``per_minute`` bars) at a time.

    Minute by minute, so the temporary Python lists of the feed stay small.
    """
    add = seed.add_bar
    for offset in range(0, session.num_rows, per_minute):
        for row in zip(*feed_lists(session.slice(offset, per_minute)), strict=True):
            await add(row[0], SeedBar(*row))
