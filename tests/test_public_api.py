"""The package's public surface: `__all__` is sorted and lists exactly what is public."""

from __future__ import annotations

import inspect
import re
from types import ModuleType

import warehouse
from warehouse import errors


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: SCREAMING_CASE, then CamelCase, then the rest, each alphabetical."""
    if name.isupper() and len(name) > 1:
        return 0, name
    if name[0].isupper():
        return 1, name
    return 2, name


def public_names(module: ModuleType) -> set[str]:
    return {
        name for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }


def test_all_is_sorted() -> None:
    assert warehouse.__all__ == sorted(warehouse.__all__, key=isort_key)
    assert len(set(warehouse.__all__)) == len(warehouse.__all__)


def test_all_equals_public_names_of_package() -> None:
    assert set(warehouse.__all__) == public_names(warehouse)


def test_all_holds_the_names_the_style_guide_promises() -> None:
    promised = {"AppendBuffer", "BarStore", "WarehouseError", "export_parquet", "load_queries"}
    assert promised <= set(warehouse.__all__)


def test_every_exported_name_is_documented() -> None:
    for name in warehouse.__all__:
        value = getattr(warehouse, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name


def test_every_error_derives_from_warehouse_error_and_is_exported() -> None:
    raised = {
        name for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception)
    }
    assert raised <= set(warehouse.__all__)
    for name in raised:
        assert issubclass(getattr(warehouse, name), warehouse.WarehouseError), name


def test_errors_module_docstring_draws_every_error() -> None:
    doc = errors.__doc__ or ""
    drawn = set(re.findall(r"[├└]── (\w+)", doc))
    subclasses = {cls.__name__ for cls in warehouse.WarehouseError.__subclasses__()}
    assert drawn == subclasses


def test_sample_path_finds_the_bundled_sample_from_any_directory(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    path = warehouse.sample_path()
    assert path.is_absolute()
    assert pq.read_metadata(path).num_rows == 400 * 390
