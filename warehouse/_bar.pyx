# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled `Bar`, and conversions of many bars to and from Arrow columns.

A session holds millions of bars. As Python tuples every one is tracked by the cyclic garbage
collector, which then walks them all (650-900 ns a bar over a session, full collections of
hundreds of milliseconds); as a ``cdef class`` with C fields and ``no_gc`` a bar is invisible
to the collector (it can reference nothing but its symbol string, so it can be in no cycle) and
takes ~90 bytes instead of ~300.

`Bar` keeps the face of the named tuple it replaces: attribute access, ``time``, unpacking
(``wh.append(*bar)``), indexing and slicing, ``len``, equality and ordering with bars and
tuples, hashing, pickling, ``_replace``, ``_asdict`` and ``_fields``. It is not a ``tuple``
subclass: ``isinstance(bar, tuple)`` is False.
"""

cimport cython
from libc.math cimport NAN

import numpy as np
import pyarrow as pa

from datetime import datetime, timedelta, timezone

cdef object _EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
cdef tuple _FIELDS = ("symbol", "ts", "open", "high", "low", "close", "volume", "vwap",
                      "trade_count")
cdef object _TS_TYPE = pa.timestamp("us", tz="UTC")


@cython.no_gc
@cython.final
@cython.freelist(256)
cdef class Bar:
    """One OHLCV bar; ``ts`` is the bar's UTC instant in integer microseconds.

    ``Bar(symbol, ts, open, high, low, close, volume, vwap=None, trade_count=None)`` stores
    what it is given without validating it (`append` and `extend` validate).
    """

    _fields = _FIELDS
    __match_args__ = _FIELDS

    def __init__(self, object symbol, long long ts, double open, double high, double low,
                 double close, double volume, object vwap=None, object trade_count=None):
        if not isinstance(symbol, str):
            raise TypeError(f"Bar symbol must be a str, not {type(symbol).__name__}")
        # A str subclass (a StrEnum member, say) is kept as the plain string it holds.
        self.symbol = symbol if type(symbol) is str else symbol[:]
        self.ts = ts
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self._has_vwap = vwap is not None
        self._vwap = vwap if self._has_vwap else NAN
        self._has_count = trade_count is not None
        self._trade_count = trade_count if self._has_count else 0

    @property
    def vwap(self):
        """The bar's volume-weighted average price, or None if the feed gave none."""
        return self._vwap if self._has_vwap else None

    @property
    def trade_count(self):
        """The number of trades in the bar, or None if the feed gave none."""
        return self._trade_count if self._has_count else None

    @property
    def time(self):
        """The bar's timestamp as a timezone-aware UTC `datetime`."""
        return _EPOCH + timedelta(microseconds=self.ts)

    # -- the named tuple's face ---------------------------------------------------------------

    cdef tuple _tuple(self):
        return (self.symbol, self.ts, self.open, self.high, self.low, self.close, self.volume,
                self._vwap if self._has_vwap else None,
                self._trade_count if self._has_count else None)

    def __len__(self):
        return 9

    def __iter__(self):
        return iter(self._tuple())

    def __getitem__(self, index):
        return self._tuple()[index]

    def __hash__(self):
        return hash(self._tuple())

    def __richcmp__(self, other, int op):
        if isinstance(other, Bar):
            other = (<Bar>other)._tuple()
        elif not isinstance(other, tuple):
            return NotImplemented
        mine = self._tuple()
        if op == 2:
            return mine == other
        if op == 3:
            return mine != other
        if op == 0:
            return mine < other
        if op == 1:
            return mine <= other
        if op == 4:
            return mine > other
        return mine >= other

    def __repr__(self):
        return "Bar(" + ", ".join(
            f"{name}={value!r}" for name, value in zip(_FIELDS, self._tuple())
        ) + ")"

    def __reduce__(self):
        return (Bar, self._tuple())

    def _replace(self, **changes):
        """A copy of the bar with some fields changed (as a named tuple's ``_replace``)."""
        values = dict(zip(_FIELDS, self._tuple()))
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ValueError(f"Got unexpected field names: {sorted(unknown)!r}")
        values.update(changes)
        return Bar(*values.values())

    def _asdict(self):
        """The bar's fields as a dict, in field order."""
        return dict(zip(_FIELDS, self._tuple()))


def bars_to_columns(list bars):
    """The bars' fields as Arrow arrays, in `Bar` field order (one C loop, no per-bar objects)."""
    cdef Py_ssize_t n = len(bars), i
    cdef Bar bar
    symbols = [None] * n
    ts_np = np.empty(n, dtype=np.int64)
    values_np = np.empty((7, n), dtype=np.float64)
    counts_np = np.empty(n, dtype=np.int64)
    no_vwap_np = np.empty(n, dtype=np.bool_)
    no_count_np = np.empty(n, dtype=np.bool_)
    cdef long long[::1] ts = ts_np
    cdef double[:, ::1] values = values_np
    cdef long long[::1] counts = counts_np
    cdef unsigned char[::1] no_vwap = no_vwap_np.view(np.uint8)
    cdef unsigned char[::1] no_count = no_count_np.view(np.uint8)
    for i in range(n):
        bar = <Bar?>bars[i]
        symbols[i] = bar.symbol
        ts[i] = bar.ts
        values[0, i] = bar.open
        values[1, i] = bar.high
        values[2, i] = bar.low
        values[3, i] = bar.close
        values[4, i] = bar.volume
        values[5, i] = bar._vwap
        counts[i] = bar._trade_count
        no_vwap[i] = not bar._has_vwap
        no_count[i] = not bar._has_count
    return [
        pa.array(symbols, pa.string()),
        pa.array(ts_np, pa.int64()).view(_TS_TYPE),
        *(pa.array(values_np[k], pa.float64()) for k in range(5)),
        pa.array(values_np[5], pa.float64(), mask=no_vwap_np),
        pa.array(counts_np, pa.int64(), mask=no_count_np),
    ]


def bars_from_columns(list symbols, ts_np, values_np, vwap_np, counts_np, has_vwap_np,
                      has_count_np):
    """Bars from columns (numpy: int64 ts, float64 (5, n) values, vwap, int64 counts, bool masks).

    The inverse of `bars_to_columns`, for reads that turn stored rows back into bars.
    """
    cdef Py_ssize_t n = len(symbols), i
    cdef const long long[::1] ts = ts_np
    cdef const double[:, ::1] values = values_np
    cdef const double[::1] vwap = vwap_np
    cdef const long long[::1] counts = counts_np
    cdef const unsigned char[::1] has_vwap = has_vwap_np.view(np.uint8)
    cdef const unsigned char[::1] has_count = has_count_np.view(np.uint8)
    cdef list out = [None] * n
    cdef Bar bar
    for i in range(n):
        bar = Bar.__new__(Bar)
        bar.symbol = symbols[i]
        bar.ts = ts[i]
        bar.open = values[0, i]
        bar.high = values[1, i]
        bar.low = values[2, i]
        bar.close = values[3, i]
        bar.volume = values[4, i]
        bar._has_vwap = has_vwap[i]
        bar._vwap = vwap[i] if has_vwap[i] else NAN
        bar._has_count = has_count[i]
        bar._trade_count = counts[i] if has_count[i] else 0
        out[i] = bar
    return out
