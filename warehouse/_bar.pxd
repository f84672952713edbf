# The compiled bar: C fields, not tracked by the cyclic garbage collector (see _bar.pyx).

cdef class Bar:
    cdef readonly str symbol
    cdef readonly long long ts
    cdef readonly double open
    cdef readonly double high
    cdef readonly double low
    cdef readonly double close
    cdef readonly double volume
    cdef double _vwap
    cdef long long _trade_count
    # Whether vwap / trade_count were given: a missing one stays distinguishable from a value.
    cdef bint _has_vwap
    cdef bint _has_count

    cdef tuple _tuple(self)
