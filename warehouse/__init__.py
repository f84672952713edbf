"""A DuckDB-backed warehouse for a trading session's market bars."""

from warehouse.archive import export_parquet
from warehouse.buffer import AppendBuffer
from warehouse.errors import (
    ClosedError,
    ExportError,
    InvalidBarError,
    QueryNotFoundError,
    SchemaMismatchError,
    StoreError,
    WarehouseError,
)
from warehouse.metrics import SessionMetrics
from warehouse.queries import load_queries
from warehouse.schema import BAR_SCHEMA, Bar
from warehouse.store import BarStore
from warehouse.warehouse import Warehouse

__all__ = [
    "BAR_SCHEMA",
    "AppendBuffer",
    "Bar",
    "BarStore",
    "ClosedError",
    "ExportError",
    "InvalidBarError",
    "QueryNotFoundError",
    "SchemaMismatchError",
    "SessionMetrics",
    "StoreError",
    "Warehouse",
    "WarehouseError",
    "export_parquet",
    "load_queries",
]
