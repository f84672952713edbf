"""Where gap filling gets missing bars from: the `BarSource` protocol and three sources.

A source answers one question, "the one-minute bars of ``symbol`` with ``start <= ts < end``",
with anything `Warehouse.extend` takes (a pyarrow Table, a polars or pandas DataFrame, a list of
bars, tuples or dicts). The upkeep thread (`warehouse.upkeep`) asks it for the span of each
symbol's gaps and checks every answer: malformed rows, rows of another symbol or outside the
span, and rows in minutes already held are left out, so a source may return more than asked.

- `ArchiveSource`: a Parquet archive laid out as `export_parquet` writes one
  (``date=YYYY-MM-DD/bars.parquet``), e.g. a vendor's dump, or another machine's archive.
- `DuckDBSource`: another warehouse's DuckDB file (its stored bars, as its ``bars`` view shows
  them), or a table (or view) of bars in any DuckDB database file; the file is opened
  read-only for each question, never held.
- `CallableSource`: any function ``(symbol, start, end) -> bars``, e.g. a vendor's REST API;
  `as_source` wraps a bare callable in it.

Sources run in the upkeep's worker threads; each question to the two file sources opens its
own DuckDB connection, so they share nothing with the warehouse's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

import duckdb
import pyarrow as pa

from warehouse.archive import archive_files, duckdb_path
from warehouse.errors import StoreError
from warehouse.schema import BAR_SCHEMA, COLUMNS, OPTIONAL, REQUIRED, check_symbol
from warehouse.store import BarStore

__all__ = ["ArchiveSource", "BarSource", "CallableSource", "DuckDBSource", "as_source"]

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"


@runtime_checkable
class BarSource(Protocol):
    """Anything that can fetch a symbol's bars over a time span."""

    def fetch(self, symbol: str, start: datetime, end: datetime) -> object:
        """The bars of ``symbol`` with ``start <= ts < end`` (aware UTC datetimes).

        Returns anything `Warehouse.extend` takes; an empty answer means the source has none.
        """
        ...


@dataclass(frozen=True)
class CallableSource:
    """A source made of a function ``(symbol, start, end) -> bars``.

    Examples
    --------
    >>> source = CallableSource(lambda symbol, start, end: [])
    >>> source.fetch("AAPL", None, None)
    []
    """

    function: Callable[[str, datetime, datetime], object]

    def fetch(self, symbol: str, start: datetime, end: datetime) -> object:
        """Call the function."""
        return self.function(symbol, start, end)


class ArchiveSource:
    """Bars from a Parquet archive of day partitions (``date=YYYY-MM-DD/bars.parquet``).

    Parameters
    ----------
    directory
        The archive's root. Its day files are listed on every question, so days archived
        meanwhile are found; a day whose date is outside the span is not read.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def fetch(self, symbol: str, start: datetime, end: datetime) -> pa.Table:
        """The archived bars of ``symbol`` in ``[start, end)``, in ts order."""
        # A trading date's partition may hold bars of the next UTC day (a session across UTC
        # midnight): the day before the span's first is read too.
        first = f"date={(start.date() - timedelta(days=1)).isoformat()}"
        last = f"date={end.date().isoformat()}"
        files = [f for f in archive_files(self.directory) if first <= f.parent.name <= last]
        if not files:
            return pa.table({name: [] for name in COLUMNS})
        listed = [duckdb_path(f) for f in files]
        try:
            with duckdb.connect() as con:
                return _bars_between(con, "read_parquet($files, union_by_name = true)",
                                     {"files": listed}, symbol, start, end)
        except duckdb.Error as exc:
            raise StoreError(f"reading the archive {self.directory} failed: {exc}") from exc
        except StoreError as exc:
            raise StoreError(f"the archive {self.directory}: {exc}") from exc

    def __repr__(self) -> str:
        return f"ArchiveSource({str(self.directory)!r})"


class DuckDBSource:
    """Bars from another DuckDB database file, opened read-only per question.

    Parameters
    ----------
    path
        The database file. It is opened for each question and closed after, so another
        process can hold it between questions (DuckDB lets one writer in at a time; a
        question while one writes fails, is counted and retried).
    table
        A table or view with the bar columns (``symbol``, ``ts`` and the prices), a plain or
        schema-qualified name. By default (None) the file is another warehouse's, and its
        stored bars are read as its own ``bars`` view reads them: the compacted table and the
        tail that flushes write to until the next compaction (a warehouse stopped without
        `Warehouse.close`, e.g. killed, leaves its last flushes there). Its journal is not
        read: bars it never flushed are not found.

    Raises
    ------
    ValueError
        ``table`` is not a plain name.
    """

    def __init__(self, path: str | Path, *, table: str | None = None) -> None:
        if table is not None and not re.match(_IDENTIFIER, table):
            raise ValueError(f"table {table!r} is not a plain table name")
        self.path = Path(path)
        self.table = table

    def fetch(self, symbol: str, start: datetime, end: datetime) -> pa.Table:
        """The bars of ``symbol`` in ``[start, end)`` from the file, in ts order.

        Raises
        ------
        StoreError
            The file cannot be opened or read (or, without ``table``, is no warehouse file).
        """
        check_symbol(symbol)
        params = {"symbol": symbol, "start": start, "end": end}
        if self.table is None:
            try:
                with BarStore(self.path, read_only=True) as store:
                    return store.arrow(store.statements["symbol_bars_between"], params)
            except StoreError as exc:
                if not self.path.is_file():
                    raise
                raise StoreError(
                    f"{exc}; for a table of bars in a DuckDB file that is no warehouse's, name "
                    "it: DuckDBSource(path, table=...) (on the command line, --table)"
                ) from exc
        try:
            with duckdb.connect(str(self.path), read_only=True) as con:
                return _bars_between(con, self.table, {}, symbol, start, end)
        except duckdb.Error as exc:
            raise StoreError(f"reading {self.table} of {self.path} failed: {exc}") from exc
        except StoreError as exc:
            raise StoreError(f"{self.table} of {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        if self.table is None:
            return f"DuckDBSource({str(self.path)!r})"
        return f"DuckDBSource({str(self.path)!r}, table={self.table!r})"


def _bars_between(
    con: duckdb.DuckDBPyConnection, relation: str, relation_params: dict[str, object],
    symbol: str, start: datetime, end: datetime,
) -> pa.Table:
    """The bars of ``symbol`` in [start, end) of ``relation`` (SQL), in ts order.

    A vendor's file or a user's table may lack the optional columns (``vwap``,
    ``trade_count``): they come back null. Column names match in any case, as in SQL.

    Raises
    ------
    StoreError
        ``relation`` lacks a column that a bar cannot do without.
    """
    con.execute("SET TimeZone = 'UTC'")
    found = con.sql(f"SELECT * FROM {relation}", params=relation_params).columns
    names = {name.lower(): name for name in found}
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise StoreError(f"no column {', '.join(missing)} among {found}; a bar has "
                         f"{', '.join(REQUIRED)} (and may have {', '.join(OPTIONAL)})")
    present = [name for name in COLUMNS if name in names]
    listed = ", ".join(f'"{names[name]}" AS {name}' for name in present)
    table = con.sql(
        f"SELECT * FROM (SELECT {listed} FROM {relation}) "
        "WHERE symbol = $symbol AND ts >= $start AND ts < $end ORDER BY ts",
        params={**relation_params, "symbol": symbol, "start": start, "end": end},
    ).to_arrow_table()
    for name in OPTIONAL:
        if name not in names:
            table = table.append_column(name, pa.nulls(table.num_rows, BAR_SCHEMA.field(name).type))
    return table


def as_source(source: BarSource | Callable[[str, datetime, datetime], object]) -> BarSource:
    """``source`` as a `BarSource`: a bare callable is wrapped in `CallableSource`.

    Raises
    ------
    TypeError
        It is neither.
    """
    if isinstance(source, BarSource):
        return source
    if callable(source):
        return CallableSource(source)
    raise TypeError(
        f"a bar source has a fetch(symbol, start, end) method or is a function of those; got "
        f"{type(source).__name__}"
    )
