"""The pictures (issue 9, item 4): `warehouse quality --png`, `warehouse plot`, `warehouse.plot`."""

from __future__ import annotations

import builtins
from datetime import date

import matplotlib.image
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from warehouse import Calendar, MissingExtraError, SchemaMismatchError, Warehouse
from warehouse.calendar import MINUTE
from warehouse.cli import _mark_filled, main
from warehouse.plot import (
    CANDLE_COLORS,
    CANDLE_COLUMNS,
    COLORS,
    candle_figure,
    coverage_cells,
    coverage_figure,
)
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


def test_coverage_axis_reads_in_exchange_time_like_the_candles(db):
    with Warehouse(db, read_only=True) as wh:
        report, bars = wh.quality(now=NOW), aapl(wh)
    _, grid = coverage_figure(report, XNYS.minutes(DAY), tz=XNYS.tz)
    _, _, volume = candle_figure(bars, XNYS.minutes(DAY), tz=XNYS.tz)
    labels = [t.get_text() for t in grid.get_xticklabels()]
    assert labels[:3] == ["09:30", "10:00", "10:30"]
    assert labels == [t.get_text() for t in volume.get_xticklabels()]
    assert grid.get_xlabel() == "time (America/New_York)"


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


# -- warehouse plot SYMBOL: candlesticks, gaps and filled bars -----------------------------------

GAP = 75.5  # the middle of AAPL's missing minutes 60-89, in minute-index coordinates


def near(image: np.ndarray, axes, x: float, y: float, colour: np.ndarray, atol=0.02) -> bool:
    """Whether the pixel at (x, y), or one beside it, has ``colour`` (a candle ~2 pixels wide)."""
    px, py = axes.transData.transform((x, y))
    row, column = image.shape[0] - round(py), round(px)
    return any(np.allclose(p, colour, atol=atol) for p in image[row, column - 1 : column + 2, :3])


def between_ticks(axes) -> float:
    """A y coordinate halfway between two grid lines of ``axes``."""
    low, high = axes.get_ylim()
    ticks = [t for t in axes.get_yticks() if low < t < high]
    return (ticks[0] + ticks[1]) / 2


def aapl(wh: Warehouse, interval: int = 1) -> pl.DataFrame:
    """AAPL's bars as `warehouse plot` draws them (one-minute, or resample_bars')."""
    if interval == 1:
        return wh.frame("AAPL").select(CANDLE_COLUMNS)
    derived = pl.from_arrow(wh.query("resample_bars", wh.resample_params(interval)))
    return derived.filter(symbol="AAPL").select(CANDLE_COLUMNS)


def redraw(db, interval: int = 1):
    """The picture `warehouse plot AAPL --now NOW` draws, again, for where its bars are."""
    with Warehouse(db, read_only=True) as wh:
        bars = aapl(wh, interval)
        report = wh.quality(now=NOW, symbols=["AAPL"]).filter(symbol="AAPL")
    gaps = report["ranges"].explode().struct.unnest()
    figure, price, volume = candle_figure(
        bars, XNYS.minutes(DAY), interval=interval, gaps=gaps, due=270, tz=XNYS.tz
    )
    return bars, figure, price, volume


def direction(bar: dict) -> np.ndarray:
    return rgb(CANDLE_COLORS["up" if bar["close"] >= bar["open"] else "down"])


def test_plot_command_shades_the_gap_between_the_candles(db, tmp_path, capsys):
    png = tmp_path / "aapl.png"
    assert main(["plot", "AAPL", "--db", str(db), "--now", NOW, "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert out == (f"wrote {png}: 240 one-minute bars of AAPL (120 after --now, not drawn), "
                   "session 2025-11-21 XNYS; 1 gap, 30 minutes without a bar; 0 filled\n")
    image = matplotlib.image.imread(png)
    bars, figure, price, volume = redraw(db)
    assert image.shape[:2] == (int(figure.bbox.height), int(figure.bbox.width))
    gap = rgb(CANDLE_COLORS["gap"])
    for x in (60.5, GAP, 89.5):
        assert np.allclose(pixel(image, price, x, between_ticks(price)), gap, atol=0.02)
        assert np.allclose(pixel(image, volume, x, volume.get_ylim()[1] / 2), gap, atol=0.02)
    # The candle with the widest body before the gap, and the volume bar of the busiest minute.
    before = bars.head(60).with_row_index("k")
    body = before.sort((pl.col("close") - pl.col("open")).abs()).row(-1, named=True)
    assert near(image, price, body["k"] + 0.5, (body["open"] + body["close"]) / 2,
                direction(body), atol=0.05)
    busy = before.slice(1).sort("volume").row(-1, named=True)
    assert near(image, volume, busy["k"] + 0.5, busy["volume"] / 2, direction(busy), atol=0.05)
    assert not near(image, price, GAP, between_ticks(price), direction(body), atol=0.1)
    # After --now: not due yet (grey), though the generated bars run to the close: no bar of
    # those minutes is drawn over it (the candles' bodies and volume bars would be coloured).
    grey = rgb(COLORS["not due"])
    assert np.allclose(pixel(image, volume, 380.5, volume.get_ylim()[1] * 0.95), grey, atol=0.02)
    for k, bar in enumerate(bars.slice(240).iter_rows(named=True), start=270):
        middle = (bar["open"] + bar["close"]) / 2
        if k % 10 == 0 and price.get_ylim()[0] < middle < price.get_ylim()[1]:
            assert np.allclose(pixel(image, price, k + 0.5, middle), grey, atol=0.02)
            assert np.allclose(pixel(image, volume, k + 0.5, bar["volume"] / 2), grey, atol=0.02)


def test_plot_command_with_an_interval_draws_the_five_minute_bars_and_the_gap(db, tmp_path,
                                                                             capsys):
    png = tmp_path / "aapl5.png"
    argv = ["plot", "AAPL", "--db", str(db), "--now", NOW, "--interval", "5m", "--png", str(png)]
    assert main(argv) == 0
    assert "48 5-minute bars of AAPL (24 after --now, not drawn)" in capsys.readouterr().out
    image = matplotlib.image.imread(png)
    bars, _, price, volume = redraw(db, 5)
    assert bars.height == 72
    gap = rgb(CANDLE_COLORS["gap"])
    for x in (60.5, GAP, 89.5):
        assert np.allclose(pixel(image, price, x, between_ticks(price)), gap, atol=0.02)
    # Every bucket before the gap: its candle body and volume bar, centred on its 5 minutes.
    for k, bar in enumerate(bars.head(12).iter_rows(named=True)):
        top, bottom = (price.transData.transform((0, v))[1] for v in (bar["open"],
                                                                       bar["close"]))
        if abs(top - bottom) >= 3:  # pixels: a body to look at
            middle = (bar["open"] + bar["close"]) / 2
            assert np.allclose(pixel(image, price, 5 * k + 2.5, middle), direction(bar),
                               atol=0.02)
        assert np.allclose(pixel(image, volume, 5 * k + 2.5, bar["volume"] / 2),
                           direction(bar), atol=0.02)


def test_plot_command_draws_the_bars_gap_filling_inserted_in_their_colour(db, tmp_path, capsys):
    table = generate_sessions(XNYS, DAY, 1, 6)[0]
    minute = pc.divide(pc.subtract(table["ts"].cast(pa.int64()), XNYS.window(DAY).open), MINUTE)
    with Warehouse(db, flush_interval=None, calendar=XNYS) as wh:  # minutes 60-74 come back
        assert wh.fill(table.filter(pc.equal(table["symbol"], "AAPL"))
                       .filter(pc.less(minute.filter(pc.equal(table["symbol"], "AAPL")), 75))) == 15
    png = tmp_path / "filled.png"
    assert main(["plot", "AAPL", "--db", str(db), "--now", NOW, "--png", str(png)]) == 0
    assert capsys.readouterr().out.endswith("1 gap, 15 minutes without a bar; 15 filled\n")
    image = matplotlib.image.imread(png)
    bars, _, price, volume = redraw(db)
    filled = rgb(CANDLE_COLORS["filled"])
    rows = bars.with_row_index("k")
    for bar in rows.slice(60, 15).iter_rows(named=True):
        assert near(image, volume, bar["k"] + 0.5, bar["volume"] / 2, filled, atol=0.05)
    live = rows.row(59, named=True)
    assert not near(image, volume, live["k"] + 0.5, live["volume"] / 2, filled, atol=0.1)
    gap = rgb(CANDLE_COLORS["gap"])
    assert np.allclose(pixel(image, price, 82.5, between_ticks(price)), gap, atol=0.02)


def test_candle_figure_draws_filled_bars_in_their_colour(db, tmp_path):
    with Warehouse(db, read_only=True) as wh:
        bars = aapl(wh)
    # Minutes 100-139 filled: an origin column as the bars view has it with gap filling.
    filled_rows = pl.int_range(pl.len()).is_between(100, 139)
    bars = bars.with_columns(origin=pl.when(filled_rows).then(pl.lit("filled"))
                             .otherwise(pl.lit("live")).cast(pl.Enum(["live", "filled"])))
    figure, price, volume = candle_figure(bars, XNYS.minutes(DAY), tz=XNYS.tz)
    png = tmp_path / "filled.png"
    figure.savefig(png, dpi=figure.dpi)
    image = matplotlib.image.imread(png)
    filled = rgb(CANDLE_COLORS["filled"])
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "filled bar (40)" in labels
    # Bars 100-139 are minutes 130-169 (bars of 60-89 are missing): purple, wherever they go.
    rows = bars.with_row_index("row").with_columns(k=pl.col("row") + 30).slice(100, 40)
    body = rows.sort((pl.col("close") - pl.col("open")).abs()).row(-1, named=True)
    assert near(image, price, body["k"] + 0.5, (body["open"] + body["close"]) / 2, filled)
    busy = rows.sort("volume").row(-1, named=True)
    assert near(image, volume, busy["k"] + 0.5, busy["volume"] / 2, filled)
    live = bars.head(100).with_row_index("k").sort("volume").row(-2, named=True)
    assert near(image, volume, live["k"] + 0.5, live["volume"] / 2, direction(live), atol=0.05)
    assert not near(image, volume, live["k"] + 0.5, live["volume"] / 2, filled, atol=0.1)


def test_candle_figure_marks_derived_bars_with_a_filled_minute(tmp_path):
    minutes = XNYS.minutes(DAY)
    open_ = int(minutes[0])
    stamps = pl.Series([open_ + k * MINUTE for k in range(30)]).cast(pl.Datetime("us", "UTC"))
    minute_bars = pl.DataFrame({"ts": stamps, "origin": ["filled" if k == 12 else "live"
                                                         for k in range(30)]})
    derived = pl.DataFrame({
        "ts": stamps.gather_every(5), "open": [10.0, 11, 12, 13, 12, 11],
        "high": [12.0, 13, 14, 15, 14, 13], "low": [9.0, 10, 11, 12, 11, 10],
        "close": [11.0, 12, 13, 12, 11, 10], "volume": [100.0] * 6,
    })
    marked = _mark_filled(derived, minute_bars, open_, 5)
    assert marked["origin"].to_list() == ["live", "live", "filled", "live", "live", "live"]
    figure, price, volume = candle_figure(marked, minutes[:30], interval=5)
    png = tmp_path / "derived.png"
    figure.savefig(png, dpi=figure.dpi)
    image = matplotlib.image.imread(png)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "bar holding a filled minute (1)" in labels
    assert np.allclose(pixel(image, price, 12.5, 12.5), rgb(CANDLE_COLORS["filled"]), atol=0.02)
    assert np.allclose(pixel(image, price, 7.5, 11.5), rgb(CANDLE_COLORS["up"]), atol=0.02)
    assert np.allclose(pixel(image, price, 17.5, 12.5), rgb(CANDLE_COLORS["down"]), atol=0.02)
    assert np.allclose(pixel(image, volume, 12.5, 50), rgb(CANDLE_COLORS["filled"]), atol=0.02)


def test_candle_figure_without_a_price_column_names_it(db):
    with Warehouse(db, read_only=True) as wh:
        bars = aapl(wh).drop("low")
    with pytest.raises(SchemaMismatchError, match="missing: low"):
        candle_figure(bars, XNYS.minutes(DAY))


def test_plot_command_writes_symbol_png_in_the_current_directory(db, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "AAPL", "--db", str(db), "--now", NOW]) == 0
    assert main(["plot", "AAPL", "--db", str(db), "--now", NOW, "--interval", "1h"]) == 0
    assert (tmp_path / "AAPL.png").is_file()
    assert (tmp_path / "AAPL_60m.png").is_file()
    out = capsys.readouterr().out
    assert "wrote AAPL.png:" in out
    assert "wrote AAPL_60m.png: 5 60-minute bars of AAPL (2 after --now, not drawn)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "IBM"], "IBM has no bars in session 2025-11-21 (XNYS); symbols with bars (6): "
                          "AAPL, AMZN, GOOGL, META, MSFT, NVDA"),
        (["plot", "AAPL", "--interval", "5x"], "--interval: interval '5x' is not a number of "
                                                "minutes"),
        (["plot", "AAPL", "--interval", "0m"], "must be at least one minute"),
    ],
)
def test_plot_command_refuses_in_one_line(db, tmp_path, capsys, argv, message):
    png = tmp_path / "x.png"
    assert main([*argv, "--db", str(db), "--png", str(png)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("warehouse: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert not png.exists()


def test_plot_command_without_a_session_fails_in_one_line(tmp_path, capsys):
    path = tmp_path / "plain.duckdb"
    with Warehouse(path, flush_interval=None) as wh:
        wh.append("AAPL", "2025-11-21T14:30:00Z", 1.0, 2.0, 0.5, 1.5, 10.0)
    assert main(["plot", "AAPL", "--db", str(path), "--png", str(tmp_path / "x.png")]) == 1
    assert "warehouse plot needs an open session" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_plot_command_without_matplotlib_names_the_extra(db, tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    png = tmp_path / "x.png"
    assert main(["plot", "AAPL", "--db", str(db), "--png", str(png)]) == 1
    err = capsys.readouterr().err
    assert 'drawing a picture needs matplotlib' in err
    assert 'pip install "warehouse[plot]"' in err
    assert not png.exists()
