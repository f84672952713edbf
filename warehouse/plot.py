"""Pictures of a session's completeness, drawn with matplotlib (the optional ``plot`` extra).

`coverage_figure` draws a quality report (`Warehouse.quality`) over the session's minutes: on
top, the share of symbols with a bar in each minute; below, one row per symbol (the least
complete first), a cell per minute: present, missing, or not yet due. matplotlib is imported
only here and only when drawing, without pyplot (no display, no global state), so the package
works without it; a missing install raises `MissingExtraError` naming the extra.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from warehouse.errors import MissingExtraError
from warehouse.schema import EPOCH

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["COLORS", "coverage_figure", "write_coverage_png"]

#: Cell colours: a present minute, a missing one, one not yet due.
COLORS = {"present": "#2e9e4f", "missing": "#d7301f", "not due": "#e6e6e6"}
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
    ticks = np.arange(0, n, 30)
    grid.set_xticks(ticks)
    grid.set_xticklabels(
        [f"{(EPOCH + timedelta(microseconds=int(minutes[t]))):%H:%M}" for t in ticks], fontsize=8
    )
    grid.set_xlabel("minute of the session (UTC)")
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
    title: str | None = None,
) -> Path:
    """Draw `coverage_figure` into a PNG file at ``path``; returns the path."""
    figure, _ = coverage_figure(report, minutes, rows=rows, title=title)
    target = Path(path)
    figure.savefig(target, format="png", dpi=figure.dpi)
    return target


def _micros(column: pl.Series) -> NDArray[np.int64]:
    values: NDArray[np.int64] = column.dt.epoch("us").to_numpy()
    return values
