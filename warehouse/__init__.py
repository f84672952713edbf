"""A DuckDB-backed warehouse for a trading session's market bars."""

import importlib.metadata as _metadata

from warehouse.aio import (
    SessionData,
    configure_session_data,
    get_session_data,
    reset_session_data,
)
from warehouse.archive import export_parquet
from warehouse.buffer import AppendBuffer
from warehouse.calendar import Calendar, SessionWindow
from warehouse.client import RemoteWarehouse, connect
from warehouse.derive import DerivedBar
from warehouse.endpoint import Limits
from warehouse.errors import (
    CalendarError,
    ClosedError,
    EndpointError,
    ExportError,
    IngestError,
    InvalidBarError,
    MissingExtraError,
    QueryNotFoundError,
    SchemaMismatchError,
    SessionDataError,
    SessionError,
    StoreError,
    WarehouseError,
)
from warehouse.joins import asof
from warehouse.metrics import SessionMetrics
from warehouse.queries import load_queries
from warehouse.sample import sample_path
from warehouse.scan import scan_archive
from warehouse.schema import BAR_SCHEMA, Bar
from warehouse.session import Session
from warehouse.sources import ArchiveSource, BarSource, CallableSource, DuckDBSource
from warehouse.store import BarStore
from warehouse.upkeep import Upkeep, UpkeepStats
from warehouse.warehouse import Warehouse

try:
    # The one source of the version: pyproject.toml, through the installed package's metadata.
    __version__ = _metadata.version("warehouse")
except _metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BAR_SCHEMA",
    "AppendBuffer",
    "ArchiveSource",
    "Bar",
    "BarSource",
    "BarStore",
    "Calendar",
    "CalendarError",
    "CallableSource",
    "ClosedError",
    "DerivedBar",
    "DuckDBSource",
    "EndpointError",
    "ExportError",
    "IngestError",
    "InvalidBarError",
    "Limits",
    "MissingExtraError",
    "QueryNotFoundError",
    "RemoteWarehouse",
    "SchemaMismatchError",
    "Session",
    "SessionData",
    "SessionDataError",
    "SessionError",
    "SessionMetrics",
    "SessionWindow",
    "StoreError",
    "Upkeep",
    "UpkeepStats",
    "Warehouse",
    "WarehouseError",
    "asof",
    "configure_session_data",
    "connect",
    "export_parquet",
    "get_session_data",
    "load_queries",
    "reset_session_data",
    "sample_path",
    "scan_archive",
]
