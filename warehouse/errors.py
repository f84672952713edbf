"""Errors raised by the warehouse.

Every error the package raises on purpose derives from `WarehouseError`::

    WarehouseError
    ├── ClosedError            the warehouse is closed (or closing): the bar was not stored
    ├── InvalidBarError        a bar failed validation (names symbol, ts, field, value)
    ├── SchemaMismatchError    a batch has missing, extra or mistyped columns
    ├── QueryNotFoundError     no SQL file of that name (lists the known names)
    ├── StoreError             DuckDB refused an operation (wraps ``duckdb.Error``)
    ├── ExportError            the Parquet export failed; the previous export is intact
    ├── CalendarError          unknown exchange code, not a session, out of range, naive time
    ├── SessionError           a session step out of order (start while open, end with none),
    │                          or one needing the archive the warehouse was opened without
    ├── MissingExtraError      an optional dependency is not installed (names the pip extra)
    ├── SessionDataError       the process's `SessionData` is not configured, or over another
    │                          warehouse (`warehouse.aio`)
    ├── IngestError            an input file cannot be ingested (names file, row and column)
    └── EndpointError          the network endpoint refused a request, or cannot be reached
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class WarehouseError(Exception):
    """Base class of every error raised by the warehouse."""


def _format_ts(ts: object) -> str:
    if isinstance(ts, int) and not isinstance(ts, bool):
        try:
            return datetime.fromtimestamp(ts / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%fZ")
        except (OverflowError, OSError, ValueError):
            return f"{ts}us"
    return repr(ts)


class ClosedError(WarehouseError):
    """The warehouse is closed or closing; the bar or batch was not stored."""


class InvalidBarError(WarehouseError, ValueError):
    """A bar failed validation; nothing of it (or of its batch) was stored."""

    def __init__(self, symbol: Any, ts: Any, field: str, value: Any, reason: str) -> None:
        self.symbol = symbol
        self.ts = ts
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"bar {symbol!r} {_format_ts(ts)}: {field} {reason}")


class SchemaMismatchError(WarehouseError, TypeError):
    """A batch does not match the bar schema (missing, extra or mistyped columns)."""


class QueryNotFoundError(WarehouseError, KeyError):
    """No named query of that name exists in the SQL folder."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"no query named {name!r}; known queries: {', '.join(known)}")

    def __str__(self) -> str:
        return str(self.args[0])


class StoreError(WarehouseError):
    """DuckDB refused an operation on the session table."""


class ExportError(WarehouseError):
    """The Parquet export failed; the previous export is left intact."""


class CalendarError(WarehouseError, ValueError):
    """An exchange calendar cannot answer: unknown code, not a session, out of range, naive time."""

    def __init__(self, code: str, value: Any, reason: str) -> None:
        self.code = code
        self.value = value
        self.reason = reason
        super().__init__(f"calendar {code}: {reason}")


class SessionError(WarehouseError):
    """A session step out of order, or without an archive; the session and bars are unchanged."""


class MissingExtraError(WarehouseError, ImportError):
    """An optional dependency of a feature is not installed; the message names the extra."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        self.feature = feature
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs {package}, which is not installed; "
            f'install it with: pip install "warehouse[{extra}]"'
        )

    def __str__(self) -> str:
        return str(self.args[0])


class SessionDataError(WarehouseError):
    """The process's `SessionData` is not configured yet, or is configured over another one."""

    def __init__(self, configured: object | None, requested: object | None = None) -> None:
        self.configured = configured
        self.requested = requested
        if configured is None:
            message = (
                "the process's session data is not configured; call "
                "warehouse.configure_session_data(Warehouse(path)) once at start-up, before "
                "get_session_data()"
            )
        else:
            message = (
                f"the process's session data is already configured over {configured!r}; call "
                f"warehouse.reset_session_data() first to configure it over {requested!r}"
            )
        super().__init__(message)


class IngestError(WarehouseError, ValueError):
    """An input cannot be ingested; nothing of a failed ``on_invalid="raise"`` ingest is stored."""

    def __init__(
        self, file: str | None, reason: str, *, row: int | None = None, column: str | None = None
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.reason = reason
        # "bars.csv: row 57, column 'High': ...", each part only when known.
        place = ", ".join(part for part in (
            None if row is None else f"row {row}",
            None if column is None else f"column {column!r}",
        ) if part)
        where = ": ".join(part for part in (file, place) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class EndpointError(WarehouseError):
    """The network endpoint refused a request (token, statement, limit), or cannot be reached."""
