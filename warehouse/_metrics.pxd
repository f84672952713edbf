# The compiled session metrics record: C fields, immutable (see _metrics.pyx).

cdef class SessionMetrics:
    cdef readonly str symbol
    cdef readonly long long first_ts
    cdef readonly long long last_ts
    cdef readonly long long bar_count
    cdef readonly double open
    cdef readonly double high
    cdef readonly double low
    cdef readonly double close
    cdef readonly double volume
    cdef double _vwap
    # False when the symbol's volume is 0: its vwap is None, as in session_ohlcv.sql.
    cdef bint _has_vwap

    cdef tuple _tuple(self)


cdef SessionMetrics make_metrics(str symbol, long long first_ts, long long last_ts,
                                 long long bar_count, double open, double high, double low,
                                 double close, double volume, double pv)
