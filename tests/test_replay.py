"""Multi-day replay: sessions fed in time order, each sealed, the next started with history."""

from __future__ import annotations

import gzip
import random
import time
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse import Calendar, InvalidBarError, Warehouse, WarehouseError
from warehouse.archive import read_manifest, verify_archive
from warehouse.cli import main
from warehouse.ingest import input_files
from warehouse.replay import read_bars, replay, sessions_of
from warehouse.sample import generate_sessions

XNYS = Calendar("XNYS")
WEEK = [date(2025, 11, 24), date(2025, 11, 25), date(2025, 11, 26), date(2025, 11, 28)]


@pytest.fixture(scope="module")
def week() -> list[pa.Table]:
    """Thanksgiving week: four sessions (the 28th closes early), 12 symbols."""
    return generate_sessions(XNYS, WEEK[0], 4, 12)


def keys(table: pa.Table) -> list[tuple[str, int]]:
    return sorted(zip(table.column("symbol").to_pylist(),
                      table.column("ts").cast(pa.int64()).to_pylist(), strict=True))


def test_generated_week_follows_the_calendar(week: list[pa.Table]) -> None:
    assert [t.num_rows for t in week] == [12 * 390] * 3 + [12 * 210]
    for day, table in zip(WEEK, week, strict=True):
        stamps = set(table.column("ts").cast(pa.int64()).to_pylist())
        assert stamps == set(XNYS.minutes(day).tolist())


def test_replay_seals_each_session_in_order_with_history_at_each_start(
    tmp_path: Path, week: list[pa.Table]
) -> None:
    shuffled = pa.concat_tables(week)
    order = list(range(shuffled.num_rows))
    random.Random(3).shuffle(order)
    shuffled = shuffled.take(order)  # any arrival order: replay feeds in time order
    seen: list[tuple[date, int, int]] = []
    starts: list[tuple[date, int]] = []
    archive = tmp_path / "archive"
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None, archive=archive) as wh:
        original = wh.start_session

        def start(*args: object, **kwargs: object) -> object:
            session = original(*args, **kwargs)  # type: ignore[arg-type]
            trailing = wh.trailing(week[0].column("symbol")[0].as_py())
            starts.append((session.date, 0 if trailing is None else trailing.sessions))
            return session

        wh.start_session = start  # type: ignore[method-assign]
        result = replay(wh, shuffled, progress=lambda d, n, t: seen.append((d, n, t)))
        assert wh.session is not None
        assert wh.session.status == "sealed"
        assert wh.symbols() == []
    assert result.sessions == tuple(WEEK)
    assert result.bars == shuffled.num_rows
    assert starts == [(WEEK[0], 0), (WEEK[1], 1), (WEEK[2], 2), (WEEK[3], 3)]
    assert seen[-1] == (WEEK[3], 12 * 210, 12 * 210)
    assert [n for d, n, _ in seen if d == WEEK[0]] == [12 * m for m in range(1, 391)]
    manifest = read_manifest(archive)["sessions"]
    assert [s["date"] for s in manifest] == [d.isoformat() for d in WEEK]
    assert verify_archive(archive) == []
    for day, table in zip(WEEK, week, strict=True):
        stored = pq.ParquetFile(archive / f"date={day}" / "bars.parquet").read()
        assert keys(stored) == keys(table)
    frame = pl.read_parquet(archive / "**" / "*.parquet", hive_partitioning=True)
    assert frame.height == sum(t.num_rows for t in week)
    counted = duckdb.sql(f"SELECT count(*) FROM read_parquet('{archive}/*/*.parquet')")
    assert counted.fetchall() == [(frame.height,)]


def test_paced_replay_waits_bar_time_over_speed(tmp_path: Path, week: list[pa.Table]) -> None:
    waits: list[float] = []
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        started = time.monotonic()
        replay(wh, week[3].slice(0, 12 * 30), speed=600.0, sleep=waits.append)
        took = time.monotonic() - started
    # 29 minutes of bar time after the first, at 600x: 2.9 s. The sleep here returns at once,
    # so each wait is the whole way from now to its minute's due time, less the time the feed
    # itself took to get there (however loaded the machine).
    assert len(waits) == 29
    assert waits == sorted(waits)
    assert 29 * 60 / 600 - took <= waits[-1] <= 29 * 60 / 600


def test_bars_outside_every_session_are_refused_before_anything_is_fed(
    tmp_path: Path, week: list[pa.Table]
) -> None:
    holiday = XNYS.window(WEEK[2]).open + 24 * 3_600 * 1_000_000  # Thanksgiving, 14:30Z
    bad = pa.table({"symbol": ["ZZ"], "ts": pa.array([holiday], pa.int64()),
                    "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5],
                    "volume": [1.0]})
    batch = pa.concat_tables([week[0].select(bad.column_names).cast(bad.schema), bad])
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        with pytest.raises(InvalidBarError, match=r"falls on Thu 2025-11-27 in America/New_York, "
                           r"which is no session of XNYS \(a holiday or a weekend\); 1 bar in "
                           r"no session, nothing was fed"):
            replay(wh, batch)
        assert wh.session is None
        assert wh.symbols() == []


def test_a_bar_outside_regular_hours_names_the_flag_that_takes_it(
    tmp_path: Path, week: list[pa.Table]
) -> None:
    early = XNYS.window(WEEK[0]).open - 30 * 60 * 1_000_000  # 09:00 New York, pre-market
    bad = pa.table({"symbol": ["ZZ", "ZZ"], "ts": pa.array([early, early + 60_000_000]),
                    "open": [1.0] * 2, "high": [2.0] * 2, "low": [0.5] * 2, "close": [1.5] * 2,
                    "volume": [1.0] * 2})
    with pytest.raises(InvalidBarError, match=r"outside the regular hours of XNYS's session "
                       r"2025-11-24 \(pre- and post-market bars need --extended-hours; "
                       r"extended_hours=True in Python\); 2 bars in no session"):
        sessions_of(bad, XNYS)
    assert sessions_of(bad, Calendar("XNYS", extended_hours=True)) == [WEEK[0]]


def test_cli_replay_of_a_holiday_bar_leaves_no_file_behind(tmp_path: Path, capsys) -> None:
    thanksgiving = XNYS.window(WEEK[2]).open + 24 * 3_600 * 1_000_000
    stamp = pa.array([thanksgiving], pa.timestamp("us", "UTC"))
    pq.write_table(pa.table({"symbol": ["ZZ"], "ts": stamp,
                             "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5],
                             "volume": [1.0]}), tmp_path / "day.parquet")
    db, archive = tmp_path / "out" / "w.duckdb", tmp_path / "out" / "archive"
    assert main(["replay", str(tmp_path / "day.parquet"), "--db", str(db), "--archive",
                 str(archive)]) == 1
    assert "which is no session of XNYS" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_read_bars_takes_parquet_and_csv_files_and_folders(
    tmp_path: Path, week: list[pa.Table]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(week[0], folder / "a.parquet")
    pl.from_arrow(week[1]).write_csv(folder / "b.csv")  # type: ignore[union-attr]
    (folder / "_notes.csv").write_text("not bars\n")  # skipped, as dataset readers do
    table = read_bars([folder])
    assert keys(table) == sorted(keys(week[0]) + keys(week[1]))
    with pytest.raises(WarehouseError, match="does not exist"):
        read_bars([tmp_path / "absent"])
    (tmp_path / "bad.csv").write_text("symbol,when\nES,yesterday\n")
    with pytest.raises(WarehouseError, match=r"bad\.csv"):
        read_bars([tmp_path / "bad.csv"])


def test_replay_takes_every_file_ingest_takes_whatever_the_case_of_its_suffix(
    tmp_path: Path, week: list[pa.Table], capsys: pytest.CaptureFixture[str]
) -> None:
    days = [table.slice(0, 12 * 20) for table in week[:3]]  # each session's first 20 minutes
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(days[0], folder / "DAY1.PARQUET")
    pl.from_arrow(days[1]).write_csv(folder / "DAY2.CSV")  # type: ignore[union-attr]
    text = pl.from_arrow(days[2]).write_csv().encode()  # type: ignore[union-attr]
    (folder / "day3.csv.gz").write_bytes(gzip.compress(text))
    files = input_files([folder])
    assert [f.name for f in files] == ["DAY1.PARQUET", "DAY2.CSV", "day3.csv.gz"]
    assert keys(read_bars([folder])) == sorted(keys(days[0]) + keys(days[1]) + keys(days[2]))
    archive = tmp_path / "archive"
    assert main(["replay", str(folder), "--db", str(tmp_path / "wh.duckdb"), "--archive",
                 str(archive)]) == 0
    assert "replayed 720 bars of 3 sessions" in capsys.readouterr().out
    assert [s["date"] for s in read_manifest(archive)["sessions"]] == [
        d.isoformat() for d in WEEK[:3]]


def test_cli_replays_generated_sessions_and_files(
    tmp_path: Path, week: list[pa.Table], capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive"
    assert main(["replay", "--generate", "3", "--symbols", "5", "--db",
                 str(tmp_path / "gen.duckdb"), "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "replayed 5,850 bars of 3 sessions" in out
    assert [s["date"] for s in read_manifest(archive)["sessions"]] == [
        "2025-11-24", "2025-11-25", "2025-11-26"]
    files = tmp_path / "files"
    files.mkdir()
    pq.write_table(week[3], files / "friday.parquet")
    assert main(["replay", str(files), "--db", str(tmp_path / "f.duckdb"), "--archive",
                 str(tmp_path / "other")]) == 0
    assert "sealed 2025-11-28" in capsys.readouterr().out
    assert main(["replay", "--db", str(tmp_path / "x.duckdb"), "--archive",
                 str(tmp_path / "x")]) == 1
    assert "pass input files or folders, or --generate N" in capsys.readouterr().err


def test_cli_replay_takes_the_calendar_of_the_session_the_file_holds(
    tmp_path: Path, capsys
) -> None:
    db, archive = tmp_path / "w.duckdb", tmp_path / "archive"
    xlon = Calendar("XLON")
    with Warehouse(db, calendar="XLON", archive=archive) as wh:
        wh.start_session(date(2025, 11, 26))
    data = tmp_path / "next.parquet"
    pq.write_table(generate_sessions(xlon, date(2025, 11, 27), 1, 2)[0], data)
    assert main(["replay", str(data), "--db", str(db), "--archive", str(archive), "-q"]) == 0
    with Warehouse(db, read_only=True) as wh:
        assert wh.session is not None
        assert (wh.session.calendar, wh.session.date) == ("XLON", date(2025, 11, 27))
    assert [e["date"] for e in read_manifest(archive)["sessions"]] == ["2025-11-26", "2025-11-27"]


def _vendor_rows(local: bool) -> list[str]:
    """Two symbols over two NYSE days (11-24, 11-25), three minutes each from the open."""
    rows = []
    for day in ("2025-11-24", "2025-11-25"):
        for minute in range(3):
            stamp = f"{day} 09:3{minute}:00" + ("" if local else "-05:00")
            for n, ticker in enumerate(("AAPL", "MSFT")):
                price = 100 + n * 50 + minute
                rows.append(f"{ticker},{stamp},{price},{price + 1},{price - 1},{price},"
                            f"{1000 + minute},{price + 0.25},{10 + minute}")
    return rows


@pytest.mark.parametrize("local", [False, True], ids=["offset", "naive-with-tz"])
def test_cli_replay_reads_a_vendor_csv_with_ingests_options(tmp_path: Path, local: bool) -> None:
    vendor = tmp_path / "vendor.csv"
    vendor.write_text("Ticker,DateTime,Open,High,Low,Close,Volume,VWAP,Trades\n"
                      + "\n".join(_vendor_rows(local)) + "\n")
    db, archive = tmp_path / "wh.duckdb", tmp_path / "archive"
    argv = ["replay", str(vendor), "--db", str(db), "--archive", str(archive), "-q"]
    if local:
        assert main(argv) == 1  # naive times without --tz: refused, nothing made
        assert not db.exists()
        argv += ["--tz", "America/New_York"]
    assert main(argv) == 0
    sessions = read_manifest(archive)["sessions"]
    assert [(s["date"], s["rows"], s["symbols"]) for s in sessions] == [
        ("2025-11-24", 6, 2), ("2025-11-25", 6, 2)]
    first = pl.read_parquet(archive / sessions[0]["file"]).sort("symbol", "ts")
    assert first["ts"][0].isoformat() == "2025-11-24T14:30:00+00:00"
    assert first["vwap"].to_list()[:3] == [100.25, 101.25, 102.25]
    assert first["trade_count"].to_list()[:3] == [10, 11, 12]


def test_cli_replay_renames_and_names_the_symbol_as_ingest_does(tmp_path: Path) -> None:
    data = tmp_path / "aapl.csv"
    data.write_text("When,o,h,l,c,v,Avg\n" + "\n".join(
        f"2025-11-24T09:3{m}:00-05:00,1,2,0.5,1.5,10,1.25" for m in range(3)) + "\n")
    db, archive = tmp_path / "wh.duckdb", tmp_path / "archive"
    assert main(["replay", str(data), "--db", str(db), "--archive", str(archive), "-q",
                 "--symbol", "AAPL", "--ts-col", "When", "--rename", "Avg=vwap"]) == 0
    bars = pl.read_parquet(archive / read_manifest(archive)["sessions"][0]["file"])
    assert bars["symbol"].unique().to_list() == ["AAPL"]
    assert bars["vwap"].to_list() == [1.25] * 3
    assert main(["replay", str(data), "--db", str(tmp_path / "x.duckdb"), "--archive",
                 str(archive), "--symbol", "A", "--symbol-col", "B"]) == 1
