"""The SQL files: named queries (`sql/`) apart from the warehouse's own (`sql/internal/`), every
file of both parses and binds, the loader's errors, named queries' numbers.
"""

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

import warehouse.queries as queries_module
from warehouse import BarStore, QueryNotFoundError, Warehouse, WarehouseError, load_queries
from warehouse.queries import INTERNAL_SQL_DIR, SQL_DIR, load_statements
from warehouse.schema import BAR_SCHEMA, STORED_SCHEMA, empty_table

#: The named queries, what users run by name; every other file is the warehouse's own.
NAMED = {
    "bars_between", "all_bars_between", "symbol_bars_between", "last_bars_of_symbol",
    "latest_bar_per_symbol", "session_ohlcv", "resample_bars", "bar_count_per_symbol", "gaps",
    "asof_bars",
}
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))
INTERNAL_FILES = sorted(INTERNAL_SQL_DIR.glob("*.sql"))
ALL_FILES = SQL_FILES + INTERNAL_FILES
PACKAGE = Path(__file__).resolve().parent.parent / "warehouse"
# DuckDB cannot PREPARE a CREATE or DROP statement; those files are run for real inside a
# transaction that is rolled back, which binds them just as strictly.
NOT_PREPARABLE = re.compile(r"^\s*(CREATE|DROP|ALTER)\b", re.IGNORECASE | re.MULTILINE)


# A real Parquet file of bars, for the statements that read the archive.
ARCHIVE_FILE = Path(__file__).resolve().parent.parent / "data" / "sample_session.parquet"


def statement(path: Path, day_file: Path = ARCHIVE_FILE) -> str:
    """The file's statement, its archive.py/history.py placeholders filled as they would be."""
    text = path.read_text(encoding="utf-8")
    if path.stem in ("create_history_view", "create_history_view_mixed", "trailing_stats"):
        text = text.format(files=str(day_file))
    if path.stem == "add_origin_column":
        text = text.format(table="pre_origin_bars")
    if path.stem == "create_bars_all_view":
        text = text.format(date="CAST(ts AS DATE)")
    return text


@pytest.fixture(scope="module")
def empty_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection of a fresh store, with every table the SQL files may reference; shared by
    the module's tests, which change nothing in it (each statement is rolled back)."""
    with BarStore(":memory:") as store:
        con = store._con
        keys = pa.table({"symbol": pa.array([], pa.string()),
                         "ts": pa.array([], BAR_SCHEMA.field("ts").type)})
        con.register("_flush_batch", empty_table())
        con.register("_fill_batch", empty_table())
        # A table as written before bars recorded their origin, for add_origin_column.
        con.execute("CREATE TEMP TABLE pre_origin_bars AS SELECT * FROM _flush_batch")
        con.register("_flush_replaced", keys)
        con.register("_journal", empty_table())
        con.execute(store.statements["create_history_view_empty"])
        con.execute(statement(INTERNAL_SQL_DIR / "create_bars_all_view.sql"))
        con.register("events", keys)  # the caller's table asof_bars reads
        yield con


def test_sql_folder_holds_the_named_queries_and_internal_the_warehouses_own() -> None:
    assert {p.stem for p in SQL_FILES} == NAMED == set(load_queries())
    assert len(INTERNAL_FILES) >= 15
    internal = {p.stem for p in INTERNAL_FILES}
    assert internal.isdisjoint(NAMED)
    assert {"create_bars_table", "insert_bars", "get_meta", "export_day"} <= internal
    assert set(load_statements()) == internal | NAMED


def file_id(path: Path) -> str:
    return str(path.relative_to(SQL_DIR))


@pytest.fixture(scope="module")
def day_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A partition of the archive, as archived."""
    path = tmp_path_factory.mktemp("archive") / "date=2025-11-21" / "bars.parquet"
    path.parent.mkdir()
    path.write_bytes(ARCHIVE_FILE.read_bytes())
    return path


@pytest.mark.parametrize("path", ALL_FILES, ids=file_id)
def test_sql_file_binds_against_empty_schema(
    path: Path, empty_con: duckdb.DuckDBPyConnection, day_file: Path
) -> None:
    text = statement(path, day_file)
    if NOT_PREPARABLE.search("\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("--")
    )):
        empty_con.execute("BEGIN")
        try:
            empty_con.execute(text)
        finally:
            empty_con.execute("ROLLBACK")
    else:
        empty_con.execute(f"PREPARE q AS {text}")
        empty_con.execute("DEALLOCATE q")


def test_binding_check_catches_misspelt_column(empty_con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.BinderException):
        empty_con.execute("PREPARE q AS SELECT symbl FROM bars WHERE ts >= $start")


@pytest.mark.parametrize("path", ALL_FILES, ids=file_id)
def test_sql_file_has_header_naming_parameters_and_columns(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("--")]
    assert lines[0].startswith("-- ")
    assert len(lines[0]) > 10
    assert any(line.startswith("-- Parameters:") for line in header), path
    assert any(line.startswith("-- Columns:") for line in header), path
    assert load_statements().summary(path.stem) == lines[0].removeprefix("--").strip()


@pytest.mark.parametrize("path", SQL_FILES, ids=file_id)
def test_named_query_header_lists_exactly_the_parameters_it_binds(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    bound = set(re.findall(r"\$([A-Za-z_]\w*)", body))
    assert set(load_queries().parameters(path.stem)) == bound


def test_parameters_are_read_from_the_header_in_its_order() -> None:
    queries = load_queries()
    assert queries.parameters("bars_between") == ("symbols", "start", "end")
    assert queries.parameters("last_bars_of_symbol") == ("symbol", "n")
    assert queries.parameters("resample_bars") == ("minutes", "open")
    assert queries.parameters("session_ohlcv") == ()


def test_parameters_without_header_line_are_the_statements_placeholders(tmp_path: Path) -> None:
    (tmp_path / "mine.sql").write_text(
        "-- Bars of a symbol since a time.\n"
        "SELECT * FROM bars WHERE symbol = $symbol AND ts >= $since AND symbol <> $symbol\n"
    )
    assert load_queries(tmp_path).parameters("mine") == ("symbol", "since")


def test_every_named_query_types_each_of_its_parameters() -> None:
    """The CLI shows the form of a parameter from its header's type (#10)."""
    queries = load_queries()
    for name in queries:
        types = queries.parameter_types(name)
        assert list(types) == list(queries.parameters(name))
        assert all(types.values()), f"{name}: {types}"
    assert queries.parameter_types("last_bars_of_symbol") == {"symbol": "VARCHAR", "n": "BIGINT"}


def test_parameter_types_of_a_header_without_them_are_none(tmp_path: Path) -> None:
    (tmp_path / "mine.sql").write_text("-- Bars of a symbol.\nSELECT * FROM bars WHERE symbol = $s")
    assert load_queries(tmp_path).parameter_types("mine") == {"s": None}


def used_names(pattern: str) -> set[str]:
    return {
        name
        for source in PACKAGE.glob("*.py")
        for name in re.findall(pattern, source.read_text(encoding="utf-8"))
    }


def test_every_statement_the_package_names_exists() -> None:
    used = used_names(r'statements\["(\w+)"\]')
    assert used, "the package names no statement: the pattern is stale"
    assert used <= set(load_statements()), used - set(load_statements())
    # The warehouse's own statements come only from the package, never from `queries`.
    assert used_names(r'\bqueries\["(\w+)"\]') <= NAMED


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


@pytest.mark.parametrize("name", ["create_bars_table", "stored_keys", "delete_all_bars"])
def test_warehouse_query_does_not_offer_internal_statements(wh: Warehouse, name: str) -> None:
    assert set(wh.queries) == NAMED
    with pytest.raises(QueryNotFoundError) as info:
        wh.query(name)
    assert info.value.known == sorted(NAMED)


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


def test_warehouse_with_own_sql_dir_offers_only_its_queries_and_keeps_working(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "symbols_seen.sql").write_text(
        "-- Distinct symbols.\n-- Parameters: none.\n-- Columns: symbol.\n"
        "SELECT DISTINCT symbol FROM bars ORDER BY symbol\n"
    )
    db = tmp_path / "wh.duckdb"
    with Warehouse(db, flush_interval=None, window=2, sql_dir=folder) as wh:
        assert list(wh.queries) == ["symbols_seen"]
        for minute in range(5):
            wh.append("ES", datetime(2025, 11, 21, 14, 30 + minute, tzinfo=UTC), 1, 1, 1, 1, 1)
        wh.flush()
        assert wh.query("symbols_seen").column("symbol").to_pylist() == ["ES"]
        # The warehouse's own reads use the package's SQL, not the user's folder.
        assert wh.frame("ES").height == 5
        assert len(wh.last_n("ES", 4)) == 4  # past the window: read from DuckDB
        with pytest.raises(QueryNotFoundError, match="known queries: symbols_seen"):
            wh.query("bars_between")
    with Warehouse(db, flush_interval=None, sql_dir=folder) as wh:
        assert wh.count("ES") == 5


def test_own_sql_dir_cannot_replace_the_warehouses_ddl(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "create_bars_table.sql").write_text(
        "-- A table of my own.\n-- Parameters: none.\n-- Columns: x.\n"
        "CREATE TABLE IF NOT EXISTS session_bars (x INTEGER)\n"
    )
    with Warehouse(":memory:", flush_interval=None, sql_dir=folder) as wh:
        wh.append("ES", "2025-11-21T14:30:00Z", 1, 1, 1, 1, 1)
        wh.flush()
        columns = wh.sql("SELECT * FROM session_bars").column_names
    assert columns == list(STORED_SCHEMA.names)


@pytest.fixture
def package_sql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stand-in for the package's sql/ folder (a copy), with the statements' cache emptied."""
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    monkeypatch.setattr(queries_module, "SQL_DIR", folder)
    monkeypatch.setattr(queries_module, "INTERNAL_SQL_DIR", folder / "internal")
    queries_module._package_statements.cache_clear()
    yield folder
    queries_module._package_statements.cache_clear()


def test_load_statements_with_a_name_in_both_folders_raises_naming_both(
    package_sql: Path,
) -> None:
    shutil.copy(package_sql / "bars_between.sql", package_sql / "internal")
    with pytest.raises(WarehouseError, match=r"internal/bars_between\.sql: 'bars_between' is "
                       r"also a named query \(.*sql/bars_between\.sql\)"):
        load_statements()


def test_load_statements_hands_out_independent_mappings(package_sql: Path) -> None:
    first, second = load_statements(), load_statements()
    assert first == second
    first._texts["insert_bars"] = "-- x\nSELECT 1"
    assert second["insert_bars"] != first["insert_bars"]


def test_warehouse_with_copy_of_sql_folder_runs_its_queries_and_not_internal_ones(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)  # internal/ comes along; it is never read from here
    (folder / "symbols_seen.sql").write_text(
        "-- Distinct symbols.\n-- Parameters: none.\n-- Columns: symbol.\n"
        "SELECT DISTINCT symbol FROM bars ORDER BY symbol\n"
    )
    with Warehouse(":memory:", flush_interval=None, sql_dir=folder) as wh:
        wh.append("ES", "2025-11-21T14:30:00Z", 1, 1, 1, 1, 1)
        assert wh.query("symbols_seen").column("symbol").to_pylist() == ["ES"]
        assert set(wh.queries) == NAMED | {"symbols_seen"}


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
        yield wh, pl.from_arrow(table).with_columns(origin=pl.lit("live"))


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
    # No session: each UTC day is anchored to its first bar, the sample's 14:30Z open.
    got = pl.from_arrow(wh.query("resample_bars", {"minutes": 5, "open": None}))
    assert got.height == frame.height // 5
    plt.assert_frame_equal(got, expected, rel_tol=1e-9)


def test_resample_buckets_align_to_the_open(wh: Warehouse) -> None:
    for minute in (31, 34, 35, 36):
        wh.append("ES", datetime(2025, 11, 21, 14, minute, tzinfo=UTC), 1, 2, 0.5, 1, 10)
    open_ = datetime(2025, 11, 21, 14, 30, tzinfo=UTC)
    got = wh.query("resample_bars", {"minutes": 5, "open": open_}).to_pylist()
    assert [row["ts"].minute for row in got] == [30, 35]
    assert [row["volume"] for row in got] == [20.0, 20.0]
    hourly = wh.query("resample_bars", {"minutes": 60, "open": open_}).to_pylist()
    assert [row["ts"] for row in hourly] == [open_]


def test_resample_floors_bars_before_the_anchor_into_earlier_buckets(wh: Warehouse) -> None:
    # Offsets from the anchor are floored, not truncated toward zero: 14:26 with an open at
    # 14:30 is in the bucket [14:25, 14:30), and 14:29:59 too, never in the open's bucket.
    for minute, second in ((21, 0), (26, 0), (29, 59), (30, 0), (34, 59)):
        wh.append("ES", datetime(2025, 11, 21, 14, minute, second, tzinfo=UTC), 1, 2, 0.5, 1, 10)
    open_ = datetime(2025, 11, 21, 14, 30, tzinfo=UTC)
    got = wh.query("resample_bars", {"minutes": 5, "open": open_}).to_pylist()
    assert [(row["ts"].minute, row["volume"]) for row in got] == [(20, 10.0), (25, 20.0),
                                                                    (30, 20.0)]


def test_resample_without_open_anchors_each_utc_day_to_its_first_bar(wh: Warehouse) -> None:
    for day, minute in ((21, 31), (21, 40), (22, 33), (22, 47)):
        wh.append("ES", datetime(2025, 11, day, 14, minute, tzinfo=UTC), 1, 2, 0.5, 1, 10)
    got = wh.query("resample_bars", {"minutes": 10, "open": None}).to_pylist()
    assert [(row["ts"].day, row["ts"].minute) for row in got] == [(21, 31), (22, 33), (22, 43)]


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
