# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled hot path: per-symbol hot state (`Series`) and the single-bar `Appender`.

`AppendBuffer` (buffer.py) owns the state and every rare path (late bars, corrections, batches,
reads past the window, drains); what runs for every bar of a live feed is here, on C values:
the conversions and the range checks of validation, the bar, the symbol's timestamps and
window, the latest bar, the append log, under the buffer's lock. Anything unusual (a value
that is not a float or an int, a timestamp that is not integer microseconds, an invalid bar, a
new symbol, a bar not newer than its symbol's latest) is handed to the Python functions given
at construction, so there is one definition of each rule.
"""

cimport cython
from cpython cimport array
from cpython.float cimport PyFloat_AS_DOUBLE
from libc.math cimport INFINITY, NAN
from libc.stdint cimport int32_t

from warehouse._bar cimport Bar

import array as _array

import numpy as np

cdef long long _MIN_TS = -2_208_988_800_000_000
cdef long long _MAX_TS = 7_258_118_400_000_000
cdef array.array _EMPTY_STAMPS = _array.array("q")


@cython.final
cdef class Series:
    """One symbol's hot state: all its timestamps, and a window of its latest bars.

    ``code`` is the index of its symbol in the buffer's list of symbol names (`HotState.names`),
    which `HotState` assigns when it makes the series.
    """

    def __init__(self, int32_t code):
        self.last_ts = _MIN_TS - 1
        self.stamps = array.clone(_EMPTY_STAMPS, 0, False)
        self.window = []
        self.lazy = None
        self.code = code


cdef inline double _as_double(object value) except? -1.0:
    # float() for anything else: numeric strings, Decimals and numpy numbers are taken as
    # Python takes them (documented); TypeError, ValueError or OverflowError otherwise.
    if type(value) is float:
        return PyFloat_AS_DOUBLE(value)
    return PyFloat_AS_DOUBLE(float(value))


@cython.final
cdef class Appender:
    """The single-bar append of one `AppendBuffer` (its bound `append` is the hot path)."""

    def __init__(self, dict series, dict latest, list pending, set replaced, lock, new_series,
                 place_older, explain, on_full, journal_bar, to_micros, closed_error,
                 Py_ssize_t keep, Py_ssize_t cap, Py_ssize_t flush_rows):
        self._series = series
        self._latest = latest
        self._pending = pending
        self._replaced = replaced
        self._acquire = lock.acquire
        self._release = lock.release
        self._new_series = new_series
        self._place_older = place_older
        self._explain = explain
        self._on_full = on_full
        self._journal_bar = journal_bar
        self._to_micros = to_micros
        self._closed_error = closed_error
        self._keep = keep
        self._cap = cap
        self._flush_rows = flush_rows
        self.closed = False

    def close(self):
        """Refuse every later append (call it with the buffer's lock held)."""
        self.closed = True

    def append(self, symbol, ts, open, high, low, close, volume, vwap=None, trade_count=None):
        """Validate one bar and add it; it is visible to every reader when this returns.

        ``ts`` is integer UTC microseconds, an aware `datetime`, or an ISO 8601 string with
        an offset. A bar whose (symbol, ts) is already stored replaces it (a correction).

        Raises
        ------
        InvalidBarError
            Naming the symbol, ts and field at fault; nothing is stored.
        ClosedError
            The warehouse is closed (or closing); nothing is stored.
        StoreError
            The journal could not record the bar (a full disk); nothing is stored.
        """
        cdef double o, h, lo, c, v, w = NAN
        cdef long long t, count = 0
        cdef bint has_vwap = vwap is not None, has_count = trade_count is not None
        cdef bint valid
        cdef Bar bar
        cdef Series series
        cdef list window
        cdef Py_ssize_t n
        if type(ts) is not int:
            ts = self._to_micros(ts, symbol)
        try:
            t = ts
            o = _as_double(open)
            h = _as_double(high)
            lo = _as_double(low)
            c = _as_double(close)
            v = _as_double(volume)
            if has_vwap:
                w = _as_double(vwap)
        except (TypeError, ValueError, OverflowError):
            raise self._explain(symbol, ts, open, high, low, close, volume, vwap,
                                trade_count) from None
        valid = (type(symbol) is str and _MIN_TS <= t < _MAX_TS
                 and -INFINITY < lo <= h < INFINITY and lo <= o <= h and lo <= c <= h
                 and 0.0 <= v < INFINITY and (not has_vwap or 0.0 <= w < INFINITY))
        if valid and has_count:
            # An int, or a numpy integer as extend takes it; never a bool or a float.
            if type(trade_count) is not int and isinstance(trade_count, np.integer):
                trade_count = int(trade_count)
            valid = type(trade_count) is int
            if valid:
                try:
                    count = trade_count
                except OverflowError:  # beyond BIGINT: the table could not hold it
                    valid = False
                valid = valid and count >= 0
        if not valid:
            raise self._explain(symbol, ts, open, high, low, close, volume, vwap, trade_count)
        bar = Bar.__new__(Bar)
        bar.symbol = symbol
        bar.ts = t
        bar.open = o
        bar.high = h
        bar.low = lo
        bar.close = c
        bar.volume = v
        bar._vwap = w
        bar._has_vwap = has_vwap
        bar._trade_count = count
        bar._has_count = has_count
        self._acquire()
        try:
            if self.closed:
                raise self._closed_error(f"the warehouse is closed; bar {symbol!r} {t} not stored")
            found = self._series.get(symbol)
            series = self._new_series(symbol, t) if found is None else found
            if self._journal_bar is not None:
                self._journal_bar(bar)  # first: if the journal cannot take it, nothing changed
            if t > series.last_ts:
                series.last_ts = t
                n = len(series.stamps)
                array.resize_smart(series.stamps, n + 1)
                series.stamps.data.as_longlongs[n] = t
                window = series.window
                window.append(bar)
                if len(window) > self._cap:
                    del window[:len(window) - self._keep]
                self._latest[symbol] = bar
            elif self._place_older(series, bar):  # a correction: the flush deletes the old
                self._replaced.add((symbol, t))
            self._pending.append(bar)
            if len(self._pending) == self._flush_rows and self._on_full is not None:
                self._on_full()
        finally:
            self._release()


@cython.final
cdef class Reader:
    """The hot reads of one `AppendBuffer` that are worth compiling: last N, latest of many."""

    cdef dict _series
    cdef dict _latest
    cdef object _fallback

    def __init__(self, dict series, dict latest, fallback):
        self._series = series
        self._latest = latest
        self._fallback = fallback

    def latest_many(self, symbols):
        """The latest bar of each symbol (None for a symbol with no bars)."""
        cdef dict out = {}
        cdef dict latest = self._latest
        if not isinstance(symbols, (list, tuple)):
            symbols = list(symbols)
        for name in symbols:
            out[name] = latest.get(name)
        return out

    def last_n(self, symbol, Py_ssize_t n):
        """The last ``n`` bars of ``symbol`` in ts order (fewer if it has fewer).

        Served from the symbol's window; a read past it (or ``n <= 0``) goes to the fallback.
        """
        cdef Series series
        cdef Py_ssize_t held
        found = self._series.get(symbol)
        if found is None:
            return []
        series = <Series>found
        held = len(series.window)
        if 0 < n <= held:
            return series.window[held - n:]
        return self._fallback(symbol, n)


# -- journal records ---------------------------------------------------------------------------
# The journal's single-bar record, packed in C: [u32 length][u32 crc32][payload], payload
# struct "<BqddddddqH" (kind 1, ts, open, high, low, close, volume, vwap or NaN, trade_count or
# -1, symbol length) then the symbol's UTF-8 bytes. journal.py reads records back with struct
# and zlib.crc32: an independent check of this writer.

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

import sys as _sys

if _sys.byteorder != "little":  # the records are little-endian, written with memcpy
    raise ImportError("warehouse's journal writer needs a little-endian machine")

cdef uint32_t _CRC_TABLE[256]
cdef uint32_t _ALL_ONES = 0xFFFFFFFF
cdef uint32_t _POLYNOMIAL = 0xEDB88320  # reflected, as zlib


cdef void _build_crc_table() noexcept:
    cdef uint32_t c
    cdef int n, k
    for n in range(256):
        c = n
        for k in range(8):
            c = (_POLYNOMIAL ^ (c >> 1)) if (c & 1) else (c >> 1)
        _CRC_TABLE[n] = c


_build_crc_table()


cdef inline uint32_t _crc32(const uint8_t* data, Py_ssize_t size) noexcept nogil:
    # CRC-32 (IEEE 802.3), the one zlib.crc32 computes.
    cdef uint32_t c = _ALL_ONES
    cdef Py_ssize_t i
    for i in range(size):
        c = _CRC_TABLE[(c ^ data[i]) & 0xFF] ^ (c >> 8)
    return c ^ _ALL_ONES


DEF _BAR_FIXED = 67  # the payload before the symbol: 1 + 8 + 6 * 8 + 8 + 2


def bar_record_size(Bar bar):
    """The bytes a bar's record takes (header included)."""
    cdef Py_ssize_t length
    PyUnicode_AsUTF8AndSize(bar.symbol, &length)
    return 8 + _BAR_FIXED + length


def write_bar_record(object segment, Py_ssize_t at, Py_ssize_t limit, Bar bar):
    """Write ``bar``'s record into ``segment`` (a writable buffer) at ``at``; return its end.

    Returns -1, writing nothing, if the record would end after ``limit``. The header is written
    last, so a record whose header is still zero was never finished.
    """
    cdef Py_ssize_t length
    cdef const char* symbol = PyUnicode_AsUTF8AndSize(bar.symbol, &length)
    cdef Py_ssize_t size = _BAR_FIXED + length
    cdef Py_ssize_t end = at + 8 + size
    cdef Py_buffer view
    cdef uint8_t* p
    cdef uint8_t kind = 1
    cdef int64_t count = bar._trade_count if bar._has_count else -1
    cdef double vwap = bar._vwap if bar._has_vwap else NAN
    cdef uint16_t symbol_length = <uint16_t>length
    cdef uint32_t header[2]
    if at < 0 or end > limit:
        return -1
    PyObject_GetBuffer(segment, &view, PyBUF_WRITABLE)
    try:
        if end > view.len:
            return -1
        p = <uint8_t*>view.buf + at + 8
        p[0] = kind
        memcpy(p + 1, &bar.ts, 8)
        memcpy(p + 9, &bar.open, 8)
        memcpy(p + 17, &bar.high, 8)
        memcpy(p + 25, &bar.low, 8)
        memcpy(p + 33, &bar.close, 8)
        memcpy(p + 41, &bar.volume, 8)
        memcpy(p + 49, &vwap, 8)
        memcpy(p + 57, &count, 8)
        memcpy(p + 65, &symbol_length, 2)
        memcpy(p + _BAR_FIXED, symbol, length)
        header[0] = <uint32_t>size
        header[1] = _crc32(p, size)
        memcpy(<uint8_t*>view.buf + at, header, 8)  # last: the record now exists
    finally:
        PyBuffer_Release(&view)
    return end
