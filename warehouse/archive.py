"""The Parquet archive: each session's bars exported into it, and its days read back as SQL.

`export_parquet` writes the stored bars at the end of a session, hive-partitioned by UTC date,
atomically; `end_session` seals a session into the partition of its trading date and the
manifest (`record_session`, `verify_archive`). `warehouse.history` reads the archive back.

A seal records its new file in the manifest as pending before the file replaces the day's,
then as the session's entry: killed between the two, the day's file is the pending entry's, and
the next seal or warehouse opened on the archive completes the entry
(`finish_interrupted_seals`).

Layout: ``<directory>/date=YYYY-MM-DD/bars.parquet``, zstd, sorted by (symbol, ts), timestamps
INT64 microseconds adjusted to UTC.

An export adds to the archive and never takes from it: a day that already has a file gets a new
file holding that file's bars whose (symbol, ts) the session does not hold plus the session's
bars of the day, so bars exported earlier by another session on the same UTC date stay. Each
day's new file is written beside its final name and renamed over it once complete and synced,
so a reader sees the old file or the new one, never a partial one; a failed or killed export
leaves the previous file as it was, and a day file that cannot be read is never replaced.

Paths are literal. DuckDB expands ``*``, ``?`` and ``[...]`` in every path it reads, a list's
items included, so a file is handed to it with those characters escaped (`duckdb_path`), and
the archive's files are listed with `Path.iterdir`, never with a pattern built from its path.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.errors import ExportError, StoreError
from warehouse.schema import BAR_SCHEMA, MAX_TS, MIN_TS, STORED_SCHEMA, from_micros
from warehouse.session import Session
from warehouse.store import BarStore

if sys.platform != "win32":
    import fcntl

log = logging.getLogger("warehouse")

Compression = Literal["zstd", "snappy", "uncompressed"]
#: Each `Compression` as pyarrow's Parquet writer names it.
_CODECS = {"zstd": "zstd", "snappy": "snappy", "uncompressed": "none"}
#: Called after each day is written: (days done, days in all).
Progress = Callable[[int, int], None]
FILE_NAME = "bars.parquet"
#: The archive's record of its sealed sessions (see `record_session`).
#: A leading underscore: dataset readers (pyarrow, Spark) skip it when reading the folder.
MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
#: The characters DuckDB treats as a glob pattern in a path it reads.
_GLOB_CHARACTERS = frozenset("*?[")
#: What pyarrow raises for a file that is not (or no longer) Parquet.
_UNREADABLE = (OSError, ValueError, pa.ArrowException)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    ``rows`` counts the session's bars written; bars of earlier exports that a day's new file
    keeps are not counted.
    """

    directory: Path
    files: tuple[Path, ...]
    rows: int


def export_parquet(
    store: BarStore,
    directory: str | Path,
    *,
    compression: Compression = "zstd",
    progress: Progress | None = None,
    session: Session | None = None,
) -> ExportResult:
    """Write every stored bar to Parquet under ``directory``, one file per UTC date.

    With ``session``, the stored bars are that session's: they go to the one partition of its
    trading date, and the archive's manifest records it (`record_session`).

    Flush first (`Warehouse.export_parquet` does) if unflushed bars must be included.

    Parameters
    ----------
    store
        The store to export; its lock is held throughout, so no flush interleaves.
    directory
        The archive root; created if missing. Days the session has no bar on are left alone.
        A day that already has a file is merged, key for key: the new file holds the archived
        bars whose (symbol, ts) the session does not hold and every session bar of that day,
        in (symbol, ts) order. Exporting the same session again writes the same rows.
    compression
        Parquet codec.
    progress
        Called after each day with (done, total).

    Returns
    -------
    ExportResult
        The files written and the number of session bars written.

    Raises
    ------
    ExportError
        The directory is not writable, the disk is full, DuckDB failed, or a day's archived
        file cannot be read (its bars could not be kept; the message names it). Without
        ``session``: the directory holds sealed sessions (a manifest). The previous
        file of every day not yet replaced is intact, and no temporary file is left behind.
    """
    if compression not in ("zstd", "snappy", "uncompressed"):
        raise ExportError(f"unknown compression {compression!r}; use zstd, snappy or uncompressed")
    root = Path(directory)
    files: list[Path] = []
    rows = 0
    if session is not None:
        finish_interrupted_seals(root)
    elif (root / MANIFEST_NAME).exists():
        raise ExportError(
            f"{root} holds sealed sessions ({MANIFEST_NAME}), partitioned by trading date; an "
            "export by UTC date would write among them. Seal sessions into it with "
            "end_session(), or export to another folder"
        )
    with store.lock:
        try:
            # Exports read the compacted table alone: a union with the tail would make DuckDB
            # write every column as optional.
            store.compact()
            if session is None:
                days = store.arrow(store.statements["stored_dates"]).to_pylist()
            else:
                days = [{"date": session.date, "bar_count": store.stored_count()}]
        except StoreError as exc:
            raise ExportError(f"cannot list the days to export: {exc}") from exc
        for done, day in enumerate(days, start=1):
            if session is None:
                start = datetime.combine(day["date"], time(), tzinfo=UTC)
                end = start + timedelta(days=1)
            else:  # the session's every bar, whatever its UTC date
                start, end = from_micros(MIN_TS), from_micros(MAX_TS)
            files.append(_export_day(store, root, day["date"], compression, start, end,
                                     session))
            rows += int(day["bar_count"])
            if progress is not None:
                progress(done, len(days))
    return ExportResult(root, tuple(files), rows)


def archive_files(directory: str | Path) -> list[Path]:
    """The finished day files of an archive, in date order.

    A day file is ``date=YYYY-MM-DD/bars.parquet``; temporary files and other entries are not
    listed. The folder is read with `os.scandir`, so no character of its path is a pattern.

    Parameters
    ----------
    directory
        The archive root.

    Returns
    -------
    list[Path]
        The files; empty if the folder does not exist (or is not a folder).

    Raises
    ------
    OSError
        The folder exists but cannot be listed.
    """
    return [f for _, f in partitions(directory) if f.is_file()]


def partitions(directory: str | Path) -> list[tuple[date, Path]]:
    """Each ``date=YYYY-MM-DD`` partition of an archive: its date and its day file's path.

    In date order. The day files are not looked at (a stat costs ~25 µs a day, 6 ms over a
    year): a partition's file may be missing, or not a file. `archive_files` keeps those that
    are.

    Raises
    ------
    OSError
        The folder exists but cannot be listed.
    """
    root = Path(directory)
    try:
        with os.scandir(root) as entries:
            names = sorted(entry.name for entry in entries if entry.name.startswith("date="))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [found for name in names if (found := _partition(root, name)) is not None]


@functools.lru_cache(maxsize=1 << 16)
def _partition(root: Path, name: str) -> tuple[date, Path] | None:
    """The date and day file of the partition folder ``name`` (None: not a partition).

    Remembered: an archive is listed again and again with the same names, and parsing a year
    of them each time was most of listing it (the folder itself is read every time).
    """
    day = _day_of(name)
    return None if day is None else (day, root / name / FILE_NAME)


def _day_of(name: str) -> date | None:
    """The date of a partition folder named ``date=YYYY-MM-DD``, else None."""
    value = name.removeprefix("date=")
    if value == name:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if day.isoformat() == value else None


def unreadable_reason(path: Path) -> str | None:
    """Why a day file cannot be read as bars, from its footer alone (cheap), or None."""
    try:
        names = pq.read_metadata(path).schema.to_arrow_schema().names
    except _UNREADABLE as exc:
        return f"{type(exc).__name__}: {exc}"
    if names not in (STORED_SCHEMA.names, BAR_SCHEMA.names):  # the latter: archived unmarked
        return f"not a file of bars: its columns are {names}"
    return None


def duckdb_path(path: Path) -> str:
    r"""``path`` as DuckDB must be given it to read exactly that file, absolute.

    DuckDB globs every path it reads when the path holds ``*``, ``?`` or ``[``: a folder
    ``arch[1]`` would read ``arch1``. Wrapping each such character in brackets (``[[]``, ``[*]``,
    ``[?]``) makes it match only itself. A backslash cannot be escaped that way: DuckDB splits
    a pattern at backslashes as at slashes, so ``x\y[1]`` would find ``x/y[1]``; such a path is
    refused. An absolute path keeps DuckDB from resolving it against ``file_search_path``.

    Raises
    ------
    ExportError
        The path holds both a backslash and a glob character.
    """
    text = path.absolute().as_posix()
    if not _GLOB_CHARACTERS.intersection(text):
        return text  # read as is: DuckDB does not glob a path without those characters
    if "\\" in text:
        raise ExportError(
            f"{path}: DuckDB cannot read a path holding both a backslash and one of * ? [ "
            "literally; rename the folder"
        )
    return "".join(f"[{c}]" if c in _GLOB_CHARACTERS else c for c in text)


def _export_day(
    store: BarStore, root: Path, day: date, compression: Compression, start: datetime,
    end: datetime, session: Session | None = None,
) -> Path:
    """Write the stored bars with ``start <= ts < end`` to the partition of ``day``.

    With ``session``, the new file is recorded in the manifest as pending before it replaces
    the day's file, and as sealed after (`record_session`), all under the day's lock: killed
    anywhere, the day's file is the one of the manifest's entry or of its pending entry.
    """
    partition = root / f"date={day.isoformat()}"
    final = partition / FILE_NAME
    temporary = partition / f".{FILE_NAME}.{uuid.uuid4().hex}.tmp"
    params: dict[str, object] = {"start": start, "end": end}
    try:
        partition.mkdir(parents=True, exist_ok=True)
        with _day_lock(partition):
            for stale in partition.glob(f".{FILE_NAME}.*.tmp"):
                stale.unlink()  # left by an export that was killed (not a running one: locked)
            if final.exists() or final.is_symlink():
                # The day is archived already: keep its bars that the session does not replace.
                params["archived"] = _archived_path(day, final)
                marked = pq.read_schema(final).names == STORED_SCHEMA.names
                query = "export_day_merged" if marked else "export_day_merged_unmarked"
            else:
                query = "export_day"
            store.write_parquet(store.statements[query], params, temporary, STORED_SCHEMA,
                                compression=_CODECS[compression])
            _fsync(temporary)
            entry = None if session is None else _session_entry(root, session, final, temporary)
            if entry is not None:
                record_session(root, entry, pending=True)
            temporary.replace(final)
            _fsync(partition)
            if entry is not None:
                record_session(root, entry, pending=False)
    except BaseException as exc:
        # Whatever stopped the export (an error, an interrupt), the temporary file goes; if the
        # partition is a file, unlinking inside it raises too, and there is nothing to remove.
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError | StoreError):
            raise ExportError(f"export of {day} to {final} failed: {exc}") from exc
        raise
    return final


def _archived_path(day: date, final: Path) -> str:
    """The day's archived file, checked to be readable bars, as DuckDB must be given it.

    Raises
    ------
    ExportError
        It is not a regular file, or its footer or columns are not those of bars: its bars
        could not be kept, so it must not be replaced.
    """
    reason = unreadable_reason(final) if final.is_file() else "it is not a regular file"
    if reason is not None:
        raise ExportError(
            f"export of {day} to {final} failed: the archived file {final} cannot be read "
            f"({reason}); it is left as it was"
        )
    try:
        return duckdb_path(final)
    except ExportError as exc:
        raise ExportError(f"export of {day} to {final} failed: {exc}") from exc


@contextlib.contextmanager
def _day_lock(partition: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on a day's folder while its file is read, merged and replaced.

    Two exports of one day (other threads or processes, other warehouses) then take turns, and
    the second merges the first's bars instead of writing over them; the lock also keeps one
    export's stale-file sweep off the other's temporary file. The kernel drops the lock of a
    killed process. (Not on Windows, which has no ``flock``.) With ``wait=False`` it yields
    whether the lock was free (and is now held) instead of waiting for it.
    """
    if sys.platform == "win32":
        yield True
        return
    fd = os.open(partition, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the manifest of sealed sessions ----------------------------------------------------------


def _session_entry(root: Path, session: Session, path: Path, written: Path) -> dict[str, Any]:
    """The manifest entry of a session sealed into ``path``, from the file ``written``.

    The entry holds what `verify_archive` checks: the file, its row and symbol counts, its
    first and last ts and its SHA-256, with the session's calendar and window. ``written`` is
    the file that is about to become ``path`` (the same bytes), or ``path`` itself.

    Raises
    ------
    ExportError
        ``written`` cannot be read back.
    """
    try:
        facts = _file_facts(written)
    except _UNREADABLE as exc:
        raise ExportError(f"sealing session {session.date}: {written} cannot be read back: "
                          f"{exc}") from exc
    return {
        "date": session.date.isoformat(),
        "file": path.relative_to(root).as_posix(),
        **facts,
        "calendar": session.calendar,
        "extended_hours": session.extended_hours,
        "open": session.open_time.isoformat(),
        "close": session.close_time.isoformat(),
    }


def record_session(root: Path, entry: dict[str, Any], *, pending: bool) -> None:
    """Record a session's entry (`_session_entry`) in the archive's manifest.

    A seal records its new file twice: as ``pending`` before the file replaces the day's file,
    then as the session's entry once it has (which drops the pending one). A kill between the
    two leaves a pending entry that matches the day's file; `finish_interrupted_seals` makes it
    the session's entry then (or drops it if the file was never replaced). The manifest is
    rewritten beside its final name and renamed over it, under the archive's lock, so a reader
    sees the old manifest or the new one, and two sessions sealed at once both land.

    Raises
    ------
    ExportError
        The manifest cannot be read or written.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _day_lock(root):
            manifest = read_manifest(root)
            others = [p for p in manifest.get("pending", []) if _date_of(p) != entry["date"]]
            if pending:
                others.append(entry)
            else:
                manifest["sessions"] = _with_entry(manifest["sessions"], entry)
            _set_pending(manifest, others)
            manifest["bar_schema"] = _schema_description()  # the newest file's columns
            _write_json(root / MANIFEST_NAME, manifest)
    except OSError as exc:
        raise ExportError(f"recording session {entry['date']} in {root / MANIFEST_NAME} "
                          f"failed: {exc}") from exc


def finish_interrupted_seals(directory: str | Path) -> list[str]:
    """Settle the pending entries a killed seal left in the manifest (see `record_session`).

    A pending entry whose file is now the day's file becomes the session's entry; any other is
    dropped (the seal was killed before its file replaced the day's). A day being sealed right
    now is left to that seal. Never raises: an archive that cannot be read or written is left
    as it is (`verify_archive` tells what is wrong with it).

    Returns
    -------
    list[str]
        The dates whose entry was completed.
    """
    root = Path(directory)
    try:
        pending = [p for p in read_manifest(root).get("pending", []) if _date_of(p)]
    except ExportError:
        return []
    completed = []
    for entry in pending:
        partition = root / f"date={entry['date']}"
        try:
            with contextlib.ExitStack() as stack:
                if partition.is_dir() and not stack.enter_context(
                        _day_lock(partition, wait=False)):
                    continue  # a seal of that day runs: it records its entry itself
                stack.enter_context(_day_lock(root))
                manifest = read_manifest(root)
                found = [p for p in manifest.get("pending", []) if _date_of(p) == entry["date"]]
                if not found:
                    continue
                if _file_matches(root / found[0]["file"], found[0]):
                    manifest["sessions"] = _with_entry(manifest["sessions"], found[0])
                    completed.append(entry["date"])
                _set_pending(manifest, [p for p in manifest["pending"] if p not in found])
                _write_json(root / MANIFEST_NAME, manifest)
        except (OSError, ExportError) as exc:
            log.warning("cannot settle the interrupted seal of %s in %s: %s", entry["date"],
                        root, exc)
    for day in completed:
        log.info("the seal of %s into %s was interrupted after its file was written; its "
                 "manifest entry is now complete", day, root)
    return completed


def _with_entry(sessions: list[Any], entry: dict[str, Any]) -> list[Any]:
    """The manifest's sessions with ``entry`` in place of its date's entry, in date order.

    An entry this code does not understand is kept as it is (verify names it): a seal never
    loses what a person might still repair.
    """
    kept = [s for s in sessions if entry_problem(s) is not None or s["date"] != entry["date"]]
    return sorted([*kept, entry], key=_entry_order)


def _set_pending(manifest: dict[str, Any], pending: list[Any]) -> None:
    if pending:
        manifest["pending"] = pending
    else:
        manifest.pop("pending", None)


def _date_of(entry: object) -> str | None:
    """The date of a manifest entry that can be understood, else None."""
    return entry["date"] if isinstance(entry, dict) and entry_problem(entry) is None else None


def _file_matches(path: Path, entry: dict[str, Any]) -> bool:
    """Whether the file at ``path`` is the one ``entry`` describes."""
    try:
        facts = _file_facts(path)
    except _UNREADABLE:
        return False
    return all(entry.get(key) == value for key, value in facts.items())


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The archive's manifest (an empty one if it has none yet).

    Raises
    ------
    ExportError
        The manifest exists but is not one (damaged, or of a newer version).
    """
    path = Path(directory) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": "warehouse-archive", "version": MANIFEST_VERSION,
                "bar_schema": _schema_description(), "sessions": []}
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} cannot be read as a manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "warehouse-archive" \
            or not isinstance(manifest.get("sessions"), list) \
            or not isinstance(manifest.get("pending", []), list):
        raise ExportError(f"{path} is not a warehouse archive manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ExportError(f"{path} has manifest version {manifest.get('version')!r}; this "
                          f"warehouse reads version {MANIFEST_VERSION}")
    return manifest


def verify_archive(directory: str | Path) -> list[str]:
    """Check every sealed session of an archive against its manifest entry.

    Recomputes each file's SHA-256, row and symbol counts, first and last ts, and checks its
    schema is the bar schema. A file that is the one of its date's pending entry (a seal killed
    after replacing the file, before recording it: `record_session`) is whole.

    Returns
    -------
    list[str]
        One line per problem, naming the session, the file and what differs; empty if the
        archive is whole.
    """
    root = Path(directory)
    problems = []
    manifest = read_manifest(root)
    pending = {}
    for number, entry in enumerate(manifest.get("pending", []), start=1):
        problem = entry_problem(entry)
        if problem is None:
            pending[entry["date"]] = entry
        else:
            problems.append(f"pending entry {number} of {root / MANIFEST_NAME}: {problem}")
    for number, entry in enumerate(manifest["sessions"], start=1):
        problem = entry_problem(entry)
        if problem is not None:
            problems.append(f"entry {number} of {root / MANIFEST_NAME}: {problem}; correct or "
                            "remove it (sealing its session again records it anew)")
            continue
        path = root / entry["file"]
        where = f"session {entry['date']} ({path})"
        if not path.is_file():
            problems.append(f"{where}: the file is missing")
            continue
        try:
            facts = _file_facts(path)
        except _UNREADABLE as exc:
            problems.append(f"{where}: cannot be read as bars: {exc}")
            continue
        interrupted = pending.get(entry["date"], {})
        if all(interrupted.get(key) == value for key, value in facts.items()):
            continue
        for key, value in facts.items():
            if entry.get(key) != value:
                problems.append(f"{where}: {key} is {_fact(key, value)}, the manifest says "
                                f"{_fact(key, entry.get(key))}")
    return problems


def _fact(key: str, value: object) -> str:
    """A recorded fact as verify shows it: a first or last ts as ISO 8601 (UTC)."""
    if key.endswith("_ts") and isinstance(value, int) and MIN_TS <= value <= MAX_TS:
        return from_micros(value).isoformat()
    return repr(value)


def entry_problem(entry: object) -> str | None:
    """What makes a manifest entry unusable (not an object, no date, no file...), or None."""
    if not isinstance(entry, dict):
        return f"is not an object but {entry!r}"
    day = entry.get("date")
    if not isinstance(day, str) or _day_of(f"date={day}") is None:
        return f"has no valid 'date' ({day!r})"
    file = entry.get("file")
    if not isinstance(file, str) or not file:
        return f"has no 'file' (session {day})"
    relative = PurePosixPath(file)
    if relative.is_absolute() or ".." in relative.parts:
        return f"its file {file!r} is not inside the archive (session {day})"
    return None


def _entry_order(entry: object) -> tuple[int, str]:
    """Sessions in date order; entries not understood after them, in their order."""
    if isinstance(entry, dict) and entry_problem(entry) is None:
        return (0, str(entry["date"]))
    return (1, "")


def _file_facts(path: Path) -> dict[str, Any]:
    """What the manifest records of a session file, recomputed from the file itself."""
    table = pq.read_table(path, columns=["symbol", "ts"])
    schema = pq.read_schema(path).remove_metadata()
    if schema not in (STORED_SCHEMA, BAR_SCHEMA):  # the latter: archived before origins
        raise ValueError(f"its schema is not the bar schema: {schema}")
    ts = table.column("ts").cast(pa.int64())
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {
        "rows": table.num_rows,
        "symbols": pc.count_distinct(table.column("symbol")).as_py(),
        "first_ts": pc.min(ts).as_py(),
        "last_ts": pc.max(ts).as_py(),
        "sha256": digest,
    }


def _schema_description() -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in STORED_SCHEMA]


def _write_json(path: Path, value: object) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
        _fsync(temporary)
        temporary.replace(path)
        _fsync(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
