"""Lazy scans over every day: the archive's sealed day files and, in a warehouse, today's bars.

`scan_archive` and `Warehouse.scan` return a `polars.LazyFrame` whose rows are found when it is
collected, not when it is built: the day files the archive holds at that moment, and (for
`Warehouse.scan`) a snapshot of today's bars taken at the same instant as the list of files.
Collect the same frame again later and it sees the days sealed since.

Pushdown. The frame is a Polars IO source: Polars hands it the filter and the columns a query
needs. The terms of the filter on ``date`` alone choose the day files before any is opened; the
rest goes to Polars' own Parquet scan of the files chosen (hive partitions ``date=...``), which
skips row groups by their statistics (``symbol``, ``ts``) and reads only the columns asked for.
A query for one symbol over one day opens that day's file only. The terms on ``symbol`` (and on
``date``) alone also narrow today's snapshot before it is taken.

Replaced files. A seal replaces a day's file by renaming a new one over it. Polars' Parquet
reader may open a file by its name for its footer and again for its pages (its object-store
reader does: ``POLARS_FORCE_ASYNC=1``): a rename between the two reads the new file's bytes at
the old file's offsets, which fails on a page header (measured: 54 of ~18,300 reads) or, worse,
mixes two versions of the day. Here each day file chosen is held open while Polars reads it, so
its inode cannot be reused, and its name is checked to name that inode still once read: a day
replaced meanwhile is read again. A day is read whole, as it was before the seal or as the seal
left it.

Damaged files. A day file that cannot be read fails the collect that reads it, with an
`ExportError` naming the file and its date; the other days still scan (a filter on ``date``
leaves that one out, and ``warehouse archive verify`` checks every day). A scan does not skip
it quietly: a year of sessions less one is not the answer asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import polars as pl
from polars.io.plugins import register_io_source

from warehouse._files import identity
from warehouse.archive import _day_of, unreadable_reason
from warehouse.errors import ExportError
from warehouse.history import history_days
from warehouse.schema import MAX_TS, MIN_TS, STORED_SCHEMA, from_micros, to_micros

__all__ = ["FILE_SCHEMA", "SCAN_SCHEMA", "Parts", "Wanted", "archive_days", "scan_archive",
           "scan_parts"]

#: A day file's columns as Polars reads them (``origin`` is null in days archived before bars
#: recorded it).
FILE_SCHEMA = pl.Schema(pl.from_arrow(STORED_SCHEMA.empty_table()).schema)  # type: ignore[union-attr]
#: A scan's columns: those of SQL's ``bars_all``, each bar's session ``date`` last.
SCAN_SCHEMA = pl.Schema({**FILE_SCHEMA, "date": pl.Date()})
#: Day files read by one Polars scan, by their size on disk: a scan of many days holds about
#: this much of them (decompressed: a few times more) at once, whatever the number of days.
_CHUNK_BYTES = 64 << 20
#: How many times a run of day files is read again when a seal replaces one of them meanwhile.
_ATTEMPTS = 20
#: A session's bars fall within a day of its date in UTC (an open at 23:00 UTC the evening
#: before, an extended close after midnight): the dates a ts range can reach.
_DATE_SLACK = timedelta(days=1)
_Value = TypeVar("_Value", date, str)


@dataclass(frozen=True)
class Wanted:
    """What a collect asks for: the scan's own bounds and the filter Polars pushed down.

    ``symbols``, ``start`` and ``end`` are the arguments of the scan (None: no bound); the
    filter's terms on ``date`` or ``symbol`` alone choose days and symbols before any is read.
    """

    symbols: tuple[str, ...] | None
    start: int | None
    end: int | None
    predicate: pl.Expr | None

    def days(self, days: Sequence[date]) -> list[date]:
        """The days of ``days`` that rows asked for may be of (a subset, in the same order)."""
        low = None if self.start is None else (from_micros(self.start) - _DATE_SLACK).date()
        high = None if self.end is None else (from_micros(self.end) + _DATE_SLACK).date()
        kept = [d for d in days if (low is None or d >= low) and (high is None or d <= high)]
        return self._passing("date", kept)

    def symbols_among(self, symbols: Sequence[str]) -> list[str]:
        """The symbols of ``symbols`` that rows asked for may be of (a subset, same order)."""
        named = None if self.symbols is None else set(self.symbols)
        return self._passing("symbol", [s for s in symbols if named is None or s in named])

    def _passing(self, column: str, values: list[_Value]) -> list[_Value]:
        """The values the filter's terms on ``column`` alone let through.

        A term that reads ``column`` only is a function of its value (Polars pushes down only
        row-wise filters), so a value it refuses is refused for every row holding it. Anything
        this cannot evaluate chooses nothing out: Polars applies the whole filter anyway.
        """
        terms = [t for t in _terms(self.predicate) if set(t.meta.root_names()) <= {column}]
        if not terms or not values:
            return values
        dtype = SCAN_SCHEMA[column]
        try:
            kept = pl.DataFrame({column: values}, schema={column: dtype}).filter(terms)
        except pl.exceptions.PolarsError:
            return values
        passing = set(kept[column].to_list())
        return [v for v in values if v in passing]


def _terms(predicate: pl.Expr | None) -> list[pl.Expr]:
    """The terms of a filter that are and-ed together (the filter itself if it is not an and)."""
    if predicate is None:
        return []
    try:
        node = json.loads(predicate.meta.serialize(format="json"))
        is_and = node["BinaryExpr"]["op"] == "And"
    except (pl.exceptions.PolarsError, ValueError, KeyError, TypeError):
        is_and = False
    if not is_and:
        return [predicate]
    return [term for side in predicate.meta.pop() for term in _terms(side)]


#: What a collect reads: the days (date, day file: a missing one is skipped), in date order, and
#: today's bars, if any (with ``date``).
Parts = tuple[list[tuple[date, Path]], pl.DataFrame | None]


def scan_archive(
    directory: str | Path,
    symbols: str | Iterable[str] | None = None,
    start: datetime | int | str | None = None,
    end: datetime | int | str | None = None,
) -> pl.LazyFrame:
    """A lazy scan of every sealed day of a Parquet archive, with pushdown.

    Needs no warehouse: any machine that can read the archive's folder can run it. Its rows are
    the bars of the day files found when the frame is collected (not when it is built), with
    the columns of SQL's ``history`` (``origin`` null on days archived before bars recorded it)
    and each bar's session ``date``, in (date, symbol, ts) order.

    Filters on ``date``, ``symbol`` and ``ts`` and the columns selected are pushed down: a
    query for one symbol over one day opens that day's file only. Each day is read whole as one
    version of its file, also while another process seals it again (see the module's notes).

    Parameters
    ----------
    directory
        The archive root (``date=YYYY-MM-DD/bars.parquet`` folders, as `end_session` and
        `export_parquet` write them).
    symbols
        Only these symbols (a string: one symbol).
    start, end
        Only bars with ``start <= ts < end``; each takes what `Warehouse.append` takes for
        ``ts`` (an aware datetime, an ISO string with an offset, UTC microseconds).

    Returns
    -------
    polars.LazyFrame
        Columns symbol, ts, open, high, low, close, volume, vwap, trade_count, origin, date.

    Raises
    ------
    ExportError
        ``directory`` is not a folder. When collected: the archive cannot be listed, or a day
        file the query reads cannot be read (the message names it and its date).

    Examples
    --------
    >>> import polars as pl, tempfile
    >>> from warehouse import Warehouse
    >>> archive = tempfile.mkdtemp()
    >>> with Warehouse(":memory:") as wh:
    ...     wh.append("AAPL", "2025-11-21T14:30:00Z", 228.1, 228.6, 227.9, 228.4, 51_200)
    ...     _ = wh.export_parquet(archive)
    >>> lf = scan_archive(archive).filter(pl.col("symbol") == "AAPL")
    >>> lf.select("date", "close").collect().rows()
    [(datetime.date(2025, 11, 21), 228.4)]
    """
    root = Path(directory)
    if not root.is_dir():
        raise ExportError(f"the archive {root} is not a folder; give the folder that holds "
                          "the date=YYYY-MM-DD partitions")

    def parts(wanted: Wanted) -> Parts:
        return archive_days(root), None

    return scan_parts(parts, symbols=symbols, start=start, end=end, name=str(root))


def archive_days(root: Path, *, before: date | None = None,
                 sessions: int | None = None) -> list[tuple[date, Path]]:
    """`history_days` of ``root``, a listing that fails raising `ExportError`."""
    try:
        return history_days(root, before=before, sessions=sessions)
    except OSError as exc:
        raise ExportError(f"cannot list the archive {root}: {exc}") from exc


def scan_parts(
    parts: Callable[[Wanted], Parts],
    *,
    symbols: str | Iterable[str] | None = None,
    start: datetime | int | str | None = None,
    end: datetime | int | str | None = None,
    name: str = "",
) -> pl.LazyFrame:
    """A LazyFrame of `SCAN_SCHEMA` over what ``parts`` gives at each collect.

    ``parts`` is called once per collect with what the query asks for (`Wanted`) and returns
    the day files to read and today's bars (or None); the day files are then opened at once.
    """
    wanted_symbols = None if symbols is None else (
        (symbols,) if isinstance(symbols, str) else tuple(symbols))
    first = None if start is None else to_micros(start)
    last = None if end is None else to_micros(end)

    def source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        wanted = Wanted(wanted_symbols, first, last, predicate)
        listed, today = parts(wanted)
        days = dict(listed)
        chosen = [days[d] for d in wanted.days(list(days))]
        # n_rows: the first rows of the source, before the filter (Polars asks for both when
        # a head comes before a filter): counted over the days, then today's bars.
        left = [n_rows]
        yield from _read_days(chosen, with_columns, predicate, left)
        if today is not None and (left[0] is None or left[0] > 0):
            yield _taken(today.lazy(), with_columns, predicate, left)

    lazy = register_io_source(source, schema=SCAN_SCHEMA, explain_name="warehouse",
                              explain_detail=name)
    bounds = _bounds(wanted_symbols, first, last)
    return lazy if bounds is None else lazy.filter(bounds)


def _bounds(symbols: tuple[str, ...] | None, first: int | None,
            last: int | None) -> pl.Expr | None:
    """The scan's arguments as a filter: Polars pushes it down with the query's own."""
    terms = []
    if symbols is not None:
        terms.append(pl.col("symbol").is_in(list(symbols)))
    if first is not None:
        terms.append(pl.col("ts") >= from_micros(max(first, MIN_TS)))
    if last is not None:
        terms.append(pl.col("ts") < from_micros(min(last, MAX_TS)))
    return pl.all_horizontal(terms) if terms else None


def _taken(lazy: pl.LazyFrame, with_columns: list[str] | None, predicate: pl.Expr | None,
           left: list[int | None]) -> pl.DataFrame:
    """The rows asked for of ``lazy``: of its first ``left[0]`` rows if that is not None.

    ``left[0]`` is then lowered by the rows taken before the filter.
    """
    if left[0] is None:
        if predicate is not None:
            lazy = lazy.filter(predicate)
        return (lazy if with_columns is None else lazy.select(with_columns)).collect()
    first = lazy.head(left[0]).collect()
    left[0] -= first.height
    return _taken(first.lazy(), with_columns, predicate, [None])


def _read_days(
    files: list[Path], with_columns: list[str] | None, predicate: pl.Expr | None,
    left: list[int | None],
) -> Iterator[pl.DataFrame]:
    """The rows asked for of the day files ``files``, a few files at a time, in their order."""
    for chunk in _chunks(files):
        if left[0] is not None and left[0] <= 0:
            return
        frame = _read_whole(chunk, with_columns, predicate, left)
        if frame is not None:
            yield frame


def _chunks(files: list[Path]) -> Iterator[list[Path]]:
    """``files`` in runs of about `_CHUNK_BYTES` (at least one file each)."""
    chunk: list[Path] = []
    size = 0
    for f in files:
        with contextlib.suppress(OSError):  # gone or unreadable: opening it says which
            size += f.stat().st_size
        chunk.append(f)
        if size >= _CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _read_whole(
    files: list[Path], with_columns: list[str] | None, predicate: pl.Expr | None,
    left: list[int | None],
) -> pl.DataFrame | None:
    """The rows asked for of ``files``, each read as one version of itself; None if all gone.

    Each file is held open while Polars reads it, so its inode cannot be reused; if a file's
    name names another inode afterwards, a seal replaced it meanwhile and the read may mix the
    two versions (or fail on it): the files are read again.
    """
    for _ in range(_ATTEMPTS):
        taken: list[int | None] = [left[0]]
        with _held(files) as held:
            if not held:
                return None
            try:
                frame = _taken(_scan([str(f) for f in held]), with_columns, predicate, taken)
                error: BaseException | None = None
            except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
                error = exc
            if any(identity(f) != found for f, found in held.items()):
                continue  # replaced while read: read again
        if error is None:
            left[0] = taken[0]
            return frame
        if isinstance(error, pl.exceptions.PolarsError):
            for f in held:
                reason = _unreadable(f, with_columns)
                if reason is not None:
                    raise _damaged(f, reason) from error
        raise error  # every file reads alone: the query's own error
    raise ExportError(
        f"the archive's day files {', '.join(map(str, files))} were replaced {_ATTEMPTS} times "
        "while being read (sessions being sealed again); collect again once the seals are done"
    )


@contextlib.contextmanager
def _held(files: list[Path]) -> Iterator[dict[Path, tuple[int, int]]]:
    """Hold each file open; yield the identity (device, inode) of each one found.

    A partition without a day file (or gone since it was listed) is left out, as
    `archive_files` leaves it out: that day is not in the archive.
    """
    descriptors: list[int] = []
    held: dict[Path, tuple[int, int]] = {}
    try:
        for f in files:
            try:
                fd = os.open(f, os.O_RDONLY)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise _damaged(f, str(exc)) from exc
            descriptors.append(fd)
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode):
                held[f] = (info.st_dev, info.st_ino)
        yield held
    finally:
        for fd in descriptors:
            os.close(fd)


def _scan(paths: list[str]) -> pl.LazyFrame:
    return pl.scan_parquet(
        paths, hive_partitioning=True, hive_schema={"date": pl.Date()}, schema=FILE_SCHEMA,
        missing_columns="insert", glob=False,
    )


def _unreadable(path: Path, with_columns: list[str] | None) -> str | None:
    """Why one day file cannot be read (its footer, or the columns asked for), or None."""
    reason = unreadable_reason(path)
    if reason is not None:
        return reason
    try:
        _taken(_scan([str(path)]), with_columns, None, [None])
    except pl.exceptions.PolarsError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _damaged(path: Path, reason: str) -> ExportError:
    day = _day_of(path.parent.name)
    return ExportError(
        f"the archive's day file {path} cannot be read ({reason}); leave its day out with "
        f".filter(pl.col('date') != date.fromisoformat('{day}')), or seal that session again "
        f"(warehouse archive verify --archive {path.parent.parent} checks every day)"
    )
