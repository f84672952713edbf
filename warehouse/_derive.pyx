# cython: language_level=3
"""The compiled read of a derived bar: the newest bucket of a symbol's window, aggregated.

Called with the GIL held and no Python code run until every bar is read, so the window (a
list a command may change in place) is read at one instant, as a slice would copy it.
"""

from warehouse._bar cimport Bar

cdef object _new = tuple.__new__


def newest(list window, long long anchor, long long step, long long close, str symbol,
           object kind):
    """The ``kind`` bar of the newest ``step`` bucket of ``window``; None if not held whole.

    None when the window is empty or does not reach back to the bucket's start (the caller
    then reads the bucket's bars another way).
    """
    cdef Py_ssize_t n = len(window), first
    if n == 0:
        return None
    cdef Bar bar = <Bar>window[n - 1]
    cdef Bar last = bar
    cdef long long start = anchor + (last.ts - anchor) // step * step
    first = n - 1
    while first > 0 and (<Bar>window[first - 1]).ts >= start:
        first -= 1
    if first == 0 and (<Bar>window[0]).ts > start:
        return None
    cdef double high = last.high, low = last.low, volume = 0.0, pv = 0.0
    cdef long long trades = 0
    cdef bint counted = False
    cdef Py_ssize_t i
    for i in range(first, n):
        bar = <Bar>window[i]
        if bar.high > high:
            high = bar.high
        if bar.low < low:
            low = bar.low
        volume += bar.volume
        if bar._has_vwap:
            pv += bar._vwap * bar.volume
        else:
            pv += (bar.high + bar.low + bar.close) / 3 * bar.volume
        if bar._has_count:
            trades += bar._trade_count
            counted = True
    bar = <Bar>window[first]
    cdef long long end = start + step
    if end > close:
        end = close
    return _new(kind, (
        symbol, start, end, bar.open, high, low, last.close, volume,
        pv / volume if volume != 0.0 else None, trades if counted else None, n - first,
        last.ts + 60_000_000 < end,
    ))
