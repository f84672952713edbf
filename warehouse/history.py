"""The archive read back: the views ``history`` and ``bars_all``, trailing statistics, prefetch.

`publish_history` shows the archive's day files (`archive.archive_files`) as the view
``history`` (the bars with their partition's ``date``): every day, or the last ``sessions``
days before a session's date. ``bars_all`` is ``history`` and today's ``bars`` as one view.

`trailing_stats` reads the same files on a DuckDB connection of its own, never the store's, so
computing them (~0.5 s over 20 sessions of 8,000 symbols) holds up no flush and no query: per
symbol, its last archived session's close, high, low and volume and the average daily volume
over the trailing sessions, as `Trailing` rows that the warehouse then serves from a dict.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.archive import duckdb_path, partitions, unreadable_reason
from warehouse.errors import ExportError, StoreError
from warehouse.queries import load_statements
from warehouse.store import BarStore

__all__ = ["FilesState", "Trailing", "files_state", "history_days", "history_files",
           "publish_history", "trailing_stats"]

log = logging.getLogger("warehouse")


class Trailing(NamedTuple):
    """A symbol's trailing sessions, from the archive (`Warehouse.trailing`).

    ``prev_*`` are of the last archived session the symbol has bars in (``prev_date``);
    ``avg_daily_volume`` is its volume over the trailing sessions divided by their number
    (a session without its bars counts as zero), ``sessions`` how many of them have its bars.
    """

    prev_date: date
    prev_close: float
    prev_high: float
    prev_low: float
    prev_volume: float
    sessions: int
    avg_daily_volume: float


def history_files(
    directory: str | Path, *, before: date | None = None, sessions: int | None = None
) -> list[Path]:
    """The archive's day files, in date order: those before ``before``, the last ``sessions``."""
    return [f for _, f in history_days(directory, before=before, sessions=sessions)
            if f.is_file()]


def history_days(
    directory: str | Path, *, before: date | None = None, sessions: int | None = None
) -> list[tuple[date, Path]]:
    """`history_files` as (date, day file), the files not looked at without ``sessions``.

    Without ``sessions`` a day's file may be missing (`partitions`); with it, the last
    ``sessions`` days whose file is there.
    """
    days = [(day, f) for day, f in partitions(directory) if before is None or day < before]
    if sessions is not None:
        days = [(day, f) for day, f in days if f.is_file()]
        days = days[len(days) - sessions:] if sessions > 0 else []
    return days


#: Day files as `files_state` sees them: each one's path, inode, size and modification time.
FilesState = tuple[tuple[str, int, int, int], ...]


def files_state(files: list[Path]) -> FilesState:
    """Each day file's path, inode, size and modification time, to tell whether they changed.

    A seal adds a day's file or renames a new one over it (another inode): the state of a list
    read after it differs.

    Raises
    ------
    OSError
        A file cannot be looked at.
    """
    stats = [(str(f), f.stat()) for f in files]
    return tuple((name, s.st_ino, s.st_size, s.st_mtime_ns) for name, s in stats)


def trailing_stats(files: list[Path]) -> dict[str, Trailing]:
    """Per symbol, its `Trailing` statistics over the day files ``files`` (one per session).

    A file that cannot be read (its footer, or DuckDB reading its pages) is left out, with a
    warning on the ``warehouse`` logger naming it: the statistics are those of the other
    sessions, as if it were not archived.

    Raises
    ------
    ExportError
        A path cannot be handed to DuckDB literally (`duckdb_path`).
    """
    readable = []
    for f in files:
        reason = unreadable_reason(f)
        if reason is None:
            readable.append(f)
        else:
            _skip(f, reason)
    try:
        return _trailing_stats(readable)
    except duckdb.Error:
        # A footer that reads over pages that do not: find the files DuckDB cannot read alone.
        whole = [f for f in readable if _reads_alone(f)]
    try:
        return _trailing_stats(whole)
    except duckdb.Error as exc:
        raise ExportError(f"cannot compute trailing statistics over {len(whole)} archived "
                          f"sessions: {exc}") from exc


def _trailing_stats(files: list[Path]) -> dict[str, Trailing]:
    if not files:
        return {}
    listed = "', '".join(_sql_text(duckdb_path(f)) for f in files)
    sql = load_statements()["trailing_stats"].format(files=listed)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(sql, {"sessions": len(files)}).fetchall()
    return {row[0]: Trailing(*row[1:]) for row in rows}


def _reads_alone(path: Path) -> bool:
    try:
        _trailing_stats([path])
    except duckdb.Error as exc:
        _skip(path, str(exc))
        return False
    return True


def _skip(path: Path, reason: str) -> None:
    log.warning("the archive file %s cannot be read; the trailing statistics leave its "
                "session out: %s", path, reason)


def publish_history(
    store: BarStore, directory: str | Path, *, before: date | None = None,
    sessions: int | None = None, today: date | None = None,
) -> None:
    """Define the views ``history`` over the archive at ``directory``, and ``bars_all``.

    ``history`` holds the day files `history_files` selects (``before``, ``sessions``); it is
    empty while there is none. ``bars_all`` is ``history`` and ``bars``, today's bars dated
    ``today`` (the session's trading date), or by their UTC date without a session.

    Only finished day files are read, never a temporary one; the set of days is the one found
    now (the warehouse republishes after exporting to its archive). A damaged file (empty, cut
    short, not Parquet, or not a file of bars) does not stop this: it is logged as a warning on
    the ``warehouse`` logger, and only the queries that read it fail, with an error naming it.
    If no day file can be read, or the archive cannot be listed or read literally, every query
    reading ``history`` fails with the reason.

    Parameters
    ----------
    store
        The store whose connection gets the (temporary) view.
    directory
        The archive root; it need not exist yet.
    before, sessions
        Only the last ``sessions`` days before ``before`` (each None: no limit).
    today
        The trading date of the bars in ``bars``.

    Raises
    ------
    ExportError
        DuckDB refused to define the view (for instance, the store is closed).
    """
    root = Path(directory)
    _define_history(store, root, before, sessions)
    dated = "CAST(ts AS DATE)" if today is None else f"DATE '{today.isoformat()}'"
    _publish(store, root, store.statements["create_bars_all_view"].format(date=dated),
             view="bars_all")


def _define_history(
    store: BarStore, root: Path, before: date | None, sessions: int | None
) -> None:
    try:
        files = history_files(root, before=before, sessions=sessions)
        paths = {f: duckdb_path(f) for f in files}
    except (OSError, ExportError) as exc:
        log.warning("the archive %s cannot be read: %s", root, exc)
        _publish_unreadable(store, root, f"cannot read the archive {root}: {exc}")
        return
    problems = {f: why for f in files if (why := unreadable_reason(f)) is not None}
    if problems:
        log.warning(
            "the archive %s holds %d damaged file(s); the queries reading them will fail: %s",
            root, len(problems), "; ".join(f"{f} ({why})" for f, why in problems.items()),
        )
    if not files:
        _publish(store, root, store.statements["create_history_view_empty"])
        return
    columns = {f: _columns(f) for f in files if f not in problems}
    readable = [f for f, names in columns.items() if names is not None]
    if len({columns[f] for f in readable}) > 1:
        # Days archived before bars recorded their origin, and after: DuckDB matches the
        # columns by name, reading every file's footer, so a damaged file is left out.
        listed = "', '".join(_sql_text(paths[f]) for f in readable)
        _publish(store, root, store.statements["create_history_view_mixed"].format(files=listed))
        return
    # DuckDB takes the view's columns from the first file it is given: a readable one must be
    # first, or every query (and the definition itself) would fail on that one file.
    for first in (f for f in files if f not in problems):
        ordered = [first, *(f for f in files if f != first)]
        listed = "', '".join(_sql_text(paths[f]) for f in ordered)
        try:
            store.define_view("history",
                              store.statements["create_history_view"].format(files=listed))
        except StoreError as exc:  # pyarrow read the footer, DuckDB cannot: try the next one
            problems[first] = str(exc)
            log.warning("the archive file %s cannot be read by DuckDB: %s", first, exc)
        else:
            return
    _publish_unreadable(store, root, "; ".join(
        f"cannot read the archive file {f}: {why}" for f, why in problems.items()
    ))


def _publish_unreadable(store: BarStore, root: Path, message: str) -> None:
    sql = store.statements["create_history_view_unreadable"].format(message=_sql_text(message))
    _publish(store, root, sql)


def _publish(store: BarStore, root: Path, sql: str, *, view: str = "history") -> None:
    try:
        store.define_view(view, sql)
    except StoreError as exc:
        raise ExportError(f"cannot define the history of the archive {root}: {exc}") from exc




def _columns(path: Path) -> tuple[str, ...] | None:
    """The column names of a day file (None if its footer cannot be read after all)."""
    try:
        return tuple(pq.read_schema(path).names)
    except (OSError, pa.ArrowException):
        return None


def _sql_text(text: str) -> str:
    """``text`` for the inside of a single-quoted SQL string literal."""
    return text.replace("'", "''")
