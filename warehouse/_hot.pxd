# The compiled hot path: one symbol's hot state, and the single-bar append (see _hot.pyx).

from cpython cimport array
from libc.stdint cimport int32_t

from warehouse._bar cimport Bar


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


cdef class Series:
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


cdef class Appender:
    cdef dict _series
    cdef dict _latest
    cdef Columns _columns
    cdef set _replaced
    cdef object _acquire
    cdef object _release
    cdef object _new_series
    cdef object _place_older
    cdef object _explain
    cdef object _on_full
    cdef object _journal_bar
    cdef object _to_micros
    cdef object _closed_error
    cdef Py_ssize_t _keep
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _flush_rows
    cdef bint closed
    cdef bint _metrics
    # The instants a bar may have: [window_open, window_close) (a session's window, or every
    # timestamp the store holds); set under the buffer's lock.
    cdef public long long window_open
    cdef public long long window_close
