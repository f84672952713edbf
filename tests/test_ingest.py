"""`warehouse.ingest`: vendor-shaped files and frames in, exactly the bars they hold out (#10).

Each test writes a small file the way a data vendor would (a single-symbol CSV with offset
timestamps, a multi-symbol daily CSV with a few crossed bars, epoch-second NDJSON, Parquet,
pandas frames) and checks the bars read back against ones worked out by hand.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import warehouse as warehouse_package
from warehouse import Bar, IngestError, Warehouse
from warehouse.cli import main
from warehouse.ingest import INGEST_REJECTS_SCHEMA, ingest, input_files, scan
from warehouse.schema import bars_from_table

ROOT = Path(warehouse_package.__file__).resolve().parent.parent
CHILD_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def micros(text: str) -> int:
    """An ISO timestamp with an offset, as `Bar.ts`."""
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


def stored(wh: Warehouse) -> list[Bar]:
    return bars_from_table(wh.sql("SELECT * EXCLUDE (origin) FROM bars ORDER BY symbol, ts"))


def count(wh: Warehouse) -> int:
    return int(wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py())


@pytest.fixture
def wh() -> Warehouse:
    with Warehouse(":memory:", flush_interval=None) as warehouse:
        yield warehouse


# -- vendor files -----------------------------------------------------------------------------

#: A year-of-minutes file as a vendor exports one symbol: local times with their offset (the
#: offset changes with daylight saving), capitalised headers, no symbol column.
SINGLE_SYMBOL_CSV = """\
datetime,Open,High,Low,Close,Volume
2024-03-08 09:30:00-05:00,170.0,170.5,169.8,170.2,120345
2024-03-08 09:31:00-05:00,170.2,170.9,170.1,170.8,98000
2024-03-11 09:30:00-04:00,172.1,172.4,171.6,172.0,200170974
"""


def test_single_symbol_csv_with_offset_timestamps_reads_back_exactly(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = tmp_path / "AAPL.csv"
    path.write_text(SINGLE_SYMBOL_CSV)
    result = ingest(wh, path, symbol="AAPL")
    assert (result.rows, result.added, result.rejected) == (3, 3, 0)
    assert stored(wh) == [
        Bar("AAPL", micros("2024-03-08T14:30:00Z"), 170.0, 170.5, 169.8, 170.2, 120345.0),
        Bar("AAPL", micros("2024-03-08T14:31:00Z"), 170.2, 170.9, 170.1, 170.8, 98000.0),
        Bar("AAPL", micros("2024-03-11T13:30:00Z"), 172.1, 172.4, 171.6, 172.0, 200170974.0),
    ]


#: S&P 500 daily bars as a vendor ships them: one row per symbol and date, an extra column,
#: two crossed bars (rows 3 and 5: an open or a close outside [low, high]) and a price that is
#: not a number (row 6).
DAILY_CSV = """\
Date,Symbol,Open,High,Low,Close,Adj Close,Volume
2024-01-02,AAPL,187.15,188.44,183.89,185.64,185.40,82488700
2024-01-02,MSFT,373.86,375.90,366.77,370.87,369.10,25258600
2024-01-03,AAPL,189.00,185.88,183.43,184.25,184.00,58414500
2024-01-03,MSFT,369.01,373.26,368.51,370.60,369.00,23083500
2024-01-04,AAPL,182.15,183.09,180.88,179.00,181.70,71983600
2024-01-04,MSFT,n/a,373.10,366.50,367.94,366.10,20901500
2024-01-05,MSFT,368.97,372.06,366.50,367.75,366.00,20987000
"""
DAILY_VALID = {1, 2, 4, 7}  # rows (from 1) that are bars


def daily_bars() -> list[Bar]:
    rows = [line.split(",") for line in DAILY_CSV.splitlines()[1:]]
    return sorted(
        (
            Bar(
                r[1],
                micros(f"{r[0]}T00:00:00-05:00"),
                float(r[2]),
                float(r[3]),
                float(r[4]),
                float(r[5]),
                float(r[7]),
            )
            for i, r in enumerate(rows, 1)
            if i in DAILY_VALID
        ),
        key=lambda b: (b.symbol, b.ts),
    )


@pytest.fixture
def daily(tmp_path: Path) -> Path:
    path = tmp_path / "sp500_daily.csv"
    path.write_text(DAILY_CSV)
    return path


def test_daily_csv_with_crossed_bars_skip_stores_the_valid_rows(daily: Path, wh: Warehouse) -> None:
    result = ingest(wh, daily, tz="America/New_York", on_invalid="skip")
    assert (result.rows, result.added, result.rejected) == (7, 4, 3)
    assert result.rejects.num_rows == 0  # skip keeps no list
    assert result.ignored == {str(daily): ("Adj Close",)}
    assert stored(wh) == daily_bars()


def test_daily_csv_with_crossed_bars_report_lists_file_row_column_and_reason(
    daily: Path, wh: Warehouse
) -> None:
    result = ingest(wh, daily, tz="America/New_York", on_invalid="report")
    rejects = result.rejects
    assert rejects.schema == INGEST_REJECTS_SCHEMA
    assert rejects.select(["file", "row", "column", "field", "value", "reason"]).to_pylist() == [
        {
            "file": str(daily),
            "row": 3,
            "column": "Open",
            "field": "open",
            "value": "189.0",
            "reason": "189.0 is outside [low 183.43, high 185.88]",
        },
        {
            "file": str(daily),
            "row": 5,
            "column": "Close",
            "field": "close",
            "value": "179.0",
            "reason": "179.0 is outside [low 180.88, high 183.09]",
        },
        {
            "file": str(daily),
            "row": 6,
            "column": "Open",
            "field": "open",
            "value": "n/a",
            "reason": "'n/a' is not a number",
        },
    ]
    assert rejects.column("symbol").to_pylist() == ["AAPL", "AAPL", "MSFT"]
    assert stored(wh) == daily_bars()


def test_daily_csv_with_crossed_bars_raise_stores_nothing_naming_the_first(
    daily: Path, wh: Warehouse
) -> None:
    with pytest.raises(IngestError) as info:
        ingest(wh, [daily], tz="America/New_York")
    error = info.value
    assert (error.file, error.row, error.column) == (str(daily), 3, "Open")
    assert str(error).startswith(f"{daily}: row 3, column 'Open': bar 'AAPL' 2024-01-03 ")
    assert "open 189.0 is outside [low 183.43, high 185.88]" in str(error)
    assert count(wh) == 0


def test_daily_csv_without_a_zone_is_refused_saying_to_pass_one(daily: Path, wh: Warehouse) -> None:
    with pytest.raises(
        IngestError,
        match=r"row 1, column 'Date': '2024-01-02' has no UTC "
        r"offset; say the zone .*--tz",
    ):
        ingest(wh, daily, on_invalid="skip")  # the input as a whole: whatever on_invalid says
    assert count(wh) == 0


def write_ndjson(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


#: Bars as a streaming API's history endpoint returns them: epoch seconds, one-letter keys.
EPOCH_ROWS = [
    {
        "S": "SPY",
        "t": 1732199400,
        "o": 590.1,
        "h": 590.6,
        "l": 589.9,
        "c": 590.4,
        "v": 51200,
        "n": 410,
        "vw": 590.31,
    },
    {
        "S": "SPY",
        "t": 1732199460,
        "o": 590.4,
        "h": 590.7,
        "l": 590.2,
        "c": 590.5,
        "v": 40100,
        "n": 322,
        "vw": 590.44,
    },
]


def test_epoch_second_ndjson_with_its_unit_reads_back_exactly(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = write_ndjson(tmp_path / "spy.ndjson", EPOCH_ROWS)
    result = ingest(wh, path, ts_unit="s")
    assert result.added == 2
    assert stored(wh) == [
        Bar("SPY", 1732199400 * 1_000_000, 590.1, 590.6, 589.9, 590.4, 51200.0, 590.31, 410),
        Bar("SPY", 1732199460 * 1_000_000, 590.4, 590.7, 590.2, 590.5, 40100.0, 590.44, 322),
    ]
    assert wh.latest("SPY").time == datetime(2024, 11, 21, 14, 31, tzinfo=UTC)


def test_epoch_seconds_without_a_unit_never_become_1970_microseconds(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = write_ndjson(tmp_path / "spy.ndjson", EPOCH_ROWS)
    with pytest.raises(
        IngestError,
        match=r"row 1, column 't': holds integer timestamps and no "
        r"unit was said.*look like epoch seconds \(1732199400 is 2024-11-21 "
        r"14:30:00Z in seconds\): --ts-unit s",
    ):
        ingest(wh, path, on_invalid="report")
    assert count(wh) == 0


@pytest.mark.parametrize(
    ("unit", "looks"), [("ms", "seconds"), ("us", "seconds"), ("ns", "seconds")]
)
def test_a_unit_that_does_not_fit_the_values_is_refused(
    tmp_path: Path, wh: Warehouse, unit: str, looks: str
) -> None:
    path = write_ndjson(tmp_path / "spy.ndjson", EPOCH_ROWS)
    with pytest.raises(
        IngestError,
        match=rf"column 't': --ts-unit {unit} does not fit the "
        rf"values: .*look like epoch {looks} \(--ts-unit s\)",
    ):
        ingest(wh, path, ts_unit=unit)  # type: ignore[arg-type]
    assert count(wh) == 0


@pytest.mark.parametrize(("unit", "scale"), [("ms", 1_000), ("us", 1), ("ns", 0.001)])
def test_epochs_in_each_unit_land_on_the_same_instant(
    tmp_path: Path, wh: Warehouse, unit: str, scale: float
) -> None:
    rows = [{**r, "t": int(r["t"] * 1_000_000 / scale)} for r in EPOCH_ROWS]  # type: ignore[operator]
    ingest(wh, write_ndjson(tmp_path / "spy.ndjson", rows), ts_unit=unit)  # type: ignore[arg-type]
    assert [b.ts for b in stored(wh)] == [1732199400 * 1_000_000, 1732199460 * 1_000_000]


@pytest.mark.parametrize("bad", ["-inf", "inf", "nan"])
def test_a_non_finite_epoch_is_a_bad_row_and_never_decides_the_unit(
    tmp_path: Path, wh: Warehouse, bad: str
) -> None:
    path = tmp_path / "spy.csv"
    path.write_text(
        "symbol,ts,open,high,low,close,volume\n"
        "SPY,1763735400.0,1,2,0.5,1.5,10\n"
        f"SPY,{bad},1,2,0.5,1.5,10\n"
        "SPY,1763735460.0,1,2,0.5,1.5,10\n"
    )
    # The finite values are plainly seconds: without the unit the file is refused, whatever
    # on_invalid says, rather than read as microseconds of 1970.
    with pytest.raises(IngestError, match=r"row 1, column 'ts': .*look like epoch seconds"):
        ingest(wh, path, on_invalid="skip")
    assert count(wh) == 0
    result = ingest(wh, path, ts_unit="s", on_invalid="report")
    assert [b.ts for b in stored(wh)] == [1763735400_000_000, 1763735460_000_000]
    assert result.rejects.select(["row", "column", "field", "value"]).to_pylist() == [
        {"row": 2, "column": "ts", "field": "ts", "value": bad}
    ]
    assert result.rejects.column("reason").to_pylist() == [f"{bad!r} is not a finite number"]


#: Integers no double holds exactly: nanoseconds a microsecond short of a minute (and before
#: 1970, where flooring and truncating differ), counts past 2**53.
EXACT = [
    (1763735579999999999, 9007199254740993),
    (1763735580000000001, 2**63 - 1),
    (-1000000001, 9007199254740995),
]


def exact_bars() -> list[tuple[int, int]]:
    """What EXACT stores: ts floored to microseconds, the count as it is."""
    return sorted((ns // 1000, n) for ns, n in EXACT)


def test_integers_in_a_csv_are_read_exactly_never_through_a_double(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = tmp_path / "ns.csv"
    path.write_text(
        "symbol,ts,open,high,low,close,volume,trade_count\n"
        + "".join(f"A,{ns},1,2,0.5,1.5,10,{n}\n" for ns, n in EXACT)
    )
    ingest(wh, path, ts_unit="ns")
    assert [(b.ts, b.trade_count) for b in stored(wh)] == exact_bars()
    held = wh.sql("SELECT ts FROM bars WHERE trade_count = 9007199254740993")
    assert held["ts"][0].as_py() == datetime(2025, 11, 21, 14, 32, 59, 999999, tzinfo=UTC)


def test_integer_nanoseconds_of_a_frame_are_read_exactly(wh: Warehouse) -> None:
    frame = pl.DataFrame(
        {
            "symbol": ["A"] * len(EXACT),
            "ts": [ns for ns, _ in EXACT],
            "open": [1.0] * len(EXACT),
            "high": [2.0] * len(EXACT),
            "low": [0.5] * len(EXACT),
            "close": [1.5] * len(EXACT),
            "volume": [10.0] * len(EXACT),
            "trade_count": [n for _, n in EXACT],
        }
    )
    ingest(wh, frame, ts_unit="ns")
    assert [(b.ts, b.trade_count) for b in stored(wh)] == exact_bars()


def test_integers_that_plainly_are_microseconds_need_no_unit(tmp_path: Path, wh: Warehouse) -> None:
    rows = [{**r, "t": r["t"] * 1_000_000} for r in EPOCH_ROWS]  # type: ignore[operator]
    ingest(wh, write_ndjson(tmp_path / "spy.ndjson", rows))
    assert [b.ts for b in stored(wh)] == [1732199400 * 1_000_000, 1732199460 * 1_000_000]


def test_parquet_with_aware_timestamps_and_a_folder_of_files(tmp_path: Path, wh: Warehouse) -> None:
    from warehouse.sample import generate_session

    folder = tmp_path / "vendor"
    folder.mkdir()
    session = generate_session(6, 30)
    pq.write_table(session.slice(0, 100), folder / "part-0.parquet")
    pq.write_table(session.slice(100), folder / "part-1.parquet")
    (folder / "_SUCCESS.parquet").write_bytes(b"")  # hidden by its underscore, as Spark's
    result = ingest(wh, folder)
    assert result.files == (str(folder / "part-0.parquet"), str(folder / "part-1.parquet"))
    assert stored(wh) == sorted(bars_from_table(session), key=lambda b: (b.symbol, b.ts))


def test_glob_patterns_expand_in_order(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "c.parquet", "notes.md"):
        (tmp_path / name).write_text("x")
    assert input_files([str(tmp_path / "*.csv")]) == [tmp_path / "a.csv", tmp_path / "b.csv"]
    assert input_files([str(tmp_path / "*")]) == [
        tmp_path / "a.csv",
        tmp_path / "b.csv",
        tmp_path / "c.parquet",
    ]
    with pytest.raises(IngestError, match=r"\*\.ndjson: matches no"):
        input_files([str(tmp_path / "*.ndjson")])


def bar_csv(path: Path, symbol: str, minute: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("symbol,ts,open,high,low,close,volume\n"
                    f"{symbol},2025-11-21T14:{30 + minute}:00Z,10,11,9,10.5,100\n")
    return path


def test_each_file_is_read_once_whatever_names_reach_it(tmp_path: Path, wh: Warehouse) -> None:
    data = tmp_path / "data"
    first = bar_csv(data / "a.csv", "ES")
    (data / "b_link.csv").hardlink_to(first)
    bar_csv(data / "sub" / "c.csv", "NQ")
    (data / "sub" / "up").symlink_to(data, target_is_directory=True)  # a loop
    (data / "zlink").symlink_to(data / "sub", target_is_directory=True)  # a second name
    expected = [first, data / "sub" / "c.csv"]
    assert input_files([data]) == expected
    assert input_files([str(data / "**" / "*.csv")]) == expected
    assert input_files([first, data, str(data / "**" / "*.csv"), data / "b_link.csv"]) == [
        first, data / "sub" / "c.csv"]
    result = ingest(wh, [str(data / "**" / "*.csv"), data])
    assert result.files == tuple(map(str, expected))
    assert result.rows == 2
    assert result.replaced == 0
    assert [(b.symbol, b.ts) for b in stored(wh)] == [("ES", micros("2025-11-21T14:30:00Z")),
                                                      ("NQ", micros("2025-11-21T14:30:00Z"))]


def test_a_glob_over_two_symlink_loops_ends_reading_each_file_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name, symbol in (("x", "ES"), ("y", "NQ")):
        bar_csv(data / name / f"{name}.csv", symbol)
        (data / name / "up").symlink_to(data, target_is_directory=True)
    # A glob that follows every link would walk 2^40 paths: in a child, so that it cannot hang
    # the suite, bounded by a timeout far above the second or so it takes.
    done = subprocess.run(
        [sys.executable, "-m", "warehouse", "ingest", str(data / "**" / "*.csv"), "--db",
         str(tmp_path / "wh.duckdb")],
        cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ingested 2 bars from 2 files"), done.stdout


# -- frames -----------------------------------------------------------------------------------


def test_pandas_frame_with_naive_local_times_and_vendor_names(wh: Warehouse) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "Ticker": ["ES", "ES"],
            "Time": pd.to_datetime(["2025-11-21 09:30", "2025-11-21 09:31"]),  # naive, New York
            "OPEN": [6600.0, 6601.0],
            "HIGH": [6602.0, 6603.0],
            "LOW": [6599.0, 6600.5],
            "CLOSE": [6601.0, 6602.0],
            "Vol": [1200, 900],
        }
    )
    result = ingest(wh, frame, tz="America/New_York", rename={"Vol": "volume"})
    assert result.files == ("<frame>",)
    assert stored(wh) == [
        Bar("ES", micros("2025-11-21T14:30:00Z"), 6600.0, 6602.0, 6599.0, 6601.0, 1200.0),
        Bar("ES", micros("2025-11-21T14:31:00Z"), 6601.0, 6603.0, 6600.5, 6602.0, 900.0),
    ]
    with pytest.raises(IngestError, match=r"column 'Time': holds times without a zone"):
        ingest(wh, frame, rename={"Vol": "volume"})


def test_pandas_frame_with_aware_times_goes_in_as_is(wh: Warehouse) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "symbol": ["NQ"],
            "ts": pd.to_datetime(["2025-11-21T09:30:00-05:00"]),
            "open": [1.0],
            "high": [2.0],
            "low": [0.5],
            "close": [1.5],
            "volume": [10.0],
        }
    )
    ingest(wh, frame)
    assert stored(wh) == [Bar("NQ", micros("2025-11-21T14:30:00Z"), 1.0, 2.0, 0.5, 1.5, 10.0)]


def test_polars_frame_with_epoch_milliseconds(wh: Warehouse) -> None:
    frame = pl.DataFrame(
        {
            "sym": ["CL"],
            "t": [1732199400000],
            "o": [70.0],
            "h": [70.5],
            "l": [69.5],
            "c": [70.2],
            "v": [5],
        }
    )
    ingest(wh, frame, ts_unit="ms")
    assert stored(wh) == [Bar("CL", 1732199400 * 1_000_000, 70.0, 70.5, 69.5, 70.2, 5.0)]


# -- columns ----------------------------------------------------------------------------------


def test_columns_match_without_regard_to_case_and_options_name_others(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = tmp_path / "odd.csv"
    path.write_text(
        "WHEN,Instrument,OPEN,HIGH,LOW,CLOSE,Shares,Date\n"
        "2024-11-21T14:30:00Z,AAPL,1,2,0.5,1.5,10,2024-11-21\n"
    )
    result = ingest(wh, path, ts_col="when", symbol_col="INSTRUMENT", rename={"shares": "volume"})
    assert result.ignored == {str(path): ("Date",)}
    assert stored(wh) == [Bar("AAPL", micros("2024-11-21T14:30:00Z"), 1.0, 2.0, 0.5, 1.5, 10.0)]


def test_two_columns_that_could_be_the_timestamp_are_refused_by_name(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = tmp_path / "two.csv"
    path.write_text(
        "datetime,timestamp,open,high,low,close,volume\n"
        "2024-11-21T14:30:00Z,2024-11-21T14:30:05Z,1,2,0.5,1.5,10\n"
    )
    with pytest.raises(
        IngestError,
        match=r"columns 'timestamp' and 'datetime' could each be ts; name "
        r"the one to take \(--ts-col\)",
    ):
        ingest(wh, path, symbol="X")


def test_a_missing_column_is_refused_listing_the_files_columns(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = tmp_path / "novol.csv"
    path.write_text("ts,symbol,open,high,low,close\n2024-11-21T14:30:00Z,A,1,2,0.5,1.5\n")
    with pytest.raises(
        IngestError,
        match=rf"^{path}: has no column for volume \(its columns "
        r"are 'ts', 'symbol', .*\); pass --rename NAME=volume$",
    ):
        ingest(wh, path)
    with pytest.raises(IngestError, match=r"has no column 'Price' \(named for close\)"):
        ingest(wh, path, rename={"Price": "close"})


def test_ts_format_reads_other_layouts(tmp_path: Path, wh: Warehouse) -> None:
    path = tmp_path / "us.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n11/21/2024 09:30,1,2,0.5,1.5,10\n")
    ingest(wh, path, symbol="X", ts_format="%m/%d/%Y %H:%M", tz="America/New_York")
    assert stored(wh)[0].ts == micros("2024-11-21T14:30:00Z")


# -- separate date and time columns --------------------------------------------------------------


def split_csv(path: Path, date_name: str = "Date", time_name: str = "Time") -> Path:
    """A vendor's intraday file: the date and the time of day in columns of their own."""
    path.write_text(
        f"{date_name},{time_name},Symbol,Open,High,Low,Close,Volume\n"
        "2025-11-21,09:30:00,AAPL,1,2,0.5,1.5,10\n"
        "2025-11-21,09:30:00,MSFT,3,4,2.5,3.5,20\n"
        "2025-11-21,09:31:00,AAPL,1,2,0.5,1.5,11\n"
        "2025-11-21,09:31:00,MSFT,3,4,2.5,3.5,21\n"
        "2025-11-24,09:30:00,AAPL,1,2,0.5,1.5,12\n"
    )
    return path


SPLIT_STORED = [
    ("AAPL", micros("2025-11-21T14:30:00Z")),
    ("AAPL", micros("2025-11-21T14:31:00Z")),
    ("AAPL", micros("2025-11-24T14:30:00Z")),
    ("MSFT", micros("2025-11-21T14:30:00Z")),
    ("MSFT", micros("2025-11-21T14:31:00Z")),
]


@pytest.mark.parametrize(
    ("date_name", "time_name"), [("Date", "Time"), ("date", "time"), ("TradeDate", "TradeTime")]
)
def test_a_date_column_and_a_time_column_are_combined_by_themselves(
    tmp_path: Path, wh: Warehouse, date_name: str, time_name: str
) -> None:
    path = split_csv(tmp_path / "split.csv", date_name, time_name)
    result = ingest(wh, path, tz="America/New_York")
    assert (result.added, result.replaced, result.ignored) == (5, 0, {})
    assert [(b.symbol, b.ts) for b in stored(wh)] == SPLIT_STORED


def test_time_col_names_the_time_of_day_of_a_frame_with_date_and_time_types(
    wh: Warehouse,
) -> None:
    frame = pl.DataFrame(
        {
            "session": [date(2025, 11, 21), date(2025, 11, 21)],
            "at": [time(9, 30), time(9, 31, 0, 500_000)],
            "o": [1.0, 1.0], "h": [2.0, 2.0], "l": [0.5, 0.5], "c": [1.5, 1.5], "v": [1.0, 2.0],
        }
    )
    ingest(wh, frame, symbol="ES", ts_col="session", time_col="at", tz="America/New_York")
    assert [b.ts for b in stored(wh)] == [
        micros("2025-11-21T14:30:00Z"),
        micros("2025-11-21T14:31:00.500000Z"),
    ]


def test_a_bad_time_of_day_names_both_columns(tmp_path: Path, wh: Warehouse) -> None:
    path = split_csv(tmp_path / "split.csv")
    path.write_text(path.read_text().replace("09:31:00,MSFT", "9h31,MSFT"))
    with pytest.raises(
        IngestError,
        match=r"row 4, column 'Date\+Time': '2025-11-21 9h31' is not a timestamp",
    ):
        ingest(wh, path, tz="America/New_York")


@pytest.mark.parametrize("on_invalid", ["raise", "skip", "report"])
def test_a_date_only_ts_that_collapses_a_days_bars_is_refused_suggesting_time_col(
    tmp_path: Path, wh: Warehouse, on_invalid: str
) -> None:
    path = split_csv(tmp_path / "split.csv")
    with pytest.raises(
        IngestError,
        match=r"split\.csv: column 'Date' holds dates without a time of day, and 4 of its 5 "
        r"rows share their symbol and date with another \(rows 1 and 3: 'AAPL' on "
        r"2025-11-21\); .*--time-col Time",
    ):
        ingest(wh, path, ts_col="Date", tz="America/New_York", on_invalid=on_invalid)  # type: ignore[arg-type]
    assert count(wh) == 0


def test_cli_time_col_and_the_collapse_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = split_csv(tmp_path / "split.csv", "Day", "Clock")
    db = tmp_path / "bars.duckdb"
    argv = ["ingest", str(path), "--db", str(db), "--tz", "America/New_York", "--quiet"]
    assert main([*argv, "--ts-col", "Day"]) == 1
    assert "--time-col" in capsys.readouterr().err
    assert not db.exists()
    assert main([*argv, "--ts-col", "Day", "--time-col", "Clock"]) == 0
    with Warehouse(db, read_only=True) as wh:
        assert [(b.symbol, b.ts) for b in stored(wh)] == SPLIT_STORED


# -- one symbol and ts twice in one ingest ------------------------------------------------------


TWICE_CSV = """\
symbol,ts,open,high,low,close,volume
AAPL,2025-11-21T14:30:00Z,1,2,0.5,1.5,10
AAPL,2025-11-21T14:31:00Z,1,2,0.5,1.5,11
MSFT,2025-11-21T14:30:00Z,3,4,2.5,3.5,20
AAPL,2025-11-21T09:31:00-05:00,1,2,0.5,1.5,99
"""


def test_two_rows_of_one_symbol_and_ts_raise_naming_both(tmp_path: Path, wh: Warehouse) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(TWICE_CSV)
    with pytest.raises(
        IngestError,
        match=r"twice\.csv: row 2, column 'ts': bar 'AAPL' 2025-11-21 14:31:00\.000000Z: ts is "
        r"also on row 4 \(one symbol and ts twice in one ingest\); .*--on-duplicate last",
    ):
        ingest(wh, path)
    assert count(wh) == 0


def test_two_rows_of_one_symbol_and_ts_are_both_refused_by_skip_and_report(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(TWICE_CSV)
    result = ingest(wh, path, on_invalid="report")
    assert (result.rows, result.added, result.rejected, result.replaced) == (4, 2, 2, 0)
    assert result.rejects.select(["file", "row", "column", "field"]).to_pylist() == [
        {"file": str(path), "row": 2, "column": "ts", "field": "ts"},
        {"file": str(path), "row": 4, "column": "ts", "field": "ts"},
    ]
    assert result.rejects.column("reason").to_pylist()[1].startswith("is also on row 2 (")
    assert [(b.symbol, b.volume) for b in stored(wh)] == [("AAPL", 10.0), ("MSFT", 20.0)]


def test_the_same_bar_in_two_files_of_one_ingest_names_the_other_file(
    tmp_path: Path, wh: Warehouse
) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(TWICE_CSV.rsplit("\n", 2)[0] + "\n")  # rows 1 to 3
    second.write_text("symbol,ts,open,high,low,close,volume\n" + TWICE_CSV.split("\n")[2] + "\n")
    with pytest.raises(IngestError, match=rf"a\.csv: row 2, .* is also on row 1 of {second}"):
        ingest(wh, [first, second], batch_rows=1)
    assert count(wh) == 0
    # A file and its copy: every row is one of two, and none is stored.
    copy = tmp_path / "copy.csv"
    copy.write_text(first.read_text())
    result = ingest(wh, [first, copy], on_invalid="report")
    assert (result.rows, result.added, result.rejected) == (6, 0, 6)
    assert result.rejects.column("reason").to_pylist()[0].startswith(f"is also on row 1 of {copy}")


def test_on_duplicate_last_keeps_the_last_row(tmp_path: Path, wh: Warehouse) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(TWICE_CSV)
    result = ingest(wh, path, on_duplicate="last")
    assert (result.rows, result.rejected, result.replaced) == (4, 0, 1)
    assert [(b.symbol, b.volume) for b in stored(wh)] == [
        ("AAPL", 10.0), ("AAPL", 99.0), ("MSFT", 20.0)
    ]


def test_cli_on_duplicate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(TWICE_CSV)
    db = tmp_path / "bars.duckdb"
    assert main(["ingest", str(path), "--db", str(db), "--quiet"]) == 1
    assert "is also on row 4" in capsys.readouterr().err
    assert not db.exists()
    assert main(["ingest", str(path), "--db", str(db), "--on-duplicate", "last", "--quiet"]) == 0
    with Warehouse(db, read_only=True) as wh:
        assert count(wh) == 3


# -- local times a daylight-saving change repeats or skips ---------------------------------------


def local_minutes(day: date, hours: list[int]) -> list[str]:
    """Naive local minute stamps: each hour of ``hours`` (repeats allowed) of ``day``."""
    return [f"{day} {hour:02d}:{minute:02d}:00" for hour in hours for minute in range(60)]


def local_csv(path: Path, stamps: list[str]) -> Path:
    path.write_text(
        "symbol,datetime,open,high,low,close,volume\n"
        + "".join(f"AAPL,{stamp},1,2,0.5,1.5,10\n" for stamp in stamps)
    )
    return path


#: New York's fall-back night of 2025-11-02 as a feed writes it in naive local time: 00:00 to
#: 02:59, the hour from 01:00 twice (first in EDT, 05:00Z, then in EST, 06:00Z): 240 rows.
FALL_BACK = local_minutes(date(2025, 11, 2), [0, 1, 1, 2])
#: The spring-forward night of 2025-03-09: 02:00 to 02:59 never happen in New York.
SPRING_FORWARD = local_minutes(date(2025, 3, 9), [1, 2, 3])


def test_a_repeated_local_time_is_a_bad_row_naming_both_instants(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = local_csv(tmp_path / "night.csv", FALL_BACK)
    with pytest.raises(
        IngestError,
        match=r"night\.csv: row 61, column 'datetime': '2025-11-02 01:00:00' is ambiguous in "
        r"America/New_York: 2025-11-02 05:00:00Z or 06:00:00Z .*--ambiguous earliest or latest",
    ):
        ingest(wh, path, tz="America/New_York")
    assert count(wh) == 0
    result = ingest(wh, path, tz="America/New_York", on_invalid="report")
    assert (result.rows, result.added, result.rejected, result.replaced) == (240, 120, 120, 0)
    assert result.rejects.column("row").to_pylist() == list(range(61, 181))
    assert set(result.rejects.column("field").to_pylist()) == {"ts"}
    assert [b.time for b in stored(wh)][58:62] == [
        datetime(2025, 11, 2, 4, 58, tzinfo=UTC),
        datetime(2025, 11, 2, 4, 59, tzinfo=UTC),
        datetime(2025, 11, 2, 7, 0, tzinfo=UTC),  # 02:00 EST
        datetime(2025, 11, 2, 7, 1, tzinfo=UTC),
    ]


@pytest.mark.parametrize(("rule", "hour"), [("earliest", 5), ("latest", 6)])
def test_a_rule_for_repeated_local_times_picks_one_instant(
    tmp_path: Path, wh: Warehouse, rule: str, hour: int
) -> None:
    path = local_csv(tmp_path / "night.csv", local_minutes(date(2025, 11, 2), [0, 1, 2]))
    result = ingest(wh, path, tz="America/New_York", ambiguous=rule)  # type: ignore[arg-type]
    assert (result.added, result.rejected) == (180, 0)
    times = [b.time for b in stored(wh)]
    assert times[60] == datetime(2025, 11, 2, hour, 0, tzinfo=UTC)
    assert times[-1] == datetime(2025, 11, 2, 7, 59, tzinfo=UTC)


def test_a_skipped_local_time_is_a_bad_row_whatever_the_rule(
    tmp_path: Path, wh: Warehouse
) -> None:
    path = local_csv(tmp_path / "night.csv", SPRING_FORWARD)
    for rule in ("invalid", "earliest", "latest"):
        with pytest.raises(
            IngestError,
            match=r"row 61, column 'datetime': '2025-03-09 02:00:00' does not exist in "
            r"America/New_York",
        ):
            ingest(wh, path, tz="America/New_York", ambiguous=rule)  # type: ignore[arg-type]
    result = ingest(wh, path, tz="America/New_York", on_invalid="skip")
    assert (result.added, result.rejected) == (120, 60)
    times = [b.time for b in stored(wh)]
    assert times[59:61] == [
        datetime(2025, 3, 9, 6, 59, tzinfo=UTC),  # 01:59 EST
        datetime(2025, 3, 9, 7, 0, tzinfo=UTC),  # 03:00 EDT
    ]


def test_naive_timestamps_of_a_frame_follow_the_same_rule(wh: Warehouse) -> None:
    frame = pl.DataFrame(
        {
            "ts": [datetime(2025, 11, 2, 0, 30), datetime(2025, 11, 2, 1, 30)],  # noqa: DTZ001
            "open": [1.0, 1.0],
            "high": [2.0, 2.0],
            "low": [0.5, 0.5],
            "close": [1.5, 1.5],
            "volume": [10.0, 10.0],
        }
    )
    with pytest.raises(IngestError, match=r"row 2, column 'ts': .* is ambiguous"):
        ingest(wh, frame, symbol="ES", tz="America/New_York")
    ingest(wh, frame, symbol="ES", tz="America/New_York", ambiguous="latest")
    assert [b.time for b in stored(wh)] == [
        datetime(2025, 11, 2, 4, 30, tzinfo=UTC),
        datetime(2025, 11, 2, 6, 30, tzinfo=UTC),
    ]


def test_cli_fall_back_night_exits_1_naming_the_row_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = local_csv(tmp_path / "night.csv", FALL_BACK)
    db = tmp_path / "bars.duckdb"
    assert main(["ingest", str(path), "--db", str(db), "--tz", "America/New_York"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "row 61, column 'datetime': '2025-11-02 01:00:00' is ambiguous" in err
    assert not db.exists()
    hours = local_csv(tmp_path / "hours.csv", local_minutes(date(2025, 11, 2), [0, 1, 2]))
    argv = ["ingest", str(hours), "--db", str(db), "--tz", "America/New_York", "--quiet"]
    assert main([*argv, "--ambiguous", "latest"]) == 0
    with Warehouse(db, read_only=True) as wh:
        assert count(wh) == 180
        assert stored(wh)[60].time == datetime(2025, 11, 2, 6, 0, tzinfo=UTC)


# -- bad input: one error naming file, row and column; nothing stored ----------------------------


@pytest.mark.parametrize(
    ("name", "content", "options", "match"),
    [
        ("missing.csv", None, {}, r"missing\.csv: does not exist"),
        (
            "damaged.parquet",
            b"PAR1 not really",
            {},
            r"damaged\.parquet: cannot be read as "
            r"parquet",
        ),
        ("bars.xlsx", b"x", {}, r"bars\.xlsx: is not a \.csv, \.parquet"),
        (
            "badts.csv",
            "ts,symbol,open,high,low,close,volume\n"
            "2024-11-21T14:30:00Z,A,1,2,0.5,1.5,10\nsoon,A,1,2,0.5,1.5,10\n",
            {},
            r"badts\.csv: row 2, column 'ts': 'soon' is not a timestamp",
        ),
        (
            "badunit.csv",
            "t,o,h,l,c,v\n1732199400,1,2,0.5,1.5,10\n",
            {"ts_unit": "ms"},
            r"row 1, column 't': --ts-unit ms does not fit",
        ),
        (
            "nozone.csv",
            "t,o,h,l,c,v\n2024-11-21 09:30,1,2,0.5,1.5,10\n",
            {"tz": "Mars/Base"},
            r"unknown time zone 'Mars/Base'",
        ),
        ("empty.csv", "", {}, r"empty\.csv: is empty$"),
        (
            "ragged.csv",
            "ts,symbol,open,high,low,close,volume\n2024-11-21T14:30:00Z,A,1,2,0.5,1.5,10\n"
            "2024-11-21T14:31:00Z,A,1,2,0.5,1.5,10,99\n",
            {},
            r"ragged\.csv: cannot be split into columns",
        ),
    ],
    ids=[
        "missing",
        "not-parquet",
        "unknown-suffix",
        "unparsable-ts",
        "wrong-unit",
        "bad-zone",
        "empty",
        "ragged",
    ],
)
def test_bad_input_raises_one_error_naming_where_and_stores_nothing(
    tmp_path: Path,
    wh: Warehouse,
    name: str,
    content: str | bytes | None,
    options: dict[str, str],
    match: str,
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(SINGLE_SYMBOL_CSV)
    bad = tmp_path / name
    if isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        bad.write_text(content)
    # A good file first, read but not stored; options for the bad file alone go to it alone.
    files = [bad] if options else [good, bad]
    with pytest.raises(IngestError, match=match) as info:
        ingest(wh, files, symbol="AAPL", **options)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert count(wh) == 0  # the good file before it was read, and not stored


# -- batches ----------------------------------------------------------------------------------


def big_csv(path: Path, rows: int, bad_row: int | None = None) -> list[Bar]:
    """A CSV of ``rows`` one-minute bars of 7 symbols; ``bad_row`` (from 1) crossed."""
    start = micros("2025-11-21T14:30:00Z")
    bars = [
        Bar(
            f"S{i % 7}",
            start + (i // 7) * 60_000_000,
            10.0 + i % 5,
            11.0 + i % 5,
            9.0 + i % 5,
            10.5 + i % 5,
            float(i),
            None,
            i % 50,
        )
        for i in range(rows)
    ]
    lines = ["symbol,ts,open,high,low,close,volume,trade_count"]
    for i, b in enumerate(bars, 1):
        high = b.low - 1 if i == bad_row else b.high
        stamp = datetime.fromtimestamp(b.ts / 1e6, UTC).isoformat()
        lines.append(
            f"{b.symbol},{stamp},{b.open},{high},{b.low},{b.close},{b.volume},{b.trade_count}"
        )
    path.write_text("\n".join(lines) + "\n")
    return sorted(bars, key=lambda b: (b.symbol, b.ts))


def test_a_file_larger_than_a_batch_streams_through_spilled_batches(
    tmp_path: Path, wh: Warehouse
) -> None:
    expected = big_csv(tmp_path / "big.csv", 10_000)
    seen: list[tuple[str, int]] = []
    with scan(
        tmp_path / "big.csv",
        batch_rows=1_000,
        spill_bytes=100_000,
        progress=lambda phase, done: seen.append((phase, done)),
    ) as staged:
        assert staged._folder is not None  # beyond spill_bytes: waiting on disk
        spill = Path(staged._folder)
        assert staged.staged == 10_000
        result = staged.store(wh, progress=lambda phase, done: seen.append((phase, done)))
    assert not spill.exists()
    reads = [done for phase, done in seen if phase == "read"]
    assert reads == list(range(1_000, 10_001, 1_000))  # one batch at a time
    assert [done for phase, done in seen if phase == "store"][-1] == 10_000
    assert result.added == 10_000
    assert stored(wh) == expected


def test_row_numbers_count_across_batches(tmp_path: Path, wh: Warehouse) -> None:
    big_csv(tmp_path / "big.csv", 5_000, bad_row=3_777)
    with pytest.raises(IngestError, match=r"row 3777, column 'high': bar 'S3' "):
        ingest(wh, tmp_path / "big.csv", batch_rows=500)
    result = ingest(wh, tmp_path / "big.csv", batch_rows=500, on_invalid="report")
    assert result.rejects.column("row").to_pylist() == [3_777]
    assert result.added == 4_999


# -- sessions ---------------------------------------------------------------------------------


def test_rows_outside_the_open_session_follow_on_invalid(tmp_path: Path) -> None:
    path = tmp_path / "AAPL.csv"
    path.write_text(SINGLE_SYMBOL_CSV)
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.start_session(date(2024, 3, 8))  # only the first two bars are of it
        with pytest.raises(
            IngestError,
            match=r"row 3, column 'datetime': .*outside session "
            r"2024-03-08",
        ):
            ingest(wh, path, symbol="AAPL")
        assert count(wh) == 0
        result = ingest(wh, path, symbol="AAPL", on_invalid="report")
        assert result.added == 2
        assert result.rejects.select(["row", "field"]).to_pylist() == [{"row": 3, "field": "ts"}]


def test_bars_replacing_held_ones_are_counted(tmp_path: Path, wh: Warehouse) -> None:
    path = tmp_path / "AAPL.csv"
    path.write_text(SINGLE_SYMBOL_CSV)
    ingest(wh, path, symbol="AAPL")
    again = ingest(wh, path, symbol="AAPL")
    assert (again.added, again.replaced, count(wh)) == (3, 3, 3)
    assert np.isfinite(again.rate)


def test_a_record_batch_goes_in_like_a_table(wh: Warehouse) -> None:
    batch = pa.record_batch(
        {
            "symbol": ["A"],
            "ts": ["2024-11-21T14:30:00Z"],
            "open": [1.0],
            "high": [2.0],
            "low": [0.5],
            "close": [1.5],
            "volume": [3],
        }
    )
    assert ingest(wh, batch).added == 1


def test_ingest_result_repr_is_one_line(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("symbol,ts,open,high,low,close,volume,note\n"
                    "ES,2025-11-24T15:00:00Z,10,11,9,10.5,100,x\n"
                    "ES,2025-11-24T15:01:00Z,10,9,11,10.5,100,y\n")
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None) as wh:
        result = ingest(wh, path, on_invalid="report")
    text = repr(result)
    assert "\n" not in text
    assert re.fullmatch(r"IngestResult\(files=1, rows=2, added=1, rejected=1, replaced=0, "
                        r"ignored_columns=1, seconds=\d+\.\d{3}\)", text)
