"""Journal mode: every acknowledged bar survives a kill -9 of the process."""

from __future__ import annotations

import random
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse import Bar, StoreError, Warehouse
from warehouse.journal import MAGIC, Journal
from warehouse.sample import generate_session
from warehouse.schema import bars_from_table

SESSION = generate_session(30, 40, seed=11)
ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import pyarrow.parquet as pq
    from warehouse import Warehouse
    from warehouse.schema import bars_from_table

    session = pq.read_table({data!r})
    bars = bars_from_table(session)
    wh = Warehouse({db!r}, journal=True, flush_rows=97, flush_interval=0.01)
    done = wh.count(bars[0].symbol) and sum(wh.count(s) for s in wh.symbols())
    append = wh.append
    for i, bar in enumerate(bars[done:], start=done + 1):
        if i % 50 == 0:
            wh.extend(session.slice(i - 1, 1))  # batches are journaled too
        else:
            append(*bar)
        print("ACK", i, flush=True)  # the bar is acknowledged: append has returned
    print("DONE", flush=True)
    import time
    time.sleep(60)
    """
)


def _stored(db: Path) -> pa.Table:
    with Warehouse(db, journal=True, flush_interval=None) as wh:
        return wh.sql("SELECT * EXCLUDE (origin) FROM bars ORDER BY ts, symbol")


@pytest.fixture
def session_file(tmp_path: Path) -> Path:
    import pyarrow.parquet as pq

    path = tmp_path / "session.parquet"
    pq.write_table(SESSION, path)
    return path


def test_journal_needs_a_file_opened_for_writing() -> None:
    with pytest.raises(ValueError, match="journal=True"):
        Warehouse(":memory:", journal=True)


@pytest.mark.parametrize(
    "kill", [0, *(pytest.param(k, marks=pytest.mark.slow) for k in range(1, 8))])
def test_kill_9_loses_no_acknowledged_bar(tmp_path: Path, session_file: Path, kill: int) -> None:
    db = tmp_path / "wh.duckdb"
    rng = random.Random(kill)
    acknowledged = 0
    for _round in range(3):  # kill, reopen (which replays), resume, kill again
        script = CHILD.format(root=str(ROOT), data=str(session_file), db=str(db))
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        stop_after = rng.randint(1, 400)
        for line in child.stdout:
            if line.startswith("ACK"):
                acknowledged = int(line.split()[1])
                stop_after -= 1
            if stop_after <= 0 or line.startswith("DONE"):
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        stored = _stored(db)
        keys = set(zip(stored.column("symbol").to_pylist(),
                       stored.column("ts").to_pylist(), strict=True))
        assert len(keys) == stored.num_rows, "a bar is stored twice"
        expected = bars_from_table(SESSION.slice(0, acknowledged))
        assert stored.num_rows >= acknowledged
        assert set(bars_from_table(stored)) >= set(expected)
    # Reopening replayed and flushed every leftover segment; closing removed the rest.
    assert not list((tmp_path / "wh.duckdb.journal").glob("*.journal"))


def test_replay_skips_bars_already_stored_and_applies_corrections(
    tmp_path: Path, abandon: Callable[[Warehouse], None]
) -> None:
    db = tmp_path / "wh.duckdb"
    bars = bars_from_table(SESSION.slice(0, 60))
    wh = Warehouse(db, journal=True, flush_interval=None)
    wh.extend(SESSION.slice(0, 60))
    wh.flush()
    correction = bars[0]._replace(close=bars[0].low)
    wh.append(*correction)
    wh.append(*bars[1])  # the same values again: nothing to replay for it
    abandon(wh)
    with Warehouse(db, journal=True, flush_interval=None) as again:
        assert again.count(bars[0].symbol) == SESSION.slice(0, 60).filter(
            pa.compute.equal(SESSION.slice(0, 60).column("symbol"), bars[0].symbol)).num_rows
        assert again.last_n(bars[0].symbol, 64)[0] == correction
        assert again.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 60
        assert again.replacements == 1


def test_flush_releases_journal_segments(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    with Warehouse(db, journal=True, flush_interval=None) as wh:
        wh.extend(SESSION.slice(0, 10))
        folder = Path(f"{db}.journal")
        assert len(list(folder.glob("*.journal"))) == 1
        first = next(folder.glob("*.journal"))
        wh.flush()
        (segment,) = folder.glob("*.journal")
        assert segment != first  # the flushed segment is gone; the open one is new and empty
        assert segment.read_bytes().rstrip(b"\0") == MAGIC


def test_unfinished_record_ends_the_segment(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", 0)
    bars = bars_from_table(SESSION.slice(0, 3))
    for bar in bars:
        journal.write_bar(bar)
    journal.close()
    (segment,) = (tmp_path / "j").glob("*.journal")
    data = bytearray(segment.read_bytes())
    # Append a record whose header was never written (a kill mid-record).
    end = len(data.rstrip(b"\0"))
    data[end + 8 : end + 16] = b"\x01garbage"
    segment.write_bytes(bytes(data))
    table, report = Journal(tmp_path / "j", 0).recover()
    assert bars_from_table(table) == bars
    assert report.records == 3
    assert report.dropped_bytes == 16  # from the stop to the last byte written
    assert report.torn is not None
    assert "unfinished" in report.torn
    assert not report.set_aside  # an unacknowledged record is not damage


def test_segment_made_ahead_and_interrupted_leaves_no_headerless_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flusher makes the next segment ahead (`prepare`) while the appending thread may make
    and fill a later one. Interrupted while it is made, it must leave no segment without its
    header: replay would take that for damage and drop the later segment's bars."""
    journal = Journal(tmp_path / "j", 0)
    bars = bars_from_table(SESSION.slice(0, 4))
    journal.write_bar(bars[0])
    journal.seal()  # as a drain does
    real = __import__("os").posix_fallocate

    def interrupted(fd: int, offset: int, size: int) -> None:
        real(fd, offset, size)
        raise KeyboardInterrupt  # stands for the kill, mid-way through making the segment

    monkeypatch.setattr("os.posix_fallocate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        journal.prepare()
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "j").iterdir()] == ["000000000001.journal"]
    for bar in bars[1:]:
        journal.write_bar(bar)  # the appending thread's own next segment
    (tmp_path / "j" / ".9.journal.unfinished").write_bytes(b"\0" * 4096)  # what a kill leaves
    table, report = Journal(tmp_path / "j", 0).recover()
    assert bars_from_table(table) == bars
    assert report.torn is None
    assert not list((tmp_path / "j").glob(".*"))


def test_segment_rotates_when_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("warehouse.journal.SEGMENT_BYTES", 4096)
    journal = Journal(tmp_path / "j", 0)
    bars = bars_from_table(SESSION.slice(0, 200))
    for bar in bars:
        journal.write_bar(bar)
    journal.write_batch(SESSION.slice(200, 100))
    journal.close()
    again = Journal(tmp_path / "j", 0)
    assert len(again.leftover) > 2
    assert again.recover()[0].equals(SESSION.slice(0, 300))


def test_open_without_journal_refuses_unreplayed_segments(
    tmp_path: Path, abandon: Callable[[Warehouse], None]
) -> None:
    db = tmp_path / "wh.duckdb"
    wh = Warehouse(db, journal=True, flush_interval=None)
    wh.extend(SESSION.slice(0, 10))
    abandon(wh)
    with pytest.raises(StoreError, match="journal=True"):
        Warehouse(db, flush_interval=None)
    with Warehouse(db, read_only=True) as reader:  # readers are not in the way
        assert reader.count(SESSION.column("symbol")[0].as_py()) == 0
    with Warehouse(db, journal=True, flush_interval=None) as again:
        assert again.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 10
    with Warehouse(db, flush_interval=None) as plain:
        assert plain.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 10


@settings(max_examples=100)  # cheap (a buffer, no warehouse): as many as the thorough profile
@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=70),
       st.integers(-(2**62), 2**62),
       st.floats(allow_nan=False), st.none() | st.floats(allow_nan=False),
       st.none() | st.integers(0, 2**63 - 1))
def test_compiled_bar_record_reads_back_with_struct_and_zlib(
    symbol: str, ts: int, price: float, vwap: float | None, count: int | None
) -> None:
    from warehouse._hot import SegmentWriter, bar_record_size
    from warehouse.journal import _BAR, _unpack_bar

    bar = Bar(symbol, ts, price, price, price, price, abs(price), vwap, count)
    size = bar_record_size(bar)
    writer = SegmentWriter()
    # The writer keeps the segment's last 8 bytes zero (the end mark): one byte short of
    # room for the record and the mark, nothing is written.
    short = bytearray(4 + size - 1 + 8)
    writer.attach(short, 4)
    assert not writer.write(bar)
    assert writer.pos == 4
    writer.detach()
    assert not any(short)
    segment = bytearray(4 + size + 8)
    writer.attach(segment, 4)
    assert writer.write(bar)
    assert writer.pos == 4 + size
    writer.detach()
    assert not any(segment[4 + size :])
    length, crc = struct.unpack_from("<II", segment, 4)
    payload = bytes(segment[12 : 12 + length])
    assert length == size - 8 == _BAR.size + len(symbol.encode())
    assert crc == zlib.crc32(payload)  # the C CRC-32 is zlib's
    assert _unpack_bar(memoryview(payload)) == bar


def test_segment_writer_writes_records_the_reader_takes_back_and_lets_the_map_close(
    tmp_path: Path,
) -> None:
    import mmap

    from warehouse._hot import SegmentWriter, bar_record_size
    from warehouse.journal import _records, _unpack_bar

    bars = [Bar(f"S{i}" * (1 + i % 5), 1_000 + i, 1.0 + i, 2.0 + i, 0.5, 1.5 + i, 10.0 * i,
                None if i % 3 else 1.25, None if i % 2 else i) for i in range(40)]
    size = 16 + sum(bar_record_size(bar) for bar in bars[:30]) + 8  # room for 30 and the end mark
    path = tmp_path / "segment"
    path.write_bytes(bytes(size))
    with path.open("r+b") as f:
        mm = mmap.mmap(f.fileno(), size)
    writer = SegmentWriter()
    assert not writer.write(bars[0])  # nothing attached: nothing written
    writer.attach(mm, 16)
    written = [bar for bar in bars if writer.write(bar)]
    assert written == bars[:30]  # the 31st does not fit; nothing of it was written
    assert writer.pos == size - 8
    with pytest.raises(BufferError):
        mm.close()  # held while attached
    writer.detach()
    assert not writer.write(bars[30])
    data = bytes(mm)
    mm.close()  # detached: the map closes
    assert [_unpack_bar(record) for _, record in _records(data)] == bars[:30]
