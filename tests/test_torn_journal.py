"""A damaged journal (power cut, bit rot) and a full disk under it (invariant 6, durability).

A power cut can leave a segment's tail, or any page of it, as zeros (never written back), or a
file shorter than written; bit rot flips a byte. Replay must keep exactly the whole records
before the first damage, say how much it dropped, never invent a bar, and never refuse to open.
The oracle is independent of the parser: the journal's write position after each append.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import warehouse as warehouse_package
from warehouse import Bar, StoreError, Warehouse
from warehouse.journal import SET_ASIDE

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
PAGE = 4096
ROOT = Path(warehouse_package.__file__).resolve().parent.parent
DAMAGE = ("zero-tail", "zero-page", "flip-byte", "truncate", "zero-header")


def bar(i: int) -> Bar:
    price = 50.0 + i % 13
    return Bar(f"S{i % 7}", T0 + (i // 7) * MINUTE, price, price + 1, price - 1, price, 5.0 + i)


def killed_journal(db: Path, count: int) -> tuple[Path, list[int]]:
    """Journal ``count`` bars, then drop the process state as a kill would.

    Returns the segment and, per bar, the offset where its record ends (the oracle).
    """
    wh = Warehouse(db, journal=True, flush_interval=None)
    assert wh._journal is not None
    ends = []
    for i in range(count):
        wh.append(*bar(i))
        ends.append(wh._journal.writer.pos)
    wh._journal.close()  # what a SIGKILL leaves: the mapped pages, in the file
    wh._store.close()
    wh._stopping = True
    wh._wake.set()
    (segment,) = Path(f"{db}.journal").glob("*.journal")
    return segment, ends


def damage(segment: Path, kind: str, rng: random.Random, end: int) -> int:
    """Damage the segment as ``kind`` says; returns the first offset that is no longer intact."""
    data = bytearray(segment.read_bytes())
    header = 16
    if kind == "zero-tail":
        at = rng.randrange(header // PAGE * PAGE + PAGE, end + PAGE) // PAGE * PAGE
        data[at:] = bytes(len(data) - at)
    elif kind == "zero-page":
        at = rng.randrange(PAGE, end) // PAGE * PAGE
        data[at : at + PAGE] = bytes(PAGE)
    elif kind == "flip-byte":
        at = rng.randrange(header, end)
        data[at] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        at = rng.randrange(header, end)
        del data[at:]
    else:  # the header's page was never written back
        at = 0
        data[:PAGE] = bytes(PAGE)
    segment.write_bytes(bytes(data))
    return at


def cases() -> Iterator[Any]:
    """12 cases in the default suite (each kind of damage twice or more), 212 more with
    ``-m slow``."""
    for seed in range(224):
        marks = [pytest.mark.slow] if seed >= 12 else []
        yield pytest.param(DAMAGE[seed % len(DAMAGE)], seed, marks=marks)


@pytest.mark.parametrize(("kind", "seed"), list(cases()))
def test_replay_of_damaged_journal_keeps_the_whole_prefix_and_says_what_it_dropped(
    tmp_path: Path, kind: str, seed: int
) -> None:
    rng = random.Random(seed)
    db = tmp_path / "wh.duckdb"
    count = rng.randrange(200, 1500)
    segment, ends = killed_journal(db, count)
    first_bad = damage(segment, kind, rng, ends[-1])
    whole = sum(1 for end in ends if end <= first_bad)
    # A plain open is refused with the way out; a read-only one is not in the way.
    with pytest.raises(StoreError, match="journal=True"):
        Warehouse(db, flush_interval=None)
    with Warehouse(db, journal=True, flush_interval=None) as wh:
        table = wh.sql("SELECT * EXCLUDE (origin) FROM bars ORDER BY symbol, ts")
        recovery = wh.recovery
    expected = pa.Table.from_pylist([bar(i)._asdict() for i in range(whole)])
    got = table.cast(pa.schema([f.with_type(pa.int64()) if f.name == "ts" else f
                                for f in table.schema]))
    assert sorted(got.to_pylist(), key=lambda r: (r["symbol"], r["ts"])) == sorted(
        expected.to_pylist(), key=lambda r: (r["symbol"], r["ts"]))
    assert recovery is not None
    assert recovery.records == whole
    if whole < count:  # something was dropped, and the report says so
        assert recovery.torn is not None
        assert str(segment) in recovery.torn
        assert recovery.dropped_bytes > 0
    if kind in ("flip-byte", "zero-header") or (kind == "zero-page" and whole < count - 1):
        assert recovery.set_aside == [segment.with_name(segment.name + SET_ASIDE)]
        assert recovery.set_aside[0].exists()  # kept for inspection
    # Nothing waits to be replayed any more: a plain open works, with the same bars.
    with Warehouse(db, flush_interval=None) as plain:
        assert plain.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == whole


def test_damage_in_an_early_segment_drops_every_later_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("warehouse.journal.SEGMENT_BYTES", 8 * PAGE)
    db = tmp_path / "wh.duckdb"
    wh = Warehouse(db, journal=True, flush_interval=None)
    assert wh._journal is not None
    for i in range(2000):
        wh.append(*bar(i))
    wh._journal.close()
    wh._store.close()
    wh._stopping = True
    wh._wake.set()
    segments = sorted(Path(f"{db}.journal").glob("*.journal"))
    assert len(segments) > 3
    data = bytearray(segments[1].read_bytes())
    data[3 * PAGE : 4 * PAGE] = bytes(PAGE)  # a page lost in the second segment
    segments[1].write_bytes(bytes(data))
    with Warehouse(db, journal=True, flush_interval=None) as again:
        recovery = again.recovery
        stored = again.stats()["bars"]
    assert recovery is not None
    assert recovery.set_aside == [s.with_name(s.name + SET_ASIDE) for s in segments[1:]]
    # The prefix: all of the first segment, the second up to the lost page, nothing later.
    assert 0 < stored < 2000
    with Warehouse(db, flush_interval=None) as plain:
        ts = plain.sql("SELECT min(ts) AS t FROM bars")["t"][0].as_py()
        assert ts.timestamp() * 1e6 >= T0  # no bar invented from zeros (dated 1970)


def test_foreign_file_in_journal_folder_is_set_aside_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    Warehouse(db, flush_interval=None).close()
    folder = Path(f"{db}.journal")
    folder.mkdir()
    (folder / "000000000001.journal").write_bytes(b"WHJRNL01" + bytes(100))  # an old format
    with Warehouse(db, journal=True, flush_interval=None) as wh:
        assert wh.recovery is not None
        assert wh.recovery.torn is not None
        assert "not a journal segment of this format" in wh.recovery.torn
    assert (folder / f"000000000001.journal{SET_ASIDE}").exists()


# -- a full disk ------------------------------------------------------------------------------

FULL_DISK_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import warehouse.journal
    warehouse.journal.SEGMENT_BYTES = 1 << 20
    from warehouse import Bar, Warehouse, WarehouseError

    wh = Warehouse({db!r}, journal=True, flush_interval=None)
    acked = 0
    try:
        for i in range(10**7):
            wh.append("ES", {t0} + i * 60_000_000, 1.0, 2.0, 0.5, 1.5, 10.0)
            acked += 1
    except WarehouseError as exc:
        print("REFUSED", type(exc).__name__, acked, flush=True)
        print(exc, file=sys.stderr, flush=True)
    # The process and every accepted bar are intact:
    assert wh.count("ES") == acked, (wh.count("ES"), acked)
    assert wh.latest("ES").ts == {t0} + (acked - 1) * 60_000_000
    print("INTACT", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_full_disk_under_the_journal_refuses_the_append_and_keeps_every_earlier_bar(
    tiny_disk: Callable[[str], None], tmp_path: Path
) -> None:
    tiny_disk("4m")
    db = tmp_path / "disk" / "wh.duckdb"
    script = FULL_DISK_CHILD.format(root=str(ROOT), db=str(db), t0=T0)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, check=False)
    # Not SIGBUS: the child lived to check itself, then killed itself as a crash would.
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stderr)
    refused, intact = child.stdout.split("\n")[:2]
    name, acked = refused.split()[1], int(refused.split()[2])
    assert name == "StoreError"
    assert intact == "INTACT"
    assert "No space left on device" in child.stderr
    assert acked > 10_000  # at least a segment's worth went in first
    # With room again, the reopen replays every acknowledged bar.
    tiny_disk("64m")
    with Warehouse(db, journal=True, flush_interval=None) as wh:
        assert wh.count("ES") == acked
        assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == acked
