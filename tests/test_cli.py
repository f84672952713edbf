import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from warehouse import Warehouse
from warehouse.cli import _parser, main
from warehouse.queries import load_queries
from warehouse.sample import generate_session


@pytest.fixture
def session_file(tmp_path):
    path = tmp_path / "session.parquet"
    pq.write_table(generate_session(5, 30), path)
    return path


@pytest.fixture
def db(tmp_path, session_file):
    path = tmp_path / "wh.duckdb"
    with Warehouse(path, flush_interval=None) as wh:
        wh.extend(pq.read_table(session_file))
    return path


def test_every_subcommand_has_help_text():
    parser = _parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    choices = actions[0].choices
    assert set(choices) == {"demo", "ingest", "sql", "query", "queries", "export", "archive",
                            "replay", "generate", "quality", "plot", "fill", "session", "info",
                            "serve", "asof"}
    helps = {a.dest: a.help for a in actions[0]._choices_actions}
    for name, parser in choices.items():
        assert helps.get(name), f"subcommand {name} has no help"
        assert parser.description, f"subcommand {name} has no description for --help"


def test_demo_replays_session_then_exports_parquet(tmp_path, session_file, capsys):
    db, out = tmp_path / "demo.duckdb", tmp_path / "archive"
    assert main(["demo", "--data", str(session_file), "--db", str(db), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "replayed 150 bars of 5 symbols" in printed
    assert "AAPL" in printed
    files = list(out.glob("date=*/bars.parquet"))
    assert len(files) == 1
    assert pq.read_table(files[0]).num_rows == 150
    with Warehouse(db, read_only=True) as wh:
        assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 150


def test_demo_twice_replaces_its_warehouse_file(tmp_path, session_file, capsys):
    args = ["demo", "--data", str(session_file), "--db", str(tmp_path / "d.duckdb"),
            "--out", str(tmp_path / "a")]
    assert main(args) == 0
    assert main(args) == 0
    with Warehouse(tmp_path / "d.duckdb", read_only=True) as wh:
        assert wh.replacements == 0
        assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 150


def test_sql_prints_result_table(db, capsys):
    assert main(["sql", "SELECT count(*) AS n FROM bars", "--db", str(db)]) == 0
    assert "150" in capsys.readouterr().out


def test_sql_binds_params_without_formatting(db, capsys):
    hostile = "'; DROP TABLE session_bars; --"
    code = main(["sql", "SELECT count(*) AS n FROM bars WHERE symbol = $s", "--db", str(db),
                 "--param", f"s={json.dumps(hostile)}"])
    assert code == 0
    assert main(["sql", "SELECT count(*) AS n FROM bars", "--db", str(db)]) == 0
    assert "150" in capsys.readouterr().out


def test_query_runs_named_query_with_params(db, capsys):
    code = main(["query", "bars_between", "--db", str(db), "--param", 'symbols=["AAPL"]',
                 "--param", "start=2025-11-21T14:30:00Z", "--param", "end=2025-11-21T14:35:00Z"])
    assert code == 0
    out = capsys.readouterr().out
    assert "shape: (5, 10)" in out


def test_query_unknown_name_exits_1_listing_known_names(db, capsys):
    assert main(["query", "nope", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "no query named 'nope'" in err
    assert "session_ohlcv" in err


def test_sql_on_missing_file_exits_1(tmp_path, capsys):
    assert main(["sql", "SELECT 1", "--db", str(tmp_path / "none.duckdb")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_sql_with_bad_sql_exits_1(db, capsys):
    assert main(["sql", "SELECT nope FROM bars", "--db", str(db)]) == 1
    assert "nope" in capsys.readouterr().err


def test_param_without_equals_exits_1(db, capsys):
    assert main(["sql", "SELECT 1", "--db", str(db), "--param", "oops"]) == 1
    assert "NAME=VALUE" in capsys.readouterr().err


def test_queries_lists_each_named_query_with_summary_and_parameters(capsys):
    assert main(["queries"]) == 0
    lines = capsys.readouterr().out.splitlines()
    queries = load_queries()
    names = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert names == list(queries)
    assert len(lines) == 2 * len(queries)
    listed = dict(zip(lines[::2], lines[1::2], strict=True))
    by_name = {head.split()[0]: (head, params) for head, params in listed.items()}
    head, params = by_name["bars_between"]
    assert queries.summary("bars_between") in head
    assert params.split() == ["parameters:", "$symbols,", "$start,", "$end"]
    assert by_name["session_ohlcv"][1].split() == ["parameters:", "none"]
    assert by_name["resample_bars"][1].split() == ["parameters:", "$minutes,", "$open"]


@pytest.mark.parametrize("name", ["create_bars_table", "insert_bars", "stored_keys", "get_meta"])
def test_queries_does_not_list_internal_statements(capsys, name):
    assert main(["queries"]) == 0
    assert name not in capsys.readouterr().out


def test_query_of_internal_statement_exits_1_listing_named_queries(db, capsys):
    assert main(["query", "stored_keys", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "no query named 'stored_keys'" in err
    assert "session_ohlcv" in err
    assert "create_bars_table" not in err


def test_export_writes_partitioned_parquet(db, tmp_path, capsys):
    out = tmp_path / "archive"
    assert main(["export", "--db", str(db), "--out", str(out)]) == 0
    assert "exported 150 bars" in capsys.readouterr().out
    assert pq.read_table(out / "date=2025-11-21" / "bars.parquet").num_rows == 150


def test_generate_writes_requested_size(tmp_path, capsys):
    out = tmp_path / "gen.parquet"
    assert main(["generate", "--symbols", "7", "--minutes", "3", "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 21


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_sql_with_archive_queries_history(db, tmp_path, capsys):
    out = tmp_path / "archive"
    assert main(["export", "--db", str(db), "--out", str(out)]) == 0
    assert main(["sql", "SELECT count(*) AS n FROM history", "--db", str(db),
                 "--archive", str(out)]) == 0
    assert "150" in capsys.readouterr().out


#: Every row of the benchmark's table (tests/bench/README.md), with how often it appears.
BENCH_ROWS = {
    "append 1 bar, validated": 1,
    "GC in append session: full collections": 1,
    "GC in append session: longest pause": 1,
    "append 1 bar, metrics on": 1,
    "append 1 bar, journal=True": 1,
    "latest(symbol)": 2,
    "last_n(symbol, 20)": 1,
    "latest_many(500 symbols)": 2,
    "metrics(symbol)": 1,
    "metrics_frame(), 50 symbols": 1,
    "flush 1 minute": 1,
    "flush 1 minute, reader busy": 1,
    "latest() during flush, mean": 1,
    "latest() during flush, p99": 1,
    "extend session + flush, file": 1,
    "extend session + flush, metrics on": 1,
    "SQL 1 symbol 1 hour (bars)": 1,
    "SQL 5-minute resample, session": 1,
    "Parquet export, session": 1,
    "start_session, 20 trailing sessions": 1,
    "quality scan, session": 1,
    "ingest CSV file": 1,
    "ingest Parquet file": 1,
    'latest_derived(symbol, "5m")': 1,
    'latest_derived(symbol, "15m")': 1,
    "latest(symbol), derived group": 1,
    'latest_derived(symbol, "30m"), not declared': 1,
    'last_n_derived(symbol, 4, "15m")': 1,
    'last_n_derived(symbol, 20, "5m")': 1,
    'last_n_derived(symbol, 4, "15m"), computed on read': 1,
    "append 1 bar, 5m + 15m derived": 1,
    "resident memory per bar": 1,
    "peak RSS, worst of sessions 2-10": 1,
}


def _bench_rows(*options: str) -> Counter[str]:
    """Run the benchmark on a tiny session; the operations of its table's rows."""
    # The benchmark is no subcommand: it lives in tests/bench/, run from the clone's root.
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench", "--symbols", "50", "--minutes", "30",
         "--repeat", "1", *options],
        cwd=root, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CHECK FAILED" not in done.stdout
    lines = done.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("targets met:"))
    return Counter(re.split(r"\s{2,}", line)[0] for line in lines[first:end])


@pytest.mark.slow  # every group of the benchmark, tiny as it is, takes a while
def test_bench_module_prints_every_row_on_a_tiny_session():
    assert _bench_rows() == BENCH_ROWS


def test_bench_only_runs_the_groups_asked_for():
    assert _bench_rows("--only", "extend") == {
        "extend session + flush, file": 1, "extend session + flush, metrics on": 1}


def test_bench_is_not_a_subcommand(capsys):
    assert main(["bench"]) == 2
    assert "invalid choice: 'bench'" in capsys.readouterr().err


def test_readme_shows_every_subcommand():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    actions = [a for a in _parser()._actions if a.dest == "command"]
    for name in actions[0].choices:
        assert f"python -m warehouse {name}" in section, f"README lacks `{name}`"


# -- ingest, output formats, conventions (#10) ------------------------------------------------

DAILY_CSV = """\
Date,Symbol,Open,High,Low,Close,Adj Close,Volume
2024-01-02,AAPL,187.15,188.44,183.89,185.64,185.40,82488700
2024-01-02,MSFT,373.86,375.90,366.77,370.87,369.10,25258600
2024-01-03,AAPL,189.00,185.88,183.43,184.25,184.00,58414500
2024-01-03,MSFT,369.01,373.26,368.51,370.60,369.00,200170974
"""


@pytest.fixture
def daily_csv(tmp_path):
    path = tmp_path / "daily.csv"
    path.write_text(DAILY_CSV)
    return path


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """ts as epoch microseconds, numbers as f64/i64: how two readers' frames are compared."""
    return frame.select(
        pl.col("symbol").cast(pl.String),
        pl.col("ts").dt.convert_time_zone("UTC").dt.epoch("us"),
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume", "vwap")),
        pl.col("trade_count").cast(pl.Int64),
    )


def test_ingest_a_csv_then_query_it_as_csv(daily_csv, tmp_path, capsys):
    db = tmp_path / "daily.duckdb"
    code = main(["ingest", str(daily_csv), "--db", str(db), "--tz", "America/New_York",
                 "--on-invalid", "skip"])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"ingested 3 bars from 1 file into {db} in \d+\.\d\d s \([\d,]+ "
                        r"bars/s\)", out[0])
    assert out[1:] == ["1 row rejected (skipped)", "ignored columns: Adj Close"]
    assert main(["sql", "SELECT symbol, ts, close, volume FROM bars ORDER BY symbol, ts",
                 "--db", str(db), "--format", "csv"]) == 0
    assert capsys.readouterr().out == (
        "symbol,ts,close,volume\n"
        "AAPL,2024-01-02T05:00:00+00:00,185.64,82488700.0\n"
        "MSFT,2024-01-02T05:00:00+00:00,370.87,25258600.0\n"
        "MSFT,2024-01-03T05:00:00+00:00,370.6,200170974.0\n"
    )


def test_ingest_with_a_bad_row_exits_1_naming_it_and_leaves_no_file(daily_csv, tmp_path,
                                                                       capsys):
    db = tmp_path / "daily.duckdb"
    assert main(["ingest", str(daily_csv), "--db", str(db), "--tz", "America/New_York"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"warehouse: error: {daily_csv}: row 3, column 'Open': bar 'AAPL' ")
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "missing.csv: does not exist"),
        (["daily.csv"], "row 1, column 'Date': '2024-01-02' has no UTC offset"),
        (["daily.csv", "--tz", "UTC", "--rename", "Shares=volume"], "has no column 'Shares'"),
        (["daily.csv", "--tz", "UTC", "--ts-unit", "s"], "column 'Date': holds timestamps, not "
         "integer epochs"),
    ],
    ids=["missing-file", "naive-no-tz", "missing-column", "unit-on-timestamps"],
)
def test_ingest_bad_input_is_one_line_and_touches_nothing(daily_csv, db, capsys, args, message):
    before = db.read_bytes()
    paths = [str(daily_csv.parent / args[0]), *args[1:]]
    assert main(["ingest", *paths, "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert db.read_bytes() == before


def test_ingest_report_writes_the_rejects_as_csv_to_stdout(daily_csv, tmp_path, capsys):
    db = tmp_path / "daily.duckdb"
    assert main(["ingest", str(daily_csv), "--db", str(db), "--tz", "America/New_York",
                 "--on-invalid", "report"]) == 0
    captured = capsys.readouterr()
    rejects = pl.read_csv(io.StringIO(captured.out))
    assert rejects.select("file", "row", "column", "field", "reason").rows() == [
        (str(daily_csv), 3, "Open", "open", "189.0 is outside [low 183.43, high 185.88]")]
    assert "1 row rejected (written to stdout)" in captured.err  # the summary moves aside


def test_ingest_report_writes_the_rejects_to_a_file(daily_csv, tmp_path, capsys):
    db, rejects = tmp_path / "daily.duckdb", tmp_path / "rejects.parquet"
    assert main(["ingest", str(daily_csv), "--db", str(db), "--tz", "America/New_York",
                 "--on-invalid", "report", "--rejects", str(rejects)]) == 0
    assert f"1 row rejected (listed in {rejects})" in capsys.readouterr().out
    assert pl.read_parquet(rejects)["row"].to_list() == [3]


def test_ingest_quiet_prints_nothing(daily_csv, tmp_path, capsys):
    db = tmp_path / "daily.duckdb"
    assert main(["ingest", str(daily_csv), "--db", str(db), "--tz", "UTC", "--on-invalid",
                 "skip", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "a"), "-q"]) == 0
    assert capsys.readouterr() == ("", "")


def test_ingest_rejects_without_report_is_a_usage_error(daily_csv, tmp_path, capsys):
    assert main(["ingest", str(daily_csv), "--db", str(tmp_path / "x.duckdb"), "--rejects",
                 str(tmp_path / "r.csv")]) == 1
    assert "--on-invalid report" in capsys.readouterr().err


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))


READERS = {
    "csv": (lambda p: pl.read_csv(p, try_parse_dates=True), "read_csv"),
    "json": (lambda p: _utc(pl.read_json(p)), "read_json"),
    "ndjson": (lambda p: _utc(pl.read_ndjson(p)), "read_json"),
    "parquet": (pl.read_parquet, "read_parquet"),
}


@pytest.mark.parametrize("fmt", list(READERS))
def test_output_formats_round_trip_through_polars_and_duckdb(db, tmp_path, capsys, fmt):
    out = tmp_path / f"bars.{fmt}"
    query = "SELECT * EXCLUDE (origin) FROM bars ORDER BY symbol, ts"
    assert main(["sql", query, "--db", str(db), "--format", fmt, "--output", str(out)]) == 0
    assert capsys.readouterr().out == ""
    with Warehouse(db, read_only=True) as wh:
        expected = canonical(wh.sql_polars(query))
    assert expected.height == 150
    read_polars, function = READERS[fmt]
    assert_frame_equal(canonical(read_polars(out)), expected)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    got = con.sql(f"SELECT * REPLACE (CAST(ts AS TIMESTAMPTZ) AS ts) FROM {function}('{out}')")
    assert_frame_equal(canonical(got.pl()), expected)
    con.close()


def test_output_format_follows_the_output_suffix_and_sqlite_utils_flags(db, tmp_path, capsys):
    out = tmp_path / "bars.ndjson"
    assert main(["query", "session_ohlcv", "--db", str(db), "--output", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5
    assert main(["query", "session_ohlcv", "--db", str(db), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5
    assert main(["query", "session_ohlcv", "--db", str(db), "--nl", "--rows", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["query", "session_ohlcv", "--db", str(db), "--csv", "--json"]) == 2


def test_table_prints_numbers_as_numbers_and_rows_all(db, capsys):
    query = "SELECT 200170974.0 AS volume, 0.1 + 0.2 AS price"
    assert main(["sql", query, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "200170974" in out
    assert "e8" not in out
    assert main(["sql", "SELECT * FROM range(30)", "--db", str(db)]) == 0
    assert "…" in capsys.readouterr().out  # 20 rows by default, the rest elided
    assert main(["sql", "SELECT * FROM range(30)", "--db", str(db), "--rows", "all"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert "│ 29    │" in out


def test_parquet_output_needs_a_file(db, capsys):
    assert main(["sql", "SELECT 1", "--db", str(db), "--format", "parquet"]) == 1
    assert "--output FILE.parquet" in capsys.readouterr().err


def test_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version

    import warehouse

    assert warehouse.__version__ == version("warehouse")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"warehouse {warehouse.__version__}\n"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["symbols=AAPL"], "--param symbols=AAPL: $symbols takes list of VARCHAR; pass a JSON "
         "list, e.g. --param 'symbols=[\"AAPL\",\"MSFT\"]'"),
        (['symbols=["AAPL"]', "start=2025-11-21T14:30:00Z"], "query bars_between needs $end: "
         "pass an ISO timestamp with an offset, e.g. --param end=2025-11-21T14:30:00Z"),
        (['symbols=["AAPL"]', "start=2025-11-21T14:30:00", "end=2025-11-21T15:00:00Z"],
         "$start is a timestamp without an offset; add one, e.g. --param "
         "start=2025-11-21T14:30:00Z"),
        (["symbol=AAPL", "n=twenty"], "--param n=twenty: $n takes a BIGINT; pass an integer"),
        (["symbol=AAPL", "n=3", "limit=3"], "--param limit: query last_bars_of_symbol has no "
         "parameter $limit; its parameters: $symbol, $n"),
    ],
    ids=["list-as-text", "missing", "naive-ts", "not-an-integer", "unknown"],
)
def test_param_errors_name_the_parameter_and_its_form(db, capsys, params, message):
    name = "bars_between" if params[0].startswith("symbols") else "last_bars_of_symbol"
    args = [a for p in params for a in ("--param", p)]
    assert main(["query", name, "--db", str(db), *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


def test_query_takes_a_string_parameter_that_looks_like_a_number(db, capsys):
    assert main(["query", "last_bars_of_symbol", "--db", str(db), "--param", "symbol=7203",
                 "--param", "n=3"]) == 0
    assert "shape: (0, 10)" in capsys.readouterr().out


def test_sql_with_a_missing_or_excess_parameter_names_it(db, capsys):
    assert main(["sql", "SELECT $x", "--db", str(db)]) == 1
    assert "the SQL uses $x: pass --param x=VALUE" in capsys.readouterr().err
    assert main(["sql", "SELECT 1", "--db", str(db), "--param", "x=1"]) == 1
    assert "the SQL has no $parameters" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["bars.xlsx", "bars"])
def test_an_output_suffix_of_no_format_is_refused_naming_the_known_ones(db, tmp_path, capsys,
                                                                        name):
    out = tmp_path / name
    assert main(["sql", "SELECT * FROM bars", "--db", str(db), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert f"--output {out}: " in err
    assert ".csv, .json, .ndjson, .jsonl, .parquet" in err
    assert "--format" in err
    assert not out.exists()
    # --format says what to write, whatever the name
    assert main(["sql", "SELECT 1 AS n", "--db", str(db), "-o", str(out), "--csv"]) == 0
    assert out.read_text() == "n\n1\n"


def test_a_rejects_suffix_of_no_format_is_refused_before_reading(daily_csv, tmp_path, capsys):
    db, rejects = tmp_path / "daily.duckdb", tmp_path / "rejects.xlsx"
    assert main(["ingest", str(daily_csv), "--db", str(db), "--tz", "America/New_York",
                 "--on-invalid", "report", "--rejects", str(rejects)]) == 1
    err = capsys.readouterr().err
    assert f"--rejects {rejects}: the suffix '.xlsx' names no format" in err
    assert "--format" not in err  # ingest has none
    assert not rejects.exists()
    assert not db.exists()


def test_archive_list_of_exported_days_says_they_are_no_sealed_sessions(db, tmp_path, capsys):
    out = tmp_path / "days"
    assert main(["export", "--db", str(db), "--out", str(out), "-q"]) == 0
    for action in ("list", "verify"):
        assert main(["archive", action, "--archive", str(out)]) == 0
        assert capsys.readouterr().out == (
            "1 exported day, no sealed session: export_parquet writes days; end_session seals "
            "sessions\n")


def test_archive_verify_shows_times_as_iso(tmp_path, capsys):
    archive = tmp_path / "archive"
    assert main(["replay", "--generate", "1", "--symbols", "2", "--db",
                 str(tmp_path / "wh.duckdb"), "--archive", str(archive), "-q"]) == 0
    manifest = json.loads((archive / "_manifest.json").read_text())
    manifest["sessions"][0]["first_ts"] += 60_000_000
    (archive / "_manifest.json").write_text(json.dumps(manifest))
    assert main(["archive", "verify", "--archive", str(archive)]) == 1
    out = capsys.readouterr().out
    assert ("first_ts is 2025-11-24T14:30:00+00:00, the manifest says "
            "2025-11-24T14:31:00+00:00") in out
    assert "1763" not in out


def test_counts_of_one_take_the_singular(tmp_path, capsys):
    one = tmp_path / "one.csv"
    one.write_text("symbol,ts,open,high,low,close,volume\n"
                   "ES,2025-11-24T15:00:00Z,10,11,9,10.5,100\n")
    db = tmp_path / "wh.duckdb"
    assert main(["ingest", str(one), "--db", str(db)]) == 0
    assert "ingested 1 bar from 1 file into" in capsys.readouterr().out
    assert main(["replay", str(one), "--db", str(tmp_path / "r.duckdb"), "--archive",
                 str(tmp_path / "archive")]) == 0
    out = capsys.readouterr().out
    assert "replayed 1 bar of 1 session in" in out
    assert main(["archive", "list", "--archive", str(tmp_path / "archive")]) == 0
    out = capsys.readouterr().out
    assert "1 bar  " in out
    assert "1 symbol  " in out
    assert "1 sealed session in" in out
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "x")]) == 0
    assert "exported 1 bar to 1 file under" in capsys.readouterr().out
    assert main(["generate", "--symbols", "1", "--minutes", "1", "--out",
                 str(tmp_path / "g.parquet")]) == 0
    assert "wrote 1 bar (1 symbol x 1 minute) to" in capsys.readouterr().out
