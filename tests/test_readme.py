"""The README's Python example runs as written."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from warehouse import reset_session_data
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
