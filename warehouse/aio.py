"""The design note's async ``session_data`` API, over a `Warehouse`.

An asyncio engine written against the note's ``SessionData`` runs unchanged: ``await
session_data.get_latest_bar(symbol)`` and the rest keep their names and shapes.

Where each call runs:

- Hot reads are answered inside the coroutine, from memory: no lock, no thread hop. That
  covers `SessionData.get_latest_bar`, `get_bar_count`, `get_latest_bars_multi`,
  `get_last_n_bars` of up to ``warehouse.window`` bars (or of a symbol holding no more),
  `get_bars_since` a time inside that window, and `get_latest_derived_bar` and
  `get_last_n_derived_bars` spanning no more minutes than the window holds.
- Whatever touches DuckDB runs in a worker thread (`asyncio.to_thread`), so the event loop
  keeps running meanwhile: reads past the window, `flush`, `sql`, `query`, `frame`,
  `export_parquet`, `close`, `start_session` and `end_session`, and the data upkeep's
  `add_filled_bars`, `fill_gaps` and `stop_upkeep`; so do `add_bars`, whose validation costs
  time in proportion to the batch, and `get_bar_quality`, whose scan holds the append lock for
  milliseconds. `add_bar` is the compiled single append, inline; `start_upkeep` starts the
  upkeep thread and returns at once. Cancelling an await stops waiting, not the work: a flush
  or export started runs to its end.
- One wait remains inline: `add_bar` (and a read turning a batch's window into bars) takes
  the append lock, held for microseconds by others, except by `Warehouse.clear`, which holds
  it across DuckDB's delete: an `add_bar` racing a clear waits for it.

The process has one `SessionData`, configured once at start-up and fetched anywhere after::

    configure_session_data(Warehouse("session.duckdb"))   # once, at start-up
    session_data = get_session_data()                     # anywhere, from any thread
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl
import pyarrow as pa

from warehouse.archive import Compression, ExportResult
from warehouse.buffer import ExtendResult, OnInvalid
from warehouse.derive import DerivedBar, Interval, bars_wanted, interval_minutes
from warehouse.errors import SessionDataError
from warehouse.metrics import SessionMetrics
from warehouse.schema import Bar, to_micros
from warehouse.session import Session
from warehouse.sources import BarSource
from warehouse.store import Params
from warehouse.upkeep import Upkeep, UpkeepStats
from warehouse.warehouse import Warehouse

__all__ = ["SessionData", "configure_session_data", "get_session_data", "reset_session_data"]

_ts_of = attrgetter("ts")


class SessionData:
    """The note's ``session_data`` over a `Warehouse`: async reads, writes and DuckDB work.

    Parameters
    ----------
    warehouse
        The warehouse read and written; `close` (and leaving ``async with``) closes it.

    Examples
    --------
    >>> import asyncio
    >>> async def main():
    ...     async with SessionData(Warehouse(":memory:")) as session_data:
    ...         await session_data.add_bar(
    ...             "AAPL", "2025-11-21T14:30:00Z", 228.1, 228.6, 227.9, 228.4, 51_200)
    ...         latest = await session_data.get_latest_bar("AAPL")
    ...         return latest.close, await session_data.get_bar_count("AAPL")
    >>> asyncio.run(main())
    (228.4, 1)
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self._wh = warehouse
        self._window = warehouse.window

    @property
    def warehouse(self) -> Warehouse:
        """The warehouse behind this session data (its sync API, for threads)."""
        return self._wh

    # -- commands ---------------------------------------------------------------------------

    async def add_bar(
        self,
        symbol: str,
        ts: dt.datetime | int | str,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        vwap: float | None = None,
        trade_count: int | None = None,
    ) -> None:
        """Validate and add one bar, inline: `Warehouse.append` (a `Bar` goes as ``*bar``).

        Raises
        ------
        InvalidBarError
            The bar is invalid; nothing was stored.
        ClosedError
            The warehouse is closed.
        """
        # Looked up at each call: `close` swaps the facade's append for a refusing one.
        self._wh.append(symbol, ts, open, high, low, close, volume, vwap, trade_count)

    async def add_bars(self, batch: object) -> int:
        """Validate and add a batch, all or nothing, in a worker thread (`Warehouse.extend`).

        ``batch`` is a pyarrow Table or RecordBatch, a polars DataFrame, or an iterable of
        bars; returns how many bars it held.
        """
        return await asyncio.to_thread(self._wh.extend, batch)

    async def flush(self) -> int:
        """Write every waiting bar to DuckDB, in a worker thread; returns how many."""
        return await asyncio.to_thread(self._wh.flush)

    async def export_parquet(
        self, directory: str | Path | None = None, *, compression: Compression = "zstd"
    ) -> ExportResult:
        """Flush, then write the session to Parquet (`Warehouse.export_parquet`), off the loop."""
        return await asyncio.to_thread(self._wh.export_parquet, directory, compression=compression)

    async def start_session(
        self, date: dt.date | None = None, *, extended_hours: bool = False
    ) -> Session:
        """Start a trading session (`Warehouse.start_session`), in a worker thread."""
        return await asyncio.to_thread(self._wh.start_session, date,
                                       extended_hours=extended_hours)

    async def end_session(self) -> ExportResult:
        """Seal the trading session (`Warehouse.end_session`), in a worker thread."""
        return await asyncio.to_thread(self._wh.end_session)

    async def roll(self) -> Session:
        """End the session and start the next one (`Warehouse.roll`), in a worker thread."""
        return await asyncio.to_thread(self._wh.roll)

    async def close(self) -> None:
        """Close the warehouse (flush, checkpoint, close the file), in a worker thread."""
        await asyncio.to_thread(self._wh.close)

    # -- data upkeep: gap filling -----------------------------------------------------------

    async def add_filled_bars(
        self, batch: object, *, on_invalid: OnInvalid = "raise"
    ) -> int | ExtendResult:
        """Add bars that fill gaps (`Warehouse.fill`: stored at once), in a worker thread."""
        return await asyncio.to_thread(self._wh.fill, batch, on_invalid=on_invalid)

    async def fill_gaps(
        self,
        source: BarSource | Callable[[str, dt.datetime, dt.datetime], object],
        *,
        timeout: float = 30.0,
        delay: float = 60.0,
        symbols: Iterable[str] | None = None,
        now: dt.datetime | None = None,
    ) -> UpkeepStats:
        """One round of gap filling from ``source`` (`Warehouse.fill_gaps`), in a worker thread."""
        return await asyncio.to_thread(self._wh.fill_gaps, source, timeout=timeout, delay=delay,
                                       symbols=symbols, now=now)

    def start_upkeep(
        self,
        source: BarSource | Callable[[str, dt.datetime, dt.datetime], object],
        **options: Any,
    ) -> Upkeep:
        """Start the data-upkeep thread (`Warehouse.start_upkeep`, same options).

        Not a coroutine: it starts a thread and returns at once, from the loop or anywhere.
        """
        return self._wh.start_upkeep(source, **options)

    async def stop_upkeep(self) -> None:
        """Stop the upkeep thread and wait for it (`Warehouse.stop_upkeep`), off the loop."""
        await asyncio.to_thread(self._wh.stop_upkeep)

    # -- queries ----------------------------------------------------------------------------

    async def get_latest_bar(self, symbol: str) -> Bar | None:
        """The bar with the greatest ts of ``symbol``, or None: from memory."""
        return self._wh.latest(symbol)

    async def get_last_n_bars(self, symbol: str, n: int) -> list[Bar]:
        """The last ``n`` bars of ``symbol`` in ts order (fewer if it has fewer).

        From memory when ``n <= warehouse.window`` or the symbol holds no more bars than
        that; otherwise DuckDB answers, in a worker thread.
        """
        if n <= self._window or self._wh.count(symbol) <= self._window:
            return self._wh.last_n(symbol, n)
        return await asyncio.to_thread(self._wh.last_n, symbol, n)

    async def get_bars_since(self, symbol: str, timestamp: dt.datetime | int | str) -> list[Bar]:
        """The bars of ``symbol`` at or after ``timestamp``, in ts order.

        From memory when the symbol's last ``warehouse.window`` bars reach back to
        ``timestamp`` (or are all it has); otherwise DuckDB answers, in a worker thread.
        """
        ts = to_micros(timestamp, symbol)
        # Within the window `last_n` never leaves memory; the window is a ts-ordered suffix of
        # the symbol's bars, so if it starts at or before ts, it holds every bar since ts.
        recent = self._wh.last_n(symbol, self._window)
        if len(recent) < self._window or recent[0].ts <= ts:
            return recent[bisect_left(recent, ts, key=_ts_of) :]
        return await asyncio.to_thread(self._wh.since, symbol, ts)

    async def get_bar_count(self, symbol: str) -> int:
        """The number of bars of ``symbol`` this session: from memory."""
        return self._wh.count(symbol)

    async def get_latest_bars_multi(self, symbols: Iterable[str]) -> dict[str, Bar | None]:
        """The latest bar of each symbol (None for one without bars): from memory."""
        return self._wh.latest_many(symbols)

    async def get_session_metrics(self, symbol: str) -> SessionMetrics | None:
        """Session open, high, low, last, volume, VWAP and bar count of ``symbol``.

        `Warehouse.metrics`, which the hot state keeps up to date bar by bar: answered inline
        (a correction of a bar older than the window makes the next read recompute them from
        DuckDB, a rare step that may hold the loop for as long as one query).
        """
        return self._wh.metrics(symbol)

    async def get_bar_quality(
        self, *, now: dt.datetime | int | str | None = None, symbols: Iterable[str] | None = None
    ) -> pl.DataFrame:
        """How complete the open session's bars are, per symbol (`Warehouse.quality`).

        In a worker thread: the scan holds the append lock for a few milliseconds.
        """
        return await asyncio.to_thread(self._wh.quality, now=now, symbols=symbols)

    async def get_latest_derived_bar(
        self, symbol: str, interval: Interval = "5m"
    ) -> DerivedBar | None:
        """The newest ``interval`` bar of ``symbol`` (`Warehouse.latest_derived`).

        Inline when one ``interval`` fits in ``warehouse.window`` minutes (its bars are then
        in memory); in a worker thread otherwise, as DuckDB may answer.
        """
        if interval_minutes(interval) <= self._window:
            return self._wh.latest_derived(symbol, interval)
        return await asyncio.to_thread(self._wh.latest_derived, symbol, interval)

    async def get_last_n_derived_bars(
        self, symbol: str, n: int, interval: Interval = "5m"
    ) -> list[DerivedBar]:
        """The last ``n`` ``interval`` bars of ``symbol`` (`Warehouse.last_n_derived`).

        Inline when ``n`` intervals fit in ``warehouse.window`` minutes; in a worker thread
        otherwise, as DuckDB may answer.
        """
        if bars_wanted(n) * interval_minutes(interval) <= self._window:
            return self._wh.last_n_derived(symbol, n, interval)
        return await asyncio.to_thread(self._wh.last_n_derived, symbol, n, interval)

    async def sql(self, query: str, params: Params = None) -> pa.Table:
        """Run SQL over ``bars`` (`Warehouse.sql`) in a worker thread."""
        return await asyncio.to_thread(self._wh.sql, query, params)

    async def query(self, name: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a named query from ``sql/`` (`Warehouse.query`) in a worker thread."""
        return await asyncio.to_thread(self._wh.query, name, params)

    async def frame(
        self,
        symbols: Iterable[str] | None = None,
        start: dt.datetime | int | str | None = None,
        end: dt.datetime | int | str | None = None,
    ) -> pl.DataFrame:
        """Bars as a polars DataFrame (`Warehouse.frame`), in a worker thread."""
        return await asyncio.to_thread(self._wh.frame, symbols, start, end)

    async def __aenter__(self) -> SessionData:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"SessionData({self._wh!r})"


# -- the process's one SessionData -----------------------------------------------------------

_lock = threading.Lock()
_current: SessionData | None = None


def configure_session_data(warehouse: Warehouse) -> SessionData:
    """Make the process's one `SessionData`, over ``warehouse``; returns it.

    Call it once at start-up. Calling it again with the same warehouse returns the same
    `SessionData` (safe from any number of threads at once).

    Raises
    ------
    SessionDataError
        It is already configured over another warehouse (`reset_session_data` first).

    Examples
    --------
    >>> with Warehouse(":memory:") as wh:
    ...     configure_session_data(wh) is get_session_data()
    True
    >>> _ = reset_session_data()
    """
    global _current
    with _lock:
        if _current is None:
            _current = SessionData(warehouse)
        elif _current.warehouse is not warehouse:
            raise SessionDataError(_current.warehouse, warehouse)
        return _current


def get_session_data() -> SessionData:
    """The process's one `SessionData`, as `configure_session_data` made it.

    Raises
    ------
    SessionDataError
        `configure_session_data` has not been called (or `reset_session_data` was since).
    """
    current = _current
    if current is None:
        raise SessionDataError(None)
    return current


def reset_session_data() -> SessionData | None:
    """Forget the process's `SessionData` (for tests, or to switch warehouses); returns it.

    Its warehouse is left open: close it (``await session_data.close()``) if it is done.
    """
    global _current
    with _lock:
        previous, _current = _current, None
    return previous
