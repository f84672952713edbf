# The compiled hot path: one symbol's hot state, and the single-bar append (see _hot.pyx).

from cpython cimport array
from libc.stdint cimport int32_t

from warehouse._bar cimport Bar
from warehouse._lock cimport Lock


# A symbol's session metrics as running totals (see metrics.py). The compiled append adds each
# in-order bar to them; every other change replaces them whole (`Series.set_totals`), so a
# reader that copies them in one compiled call sees a whole record.
ctypedef struct Totals:
    long long count
    long long last_ts
    double high
    double low
    double close
    double volume
    # sum of price x volume, price the bar's vwap or else (high + low + close) / 3
    double pv
    long long first_ts
    double open
    # the largest volume and |pv| since the totals were last exact: bounds of rounding error
    double volume_scale
    double pv_scale
    # the totals are unknown: the next read recomputes them from the symbol's bars
    bint stale


cdef void forget_derived(Series series, unsigned int bits) noexcept

# At most this many intervals are kept incrementally (`Warehouse(derived=...)`).
cdef enum:
    MAX_DERIVED = 4


# The forming bucket of one declared interval (see derive.py): the running aggregate of the
# symbol's bars in the bucket of its newest bar, [start, end). The compiled append adds each
# in-order bar to it (or starts it afresh when the bar opens a new bucket); every other change
# replaces it whole (`Series.set_derived`) or marks it stale, so a reader that copies it in one
# compiled call sees a whole record.
# The fields an in-order bar of the same bucket writes come first (one cache line).
ctypedef struct Forming:
    long long end
    # the newest bar in it (its partial flag: last_ts + 1 minute < end)
    long long last_ts
    double high
    double low
    double close
    double volume
    double pv
    int count
    # bumped by every change, so a reader's cached bar is known to be current
    unsigned int version
    long long trades
    # some bar in it has a trade count
    bint counted
    # unknown: the next read recomputes it from the symbol's bars
    bint stale
    long long start
    double open


cdef class Series:
    # A bit per declared interval, set while `caches[k]` holds the DerivedBar of its forming
    # bucket under `symbol` (`_derive.Latest`): every change of the bucket takes it out.
    cdef unsigned int current
    cdef readonly str symbol
    # The warehouse's caches of derived bars, one dict per declared interval (shared).
    cdef readonly list caches
    # The greatest ts of the symbol's bars (MIN_TS - 1 while it has none).
    cdef public long long last_ts
    # Its session metrics, next to last_ts: the append touches both. They hold a last_ts of
    # their own, so that a Python path that moves the one above before it replaces the totals
    # never shows a reader a new last_ts with the old totals.
    cdef Totals totals
    # The sorted timestamps of all its bars this session (8 bytes a bar).
    cdef public array.array stamps
    # Its most recent bars, in ts order (a sorted suffix of all its bars).
    cdef public list window
    # Bars older than all of `window`, still as Arrow rows (from extend or a reopen), or None.
    cdef public object lazy
    # The index of its symbol in the buffer's list of symbol names (its code in the log).
    cdef readonly int32_t code
    # The forming bucket of each declared interval.
    cdef Forming derived[MAX_DERIVED]
    # Bumped by every change that may touch a finished derived bucket (a late bar or a
    # correction before a forming bucket, a batch, a reopen, a session starting or ending):
    # the caches of finished derived bars (`warehouse.derive`) hold the value they were made at.
    cdef public unsigned long long revision


# The log's single appends, one growable C buffer per field (see _hot.pyx).
cdef class Columns:
    cdef char* _data[11]
    cdef Py_ssize_t _count
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _vwap_nulls
    cdef Py_ssize_t _count_nulls
    cdef int32_t _max_code
    cdef readonly list names
    cdef object _dictionary
    cdef Py_ssize_t _dictionary_size

    cdef int reserve(self) except -1
    cdef void push(self, Bar bar, int32_t code) noexcept
    cdef object _dictionary_now(self)


# The journal's open segment, held as a buffer while records are written into it (_hot.pyx).
cdef class SegmentWriter:
    cdef Py_buffer view
    cdef bint held
    cdef public Py_ssize_t pos
    cdef Py_ssize_t limit

    cdef Py_ssize_t put(self, Bar bar) except -2


cdef class Appender:
    cdef dict _series
    cdef dict _latest
    cdef Columns _columns
    cdef set _replaced
    cdef Lock _lock
    cdef object _new_series
    cdef object _place_older
    cdef object _explain
    cdef object _on_full
    cdef object _journal_bar
    cdef SegmentWriter _journal_writer
    cdef object _to_micros
    cdef object _closed_error
    cdef Py_ssize_t _keep
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _flush_rows
    cdef bint closed
    cdef bint _metrics
    # The declared intervals' steps in microseconds (`derived`), anchored to `window_open`.
    cdef long long _steps[MAX_DERIVED]
    cdef int _derived

    cdef void _derive(self, Series series, long long t, double o, double h, double lo, double c,
                      double v, double pv, long long count, bint has_count) noexcept
    # The instants a bar may have: [window_open, window_close) (a session's window, or every
    # timestamp the store holds); set under the buffer's lock.
    cdef public long long window_open
    cdef public long long window_close
