"""`BarStore`: the DuckDB session table, transactional writes, the `bars` view, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest

from warehouse import BAR_SCHEMA, Bar, BarStore, StoreError, _memory
from warehouse.schema import STORED_SCHEMA
from warehouse.store import ROW_GROUP_SIZE, STORED, TABLE, TAIL

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
TS_TYPE = BAR_SCHEMA.field("ts").type

MakeBar = Callable[..., Bar]


def table_of(bars: list[Bar]) -> pa.Table:
    return pa.Table.from_pylist([b._asdict() for b in bars], schema=BAR_SCHEMA)


def keys_of(*keys: tuple[str, int]) -> pa.Table:
    return pa.table({
        "symbol": pa.array([k[0] for k in keys], pa.string()),
        "ts": pa.array([k[1] for k in keys], pa.int64()).cast(TS_TYPE),
    })


def stored(store: BarStore) -> list[tuple[str, int, float]]:
    table = store.arrow(f"SELECT symbol, epoch_us(ts) AS ts, open FROM {STORED} ORDER BY ALL")
    return [tuple(row.values()) for row in table.to_pylist()]


def test_new_store_has_session_table_with_bar_schema(store: BarStore) -> None:
    columns = store.arrow(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        f"WHERE table_name = '{TABLE}' ORDER BY ordinal_position"
    ).to_pylist()
    assert [c["column_name"] for c in columns] == STORED_SCHEMA.names
    assert columns[1]["data_type"] == "TIMESTAMP WITH TIME ZONE"
    assert [c["is_nullable"] for c in columns][:7] == ["NO"] * 7
    assert columns[-1]["data_type"] == "ENUM('live', 'filled')"
    assert store.stored_count() == 0


def test_store_pins_time_zone_to_utc(store: BarStore) -> None:
    zone = store.arrow("SELECT current_setting('TimeZone') AS tz").column("tz")[0].as_py()
    assert zone == "UTC"


def test_write_then_arrow_returns_bars_with_utc_ts(store: BarStore, bar: MakeBar) -> None:
    bars = [bar("ES", 0, vwap=100.1, trade_count=5), bar("NQ", 1)]
    store.write(table_of(bars), keys_of())
    result = store.arrow(f"SELECT * EXCLUDE (origin) FROM {STORED} ORDER BY symbol")
    assert result.schema.field("ts").type == TS_TYPE
    assert result.cast(BAR_SCHEMA).equals(table_of(bars))
    assert store.stored_count() == 2


def test_write_with_replaced_keys_deletes_them_first(store: BarStore, bar: MakeBar) -> None:
    store.write(table_of([bar("ES", 0, price=1.0), bar("ES", 1, price=1.0)]), keys_of())
    store.write(table_of([bar("ES", 0, price=2.0)]), keys_of(("ES", T0)))
    assert stored(store) == [("ES", T0, 2.0), ("ES", T0 + MINUTE, 1.0)]


def test_failed_write_rolls_back_delete_and_insert(store: BarStore, bar: MakeBar) -> None:
    store.write(table_of([bar("ES", 0, price=1.0)]), keys_of())
    before = stored(store)
    # A null in a NOT NULL column makes DuckDB refuse the insert after the delete ran.
    nullable = pa.schema([pa.field(f.name, f.type) for f in BAR_SCHEMA])
    broken = pa.Table.from_pylist(
        [bar("ES", 0, price=2.0)._asdict(), {**bar("ES", 1)._asdict(), "open": None}],
        schema=nullable,
    )
    with pytest.raises(StoreError, match=r"flush of 2 bars to :memory: failed"):
        store.write(broken, keys_of(("ES", T0)))
    assert stored(store) == before
    # The connection is usable after the rollback.
    store.write(table_of([bar("ES", 1)]), keys_of())
    assert store.stored_count() == 2


def test_bars_view_hides_replaced_keys_and_adds_log(store: BarStore, bar: MakeBar) -> None:
    store.write(table_of([bar("ES", 0, price=1.0), bar("ES", 1, price=1.0)]), keys_of())
    log = (
        table_of([bar("ES", 1, price=9.0), bar("ES", 2, price=9.0)]),
        keys_of(("ES", T0 + MINUTE)),
    )
    rows = store.arrow("SELECT epoch_us(ts) AS ts, open FROM bars ORDER BY ts", log=log)
    assert rows.to_pylist() == [
        {"ts": T0, "open": 1.0},
        {"ts": T0 + MINUTE, "open": 9.0},
        {"ts": T0 + 2 * MINUTE, "open": 9.0},
    ]
    # Without replaced keys the plain view is used; switching back and forth stays correct.
    plain = store.arrow("SELECT count(*) AS n FROM bars", log=(table_of([bar("NQ", 0)]), keys_of()))
    assert plain.column("n")[0].as_py() == 3


def test_polars_returns_dataframe_with_utc_datetime(store: BarStore, bar: MakeBar) -> None:
    store.write(table_of([bar("ES", 0)]), keys_of())
    frame = store.polars(f"SELECT * EXCLUDE (origin) FROM {STORED}")
    assert isinstance(frame, pl.DataFrame)
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")


def test_arrow_binds_named_and_positional_parameters(store: BarStore, bar: MakeBar) -> None:
    store.write(table_of([bar("ES", 0), bar("NQ", 0)]), keys_of())
    named = store.arrow(f"SELECT symbol FROM {STORED} WHERE symbol = $s", {"s": "NQ"})
    positional = store.arrow(f"SELECT symbol FROM {STORED} WHERE symbol = ?", ["ES"])
    assert named.column("symbol").to_pylist() == ["NQ"]
    assert positional.column("symbol").to_pylist() == ["ES"]


def test_bad_sql_raises_store_error_wrapping_duckdb(store: BarStore) -> None:
    with pytest.raises(StoreError, match="query failed") as info:
        store.arrow("SELECT no_such_column FROM bars")
    assert isinstance(info.value.__cause__, duckdb.Error)
    with pytest.raises(StoreError):
        store.execute("DROP TABLE no_such_table")


def test_query_after_close_raises_store_error_and_close_is_idempotent(store: BarStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.arrow("SELECT 1")


def test_context_manager_closes_store(tmp_path: Path, bar: MakeBar) -> None:
    path = tmp_path / "s.duckdb"
    with BarStore(path) as store:
        store.write(table_of([bar("ES", 0)]), keys_of())
        store.checkpoint()
    with pytest.raises(StoreError, match="closed"):
        store.stored_count()
    with BarStore(path) as reopened:
        assert reopened.stored_count() == 1


def test_read_only_store_reads_but_refuses_writes(tmp_path: Path, bar: MakeBar) -> None:
    path = tmp_path / "s.duckdb"
    with BarStore(path) as store:
        store.write(table_of([bar("ES", 0)]), keys_of())
    with BarStore(path, read_only=True) as reader:
        assert reader.stored_count() == 1
        with pytest.raises(StoreError):
            reader.write(table_of([bar("ES", 1)]), keys_of())
        assert reader.stored_count() == 1


def test_open_non_duckdb_file_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are not the bars you are looking for\n" * 100)
    with pytest.raises(StoreError, match="cannot open warehouse file"):
        BarStore(path)


def test_open_file_with_foreign_session_table_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE {TABLE} (symbol VARCHAR, price DOUBLE)")
    con.close()
    with pytest.raises(StoreError, match=rf"table {TABLE} has columns \['symbol', 'price'\]"):
        BarStore(path)


def test_open_missing_file_read_only_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        BarStore(tmp_path / "absent.duckdb", read_only=True)


# -- compaction: flushes land in a tail table, compacted into sorted runs --------------------


def table_counts(store: BarStore) -> tuple[int, int]:
    counts = store.arrow(
        f"SELECT (SELECT count(*) FROM {TABLE}) AS runs, (SELECT count(*) FROM {TAIL}) AS tail"
    ).to_pylist()[0]
    return counts["runs"], counts["tail"]


def test_compaction_moves_the_tail_into_a_sorted_run_and_changes_no_answer(
    tmp_path: Path, bar: MakeBar
) -> None:
    arrival = [bar(s, m) for m in range(6) for s in ("NQ", "ES", "CL")]
    with BarStore(tmp_path / "s.duckdb", compact_rows=10) as store:
        store.write(table_of(arrival[:9]), keys_of())
        assert not store.compact_due
        store.write(table_of(arrival[9:]), keys_of())
        assert store.compact_due
        before = store.arrow(f"SELECT * EXCLUDE (origin) FROM {STORED} ORDER BY symbol, ts")
        store.compact()
        assert not store.compact_due
        assert table_counts(store) == (18, 0)
        # The run is in (symbol, ts) order as stored, not only when a query sorts it.
        run = store.arrow(f"SELECT symbol, epoch_us(ts) AS ts FROM {TABLE} ORDER BY rowid")
        assert run.to_pylist() == sorted(run.to_pylist(), key=lambda r: (r["symbol"], r["ts"]))
        after = store.arrow(f"SELECT * EXCLUDE (origin) FROM {STORED} ORDER BY symbol, ts")
        assert after.equals(before)
        # A replacement reaches a bar in a run; a second run follows the first.
        replaced = keys_of(("ES", T0 + 2 * MINUTE))
        store.write(table_of([bar("ES", 2, volume=7.0), bar("ES", 6)]), replaced)
        assert table_counts(store) == (17, 2)
        store.checkpoint()  # a checkpoint compacts whatever waits
        assert table_counts(store) == (19, 0)
        volumes = store.arrow(
            f"SELECT volume FROM {STORED} WHERE symbol = 'ES' AND epoch_us(ts) = $ts",
            {"ts": T0 + 2 * MINUTE},
        )
        assert volumes["volume"].to_pylist() == [7.0]


def test_checkpoint_purges_the_allocator_once_the_bars_are_in_the_file(
    tmp_path: Path, bar: MakeBar, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.duckdb"
    bars = [bar(s, m) for m in range(300) for s in ("ES", "NQ", "CL")]
    at_purge: list[tuple[int, int, bool]] = []

    def purge() -> bool:  # the real purge, recording what the store holds when it runs
        wal = Path(f"{path}.wal")
        assert not wal.exists() or wal.stat().st_size == 0  # every bar is in the file
        at_purge.append((store.tail_rows, store.stored_count(), _memory.release_freed_memory()))
        return at_purge[-1][2]

    monkeypatch.setattr("warehouse.store.release_freed_memory", purge)
    with BarStore(path, compact_rows=10_000) as store:
        store.write(table_of(bars), keys_of())
        before = stored(store)
        store.checkpoint()
        # Compacted and checkpointed first; where DuckDB's allocator can be purged, it was.
        assert at_purge == [(0, 900, _memory.can_release())]
        assert stored(store) == before
        store.write(table_of([bar("ES", 300)]), keys_of())  # the store goes on as before
        assert store.stored_count() == 901
    with BarStore(path, read_only=True) as reader:
        assert len(stored(reader)) == 901


def test_session_table_is_stored_in_row_groups_of_row_group_size(tmp_path: Path) -> None:
    # Small row groups are what lets a one-symbol query skip most of a compacted run; a file
    # reopened (read-only too) keeps them, and the rows come back whole and in order.
    path = tmp_path / "s.duckdb"
    rows = 3 * ROW_GROUP_SIZE + 5
    table = pa.table({
        "symbol": pa.array([f"S{i % 7}" for i in range(rows)], pa.string()),
        "ts": pa.array([T0 + i * MINUTE for i in range(rows)], pa.int64()).cast(TS_TYPE),
        **{name: pa.array([1.0] * rows) for name in ("open", "high", "low", "close", "volume")},
        "vwap": pa.nulls(rows, pa.float64()),
        "trade_count": pa.nulls(rows, pa.int64()),
    })
    with BarStore(path) as store:
        store.write(table, keys_of())
        store.checkpoint()
    groups = "SELECT count(DISTINCT row_group_id) AS n FROM pragma_storage_info('session_bars')"
    with BarStore(path, read_only=True) as reader:
        assert reader.arrow(groups).to_pylist() == [{"n": 4}]
        counts = reader.arrow(f"SELECT symbol, count(*) AS n FROM {STORED} GROUP BY ALL "
                              "ORDER BY ALL").to_pylist()
        assert counts == [{"symbol": f"S{k}", "n": len(range(k, rows, 7))} for k in range(7)]


def test_attached_file_has_the_settings_of_a_file_connection(tmp_path: Path) -> None:
    # The file is attached (for its row group size), not opened as the connection's own: every
    # DuckDB setting must still be what duckdb.connect(file) gives, spill folder included.
    # Only the search path names the attached database.
    plain = duckdb.connect(str(tmp_path / "plain.duckdb"))
    expected = dict(plain.sql("SELECT name, value FROM duckdb_settings()").fetchall())
    plain.close()
    path = tmp_path / "it's.duckdb"
    with BarStore(path) as store:
        got = {row["name"]: row["value"] for row in
               store.arrow("SELECT name, value FROM duckdb_settings()").to_pylist()}
    expected["temp_directory"] = f"{path}.tmp"
    # The warehouse's own choices (see BarStore): UTC results and its own checkpoints.
    expected.update(TimeZone="UTC", checkpoint_threshold=got["checkpoint_threshold"],
                    wal_autocheckpoint=got["wal_autocheckpoint"])
    differing = {k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)}
    assert differing == {"search_path"}
    assert got["search_path"] == "warehouse.main"


def test_checkpoint_without_a_purgeable_allocator_does_the_rest(
    tmp_path: Path, bar: MakeBar, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_memory, "_mallctl", None)  # a build without jemalloc's mallctl
    assert not _memory.can_release()
    assert _memory.release_freed_memory() is False
    with BarStore(tmp_path / "s.duckdb") as store:
        store.write(table_of([bar("ES", 0), bar("ES", 1)]), keys_of())
        store.checkpoint()
        assert table_counts(store) == (2, 0)


def test_read_only_open_of_a_file_left_with_a_tail_reads_it_and_refuses_to_compact(
    tmp_path: Path, bar: MakeBar
) -> None:
    path = tmp_path / "s.duckdb"
    with BarStore(path) as store:  # a writer that stopped without a checkpoint
        store.write(table_of([bar("ES", 0), bar("ES", 1)]), keys_of())
    with BarStore(path, read_only=True) as reader:
        assert reader.stored_count() == 2
        with pytest.raises(StoreError, match=r"2 flushed bars wait .* open the file for writing"):
            reader.compact()
        assert reader.stored_count() == 2
    with BarStore(path) as writer:
        writer.compact()
        assert table_counts(writer) == (2, 0)


def test_read_only_open_of_a_file_without_a_tail_table_reads_its_bars(
    tmp_path: Path, bar: MakeBar
) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.register("bars_in", table_of([bar("ES", 0)]))
    con.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM bars_in")  # no tail, no origin
    con.close()
    with BarStore(path, read_only=True) as reader:
        assert reader.stored_count() == 1
        reader.compact()  # nothing waits: nothing to do, nothing written
        assert reader.arrow("SELECT count(*) AS n FROM bars")["n"].to_pylist() == [1]
        assert reader.arrow("SELECT origin FROM bars")["origin"].to_pylist() == ["live"]


def old_file(path: Path, bars: list[Bar]) -> None:
    """A warehouse file as written before bars recorded their origin: both tables, 9 columns."""
    con = duckdb.connect(str(path))
    con.register("bars_in", table_of(bars))
    con.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM bars_in")
    con.execute(f"CREATE TABLE {TAIL} AS SELECT * FROM bars_in LIMIT 0")
    con.close()


def test_read_only_open_of_a_file_written_before_origins_shows_every_bar_live(
    tmp_path: Path, bar: MakeBar
) -> None:
    old_file(tmp_path / "old.duckdb", [bar("ES", 0), bar("NQ", 1)])
    with BarStore(tmp_path / "old.duckdb", read_only=True) as reader:
        rows = reader.arrow("SELECT symbol, origin FROM bars ORDER BY symbol").to_pylist()
    assert rows == [{"symbol": "ES", "origin": "live"}, {"symbol": "NQ", "origin": "live"}]


def test_writable_open_of_a_file_written_before_origins_adds_the_column_bars_live(
    tmp_path: Path, bar: MakeBar
) -> None:
    path = tmp_path / "old.duckdb"
    old_file(path, [bar("ES", 0)])
    with BarStore(path) as store:
        store.write_filled(table_of([bar("ES", 1)]))
        store.compact()
        rows = store.arrow(f"SELECT epoch_us(ts) AS ts, origin FROM {STORED} ORDER BY ts")
    assert [r["origin"] for r in rows.to_pylist()] == ["live", "filled"]
    with BarStore(path, read_only=True) as reader:
        assert reader.stored_count() == 2
