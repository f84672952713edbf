import json

import pyarrow.parquet as pq
import pytest

from warehouse import Warehouse
from warehouse.cli import _parser, main
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
    assert set(choices) == {"demo", "sql", "query", "queries", "export", "generate", "bench"}
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


def test_queries_lists_every_sql_file(capsys):
    assert main(["queries"]) == 0
    out = capsys.readouterr().out
    for name in ("bars_between", "session_ohlcv", "resample_bars", "latest_bar_per_symbol"):
        assert name in out


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


def test_bench_runs_end_to_end_on_a_tiny_session(capsys):
    assert main(["bench", "--symbols", "30", "--minutes", "20", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "append 1 bar, validated" in out
    assert "targets met:" in out


def test_readme_shows_every_subcommand():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    actions = [a for a in _parser()._actions if a.dest == "command"]
    for name in actions[0].choices:
        assert f"python -m warehouse {name}" in section, f"README lacks `{name}`"
