"""Parquet export: layout, codec, sort order, types, read back by three engines, atomicity."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import polars.testing as plt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse import Bar, BarStore, ExportError, Warehouse, export_parquet
from warehouse.sample import generate_session
from warehouse.schema import BAR_SCHEMA

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
DAY = 24 * 60 * MINUTE

MakeBar = Callable[..., Bar]


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def file_bars(path: Path) -> list[Bar]:
    table = pq.read_table(path)
    table = table.set_column(1, "ts", table.column("ts").cast(pa.int64()))
    return [Bar(**row) for row in table.to_pylist()]


@pytest.fixture
def exported(
    wh: Warehouse, sample_bars: pa.Table, tmp_path: Path
) -> tuple[Warehouse, Path, pl.DataFrame]:
    """The sample bars (arrival order, partly unflushed) exported once."""
    wh.extend(sample_bars.slice(0, 3000))
    wh.flush()
    wh.extend(sample_bars.slice(3000))
    root = tmp_path / "archive"
    result = wh.export_parquet(root)
    assert result.rows == sample_bars.num_rows
    assert result.files == (root / "date=2025-11-21" / "bars.parquet",)
    return wh, result.files[0], pl.from_arrow(sample_bars).sort("symbol", "ts")


def test_export_writes_hive_layout_one_file_per_day(exported: Any) -> None:
    _, path, _ = exported
    root = path.parent.parent
    assert listing(root) == ["date=2025-11-21", "date=2025-11-21/bars.parquet"]


def test_export_file_is_zstd_with_int64_utc_micro_timestamps(exported: Any) -> None:
    _, path, _ = exported
    meta = pq.ParquetFile(path).metadata
    ts = meta.schema.column(1)
    assert ts.name == "ts"
    assert ts.physical_type == "INT64"
    assert "isAdjustedToUTC=true" in str(ts.logical_type)
    assert "timeUnit=microseconds" in str(ts.logical_type)
    codecs = {meta.row_group(g).column(c).compression
              for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
    assert codecs == {"ZSTD"}


def test_export_is_sorted_by_symbol_then_ts(exported: Any) -> None:
    _, path, _ = exported
    keys = pq.read_table(path, columns=["symbol", "ts"]).to_pylist()
    assert keys == sorted(keys, key=lambda row: (row["symbol"], row["ts"]))


def test_export_reads_back_equal_in_polars_pyarrow_and_duckdb(exported: Any) -> None:
    wh, path, expected = exported
    plt.assert_frame_equal(pl.read_parquet(path), expected)
    plt.assert_frame_equal(wh.frame(), expected)
    table = pq.read_table(path)
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.cast(BAR_SCHEMA).equals(expected.to_arrow().cast(BAR_SCHEMA))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB reads the hive key out of the path unless told not to.
    rel = con.sql(
        f"SELECT * FROM read_parquet('{path}', hive_partitioning = false) ORDER BY symbol, ts"
    )
    assert dict(zip(rel.columns, rel.types, strict=True))["ts"] == "TIMESTAMP WITH TIME ZONE"
    plt.assert_frame_equal(rel.pl(), expected)
    con.close()


def test_export_root_reads_as_hive_dataset(exported: Any) -> None:
    _, path, expected = exported
    root = path.parent.parent
    scanned = pl.scan_parquet(root, hive_partitioning=True).collect()
    assert [str(d) for d in scanned["date"].unique().to_list()] == ["2025-11-21"]
    plt.assert_frame_equal(scanned.drop("date"), expected)
    count = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true) "
        "WHERE date = '2025-11-21'"
    ).fetchall()
    assert count == [(expected.height,)]


@pytest.mark.parametrize(
    ("compression", "codec"),
    [("zstd", "ZSTD"), ("snappy", "SNAPPY"), ("uncompressed", "UNCOMPRESSED")],
)
def test_export_with_each_compression_uses_that_codec(
    wh: Warehouse, bar: MakeBar, tmp_path: Path, compression: Any, codec: str
) -> None:
    wh.extend([bar("ES", m) for m in range(20)])
    path = wh.export_parquet(tmp_path, compression=compression).files[0]
    assert pq.ParquetFile(path).metadata.row_group(0).column(2).compression == codec
    assert file_bars(path) == [bar("ES", m) for m in range(20)]


def test_export_with_unknown_compression_raises(wh: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown compression 'lz77'"):
        wh.export_parquet(tmp_path, compression="lz77")  # type: ignore[arg-type]
    assert listing(tmp_path) == []


def test_export_splits_days_at_utc_midnight(wh: Warehouse, bar: MakeBar, tmp_path: Path) -> None:
    midnight = T0 - 14 * 60 * MINUTE - 30 * MINUTE + DAY  # 2025-11-22 00:00 UTC
    wh.append("ES", midnight - 1, 1.0, 1.0, 1.0, 1.0, 1.0)
    wh.append("ES", midnight, 2.0, 2.0, 2.0, 2.0, 2.0)
    wh.append("ES", midnight + DAY + 5, 3.0, 3.0, 3.0, 3.0, 3.0)
    calls: list[tuple[int, int]] = []
    result = wh.export_parquet(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert [p.parent.name for p in result.files] == [
        "date=2025-11-21", "date=2025-11-22", "date=2025-11-23"
    ]
    assert [[b.open for b in file_bars(p)] for p in result.files] == [[1.0], [2.0], [3.0]]
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert result.rows == 3


def test_export_of_empty_warehouse_writes_nothing(wh: Warehouse, tmp_path: Path) -> None:
    result = wh.export_parquet(tmp_path / "out")
    assert (result.files, result.rows) == ((), 0)


def test_export_includes_replacements_once(wh: Warehouse, bar: MakeBar, tmp_path: Path) -> None:
    wh.extend([bar("ES", m, price=1.0) for m in range(3)])
    wh.flush()
    wh.append(*bar("ES", 1, price=9.0))  # replaces a flushed bar, still unflushed at export
    wh.extend([bar("ES", 2, price=8.0), bar("ES", 2, price=7.0)])
    path = wh.export_parquet(tmp_path).files[0]
    assert file_bars(path) == [bar("ES", 0, price=1.0), bar("ES", 1, price=9.0),
                               bar("ES", 2, price=7.0)]


def test_reexport_replaces_bars_key_for_key_and_keeps_other_archived_bars(
    wh: Warehouse, bar: MakeBar, tmp_path: Path
) -> None:
    wh.extend([bar("ES", m, price=1.0) for m in range(50)])
    first = wh.export_parquet(tmp_path).files[0]
    wh.clear()  # a new session on the same day: ES minutes 0..49 are now only in the archive
    wh.append(*bar("ES", 10, price=5.0))
    wh.append(*bar("NQ", 0))
    second = wh.export_parquet(tmp_path).files[0]
    assert second == first
    bars = file_bars(second)
    assert len(bars) == 51
    assert bars[:50] == [bar("ES", m, price=5.0 if m == 10 else 1.0) for m in range(50)]
    assert bars[50] == bar("NQ", 0)
    assert listing(tmp_path) == ["date=2025-11-21", "date=2025-11-21/bars.parquet"]


def test_export_to_directory_with_quote_in_name(
    wh: Warehouse, bar: MakeBar, tmp_path: Path
) -> None:
    wh.append(*bar("ES", 0))
    root = tmp_path / "trader's archive"
    path = wh.export_parquet(root).files[0]
    assert file_bars(path) == [bar("ES", 0)]


def test_export_parquet_function_exports_stored_bars_only(
    store: BarStore, bar: MakeBar, tmp_path: Path
) -> None:
    table = pa.Table.from_pylist([bar("ES", m)._asdict() for m in range(4)], schema=BAR_SCHEMA)
    keys = pa.table({"symbol": pa.array([], pa.string()),
                     "ts": pa.array([], BAR_SCHEMA.field("ts").type)})
    store.write(table, keys)
    result = export_parquet(store, tmp_path)
    assert result.rows == 4
    assert file_bars(result.files[0]) == [bar("ES", m) for m in range(4)]


# -- a failed export leaves the previous one intact ------------------------------------------


@pytest.fixture
def previous(wh: Warehouse, bar: MakeBar, tmp_path: Path) -> tuple[Warehouse, Path, bytes]:
    wh.extend([bar("ES", m, price=1.0) for m in range(10)])
    path = wh.export_parquet(tmp_path).files[0]
    wh.extend([bar("ES", m, price=2.0) for m in range(20)])
    return wh, path, path.read_bytes()


def test_export_failing_at_rename_keeps_previous_file_and_no_temp(
    previous: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh, path, before = previous

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ExportError, match=r"export of 2025-11-21 to .*bars\.parquet failed"):
        wh.export_parquet(tmp_path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["date=2025-11-21", "date=2025-11-21/bars.parquet"]
    # The warehouse still works and the next export succeeds.
    assert len(file_bars(wh.export_parquet(tmp_path).files[0])) == 20


def test_export_failing_in_duckdb_keeps_previous_file_and_no_temp(
    previous: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh, path, before = previous
    # A codec name DuckDB rejects makes the COPY fail after the partition exists; the day is
    # archived already, so the merging statement runs, but neither may succeed.
    for name in ("export_day", "export_day_merged"):
        text = wh.queries[name]
        broken = text.replace("COMPRESSION {compression}", "COMPRESSION no_such_codec")
        broken = broken.replace("COMPRESSION '{compression}'", "COMPRESSION no_such_codec")
        assert broken != text
        monkeypatch.setitem(wh.queries._texts, name, broken)
    with pytest.raises(ExportError, match="failed"):
        wh.export_parquet(tmp_path)
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["date=2025-11-21", "date=2025-11-21/bars.parquet"]


def test_export_onto_directory_named_like_file_raises_and_leaves_no_temp(
    wh: Warehouse, bar: MakeBar, tmp_path: Path
) -> None:
    wh.append(*bar("ES", 0))
    blocker = tmp_path / "date=2025-11-21" / "bars.parquet"
    blocker.mkdir(parents=True)
    (blocker / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="failed"):
        wh.export_parquet(tmp_path)
    assert listing(tmp_path) == [
        "date=2025-11-21", "date=2025-11-21/bars.parquet", "date=2025-11-21/bars.parquet/keep.txt"
    ]


def test_export_onto_partition_that_is_a_file_raises_export_error(
    wh: Warehouse, bar: MakeBar, tmp_path: Path
) -> None:
    wh.append(*bar("ES", 0))
    (tmp_path / "date=2025-11-21").write_text("not a directory")
    with pytest.raises(ExportError, match="failed"):
        wh.export_parquet(tmp_path)
    assert (tmp_path / "date=2025-11-21").read_text() == "not a directory"
    assert listing(tmp_path) == ["date=2025-11-21"]


def test_export_root_that_is_a_file_raises_export_error(
    wh: Warehouse, bar: MakeBar, tmp_path: Path
) -> None:
    wh.append(*bar("ES", 0))
    root = tmp_path / "archive"
    root.write_text("x")
    with pytest.raises(ExportError):
        wh.export_parquet(root)
    assert root.read_text() == "x"


def test_export_removes_temporary_files_left_by_a_killed_export(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.extend(generate_session(3, 5))
        (partition,) = {f.parent for f in wh.export_parquet(archive).files}
        stale = partition / ".bars.parquet.deadbeef.tmp"
        stale.write_bytes(b"half a file")
        wh.export_parquet(archive)
    assert not stale.exists()
    assert [p.name for p in partition.iterdir()] == ["bars.parquet"]


def test_history_view_reads_the_archive_days_next_to_todays_bars(tmp_path: Path) -> None:
    from datetime import date

    archive = tmp_path / "archive"
    days = [generate_session(4, 10, day=date(2025, 11, d)) for d in (20, 21)]
    with Warehouse(tmp_path / "wh.duckdb", archive=archive, flush_interval=None) as wh:
        assert wh.sql("SELECT count(*) AS n FROM history")["n"][0].as_py() == 0
        for day in days:
            wh.extend(day)
            wh.export_parquet()  # to the archive: history now holds the day
            wh.clear()
    (archive / "date=2025-11-21" / ".bars.parquet.x.tmp").write_bytes(b"partial")
    with Warehouse(tmp_path / "wh.duckdb", archive=archive, flush_interval=None) as tomorrow:
        counts = tomorrow.sql(
            "SELECT date, count(*) AS n FROM history GROUP BY date ORDER BY date"
        ).to_pylist()
        assert counts == [{"date": date(2025, 11, d), "n": 40} for d in (20, 21)]
        assert tomorrow.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 0


def test_export_without_directory_or_archive_raises(wh: Warehouse) -> None:
    with pytest.raises(ValueError, match="archive"):
        wh.export_parquet()
