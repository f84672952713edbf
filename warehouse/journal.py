"""An append-only journal of accepted bars, so a killed process loses no acknowledged bar.

The journal is a folder of segment files, each memory-mapped and written in place. A record is
``[u32 length][u8 kind][payload]``: kind 1 is one bar packed with `struct`, kind 2 is a batch
as an Arrow IPC stream. The length is written last, so a record whose length is zero was never
finished and ends the segment. Writes to a shared mapping land in the kernel's page cache at
once: a process killed with SIGKILL keeps every record it wrote. (Against a power cut the
flusher syncs the open segment once per flush interval: group commit.)

Every flush seals the open segment and starts the next; once the flush is committed in DuckDB,
the sealed segments are deleted. On restart, the segments left over are replayed.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from warehouse.errors import StoreError
from warehouse.schema import BAR_SCHEMA, Bar, rows_to_batch

MAGIC = b"WHJRNL01"
SEGMENT_BYTES = 16 << 20
_LENGTH = struct.Struct("<I")
# kind, ts, open, high, low, close, volume, vwap (NaN: none), trade_count (-1: none), symbol length
_BAR = struct.Struct("<BqddddddqH")
_KIND_BAR, _KIND_BATCH = 1, 2
_NAN = math.nan


class Journal:
    """The journal folder of one warehouse file (``<file>.journal/``).

    Not thread-safe on its own: `AppendBuffer` writes to it under its lock.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create journal folder {self.directory}: {exc}") from exc
        #: Segments left by an earlier process, to replay; `release` deletes them.
        self.leftover = sorted(self.directory.glob("*.journal"))
        self._seq = int(self.leftover[-1].stem) if self.leftover else 0
        self._mm: mmap.mmap | None = None
        self._pos = 0
        self._open(SEGMENT_BYTES)

    # -- writing ----------------------------------------------------------------------------

    def write_bar(self, bar: Bar) -> None:
        """Record one bar; it survives a kill of the process once this returns."""
        symbol = bar.symbol.encode()
        size = _BAR.size + len(symbol)
        if self._pos + 4 + size + 4 > len(self._mm):  # type: ignore[arg-type]
            self._rotate(size)
        mm, at = self._mm, self._pos
        assert mm is not None
        _BAR.pack_into(
            mm, at + 4, _KIND_BAR, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume,
            _NAN if bar.vwap is None else bar.vwap,
            -1 if bar.trade_count is None else bar.trade_count, len(symbol),
        )
        end = at + 4 + _BAR.size
        mm[end : end + len(symbol)] = symbol
        _LENGTH.pack_into(mm, at, size)  # last: the record now exists
        self._pos = end + len(symbol)

    def write_batch(self, table: pa.Table) -> None:
        """Record a validated batch as one Arrow IPC stream."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, BAR_SCHEMA) as writer:
            writer.write_table(table)
        payload = sink.getvalue()
        size = 1 + payload.size
        if self._pos + 4 + size + 4 > len(self._mm):  # type: ignore[arg-type]
            self._rotate(size)
        mm, at = self._mm, self._pos
        assert mm is not None
        mm[at + 4] = _KIND_BATCH
        mm[at + 5 : at + 5 + payload.size] = payload.to_pybytes()
        _LENGTH.pack_into(mm, at, size)
        self._pos = at + 4 + size

    def seal(self) -> int:
        """Close the open segment and start the next; returns the sealed segment's number."""
        sealed = self._seq
        self._rotate(0)
        return sealed

    @property
    def sequence(self) -> int:
        """The number of the open segment."""
        return self._seq

    def sync(self) -> None:
        """Flush the open segment to disk (survives a power cut, not only a kill)."""
        mm = self._mm  # the appending thread may rotate it meanwhile
        if mm is not None:
            with contextlib.suppress(ValueError):  # closed by a rotation: nothing left to sync
                mm.flush()

    def release(self, upto: int) -> None:
        """Delete every segment up to number ``upto``: their bars are committed in DuckDB."""
        for path in sorted(self.directory.glob("*.journal")):
            if int(path.stem) <= upto:
                path.unlink(missing_ok=True)
        self.leftover = [p for p in self.leftover if int(p.stem) > upto]

    def close(self) -> None:
        """Unmap the open segment (its file stays until released)."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    # -- reading ----------------------------------------------------------------------------

    def read_leftover(self) -> pa.Table:
        """Every bar recorded in the leftover segments, in the order written."""
        batches: list[pa.RecordBatch] = []
        rows: list[Bar] = []
        for path in self.leftover:
            for record in _records(path.read_bytes()):
                if record[0] == _KIND_BAR:
                    rows.append(_unpack_bar(record))
                    continue
                if rows:
                    batches.append(rows_to_batch(rows))
                    rows = []
                stream = pa.ipc.open_stream(pa.py_buffer(record[1:]))
                batches.extend(stream.read_all().to_batches())
        if rows:
            batches.append(rows_to_batch(rows))
        return pa.Table.from_batches(batches, schema=BAR_SCHEMA)

    # -- internals --------------------------------------------------------------------------

    def _open(self, size: int) -> None:
        self._seq += 1
        path = self.directory / f"{self._seq:012d}.journal"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.ftruncate(fd, size)
                self._mm = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot create journal segment {path}: {exc}") from exc
        self._mm[: len(MAGIC)] = MAGIC
        self._pos = len(MAGIC)

    def _rotate(self, record_size: int) -> None:
        self.close()
        self._open(max(SEGMENT_BYTES, len(MAGIC) + 4 + record_size + 4))


def _records(data: bytes) -> Iterator[memoryview]:
    """The finished records of a segment's bytes (each starts with its kind byte)."""
    if not data.startswith(MAGIC):
        return
    view = memoryview(data)
    at = len(MAGIC)
    while at + 4 <= len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        if size == 0 or at + 4 + size > len(data):
            return
        yield view[at + 4 : at + 4 + size]
        at += 4 + size


def _unpack_bar(record: memoryview) -> Bar:
    _, ts, o, h, lo, c, v, vwap, count, length = _BAR.unpack_from(record)
    symbol = bytes(record[_BAR.size : _BAR.size + length]).decode()
    return Bar(symbol, ts, o, h, lo, c, v, None if math.isnan(vwap) else vwap,
               None if count < 0 else count)
