"""Pictures of a session, drawn with matplotlib (the optional ``plot`` extra).

`coverage_figure` draws a quality report (`Warehouse.quality`) over the session's minutes: on
top, the share of symbols with a bar in each minute; below, one row per symbol (the least
complete first), a cell per minute: present, missing, or not yet due.

`candle_figure` draws one symbol's session as candlesticks over a volume panel, on the same
axis of session minutes: its gaps (due minutes without a bar, from the quality report) shaded,
and bars that gap filling inserted (``origin`` 'filled') in a colour of their own.

matplotlib is imported only here and only when drawing, without pyplot (no display, no global
state), so the package works without it; a missing install raises `MissingExtraError` naming
the extra.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from numpy.typing import NDArray

from warehouse.errors import MissingExtraError, SchemaMismatchError
from warehouse.schema import EPOCH, MINUTE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CANDLE_COLORS",
    "CANDLE_COLUMNS",
    "COLORS",
    "candle_figure",
    "coverage_figure",
    "write_candle_png",
    "write_coverage_png",
]

#: Cell colours: a present minute, a missing one, one not yet due.
COLORS = {"present": "#2e9e4f", "missing": "#d7301f", "not due": "#e6e6e6"}
#: Candle colours: a rising bar (body, wick and volume bar), a falling one, a filled one (either
#: way: what marks it is that gap filling inserted it), and the shading of a gap.
CANDLE_COLORS = {"up": "#2e9e4f", "down": "#d7301f", "filled": "#6a51a3", "gap": "#f7c6bd"}
#: The columns `candle_figure` draws (``origin`` is optional).
CANDLE_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
_NOT_DUE, _MISSING, _PRESENT = 0, 1, 2


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError("drawing a picture", "matplotlib", "plot") from exc
    return Figure, ListedColormap


def coverage_cells(report: pl.DataFrame, minutes: NDArray[np.int64]) -> NDArray[np.int8]:
    """One row per report row, a cell per session minute: 2 present, 1 missing, 0 not due."""
    rows = report.height
    cells = np.zeros((rows, len(minutes)), dtype=np.int8)
    due = report["expected"].to_numpy()
    cells[np.arange(len(minutes))[None, :] < due[:, None]] = _PRESENT
    ranges = (
        report.select(pl.int_range(pl.len()).alias("row"), pl.col("ranges"))
        .explode("ranges")
        .drop_nulls("ranges")
    )
    if ranges.height:
        flat = ranges.unnest("ranges")
        first = np.searchsorted(minutes, _micros(flat["start"]))
        last = first + flat["minutes"].to_numpy()
        # Each range's cells, all ranges at once: +1 at its first minute, -1 after its last.
        marks = np.zeros((rows, len(minutes) + 1), dtype=np.int32)
        row = flat["row"].to_numpy()
        np.add.at(marks, (row, first), 1)
        np.add.at(marks, (row, last), -1)
        cells[np.cumsum(marks, axis=1)[:, :-1] > 0] = _MISSING
    return cells


def coverage_figure(
    report: pl.DataFrame,
    minutes: NDArray[np.int64],
    *,
    rows: int = 40,
    tz: str = "UTC",
    title: str | None = None,
) -> tuple[Figure, Any]:
    """Draw a quality report over the session's minutes.

    Parameters
    ----------
    report
        `Warehouse.quality`'s frame.
    minutes
        The session's minutes (`Calendar.minutes`), UTC microseconds.
    rows
        How many symbols get a row of their own: the least complete ones, then by symbol.
    tz
        The time zone of the axis labels (an IANA name, e.g. the calendar's ``tz``).
    title
        The figure's title.

    Returns
    -------
    tuple
        The figure and the axes of the symbol rows, whose data coordinates are (minute index,
        row index): cell (r, k) spans ``[k, k + 1) x [r, r + 1)``.

    Raises
    ------
    MissingExtraError
        matplotlib is not installed.
    """
    figure_class, colormap = _matplotlib()
    shown = report.sort(["quality", "symbol"], nulls_last=True).head(rows)
    cells = coverage_cells(shown, minutes)
    everyone = coverage_cells(report, minutes)
    due = int(report["expected"].to_numpy().max()) if report.height else 0
    share = (everyone[:, :due] == _PRESENT).mean(axis=0) * 100 if report.height else []
    n = len(minutes)
    height = 2.2 + 0.16 * max(len(cells), 1)  # inches: fixed margins, a strip per symbol
    figure = figure_class(figsize=(10, height), dpi=100)
    top, grid = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, max(len(cells), 1) * 0.16]}
    )
    top.plot(np.arange(due) + 0.5, share, color=COLORS["present"], linewidth=1)
    top.set_ylim(0, 105)
    top.set_ylabel("% symbols")
    top.grid(alpha=0.3)
    palette = colormap([COLORS["not due"], COLORS["missing"], COLORS["present"]])
    grid.imshow(
        cells,
        cmap=palette,
        vmin=0,
        vmax=2,
        aspect="auto",
        interpolation="nearest",
        extent=(0, n, len(cells), 0),
    )
    grid.set_yticks(np.arange(len(cells)) + 0.5)
    grid.set_yticklabels(
        [
            f"{s} {q:.0f}%" if q is not None else s
            for s, q in zip(shown["symbol"], shown["quality"], strict=True)
        ],
        fontsize=7,
    )
    ticks, labels = _time_ticks(minutes, tz)
    grid.set_xticks(ticks)
    grid.set_xticklabels(labels, fontsize=8)
    grid.set_xlabel(f"time ({tz})")
    worst = f"{len(cells)} least complete of {report.height} symbols"
    figure.suptitle(title or f"Coverage: {worst}", fontsize=10)
    figure.subplots_adjust(
        left=0.14, right=0.98, top=1 - 0.35 / height, bottom=0.5 / height, hspace=0.08
    )
    return figure, grid


def write_coverage_png(
    report: pl.DataFrame,
    minutes: NDArray[np.int64],
    path: str | Path,
    *,
    rows: int = 40,
    tz: str = "UTC",
    title: str | None = None,
) -> Path:
    """Draw `coverage_figure` into a PNG file at ``path``; returns the path."""
    figure, _ = coverage_figure(report, minutes, rows=rows, tz=tz, title=title)
    target = Path(path)
    figure.savefig(target, format="png", dpi=figure.dpi)
    return target


def candle_figure(
    bars: pl.DataFrame,
    minutes: NDArray[np.int64],
    *,
    interval: int = 1,
    gaps: pl.DataFrame | None = None,
    due: int | None = None,
    tz: str = "UTC",
    title: str | None = None,
) -> tuple[Figure, Any, Any]:
    """Draw one symbol's bars as candlesticks over a volume panel, gaps and filled bars marked.

    Parameters
    ----------
    bars
        The bars: columns ``ts`` (the bar's start, UTC), ``open``, ``high``, ``low``,
        ``close``, ``volume``, and optionally ``origin``: a bar whose origin is ``'filled'``
        is drawn in the filled colour whichever way it went; without the column every bar is
        live. A bar outside the session's minutes, or starting in a minute not yet due
        (``due``), is not drawn.
    minutes
        The session's minutes (`Calendar.minutes`), UTC microseconds: the time axis.
    interval
        Minutes per bar: 1 for one-minute bars, N for the session-anchored bars of the named
        query ``resample_bars`` (a bar's candle spans its bucket's minutes of the session).
    gaps
        Due minutes without a bar, shaded: rows with ``start`` and ``end`` (UTC, ``[start,
        end)``), as in the ``ranges`` of `Warehouse.quality`.
    due
        How many of the session's minutes are due (the report's ``expected``): the minutes
        after them are shaded as not yet due, and their bars are not drawn. None: every bar,
        no shading.
    tz
        The time zone of the axis labels (an IANA name, e.g. the calendar's ``tz``).
    title
        The figure's title.

    Returns
    -------
    tuple
        The figure, the price axes and the volume axes. Both share the data x coordinate
        "minute index of the session": the session's minute k spans ``[k, k + 1)``, so a bar
        starting at minute k is drawn over ``[k, k + interval)`` (its candle and volume bar
        are centred there, 0.8 of it wide); the y coordinates are price and volume.

    Raises
    ------
    SchemaMismatchError
        ``bars`` lacks one of the columns drawn.
    MissingExtraError
        matplotlib is not installed.
    """
    absent = [name for name in CANDLE_COLUMNS if name not in bars.columns]
    if absent:
        raise SchemaMismatchError(
            f"candle_figure() needs the columns {', '.join(CANDLE_COLUMNS)} (and optionally "
            f"origin); missing: {', '.join(absent)}"
        )
    figure_class, _ = _matplotlib()
    from matplotlib.patches import Patch

    n = len(minutes)
    starts = _micros(bars["ts"])
    starts = starts - starts % MINUTE  # a bar stamped within its minute is of that minute
    first = np.searchsorted(minutes, starts)
    last = np.searchsorted(minutes, starts + interval * MINUTE)
    shown = last > first  # outside the session's minutes (or its break): not drawn
    if due is not None:
        shown &= first < due  # a bar of a minute not yet due is not drawn: its time is to come
    first, width = first[shown], (last - first)[shown]
    centre = first + width / 2
    values = {name: bars[name].to_numpy()[shown] for name in CANDLE_COLUMNS[1:]}
    low, high = values["low"], values["high"]
    opens, closes, volume = values["open"], values["close"], values["volume"]
    filled = np.zeros(len(bars), dtype=bool)
    if "origin" in bars.columns:
        filled = (bars["origin"].cast(pl.String) == "filled").fill_null(False).to_numpy()
    filled = filled[shown]
    direction = np.where(closes >= opens, CANDLE_COLORS["up"], CANDLE_COLORS["down"])
    colours = np.where(filled, CANDLE_COLORS["filled"], direction).tolist()

    figure = figure_class(figsize=(10, 6), dpi=100)
    price, volumes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    spans = _gap_spans(gaps, minutes)
    # A bucket that began before `due` is drawn whole: the shading begins after it.
    not_due = None if due is None else max(due, int((first + width).max(initial=0)))
    for axes in (price, volumes):
        for start, stop in spans:
            axes.axvspan(start, stop, color=CANDLE_COLORS["gap"], linewidth=0, zorder=0)
        if not_due is not None and not_due < n:
            axes.axvspan(not_due, n, color=COLORS["not due"], linewidth=0, zorder=0)
    price.vlines(centre, low, high, colors=colours, linewidth=0.7, zorder=1)
    price.bar(
        centre,
        np.abs(closes - opens),
        bottom=np.minimum(opens, closes),
        width=0.8 * width,
        color=colours,
        edgecolor=colours,  # a body as thin as its outline (open == close) still shows
        linewidth=0.4,
        zorder=2,
    )
    volumes.bar(centre, volume, width=0.8 * width, color=colours, linewidth=0, zorder=2)
    price.set_xlim(0, n)
    if len(low):
        pad = (float(high.max()) - float(low.min())) * 0.05 or 1.0
        price.set_ylim(float(low.min()) - pad, float(high.max()) + pad)
        volumes.set_ylim(0, float(volume.max()) * 1.05 or 1.0)
    price.set_ylabel("price")
    volumes.set_ylabel("volume")
    price.grid(axis="y", alpha=0.3)
    ticks, labels = _time_ticks(minutes, tz)
    volumes.set_xticks(ticks)
    volumes.set_xticklabels(labels, fontsize=8)
    volumes.set_xlabel(f"time ({tz})")

    missing = sum(stop - start for start, stop in spans)
    what = "bar holding a filled minute" if interval > 1 else "filled bar"
    handles = [
        Patch(color=CANDLE_COLORS["up"], label="close >= open"),
        Patch(color=CANDLE_COLORS["down"], label="close < open"),
        Patch(color=CANDLE_COLORS["filled"], label=f"{what} ({int(filled.sum())})"),
        Patch(color=CANDLE_COLORS["gap"], label=f"no bar ({missing} min in {len(spans)} "
              f"gap{'s' if len(spans) != 1 else ''})"),
    ]
    if not_due is not None and not_due < n:
        handles.append(Patch(color=COLORS["not due"], label="not due yet"))
    figure.legend(
        handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
        bbox_to_anchor=(0.5, 0.955),
    )
    figure.suptitle(title or f"{len(centre)} bars of {interval} min", fontsize=10, y=0.99)
    figure.subplots_adjust(left=0.09, right=0.98, top=0.90, bottom=0.09)
    return figure, price, volumes


def write_candle_png(
    bars: pl.DataFrame,
    minutes: NDArray[np.int64],
    path: str | Path,
    *,
    interval: int = 1,
    gaps: pl.DataFrame | None = None,
    due: int | None = None,
    tz: str = "UTC",
    title: str | None = None,
) -> Path:
    """Draw `candle_figure` into a PNG file at ``path``; returns the path."""
    figure, _, _ = candle_figure(
        bars, minutes, interval=interval, gaps=gaps, due=due, tz=tz, title=title
    )
    target = Path(path)
    figure.savefig(target, format="png", dpi=figure.dpi)
    return target


def _gap_spans(gaps: pl.DataFrame | None, minutes: NDArray[np.int64]) -> list[tuple[int, int]]:
    """The gaps as ``[first, stop)`` minute indexes of the session (a break inside is skipped)."""
    if gaps is None or not gaps.height:
        return []
    first = np.searchsorted(minutes, _micros(gaps["start"]))
    stop = np.searchsorted(minutes, _micros(gaps["end"]))
    return [(int(a), int(b)) for a, b in zip(first, stop, strict=True) if b > a]


def _time_ticks(minutes: NDArray[np.int64], tz: str) -> tuple[list[int], list[str]]:
    """Ticks at the session's minutes on the half hour (the hour, past 8 hours), in ``tz``."""
    zone = ZoneInfo(tz)
    every = 30 if len(minutes) <= 480 else 60
    ticks, labels = [], []
    for index, micros in enumerate(minutes.tolist()):
        local = (EPOCH + timedelta(microseconds=micros)).astimezone(zone)
        if local.minute % every == 0 or index == 0:
            ticks.append(index)
            labels.append(f"{local:%H:%M}")
    return ticks, labels


def _micros(column: pl.Series) -> NDArray[np.int64]:
    values: NDArray[np.int64] = column.dt.epoch("us").to_numpy()
    return values
