"""End of session: the stored bars to Parquet, hive-partitioned by UTC date, atomically.

Layout: ``<directory>/date=YYYY-MM-DD/bars.parquet``, zstd, sorted by (symbol, ts), timestamps
INT64 microseconds adjusted to UTC. Each day's file is written beside its final name and
renamed over it once complete and synced, so a reader sees the old file or the new one, never a
partial one; a failed or killed export leaves the previous export as it was.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

from warehouse.errors import ExportError, StoreError
from warehouse.store import BarStore

Compression = Literal["zstd", "snappy", "uncompressed"]
#: Called after each day is written: (days done, days in all).
Progress = Callable[[int, int], None]
FILE_NAME = "bars.parquet"


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    directory: Path
    files: tuple[Path, ...]
    rows: int


def export_parquet(
    store: BarStore,
    directory: str | Path,
    *,
    compression: Compression = "zstd",
    progress: Progress | None = None,
) -> ExportResult:
    """Write every stored bar to Parquet under ``directory``, one file per UTC date.

    Flush first (`Warehouse.export_parquet` does) if unflushed bars must be included.

    Parameters
    ----------
    store
        The store to export; its lock is held throughout, so no flush interleaves.
    directory
        The archive root; created if missing. Other days already in it are left alone.
    compression
        Parquet codec.
    progress
        Called after each day with (done, total).

    Returns
    -------
    ExportResult
        The files written and the number of rows.

    Raises
    ------
    ExportError
        The directory is not writable, the disk is full, or DuckDB failed; the previous
        file of every day not yet replaced is intact, and no temporary file is left behind.
    """
    if compression not in ("zstd", "snappy", "uncompressed"):
        raise ExportError(f"unknown compression {compression!r}; use zstd, snappy or uncompressed")
    root = Path(directory)
    files: list[Path] = []
    rows = 0
    with store.lock:
        try:
            days = store.arrow(store.queries["stored_dates"]).to_pylist()
        except StoreError as exc:
            raise ExportError(f"cannot list the days to export: {exc}") from exc
        for done, day in enumerate(days, start=1):
            files.append(_export_day(store, root, day["date"], compression))
            rows += int(day["bar_count"])
            if progress is not None:
                progress(done, len(days))
    return ExportResult(root, tuple(files), rows)


def publish_history(store: BarStore, directory: str | Path) -> None:
    """Define the view ``history`` over the archive at ``directory`` (empty while it has no day).

    Only finished files (``date=*/bars.parquet``) are read: never a temporary one.
    """
    root = Path(directory)
    if any(root.glob(f"date=*/{FILE_NAME}")):
        files = str(root / "date=*" / FILE_NAME).replace("'", "''")
        sql = store.queries["create_history_view"].format(files=files)
    else:
        sql = store.queries["create_history_view_empty"]
    try:
        store.execute(sql)
    except StoreError as exc:
        raise ExportError(f"cannot read the archive {root}: {exc}") from exc


def _export_day(store: BarStore, root: Path, day: date, compression: Compression) -> Path:
    partition = root / f"date={day.isoformat()}"
    final = partition / FILE_NAME
    temporary = partition / f".{FILE_NAME}.{uuid.uuid4().hex}.tmp"
    start = datetime.combine(day, time(), tzinfo=UTC)
    sql = store.queries["export_day"].format(
        path=str(temporary).replace("'", "''"), compression=compression
    )
    try:
        partition.mkdir(parents=True, exist_ok=True)
        for stale in partition.glob(f".{FILE_NAME}.*.tmp"):
            stale.unlink()  # left by an export that was killed
        store.execute(sql, {"start": start, "end": start + timedelta(days=1)})
        _fsync(temporary)
        temporary.replace(final)
        _fsync(partition)
    except (OSError, StoreError) as exc:
        # If the partition is a file, unlinking inside it raises too; there is nothing to remove.
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise ExportError(f"export of {day} to {final} failed: {exc}") from exc
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
