# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled hot path: per-symbol hot state (`Series`) and the single-bar `Appender`.

`AppendBuffer` (buffer.py) owns the state and every rare path (late bars, corrections, batches,
reads past the window, drains); what runs for every bar of a live feed is here, on C values:
the conversions and the range checks of validation, the bar, the symbol's timestamps, window
and session metrics, the latest bar, the append log, under the buffer's lock. Anything unusual
(a value that is not a float or an int, a timestamp that is not integer microseconds or what
feeds send, an invalid bar, a new symbol, a bar not newer than its symbol's latest) is handed to
the Python functions given at construction, so there is one definition of each rule.

The append log's single appends are columnar (`Columns`): one growable C buffer per field
(the symbol as an int32 code, its `Series.code`, an index into the buffer's list of symbol
names), which a seal hands to Arrow without a copy, as a record batch whose symbol column is
dictionary-encoded over those names (`log.py` decodes it to strings, outside the lock).

Session metrics are running totals in each `Series` (a C struct, `Totals`): the append adds an
in-order bar to them in a few C statements; every other change (`metrics.py`, under the lock)
replaces them whole with one `Series.set_totals` call. Readers (`Reader.metrics`,
`Reader.metrics_columns`) take no lock: they copy the struct in C, and no Python code (so no
other thread) runs between an append's first store and its last, nor within a copy.
"""

cimport cython

cdef extern from "Python.h":
    dict _PyDict_NewPresized(Py_ssize_t minused)
from cpython cimport array
from cpython.datetime cimport (
    PyDateTime_Check,
    PyDateTime_CheckExact,
    PyDateTime_DATE_GET_HOUR,
    PyDateTime_DATE_GET_MICROSECOND,
    PyDateTime_DATE_GET_MINUTE,
    PyDateTime_DATE_GET_SECOND,
    PyDateTime_DATE_GET_TZINFO,
    PyDateTime_DELTA_GET_DAYS,
    PyDateTime_DELTA_GET_MICROSECONDS,
    PyDateTime_DELTA_GET_SECONDS,
    PyDateTime_GET_DAY,
    PyDateTime_GET_MONTH,
    PyDateTime_GET_YEAR,
    PyDelta_CheckExact,
    import_datetime,
)
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.exc cimport PyErr_Clear
from cpython.ref cimport PyObject

cdef extern from "Python.h":
    # Without Cython's error check: forget_derived clears a failure itself.
    int _dict_del "PyDict_DelItem"(PyObject* mp, PyObject* key)
    ctypedef struct PyNumberMethods:
        void* nb_int
    ctypedef struct PyTypeObject:
        PyNumberMethods* tp_as_number
    PyTypeObject PyLong_Type
    PyTypeObject* Py_TYPE(object)
from libc.math cimport INFINITY, NAN
from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

from warehouse._bar cimport Bar
from warehouse._lock cimport Lock
from warehouse._metrics cimport SessionMetrics, make_metrics

import array as _array
import sys as _sys
from datetime import UTC as _UTC
from datetime import timezone as _timezone
from zoneinfo import ZoneInfo as _ZoneInfo

import numpy as np
import pyarrow as pa

from warehouse.schema import BAR_SCHEMA, MAX_TS, MIN_TS, PLAIN_FROM, PLAIN_UNTIL

cdef long long _MIN_TS = MIN_TS
cdef long long _MAX_TS = MAX_TS
# The bands of integers that plainly are epoch seconds and milliseconds (`schema.plain_unit`).
cdef long long _SECONDS_FROM = PLAIN_FROM
cdef long long _SECONDS_UNTIL = PLAIN_UNTIL
cdef long long _MILLIS_FROM = PLAIN_FROM * 1000
cdef long long _MILLIS_UNTIL = PLAIN_UNTIL * 1000
cdef array.array _EMPTY_STAMPS = _array.array("q")


@cython.final
cdef class Series:
    """One symbol's hot state: all its timestamps, and a window of its latest bars.

    ``code`` is the index of its symbol in the buffer's list of symbol names (`HotState.names`,
    shared with the log's `Columns`), which `HotState` assigns when it makes the series.
    """

    def __init__(self, int32_t code, str symbol=None, list caches=None):
        self.symbol = symbol
        self.caches = caches
        self.last_ts = _MIN_TS - 1
        self.stamps = array.clone(_EMPTY_STAMPS, 0, False)
        self.window = []
        self.lazy = None
        self.code = code
        # The totals start zeroed (the object's memory is), with count 0: no bars; so do the
        # forming buckets, and no derived bar is cached.

    def get_totals(self):
        """Its session metrics' running totals, in the field order of `metrics.Totals`."""
        cdef Totals t = self.totals
        return (t.count, t.last_ts, t.high, t.low, t.close, t.volume, t.pv, t.first_ts, t.open,
                t.volume_scale, t.pv_scale, t.stale)

    def set_totals(self, long long count, long long last_ts, double high, double low,
                   double close, double volume, double pv, long long first_ts, double open,
                   double volume_scale, double pv_scale, bint stale):
        """Replace the running totals whole (in the field order of `metrics.Totals`).

        The arguments are converted before the first store, so a lock-free reader sees the old
        totals or the new ones, never a mix.
        """
        self.totals = Totals(count, last_ts, high, low, close, volume, pv, first_ts, open,
                             volume_scale, pv_scale, stale)

    def get_derived(self, int k):
        """The forming bucket of declared interval ``k``: the fields of `set_derived`, then its
        version (bumped by every change).
        """
        if not 0 <= k < MAX_DERIVED:
            raise IndexError(k)
        cdef Forming f = self.derived[k]
        return (f.start, f.end, f.last_ts, f.count, f.open, f.high, f.low, f.close, f.volume,
                f.pv, f.trades, f.counted, f.stale, f.version)

    def set_derived(self, int k, long long start, long long end, long long last_ts,
                    long long count, double open, double high, double low, double close,
                    double volume, double pv, long long trades, bint counted, bint stale):
        """Replace the forming bucket of declared interval ``k`` whole.

        The arguments are converted before the first store, so a lock-free reader sees the old
        bucket or the new one, never a mix.
        """
        if not 0 <= k < MAX_DERIVED:
            raise IndexError(k)
        self.derived[k] = Forming(
            end=end, last_ts=last_ts, high=high, low=low, close=close, volume=volume, pv=pv,
            count=count, version=self.derived[k].version + 1, trades=trades, counted=counted,
            stale=stale, start=start, open=open)
        forget_derived(self, 1u << k)

    def mark_derived_stale(self):
        """Mark every forming bucket unknown: the next read recomputes it from the bars.

        The cached finished bars go with them (`revision`).
        """
        cdef int k
        for k in range(MAX_DERIVED):
            self.derived[k].stale = True
            self.derived[k].version += 1
        self.revision += 1
        forget_derived(self, ~0u)

    def metrics(self, str symbol):
        """Its session metrics as a `SessionMetrics` (None if it has no bars).

        For callers holding the buffer's lock; the totals must not be stale.
        """
        return _metrics_of(symbol, &self.totals)


cdef void forget_derived(Series series, unsigned int bits) noexcept:
    """Take the cached derived bars of intervals ``bits`` of a series out (after a change).

    After the change, never before: a reader that made a bar of the old bucket meanwhile
    does not cache it (its version moved), one that made a bar of the new one may.
    """
    cdef unsigned int held = series.current & bits
    cdef int k
    if held == 0:
        return
    series.current &= ~bits
    for k in range(MAX_DERIVED):
        if held & (1u << k):
            # A str key: no Python code runs (the bar it drops holds numbers and a str). The
            # entry is there while the bit is set; were it not, there is nothing to take out.
            if _dict_del(<PyObject*>series.caches[k], <PyObject*>series.symbol) < 0:
                PyErr_Clear()


cdef inline bint _other_unit(long long t) noexcept:
    # An integer ts that plainly is epoch seconds or milliseconds: refused, never stored as an
    # instant of 1970 (one of nanoseconds is past 2200 as microseconds: the range refuses it).
    # Real bars are past both bands: one compare.
    return t < _MILLIS_UNTIL and (_MILLIS_FROM <= t or _SECONDS_FROM <= t < _SECONDS_UNTIL)


cdef inline object _metrics_of(str symbol, const Totals* t):
    # A record of totals (None for a series without bars).
    if t.count == 0:
        return None
    return make_metrics(symbol, t.first_ts, t.last_ts, t.count, t.open, t.high, t.low,
                        t.close, t.volume, t.pv)


# -- the columnar log ---------------------------------------------------------------------------
# Buffer k of `Columns` holds one field of every row: ts, open, high, low, close, volume, vwap,
# vwap's validity bitmap, trade_count, its validity bitmap, the symbol's code.

cdef enum:
    _VWAP = 6
    _VWAP_VALID = 7
    _COUNT = 8
    _COUNT_VALID = 9
    _CODE = 10
    _BUFFERS = 11

cdef Py_ssize_t _MIN_CAPACITY = 1024
cdef object _TS_TYPE = BAR_SCHEMA.field("ts").type
cdef object _F64 = pa.float64()
cdef object _I64 = pa.int64()
cdef object _I32 = pa.int32()
#: A sealed batch: `BAR_SCHEMA` but for the symbol, dictionary-encoded over the symbol names.
LOG_SCHEMA = BAR_SCHEMA.set(
    0, BAR_SCHEMA.field("symbol").with_type(pa.dictionary(pa.int32(), pa.string())))


cdef inline Py_ssize_t _size(int k, Py_ssize_t rows) noexcept:
    # The bytes buffer k takes for `rows` rows.
    if k == _VWAP_VALID or k == _COUNT_VALID:
        return (rows + 7) >> 3
    if k == _CODE:
        return rows * 4
    return rows * 8


@cython.final
cdef class _Memory:
    """C memory under Arrow buffers: freed when the last of them is dropped."""

    cdef char* data
    cdef Py_ssize_t size

    def __dealloc__(self):
        free(self.data)


@cython.final
cdef class Columns:
    """The log's single appends: one growable C buffer per field, handed to Arrow by `seal`.

    Only touched under the buffer's lock. ``names`` is the buffer's list of symbol names in
    order of first appearance (`HotState` appends to it and clears it); a row's symbol is held
    as its series' code, an index into it.
    """

    def __init__(self, list names not None):
        self.names = names
        self._max_code = -1

    def __dealloc__(self):
        cdef int k
        for k in range(_BUFFERS):
            free(self._data[k])

    def __len__(self):
        return self._count

    cdef int reserve(self) except -1:
        """Make room for one more row (called before anything else changes)."""
        cdef Py_ssize_t capacity, old
        cdef char* grown
        cdef int k
        if self._count < self._capacity:
            return 0
        capacity = max(_MIN_CAPACITY, 2 * self._capacity)
        for k in range(_BUFFERS):
            grown = <char*>realloc(self._data[k], _size(k, capacity))
            if grown == NULL:
                raise MemoryError("the append log cannot grow")
            self._data[k] = grown
        for k in (_VWAP_VALID, _COUNT_VALID):
            old = _size(k, self._capacity)
            memset(self._data[k] + old, 0, _size(k, capacity) - old)
        self._capacity = capacity
        return 0

    cdef void push(self, Bar bar, int32_t code) noexcept:
        """Write one bar as the next row (after `reserve`)."""
        cdef Py_ssize_t i = self._count
        cdef uint8_t bit = 1 << (i & 7)
        cdef uint8_t* vwap_valid = <uint8_t*>self._data[_VWAP_VALID] + (i >> 3)
        cdef uint8_t* count_valid = <uint8_t*>self._data[_COUNT_VALID] + (i >> 3)
        (<int64_t*>self._data[0])[i] = bar.ts
        (<double*>self._data[1])[i] = bar.open
        (<double*>self._data[2])[i] = bar.high
        (<double*>self._data[3])[i] = bar.low
        (<double*>self._data[4])[i] = bar.close
        (<double*>self._data[5])[i] = bar.volume
        (<double*>self._data[_VWAP])[i] = bar._vwap
        (<int64_t*>self._data[_COUNT])[i] = bar._trade_count
        (<int32_t*>self._data[_CODE])[i] = code
        if bar._has_vwap:
            vwap_valid[0] |= bit
        else:
            vwap_valid[0] &= ~bit
            self._vwap_nulls += 1
        if bar._has_count:
            count_valid[0] |= bit
        else:
            count_valid[0] &= ~bit
            self._count_nulls += 1
        if code > self._max_code:
            self._max_code = code
        self._count = i + 1

    def seal(self):
        """The rows as a `LOG_SCHEMA` batch over these very buffers (no copy), or None if empty.

        The buffers now belong to the batch (freed when Arrow drops them); the columns start
        afresh.
        """
        cdef Py_ssize_t n = self._count
        cdef list owners = []
        cdef _Memory owner
        cdef int k
        if n == 0:
            return None
        for k in range(_BUFFERS):
            owner = _Memory.__new__(_Memory)
            owner.size = _size(k, n)
            owners.append(owner)
        dictionary = self._dictionary_now()
        for k in range(_BUFFERS):
            (<_Memory>owners[k]).data = self._data[k]  # lent until the batch is made
        try:
            batch = _batch(owners, dictionary, 0, n, self._vwap_nulls, self._count_nulls)
        except BaseException:
            for owner in owners:
                owner.data = NULL  # the rows stay here
            raise
        for k in range(_BUFFERS):
            self._data[k] = NULL
        self._count = self._capacity = self._vwap_nulls = self._count_nulls = 0
        self._max_code = -1
        return batch

    def copy(self, Py_ssize_t start):
        """Rows ``start`` to the end as a `LOG_SCHEMA` batch of copied memory (a snapshot's).

        The rows stay in the columns. None if there are none.
        """
        cdef Py_ssize_t n = self._count
        cdef Py_ssize_t first = start & ~7  # the copy starts on a bitmap byte
        cdef list owners = []
        cdef _Memory owner
        cdef int k
        if not 0 <= start < n:
            return None
        dictionary = self._dictionary_now()
        for k in range(_BUFFERS):
            owner = _Memory.__new__(_Memory)
            owner.size = _size(k, n - first)
            owner.data = <char*>malloc(owner.size)
            if owner.data == NULL:
                raise MemoryError("the append log cannot be copied")
            memcpy(owner.data, self._data[k] + _size(k, first), owner.size)
            owners.append(owner)
        return _batch(owners, dictionary, start - first, n - start, -1, -1)

    def clear(self):
        """Forget every row (the buffers are kept for the next ones)."""
        self._count = self._vwap_nulls = self._count_nulls = 0
        self._max_code = -1
        self._dictionary = None
        self._dictionary_size = 0

    cdef object _dictionary_now(self):
        # The symbol names as an Arrow array, extended when names were added since the last.
        cdef Py_ssize_t size = len(self.names)
        if self._max_code >= size:  # pragma: no cover - HotState assigns codes from names
            raise RuntimeError("a row of the append log has a symbol code without a name")
        if self._dictionary is None or size < self._dictionary_size:
            self._dictionary = pa.array(self.names, pa.string())
        elif size > self._dictionary_size:
            self._dictionary = pa.concat_arrays(
                [self._dictionary, pa.array(self.names[self._dictionary_size:], pa.string())])
        self._dictionary_size = size
        return self._dictionary


cdef object _batch(list owners, object dictionary, Py_ssize_t offset, Py_ssize_t n,
                   Py_ssize_t vwap_nulls, Py_ssize_t count_nulls):
    # A LOG_SCHEMA batch of n rows over the owners' memory (Arrow keeps the owners alive).
    cdef _Memory owner
    cdef list buffers = []
    for owner in owners:
        buffers.append(pa.foreign_buffer(<uintptr_t>owner.data, owner.size, base=owner))
    codes = pa.Array.from_buffers(_I32, n, [None, buffers[_CODE]], 0, offset)
    return pa.RecordBatch.from_arrays([
        pa.DictionaryArray.from_arrays(codes, dictionary, safe=False),
        pa.Array.from_buffers(_TS_TYPE, n, [None, buffers[0]], 0, offset),
        pa.Array.from_buffers(_F64, n, [None, buffers[1]], 0, offset),
        pa.Array.from_buffers(_F64, n, [None, buffers[2]], 0, offset),
        pa.Array.from_buffers(_F64, n, [None, buffers[3]], 0, offset),
        pa.Array.from_buffers(_F64, n, [None, buffers[4]], 0, offset),
        pa.Array.from_buffers(_F64, n, [None, buffers[5]], 0, offset),
        pa.Array.from_buffers(_F64, n, [buffers[_VWAP_VALID], buffers[_VWAP]], vwap_nulls, offset),
        pa.Array.from_buffers(_I64, n, [buffers[_COUNT_VALID], buffers[_COUNT]], count_nulls,
                              offset),
    ], schema=LOG_SCHEMA)


# -- timestamps --------------------------------------------------------------------------------
# A feed's ts converted in C: `schema.to_micros` is the rule, and this its fast path for what
# feeds send. Anything else, and anything the rule would refuse, is left to it (it raises), so
# both give the same answer and the same error for every value.

import_datetime()

cdef long long _MICROS_A_DAY = 86_400_000_000
# The fixed-offset `timezone` last seen, and its offset: a feed's zone, without a call per bar.
cdef object _zone = None
cdef long long _zone_offset = 0
# pandas.Timestamp, once pandas is seen (it is never imported here).
cdef object _pandas_timestamp = None


@cython.cdivision(True)
cdef inline long long _days_from_civil(long long y, long long m, long long d) noexcept:
    # Days from 1970-01-01 to y-m-d, proleptic Gregorian, for years 1..9999 (Howard Hinnant's
    # days_from_civil; every quantity is non-negative there).
    y -= m <= 2
    cdef long long era = y // 400, yoe = y - era * 400
    cdef long long doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


cdef int _utc_offset(object tz, object dt, long long* out) except -1:
    # 1 and the offset in microseconds of aware `dt` (its tzinfo `tz`), or 0 where the Python
    # rule decides: no offset (naive), a call that raises, or an answer datetime would refuse.
    global _zone, _zone_offset
    cdef long long micros
    if tz is _UTC:
        out[0] = 0
        return 1
    if tz is _zone:
        out[0] = _zone_offset
        return 1
    try:
        offset = tz.utcoffset(dt)
    except Exception:
        return 0
    if not PyDelta_CheckExact(offset):
        return 0
    micros = ((<long long>PyDateTime_DELTA_GET_DAYS(offset) * 86_400
               + PyDateTime_DELTA_GET_SECONDS(offset)) * 1_000_000
              + PyDateTime_DELTA_GET_MICROSECONDS(offset))
    if not -_MICROS_A_DAY < micros < _MICROS_A_DAY:
        return 0
    if type(tz) is _timezone:  # fixed: the same offset for every datetime
        _zone = None
        _zone_offset = micros
        _zone = tz
    out[0] = micros
    return 1


cdef inline long long _wall_micros(object ts) noexcept:
    # The microseconds from 1970-01-01 00:00 to a datetime's fields (its wall time).
    return ((_days_from_civil(PyDateTime_GET_YEAR(ts), PyDateTime_GET_MONTH(ts),
                              PyDateTime_GET_DAY(ts)) * 86_400
             + PyDateTime_DATE_GET_HOUR(ts) * 3600 + PyDateTime_DATE_GET_MINUTE(ts) * 60
             + PyDateTime_DATE_GET_SECOND(ts)) * 1_000_000
            + PyDateTime_DATE_GET_MICROSECOND(ts))


cdef int _fast_micros(object ts, long long* out) except -1:
    # 1 and the UTC microseconds of `ts` (checked as `schema.to_micros` checks them), or 0: the
    # Python rule decides. Taken here: an aware datetime (from its fields and its zone's
    # offset), a pandas.Timestamp with a zone, an int subclass that converts as int does.
    global _pandas_timestamp
    cdef long long micros, offset, nanos
    cdef type kind = type(ts)
    if PyDateTime_CheckExact(ts):
        tz = <object>PyDateTime_DATE_GET_TZINFO(ts)
        if tz is None or not _utc_offset(tz, ts, &offset):
            return 0
        micros = _wall_micros(ts) - offset
    elif kind is _pandas_timestamp:
        # The rule takes Timestamp - epoch: its nanoseconds floored to the microsecond. In UTC
        # or a fixed offset that is its fields (its wall time to the microsecond) less the
        # offset; in another zone, its `value` (a zone's utcoffset reads a subclass's fields
        # one attribute at a time), the zone asked first only where it might refuse, as the
        # rule asks it for an offset.
        tz = <object>PyDateTime_DATE_GET_TZINFO(ts)
        if tz is None:
            return 0
        if tz is _UTC or type(tz) is _timezone:
            if not _utc_offset(tz, ts, &offset):
                return 0
            micros = _wall_micros(ts) - offset
        else:
            if type(tz) is not _ZoneInfo and not _utc_offset(tz, ts, &offset):
                return 0
            try:
                value = ts.value
            except Exception:
                return 0
            if type(value) is not int:
                return 0
            try:
                nanos = value
            except OverflowError:
                return 0
            micros = nanos // 1000  # floored, as Python's // is
    elif isinstance(ts, int):
        # bool, or an __int__ of its own, is the rule's: it refuses the one and calls the other.
        if kind is bool or Py_TYPE(ts).tp_as_number.nb_int != PyLong_Type.tp_as_number.nb_int:
            return 0
        try:
            micros = ts
        except OverflowError:
            return 0
        if _other_unit(micros):
            return 0
    else:
        if _pandas_timestamp is None and PyDateTime_Check(ts):
            pandas = _sys.modules.get("pandas")
            found = getattr(pandas, "Timestamp", None) if pandas is not None else None
            if kind is found:
                _pandas_timestamp = found
                return _fast_micros(ts, out)
        return 0
    if not _MIN_TS <= micros < _MAX_TS:
        return 0
    out[0] = micros
    return 1


def fast_micros(value):
    """The compiled append's conversion of a ts: UTC microseconds, or None if it defers.

    Where it gives a value, it is `schema.to_micros`'s; None where that rule decides (a value
    it refuses, or one of the rarer kinds: an ISO string, a datetime subclass of its own).
    """
    cdef long long micros
    return micros if _fast_micros(value, &micros) else None


cdef inline double _as_double(object value) except? -1.0:
    # float() for anything else: numeric strings, Decimals and numpy numbers are taken as
    # Python takes them (documented); TypeError, ValueError or OverflowError otherwise.
    if type(value) is float:
        return PyFloat_AS_DOUBLE(value)
    return PyFloat_AS_DOUBLE(float(value))


@cython.final
cdef class Appender:
    """The single-bar append of one `AppendBuffer` (its bound `append` is the hot path)."""

    def __init__(self, dict series, dict latest, Columns columns, set replaced, Lock lock not None,
                 new_series, place_older, explain, on_full, journal_bar,
                 SegmentWriter journal_writer, to_micros, closed_error, Py_ssize_t keep,
                 Py_ssize_t cap, Py_ssize_t flush_rows, bint metrics, tuple steps=()):
        self._series = series
        self._latest = latest
        self._columns = columns
        self._replaced = replaced
        self._lock = lock
        self._new_series = new_series
        self._place_older = place_older
        self._explain = explain
        self._on_full = on_full
        # The journal (None: none): records go through its segment writer in C; when that
        # cannot take one (no segment open, or full), through journal_bar, which opens one.
        self._journal_bar = journal_bar
        self._journal_writer = journal_writer
        if (journal_bar is None) != (journal_writer is None):
            raise ValueError("a journal needs both its writer and its write_bar")
        self._to_micros = to_micros
        self._closed_error = closed_error
        self._keep = keep
        self._cap = cap
        self._flush_rows = flush_rows
        self._metrics = metrics
        if len(steps) > MAX_DERIVED:
            raise ValueError(f"at most {MAX_DERIVED} intervals can be kept incrementally")
        self._derived = len(steps)
        cdef int k
        for k in range(self._derived):
            self._steps[k] = steps[k]
            if self._steps[k] <= 0:
                raise ValueError(f"a derived interval's step must be positive, got {steps[k]}")
        self.closed = False
        self.window_open = _MIN_TS
        self.window_close = _MAX_TS

    def close(self):
        """Refuse every later append (call it with the buffer's lock held)."""
        self.closed = True

    def append(self, symbol, ts, open, high, low, close, volume, vwap=None, trade_count=None):
        """Validate one bar and add it; it is visible to every reader when this returns.

        ``ts`` is integer UTC microseconds, an aware `datetime` (a `pandas.Timestamp` too),
        or an ISO 8601 string with an offset. A bar whose (symbol, ts) is already stored
        replaces it (a correction).

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
        cdef bint valid, given_int
        cdef Bar bar
        cdef Series series
        cdef Totals* totals
        cdef list window
        cdef Py_ssize_t n
        if type(symbol) is not str and isinstance(symbol, str):
            symbol = symbol[:]  # a str subclass (a StrEnum member, say): the plain string
        # An int is checked below, with the bar; anything else is converted and checked here
        # (in C for what feeds send, else by the Python rule, which raises for a bad one).
        # `ts` stays as given, for the explanation.
        given_int = type(ts) is int
        if not given_int and not _fast_micros(ts, &t):
            t = self._to_micros(ts, symbol)
        try:
            if given_int:
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
        valid = (type(symbol) is str and self.window_open <= t < self.window_close
                 and not (given_int and _other_unit(t))
                 and -INFINITY < lo <= h < INFINITY and lo <= o <= h and lo <= c <= h
                 and 0.0 <= v < INFINITY and (not has_vwap or 0.0 <= w < INFINITY))
        if valid and has_count:
            # An int (an IntEnum too), or a numpy integer as extend takes it; never a bool or
            # a float: the same rule as `schema.diagnose`.
            if type(trade_count) is not int and not isinstance(trade_count, bool) \
                    and isinstance(trade_count, (int, np.integer)):
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
        self._lock.take()
        try:
            if self.closed:
                raise self._closed_error(f"the warehouse is closed; bar {symbol!r} {t} not stored")
            self._columns.reserve()  # first: a failed allocation changes nothing
            found = self._series.get(symbol)
            series = self._new_series(symbol, t) if found is None else found
            if series.symbol is not None:
                # The series' own string, not the caller's equal one: a feed that makes a
                # string per message would otherwise keep one per bar of every window (~56 B).
                bar.symbol = series.symbol
            # First: if the journal cannot take it, nothing changed.
            if self._journal_writer is not None and self._journal_writer.put(bar) < 0:
                self._journal_bar(bar)
            if t > series.last_ts:
                if self._derived:
                    self._derive(series, t, o, h, lo, c, v,
                                 (w if has_vwap else (h + lo + c) / 3.0) * v, count, has_count)
                series.last_ts = t
                if self._metrics:
                    totals = &series.totals
                    if totals.count == 0:
                        totals.first_ts = t
                        totals.open = o
                        totals.high = h
                        totals.low = lo
                    else:
                        if h > totals.high:
                            totals.high = h
                        if lo < totals.low:
                            totals.low = lo
                    totals.count += 1
                    totals.last_ts = t
                    totals.close = c
                    totals.volume += v
                    # The price of session_ohlcv.sql: the bar's vwap, else its typical price.
                    totals.pv += (w if has_vwap else (h + lo + c) / 3.0) * v
                n = len(series.stamps)
                array.resize_smart(series.stamps, n + 1)
                series.stamps.data.as_longlongs[n] = t
                window = series.window
                window.append(bar)
                if len(window) > self._cap:
                    del window[:len(window) - self._keep]
                    # Rows older than the window (`lazy`, from a batch or a reopen) are no longer
                    # next to it: kept, a later read would put them before it, with a gap.
                    series.lazy = None
                # Keyed by the series' own string (bar.symbol), as the dict is: an identity match,
                # no compare of the caller's string.
                self._latest[bar.symbol] = bar
            elif self._place_older(series, bar):  # a correction: the flush deletes the old
                # (place_older keeps the metrics, in Python: this path is rare)
                self._replaced.add((symbol, t))
            self._columns.push(bar, series.code)
            if self._columns._count == self._flush_rows and self._on_full is not None:
                self._on_full()
        finally:
            self._lock.give()

    @cython.cdivision(True)
    cdef void _derive(self, Series series, long long t, double o, double h, double lo, double c,
                      double v, double pv, long long count, bint has_count) noexcept:
        # Add an in-order bar (t after every bar of the series) to each declared interval's
        # forming bucket, or start the bucket afresh when t opens a new one. Called before
        # `last_ts` moves to t. The anchor is the session's open (`window_open`, which t is
        # not before); without an open session the buckets are not read, and a session that
        # opens marks them stale (`HotState.mark_derived_stale`).
        cdef long long anchor = self.window_open, prev = series.last_ts, step, start, end
        cdef Forming* f
        cdef bint fresh
        cdef int k
        for k in range(self._derived):
            f = &series.derived[k]
            if not f.stale and f.count != 0 and t < f.end:
                fresh = False  # the usual case: in the forming bucket (t is after its start)
            else:
                step = self._steps[k]
                start = anchor + (t - anchor) / step * step
                if f.stale:
                    # Unknown, but a bar that opens a bucket is all of it.
                    fresh = prev < anchor or anchor + (prev - anchor) / step * step != start
                else:
                    fresh = f.count == 0 or start != f.start
            if fresh:
                end = start + step
                if end > self.window_close:
                    end = self.window_close
                f.start = start
                f.end = end
                f.count = 1
                f.open = o
                f.high = h
                f.low = lo
                f.volume = v
                f.pv = pv
                f.trades = count
                f.counted = has_count
                f.stale = False
            elif not f.stale:
                f.count += 1
                if h > f.high:
                    f.high = h
                if lo < f.low:
                    f.low = lo
                f.volume += v
                f.pv += pv
                if has_count:
                    f.trades += count
                    f.counted = True
            f.close = c
            f.last_ts = t
            f.version += 1
        if series.current:
            forget_derived(series, ~0u)


@cython.final
cdef class Reader:
    """The hot reads of one `AppendBuffer` that are worth compiling.

    Last N, latest of many, and session metrics (``metrics`` and ``metrics_columns``).
    """

    cdef dict _series
    cdef dict _latest
    cdef object _fallback
    cdef bint _metrics
    cdef object _refresh
    cdef object _metrics_off

    def __init__(self, dict series, dict latest, fallback, bint metrics, refresh, metrics_off):
        self._series = series
        self._latest = latest
        self._fallback = fallback
        self._metrics = metrics
        self._refresh = refresh
        self._metrics_off = metrics_off

    def latest_many(self, symbols):
        """The latest bar of each symbol (None for a symbol with no bars)."""
        cdef dict latest = self._latest
        if not isinstance(symbols, (list, tuple)):
            symbols = list(symbols)
        # Sized once: growing a dict of 500 keys from empty rehashes it seven times.
        cdef dict out = _PyDict_NewPresized(len(symbols))
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

    def metrics(self, symbol):
        """The session metrics of ``symbol`` as a `SessionMetrics`, or None if it has no bars.

        Takes no lock: the symbol's totals are copied in C, whole. Totals that a rare path left
        stale (a correction whose old bar is no longer in memory) are first recomputed from
        the symbol's bars by the refresh function, which takes the locks.
        """
        cdef Totals t
        if not self._metrics:
            raise self._metrics_off()
        if type(symbol) is not str and isinstance(symbol, str):
            symbol = symbol[:]  # a str subclass: the plain string, as append takes it
        found = self._series.get(symbol)
        if found is None:
            return None
        t = (<Series>found).totals
        if t.stale:
            return self._refresh(symbol)
        return _metrics_of(symbol, &t)

    def metrics_columns(self):
        """Every symbol's totals as columns, for a frame of all symbols' metrics.

        Returns (names, counts, first_ts, last_ts, values, stale): the symbols with bars, in
        the dict's order; int64 arrays; a float64 array (6, n) of open, high, low, close,
        volume and pv; a bool array marking stale totals. One compiled loop that runs no
        Python code, so each row is one symbol's totals at one instant.
        """
        cdef Py_ssize_t size = len(self._series), n = 0
        cdef Series series
        cdef Totals* t
        if not self._metrics:
            raise self._metrics_off()
        names = [None] * size
        counts_np = np.empty(size, dtype=np.int64)
        first_np = np.empty(size, dtype=np.int64)
        last_np = np.empty(size, dtype=np.int64)
        values_np = np.empty((6, size), dtype=np.float64)
        stale_np = np.zeros(size, dtype=np.bool_)
        cdef long long[::1] counts = counts_np
        cdef long long[::1] first = first_np
        cdef long long[::1] last = last_np
        cdef double[:, ::1] values = values_np
        cdef unsigned char[::1] stale = stale_np.view(np.uint8)
        for name, found in self._series.items():
            series = <Series>found
            t = &series.totals
            if t.count == 0 or n == size:
                continue
            names[n] = name
            counts[n] = t.count
            first[n] = t.first_ts
            last[n] = t.last_ts
            values[0, n] = t.open
            values[1, n] = t.high
            values[2, n] = t.low
            values[3, n] = t.close
            values[4, n] = t.volume
            values[5, n] = t.pv
            stale[n] = t.stale
            n += 1
        return (names[:n], counts_np[:n], first_np[:n], last_np[:n], values_np[:, :n],
                stale_np[:n])


# -- journal records ---------------------------------------------------------------------------
# The journal's single-bar record, packed in C: [u32 length][u32 crc32][payload], payload
# struct "<BqddddddqH" (kind 1, ts, open, high, low, close, volume, vwap or NaN, trade_count or
# -1, symbol length) then the symbol's UTF-8 bytes. journal.py reads records back with struct
# and zlib.crc32: an independent check of this writer.

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport uint16_t, uint32_t

import sys as _sys

if _sys.byteorder != "little":  # the records are little-endian, written with memcpy
    raise ImportError("warehouse's journal writer needs a little-endian machine")

# CRC-32 (IEEE 802.3, reflected, as zlib) eight bytes at a step ("slicing-by-8"): table k
# advances a byte's contribution by k more bytes. A bar's record (~75 bytes) takes ~10 steps
# instead of ~75 table lookups in a chain.
cdef uint32_t _CRC_TABLES[8][256]
cdef uint32_t _ALL_ONES = 0xFFFFFFFF
cdef uint32_t _POLYNOMIAL = 0xEDB88320


cdef void _build_crc_tables() noexcept:
    cdef uint32_t c
    cdef int n, k
    for n in range(256):
        c = n
        for k in range(8):
            c = (_POLYNOMIAL ^ (c >> 1)) if (c & 1) else (c >> 1)
        _CRC_TABLES[0][n] = c
    for n in range(256):
        for k in range(1, 8):
            c = _CRC_TABLES[k - 1][n]
            _CRC_TABLES[k][n] = (c >> 8) ^ _CRC_TABLES[0][c & 0xFF]


_build_crc_tables()


cdef inline uint32_t _crc32(const uint8_t* data, Py_ssize_t size) noexcept nogil:
    # The CRC-32 zlib.crc32 computes (words read little-endian: the module requires it).
    cdef uint32_t c = _ALL_ONES, one, two
    while size >= 8:
        memcpy(&one, data, 4)
        memcpy(&two, data + 4, 4)
        one ^= c
        c = (_CRC_TABLES[7][one & 0xFF] ^ _CRC_TABLES[6][(one >> 8) & 0xFF]
             ^ _CRC_TABLES[5][(one >> 16) & 0xFF] ^ _CRC_TABLES[4][one >> 24]
             ^ _CRC_TABLES[3][two & 0xFF] ^ _CRC_TABLES[2][(two >> 8) & 0xFF]
             ^ _CRC_TABLES[1][(two >> 16) & 0xFF] ^ _CRC_TABLES[0][two >> 24])
        data += 8
        size -= 8
    while size > 0:
        c = _CRC_TABLES[0][(c ^ data[0]) & 0xFF] ^ (c >> 8)
        data += 1
        size -= 1
    return c ^ _ALL_ONES


DEF _BAR_FIXED = 67  # the payload before the symbol: 1 + 8 + 6 * 8 + 8 + 2
DEF _HEADER_BYTES = 8  # [u32 length][u32 crc32]


def bar_record_size(Bar bar):
    """The bytes a bar's record takes (header included)."""
    cdef Py_ssize_t length
    PyUnicode_AsUTF8AndSize(bar.symbol, &length)
    return _HEADER_BYTES + _BAR_FIXED + length


cdef Py_ssize_t _pack(uint8_t* buf, Py_ssize_t at, Py_ssize_t limit, Bar bar) except -2:
    # Write bar's record into buf (which holds at least `limit` bytes) at `at`; its end, or -1
    # (nothing written) if it would end after `limit`. The header goes last: a record whose
    # header is still zero was never finished.
    cdef Py_ssize_t length
    cdef const char* symbol = PyUnicode_AsUTF8AndSize(bar.symbol, &length)
    cdef Py_ssize_t size = _BAR_FIXED + length
    cdef Py_ssize_t end = at + _HEADER_BYTES + size
    cdef uint8_t* p
    cdef uint8_t kind = 1
    cdef int64_t count = bar._trade_count if bar._has_count else -1
    cdef double vwap = bar._vwap if bar._has_vwap else NAN
    cdef uint16_t symbol_length = <uint16_t>length
    cdef uint32_t header[2]
    if at < 0 or end > limit:
        return -1
    p = buf + at + _HEADER_BYTES
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
    memcpy(buf + at, header, _HEADER_BYTES)  # last: the record now exists
    return end


@cython.final
cdef class SegmentWriter:
    """Writes single-bar records into the journal's open segment, holding its buffer.

    `Journal` attaches each segment it opens and detaches it before sealing or closing it (a
    map cannot be closed while its buffer is held). The compiled append writes through `put`
    under the buffer's lock: no call into the interpreter per bar. ``pos`` is where the next
    record goes; the last header's worth of the segment stays zero: its end mark.
    """

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)

    def attach(self, object segment, Py_ssize_t pos):
        """Write into ``segment`` (a writable buffer) from ``pos`` on."""
        self.detach()
        PyObject_GetBuffer(segment, &self.view, PyBUF_WRITABLE)
        self.held = True
        self.pos = pos
        self.limit = self.view.len - _HEADER_BYTES

    def detach(self):
        """Let the segment go (before it is sealed or closed); writes fail until `attach`."""
        if self.held:
            self.held = False
            PyBuffer_Release(&self.view)
        self.pos = self.limit = 0

    def write(self, Bar bar not None):
        """Write ``bar``'s record; False (nothing written) if no segment is attached or full."""
        return self.put(bar) >= 0

    cdef Py_ssize_t put(self, Bar bar) except -2:
        """`write` in C: the record's end, or -1 if it was not written."""
        cdef Py_ssize_t end
        if not self.held:
            return -1
        end = _pack(<uint8_t*>self.view.buf, self.pos, self.limit, bar)
        if end >= 0:
            self.pos = end
        return end
