"""The `sql/` folder: every file parses and binds, the loader's errors, named queries' numbers."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import polars.testing as plt
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from warehouse import BarStore, QueryNotFoundError, Warehouse, WarehouseError, load_queries
from warehouse.queries import SQL_DIR
from warehouse.schema import BAR_SCHEMA, empty_table

SQL_FILES = sorted(SQL_DIR.glob("*.sql"))
PACKAGE = Path(__file__).resolve().parent.parent / "warehouse"
# DuckDB cannot PREPARE a CREATE statement; those files are run for real (they are idempotent
# DDL) inside a transaction that is rolled back, which binds them just as strictly.
NOT_PREPARABLE = re.compile(r"^\s*CREATE\b", re.IGNORECASE | re.MULTILINE)


# A real Parquet file of bars, for the statements that read the archive.
ARCHIVE_FILE = Path(__file__).resolve().parent.parent / "data" / "sample_session.parquet"


def statement(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if path.stem == "export_day":
        text = text.format(path="/nonexistent/dummy.parquet", compression="zstd")
    if path.stem == "create_history_view":
        text = text.format(files=str(ARCHIVE_FILE))
    return text


@pytest.fixture
def empty_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection of a fresh store, with every table the SQL files may reference."""
    with BarStore(":memory:") as store:
        con = store._con
        keys = pa.table({"symbol": pa.array([], pa.string()),
                         "ts": pa.array([], BAR_SCHEMA.field("ts").type)})
        con.register("_flush_batch", empty_table())
        con.register("_flush_replaced", keys)
        con.register("_journal", empty_table())
        yield con


def test_sql_folder_is_not_empty() -> None:
    assert len(SQL_FILES) >= 10
    assert {p.stem for p in SQL_FILES} == set(load_queries())


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_sql_file_binds_against_empty_schema(
    path: Path, empty_con: duckdb.DuckDBPyConnection
) -> None:
    text = statement(path)
    if NOT_PREPARABLE.search("\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("--")
    )):
        empty_con.execute("BEGIN")
        empty_con.execute(text)
        empty_con.execute("ROLLBACK")
    else:
        empty_con.execute(f"PREPARE q AS {text}")
        empty_con.execute("DEALLOCATE q")


def test_binding_check_catches_misspelt_column(empty_con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.BinderException):
        empty_con.execute("PREPARE q AS SELECT symbl FROM bars WHERE ts >= $start")


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_sql_file_has_header_naming_parameters_and_columns(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("--")]
    assert lines[0].startswith("-- ")
    assert len(lines[0]) > 10
    assert any(line.startswith("-- Parameters:") for line in header), path
    assert any(line.startswith("-- Columns:") for line in header), path
    assert load_queries().summary(path.stem) == lines[0].removeprefix("--").strip()


def test_every_query_the_package_names_exists() -> None:
    queries = load_queries()
    used = {
        name
        for source in PACKAGE.glob("*.py")
        for name in re.findall(r'queries\["(\w+)"\]', source.read_text(encoding="utf-8"))
    }
    assert used, "the package names no query: the pattern is stale"
    assert used <= set(queries), used - set(queries)


def test_unknown_query_name_raises_listing_known_names() -> None:
    queries = load_queries()
    with pytest.raises(QueryNotFoundError, match=r"no query named 'sesion_ohlcv'; known queries: "
                       r"all_bars_between, .*session_ohlcv") as info:
        queries["sesion_ohlcv"]
    assert info.value.known == sorted(queries)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, WarehouseError)


def test_warehouse_query_with_unknown_name_raises(wh: Warehouse) -> None:
    with pytest.raises(QueryNotFoundError, match=r"known queries: .*resample_bars"):
        wh.query("resample")


def test_queries_mapping_is_read_only_and_sorted() -> None:
    queries = load_queries()
    assert list(queries) == sorted(queries)
    assert len(queries) == len(SQL_FILES)
    assert queries.directory == SQL_DIR
    with pytest.raises(TypeError):
        queries["x"] = "SELECT 1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("no_header.sql", "SELECT 1\n", r"no_header\.sql:1: a SQL file must open with a '--'"),
        ("only_comments.sql", "-- what\n-- more\n", r"only_comments\.sql: holds no statement"),
        ("empty.sql", "", r"empty\.sql:1: a SQL file must open"),
    ],
)
def test_load_queries_with_bad_file_names_file_path(
    tmp_path: Path, name: str, content: str, match: str
) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    (folder / name).write_text(content, encoding="utf-8")
    with pytest.raises(WarehouseError, match=re.escape(str(folder)) + "/" + match):
        load_queries(folder)


def test_load_queries_with_undecodable_file_names_file_path(tmp_path: Path) -> None:
    (tmp_path / "latin1.sql").write_bytes(b"-- caf\xe9\nSELECT 1\n")
    with pytest.raises(WarehouseError, match=r"latin1\.sql: cannot read SQL file"):
        load_queries(tmp_path)


def test_load_queries_with_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"SQL folder .*nowhere does not exist"):
        load_queries(tmp_path / "nowhere")


def test_warehouse_with_own_sql_dir_runs_its_queries(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    (folder / "symbols_seen.sql").write_text(
        "-- Distinct symbols.\n-- Parameters: none.\n-- Columns: symbol.\n"
        "SELECT DISTINCT symbol FROM bars ORDER BY symbol\n"
    )
    with Warehouse(":memory:", flush_interval=None, sql_dir=folder) as wh:
        wh.append("ES", "2025-11-21T14:30:00Z", 1, 1, 1, 1, 1)
        assert wh.query("symbols_seen").column("symbol").to_pylist() == ["ES"]


# -- named queries against Polars ------------------------------------------------------------


@pytest.fixture
def loaded(sample_bars: pa.Table) -> Iterator[tuple[Warehouse, pl.DataFrame]]:
    """The sample bars with some vwaps removed, half flushed and half on the log."""
    index = pa.array(range(sample_bars.num_rows))
    vwap = pc.if_else(pc.equal(pc.bit_wise_and(index, 7), 0), None, sample_bars.column("vwap"))
    table = sample_bars.set_column(7, "vwap", vwap)
    half = table.num_rows // 2
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.extend(table.slice(0, half))
        wh.flush()
        wh.extend(table.slice(half))
        assert wh.stats()["unflushed"] == table.num_rows - half
        yield wh, pl.from_arrow(table)


def typical_vwap(frame: pl.DataFrame) -> pl.Expr:
    price = pl.coalesce("vwap", (pl.col("high") + pl.col("low") + pl.col("close")) / 3)
    return (price * pl.col("volume")).sum() / pl.col("volume").sum()


def test_session_ohlcv_matches_polars(loaded: tuple[Warehouse, pl.DataFrame]) -> None:
    wh, frame = loaded
    expected = (
        frame.sort("symbol", "ts")
        .group_by("symbol", maintain_order=True)
        .agg(
            pl.col("ts").min().alias("first_ts"),
            pl.col("ts").max().alias("last_ts"),
            pl.len().cast(pl.Int64).alias("bar_count"),
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            typical_vwap(frame).alias("vwap"),
        )
    )
    got = pl.from_arrow(wh.query("session_ohlcv"))
    plt.assert_frame_equal(got, expected, rel_tol=1e-9)


def test_resample_bars_five_minutes_matches_polars(loaded: tuple[Warehouse, pl.DataFrame]) -> None:
    wh, frame = loaded
    expected = (
        frame.sort("symbol", "ts")
        .group_by_dynamic("ts", every="5m", group_by="symbol", closed="left", label="left")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            typical_vwap(frame).alias("vwap"),
            pl.col("trade_count").sum(),
        )
        .sort("symbol", "ts")
    )
    got = pl.from_arrow(wh.query("resample_bars", {"minutes": 5}))
    assert got.height == frame.height // 5
    plt.assert_frame_equal(got, expected, rel_tol=1e-9)


def test_resample_buckets_align_to_the_clock(wh: Warehouse) -> None:
    for minute in (31, 34, 35, 36):
        wh.append("ES", datetime(2025, 11, 21, 14, minute, tzinfo=UTC), 1, 2, 0.5, 1, 10)
    got = wh.query("resample_bars", {"minutes": 5}).to_pylist()
    assert [row["ts"].minute for row in got] == [30, 35]
    assert [row["volume"] for row in got] == [20.0, 20.0]


def test_latest_bar_per_symbol_matches_polars(loaded: tuple[Warehouse, pl.DataFrame]) -> None:
    wh, frame = loaded
    expected = frame.sort("symbol", "ts").group_by("symbol", maintain_order=True).last()
    got = pl.from_arrow(wh.query("latest_bar_per_symbol"))
    plt.assert_frame_equal(got, expected.select(got.columns))
    for row in got.iter_rows(named=True):
        assert wh.latest(row["symbol"]).close == row["close"]


def test_bars_between_matches_polars_filter(loaded: tuple[Warehouse, pl.DataFrame]) -> None:
    wh, frame = loaded
    symbols = frame["symbol"].unique(maintain_order=True).to_list()[2:5]
    start = datetime(2025, 11, 21, 15, 0, tzinfo=UTC)
    end = datetime(2025, 11, 21, 16, 30, tzinfo=UTC)
    expected = frame.filter(
        pl.col("symbol").is_in(symbols), pl.col("ts") >= start, pl.col("ts") < end
    ).sort("symbol", "ts")
    got = pl.from_arrow(
        wh.query("bars_between", {"symbols": symbols, "start": start, "end": end})
    )
    assert expected.height == 3 * 90
    plt.assert_frame_equal(got, expected)
    plt.assert_frame_equal(wh.frame(symbols, start, end), expected)


def test_bar_count_per_symbol_matches_hot_counts(loaded: tuple[Warehouse, pl.DataFrame]) -> None:
    wh, frame = loaded
    got = wh.query("bar_count_per_symbol").to_pylist()
    expected = frame.group_by("symbol").len().sort("symbol").rows()
    assert [(row["symbol"], row["bar_count"]) for row in got] == expected
    assert all(wh.count(row["symbol"]) == row["bar_count"] for row in got)
