"""Every code block of the README runs as written, top to bottom, in one folder.

A user following the README runs its blocks in order in one folder: so does this test. Python
blocks are each run in a fresh namespace (each block is whole: its own imports, no free
names); bash blocks run each command line that starts with `warehouse` or `python -m warehouse`
in-process (`warehouse.cli.main`), which must exit 0. The files the README says it uses are
made first (`FILES`, each named in the README where it is used). A README that drifts from the
code fails here.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from warehouse import reset_session_data
from warehouse.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"

#: Lines of bash blocks that are not the warehouse's commands: installing, the test suite, the
#: linters and the benchmark (run by CI and by hand, not by a README test).
SKIPPED = ("python -m pip install", "pip install", "python -m pytest", "ruff", "mypy",
           "python -m tests.bench")



def blocks(text: str) -> Iterator[tuple[int, str, str, str]]:
    """(line, language, code, the text before it) of each fenced block, in README order."""
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        before = text[:match.start()].rstrip().rsplit("\n\n", 1)[-1]
        yield text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2), before


def commands(code: str) -> Iterator[tuple[str, list[str]]]:
    """A bash block's commands, each with the output shown under it (its `#   ` lines):
    continuations joined, comments and blank lines dropped, `a && b` as two."""
    found: list[tuple[str, list[str]]] = []
    for line in code.replace("\\\n", " ").splitlines():
        if line.startswith("#   ") and found:
            found[-1][1].append(line.removeprefix("#   "))
            continue
        line = "" if line.startswith("#") else line.split(" #", 1)[0].strip()
        found.extend((part.strip(), []) for part in line.split("&&") if part.strip())
    yield from found


def warehouse_argv(command: str) -> list[str] | None:
    """The CLI arguments of a `warehouse ...` or `python -m warehouse ...` line; None for a
    line SKIPPED names; anything else fails the test (a README command no test runs)."""
    words = shlex.split(command)
    if words[:1] == ["warehouse"]:
        return words[1:]
    if words[:3] == ["python", "-m", "warehouse"]:
        return words[3:]
    if command.startswith(SKIPPED):
        return None
    raise AssertionError(f"README command neither a warehouse command nor skipped: {command}")


def shown_file(before: str) -> str:
    """The file a ```csv or ```json block shows: the last `name.csv`/`name.ndjson` named in
    the paragraph above it."""
    names = re.findall(r"`([\w./-]+\.(?:csv|ndjson|json))`", before)
    assert names, f"no file name above the block: {before!r}"
    return str(names[-1])


def _stable(lines: list[str]) -> list[str]:
    """Output lines with their timings (which differ run to run) masked."""
    timing = r"in [\d.]+ s \([\d,]+ bars/s\)"
    return [re.sub(timing, "in T s (R bars/s)", line) for line in lines]


def test_every_readme_block_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    ran = {"python": 0, "bash": 0, "file": 0}
    printed = ""
    for line, language, code, before in blocks(text):
        where = f"README.md:{line}"
        if language in ("csv", "json"):
            path = tmp_path / shown_file(before)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
            ran["file"] += 1
        elif language == "python":
            try:
                exec(compile(code, where, "exec"), {"__name__": "__readme__"})
            finally:
                reset_session_data()
            printed = capsys.readouterr().out
            ran["python"] += 1
        elif language == "bash":
            for command, shown in commands(code):
                argv = warehouse_argv(command)
                if argv is None:
                    continue
                status = main(argv)
                out, err = capsys.readouterr()
                assert status == 0, f"{where}: `{command}` exited {status}: {err}"
                if shown:
                    assert _stable(out.splitlines()) == _stable(shown), f"{where}: {command}"
                ran["bash"] += 1
        elif language == "" and code.startswith(("┌", "│")):  # what the python block before prints
            for row in code.splitlines():
                if row.startswith("│"):
                    assert row in printed, f"{where}: {row}"
        else:
            assert language in ("text", ""), f"{where}: a ```{language} block no test runs"
    assert ran["python"] >= 8
    assert ran["bash"] >= 10
    assert ran["file"] >= 3


def test_commands_split_as_a_shell_would() -> None:
    code = ("# a comment\npython -m pip install -e . && python -m warehouse demo\n"
            "warehouse sql \"SELECT 1\" \\\n    --db a.duckdb   # why\n")
    assert list(commands(code + "#   n\n#   1\n")) == [
        ("python -m pip install -e .", []), ("python -m warehouse demo", []),
        ('warehouse sql "SELECT 1"      --db a.duckdb', ["n", "1"])]
    assert warehouse_argv("python -m pip install -e .") is None
    assert warehouse_argv("python -m warehouse demo") == ["demo"]
    with pytest.raises(AssertionError, match="neither"):
        warehouse_argv("rm -rf out")


def test_the_contents_list_every_section_in_order() -> None:
    text = README.read_text(encoding="utf-8")
    contents = text.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\s*- \[(.*?)\]\(#[\w-]+\)$", contents, re.M)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    headings = re.findall(r"^#{2,3} (.*)$", prose.split("## Contents\n", 1)[1], re.M)
    assert listed == headings
    sections = re.findall(r"^## (.*)$", prose, re.M)
    assert sections[-1] == "How it works"  # the internals close the guide


def test_the_plot_extra_is_installed_from_the_checkout() -> None:
    text = README.read_text(encoding="utf-8")
    assert 'python -m pip install -e ".[plot]"' in text
    assert 'pip install "warehouse[plot]"' not in text  # no such package on an index
