"""Types of the compiled `warehouse._hot` (see _hot.pyx)."""

import array
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from warehouse._bar import Bar
from warehouse._lock import Lock
from warehouse._metrics import SessionMetrics

#: A sealed batch of single appends: `BAR_SCHEMA` with the symbol dictionary-encoded.
LOG_SCHEMA: pa.Schema

class Series:
    """One symbol's hot state: all its timestamps, and a window of its latest bars."""

    last_ts: int
    stamps: array.array[int]
    window: list[Bar]
    lazy: pa.Table | None
    #: Bumped by every change that may touch a finished derived bucket.
    revision: int
    @property
    def code(self) -> int: ...
    @property
    def symbol(self) -> str | None: ...
    @property
    def caches(self) -> list[dict[str, Any]] | None: ...
    def __init__(
        self, code: int, symbol: str | None = None, caches: list[dict[str, Any]] | None = None
    ) -> None: ...
    def get_totals(
        self,
    ) -> tuple[int, int, float, float, float, float, float, int, float, float, float, bool]: ...
    def set_totals(
        self,
        count: int,
        last_ts: int,
        high: float,
        low: float,
        close: float,
        volume: float,
        pv: float,
        first_ts: int,
        open: float,
        volume_scale: float,
        pv_scale: float,
        stale: bool,
    ) -> None: ...
    def get_derived(
        self, k: int
    ) -> tuple[
        int, int, int, int, float, float, float, float, float, float, int, bool, bool, int
    ]: ...
    def set_derived(
        self,
        k: int,
        start: int,
        end: int,
        last_ts: int,
        count: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        pv: float,
        trades: int,
        counted: bool,
        stale: bool,
    ) -> None: ...
    def mark_derived_stale(self) -> None: ...
    def metrics(self, symbol: str) -> SessionMetrics | None: ...

class Columns:
    """The log's single appends: one growable C buffer per field, handed to Arrow by `seal`."""

    @property
    def names(self) -> list[str]: ...
    def __init__(self, names: list[str]) -> None: ...
    def __len__(self) -> int: ...
    def seal(self) -> pa.RecordBatch | None: ...
    def copy(self, start: int) -> pa.RecordBatch | None: ...
    def clear(self) -> None: ...

class Appender:
    """The single-bar append of one `AppendBuffer` (its bound `append` is the hot path)."""

    def __init__(
        self,
        series: dict[str, Series],
        latest: dict[str, Bar],
        columns: Columns,
        replaced: set[tuple[str, int]],
        lock: Lock,
        new_series: Callable[[str, int], Series],
        place_older: Callable[[Series, Bar], bool],
        explain: Callable[..., Exception],
        on_full: Callable[[], None] | None,
        journal_bar: Callable[[Bar], None] | None,
        journal_writer: SegmentWriter | None,
        to_micros: Callable[[object, object], int],
        closed_error: type[Exception],
        keep: int,
        cap: int,
        flush_rows: int,
        metrics: bool,
        steps: tuple[int, ...] = (),
    ) -> None: ...
    window_open: int
    window_close: int
    def close(self) -> None: ...
    def append(
        self,
        symbol: str,
        ts: Any,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        vwap: float | None = None,
        trade_count: int | None = None,
    ) -> None: ...

class Reader:
    """The hot reads of one `AppendBuffer` that are worth compiling."""

    def __init__(
        self,
        series: dict[str, Series],
        latest: dict[str, Bar],
        fallback: Callable[[str, int], list[Bar]],
        metrics: bool,
        refresh: Callable[[str], SessionMetrics | None],
        metrics_off: Callable[[], Exception],
    ) -> None: ...
    def last_n(self, symbol: str, n: int) -> list[Bar]: ...
    def latest_many(self, symbols: Iterable[str]) -> dict[str, Bar | None]: ...
    def metrics(self, symbol: str) -> SessionMetrics | None: ...
    def metrics_columns(
        self,
    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...

def fast_micros(value: object) -> int | None: ...
def bar_record_size(bar: Bar) -> int: ...

class SegmentWriter:
    """Writes single-bar records into the journal's open segment, holding its buffer."""

    pos: int
    def attach(self, segment: Any, pos: int) -> None: ...
    def detach(self) -> None: ...
    def write(self, bar: Bar) -> bool: ...
