# The compiled hot path: one symbol's hot state, and the single-bar append (see _hot.pyx).

from cpython cimport array
from libc.stdint cimport int32_t


cdef class Series:
    # The greatest ts of the symbol's bars (MIN_TS - 1 while it has none).
    cdef public long long last_ts
    # The sorted timestamps of all its bars this session (8 bytes a bar).
    cdef public array.array stamps
    # Its most recent bars, in ts order (a sorted suffix of all its bars).
    cdef public list window
    # Bars older than all of `window`, still as Arrow rows (from extend or a reopen), or None.
    cdef public object lazy
    # The index of its symbol in the buffer's list of symbol names (its code in the log).
    cdef readonly int32_t code


cdef class Appender:
    cdef dict _series
    cdef dict _latest
    cdef list _pending
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
