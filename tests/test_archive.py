"""The Parquet archive (`warehouse.archive`): what an export writes, that a failed one leaves
the previous file intact, that it adds to the archive and never takes from it (a day already
archived is merged key for key), that archive paths are literal (never glob patterns), and that
`history` reads the archive's days, a damaged file failing only the queries that read it.

Every test works on real files: warehouses on tmp_path, Parquet read back with pyarrow, polars
or DuckDB, damage done to real files (emptied, cut short, overwritten with garbage).
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import polars.testing as plt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import warehouse.history as history_module
from warehouse import (
    Bar,
    BarStore,
    ExportError,
    SessionError,
    StoreError,
    Warehouse,
    export_parquet,
)
from warehouse.archive import ExportResult
from warehouse.sample import generate_session
from warehouse.schema import BAR_SCHEMA, STORED_SCHEMA

#: 2025-11-21 14:30:00 UTC in microseconds.
T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
DAY = 24 * 60 * MINUTE
#: 2025-11-22 00:00:00 UTC: the midnight sessions cross.
MIDNIGHT = T0 + 9 * 60 * MINUTE + 30 * MINUTE
DAY_FILE = Path("date=2025-11-21") / "bars.parquet"
DAMAGE = ["zero-bytes", "truncated", "garbage", "garbage-with-magic"]

MakeBar = Callable[..., Bar]


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def file_bars(path: Path) -> list[Bar]:
    """The bars of one Parquet file, read by pyarrow (not DuckDB), in file order."""
    table = pq.read_table(path)
    table = table.set_column(1, "ts", table.column("ts").cast(pa.int64()))
    return [Bar(**row) for row in table.drop_columns(["origin"]).to_pylist()]


def bars_of(symbol: str, start: int, count: int, price: float = 100.0) -> list[Bar]:
    """``count`` one-minute bars of ``symbol`` from ``start`` (microseconds), priced ``price``."""
    return [Bar(symbol, start + m * MINUTE, price, price + 1.0, price - 1.0, price + 0.5,
                1_000.0, None, None) for m in range(count)]


def in_key_order(bars: list[Bar]) -> list[Bar]:
    return sorted(bars, key=lambda b: (b.symbol, b.ts))


def export_session(db: Path, archive: Path, bars: list[Bar]) -> ExportResult:
    """One session in its own warehouse file: take ``bars``, export them to ``archive``."""
    with Warehouse(db, flush_interval=None) as wh:
        wh.extend(bars)
        return wh.export_parquet(archive)


def damage(path: Path, how: str) -> None:
    """Damage a real Parquet file the way a crash, a full disk or a stray write would."""
    data = path.read_bytes()
    noise = random.Random(7).randbytes(len(data))
    if how == "zero-bytes":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(noise)
    else:  # looks like Parquet at both ends, holds nothing readable in between
        path.write_bytes(b"PAR1" + noise + b"PAR1")


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def history_count(wh: Warehouse, where: str = "true") -> int:
    return int(wh.sql(f"SELECT count(*) AS n FROM history WHERE {where}")["n"][0].as_py())


# -- an export: layout, codec, order, types, read back by three engines ----------------------------


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
    expected = pl.from_arrow(sample_bars).with_columns(origin=pl.lit("live"))
    return wh, result.files[0], expected.sort("symbol", "ts")


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
    assert table.cast(STORED_SCHEMA).equals(expected.to_arrow().cast(STORED_SCHEMA))
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


def test_export_without_directory_or_archive_raises(wh: Warehouse) -> None:
    with pytest.raises(SessionError, match=r"export_parquet\(directory\).*archive="):
        wh.export_parquet()


# -- a failed export leaves the previous file intact -----------------------------------------------


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
    # An error raised while DuckDB runs the query, after the partition exists; the day is
    # archived already, so the merging statement runs, but neither may succeed.
    for name in ("export_day", "export_day_merged"):
        text = wh._store.statements[name]
        broken = text.replace("ORDER BY symbol, ts", "ORDER BY symbol, ts, error('injected')")
        assert broken != text
        monkeypatch.setitem(wh._store.statements._texts, name, broken)
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


# -- an export adds to a day already archived, key for key -----------------------------------------


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


def test_export_of_day_already_archived_keeps_other_sessions_bars(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    first = bars_of("ES", T0, 30)
    second = bars_of("NQ", T0, 20) + bars_of("AAPL", T0 + 60 * MINUTE, 5)
    export_session(tmp_path / "one.duckdb", archive, first)
    result = export_session(tmp_path / "two.duckdb", archive, second)
    assert result.files == (archive / DAY_FILE,)
    assert file_bars(archive / DAY_FILE) == in_key_order(first + second)


def test_export_of_session_crossing_midnight_keeps_earlier_sessions_bars_of_that_day(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "archive"
    day_session = bars_of("ES", T0, 60)
    night_session = bars_of("ES", MIDNIGHT - 30 * MINUTE, 60)  # 23:30 to 00:29 UTC
    export_session(tmp_path / "day.duckdb", archive, day_session)
    result = export_session(tmp_path / "night.duckdb", archive, night_session)
    assert [p.parent.name for p in result.files] == ["date=2025-11-21", "date=2025-11-22"]
    before, after = night_session[:30], night_session[30:]
    assert file_bars(archive / DAY_FILE) == day_session + before
    assert file_bars(result.files[1]) == after
    # An independent reader of the whole archive sees every bar once.
    frame = pl.scan_parquet(archive / "**" / "*.parquet", hive_partitioning=True).collect()
    assert frame.height == len(day_session) + len(night_session)
    assert frame.select(pl.struct("symbol", "ts").n_unique()).item() == frame.height


def test_export_replaces_archived_bars_key_for_key_and_keeps_the_rest(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archived = bars_of("ES", T0, 10, price=1.0)
    export_session(tmp_path / "one.duckdb", archive, archived)
    corrections = bars_of("ES", T0 + 3 * MINUTE, 2, price=9.0)  # minutes 3 and 4
    export_session(tmp_path / "two.duckdb", archive, corrections)
    assert file_bars(archive / DAY_FILE) == archived[:3] + corrections + archived[5:]


def test_reexport_of_same_session_writes_the_same_rows(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    other = bars_of("NQ", T0, 7)
    export_session(tmp_path / "other.duckdb", archive, other)
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None) as wh:
        wh.extend(bars_of("ES", T0, 40) + bars_of("GC", T0 + 5 * MINUTE, 3))
        path = wh.export_parquet(archive).files[0]
        once = pq.read_table(path)
        for _ in range(2):
            assert wh.export_parquet(archive).files == (path,)
            assert pq.read_table(path).equals(once)
    assert once.num_rows == 40 + 3 + 7
    assert temporary_files(archive) == []


@pytest.mark.parametrize("how", DAMAGE)
def test_export_over_damaged_day_file_raises_export_error_naming_it_and_leaves_it(
    tmp_path: Path, how: str
) -> None:
    archive = tmp_path / "archive"
    export_session(tmp_path / "one.duckdb", archive, bars_of("ES", T0, 50))
    path = archive / DAY_FILE
    damage(path, how)
    damaged = path.read_bytes()
    with Warehouse(tmp_path / "two.duckdb", flush_interval=None) as wh:
        wh.extend(bars_of("NQ", T0, 5))
        with pytest.raises(ExportError, match="failed") as info:
            wh.export_parquet(archive)
        assert str(path) in str(info.value)
        # Nothing was lost: the session still holds its bars for a later export.
        assert wh.count("NQ") == 5
    assert path.read_bytes() == damaged
    assert temporary_files(archive) == []


def test_export_over_day_file_with_corrupt_pages_raises_export_error_and_leaves_it(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "archive"
    export_session(tmp_path / "one.duckdb", archive, bars_of("ES", T0, 500))
    path = archive / DAY_FILE
    data = bytearray(path.read_bytes())
    data[4 : len(data) // 2] = bytes(len(data) // 2 - 4)  # the footer is whole, the pages not
    path.write_bytes(data)
    pq.read_metadata(path)  # a footer check alone finds nothing wrong
    with pytest.raises(ExportError, match="failed") as info:
        export_session(tmp_path / "two.duckdb", archive, bars_of("NQ", T0, 5))
    assert str(path) in str(info.value)
    assert path.read_bytes() == data
    assert temporary_files(archive) == []


def test_export_over_day_file_of_other_columns_raises_export_error_and_leaves_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "archive" / DAY_FILE
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"order_id": [1, 2, 3], "qty": [5.0, 6.0, 7.0]}), path)
    before = path.read_bytes()
    with pytest.raises(ExportError, match="failed") as info:
        export_session(tmp_path / "wh.duckdb", tmp_path / "archive", bars_of("ES", T0, 5))
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert temporary_files(tmp_path / "archive") == []


def test_export_interrupted_while_merging_leaves_archived_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    export_session(tmp_path / "one.duckdb", archive, bars_of("ES", T0, 20))
    before = (archive / DAY_FILE).read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    with Warehouse(tmp_path / "two.duckdb", flush_interval=None) as wh:
        wh.extend(bars_of("NQ", T0, 20))
        monkeypatch.setattr(os, "fsync", interrupted)
        with pytest.raises(KeyboardInterrupt):
            wh.export_parquet(archive)
        monkeypatch.undo()
        assert (archive / DAY_FILE).read_bytes() == before
        assert temporary_files(archive) == []
        wh.export_parquet(archive)  # the next attempt merges as if nothing had happened
    assert file_bars(archive / DAY_FILE) == bars_of("ES", T0, 20) + bars_of("NQ", T0, 20)


def test_concurrent_exports_of_one_day_from_two_warehouses_keep_both_sessions_bars(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "archive"
    sessions = {"ES": bars_of("ES", T0, 200), "NQ": bars_of("NQ", T0, 200)}
    errors: list[BaseException] = []
    start = threading.Barrier(len(sessions))

    def run(symbol: str) -> None:
        try:
            with Warehouse(tmp_path / f"{symbol}.duckdb", flush_interval=None) as wh:
                wh.extend(sessions[symbol])
                start.wait()
                for _ in range(5):
                    wh.export_parquet(archive)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert file_bars(archive / DAY_FILE) == sessions["ES"] + sessions["NQ"]


# -- archive paths are literal, never glob patterns ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sibling"),
    [("arch[1]", "arch1"), ("arch[12]", "arch2"), ("a*b", "axb"), ("q?z", "qaz"),
     ("c{d,e}", "cd"), ("trader's", "traders")],
)
def test_history_of_archive_named_with_glob_characters_sees_only_its_own_bars(
    tmp_path: Path, name: str, sibling: str
) -> None:
    mine, theirs = tmp_path / name, tmp_path / sibling
    export_session(tmp_path / "theirs.duckdb", theirs, bars_of("NQ", T0, 4))
    export_session(tmp_path / "theirs2.duckdb", theirs, bars_of("NQ", T0 - DAY, 4))  # another day
    export_session(tmp_path / "mine.duckdb", mine, bars_of("ES", T0, 3))
    with Warehouse(tmp_path / "reader.duckdb", flush_interval=None, archive=mine) as wh:
        got = wh.sql("SELECT symbol, count(*) AS n FROM history GROUP BY ALL").to_pylist()
    assert got == [{"symbol": "ES", "n": 3}]
    with Warehouse(tmp_path / "reader.duckdb", flush_interval=None, archive=theirs) as wh:
        got = wh.sql("SELECT date, count(*) AS n FROM history GROUP BY ALL ORDER BY date")
    assert got.to_pylist() == [{"date": date(2025, 11, 20), "n": 4},
                               {"date": date(2025, 11, 21), "n": 4}]


@pytest.mark.parametrize(("name", "sibling"), [("arch[1]", "arch1"), ("a*b", "axb")])
def test_export_into_archive_named_with_glob_characters_merges_only_its_own_day_file(
    tmp_path: Path, name: str, sibling: str
) -> None:
    mine, theirs = tmp_path / name, tmp_path / sibling
    export_session(tmp_path / "theirs.duckdb", theirs, bars_of("NQ", T0, 4))
    export_session(tmp_path / "one.duckdb", mine, bars_of("ES", T0, 3))
    export_session(tmp_path / "two.duckdb", mine, bars_of("GC", T0, 2))
    assert file_bars(mine / DAY_FILE) == bars_of("ES", T0, 3) + bars_of("GC", T0, 2)
    assert file_bars(theirs / DAY_FILE) == bars_of("NQ", T0, 4)


def test_archive_path_with_backslash_and_glob_character_never_reads_another_archive(
    tmp_path: Path,
) -> None:
    # DuckDB splits glob patterns at backslashes too: "x\\y[1]" would find "x/y[1]".
    mine, decoy = tmp_path / "x\\y[1]", tmp_path / "x" / "y[1]"
    export_session(tmp_path / "decoy.duckdb", decoy, bars_of("NQ", T0, 4))
    export_session(tmp_path / "one.duckdb", mine, bars_of("ES", T0, 3))
    with (Warehouse(tmp_path / "reader.duckdb", flush_interval=None, archive=mine) as wh,
          pytest.raises(StoreError, match="backslash")):
        wh.sql("SELECT count(*) AS n FROM history")
    with pytest.raises(ExportError, match="backslash"):
        export_session(tmp_path / "two.duckdb", mine, bars_of("GC", T0, 2))
    assert file_bars(mine / DAY_FILE) == bars_of("ES", T0, 3)
    assert file_bars(decoy / DAY_FILE) == bars_of("NQ", T0, 4)


# -- history: the archive's days as SQL; a damaged file fails only the queries that read it --------


def test_history_view_reads_the_archive_days_next_to_todays_bars(tmp_path: Path) -> None:
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


@pytest.fixture
def three_days(tmp_path: Path) -> dict[date, Path]:
    """An archive of three days (2025-11-20..22), 10 ES bars each: day -> its file."""
    archive = tmp_path / "archive"
    files = {}
    for offset in (-1, 0, 1):
        (path,) = export_session(tmp_path / f"s{offset}.duckdb", archive,
                                 bars_of("ES", T0 + offset * DAY, 10)).files
        files[date(2025, 11, 21 + offset)] = path
    return files


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("bad_day", [date(2025, 11, 20), date(2025, 11, 22)])
def test_warehouse_opens_over_archive_with_damaged_file_and_reads_healthy_days(
    tmp_path: Path, three_days: dict[date, Path], caplog: pytest.LogCaptureFixture,
    how: str, bad_day: date
) -> None:
    bad = three_days[bad_day]
    damage(bad, how)
    with caplog.at_level(logging.WARNING, logger="warehouse"):
        wh = Warehouse(tmp_path / "live.duckdb", flush_interval=None,
                       archive=tmp_path / "archive")
    with wh:
        assert any(str(bad) in r.getMessage() for r in caplog.records
                   if r.name == "warehouse" and r.levelno == logging.WARNING)
        for day in three_days.keys() - {bad_day}:
            assert history_count(wh, f"date = DATE '{day}'") == 10
        with pytest.raises(StoreError) as info:
            history_count(wh)
        assert str(bad) in str(info.value)
        with pytest.raises(StoreError, match=r"bars\.parquet"):
            history_count(wh, f"date = DATE '{bad_day}'")
        # The live session is unaffected: it takes bars and serves them.
        wh.extend(bars_of("ES", T0 + 3 * DAY, 5))
        assert wh.count("ES") == 5


@pytest.mark.parametrize("how", DAMAGE)
def test_warehouse_opens_over_archive_of_only_damaged_files_and_history_fails_naming_them(
    tmp_path: Path, three_days: dict[date, Path], caplog: pytest.LogCaptureFixture, how: str
) -> None:
    for path in three_days.values():
        damage(path, how)
    with caplog.at_level(logging.WARNING, logger="warehouse"):
        wh = Warehouse(tmp_path / "live.duckdb", flush_interval=None,
                       archive=tmp_path / "archive")
    with wh:
        warned = " ".join(r.getMessage() for r in caplog.records if r.name == "warehouse")
        assert all(str(path) in warned for path in three_days.values())
        for where in ("true", "date = DATE '2025-11-21'", "symbol = 'ES'"):
            with pytest.raises(StoreError) as info:
                history_count(wh, where)
            assert str(three_days[date(2025, 11, 21)]) in str(info.value)
        assert wh.sql("SELECT * FROM history LIMIT 0").column_names[-1] == "date"


def test_history_falls_back_to_next_file_when_duckdb_cannot_bind_the_first(
    tmp_path: Path, three_days: dict[date, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A damage the footer check misses: DuckDB fails to define the view on the file given
    # first; the next readable file is put first instead.
    damage(three_days[date(2025, 11, 20)], "zero-bytes")
    monkeypatch.setattr(history_module, "unreadable_reason", lambda path: None)
    with Warehouse(tmp_path / "live.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        assert history_count(wh, "date > DATE '2025-11-20'") == 20
        with pytest.raises(StoreError, match="date=2025-11-20"):
            history_count(wh)


def test_export_next_to_damaged_day_is_read_by_history_at_once(
    tmp_path: Path, three_days: dict[date, Path]
) -> None:
    damage(three_days[date(2025, 11, 20)], "truncated")
    with Warehouse(tmp_path / "live.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        wh.extend(bars_of("NQ", T0 + 2 * DAY, 6))  # 2025-11-23: a new day
        wh.export_parquet()
        assert history_count(wh, "date = DATE '2025-11-23'") == 6
        assert history_count(wh, "date >= DATE '2025-11-21'") == 26
        with pytest.raises(StoreError, match="date=2025-11-20"):
            history_count(wh)


def test_archive_file_damaged_after_opening_fails_queries_naming_it(
    tmp_path: Path, three_days: dict[date, Path]
) -> None:
    with Warehouse(tmp_path / "live.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        assert history_count(wh) == 30
        bad = three_days[date(2025, 11, 21)]
        damage(bad, "truncated")
        with pytest.raises(StoreError) as info:
            history_count(wh)
        assert str(bad) in str(info.value)
        assert history_count(wh, "date = DATE '2025-11-22'") == 10


def test_every_day_file_has_the_bar_schema_whatever_the_session_held(tmp_path: Path) -> None:
    """One archive, one schema: a session whose bars all carry vwap and trade_count, and one
    whose bars carry neither, write files that an independent reader reads as one table."""
    archive = tmp_path / "archive"
    full = [b._replace(vwap=b.close, trade_count=7) for b in bars_of("ES", T0, 5)]
    bare = [b._replace(ts=b.ts + DAY) for b in bars_of("NQ", T0, 5)]
    export_session(tmp_path / "one.duckdb", archive, full)
    export_session(tmp_path / "two.duckdb", archive, bare)
    # A second export onto a day already archived goes through the merging statement.
    export_session(tmp_path / "three.duckdb", archive, [full[0]._replace(close=full[0].low)])
    files = sorted(archive.rglob("bars.parquet"))
    assert len(files) == 2
    for path in files:
        assert pq.read_schema(path).remove_metadata() == STORED_SCHEMA  # nullability too
    table = pq.read_table([str(f) for f in files])
    assert table.num_rows == 10
    assert table.column("vwap").null_count == 5


def test_read_only_export_of_a_file_left_uncompacted_fails_clearly_then_works_once_settled(
    tmp_path: Path,
) -> None:
    """A writer that died after a flush leaves bars in the tail table; a read-only handle reads
    them but cannot compact them for an export: it says so, and writes nothing."""
    db, archive = tmp_path / "live.duckdb", tmp_path / "archive"
    bars = bars_of("ES", 0, 5)
    with BarStore(db) as store:  # flushed, never checkpointed: what a kill leaves
        store.write(pa.Table.from_pylist([b._asdict() for b in bars], schema=BAR_SCHEMA),
                    pa.table({"symbol": pa.array([], pa.string()),
                              "ts": pa.array([], BAR_SCHEMA.field("ts").type)}))
    with Warehouse(db, read_only=True) as reader:
        assert reader.sql("SELECT count(*) AS n FROM bars")["n"].to_pylist() == [5]
        with pytest.raises(ExportError, match="open the file for writing once"):
            reader.export_parquet(archive)
    assert not archive.exists() or not list(archive.rglob("*.parquet"))
    with Warehouse(db, flush_interval=None) as writer:
        assert writer.export_parquet(archive).rows == 5
    assert pq.read_table(archive).num_rows == 5


def unmark(path: Path) -> None:
    """Rewrite a day file as archived before bars recorded their origin (no origin column)."""
    table = pq.read_table(path).drop_columns(["origin"])
    pq.write_table(table.cast(BAR_SCHEMA), path)


def test_history_over_days_archived_before_and_after_origins_reads_every_day(
    tmp_path: Path, three_days: dict[date, Path]
) -> None:
    unmark(three_days[date(2025, 11, 20)])
    with Warehouse(tmp_path / "live.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        rows = wh.sql("SELECT date, origin, count(*) AS n FROM history GROUP BY ALL "
                      "ORDER BY date").to_pylist()
        assert rows == [{"date": date(2025, 11, 20), "origin": None, "n": 10},
                        {"date": date(2025, 11, 21), "origin": "live", "n": 10},
                        {"date": date(2025, 11, 22), "origin": "live", "n": 10}]
    unmark(three_days[date(2025, 11, 21)])
    unmark(three_days[date(2025, 11, 22)])
    with Warehouse(tmp_path / "live.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        assert history_count(wh) == 30
        assert "origin" not in wh.sql("SELECT * FROM history LIMIT 0").column_names


def test_reexport_over_a_day_archived_before_origins_keeps_its_bars_as_live(
    tmp_path: Path, three_days: dict[date, Path]
) -> None:
    day = three_days[date(2025, 11, 21)]
    unmark(day)
    with Warehouse(tmp_path / "again.duckdb", flush_interval=None) as wh:
        wh.extend(bars_of("ES", T0 + 10 * MINUTE, 2))
        wh.fill(bars_of("ES", T0 + 12 * MINUTE, 1))
        wh.export_parquet(tmp_path / "archive")
    table = pq.read_table(day)
    assert table.schema.remove_metadata() == STORED_SCHEMA
    assert table["origin"].to_pylist() == ["live"] * 12 + ["filled"]
