"""Shared fixtures: warehouses (in memory and on file), a store, the sample session, bar makers."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, is_hypothesis_test, settings

from warehouse import Bar, BarStore, Warehouse

#: The benchmark (`python -m tests.bench`) is a tool, not tests: pytest neither collects nor
#: imports it, --doctest-modules included. Relative to this folder, whatever the cwd.
collect_ignore = ["bench"]

# Hypothesis: every model runs in the default suite with a few examples ("quick"); `-m slow`
# runs them again with many ("thorough"), and so does WAREHOUSE_HYPOTHESIS=thorough on any run.
# A test that names its own max_examples keeps it (cheap ones, with many examples anyway).
# Examples may be slow (a warehouse each), and a loaded machine slower: no deadline.
_PATIENT: dict[str, Any] = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("quick", max_examples=8, **_PATIENT)
settings.register_profile("thorough", max_examples=100, **_PATIENT)


def _selects_slow(config: pytest.Config) -> bool:
    mark = " ".join(str(config.getoption("markexpr", "") or "").split())
    return "slow" in mark and "not slow" not in mark


def pytest_configure(config: pytest.Config) -> None:
    thorough = os.environ.get("WAREHOUSE_HYPOTHESIS") == "thorough" or _selects_slow(config)
    if not config.getoption("--hypothesis-profile", None):  # hypothesis' own option wins
        settings.load_profile("thorough" if thorough else "quick")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under -m slow the hypothesis models are long variants too: selected, with many examples.
    if _selects_slow(config):
        for item in items:
            if isinstance(item, pytest.Function) and is_hypothesis_test(item.obj):
                item.add_marker(pytest.mark.slow)

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_session.parquet"
#: 2025-11-21 14:30:00 UTC, the sample session's first bar, in microseconds.
T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
#: Symbols kept from the sample session: 12 x 390 bars is enough and keeps every test fast.
SAMPLE_SYMBOLS = 12


def make_bar(
    symbol: str = "AAPL",
    minute: int = 0,
    price: float = 100.0,
    volume: float = 1_000.0,
    vwap: float | None = None,
    trade_count: int | None = None,
) -> Bar:
    """A valid bar ``minute`` minutes after T0 whose prices derive from ``price``."""
    return Bar(symbol, T0 + minute * MINUTE, price, price + 1.0, price - 1.0, price + 0.5,
               volume, vwap, trade_count)


@pytest.fixture(scope="session")
def bar() -> Callable[..., Bar]:
    """The `make_bar` factory (tests import nothing from conftest under importlib mode)."""
    return make_bar


def abandon_warehouse(warehouse: Warehouse) -> None:
    """Drop a journaled warehouse as a kill would: no flush, no checkpoint, segments left."""
    assert warehouse._journal is not None
    warehouse._journal.close()
    warehouse._store.close()
    warehouse._stopping = True
    warehouse._wake.set()


@pytest.fixture(scope="session")
def abandon() -> Callable[[Warehouse], None]:
    """The `abandon_warehouse` helper (session-scoped, so hypothesis tests may use it)."""
    return abandon_warehouse


@pytest.fixture
def wh() -> Iterator[Warehouse]:
    """An in-memory warehouse without a background interval flush, closed after the test."""
    warehouse = Warehouse(":memory:", flush_interval=None)
    yield warehouse
    warehouse.close()


class WarehouseFiles:
    """Opens warehouses on files under tmp_path; closes whatever is still open at teardown."""

    def __init__(self, root: Path) -> None:
        self.path = root / "session.duckdb"
        self.opened: list[Warehouse] = []

    def __call__(self, path: Path | None = None, **options: Any) -> Warehouse:
        options.setdefault("flush_interval", None)
        warehouse = Warehouse(path or self.path, **options)
        self.opened.append(warehouse)
        return warehouse

    def close_all(self) -> None:
        for warehouse in self.opened:
            warehouse.close()


@pytest.fixture
def file_wh(tmp_path: Path) -> Iterator[WarehouseFiles]:
    """Factory: ``file_wh(**options)`` opens (or reopens) ``file_wh.path``."""
    files = WarehouseFiles(tmp_path)
    yield files
    files.close_all()


@pytest.fixture
def store() -> Iterator[BarStore]:
    """An in-memory BarStore, closed after the test."""
    bar_store = BarStore(":memory:")
    yield bar_store
    bar_store.close()


@pytest.fixture(scope="session")
def sample_bars() -> pa.Table:
    """The bundled sample session cut to its first symbols, in arrival order (4,680 bars)."""
    table = pq.read_table(SAMPLE)
    first = table.column("symbol").slice(0, SAMPLE_SYMBOLS)
    return table.filter(pc.is_in(table.column("symbol"), value_set=first.combine_chunks()))


def sql_bars(warehouse: Warehouse, where: str = "true", params: Any = None) -> list[Bar]:
    """Every bar of ``bars`` matching ``where``, in (symbol, ts) order, as Bar tuples."""
    table = warehouse.sql(
        f"SELECT * EXCLUDE (origin) FROM bars WHERE {where} ORDER BY symbol, ts", params)
    table = table.set_column(1, "ts", table.column("ts").cast(pa.int64()))
    return [Bar(**row) for row in table.to_pylist()]


@pytest.fixture(scope="session")
def read_sql() -> Callable[..., list[Bar]]:
    """The `sql_bars` helper."""
    return sql_bars


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """A 1 MiB tmpfs at tmp_path/disk; the fixture's value resizes it. Skips if mounting fails."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)

    try:
        yield resize
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
