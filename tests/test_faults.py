"""Resource faults: exports that cannot be written (a path under a file, ENOSPC from fsync or the
rename, a full tmpfs), a warehouse file locked by another process, corrupt and truncated files.

Each fault gets the documented error (ExportError, StoreError), never a crash; and a live
warehouse in the same process, holding flushed and unflushed bars, keeps serving hot reads and
SQL and loses nothing: it is checked after every fault, then flushed, closed and reopened.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import warehouse as warehouse_package
import warehouse.archive as archive_module
from warehouse import Bar, ExportError, StoreError, Warehouse
from warehouse.sample import generate_session

ROOT = Path(warehouse_package.__file__).resolve().parent.parent
T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# -- the live warehouse that must survive every fault --------------------------------------------


@dataclass
class Live:
    """A file warehouse with flushed and unflushed bars, and what it must keep showing."""

    wh: Warehouse
    path: Path
    bars: list[Bar]

    def assert_intact(self) -> None:
        wh = self.wh
        by_symbol: dict[str, list[Bar]] = {}
        for b in sorted(self.bars, key=lambda b: (b.symbol, b.ts)):
            by_symbol.setdefault(b.symbol, []).append(b)
        for symbol, mine in by_symbol.items():
            assert wh.count(symbol) == len(mine)
            assert wh.latest(symbol) == mine[-1]
            assert wh.last_n(symbol, 10) == mine[-10:]
            assert wh.since(symbol, mine[-5].ts) == mine[-5:]
        assert wh.latest_many(list(by_symbol)) == {s: m[-1] for s, m in by_symbol.items()}
        assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == len(self.bars)

    def assert_durable(self) -> None:
        """Flush, close and reopen: every bar is in the file, once."""
        self.assert_intact()
        self.wh.close()
        self.wh = Warehouse(self.path, flush_interval=None)
        self.assert_intact()
        got = self.wh.sql("SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS k FROM bars")
        assert got.to_pylist() == [{"n": len(self.bars), "k": len(self.bars)}]


@pytest.fixture
def live(file_wh: Any, sample_bars: pa.Table) -> Iterator[Live]:
    wh = file_wh(flush_interval=None, window=16)
    wh.extend(sample_bars.slice(0, 3_000))
    wh.flush()
    rest = sample_bars.slice(3_000)
    ts = rest.column("ts").cast(pa.int64()).to_pylist()
    for row, stamp in zip(rest.to_pylist(), ts, strict=True):
        wh.append(*{**row, "ts": stamp}.values())
    bars = [Bar(*{**row, "ts": stamp}.values()) for row, stamp in zip(
        sample_bars.to_pylist(), sample_bars.column("ts").cast(pa.int64()).to_pylist(),
        strict=True)]
    state = Live(wh, file_wh.path, bars)
    state.assert_intact()
    yield state
    state.wh.close()


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def no_temporary_files(root: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in root.rglob("*"))


# -- exports that cannot be written ---------------------------------------------------------------


def test_export_under_a_regular_file_raises_export_error_and_live_keeps_serving(
    live: Live, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"a file where the archive should go")
    with pytest.raises(ExportError, match="failed"):
        live.wh.export_parquet(blocker / "archive")
    assert blocker.read_bytes() == b"a file where the archive should go"
    live.assert_intact()
    assert live.wh.export_parquet(tmp_path / "archive").rows == len(live.bars)
    live.assert_durable()


@pytest.fixture
def previous_export(live: Live, tmp_path: Path) -> tuple[Path, Path, bytes]:
    """An archive holding an export of the flushed bars only, and the bytes of its file."""
    archive = tmp_path / "archive"
    with live.wh._store.lock:  # export what is stored now, without the unflushed tail
        result = archive_module.export_parquet(live.wh._store, archive)
    (path,) = result.files
    assert result.rows == 3_000
    return archive, path, path.read_bytes()


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_export_with_enospc_keeps_previous_file_whole_and_leaves_no_temp(
    live: Live, previous_export: tuple[Path, Path, bytes], monkeypatch: pytest.MonkeyPatch,
    failing: str
) -> None:
    archive, path, before = previous_export

    def full(*args: object) -> None:
        raise ENOSPC

    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", full)
    else:
        monkeypatch.setattr(Path, "replace", full)
    with pytest.raises(ExportError, match="No space left on device"):
        live.wh.export_parquet(archive)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert listing(archive) == ["date=2025-11-21", "date=2025-11-21/bars.parquet"]
    live.assert_intact()
    # The export that failed flushed first: the next one has every bar.
    assert live.wh._store.stored_count() == len(live.bars)
    assert pq.read_table(live.wh.export_parquet(archive).files[0]).num_rows == len(live.bars)
    live.assert_durable()


def test_export_failing_at_directory_sync_leaves_new_file_whole(
    live: Live, previous_export: tuple[Path, Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename happened, the sync of the directory after it failed: the file is the new one,
    whole (a reader sees old or new, never partial), and the error is reported."""
    archive, path, _ = previous_export
    real_fsync = os.fsync
    calls = []

    def second_fails(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise ENOSPC
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", second_fails)
    with pytest.raises(ExportError):
        live.wh.export_parquet(archive)
    monkeypatch.undo()
    assert pq.read_table(path).num_rows == len(live.bars)
    assert no_temporary_files(archive)
    live.assert_durable()


# -- a tiny tmpfs (conftest's tiny_disk): a disk that really fills up ------------------------------


def test_export_to_full_disk_raises_export_error_and_keeps_previous_file(
    live: Live, tiny_disk: Callable[[str], None], tmp_path: Path
) -> None:
    archive = tmp_path / "disk" / "archive"
    small = live.wh.export_parquet(archive)  # the sample's 4,680 bars fit
    (path,) = small.files
    before = path.read_bytes()
    # 156,000 bars (several MiB of Parquet) on the same day, hours before the sample's bars.
    big = generate_session(400, 390)
    stamps = pc.subtract(big.column("ts").cast(pa.int64()), 14 * 60 * MINUTE)
    big = big.set_column(1, "ts", stamps.cast(big.schema.field("ts").type))
    live.wh.extend(big)
    live.bars.extend(Bar(*row.values()) for row in big.set_column(1, "ts", stamps).to_pylist())
    with pytest.raises(ExportError, match="failed"):
        live.wh.export_parquet(archive)
    assert path.read_bytes() == before
    assert no_temporary_files(archive), "the partial temporary file was left on the full disk"
    live.assert_intact()
    tiny_disk("64m")
    assert live.wh.export_parquet(archive).rows == len(live.bars)
    live.assert_durable()


def test_flush_to_full_disk_raises_store_error_keeps_bars_visible_then_succeeds(
    tiny_disk: Callable[[str], None], tmp_path: Path, live: Live
) -> None:
    path = tmp_path / "disk" / "full.duckdb"
    session = generate_session(200, 390)
    wh = Warehouse(path, flush_interval=None)
    try:
        wh.extend(session.slice(0, 2_000))
        assert wh.flush() == 2_000
        wh.extend(session.slice(2_000))
        with pytest.raises(StoreError, match="No space left on device"):
            wh.flush()
        # Nothing is lost: the bars wait on the log, every reader sees them.
        assert wh.stats()["unflushed"] == session.num_rows - 2_000
        assert wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == session.num_rows
        assert wh.latest("AAPL") is not None
        assert wh.count("AAPL") == 390
        live.assert_intact()
        tiny_disk("64m")
        assert wh.flush() == session.num_rows - 2_000
    finally:
        wh.close()
    with Warehouse(path, flush_interval=None) as again:
        assert again.stats()["bars"] == session.num_rows
        assert again.sql("SELECT count(DISTINCT (symbol, ts)) AS k FROM bars")["k"][0].as_py() \
            == session.num_rows
    live.assert_durable()


# -- a file another process holds ---------------------------------------------------------------


HOLDER = textwrap.dedent("""
    import sys
    from warehouse import Warehouse
    wh = Warehouse(sys.argv[1], flush_interval=None)
    for m in range(100):
        wh.append("HELD", {t0} + m * {minute}, 10.0, 11.0, 9.0, 10.5, float(m))
    wh.flush()
    print("READY", flush=True)
    sys.stdin.readline()
    for m in range(100, 150):
        wh.append("HELD", {t0} + m * {minute}, 10.0, 11.0, 9.0, 10.5, float(m))
    wh.close()
    print("CLOSED", flush=True)
""").format(t0=T0, minute=MINUTE)


def test_file_locked_by_another_process_raises_store_error_and_holder_keeps_its_data(
    live: Live, tmp_path: Path
) -> None:
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], cwd=ROOT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "READY"
        for read_only in (False, True):
            with pytest.raises(StoreError) as caught:
                Warehouse(path, flush_interval=None, read_only=read_only)
            message = str(caught.value)
            assert str(path) in message, message
            assert "lock" in message, message
        live.assert_intact()
        holder.stdin.write("go on\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "CLOSED"
        assert holder.wait(30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)
        stderr = holder.stderr.read() if holder.stderr else ""
        for pipe in (holder.stdin, holder.stdout, holder.stderr):
            if pipe is not None:
                pipe.close()
    assert stderr == ""
    with Warehouse(path, read_only=True) as wh:
        assert wh.count("HELD") == 150
        assert [b.volume for b in wh.last_n("HELD", 150)] == [float(m) for m in range(150)]
    live.assert_durable()


# -- corrupt and truncated files ------------------------------------------------------------------


@dataclass(frozen=True)
class RealFile:
    path: Path
    bars: pa.Table  # every bar in it, in (symbol, ts) order


@pytest.fixture(scope="module")
def real_file(tmp_path_factory: pytest.TempPathFactory) -> RealFile:
    """A checkpointed warehouse file of 10,000 bars (about 0.5 MiB)."""
    path = tmp_path_factory.mktemp("real") / "real.duckdb"
    with Warehouse(path, flush_interval=None) as wh:
        wh.extend(generate_session(50, 200))
    with Warehouse(path, read_only=True) as wh:
        return RealFile(path, all_bars(wh))


def all_bars(wh: Warehouse) -> pa.Table:
    return wh.sql("SELECT * EXCLUDE (origin) FROM bars ORDER BY symbol, ts")


def _truncate(size: Callable[[int], int]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with path.open("r+b") as handle:
            handle.truncate(size(path.stat().st_size))

    return damage


def _overwrite(offset: Callable[[int], int], length: int = 4096) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        noise = bytes((i * 167 + 13) % 256 for i in range(length))  # fixed garbage
        with path.open("r+b") as handle:
            handle.seek(offset(path.stat().st_size))
            handle.write(noise)

    return damage


DAMAGE = {
    "garbage": lambda p: p.write_bytes(bytes(range(256)) * 400),
    "empty": _truncate(lambda n: 0),
    "first-block-only": _truncate(lambda n: 4096),
    "header-only": _truncate(lambda n: 12_288),
    "half": _truncate(lambda n: n // 2),
    "last-block-cut": _truncate(lambda n: n - 4096),
    "header-overwritten": _overwrite(lambda n: 0, 100),
    "middle-block-overwritten": _overwrite(lambda n: n // 2 // 4096 * 4096),
    "middle-bytes-overwritten": _overwrite(lambda n: n // 2 + 1_000, 64),
    "last-block-overwritten": _overwrite(lambda n: n - 8192),
}


def open_damaged(path: Path, read_only: bool, original: pa.Table) -> str | None:
    """Open a damaged file and read all of it: the StoreError's message, or None if every bar
    came back exactly as written (the damage hit space the file does not use). Wrong bars, or
    any other error, fail the test."""
    try:
        wh = Warehouse(path, flush_interval=None, read_only=read_only)
    except StoreError as exc:
        return str(exc)
    try:
        got = all_bars(wh)
        wh.export_parquet(path.parent / "archive")  # reads every column of every row group
    except (StoreError, ExportError) as exc:
        return str(exc)
    finally:
        with contextlib.suppress(StoreError):
            wh.close()
    assert got.equals(original), "a damaged file gave wrong bars instead of an error"
    return None


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_corrupt_or_truncated_file_raises_store_error_and_live_keeps_serving(
    live: Live, real_file: RealFile, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "damaged.duckdb"
    shutil.copyfile(real_file.path, path)
    damage(path)
    damaged = path.read_bytes()
    outcomes = []
    for read_only in (True, False):
        error = open_damaged(path, read_only, real_file.bars)
        if error is not None:
            assert re.search(r"IO Error|Corrupt|not a valid|checksum", error), error
            assert "different configuration" not in error
        if read_only:
            assert path.read_bytes() == damaged, "a read-only open wrote to the damaged file"
        outcomes.append(error)
    if damage not in (DAMAGE["middle-block-overwritten"], DAMAGE["middle-bytes-overwritten"],
                      DAMAGE["last-block-overwritten"]):
        assert None not in outcomes, "a truncated or emptied file opened as if whole"
    live.assert_intact()
    # Nothing global was poisoned: an intact copy opens in the same process.
    good = tmp_path / "good.duckdb"
    shutil.copyfile(real_file.path, good)
    with Warehouse(good, flush_interval=None) as wh:
        assert all_bars(wh).equals(real_file.bars)
    live.assert_durable()


def open_handles(path: Path) -> list[str]:
    """This process's file descriptors open on ``path``."""
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            if str(fd.readlink()) == str(path):
                found.append(fd.name)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_open_failing_while_restoring_releases_the_file(
    real_file: RealFile, tmp_path: Path
) -> None:
    path = tmp_path / "damaged.duckdb"
    shutil.copyfile(real_file.path, path)
    DAMAGE["last-block-cut"](path)

    def failing_open() -> None:
        with pytest.raises(StoreError, match="IO Error"):
            Warehouse(path, flush_interval=None)

    gc.disable()  # deterministic: no collection may close the leaked connection meanwhile
    try:
        failing_open()  # the error is handled and gone when this returns
        assert open_handles(path) == [], "the failed open left the file open"
        with pytest.raises(StoreError, match="IO Error"):
            Warehouse(path, read_only=True)
    finally:
        gc.enable()
        gc.collect()


@pytest.mark.parametrize(
    "target", ["directory", "under-a-file", "missing-parent"],
)
def test_unusable_path_raises_store_error_naming_it(
    live: Live, tmp_path: Path, target: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    path = {"directory": tmp_path / "a-dir", "under-a-file": tmp_path / "a-file" / "w.duckdb",
            "missing-parent": tmp_path / "no" / "such" / "w.duckdb"}[target]
    with pytest.raises(StoreError, match="cannot open warehouse file") as caught:
        Warehouse(path, flush_interval=None)
    assert str(path) in str(caught.value)
    live.assert_durable()


WAL_WRITER = textwrap.dedent("""
    import os, signal, sys
    from warehouse import Warehouse
    from warehouse.sample import generate_session
    session = generate_session(20, 100)
    wh = Warehouse(sys.argv[1], flush_interval=None)
    wh.extend(session.slice(0, 1000))
    wh.checkpoint()
    wh.extend(session.slice(1000))
    wh.flush()  # in the WAL only
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.fixture(scope="module")
def killed_with_wal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file killed with 1,000 bars checkpointed and 1,000 more flushed to its WAL only."""
    path = tmp_path_factory.mktemp("wal") / "wal.duckdb"
    done = subprocess.run([sys.executable, "-c", WAL_WRITER, str(path)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == -9, done.stderr
    assert Path(f"{path}.wal").stat().st_size > 0
    return path


WAL_DAMAGE = {
    "intact": lambda p: None,
    "tail-cut": _truncate(lambda n: n - 10),
    "half-cut": _truncate(lambda n: n // 2),
    "emptied": _truncate(lambda n: 0),
    "head-overwritten": _overwrite(lambda n: 0, 64),
    "middle-overwritten": _overwrite(lambda n: n // 2, 64),
    "tail-overwritten": _overwrite(lambda n: n - 64, 64),
}


@pytest.mark.parametrize("damage", WAL_DAMAGE.values(), ids=WAL_DAMAGE.keys())
def test_damaged_wal_gives_store_error_or_whole_flushes_never_a_torn_one(
    live: Live, killed_with_wal: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    """DuckDB replays a WAL up to its first bad entry; a torn tail (a write cut by the crash) is
    dropped. Whatever it decides, the warehouse holds whole flushes (1,000 or 2,000 bars, each
    once) or refuses with StoreError; an intact WAL gives all 2,000."""
    path = tmp_path / "wal.duckdb"
    shutil.copyfile(killed_with_wal, path)
    shutil.copyfile(f"{killed_with_wal}.wal", f"{path}.wal")
    damage(Path(f"{path}.wal"))
    try:
        wh = Warehouse(path, flush_interval=None)
    except StoreError as exc:
        refused = str(exc)
    else:
        refused = ""
        with wh:
            row = wh.sql("SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS k FROM bars")
            n = row["n"][0].as_py()
            assert n == row["k"][0].as_py()
            assert n in (1_000, 2_000)
            assert wh.stats()["bars"] == n
            if damage is WAL_DAMAGE["intact"]:
                assert n == 2_000
    if refused:
        assert "WAL" in refused
    live.assert_durable()
