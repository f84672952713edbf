# cython: language_level=3
"""The compiled `SessionMetrics`: one symbol's session metrics, as `Warehouse.metrics` returns them.

A read builds one in a few C assignments (`_hot.Reader.metrics`); with C fields and ``no_gc``
it is invisible to the garbage collector, like `Bar`. Its fields are those of the named query
``session_ohlcv``, in its column order.
"""

cimport cython
from libc.math cimport NAN

from datetime import datetime, timedelta, timezone

cdef object _EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
cdef tuple _FIELDS = ("symbol", "first_ts", "last_ts", "bar_count", "open", "high", "low",
                      "close", "volume", "vwap")


@cython.no_gc
@cython.final
cdef class SessionMetrics:
    """One symbol's session metrics: open, high, low, close, volume, VWAP, bars, first/last ts.

    ``first_ts`` and ``last_ts`` are UTC instants in integer microseconds (as `Bar.ts`);
    ``first_time`` and ``last_time`` give them as aware `datetime`. ``close`` is the close of
    the bar with the greatest ts, ``open`` that of the bar with the least. ``vwap`` weights
    each bar's vwap (its typical price (high + low + close) / 3 where the feed gave none) by
    its volume; None when the volume is 0. Immutable; equal when every field is.

    Examples
    --------
    >>> m = SessionMetrics("AAPL", 0, 60_000_000, 2, 10.0, 11.0, 9.0, 10.5, 300.0, 10.2)
    >>> m.bar_count, m.vwap, m.last_time.isoformat()
    (2, 10.2, '1970-01-01T00:01:00+00:00')
    """

    _fields = _FIELDS

    def __init__(self, object symbol, long long first_ts, long long last_ts,
                 long long bar_count, double open, double high, double low, double close,
                 double volume, object vwap):
        if not isinstance(symbol, str):
            raise TypeError(f"SessionMetrics symbol must be a str, not {type(symbol).__name__}")
        self.symbol = symbol if type(symbol) is str else symbol[:]
        self.first_ts = first_ts
        self.last_ts = last_ts
        self.bar_count = bar_count
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self._has_vwap = vwap is not None
        self._vwap = vwap if self._has_vwap else NAN

    @property
    def vwap(self):
        """The volume-weighted average price of the session, or None if its volume is 0."""
        return self._vwap if self._has_vwap else None

    @property
    def first_time(self):
        """``first_ts`` as a timezone-aware UTC `datetime`."""
        return _EPOCH + timedelta(microseconds=self.first_ts)

    @property
    def last_time(self):
        """``last_ts`` as a timezone-aware UTC `datetime`."""
        return _EPOCH + timedelta(microseconds=self.last_ts)

    cdef tuple _tuple(self):
        return (self.symbol, self.first_ts, self.last_ts, self.bar_count, self.open, self.high,
                self.low, self.close, self.volume, self._vwap if self._has_vwap else None)

    def _asdict(self):
        """The fields as a dict, in field order (the columns of ``session_ohlcv``)."""
        return dict(zip(_FIELDS, self._tuple()))

    def __iter__(self):
        return iter(self._tuple())

    def __len__(self):
        return len(_FIELDS)

    def __eq__(self, other):
        if not isinstance(other, SessionMetrics):
            return NotImplemented
        return self._tuple() == (<SessionMetrics>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return "SessionMetrics(" + ", ".join(
            f"{name}={value!r}" for name, value in zip(_FIELDS, self._tuple())
        ) + ")"

    def __reduce__(self):
        return (SessionMetrics, self._tuple())


cdef SessionMetrics make_metrics(str symbol, long long first_ts, long long last_ts,
                                 long long bar_count, double open, double high, double low,
                                 double close, double volume, double pv):
    """A record from a symbol's running totals (no Python call: the reads' fast path)."""
    cdef SessionMetrics m = SessionMetrics.__new__(SessionMetrics)
    m.symbol = symbol
    m.first_ts = first_ts
    m.last_ts = last_ts
    m.bar_count = bar_count
    m.open = open
    m.high = high
    m.low = low
    m.close = close
    m.volume = volume
    m._has_vwap = volume != 0.0
    m._vwap = pv / volume if m._has_vwap else NAN
    return m
