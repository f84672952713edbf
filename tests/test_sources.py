"""The bar sources of gap filling (issue 9, item 2): a Parquet archive sealed by another
warehouse, another warehouse's DuckDB file, and a plain function, each filling a real session."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from warehouse import Calendar, Warehouse
from warehouse.errors import StoreError
from warehouse.sample import generate_sessions
from warehouse.sources import ArchiveSource, BarSource, CallableSource, DuckDBSource, as_source

XNYS = Calendar("XNYS", start=date(2025, 11, 1), end=date(2025, 12, 31))
DAY = date(2025, 11, 21)
WINDOW = XNYS.window(DAY)
AFTER = datetime(2025, 11, 22, tzinfo=UTC)
FULL = generate_sessions(XNYS, DAY, 1, 4)[0]
START = datetime(2025, 11, 21, 15, 30, tzinfo=UTC)  # minute 60
END = datetime(2025, 11, 21, 16, 0, tzinfo=UTC)  # minute 90


def hole(table: pa.Table) -> pa.Array:
    ts = table["ts"]
    return pc.and_(pc.equal(table["symbol"], "AAPL"),
                   pc.and_(pc.greater_equal(ts, pa.scalar(START, ts.type)),
                           pc.less(ts, pa.scalar(END, ts.type))))


def fill_from(source: BarSource, path: Path) -> tuple[int, pa.Table]:
    """Fill a session missing AAPL's 15:30-16:00 from ``source``: bars added, the filled rows."""
    with Warehouse(path, flush_interval=None, calendar=XNYS) as wh:
        wh.start_session(DAY)
        wh.extend(FULL.filter(pc.invert(hole(FULL))))
        upkeep = wh.start_upkeep(source, interval=60, now=lambda: AFTER)
        deadline = time.monotonic() + 30
        while upkeep.stats.rounds == 0:  # the first round runs at once
            assert time.monotonic() < deadline
            time.sleep(0.01)
        wh.stop_upkeep()
        filled = wh.sql("SELECT * EXCLUDE (origin) FROM bars WHERE origin = 'filled' "
                        "ORDER BY ts")
        return upkeep.stats.filled, filled


def expected_hole() -> pa.Table:
    return FULL.filter(hole(FULL)).sort_by("ts")


def test_archive_source_fills_from_another_warehouses_sealed_session(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    with Warehouse(tmp_path / "other.duckdb", flush_interval=None, calendar=XNYS,
                   archive=archive) as other:
        other.start_session(DAY)
        other.extend(FULL)
        other.end_session()
    source = ArchiveSource(archive)
    got = source.fetch("AAPL", START, END)
    assert got.num_rows == 30
    added, filled = fill_from(source, tmp_path / "w.duckdb")
    assert added == 30
    assert filled.equals(expected_hole().cast(filled.schema))


def test_archive_source_of_an_empty_or_missing_archive_answers_nothing(tmp_path: Path) -> None:
    assert ArchiveSource(tmp_path / "nowhere").fetch("AAPL", START, END).num_rows == 0
    added, _ = fill_from(ArchiveSource(tmp_path / "nowhere"), tmp_path / "w.duckdb")
    assert added == 0


def test_duckdb_source_fills_from_another_warehouse_file_opened_only_while_asked(
    tmp_path: Path
) -> None:
    other_path = tmp_path / "other.duckdb"
    with Warehouse(other_path, flush_interval=None, calendar=XNYS) as other:
        other.start_session(DAY)
        other.extend(FULL)
    source = DuckDBSource(other_path)
    added, filled = fill_from(source, tmp_path / "w.duckdb")
    assert added == 30
    assert filled.equals(expected_hole().cast(filled.schema))
    # Not held between questions: the other warehouse opens for writing again.
    with Warehouse(other_path, flush_interval=None, calendar=XNYS) as other:
        assert other.count("AAPL") == 390


def test_duckdb_source_failures_are_store_errors_and_bad_table_names_are_refused(
    tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match=r"missing\.duckdb"):
        DuckDBSource(tmp_path / "missing.duckdb").fetch("AAPL", START, END)
    with pytest.raises(ValueError, match=r"plain table name"):
        DuckDBSource(tmp_path / "x.duckdb", table="bars; DROP TABLE session_bars")


def test_a_plain_function_is_a_source() -> None:
    def fetch(symbol: str, start: datetime, end: datetime) -> list[tuple[object, ...]]:
        return [(symbol, start, 1.0, 1.0, 1.0, 1.0, 1.0)]

    source = as_source(fetch)
    assert isinstance(source, CallableSource)
    assert source.fetch("AAPL", START, END) == [("AAPL", START, 1.0, 1.0, 1.0, 1.0, 1.0)]
    archive = ArchiveSource(".")
    assert as_source(archive) is archive
    with pytest.raises(TypeError, match="fetch"):
        as_source("not a source")  # type: ignore[arg-type]
