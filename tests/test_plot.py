"""The coverage picture (issue 9, item 4): `warehouse quality --png` and `warehouse.plot`."""

from __future__ import annotations

import builtins
from datetime import date

import matplotlib.image
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from warehouse import Calendar, MissingExtraError, Warehouse
from warehouse.calendar import MINUTE
from warehouse.cli import main
from warehouse.plot import COLORS, coverage_cells, coverage_figure
from warehouse.sample import generate_sessions

XNYS = Calendar("XNYS", start=date(2025, 11, 1), end=date(2025, 12, 31))
DAY = date(2025, 11, 21)
NOW = "2025-11-21T19:00:00Z"  # 270 minutes in


@pytest.fixture
def db(tmp_path):
    """A session of 6 symbols; AAPL misses minutes 60-89."""
    table = generate_sessions(XNYS, DAY, 1, 6)[0]
    minute = pc.divide(pc.subtract(table["ts"].cast(pa.int64()), XNYS.window(DAY).open), MINUTE)
    hole = pc.and_(
        pc.equal(table["symbol"], "AAPL"),
        pc.and_(pc.greater_equal(minute, 60), pc.less(minute, 90)),
    )
    path = tmp_path / "wh.duckdb"
    with Warehouse(path, flush_interval=None, calendar=XNYS) as wh:
        wh.start_session(DAY)
        wh.extend(table.filter(pc.invert(hole)))
    return path


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])


def pixel(image: np.ndarray, axes, x: float, y: float) -> np.ndarray:
    """The RGB of the picture at data coordinates (x, y) of ``axes``."""
    px, py = axes.transData.transform((x, y))
    return image[image.shape[0] - round(py), round(px), :3]


def test_quality_command_prints_the_table_and_draws_the_gap_where_it_is(db, tmp_path, capsys):
    png = tmp_path / "coverage.png"
    assert main(["quality", "--db", str(db), "--now", NOW, "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "270 of 390 minutes due, 6 symbols, 5 complete" in out
    first = next(line for line in out.splitlines() if "AAPL" in line)
    assert all(figure in first for figure in ("240", "88.89", "15:30"))
    assert f"picture: {png}" in out
    image = matplotlib.image.imread(png)
    # The same figure again, for where its cells are: AAPL is the least complete, row 0.
    with Warehouse(db, read_only=True) as wh:
        report = wh.quality(now=NOW)
    figure, axes = coverage_figure(report, XNYS.minutes(DAY), rows=20)
    assert image.shape[:2] == (int(figure.bbox.height), int(figure.bbox.width))
    missing, present, not_due = (
        rgb(COLORS["missing"]),
        rgb(COLORS["present"]),
        rgb(COLORS["not due"]),
    )
    assert np.allclose(pixel(image, axes, 75.5, 0.5), missing, atol=0.02)  # in the gap
    assert np.allclose(pixel(image, axes, 30.5, 0.5), present, atol=0.02)  # before it
    assert np.allclose(pixel(image, axes, 75.5, 1.5), present, atol=0.02)  # another symbol
    assert np.allclose(pixel(image, axes, 300.5, 0.5), not_due, atol=0.02)  # after --now


def test_coverage_cells_mark_present_missing_and_not_due(db):
    with Warehouse(db, read_only=True) as wh:
        report = wh.quality(now=NOW, symbols=["NONE"]).sort("symbol")
    cells = coverage_cells(report, XNYS.minutes(DAY))
    aapl = report["symbol"].to_list().index("AAPL")
    none = report["symbol"].to_list().index("NONE")
    assert (cells[aapl, 60:90] == 1).all()
    assert (cells[aapl, :60] == 2).all()
    assert (cells[aapl, 90:270] == 2).all()
    assert (cells[:, 270:] == 0).all()
    assert (cells[none, :270] == 1).all()


def test_quality_command_without_a_session_fails_in_one_line(tmp_path, capsys):
    path = tmp_path / "plain.duckdb"
    with Warehouse(path, flush_interval=None) as wh:
        wh.append("AAPL", "2025-11-21T14:30:00Z", 1.0, 2.0, 0.5, 1.5, 10.0)
    assert main(["quality", "--db", str(path)]) == 1
    assert "needs an open session" in capsys.readouterr().err


def test_quality_command_refuses_a_naive_now(db, capsys):
    assert main(["quality", "--db", str(db), "--now", "2025-11-21T19:00"]) == 2
    assert "has no offset" in capsys.readouterr().err


def test_picture_without_matplotlib_names_the_extra(db, tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with Warehouse(db, read_only=True) as wh:
        report = wh.quality(now=NOW)
    with pytest.raises(MissingExtraError, match=r'pip install "warehouse\[plot\]"'):
        coverage_figure(report, XNYS.minutes(DAY))
    assert main(["quality", "--db", str(db), "--png", str(tmp_path / "x.png")]) == 1
    assert 'pip install "warehouse[plot]"' in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
