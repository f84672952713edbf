"""The README's Python example runs as written."""

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from warehouse import reset_session_data
from warehouse.cli import main
from warehouse.sample import generate_session

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    match = re.search(r"## In Python\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert match is not None
    monkeypatch.chdir(tmp_path)
    # The example's two free names: a batch from the feed and a start time.
    names = {"batch": generate_session(5, 30), "start": datetime(2025, 11, 21, 14, 30, tzinfo=UTC)}
    exec(compile(match.group(1), str(README), "exec"), names)
    assert (tmp_path / "out" / "archive" / "date=2025-11-21" / "bars.parquet").exists()


def test_readme_async_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    section = README.read_text().split("## Async API (the seed's session_data)\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(match.group(1), str(README), "exec"), {"batch": generate_session(5, 60)})
    finally:
        reset_session_data()
    assert "'trend': " in capsys.readouterr().out
    assert (tmp_path / "out" / "archive" / "date=2025-11-21" / "bars.parquet").exists()


def test_readme_quality_example_runs_and_prints_what_it_shows(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = README.read_text()
    section = text.split("## Data quality\n", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```\n(┌.*?)```", section, re.S)
    assert code is not None
    assert shown is not None
    monkeypatch.chdir(README.parent)  # it reads data/sample_session.parquet
    names: dict[str, object] = {}
    exec(compile(code.group(1), str(README), "exec"), names)
    printed = capsys.readouterr().out
    for line in shown.group(1).splitlines():
        if line.startswith("│"):
            assert line in printed
    assert names["gaps"].num_rows == 3  # type: ignore[attr-defined]
    assert (README.parent / "data" / "quality_coverage.png").stat().st_size < 100_000


def test_readme_quick_tour_ingests_a_csv_and_queries_it_as_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The "Your own files" commands run as written and print what the README shows (#10)."""
    section = README.read_text().split("### Your own files\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    lines = block.group(1).replace("\\\n", "").splitlines()
    commands = [i for i, line in enumerate(lines) if line.startswith("python -m warehouse ")]
    assert len(commands) == 2
    # The file the comment shows, then each command and the output shown under it.
    csv = [line.removeprefix("#   ") for line in lines[: commands[0]] if line.startswith("#   ")]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aapl.csv").write_text("\n".join(csv) + "\n")
    for at, end in zip(commands, [*commands[1:], len(lines)], strict=True):
        argv = shlex.split(lines[at])[3:]
        assert main(argv) == 0
        shown = [line.removeprefix("#   ") for line in lines[at + 1 : end]]
        printed = capsys.readouterr().out.splitlines()
        if argv[0] == "ingest":  # the time and rate differ run to run
            timing = r"in [\d.]+ s \([\d,]+ bars/s\)"
            printed, shown = ([re.sub(timing, "in T s (R bars/s)", x) for x in lines_]
                              for lines_ in (printed, shown))
        assert printed == shown


def test_readme_gap_filling_example_runs_and_prints_what_it_says(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    section = README.read_text().split("### Gap filling\n", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    monkeypatch.chdir(README.parent)  # it reads data/sample_session.parquet
    exec(compile(code.group(1), str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["30 0", "[{'origin': 'filled', 'n': 30}, {'origin': 'live', 'n': 155970}]"]


def test_readme_live_session_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    section = README.read_text().split("## Querying a live session\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(match.group(1), str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert "Bar(symbol='AAPL'" in printed
    assert not (tmp_path / "live.duckdb.endpoint").exists()
