"""`Warehouse`: invariants 1-3 and 6 against real DuckDB files, windows, lifecycle, threads."""

from __future__ import annotations

import logging
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import polars.testing as plt
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import warehouse as warehouse_package
from warehouse import (
    Bar,
    InvalidBarError,
    SchemaMismatchError,
    StoreError,
    Warehouse,
    WarehouseError,
)
from warehouse.sample import generate_session
from warehouse.schema import BAR_SCHEMA, bars_from_table

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
INJECTION = "'; DROP TABLE bars; --"

MakeBar = Callable[..., Bar]
ReadSql = Callable[..., list[Bar]]


def sql_count(wh: Warehouse, where: str = "true", params: Any = None) -> int:
    return wh.sql(f"SELECT count(*) AS n FROM bars WHERE {where}", params)["n"][0].as_py()


def frame_bars(frame: pl.DataFrame) -> list[Bar]:
    frame = frame.drop("origin", strict=False).with_columns(pl.col("ts").dt.epoch("us"))
    return [Bar(*row) for row in frame.rows()]


def assert_everywhere(wh: Warehouse, read_sql: ReadSql, expected: list[Bar]) -> None:
    """Hot reads, SQL over `bars` and frame() all show exactly ``expected``, in ts order."""
    expected = sorted(expected, key=lambda b: (b.symbol, b.ts))
    assert read_sql(wh) == expected
    assert frame_bars(wh.frame()) == expected
    assert sql_count(wh) == len(expected)
    for symbol in {b.symbol for b in expected}:
        mine = [b for b in expected if b.symbol == symbol]
        assert wh.count(symbol) == len(mine)
        assert wh.latest(symbol) == mine[-1]
        assert wh.last_n(symbol, len(mine)) == mine
        assert wh.last_n(symbol, len(mine) + 5) == mine
        assert wh.last_n(symbol, 1) == mine[-1:]
        assert wh.since(symbol, mine[0].ts) == mine
        assert wh.since(symbol, mine[len(mine) // 2].ts) == mine[len(mine) // 2 :]
        assert frame_bars(wh.frame(symbol)) == mine


# -- invariant 1: visible at once, exactly once ----------------------------------------------


def test_append_is_visible_to_every_reader_at_once(
    wh: Warehouse, bar: MakeBar, read_sql: ReadSql
) -> None:
    b = bar("AAPL", 0, vwap=100.1, trade_count=17)
    wh.append(*b)
    assert wh.latest("AAPL") == b
    assert wh.last_n("AAPL", 3) == [b]
    assert wh.since("AAPL", T0) == [b]
    assert wh.count("AAPL") == 1
    assert wh.latest_many(["AAPL", "MSFT"]) == {"AAPL": b, "MSFT": None}
    assert read_sql(wh) == [b]
    assert frame_bars(wh.frame()) == [b]
    assert frame_bars(wh.scan().drop("date").collect()) == [b]
    assert wh.sql_polars("SELECT count(*) AS n FROM bars")["n"][0] == 1
    assert wh.symbols() == ["AAPL"]
    assert wh.has_bars("AAPL")


def test_flush_keeps_every_bar_exactly_once(wh: Warehouse, bar: MakeBar, read_sql: ReadSql) -> None:
    bars = [bar(s, m) for s in ("A", "B") for m in range(20)]
    for b in bars[:25]:
        wh.append(*b)
    assert wh.flush() == 25
    assert wh.stats()["unflushed"] == 0
    assert_everywhere(wh, read_sql, bars[:25])
    wh.extend(bars[25:])
    assert_everywhere(wh, read_sql, bars)
    assert wh.flush() == 15
    assert wh.flush() == 0
    assert_everywhere(wh, read_sql, bars)
    assert wh._store.stored_count() == len(bars)


def test_reopen_restores_every_bar_once(file_wh: Any, bar: MakeBar, read_sql: ReadSql) -> None:
    bars = [bar(s, m, price=10.0 + m) for s in ("ES", "NQ", INJECTION) for m in range(30)]
    first = file_wh(window=8)
    first.extend(bars[:50])
    first.flush()
    for b in bars[50:]:
        first.append(*b)  # left unflushed: close must flush them
    first.close()
    again = file_wh(window=8)
    assert again.stats()["unflushed"] == 0
    assert_everywhere(again, read_sql, bars)
    again.close()


def test_reopen_then_append_and_replace_continues_session(
    file_wh: Any, bar: MakeBar, read_sql: ReadSql
) -> None:
    first = file_wh(window=4)
    first.extend([bar("ES", m, price=1.0) for m in range(10)])
    first.close()
    again = file_wh(window=4)
    again.append(*bar("ES", 10, price=1.0))
    again.append(*bar("ES", 2, price=7.0))  # replaces a stored bar older than the window
    assert again.replacements == 1
    expected = [bar("ES", m, price=7.0 if m == 2 else 1.0) for m in range(11)]
    assert_everywhere(again, read_sql, expected)
    again.close()
    assert_everywhere(file_wh(window=4), read_sql, expected)


def test_crash_after_flush_keeps_flushed_bars_once(tmp_path: Path, read_sql: ReadSql) -> None:
    """Invariant 6: kill -9 after a flush; the reopened file has every flushed bar, once."""
    path = tmp_path / "crash.duckdb"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from warehouse import Warehouse
        wh = Warehouse(sys.argv[1], flush_interval=None)
        for m in range(100):
            wh.append("ES", {T0} + m * {MINUTE}, 10.0, 11.0, 9.0, 10.5, float(m))
        wh.append("ES", {T0} + 5 * {MINUTE}, 20.0, 21.0, 19.0, 20.5, 5.0)
        wh.flush()
        for m in range(100, 110):
            wh.append("ES", {T0} + m * {MINUTE}, 10.0, 11.0, 9.0, 10.5, float(m))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    root = Path(warehouse_package.__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=root, capture_output=True, timeout=60,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    with Warehouse(path, flush_interval=None) as wh:
        bars = read_sql(wh)
        assert [b.ts for b in bars] == [T0 + m * MINUTE for m in range(100)]
        assert bars[5].open == 20.0
        assert wh.count("ES") == 100
        assert wh.latest("ES").volume == 99.0


# -- invariant 2: ts order whatever the arrival order ----------------------------------------


@pytest.mark.parametrize("window", [2, 8, 64])
@pytest.mark.parametrize("flush_every", [0, 7])
def test_shuffled_arrival_reads_in_ts_order(
    file_wh: Any, bar: MakeBar, read_sql: ReadSql, window: int, flush_every: int
) -> None:
    bars = [bar(s, m, price=float(m + 5)) for s in ("A", "B", "C") for m in range(40)]
    arrival = bars[:]
    random.Random(window * 31 + flush_every).shuffle(arrival)
    wh = file_wh(window=window)
    for i, b in enumerate(arrival, start=1):
        wh.append(*b)
        if flush_every and i % flush_every == 0:
            wh.flush()
    assert_everywhere(wh, read_sql, bars)
    wh.close()
    assert_everywhere(file_wh(window=window), read_sql, bars)


# -- invariant 3: a repeated key replaces everywhere -----------------------------------------


def test_repeated_key_replaces_in_hot_reads_sql_and_frame(
    wh: Warehouse, bar: MakeBar, read_sql: ReadSql
) -> None:
    wh.append(*bar("ES", 0, price=10.0))
    wh.append(*bar("ES", 1, price=10.0))
    wh.append(*bar("ES", 1, price=20.0))
    expected = [bar("ES", 0, price=10.0), bar("ES", 1, price=20.0)]
    assert wh.replacements == 1
    assert wh.stats()["replacements"] == 1
    assert_everywhere(wh, read_sql, expected)
    wh.flush()
    assert_everywhere(wh, read_sql, expected)


def test_replacement_of_flushed_bar_shows_once_before_and_after_flush(
    file_wh: Any, bar: MakeBar, read_sql: ReadSql
) -> None:
    wh = file_wh()
    wh.extend([bar("ES", m, price=10.0) for m in range(5)])
    wh.flush()
    wh.append(*bar("ES", 3, price=30.0))
    wh.extend([bar("ES", 1, price=40.0), bar("ES", 5, price=10.0)])
    expected = [bar("ES", m, price={1: 40.0, 3: 30.0}.get(m, 10.0)) for m in range(6)]
    assert wh.replacements == 2
    assert_everywhere(wh, read_sql, expected)
    wh.flush()
    assert_everywhere(wh, read_sql, expected)
    assert wh._store.stored_count() == 6
    wh.close()
    assert_everywhere(file_wh(), read_sql, expected)


def test_replacement_twice_before_flush_keeps_last(
    wh: Warehouse, bar: MakeBar, read_sql: ReadSql
) -> None:
    wh.append(*bar("ES", 0, price=1.0))
    wh.flush()
    for price in (2.0, 3.0, 4.0):
        wh.append(*bar("ES", 0, price=price))
    assert wh.replacements == 3
    assert_everywhere(wh, read_sql, [bar("ES", 0, price=4.0)])
    wh.flush()
    assert_everywhere(wh, read_sql, [bar("ES", 0, price=4.0)])


def test_replacement_of_flushed_bar_older_than_window_reads_from_duckdb(
    file_wh: Any, bar: MakeBar, read_sql: ReadSql
) -> None:
    wh = file_wh(window=3)
    wh.extend([bar("ES", m, price=10.0) for m in range(30)])
    wh.flush()
    wh.append(*bar("ES", 2, price=50.0))
    deep = wh.last_n("ES", 29)
    assert deep[1] == bar("ES", 2, price=50.0)
    assert [b.ts for b in deep] == [T0 + m * MINUTE for m in range(1, 30)]
    expected = [bar("ES", m, price=50.0 if m == 2 else 10.0) for m in range(30)]
    assert_everywhere(wh, read_sql, expected)
    wh.flush()
    assert_everywhere(wh, read_sql, expected)


# -- windows: reads past memory come from DuckDB ---------------------------------------------


@pytest.mark.parametrize("flush", [False, True], ids=["unflushed", "flushed"])
def test_late_bars_older_than_window_are_read_correctly(
    file_wh: Any, bar: MakeBar, read_sql: ReadSql, flush: bool
) -> None:
    wh = file_wh(window=4)
    wh.extend([bar("ES", m) for m in range(10, 40)])
    if flush:
        wh.flush()
    for m in (5, 0, 25, 3):  # late bars, three of them older than anything held in memory
        wh.append(*bar("ES", m, price=77.0))
    minutes = sorted([*range(10, 40), 5, 0, 3])
    expected = [bar("ES", m, price=77.0 if m in (0, 3, 5) else 100.0) for m in minutes]
    assert wh.count("ES") == 33
    assert wh.replacements == 1
    expected[minutes.index(25)] = bar("ES", 25, price=77.0)
    assert wh.last_n("ES", 4) == expected[-4:]
    assert wh.last_n("ES", 33) == expected
    assert wh.last_n("ES", 10) == expected[-10:]
    assert wh.since("ES", T0) == expected
    assert wh.since("ES", T0 + 4 * MINUTE) == expected[2:]
    assert wh.since("ES", T0 + 36 * MINUTE) == expected[-4:]
    assert_everywhere(wh, read_sql, expected)


def test_extend_longer_than_window_after_appends_reads_without_gap(
    bar: MakeBar, read_sql: ReadSql
) -> None:
    small = Warehouse(":memory:", flush_interval=None, window=4)
    try:
        small.append(*bar("ES", 0))
        small.append(*bar("ES", 1))
        small.extend([bar("ES", m) for m in range(10, 20)])
        expected = [bar("ES", m) for m in (0, 1, *range(10, 20))]
        assert small.last_n("ES", 6) == expected[-6:]
        assert small.since("ES", T0) == expected
        assert_everywhere(small, read_sql, expected)
    finally:
        small.close()


def test_since_epoch_past_window_excludes_earlier_bars(bar: MakeBar) -> None:
    """since(symbol, 0) is the epoch, not "from the beginning"."""
    # Two-second bars: the epoch's first 100 seconds (later ones, as integers, look like epoch
    # seconds and are refused).
    step = 2_000_000
    with Warehouse(":memory:", flush_interval=None, window=2) as wh:
        for i in range(-3, 40):  # far more than the window holds: since() goes deep
            wh.append("OLD", i * step, 1.0, 1.0, 1.0, 1.0, 1.0)
        assert [b.ts for b in wh.since("OLD", 0)] == [i * step for i in range(40)]
        assert [b.ts for b in wh.since("OLD", -step)] == [i * step for i in range(-1, 40)]


def test_reads_past_window_after_reopen_come_from_file(
    file_wh: Any, bar: MakeBar, read_sql: ReadSql
) -> None:
    first = file_wh(window=64)
    first.extend([bar("ES", m) for m in range(100)])
    first.close()
    again = file_wh(window=5)
    expected = [bar("ES", m) for m in range(100)]
    assert again.last_n("ES", 5) == expected[-5:]
    assert again.last_n("ES", 60) == expected[-60:]
    assert again.since("ES", T0 + 10 * MINUTE) == expected[10:]


# -- invariant 4 at the facade: a rejected bar or batch changes nothing ----------------------


def observe(wh: Warehouse, read_sql: ReadSql) -> dict[str, Any]:
    return {
        "sql": read_sql(wh),
        "frame": frame_bars(wh.frame()),
        "latest": wh.latest_many(["ES", "NEW", ""]),
        "counts": (wh.count("ES"), wh.count("NEW")),
        "last": wh.last_n("ES", 50),
        "stats": {k: v for k, v in wh.stats().items() if k != "flush_p99_ms"},
    }


BAD = {
    "nan-high": ({"high": float("nan")}, r"'ES' 2025-11-21 14:32:00\.000000Z: high is nan"),
    "inf-low": ({"low": float("-inf")}, r"'ES' 2025-11-21 14:32:00\.000000Z: low is -inf"),
    "high-lt-low": ({"high": 90.0}, r"'ES' 2025-11-21 14:32:00\.000000Z: high 90\.0 < low 99\.0"),
    "open-outside": ({"open": 102.0}, r"14:32:00\.000000Z: open 102\.0 is outside"),
    "close-outside": ({"close": 98.0}, r"14:32:00\.000000Z: close 98\.0 is outside"),
    "negative-volume": ({"volume": -5.0}, r"14:32:00\.000000Z: volume is negative"),
    "naive-ts": ({"ts": datetime(2025, 11, 21, 14, 32)}, r"'ES' .*: ts is naive"),  # noqa: DTZ001
    "garbage-ts": ({"ts": "14:32 today"}, r"'ES' '14:32 today': ts is not an ISO 8601"),
    "ancient-ts": ({"ts": "1850-01-01T00:00:00Z"}, r"'ES' .*: ts is outside 1900"),
    "empty-symbol": ({"symbol": ""}, r"'' 2025-11-21 14:32:00\.000000Z: symbol is blank"),
    "tab-symbol": ({"symbol": "ES\tX"}, r"14:32:00\.000000Z: symbol is blank or has control"),
    "long-symbol": ({"symbol": "E" * 100}, r"14:32:00\.000000Z: symbol is longer than 64"),
    "none-symbol": ({"symbol": None}, r"bar None 2025-11-21 14:32:00\.000000Z: symbol is not"),
}


@pytest.mark.parametrize(("overrides", "match"), BAD.values(), ids=BAD.keys())
def test_rejected_bar_or_batch_changes_nothing(
    wh: Warehouse, bar: MakeBar, read_sql: ReadSql, overrides: dict[str, Any], match: str
) -> None:
    wh.extend([bar("ES", m) for m in range(5)])
    wh.flush()
    wh.append(*bar("ES", 5))
    before = observe(wh, read_sql)
    bad = bar("ES", 2)._asdict() | overrides
    with pytest.raises(InvalidBarError, match=match):
        wh.append(**bad)
    assert observe(wh, read_sql) == before
    batch = [bar("ES", 9), bar("NEW", 0), bad]
    with pytest.raises(InvalidBarError, match=match):
        wh.extend(batch)
    assert observe(wh, read_sql) == before
    wh.flush()
    before["stats"]["unflushed"] = 0
    before["stats"]["uncompacted"] += 1
    before["stats"]["flushes"] += 1
    assert observe(wh, read_sql) == before


def test_rejected_arrow_batch_changes_nothing(
    wh: Warehouse, bar: MakeBar, read_sql: ReadSql
) -> None:
    wh.append(*bar("ES", 0))
    before = observe(wh, read_sql)
    rows = [bar("NEW", m)._asdict() for m in range(1000)]
    rows[999]["volume"] = -1.0
    table = pa.Table.from_pylist(rows, schema=BAR_SCHEMA)
    with pytest.raises(InvalidBarError, match=r"'NEW' 2025-11-22 07:09:00\.000000Z: volume"):
        wh.extend(table)
    with pytest.raises(InvalidBarError):
        wh.extend(pl.from_arrow(table))
    with pytest.raises(SchemaMismatchError, match=r"lacks columns \['close'\]"):
        wh.extend(table.drop_columns(["close"]))
    with pytest.raises(SchemaMismatchError, match=r"unknown columns \['venue'\]"):
        wh.extend(table.append_column("venue", pa.array(["X"] * 1000)))
    with pytest.raises(SchemaMismatchError, match=r"column 'ts' is a naive timestamp"):
        wh.extend(table.set_column(1, "ts", table.column("ts").cast(pa.timestamp("us"))))
    assert observe(wh, read_sql) == before


# -- SQL-looking symbols ---------------------------------------------------------------------


def test_sql_looking_symbol_is_stored_verbatim_and_alters_nothing(
    file_wh: Any, bar: MakeBar, read_sql: ReadSql
) -> None:
    symbols = [INJECTION, "x' OR '1'='1", 'ES"; DELETE FROM session_bars; --', "ES"]
    wh = file_wh()
    for i, symbol in enumerate(symbols):
        wh.append(*bar(symbol, 0, price=10.0 + i))
    wh.flush()
    wh.append(*bar(INJECTION, 1))
    assert sorted(wh.symbols()) == sorted(symbols)
    assert wh.latest(INJECTION) == bar(INJECTION, 1)
    assert sql_count(wh, "symbol = $s", {"s": INJECTION}) == 2
    assert sql_count(wh, "symbol = $s", {"s": "x' OR '1'='1"}) == 1
    only = wh.frame([INJECTION])
    assert only["symbol"].to_list() == [INJECTION, INJECTION]
    assert wh.frame(["x' OR '1'='1"]).height == 1
    window = {"start": datetime(2025, 1, 1, tzinfo=UTC), "end": datetime(2026, 1, 1, tzinfo=UTC)}
    assert wh.query("bars_between", {"symbols": [INJECTION], **window}).num_rows == 2
    assert sql_count(wh) == 5
    wh.close()
    again = file_wh()
    assert sorted(again.symbols()) == sorted(symbols)
    assert [b.symbol for b in read_sql(again, "symbol = ?", [INJECTION])] == [INJECTION] * 2


# -- lifecycle and facade --------------------------------------------------------------------


def test_closed_warehouse_refuses_bars_and_close_is_idempotent(bar: MakeBar) -> None:
    wh = Warehouse(":memory:", flush_interval=None)
    wh.append(*bar("ES", 0))
    wh.close()
    wh.close()
    with pytest.raises(WarehouseError, match="is closed; it takes no bars"):
        wh.append(*bar("ES", 1))
    with pytest.raises(WarehouseError, match="is closed; the batch of 1 bars was not stored"):
        wh.extend([bar("ES", 2)])
    with pytest.raises(StoreError, match="closed"):
        wh.sql("SELECT 1")
    assert wh.count("ES") == 1


def test_context_manager_flushes_and_closes(file_wh: Any, bar: MakeBar, read_sql: ReadSql) -> None:
    with Warehouse(file_wh.path, flush_interval=None) as wh:
        wh.append(*bar("ES", 0))
    with pytest.raises(WarehouseError, match="closed"):
        wh.append(*bar("ES", 1))
    assert read_sql(file_wh()) == [bar("ES", 0)]


def test_read_only_warehouse_reads_and_refuses_writes(
    file_wh: Any, bar: MakeBar, read_sql: ReadSql
) -> None:
    writer = file_wh()
    writer.extend([bar("ES", m) for m in range(3)])
    writer.close()
    reader = file_wh(read_only=True)
    assert reader.count("ES") == 3
    assert read_sql(reader) == [bar("ES", m) for m in range(3)]
    with pytest.raises(WarehouseError, match="read-only; it takes no bars"):
        reader.append(*bar("ES", 5))
    with pytest.raises(WarehouseError, match="read-only"):
        reader.extend([bar("ES", 5)])
    assert reader.count("ES") == 3


@pytest.mark.parametrize("link", ["hard link", "symlink"])
@pytest.mark.parametrize("first", ["original", "link"])
def test_second_writer_through_another_name_of_the_file_is_refused(
    tmp_path: Path, bar: MakeBar, link: str, first: str
) -> None:
    db = tmp_path / "wh.duckdb"
    with Warehouse(db, flush_interval=None) as made:  # a hard link needs the file to exist
        made.append(*bar("ES", 0))
    other = tmp_path / "elsewhere" / "alias.duckdb"
    other.parent.mkdir()
    if link == "hard link":
        other.hardlink_to(db)
    else:
        other.symlink_to(db)
    names = (db, other) if first == "original" else (other, db)
    writer = Warehouse(names[0], journal=True, flush_interval=None)
    try:
        writer.extend([bar("ES", m) for m in range(1, 1_000)])
        writer.flush()
        with pytest.raises(StoreError, match="already open for writing in this process"):
            Warehouse(names[1], journal=True, flush_interval=None)
        writer.append(*bar("ES", 1_000))  # the refused open changed nothing for the first
    finally:
        writer.close()
    with Warehouse(names[1], flush_interval=None) as again:  # free once closed, by any name
        assert again.count("ES") == 1_001
        assert sql_count(again) == 1_001


def test_checkpoint_folds_wal_into_file(file_wh: Any, bar: MakeBar) -> None:
    wh = file_wh()
    wh.extend([bar("ES", m) for m in range(100)])
    wh.checkpoint()
    wal = file_wh.path.with_name(file_wh.path.name + ".wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert wh.stats()["unflushed"] == 0
    assert wh._store.stored_count() == 100


def test_constructor_with_bad_flush_interval_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_interval must be positive"):
        Warehouse(tmp_path / "w.duckdb", flush_interval=0)


def test_frame_filters_by_symbol_and_half_open_window(wh: Warehouse, bar: MakeBar) -> None:
    wh.extend([bar(s, m) for s in ("A", "B", "C") for m in range(10)])
    start = datetime(2025, 11, 21, 14, 32, tzinfo=UTC)
    frame = wh.frame(["C", "A"], start, "2025-11-21T14:35:00Z")
    assert frame["symbol"].to_list() == ["A"] * 3 + ["C"] * 3
    assert frame["ts"].dt.minute().to_list() == [32, 33, 34] * 2
    assert wh.frame("B", end=T0 + MINUTE).height == 1
    assert wh.frame([]).height == 0
    assert wh.frame(start=T0 + 9 * MINUTE).height == 3
    assert wh.frame().schema == pl.Schema(
        {"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "open": pl.Float64,
         "high": pl.Float64, "low": pl.Float64, "close": pl.Float64, "volume": pl.Float64,
         "vwap": pl.Float64, "trade_count": pl.Int64, "origin": pl.String}
    )


def test_scan_is_a_snapshot_taken_when_collected(wh: Warehouse, bar: MakeBar) -> None:
    wh.append(*bar("ES", 0))
    lazy = wh.scan()
    wh.append(*bar("ES", 1))
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect().height == 2
    plt.assert_frame_equal(lazy.drop("date").collect(), wh.frame())


def test_lazy_frame_is_deprecated_for_scan(wh: Warehouse, bar: MakeBar) -> None:
    wh.append(*bar("ES", 0))
    with pytest.warns(DeprecationWarning, match=r"scan\(\) is a lazy scan of every day"):
        lazy = wh.lazy_frame()
    plt.assert_frame_equal(lazy.collect(), wh.frame())


def test_sql_and_sql_polars_agree_and_bind_parameters(wh: Warehouse, bar: MakeBar) -> None:
    wh.extend([bar(s, m) for s in ("A", "B") for m in range(5)])
    query = "SELECT symbol, count(*) AS n FROM bars WHERE ts >= ? GROUP BY symbol ORDER BY symbol"
    params = [datetime(2025, 11, 21, 14, 33, tzinfo=UTC)]
    arrow = wh.sql(query, params)
    assert arrow.to_pylist() == [{"symbol": "A", "n": 2}, {"symbol": "B", "n": 2}]
    plt.assert_frame_equal(wh.sql_polars(query, params), pl.from_arrow(arrow))


def test_bad_sql_raises_store_error(wh: Warehouse) -> None:
    with pytest.raises(StoreError, match="query failed"):
        wh.sql("SELECT nope FROM bars")


def test_stats_and_repr_describe_state(wh: Warehouse, bar: MakeBar) -> None:
    wh.extend([bar("A", 0), bar("B", 0)])
    wh.append(*bar("A", 0, price=5.0))
    stats = wh.stats()
    assert stats | {"flush_p99_ms": None} == {
        "bars": 2, "symbols": 2, "unflushed": stats["unflushed"], "uncompacted": 0,
        "replacements": 1, "flushes": 0, "flush_p99_ms": None, "flush_error": None,
    }
    wh.flush()
    stats = wh.stats()
    assert (stats["unflushed"], stats["uncompacted"], stats["flushes"]) == (0, 2, 1)
    wh.checkpoint()
    assert wh.stats()["uncompacted"] == 0
    assert stats["flush_p99_ms"] >= 0
    assert repr(wh) == "Warehouse(':memory:', bars=2)"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_background_flusher_flushes_by_interval(file_wh: Any, bar: MakeBar) -> None:
    wh = file_wh(flush_interval=0.02)
    wh.extend([bar("ES", m) for m in range(10)])
    assert wait_for(lambda: wh.stats()["unflushed"] == 0)
    assert wh._store.stored_count() == 10
    assert sql_count(wh) == 10


def test_background_flusher_flushes_by_rows(file_wh: Any, bar: MakeBar) -> None:
    wh = file_wh(flush_rows=10, flush_interval=None)
    for m in range(9):
        wh.append(*bar("ES", m))
    time.sleep(0.05)
    assert wh.stats()["flushes"] == 0
    wh.append(*bar("ES", 9))
    assert wait_for(lambda: wh.stats()["flushes"] == 1)
    assert wh._store.stored_count() == 10


def test_background_flusher_flushes_by_rows_despite_sql_readers(
    file_wh: Any, bar: MakeBar
) -> None:
    """SQL queries snapshot the log between appends; the size trigger must still fire."""
    wh = file_wh(flush_rows=10, flush_interval=None)
    for m in range(30):
        wh.append(*bar("ES", m))
        if m % 4 == 0:
            sql_count(wh)
    assert wait_for(lambda: wh._store.stored_count() >= 10)


def test_failed_flush_keeps_bars_visible_and_retries(
    wh: Warehouse, bar: MakeBar, read_sql: ReadSql, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh.extend([bar("ES", m) for m in range(5)])
    wh.flush()
    wh.append(*bar("ES", 1, price=9.0))
    wh.append(*bar("ES", 5))
    expected = [bar("ES", m, price=9.0 if m == 1 else 100.0) for m in range(6)]

    def refuse(bars: pa.Table, replaced: pa.Table) -> None:
        raise StoreError("disk full (simulated)")

    monkeypatch.setattr(wh._store, "write", refuse)
    with pytest.raises(StoreError, match="disk full"):
        wh.flush()
    assert_everywhere(wh, read_sql, expected)
    wh.append(*bar("ES", 6))
    expected.append(bar("ES", 6))
    monkeypatch.undo()
    assert wh.flush() == 3
    assert_everywhere(wh, read_sql, expected)
    assert wh._store.stored_count() == 7


@pytest.mark.parametrize("error", [StoreError("transient"), RuntimeError("transient")],
                         ids=["store-error", "unexpected-error"])
def test_background_flush_error_is_reported_then_cleared(
    file_wh: Any, bar: MakeBar, monkeypatch: pytest.MonkeyPatch, error: Exception,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wh = file_wh(flush_interval=0.01)
    real_write = wh._store.write
    failing = threading.Event()
    failing.set()
    failures = [0]

    def flaky(bars: pa.Table, replaced: pa.Table) -> None:
        if failing.is_set():
            failures[0] += 1
            raise error
        real_write(bars, replaced)

    monkeypatch.setattr(wh._store, "write", flaky)
    with caplog.at_level(logging.INFO, logger="warehouse"):
        wh.append(*bar("ES", 0))
        assert wait_for(lambda: wh.stats()["flush_error"] is not None)
        assert "transient" in wh.stats()["flush_error"]
        assert sql_count(wh) == 1
        assert wait_for(lambda: failures[0] >= 4)  # several retries fail meanwhile
        failing.clear()
        assert wait_for(lambda: wh.stats()["flush_error"] is None
                        and wh.stats()["unflushed"] == 0)
    assert wh._store.stored_count() == 1
    # Reported through logging, as libraries do (#10): the failure once, then the recovery.
    records = [r for r in caplog.records if r.name == "warehouse"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "background flush" in warnings[0].getMessage()
    assert "transient" in warnings[0].getMessage()
    assert any("succeeded again" in r.getMessage() for r in records if r.levelno == logging.INFO)


# -- threads ---------------------------------------------------------------------------------


def feed_bar(i: int, symbols: int) -> Bar:
    """Bar i of the threaded feed; every field derives from i, so a torn bar is detectable."""
    price = 100.0 + (i % 997) / 100
    return Bar(f"S{i % symbols}", T0 + (i // symbols) * MINUTE, price, price + 0.5,
               price - 0.5, price + 0.25, float(i), price, i)


def is_whole(b: Bar, symbols: int) -> bool:
    return b == feed_bar(b.trade_count, symbols)


def test_concurrent_feed_flusher_and_readers_keep_invariants(file_wh: Any) -> None:
    symbols, total = 8, 20_000
    wh = file_wh(flush_rows=97, flush_interval=0.005, window=16)
    names = [f"S{k}" for k in range(symbols)]
    done = threading.Event()
    errors: list[BaseException] = []

    def feed() -> None:
        try:
            i = 0
            while i < total:
                if i % 500 == 250:  # some batches between the single appends
                    wh.extend([feed_bar(j, symbols) for j in range(i, i + 50)])
                    i += 50
                else:
                    wh.append(*feed_bar(i, symbols))
                    i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def hot_reader() -> None:
        try:
            counts = dict.fromkeys(names, 0)
            while not done.is_set():
                for name in names:
                    n = wh.count(name)
                    assert n >= counts[name], "a count went backwards"
                    counts[name] = n
                    latest = wh.latest(name)
                    assert latest is None or is_whole(latest, symbols)
                    tail = wh.last_n(name, 10)
                    assert all(is_whole(b, symbols) for b in tail)
                    assert [b.ts for b in tail] == sorted({b.ts for b in tail})
                    if len(tail) >= 3:
                        assert wh.since(name, tail[-3].ts)[:3] == tail[-3:]
        except BaseException as exc:
            errors.append(exc)

    def sql_reader() -> None:
        try:
            seen = 0
            while not done.is_set():
                hot = sum(wh.count(name) for name in names)
                row = wh.sql(
                    "SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS keys, "
                    "count(*) FILTER (WHERE volume <> trade_count) AS torn FROM bars"
                ).to_pylist()[0]
                assert row["n"] == row["keys"], "a bar is visible twice"
                assert row["torn"] == 0
                assert row["n"] >= hot, "SQL missed a bar that a hot read had seen"
                assert row["n"] >= seen, "the SQL count went backwards"
                seen = row["n"]
                if seen % 3 == 0:
                    deep = wh.last_n("S1", 40)  # past the window: served by DuckDB
                    assert [b.ts for b in deep] == sorted({b.ts for b in deep})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=feed), threading.Thread(target=hot_reader),
               threading.Thread(target=hot_reader), threading.Thread(target=sql_reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert wh.stats()["flushes"] > 1, "the background flusher never ran during the feed"
    assert sql_count(wh) == total
    assert sql_count(wh, "volume = trade_count") == total
    wh.close()
    again = file_wh()
    assert again._store.stored_count() == total
    assert sum(again.count(name) for name in names) == total
    assert all(again.latest(name) == feed_bar(total - symbols + k, symbols)
               for k, name in enumerate(names))


# -- windows kept as Arrow rows until read (extend of long runs, reopen) ------------------------


def _session(symbols: int, minutes: int) -> Any:
    return generate_session(symbols, minutes)


def _expected(table: Any, symbol: str) -> list[Bar]:
    return bars_from_table(table.filter(pc.equal(table.column("symbol"), symbol)).sort_by("ts"))


@pytest.mark.parametrize("reopen", [False, True], ids=["extended", "reopened"])
def test_lazy_window_reads_match_full_history(file_wh: Any, reopen: bool) -> None:
    session = _session(3, 50)
    wh = file_wh(window=8)
    wh.extend(session)
    if reopen:
        wh.close()
        wh = file_wh(window=8)
    for symbol in ("AAPL", "MSFT", "NVDA"):
        full = _expected(session, symbol)
        assert wh.latest(symbol) == full[-1]
        assert wh.count(symbol) == 50
        assert wh.last_n(symbol, 5) == full[-5:]
        assert wh.last_n(symbol, 8) == full[-8:]
        assert wh.last_n(symbol, 30) == full[-30:]
        assert wh.since(symbol, full[-3].ts) == full[-3:]
        assert wh.since(symbol, full[0].ts) == full


@pytest.mark.parametrize("reopen", [False, True], ids=["extended", "reopened"])
def test_last_n_within_the_window_never_reads_duckdb(file_wh: Any, reopen: bool) -> None:
    # `window` is the promise the async API routes by: last_n of up to that many stays in memory.
    session = _session(3, 50)
    wh = file_wh(window=8)
    wh.extend(session)
    if reopen:
        wh.close()
        wh = file_wh(window=8)
    assert wh.window == 8
    full = _expected(session, "AAPL")
    last = full[-1]
    later = [last._replace(ts=last.ts + k * 60_000_000) for k in range(1, 31)]
    for bar in later:  # single appends grow the window past its slack, then trim it
        wh.append(*bar)
    wh.append(*full[-20]._replace(close=full[-20].low))  # a correction below the window
    wh.append(*later[-3]._replace(close=later[-3].low))  # one inside it

    def refuse(symbol: str, n: int | None, since: int | None) -> list[Bar]:
        raise AssertionError(f"{symbol}: last_n({n}) went to DuckDB")

    wh._buffer.hot.deep_reader = refuse
    expected = [*full, *later]
    expected[-3] = later[-3]._replace(close=later[-3].low)
    for n in range(9):
        assert wh.last_n("AAPL", n) == (expected[-n:] if n else [])
        assert wh.last_n("MSFT", n) == (_expected(session, "MSFT")[-n:] if n else [])
    with pytest.raises(AttributeError):
        wh.window = 9


def test_append_after_lazy_extend_keeps_order_and_replaces(file_wh: Any, bar: MakeBar) -> None:
    session = _session(2, 40)
    wh = file_wh(window=8)
    wh.extend(session)
    full = _expected(session, "AAPL")
    newer = bar("AAPL", 10_000)._replace(ts=full[-1].ts + 60_000_000)
    wh.append(*newer)
    assert wh.last_n("AAPL", 1) == [newer]
    assert wh.last_n("AAPL", 3) == [*full[-2:], newer]
    correction = full[-4]._replace(close=full[-4].low)
    wh.append(*correction)
    assert wh.last_n("AAPL", 5) == [full[-5], correction, *full[-3:], newer][-5:]
    assert wh.replacements == 1
    wh.flush()
    assert wh.last_n("AAPL", 41) == [*full[:-4], correction, *full[-3:], newer]


def test_clear_forgets_every_bar_and_the_file_takes_new_ones(file_wh: Any, bar: MakeBar) -> None:
    wh = file_wh(window=4)
    wh.extend(_session(3, 20))
    wh.flush()
    wh.append(*bar("AAPL", 10_000))
    wh.clear()
    assert wh.symbols() == []
    assert wh.latest("AAPL") is None
    assert wh.count("AAPL") == 0
    assert wh.last_n("AAPL", 10) == []
    assert wh.replacements == 0
    assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 0
    wh.append(*bar("AAPL", 1))
    wh.close()
    again = file_wh(window=4)
    assert again.count("AAPL") == 1
    assert again.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 1


# -- lenient batches: extend(batch, on_invalid=...) (#10) ----------------------------------------


def crossed_batch() -> pa.Table:
    """Six bars of two symbols; rows 1 (high < low) and 4 (close above high) are invalid."""
    bars = [Bar(s, T0 + m * MINUTE, 10.0, 11.0, 9.0, 10.5, 100.0 + m, None, None)
            for m in range(3) for s in ("AAPL", "MSFT")]
    bars[1] = bars[1]._replace(high=8.0)
    bars[4] = bars[4]._replace(close=12.0)
    return pa.Table.from_pylist([b._asdict() for b in bars], schema=BAR_SCHEMA)


def test_extend_skip_stores_the_valid_rows_and_returns_their_count(
    wh: Warehouse, read_sql: ReadSql
) -> None:
    batch = crossed_batch()
    assert wh.extend(batch, on_invalid="skip") == 4
    assert_everywhere(wh, read_sql, bars_from_table(batch.take([0, 2, 3, 5])))


def test_extend_report_returns_every_rejected_row_with_field_and_reason(wh: Warehouse) -> None:
    result = wh.extend(crossed_batch(), on_invalid="report")
    assert result.added == 4
    rejected = result.rejected
    assert rejected.column("row").to_pylist() == [1, 4]
    assert rejected.column("symbol").to_pylist() == ["MSFT", "AAPL"]
    assert rejected.column("field").to_pylist() == ["high", "close"]
    assert rejected.column("reason").to_pylist() == [
        "8.0 < low 9.0; check the feed's field order", "12.0 is outside [low 9.0, high 11.0]"]
    assert sql_count(wh) == 4


def test_extend_raise_stays_all_or_nothing_by_default(wh: Warehouse) -> None:
    with pytest.raises(InvalidBarError, match=r"'MSFT' .*: high 8\.0 < low 9\.0"):
        wh.extend(crossed_batch())
    with pytest.raises(InvalidBarError):
        wh.extend(crossed_batch(), on_invalid="raise")
    assert sql_count(wh) == 0
    assert wh.symbols() == []


def test_extend_report_of_a_wholly_invalid_batch_adds_nothing(wh: Warehouse) -> None:
    batch = crossed_batch().take([1, 4])
    result = wh.extend(batch, on_invalid="report")
    assert (result.added, result.rejected.num_rows) == (0, 2)
    assert wh.symbols() == []


def test_extend_report_refuses_the_bars_outside_the_open_session(wh: Warehouse) -> None:
    wh.start_session(datetime(2025, 11, 21, tzinfo=UTC).date())  # opens 14:30Z
    early = Bar("AAPL", T0 - 30 * MINUTE, 10.0, 11.0, 9.0, 10.5, 1.0, None, None)
    batch = pa.concat_tables([crossed_batch(), pa.Table.from_pylist([early._asdict()],
                                                                     schema=BAR_SCHEMA)])
    result = wh.extend(batch, on_invalid="report")
    assert result.added == 4
    assert result.rejected.column("row").to_pylist() == [1, 4, 6]
    assert "is outside session 2025-11-21" in result.rejected.column("reason")[2].as_py()
    assert wh.extend(batch, on_invalid="skip") == 4


def test_extend_with_an_unknown_on_invalid_raises(wh: Warehouse) -> None:
    with pytest.raises(ValueError, match="on_invalid must be"):
        wh.extend(crossed_batch(), on_invalid="ignore")  # type: ignore[call-overload]


def test_extend_of_a_pandas_frame_reads_back_exactly(wh: Warehouse, read_sql: ReadSql) -> None:
    pd = pytest.importorskip("pandas")
    session = generate_session(3, 20)
    wh.extend(session.to_pandas())
    assert read_sql(wh) == sorted(bars_from_table(session), key=lambda b: (b.symbol, b.ts))
    assert wh.extend(pd.DataFrame(crossed_batch().to_pandas()), on_invalid="skip") == 4
