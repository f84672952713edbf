# cython: language_level=3
"""The compiled reads of derived bars: the hot read of a declared interval (`Latest`), and the
newest bucket of a symbol's window aggregated on read (`newest`, for any other interval).

`newest` is called with the GIL held and no Python code run until every bar is read, so the
window (a list a command may change in place) is read at one instant, as a slice would copy it.
"""

cimport cython
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

from warehouse._bar cimport Bar
from warehouse._hot cimport Forming, MAX_DERIVED, Series

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


# -- the hot read of a declared interval ------------------------------------------------------


@cython.final
cdef class Latest:
    """`Warehouse.latest_derived`: the newest bar of a declared interval from its forming bucket.

    Each symbol's `Series` keeps, per declared interval, the running aggregate of the bucket
    of its newest bar (the compiled append adds each in-order bar). A read copies it in C (no
    Python code runs during the copy, nor during an append's stores, so it is whole), builds
    the `DerivedBar` once, and caches it in the interval's dict (``caches[k]``, symbol ->
    bar) until the bucket changes: every change takes it out (`_hot.forget_derived`), so a
    repeated read is one dict lookup, as `latest` is. A bucket left unknown by a rare path (a
    late bar, a batch, a reopen) is recomputed by ``refresh(symbol, k)`` from the symbol's
    bars. An interval not declared goes to ``compute(symbol, interval)`` (computed on read);
    an interval not seen before, and every read without an open session, to
    ``fallback(symbol, interval)`` (which learns its slot, or raises).
    """

    cdef dict _series
    cdef list _caches
    cdef dict _slots
    cdef tuple _keys
    cdef object _fallback
    cdef object _compute
    cdef object _refresh
    cdef object _kind
    cdef list _finished
    cdef object _last_n
    #: A session is open (the buckets are anchored to its open); set under the buffer's lock.
    cdef public bint anchored

    def __init__(self, dict series, list caches not None, tuple keys, dict slots, fallback,
                 compute, refresh, kind, list finished=None, last_n=None):
        if finished is None:
            finished = [{} for _ in caches]
        if not len(keys) == len(caches) == len(finished) <= MAX_DERIVED:
            raise ValueError(f"at most {MAX_DERIVED} intervals can be kept incrementally, "
                             "each with its cache")
        self._series = series
        self._caches = caches
        self._keys = keys
        self._slots = slots
        self._fallback = fallback
        self._compute = compute
        self._refresh = refresh
        self._kind = kind
        self._finished = finished
        self._last_n = last_n
        self.anchored = False

    def latest(self, symbol, interval):
        """The newest ``interval`` bar of ``symbol`` (None without bars); see `DerivedBar`."""
        cdef Py_ssize_t k
        cdef tuple keys = self._keys
        cdef PyObject* hit
        # The declared intervals as given first (a literal "5m" is usually the same object).
        for k in range(PyTuple_GET_SIZE(keys)):
            if <PyObject*>PyTuple_GET_ITEM(keys, k) is <PyObject*>interval:
                if self.anchored:
                    hit = PyDict_GetItem(<object>PyList_GET_ITEM(self._caches, k), symbol)
                    if hit != NULL:  # the hot read: one dict lookup
                        return <object>hit
                    return self._read(symbol, k)
                break
        found = self._slots.get(interval)
        # A key equal to a declared one but not of its type (5.0, True) is not an interval.
        if found is None or not self.anchored or (
                type(interval) is not str and type(interval) is not int):
            return self._fallback(symbol, interval)
        if found < 0:  # an interval not declared, seen before
            return self._compute(symbol, interval)
        return self._read(symbol, <Py_ssize_t>found)

    def last_n(self, symbol, n, interval):
        """The last ``n`` ``interval`` bars of ``symbol``, oldest first (see `DerivedBar`).

        The warm read of a declared interval spelt as declared: the symbol's cached finished
        bars (``finished[k]``, symbol -> a tuple whose fields are those of
        `warehouse.derive._Finished`), current (same series, same revision, ending where the
        bucket cached in ``caches[k]`` starts) and long enough, then that bucket's bar. Read
        in C with no Python code run between the checks and the copy. Anything else goes to
        ``last_n(symbol, n, interval)`` (which makes, extends or drops the cache).
        """
        cdef Py_ssize_t k, i, need, size
        cdef tuple keys = self._keys
        cdef PyObject* hit
        cdef PyObject* held
        cdef PyObject* made
        cdef Series series
        cdef tuple forming, found
        cdef list bars, out
        k = -1
        for i in range(PyTuple_GET_SIZE(keys)):
            if <PyObject*>PyTuple_GET_ITEM(keys, i) is <PyObject*>interval:
                k = i
                break
        if k < 0 and (type(interval) is str or type(interval) is int):
            slot = self._slots.get(interval)
            if slot is not None:
                k = slot
        if k < 0 or not self.anchored or type(n) is not int or type(symbol) is not str:
            return self._last_n(symbol, n, interval)
        need = n
        need -= 1
        if need < 1:
            return self._last_n(symbol, n, interval)
        hit = PyDict_GetItem(<object>PyList_GET_ITEM(self._caches, k), symbol)
        held = PyDict_GetItem(self._series, symbol)
        made = PyDict_GetItem(<object>PyList_GET_ITEM(self._finished, k), symbol)
        if hit == NULL or held == NULL or made == NULL:
            return self._last_n(symbol, n, interval)
        forming = <tuple>hit
        found = <tuple>made
        series = <Series>held
        bars = <list>PyTuple_GET_ITEM(found, 4)
        size = len(bars)
        if (<PyObject*>PyTuple_GET_ITEM(found, 0) is not held
                or <unsigned long long>(<object>PyTuple_GET_ITEM(found, 1)) != series.revision
                or <long long>(<object>PyTuple_GET_ITEM(found, 3))
                != <long long>(<object>PyTuple_GET_ITEM(forming, 1))
                or (size < need and not <bint>(<object>PyTuple_GET_ITEM(found, 5)))):
            return self._last_n(symbol, n, interval)
        out = bars[size - need:] if need < size else bars[:]
        out.append(forming)
        return out

    def latest_of(self, symbol, Py_ssize_t k):
        """The newest bar of ``symbol`` of declared interval ``k`` (None without bars)."""
        if not 0 <= k < len(self._caches):
            raise IndexError(k)
        return self._read(symbol, k)

    cdef object _read(self, symbol, Py_ssize_t k):
        cdef Series series
        cdef Forming f
        cdef PyObject* hit = PyDict_GetItem(<object>PyList_GET_ITEM(self._caches, k), symbol)
        if hit != NULL:
            return <object>hit
        if type(symbol) is not str and isinstance(symbol, str):
            symbol = symbol[:]  # a str subclass: the plain string, as append takes it
        found = self._series.get(symbol)
        if found is None:
            return None
        series = <Series>found
        f = series.derived[k]  # copied whole before anything is allocated
        if f.stale or f.count == 0:
            return self._refresh(symbol, k)
        bar = _new(self._kind, (
            symbol, f.start, f.end, f.open, f.high, f.low, f.close, f.volume,
            f.pv / f.volume if f.volume != 0.0 else None, f.trades if f.counted else None,
            f.count, f.last_ts + 60_000_000 < f.end,
        ))
        # Cached only if the bucket did not change, nor the symbol go (`clear`), while the bar
        # was made: an allocation can run the collector, and so other threads. No Python code
        # runs from the checks to the store (str keys; a dict's growth is no object).
        if (series.derived[k].version == f.version
                and PyDict_GetItem(self._series, symbol) == <PyObject*>series):
            PyDict_SetItem(<object>PyList_GET_ITEM(self._caches, k), series.symbol, bar)
            series.current |= 1u << k
        return bar
