"""A DuckDB-backed warehouse for a trading session's market bars."""

from warehouse.aio import (
    SessionData,
    configure_session_data,
    get_session_data,
    reset_session_data,
)
from warehouse.archive import export_parquet
from warehouse.buffer import AppendBuffer
from warehouse.calendar import Calendar, SessionWindow
from warehouse.derive import DerivedBar
from warehouse.errors import (
    CalendarError,
    ClosedError,
    ExportError,
    InvalidBarError,
    MissingExtraError,
    QueryNotFoundError,
    SchemaMismatchError,
    SessionDataError,
    SessionError,
    StoreError,
    WarehouseError,
)
from warehouse.metrics import SessionMetrics
from warehouse.queries import load_queries
from warehouse.schema import BAR_SCHEMA, Bar
from warehouse.session import Session
from warehouse.store import BarStore
from warehouse.warehouse import Warehouse

__all__ = [
    "BAR_SCHEMA",
    "AppendBuffer",
    "Bar",
    "BarStore",
    "Calendar",
    "CalendarError",
    "ClosedError",
    "DerivedBar",
    "ExportError",
    "InvalidBarError",
    "MissingExtraError",
    "QueryNotFoundError",
    "SchemaMismatchError",
    "Session",
    "SessionData",
    "SessionDataError",
    "SessionError",
    "SessionMetrics",
    "SessionWindow",
    "StoreError",
    "Warehouse",
    "WarehouseError",
    "configure_session_data",
    "export_parquet",
    "get_session_data",
    "load_queries",
    "reset_session_data",
]
