"""The README's Python example runs as written."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

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
