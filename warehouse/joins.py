"""As-of joins: each event with the latest bar known at its time, never a bar not yet finished.

A one-minute bar stamped 14:30 covers [14:30, 14:31): its close is not known before 14:31.
Joined on its start, an order at 14:30:20 would see the price of 14:30:59, the future, and a
backtest would look better than any trading could be. So a bar is known at its end by default
(``known="end"``): its ts plus its interval, a minute or the derived interval asked for
(``interval="5m"``: bars anchored to each session's open, the last one ending at its close, as
`warehouse.derive` makes them). An event at exactly that instant sees the bar.
``known="start"`` joins on the bar's start instead, as most as-of joins do; it looks ahead, and
is named so that it is chosen knowingly.

`asof` joins events to any bars (a frame, `scan_archive`); `Warehouse.asof` to the warehouse's
own (`Warehouse.scan`), reading only the symbols the events name and the bars before their last
time (and none known longer than ``tolerance`` before their first). The named query
``asof_bars`` is the same join in SQL, over DuckDB's ``ASOF JOIN`` (one-minute bars).

Events are a polars, pandas or pyarrow frame with a time column (``on``, aware timestamps: an
instant, not a wall-clock reading) and a symbol column (``by``). The result is a polars
DataFrame: the events in their own order (they need not be sorted), each with the columns of
its bar: `BAR_COLUMNS` (``bar_ts``: the bar's start), null where no bar is known (an event
before its symbol's first bar, a symbol without bars, a bar older than ``tolerance``, an event
without a time or a symbol). An event column with the name of one of them keeps it; the bar's
gets ``_bar`` added.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from warehouse.archive import entry_problem, read_manifest
from warehouse.derive import Interval, interval_minutes
from warehouse.errors import ExportError, SchemaMismatchError
from warehouse.schema import frame_to_arrow

__all__ = ["BAR_COLUMNS", "AsofJoin", "Known", "SessionBounds", "asof", "sealed_sessions"]

#: When a bar is known: at its end (ts + its interval, the default), or at its start.
Known = Literal["end", "start"]
#: The columns an as-of join adds to each event: the bar's start (``bar_ts``) and its values.
BAR_COLUMNS = ("bar_ts", "open", "high", "low", "close", "volume", "vwap", "trade_count")
#: A session's date, open and close: the anchor and the end of its derived bars.
SessionBounds = tuple[date, datetime, datetime]

_ROW = "__asof_row"
_AT = "__asof_at"
_KEY = "__asof_symbol"
_KNOWN = "__asof_known"
#: The bar's columns while joined, apart from any name the events use.
_BAR = {c: f"__asof_{c}" for c in BAR_COLUMNS}
_UTC = pl.Datetime("us", "UTC")
_MINUTE = timedelta(minutes=1)
#: The bars' columns a join reads (vwap and trade_count may be missing: null).
_BAR_INPUT = ("symbol", "ts", "open", "high", "low", "close", "volume")


def asof(
    events: object,
    bars: object,
    *,
    on: str = "ts",
    by: str = "symbol",
    known: Known = "end",
    tolerance: timedelta | str | None = None,
    interval: Interval | None = None,
) -> pl.DataFrame:
    """Each event with the latest bar of its symbol known at its time (no look-ahead).

    Parameters
    ----------
    events
        A polars DataFrame or LazyFrame, a pandas DataFrame, or a pyarrow Table.
    bars
        One-minute bars: a polars DataFrame or LazyFrame (`scan_archive`, `Warehouse.scan`),
        a pandas DataFrame or a pyarrow Table with the columns symbol, ts (aware), open, high,
        low, close, volume (vwap, trade_count if there are).
    on
        The events' time column: aware timestamps (any zone, any unit).
    by
        The events' symbol column, matched to the bars' ``symbol``.
    known
        ``"end"``: a bar is known from its end on (ts + its interval); ``"start"``: from its
        ts, which shows an event the bar it happens in (look-ahead).
    tolerance
        Leave out a bar known longer than this before the event (a timedelta, or minutes as
        ``"5m"``, ``"1h"``); None: any earlier bar.
    interval
        Join to bars of this many minutes (``5``, ``"5m"``, ``"1h"``) made from the one-minute
        bars, anchored to each day's first bar (`Warehouse.asof`: to each session's open, cut
        at its close).

    Returns
    -------
    polars.DataFrame
        The events in their order, then `BAR_COLUMNS` of each one's bar.

    Raises
    ------
    SchemaMismatchError
        The events lack the ``on`` or ``by`` column, their times have no zone, or the bars
        lack a column.
    ValueError
        ``known``, ``tolerance`` or ``interval`` is not one of the values taken.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, UTC
    >>> bars = pl.DataFrame({"symbol": ["ES", "ES"], "open": [10.0, 11.0], "high": [10.5, 11.5],
    ...     "low": [9.5, 10.5], "close": [10.2, 11.2], "volume": [5.0, 6.0],
    ...     "ts": [datetime(2025, 11, 21, 14, 30, tzinfo=UTC),
    ...            datetime(2025, 11, 21, 14, 31, tzinfo=UTC)]})
    >>> fills = pl.DataFrame({"symbol": ["ES", "ES"],
    ...     "ts": [datetime(2025, 11, 21, 14, 31, 30, tzinfo=UTC),
    ...            datetime(2025, 11, 21, 14, 30, 59, tzinfo=UTC)]})
    >>> asof(fills, bars).select("ts", "bar_ts", "close").rows()[0][1:]
    (datetime.datetime(2025, 11, 21, 14, 30, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 10.2)
    >>> asof(fills, bars)["close"].to_list()  # 14:30:59: the 14:30 bar has not ended yet
    [10.2, None]
    """
    join = AsofJoin(events, on=on, by=by, known=known, tolerance=tolerance, interval=interval)
    return join.run(_bars_frame(bars), bounded=isinstance(bars, pl.LazyFrame))


class AsofJoin:
    """One as-of join of events, checked, before the bars are read (see `asof`).

    `bounds` tells which bars can be needed, so that a scan reads only those; `run` joins.
    """

    def __init__(
        self,
        events: object,
        *,
        on: str = "ts",
        by: str = "symbol",
        known: Known = "end",
        tolerance: timedelta | str | None = None,
        interval: Interval | None = None,
    ) -> None:
        if known not in ("end", "start"):
            raise ValueError(f"known={known!r}: a bar is known at its 'end' (the default, no "
                             "look-ahead) or at its 'start'")
        self.step = _MINUTE if interval is None else timedelta(minutes=interval_minutes(interval))
        self.derived = interval is not None
        self.known = known
        self.tolerance = _tolerance(tolerance)
        self.events, self.at, self.key = _events(events, on, by)

    def bounds(self) -> pl.Expr:
        """A filter on bars (``symbol``, ``ts``) keeping every bar the join can need.

        For a scan, which reads only those; over bars in memory it would only cost (the
        events' distinct symbols: ~40 ms for a million).
        """
        keyed = self.events.filter(pl.col(self.at).is_not_null() & pl.col(self.key).is_not_null())
        if keyed.height == 0:
            return pl.lit(False)  # no event has a time and a symbol: no bar is needed
        first: datetime = keyed[self.at].min()  # type: ignore[assignment]
        last: datetime = keyed[self.at].max()  # type: ignore[assignment]
        # A one-minute bar known by the last event starts a minute before it (known at its
        # end); a derived bar may be cut short at the close: its bars start before the event.
        delay = self.step if self.known == "end" and not self.derived else timedelta(0)
        symbols = keyed[self.key].unique().to_list()
        terms = [pl.col("symbol").is_in(symbols), pl.col("ts") <= last - delay]
        if self.tolerance is not None:
            # A bar known after first - tolerance starts after first - tolerance - interval.
            # Derived bars need whole days: their anchor is the day's first bar.
            low = first - self.tolerance - self.step
            if self.derived:
                terms.append(pl.col("ts").dt.date() >= low.date() - timedelta(days=1))
            else:
                terms.append(pl.col("ts") >= low)
        return pl.all_horizontal(terms)

    def run(self, bars: pl.LazyFrame, sessions: Sequence[SessionBounds] = (), *,
            bounded: bool = True) -> pl.DataFrame:
        """Join the events to ``bars`` (one-minute bars), derived with ``sessions``' bounds.

        ``bounded``: read only the bars `bounds` keeps (for a scan).
        """
        right = self._bars(bars.filter(self.bounds()) if bounded else bars, sessions).collect()
        if not _in_order(right, self.key):
            right = right.sort(self.key, _KNOWN)
        left = self.events
        ordered = left[self.at].is_sorted(nulls_last=True)
        if not ordered:  # sorted for the join, then back in the events' order
            left = left.with_row_index(_ROW).sort(self.at, nulls_last=True, maintain_order=True)
        joined = left.join_asof(
            right, left_on=self.at, right_on=_KNOWN, by=self.key,
            strategy="backward", tolerance=self.tolerance, check_sortedness=False,
        )
        if not ordered:
            joined = joined.sort(_ROW)
        names = _bar_names(self.events.columns)
        helpers = {_ROW, _AT, _KEY, _KNOWN, *_BAR.values()}
        return joined.select(
            *(c for c in joined.columns if c not in helpers),
            *(pl.col(_BAR[c]).alias(names[c]) for c in BAR_COLUMNS),
        )

    def _bars(self, bars: pl.LazyFrame, sessions: Sequence[SessionBounds]) -> pl.LazyFrame:
        """The bars as the join reads them: symbol, bar_ts, the known instant, the values."""
        if self.derived:
            bars = _derived(bars, self.step, sessions)
            end = pl.col("end")
        else:
            end = pl.col("ts") + self.step
        return bars.select(
            pl.col("symbol").alias(self.key),  # the events' name for it: one key for the join
            (end if self.known == "end" else pl.col("ts")).alias(_KNOWN),
            pl.col("ts").alias(_BAR["bar_ts"]),
            *(pl.col(c).alias(_BAR[c]) for c in BAR_COLUMNS[1:]),
        )


def sealed_sessions(directory: str | Path) -> list[SessionBounds]:
    """The date, open and close of each session sealed into an archive, from its manifest.

    Entries that cannot be understood, or without open and close, are left out (their days'
    derived bars are anchored to their first bar); an unreadable manifest gives none.
    """
    try:
        entries = read_manifest(directory)["sessions"]
    except ExportError:
        return []
    found = []
    for entry in entries:
        if entry_problem(entry) is not None:
            continue
        try:
            found.append((date.fromisoformat(entry["date"]),
                          datetime.fromisoformat(entry["open"]),
                          datetime.fromisoformat(entry["close"])))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def _tolerance(tolerance: timedelta | str | None) -> timedelta | None:
    if tolerance is None:
        return None
    if isinstance(tolerance, timedelta):
        if tolerance < timedelta(0):
            raise ValueError(f"tolerance={tolerance!r} is negative; give how long a bar stays "
                             "usable after it is known, e.g. timedelta(minutes=5) or '5m'")
        return tolerance
    try:
        return timedelta(minutes=interval_minutes(tolerance))
    except ValueError:
        raise ValueError(f"tolerance={tolerance!r}: give a timedelta, or minutes as '5m' or "
                         "'1h'") from None


def _events(events: object, on: str, by: str) -> tuple[pl.DataFrame, str, str]:
    """The events as a DataFrame, and the columns of their instant (UTC µs) and their symbol.

    Raises
    ------
    SchemaMismatchError
        No ``on`` or ``by`` column, or not timestamps with a zone and text.
    """
    if isinstance(events, pl.LazyFrame):
        events = events.collect()
    if not isinstance(events, pl.DataFrame):
        try:
            events = pl.from_arrow(frame_to_arrow(events))
        except SchemaMismatchError:
            raise SchemaMismatchError(
                f"cannot read events from a {type(events).__name__}; pass a polars, pandas or "
                "pyarrow frame"
            ) from None
    assert isinstance(events, pl.DataFrame)
    for name, option in ((on, "on"), (by, "by")):
        if name not in events.columns:
            raise SchemaMismatchError(
                f"the events have no column {name!r} ({option}={name!r}); their columns are "
                f"{', '.join(events.columns) or 'none'}: name the event's "
                f"{'time' if option == 'on' else 'symbol'} column with {option}="
            )
    kind = events.schema[on]
    if not isinstance(kind, pl.Datetime) or kind.time_zone is None:
        hint = (
            f"give them the zone they are in, e.g. "
            f"events.with_columns(pl.col({on!r}).dt.replace_time_zone('UTC'))"
            if isinstance(kind, pl.Datetime) else "give aware timestamps"
        )
        raise SchemaMismatchError(
            f"the events' column {on!r} (on=) holds {kind}, not timestamps with a time zone: "
            f"an event's time must be an instant; {hint}"
        )
    if events.schema[by] not in (pl.String, pl.Categorical) and \
            not isinstance(events.schema[by], pl.Enum):
        raise SchemaMismatchError(
            f"the events' column {by!r} (by=) holds {events.schema[by]}, not symbols (text)")
    at = kind.time_unit == "us" and kind.time_zone == "UTC"
    key = events.schema[by] == pl.String
    # The columns as given where they serve the join as they are; else a converted copy.
    return (
        events if at and key else events.with_columns(
            *([] if at else [pl.col(on).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
                             .alias(_AT)]),
            *([] if key else [pl.col(by).cast(pl.String).alias(_KEY)]),
        ),
        on if at else _AT,
        by if key else _KEY,
    )


def _bars_frame(bars: object) -> pl.LazyFrame:
    """``bars`` as a LazyFrame of the columns a join reads.

    Raises
    ------
    SchemaMismatchError
        A column is missing, or ts has no zone.
    """
    if isinstance(bars, pl.LazyFrame):
        lazy = bars
    elif isinstance(bars, pl.DataFrame):
        lazy = bars.lazy()
    else:
        try:
            lazy = pl.from_arrow(frame_to_arrow(bars)).lazy()  # type: ignore[union-attr]
        except SchemaMismatchError:
            raise SchemaMismatchError(
                f"cannot read bars from a {type(bars).__name__}; pass a polars, pandas or "
                "pyarrow frame, or a scan (scan_archive, Warehouse.scan)"
            ) from None
    schema = lazy.collect_schema()
    missing = [c for c in _BAR_INPUT if c not in schema]
    if missing:
        raise SchemaMismatchError(f"the bars have no column {', '.join(missing)}; their columns "
                                  f"are {', '.join(schema)}")
    if not isinstance(schema["ts"], pl.Datetime) or schema["ts"].time_zone is None:
        raise SchemaMismatchError(f"the bars' ts holds {schema['ts']}, not timestamps with a "
                                  "time zone")
    extra = [pl.lit(None, dtype).alias(name)
             for name, dtype in (("vwap", pl.Float64), ("trade_count", pl.Int64))
             if name not in schema]
    lazy = lazy.with_columns(*extra) if extra else lazy
    return lazy.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))


def _derived(
    bars: pl.LazyFrame, step: timedelta, sessions: Sequence[SessionBounds]
) -> pl.LazyFrame:
    """``step``-long bars of ``bars``, anchored to each session's open, cut at its close.

    As the named query ``resample_bars`` makes them: a bucket is [anchor + k * step,
    anchor + (k + 1) * step), the anchor the open of the bar's session (by its ``date``; its
    UTC date if it has none), or the day's first bar where the open is not known. Columns:
    symbol, ts (the bucket's start), end (the next bucket's start, or the close), the values.
    """
    if "date" not in bars.collect_schema():
        bars = bars.with_columns(date=pl.col("ts").dt.date())
    known = pl.LazyFrame(
        {"date": [s[0] for s in sessions], "open": [s[1] for s in sessions],
         "session_close": [s[2] for s in sessions]},
        schema={"date": pl.Date(), "open": _UTC, "session_close": _UTC},
    )
    anchors = (bars.group_by("date").agg(first=pl.col("ts").min())
               .join(known, on="date", how="left")
               .select("date", pl.coalesce("open", "first").alias("anchor"), "session_close"))
    micros = step // timedelta(microseconds=1)
    since = (pl.col("ts") - pl.col("anchor")).dt.total_microseconds()
    start = pl.col("anchor") + pl.duration(microseconds=since // micros * micros)
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3
    volume = pl.col("volume").sum()
    return (
        bars.join(anchors, on="date", how="left")
        .with_columns(bucket=start)
        .sort("symbol", "ts")
        .group_by("symbol", "bucket", maintain_order=True)
        .agg(
            pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
            pl.col("close").last(), volume,
            pl.when(volume != 0).then(
                (pl.coalesce("vwap", typical) * pl.col("volume")).sum() / volume).alias("vwap"),
            pl.when(pl.col("trade_count").count() > 0)
            .then(pl.col("trade_count").sum()).alias("trade_count"),
            pl.col("session_close").first(),
        )
        .select(
            "symbol", pl.col("bucket").alias("ts"),
            pl.min_horizontal(pl.col("bucket") + step, "session_close").alias("end"),
            *BAR_COLUMNS[1:],
        )
    )


def _in_order(bars: pl.DataFrame, key: str) -> bool:
    """Whether ``bars`` are in (symbol, known) order, as the join needs them in each symbol.

    Polars' as-of join by symbol takes each symbol's rows in the frame's order: out of order,
    it matches wrong bars without a word. The symbols (column ``key``) are checked to be
    sorted (a flag Polars keeps after a sort: no comparison then), and the known instants to
    go back only where a new symbol starts.
    """
    keys = bars[key]
    if not keys.is_sorted():
        return False
    known = bars[_KNOWN].to_physical().to_numpy()
    back = pl.Series(np.flatnonzero(known[1:] < known[:-1]) + 1)
    return back.len() == 0 or not (keys.gather(back) == keys.gather(back - 1)).any()


def _bar_names(taken: Sequence[str]) -> dict[str, str]:
    """Each bar column's name in the result: ``_bar`` added while an event column has it."""
    names = {}
    used = set(taken)
    for column in BAR_COLUMNS:
        name = column
        while name in used:
            name += "_bar"
        used.add(name)
        names[column] = name
    return names
