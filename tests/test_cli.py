import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

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
    assert set(choices) == {"demo", "sql", "query", "queries", "export", "archive", "replay",
                            "generate", "quality"}
    helps = {a.dest: a.help for a in actions[0]._choices_actions}
    for name in choices:
        assert helps.get(name), f"subcommand {name} has no help"


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
    assert "shape: (5, 9)" in out


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
    'latest_derived(symbol, "5m")': 1,
    'latest_derived(symbol, "15m")': 1,
    'last_n_derived(symbol, 4, "15m")': 1,
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
