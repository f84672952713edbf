"""An append-only journal of accepted bars, so a killed process loses no acknowledged bar.

The journal is a folder of segment files, each preallocated on disk, memory-mapped and written
in place. A segment opens with ``MAGIC`` and the session epoch it belongs to; then come records
``[u32 length][u32 crc32][payload]``, payload ``[u8 kind][...]``: kind 1 is one bar packed with
`struct`, kind 2 a batch as an Arrow IPC stream. The header is written after the payload, so a
record whose length is still zero was never finished and ends the segment.

Why each piece:
- Writes to a shared mapping are in the kernel's page cache at once: a process killed with
  SIGKILL keeps every record it wrote. Against a power cut the flusher syncs the segments once
  per flush interval (group commit); a power cut can leave a tail of pages never written back,
  which the checksums catch: replay keeps every whole record before the first torn one and says
  how much it dropped.
- Segments are allocated for real (``posix_fallocate``), not sparse: writing through a map into a
  sparse file on a full disk kills the process with SIGBUS. A full disk is now an error from the
  append that needed a new segment, and the current segment stays usable.
- The epoch ties segments to a session of the DuckDB file: `Warehouse.clear` bumps it in the same
  transaction that deletes the bars, so after a kill anywhere in a clear, segments of the cleared
  session are recognised as stale and never replayed into the new one.

Every flush seals the open segment and starts the next; once the flush is committed in DuckDB,
the sealed segments are deleted. On restart, `recover` reads the segments left over.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from warehouse._hot import SegmentWriter, bar_record_size
from warehouse.errors import StoreError
from warehouse.schema import BAR_SCHEMA, Bar, rows_to_batch

MAGIC = b"WHJRNL02"
SEGMENT_BYTES = 16 << 20
_HEADER = struct.Struct("<8sQ")  # magic, epoch
_RECORD = struct.Struct("<II")  # payload length, crc32 of the payload
# kind, ts, open, high, low, close, volume, vwap (NaN: none), trade_count (-1: none), symbol length
_BAR = struct.Struct("<BqddddddqH")
_KIND_BAR, _KIND_BATCH = 1, 2
#: A damaged or foreign segment is renamed with this suffix: kept for inspection, never replayed.
SET_ASIDE = ".damaged"

log = logging.getLogger("warehouse")


@dataclass
class Recovery:
    """What `Journal.recover` found in the segments a previous process left behind."""

    #: Segments whose records were read (whole or up to a torn record).
    segments: int = 0
    #: Records (single bars or batches) read.
    records: int = 0
    #: Bytes after the first torn record, across all segments, that were not replayed.
    dropped_bytes: int = 0
    #: Segments of a cleared session (an older epoch), deleted unread.
    stale_segments: int = 0
    #: Files renamed to ``*.damaged``, kept for inspection: torn, foreign or of a newer epoch.
    set_aside: list[Path] = field(default_factory=list)
    #: Where replay stopped: "<file> at byte <offset>: <why>", or None if it read everything.
    torn: str | None = None


class Journal:
    """The journal folder of one warehouse file (``<file>.journal/``).

    Parameters
    ----------
    directory
        The folder; created if missing.
    epoch
        The session epoch of the warehouse file (see `BarStore.epoch`).

    Writers (`write_bar`, `write_batch`, `seal`, `switch_epoch`) must be serialised by the
    caller (`AppendBuffer` holds its lock); `sync`, `prepare` and `release` run in the flusher.
    Segments are made lazily, by the first write after a seal, or ahead of time by `prepare`
    (off the appending thread: allocating 16 MiB takes ~1.5 ms).
    """

    def __init__(self, directory: str | Path, epoch: int) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create journal folder {self.directory}: {exc}") from exc
        self.epoch = epoch
        for unfinished in self.directory.glob(f".*{_UNFINISHED}"):  # a kill left it: no bars
            unfinished.unlink(missing_ok=True)
        #: Segments left by an earlier process, to `recover`; `release` deletes them.
        self.leftover = _segments(self.directory)
        #: The number of the last segment made (open, sealed or spare).
        self.sequence = int(self.leftover[-1].stem) if self.leftover else 0
        self._mm: mmap.mmap | None = None  # the open segment, None after a seal
        self._seq = 0  # its number
        self._size = 0
        #: Writes single-bar records into the open segment, in C: the compiled append calls it
        #: directly (and `write_bar` when it cannot take a record). Its ``pos`` is where the
        #: next record goes.
        self.writer = SegmentWriter()
        # Guards what the flusher touches while the appending thread writes: the sealed maps not
        # yet synced or released, the spare segment, and the numbering.
        self._lock = threading.Lock()
        self._sealed: list[tuple[int, mmap.mmap]] = []
        self._spare: tuple[int, mmap.mmap] | None = None
        self._damaged: set[Path] = set()  # leftovers `release` keeps as *.damaged

    # -- writing ----------------------------------------------------------------------------

    def write_bar(self, bar: Bar) -> None:
        """Record one bar; it survives a kill of the process once this returns.

        Packed in C (`writer`), in the format `recover` reads.

        Raises
        ------
        StoreError
            A new segment was needed and could not be made (a full disk); nothing was written.
        """
        if not self.writer.write(bar):
            self._open(bar_record_size(bar))
            if not self.writer.write(bar):  # cannot happen: the segment was sized for it
                raise StoreError(f"journal segment {self._seq} could not take a bar's record")

    def write_batch(self, table: pa.Table) -> None:
        """Record a validated batch as one Arrow IPC stream (see `write_bar` for errors)."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, BAR_SCHEMA) as writer:
            writer.write_table(table)
        self._write(bytes([_KIND_BATCH]) + sink.getvalue().to_pybytes())

    def _write(self, payload: bytes) -> None:
        size = len(payload)
        at = self.writer.pos
        end = at + _RECORD.size + size
        # Room is kept for a zero header after the record: the end-of-segment mark.
        if self._mm is None or end + _RECORD.size > self._size:
            self._open(_RECORD.size + size)
            at = self.writer.pos
            end = at + _RECORD.size + size
        mm = self._mm
        assert mm is not None
        mm[at + _RECORD.size : end] = payload
        _RECORD.pack_into(mm, at, size, zlib.crc32(payload))  # last: the record now exists
        self.writer.pos = end

    def seal(self) -> int:
        """Seal the open segment (the next write starts another); returns the last number made.

        Never fails: after it, every record written so far is in a segment numbered at or
        below the number returned.
        """
        with self._lock:
            if self._mm is not None:
                self.writer.detach()
                self._sealed.append((self._seq, self._mm))
                self._mm = None
            return self.sequence

    def switch_epoch(self, epoch: int) -> int:
        """Seal, and write records of session ``epoch`` from now on; returns `seal`'s number.

        Called once ``epoch`` is committed in DuckDB; cannot fail.
        """
        sealed = self.seal()
        self.epoch = epoch
        with self._lock:
            if self._spare is not None:  # still empty: it takes the new epoch
                _HEADER.pack_into(self._spare[1], 0, MAGIC, epoch)
        return sealed

    def prepare(self) -> None:
        """Make the next segment ahead of time, so that no write waits for an allocation.

        Raises
        ------
        StoreError
            It could not be made (a full disk); the next write will try again.
        """
        with self._lock:
            if self._spare is not None:
                return
            seq = self.sequence = self.sequence + 1
            epoch = self.epoch
        spare = _create(self._path(seq), epoch, SEGMENT_BYTES)
        with self._lock:
            # Kept only if no segment was made meanwhile: numbers must follow write order.
            if self._spare is None and self.sequence == seq:
                _HEADER.pack_into(spare, 0, MAGIC, self.epoch)  # an epoch switched meanwhile
                self._spare = (seq, spare)
                return
        spare.close()
        self._path(seq).unlink(missing_ok=True)

    def sync(self) -> None:
        """Flush the sealed and the open segments to disk (survive a power cut, not only a kill)."""
        while True:
            with self._lock:
                if not self._sealed:
                    mm = self._mm
                    break
                _, sealed = self._sealed.pop(0)
            sealed.flush()
            sealed.close()
        if mm is not None:
            # Sealed meanwhile by the appending thread, it is not closed until the next sync.
            mm.flush()

    def release(self, upto: int) -> None:
        """Delete every segment up to number ``upto``: their bars are committed in DuckDB."""
        with self._lock:
            done = [mm for seq, mm in self._sealed if seq <= upto]
            self._sealed = [(seq, mm) for seq, mm in self._sealed if seq > upto]
            spare = self._spare[0] if self._spare is not None else None
            current = self._seq if self._mm is not None else None
        for mm in done:
            mm.close()
        for path in _segments(self.directory):
            if int(path.stem) > upto or int(path.stem) in (spare, current):
                continue
            if path in self._damaged:
                self._damaged.discard(path)
                path.replace(path.with_name(path.name + SET_ASIDE))
            else:
                path.unlink(missing_ok=True)
        self.leftover = [p for p in self.leftover if int(p.stem) > upto]

    def close(self) -> None:
        """Unmap every segment (their files stay until released; an unused spare is deleted)."""
        with self._lock:
            sealed, self._sealed = self._sealed, []
            spare, self._spare = self._spare, None
            mm, self._mm = self._mm, None
            self.writer.detach()
        for _, m in sealed:
            m.close()
        if mm is not None:
            mm.close()
        if spare is not None:
            spare[1].close()
            self._path(spare[0]).unlink(missing_ok=True)

    # -- its life: one step for each of the warehouse's (open, flush, clear, close) -----------

    def replay(self, take: Callable[[pa.Table], object]) -> Recovery | None:
        """On open: hand the bars a crash left (`recover`) to ``take``; None if none were left.

        The caller flushes what ``take`` stored, then calls `committed`: the replayed segments
        are released only once their bars are in DuckDB.
        """
        if not self.leftover:
            return None
        table, recovery = self.recover()
        take(table)
        return recovery

    def committed(self, mark: int | None) -> None:
        """After a flush: release the segments up to ``mark``, and make the next one ahead.

        ``mark`` is the drain's `seal`: DuckDB now holds the bars of those segments. The next
        segment is made now so that no append waits for it (on a full disk, the append that
        needs it reports the error).
        """
        if mark is None:
            return
        self.release(mark)
        with contextlib.suppress(StoreError):
            self.prepare()

    def cleared(self, epoch: int) -> None:
        """After a clear committed ``epoch``: segments of the old session are never replayed."""
        self.release(self.switch_epoch(epoch))

    def retire(self, *, released: bool) -> None:
        """On close: unmap every segment, and delete them all if ``released``.

        Released when every bar is in the file; otherwise the segments stay for the next open
        to replay.
        """
        self.close()
        if released:
            self.release(self.sequence)

    # -- reading ----------------------------------------------------------------------------

    def recover(self) -> tuple[pa.Table, Recovery]:
        """Every bar of the leftover segments of this epoch, in the order written.

        Replay keeps a prefix: it stops at the first record that is not whole. A zero header
        with bytes after it is a record the process was writing when it died (never
        acknowledged); a header whose length or checksum does not match is damage (a power
        cut's lost pages): that segment is kept as ``*.damaged`` once the replay is flushed.
        Every later segment is dropped and kept the same way. Segments of an older epoch (a
        cleared session) are deleted, and so are empty ones.
        """
        report = Recovery()
        batches: list[pa.RecordBatch] = []
        rows: list[Bar] = []
        leftover: list[Path] = []
        for path in self.leftover:
            data = path.read_bytes()
            used = len(data.rstrip(b"\0"))
            epoch = _epoch_of(data)
            if epoch is not None and (used <= _HEADER.size or epoch < self.epoch):
                # Empty (a spare, or sealed before its first record), or a cleared session's.
                report.stale_segments += epoch < self.epoch
                path.unlink(missing_ok=True)
                continue
            leftover.append(path)
            if report.torn is not None or epoch != self.epoch:
                if report.torn is None:
                    report.torn = f"{path}: " + (
                        "not a journal segment of this format" if epoch is None
                        else f"of epoch {epoch}, newer than the file's {self.epoch}")
                report.dropped_bytes += used
                self._set_aside(path, report)
                continue
            report.segments += 1
            end = _HEADER.size
            for after, record in _records(data):
                try:
                    if record[0] == _KIND_BAR:
                        bar = _unpack_bar(record)
                    else:
                        batch = _unpack_batch(record)
                except (ValueError, pa.ArrowException):
                    break  # checksummed yet unreadable: treated as damage
                report.records += 1
                end = after
                if record[0] == _KIND_BAR:
                    rows.append(bar)
                    continue
                if rows:
                    batches.append(rows_to_batch(rows))
                    rows = []
                batches.extend(batch)
            if used > end:
                report.dropped_bytes += used - end
                if not data[end : end + _RECORD.size].strip(b"\0"):
                    report.torn = f"{path} at byte {end}: an unfinished record"
                else:
                    report.torn = f"{path} at byte {end}: a record with a bad length or checksum"
                    self._set_aside(path, report)
        if rows:
            batches.append(rows_to_batch(rows))
        self.leftover = leftover
        if report.torn is not None:
            log.warning(
                "journal %s: replay stopped at %s; %d bytes from there on were not replayed%s",
                self.directory, report.torn, report.dropped_bytes,
                "; kept for inspection: " + ", ".join(map(str, report.set_aside))
                if report.set_aside else "",
            )
        return pa.Table.from_batches(batches, schema=BAR_SCHEMA), report

    # -- internals --------------------------------------------------------------------------

    def _set_aside(self, path: Path, report: Recovery) -> None:
        """Mark a leftover segment to be kept as ``*.damaged`` by `release`, not deleted.

        Not renamed now: its whole records are replayed first, and until that flush commits a
        kill must find the segment where the next replay will read it again.
        """
        self._damaged.add(path)
        report.set_aside.append(path.with_name(path.name + SET_ASIDE))

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.journal"

    def _open(self, record_size: int) -> None:
        """Seal the open segment and open one with room for a record (header included)."""
        size = max(SEGMENT_BYTES, _HEADER.size + record_size + _RECORD.size)
        with self._lock:
            spare, self._spare = self._spare, None
            if spare is None or len(spare[1]) < size:
                seq = self.sequence = self.sequence + 1
            epoch = self.epoch
        if spare is None or len(spare[1]) < size:
            if spare is not None:  # too small for this record; numbered before it: drop it
                spare[1].close()
                self._path(spare[0]).unlink(missing_ok=True)
            spare = (seq, _create(self._path(seq), epoch, size))
        self.seal()
        self._seq, self._mm = spare
        self._size = len(spare[1])
        self.writer.attach(self._mm, _HEADER.size)


def _create(path: Path, epoch: int, size: int) -> mmap.mmap:
    """A new segment file, allocated on disk (not sparse), mapped, with its header written.

    It is made under a temporary name and linked to ``path`` only once its header is written:
    a kill while it is made (the flusher makes the next segment ahead, while the appending
    thread may make and fill a later one) leaves no headerless segment, which replay would
    take for damage and stop at, dropping the later segment's acknowledged bars.
    """
    temporary = path.with_name(f".{path.name}{_UNFINISHED}")
    try:
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create journal segment {path}: {exc}") from exc
    mm: mmap.mmap | None = None
    try:
        os.posix_fallocate(fd, 0, size)
        mm = mmap.mmap(fd, size)
        _HEADER.pack_into(mm, 0, MAGIC, epoch)
        os.link(temporary, path)  # fails if the segment exists: never over another one
    except OSError as exc:
        if mm is not None:
            mm.close()
        raise StoreError(
            f"cannot allocate journal segment {path} ({size >> 20} MiB): {exc}; the bar was "
            "not accepted (free disk space, or flush more often)"
        ) from exc
    finally:
        os.close(fd)
        temporary.unlink(missing_ok=True)
    return mm


def has_segments(directory: str | Path) -> bool:
    """Whether a journal folder holds segments waiting to be replayed (a crash left them)."""
    return bool(_segments(Path(directory)))


#: The suffix of a segment being made (`_create`); one a kill left is deleted on open.
_UNFINISHED = ".unfinished"


def _segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.journal") if p.stem.isdigit())


def _epoch_of(data: bytes) -> int | None:
    """The epoch in a segment's header, or None if it does not start like a segment."""
    if len(data) < _HEADER.size:
        return None
    magic, epoch = _HEADER.unpack_from(data)
    return int(epoch) if magic == MAGIC else None


def _records(data: bytes) -> Iterator[tuple[int, memoryview]]:
    """The whole records of a segment, each with the offset after it (its kind byte first).

    Ends at the first zero header (the end mark) or torn record: bad length, bad checksum,
    unknown kind, or a bar record whose symbol length disagrees with its size.
    """
    view = memoryview(data)
    at = _HEADER.size
    while at + _RECORD.size <= len(data):
        size, crc = _RECORD.unpack_from(data, at)
        start = at + _RECORD.size
        if size == 0 or start + size > len(data):
            return
        payload = view[start : start + size]
        if zlib.crc32(payload) != crc or payload[0] not in (_KIND_BAR, _KIND_BATCH):
            return
        if payload[0] == _KIND_BAR and not _bar_is_whole(payload):
            return
        at = start + size
        yield at, payload


def _bar_is_whole(record: memoryview) -> bool:
    if len(record) < _BAR.size:
        return False
    length = _BAR.unpack_from(record)[-1]
    return bool(len(record) == _BAR.size + length)


def _unpack_bar(record: memoryview) -> Bar:
    _, ts, o, h, lo, c, v, vwap, count, length = _BAR.unpack_from(record)
    symbol = bytes(record[_BAR.size : _BAR.size + length]).decode()
    return Bar(symbol, ts, o, h, lo, c, v, None if math.isnan(vwap) else vwap,
               None if count < 0 else count)


def _unpack_batch(record: memoryview) -> list[pa.RecordBatch]:
    stream = pa.ipc.open_stream(pa.py_buffer(record[1:]))
    batches: list[pa.RecordBatch] = stream.read_all().to_batches()
    return batches
