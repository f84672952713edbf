"""The built wheel carries the compiled core, the SQL files (sql/ and sql/internal/) and the
sample, and finds them when installed.

Building the wheel compiles the whole core (about a minute of CPU on a 2-core machine), so
the wheel's tests are `slow`; the default suite checks the same layout of the package's files,
copied by setuptools without compiling.
"""

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("Cython")  # the build backend's needs (dev extras): Cython, setuptools
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True,
    )
    (path,) = out.glob("warehouse-*.whl")
    return path


def check_layout(names: set[str]) -> None:
    """Every SQL file, the sample and py.typed where the installed package reads them."""
    files = sorted((ROOT / "sql").rglob("*.sql"))
    assert any(f.parent.name == "internal" for f in files)
    for sql in files:
        assert f"warehouse/sql/{sql.relative_to(ROOT / 'sql').as_posix()}" in names
    assert "warehouse/sql/internal/create_bars_table.sql" in names
    assert "warehouse/data/sample_session.parquet" in names
    assert "warehouse/py.typed" in names
    assert not any(name.endswith(".c") for name in names)  # generated C is a build product


def test_package_files_land_where_the_installed_package_reads_them(tmp_path):
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("warehouse", "sql", "data"):  # a clean copy: setuptools writes beside it
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
         "--build-lib", str(out)],
        cwd=source, env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True,
        check=True,
    )
    check_layout({path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()})


@pytest.mark.slow
def test_wheel_contains_every_sql_file_and_the_sample(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    check_layout(names)
    assert any(name.startswith("warehouse/_bar.") and name.endswith(".so") for name in names)


@pytest.mark.slow
def test_installed_wheel_loads_its_own_sql_files(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import gc, warehouse.queries as q, warehouse.cli as c, warehouse as w; "
        "print(q.SQL_DIR); print(w.sample_path()); print(len(q.load_queries())); "
        "print(len(q.load_statements())); w.Warehouse(':memory:').close(); "
        "print(gc.is_tracked(w.Bar('A', 0, 1.0, 1.0, 1.0, 1.0, 1.0)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    sql_dir, sample, count, statements, tracked = result.stdout.split()
    assert tracked == "False"  # the compiled Bar, invisible to the garbage collector
    assert Path(sql_dir) == site / "warehouse" / "sql"
    assert Path(sample) == site / "warehouse" / "data" / "sample_session.parquet"
    assert int(count) == len(list((ROOT / "sql").glob("*.sql")))
    assert int(statements) == len(list((ROOT / "sql").rglob("*.sql")))


def test_no_module_of_the_package_imports_pandas():
    """pandas is a test dependency: a DataFrame a user passes goes through pyarrow (#10)."""
    for source in sorted((ROOT / "warehouse").glob("*.py")):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "pandas" for n in names), source.name
