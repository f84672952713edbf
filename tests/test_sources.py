"""The bar sources of gap filling (issue 9, item 2): a Parquet archive sealed by another
warehouse, another warehouse's DuckDB file, and a plain function, each filling a real session."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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


def missing_the_hole(path: Path) -> Path:
    """A warehouse file whose open session misses AAPL's 15:30-16:00, closed."""
    with Warehouse(path, flush_interval=None, calendar=XNYS) as wh:
        wh.start_session(DAY)
        wh.extend(FULL.filter(pc.invert(hole(FULL))))
    return path


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


PEER = """
import os, signal, sys
from datetime import date
import pyarrow.parquet as pq
from warehouse import Calendar, Warehouse
bars = pq.read_table(sys.argv[2])
wh = Warehouse(sys.argv[1], flush_interval=None,
               calendar=Calendar("XNYS", start=date(2025, 11, 1), end=date(2025, 12, 31)))
wh.start_session(date(2025, 11, 21))
half = bars.num_rows // 2
wh.extend(bars.slice(0, half))
wh.checkpoint()  # compacted into session_bars
wh.extend(bars.slice(half))
wh.flush()  # waits in the tail table until the next compaction, which never comes
print("FLUSHED", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_duckdb_source_reads_a_killed_warehouses_compacted_bars_and_its_tail(tmp_path, capsys):
    """A warehouse killed after flushing (its last flushes still in the tail table, not yet
    compacted) is a source of all its bars: the ones in the compacted table and the tail."""
    from warehouse.cli import main

    peer, feed = tmp_path / "peer.duckdb", tmp_path / "feed.parquet"
    pq.write_table(FULL.sort_by("ts"), feed)
    child = subprocess.run([sys.executable, "-c", PEER, str(peer), str(feed)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split() == ["FLUSHED"]
    source = DuckDBSource(peer)
    assert source.fetch("AAPL", WINDOW.open_time, WINDOW.close_time)["ts"].equals(
        FULL.filter(pc.equal(FULL["symbol"], "AAPL")).sort_by("ts")["ts"])
    db = tmp_path / "w.duckdb"
    minute = pc.divide(pc.subtract(FULL["ts"].cast(pa.int64()), WINDOW.open), 60_000_000)
    late = pc.and_(pc.equal(FULL["symbol"], "MSFT"),  # minutes 300-306: in the peer's tail
                   pc.and_(pc.greater_equal(minute, 300), pc.less(minute, 306)))
    with Warehouse(db, flush_interval=None, calendar=XNYS) as wh:
        wh.start_session(DAY)
        wh.extend(FULL.filter(pc.invert(pc.or_(hole(FULL), late))))
    assert main(["fill", "--db", str(db), "--duckdb", str(peer),
                 "--now", AFTER.isoformat()]) == 0
    assert "filled 36 bars for 2 symbols" in capsys.readouterr().out
    with Warehouse(db, read_only=True) as wh:
        filled = wh.sql("SELECT * EXCLUDE (origin) FROM bars WHERE origin = 'filled' "
                        "ORDER BY symbol, ts")
    assert filled.equals(FULL.filter(pc.or_(hole(FULL), late)).sort_by(
        [("symbol", "ascending"), ("ts", "ascending")]).cast(filled.schema))


def test_duckdb_source_reads_a_users_table_of_bars_in_a_plain_duckdb_file(tmp_path, capsys):
    from warehouse.cli import main

    plain = tmp_path / "prices.duckdb"
    with duckdb.connect(str(plain)) as con:  # no vwap nor trade_count: they are optional
        con.register("held", FULL.filter(hole(FULL)))
        con.execute("CREATE TABLE prices AS SELECT * EXCLUDE (vwap, trade_count) FROM held")
    got = DuckDBSource(plain, table="prices").fetch("AAPL", START, END)
    assert got.num_rows == 30
    assert got["vwap"].null_count == got["trade_count"].null_count == 30
    db = missing_the_hole(tmp_path / "w.duckdb")
    # Without --table the file is read as a warehouse's: it is none, and the error says so.
    assert main(["fill", "--db", str(db), "--duckdb", str(plain),
                 "--now", AFTER.isoformat()]) == 1
    assert "name it: DuckDBSource(path, table=...) (on the command line, --table)" in (
        capsys.readouterr().err)
    assert main(["fill", "--db", str(db), "--duckdb", str(plain), "--table", "prices",
                 "--now", AFTER.isoformat()]) == 0
    assert "filled 30 bars for 1 symbol with gaps" in capsys.readouterr().out


def test_archive_source_reads_a_vendor_dump_without_the_optional_columns(tmp_path, capsys):
    """A vendor's day files with the required columns (in any case), no vwap or trade_count
    and a column of their own: the bars come with vwap and trade_count null. A file without
    a required column is an error naming it."""
    from warehouse.cli import main

    vendor = tmp_path / "vendor"
    day = vendor / f"date={DAY.isoformat()}"
    day.mkdir(parents=True)
    dump = FULL.select(["symbol", "ts", "open", "high", "low", "close", "volume"])
    dump = dump.rename_columns(["Symbol", "TS", "Open", "High", "Low", "Close", "Volume"])
    pq.write_table(dump.append_column("exchange", pa.array(["XNAS"] * dump.num_rows)),
                   day / "bars.parquet")
    got = ArchiveSource(vendor).fetch("AAPL", START, END)
    assert got.column_names == list(FULL.column_names)
    assert got["ts"].equals(expected_hole()["ts"])
    assert got["vwap"].null_count == got["trade_count"].null_count == 30
    db = missing_the_hole(tmp_path / "w.duckdb")
    assert main(["fill", "--db", str(db), "--archive", str(vendor),
                 "--now", AFTER.isoformat()]) == 0
    assert "filled 30 bars for 1 symbol with gaps" in capsys.readouterr().out
    pq.write_table(dump.drop_columns(["Volume"]), day / "bars.parquet")
    with pytest.raises(StoreError, match=r"no column volume among \['Symbol', 'TS'"):
        ArchiveSource(vendor).fetch("AAPL", START, END)


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
