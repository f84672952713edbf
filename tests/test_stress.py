"""Concurrency stress: one feed at full speed, the background flusher, hot readers (threads and
asyncio), SQL and frame() readers and exports, all on one warehouse file at once.

Every bar is a pure function of its key number k and a version (0, or 1 once corrected), and
encodes both (volume = k, trade_count = 2k + version), so a reader can tell a torn or misplaced
bar from a whole one by equality alone. The feed appends keys in order (singly and in batches,
with corrections of recent and long-flushed keys), so at every instant the keys held are exactly
0..K-1: per symbol, consecutive minutes from the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from warehouse import Bar, Warehouse
from warehouse.schema import BAR_SCHEMA

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
SYMBOLS = 16
NAMES = [f"S{i}" for i in range(SYMBOLS)]
WINDOW = 32
BATCH_EVERY, BATCH_SIZE = 400, 64  # one batch of 64 keys after every 400 single appends
CORRECT_EVERY = 37  # a correction of a recent key (inside the window) every 37 keys
CORRECT_DEEP_EVERY = 1_009  # and of a key far behind (flushed, out of the window)
JOIN_TIMEOUT = 60.0
EXPORT_EVERY = 0.4  # seconds between the SQL reader's exports

OPTIONS: dict[str, Any] = {
    "flush_rows": 500, "flush_interval": 0.002, "window": WINDOW, "checkpoint_rows": 25_000,
    "compact_rows": 4_000,
}


def key_bar(k: int, version: int = 0) -> Bar:
    """The bar of key k: symbol k % SYMBOLS, minute k // SYMBOLS; every field derives from k."""
    price = 100.0 + (k % 997) / 100 + version * 0.125
    return Bar(NAMES[k % SYMBOLS], T0 + (k // SYMBOLS) * MINUTE, price, price + 0.5,
               price - 0.5, price + 0.25, float(k), price, 2 * k + version)


def key_of(bar: Bar) -> int:
    return (bar.ts - T0) // MINUTE * SYMBOLS + int(bar.symbol[1:])


def is_whole(bar: Bar) -> bool:
    """The bar is exactly one that was written for its (symbol, ts), version 0 or 1."""
    return (
        bar.trade_count is not None
        and bar == key_bar(key_of(bar), bar.trade_count % 2)
        and bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high
    )


def whole_rows(frame: pl.DataFrame) -> np.ndarray:
    """`is_whole` for every row of a frame, vectorised with numpy (whose float operations round
    as Python's do; polars may divide by multiplying with the reciprocal)."""
    count = frame["trade_count"].fill_null(-1).to_numpy()
    k, version = count // 2, count % 2
    price = 100.0 + (k % 997) / 100 + version * 0.125
    minute = (frame["ts"].dt.epoch("us").to_numpy() - T0) // MINUTE
    index = frame["symbol"].str.slice(1).cast(pl.Int64).to_numpy()
    column = {name: frame[name].fill_null(np.nan).to_numpy() for name in BAR_SCHEMA.names[2:8]}
    ok: np.ndarray = (
        (count >= 0) & (minute * SYMBOLS + index == k) & (column["open"] == price)
        & (column["high"] == price + 0.5) & (column["low"] == price - 0.5)
        & (column["close"] == price + 0.25) & (column["volume"] == k) & (column["vwap"] == price)
    )
    return ok


def expected_table(total: int, corrected: set[int]) -> pa.Table:
    """Every bar of keys 0..total-1 as `key_bar` makes them, vectorised, in (symbol, ts) order."""
    k = np.arange(total, dtype=np.int64)
    version = np.zeros(total, dtype=np.int64)
    version[sorted(corrected)] = 1
    price = 100.0 + (k % 997) / 100 + version * 0.125
    table = pa.table(
        {
            "symbol": pa.array(np.array(NAMES, dtype=object)[k % SYMBOLS], pa.string()),
            "ts": pa.array(T0 + (k // SYMBOLS) * MINUTE).cast(BAR_SCHEMA.field("ts").type),
            "open": price, "high": price + 0.5, "low": price - 0.5, "close": price + 0.25,
            "volume": k.astype(np.float64), "vwap": price, "trade_count": 2 * k + version,
        },
        schema=BAR_SCHEMA,
    )
    return in_key_order(table)


def in_key_order(table: pa.Table) -> pa.Table:
    table = table.select(BAR_SCHEMA.names).cast(BAR_SCHEMA)
    return table.take(pc.sort_indices(table, [("symbol", "ascending"), ("ts", "ascending")]))


def read_export(files: tuple[Path, ...]) -> pa.Table:
    """The days of an export as one table; each file whole, its footer agreeing with its rows."""
    tables = []
    for path in files:
        table = pq.read_table(path)
        assert table.num_rows == pq.ParquetFile(path).metadata.num_rows
        tables.append(table)
    return pa.concat_tables(tables)


def contiguous(bars: list[Bar]) -> bool:
    return all(b.ts - a.ts == MINUTE for a, b in itertools.pairwise(bars))


# -- the feed -------------------------------------------------------------------------------------


@dataclass
class Feed:
    """Appends keys 0, 1, 2 ... at full speed for ``duration`` seconds or ``max_keys`` keys, and
    on until ``raced()`` says the readers and the flusher ran beside it (however loaded the
    machine); remembers what it corrected."""

    wh: Warehouse
    duration: float
    max_keys: int
    raced: Callable[[], bool] = lambda: True
    total: int = 0
    corrected: set[int] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        append, extend = self.wh.append, self.wh.extend
        deadline = time.monotonic() + self.duration
        k = 0
        try:
            while (k < self.max_keys and time.monotonic() < deadline) or not self.raced():
                if k % BATCH_EVERY == BATCH_EVERY - 1:
                    batch = [key_bar(j) for j in range(k, k + BATCH_SIZE)]
                    if k % (2 * BATCH_EVERY) == BATCH_EVERY - 1:
                        extend(pa.Table.from_pylist([b._asdict() for b in batch],
                                                    schema=BAR_SCHEMA))
                    else:
                        extend(batch)
                    k += BATCH_SIZE
                else:
                    append(*key_bar(k))
                    k += 1
                self.total = k  # published after the bar is in: readers may rely on it
                if k % CORRECT_EVERY == 0 and k > 3 * SYMBOLS:
                    old = k - 3 * SYMBOLS
                    append(*key_bar(old, 1))
                    self.corrected.add(old)
                if k % CORRECT_DEEP_EVERY == 0 and k > 5_000:
                    old = k - 5_000
                    append(*key_bar(old, 1))
                    self.corrected.add(old)
        finally:
            self.done.set()


# -- readers --------------------------------------------------------------------------------------


class HotChecker:
    """Hot reads of one reader, each checked against what a reader may see at that moment."""

    def __init__(self, wh: Warehouse, feed: Feed, *, deep: bool = True) -> None:
        self.wh = wh
        self.feed = feed
        self.deep = deep  # now and then read past the window (DuckDB, so it may wait its turn)
        self.counts = dict.fromkeys(NAMES, 0)
        self.latest_ts = dict.fromkeys(NAMES, 0)
        self.rounds = 0

    def check(self, name: str) -> None:
        wh = self.wh
        # The keys of this symbol whose append had returned before these reads began: each is
        # visible to every read below (invariant 1). An append in flight may show in one read
        # (count) a moment before another (latest); that is not a violation.
        done = len(range(int(name[1:]), self.feed.total, SYMBOLS))
        n = wh.count(name)
        assert n >= self.counts[name], f"count({name}) went backwards"
        assert n >= done, f"count({name}) misses a bar whose append returned"
        self.counts[name] = n
        latest = wh.latest(name)
        assert latest is not None or done == 0
        if latest is not None:
            assert is_whole(latest), f"torn or foreign latest bar {latest}"
            assert latest.ts >= self.latest_ts[name], f"latest({name}) went back in time"
            assert latest.ts >= T0 + (done - 1) * MINUTE, "latest misses a returned append"
            self.latest_ts[name] = latest.ts
        tail = wh.last_n(name, 10)
        assert all(is_whole(b) for b in tail), tail
        assert contiguous(tail), tail
        assert min(10, done) <= len(tail) <= 10
        if len(tail) >= 4:
            since = wh.since(name, tail[-4].ts)
            assert len(since) >= 4
            assert contiguous(since)
            assert all(is_whole(b) for b in since)
            assert since[0].ts == tail[-4].ts
        many = wh.latest_many(NAMES)
        assert all(b is None or is_whole(b) for b in many.values())
        self.rounds += 1
        if self.deep and self.rounds % 499 == 0:
            deep = wh.last_n(name, 3 * WINDOW)  # past the window: served by DuckDB
            assert all(is_whole(b) for b in deep)
            assert contiguous(deep)
            assert min(3 * WINDOW, done) <= len(deep) <= 3 * WINDOW


class SqlChecker:
    """SQL over `bars`, frame() and exports, each checked against the key-prefix invariant."""

    def __init__(self, wh: Warehouse, feed: Feed, archive: Path | None) -> None:
        self.wh = wh
        self.feed = feed
        self.archive = archive
        self.seen = 0
        self.exported = 0
        self.rounds = 0
        self.exports = 0
        self.next_export = time.monotonic() + EXPORT_EVERY

    def check(self) -> None:
        wh = self.wh
        hot = sum(wh.count(name) for name in NAMES)
        row = wh.sql(
            "SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS keys, "
            "coalesce(max(trade_count // 2), -1) AS max_key, "
            "count(*) FILTER (WHERE volume <> trade_count // 2) AS misplaced, "
            "count(*) FILTER (WHERE NOT (low <= open AND open <= high AND low <= close "
            "AND close <= high)) AS torn FROM bars"
        ).to_pylist()[0]
        assert row["n"] == row["keys"], f"a bar is visible twice: {row}"
        assert row["torn"] == 0, row
        assert row["misplaced"] == 0, row
        assert row["n"] == row["max_key"] + 1, f"keys are not exactly 0..n-1: {row}"
        assert row["n"] >= hot, "SQL missed a bar that a hot read had seen"
        assert row["n"] >= self.seen, "the SQL count went backwards"
        self.seen = row["n"]
        self.rounds += 1
        names = [NAMES[self.rounds % SYMBOLS], NAMES[(self.rounds * 7 + 3) % SYMBOLS]]
        frame = wh.frame(names)
        torn = frame.filter(~whole_rows(frame))
        assert torn.is_empty(), f"frame() gave torn bars: {torn}"
        for name in set(names):
            mine = frame.filter(pl.col("symbol") == name)["ts"].dt.epoch("us").to_list()
            assert mine == [T0 + m * MINUTE for m in range(len(mine))]
        if self.archive is not None and time.monotonic() >= self.next_export:
            self.next_export = time.monotonic() + EXPORT_EVERY
            result = wh.export_parquet(self.archive)
            assert result.rows >= self.exported, "an export lost rows"
            self.exported = result.rows
            table = read_export(result.files)
            assert table.num_rows == result.rows
            keys = pc.divide(table.column("trade_count"), 2).to_numpy()
            assert np.array_equal(np.sort(keys), np.arange(table.num_rows))
            self.exports += 1


def run_threads(targets: list[tuple[str, Callable[[], None]]], stop: threading.Event) -> list[
        BaseException]:
    """Run each target in a thread; return the errors; fail on a thread that will not finish."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return run

    threads = [threading.Thread(target=guarded(t), name=n, daemon=True) for n, t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    stop.set()
    assert not stuck, f"deadlock: threads {stuck} still running after {JOIN_TIMEOUT} s"
    return errors


def until(stop: threading.Event, feed: Feed, body: Callable[[], None]) -> Callable[[], None]:
    def loop() -> None:
        while not stop.is_set() and not feed.done.is_set():
            body()
        body()  # one more round after the feed stops

    return loop


def assert_final_state(wh: Warehouse, feed: Feed, archive: Path) -> None:
    """SQL, frame(), hot reads and a fresh export all hold exactly the bars appended."""
    expected = expected_table(feed.total, feed.corrected)
    assert in_key_order(wh.sql("SELECT * EXCLUDE (origin) FROM bars")).equals(expected)
    assert in_key_order(wh.frame().to_arrow()).equals(expected)
    per_symbol = feed.total // SYMBOLS
    for i, name in enumerate(NAMES):
        n = per_symbol + (1 if i < feed.total % SYMBOLS else 0)
        keys = range(i, feed.total, SYMBOLS)
        assert wh.count(name) == n
        want = [key_bar(k, int(k in feed.corrected)) for k in keys]
        assert wh.latest(name) == want[-1]
        assert wh.last_n(name, WINDOW) == want[-WINDOW:]
        if i % 5 == 0:
            assert wh.last_n(name, n) == want  # deep, through DuckDB
    result = wh.export_parquet(archive)
    assert result.rows == feed.total
    assert in_key_order(read_export(result.files)).equals(expected)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Path]:
    """The export directory; the GIL switches 10x more often meanwhile, for more interleavings."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    yield tmp_path / "archive"
    sys.setswitchinterval(interval)


def stress_threads(file_wh: Any, archive: Path, duration: float, max_keys: int) -> None:
    wh = file_wh(**OPTIONS)
    feed = Feed(wh, duration, max_keys)
    stop = threading.Event()
    hot = [HotChecker(wh, feed) for _ in range(4)]
    sql = SqlChecker(wh, feed, archive)
    feed.raced = lambda: stop.is_set() or (
        wh.stats()["flushes"] >= 5 and min(c.rounds for c in hot) > 0 and sql.rounds >= 3)

    def hot_loop(checker: HotChecker) -> Callable[[], None]:
        def body() -> None:
            for name in NAMES:
                checker.check(name)
            time.sleep(0)  # a reader between two rounds of its own work: lets the GIL go

        return until(stop, feed, body)

    errors = run_threads(
        [("feed", feed.run), *((f"hot-{i}", hot_loop(c)) for i, c in enumerate(hot)),
         ("sql", until(stop, feed, sql.check))],
        stop,
    )
    assert errors == [], errors
    assert wh.flush_error is None
    stats = wh.stats()
    assert stats["flushes"] >= 5, f"the background flusher hardly ran: {stats}"
    assert min(c.rounds for c in hot) > 0
    assert sql.rounds >= 3
    assert stats["replacements"] >= len(feed.corrected)
    print(f"threads: {feed.total} keys, {stats['flushes']} flushes, {sql.rounds} SQL rounds, "
          f"{sql.exports} exports, hot rounds {[c.rounds for c in hot]}")
    assert_final_state(wh, feed, archive)
    wh.close()
    again = file_wh(**OPTIONS)
    assert_final_state(again, feed, archive)


def test_feed_flusher_and_threaded_readers_keep_every_bar_whole_and_once(
    file_wh: Any, archive: Path
) -> None:
    stress_threads(file_wh, archive, duration=2.5, max_keys=400_000)


@pytest.mark.slow
def test_long_feed_flusher_and_threaded_readers_keep_every_bar_whole_and_once(
    file_wh: Any, archive: Path
) -> None:
    stress_threads(file_wh, archive, duration=40.0, max_keys=3_000_000)


# -- asyncio readers ------------------------------------------------------------------------------


def stress_asyncio(file_wh: Any, archive: Path, duration: float, max_keys: int) -> None:
    wh = file_wh(**OPTIONS)
    feed = Feed(wh, duration, max_keys)
    stop = threading.Event()
    # Reads past the window query DuckDB and wait for the store lock: not for the event loop.
    checkers = [HotChecker(wh, feed, deep=False) for _ in range(8)]
    sql = SqlChecker(wh, feed, None)  # no exports: they hold the store lock for long
    feed.raced = lambda: stop.is_set() or (
        wh.stats()["flushes"] >= 5 and min(c.rounds for c in checkers) > 10 and sql.rounds >= 2)
    lags: list[float] = []

    async def hot_reader(checker: HotChecker) -> None:
        while not stop.is_set() and not feed.done.is_set():
            for name in NAMES:
                checker.check(name)
                await asyncio.sleep(0)  # other coroutines run between any two reads
            await asyncio.sleep(0.001)  # as an engine waiting for its next event

    async def sql_reader() -> None:
        # Blocking SQL belongs off the loop; the loop keeps serving hot reads meanwhile.
        while not stop.is_set() and not feed.done.is_set():
            await asyncio.to_thread(sql.check)

    async def heartbeat() -> None:
        while not stop.is_set() and not feed.done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - started)

    async def main() -> None:
        await asyncio.gather(*(hot_reader(c) for c in checkers), sql_reader(), heartbeat())

    errors = run_threads([("feed", feed.run), ("loop", lambda: asyncio.run(main()))], stop)
    assert errors == [], errors
    assert wh.flush_error is None
    assert wh.stats()["flushes"] >= 5
    assert min(c.rounds for c in checkers) > 10
    assert sql.rounds >= 2
    # The loop never stalled on a flush or a checkpoint for long (generous: 2 cores, a busy feed
    # thread and the GIL). Hot reads take no lock; but when the feed outruns a reader by a whole
    # window between two of its reads, since() reaches past the window and waits its turn at
    # DuckDB (seen: ~0.35 s behind a flush and the SQL reader under the long variant's load).
    assert max(lags) < 2.0, f"event loop stalled {max(lags):.3f} s"
    print(f"asyncio: {feed.total} keys, {wh.stats()['flushes']} flushes, {sql.rounds} SQL "
          f"rounds, hot rounds {[c.rounds for c in checkers]}, max lag {max(lags) * 1e3:.1f} ms")
    assert_final_state(wh, feed, archive)


def test_feed_flusher_and_asyncio_readers_keep_every_bar_whole_and_once(
    file_wh: Any, archive: Path
) -> None:
    stress_asyncio(file_wh, archive, duration=1.5, max_keys=300_000)


@pytest.mark.slow
def test_long_feed_flusher_and_asyncio_readers_keep_every_bar_whole_and_once(
    file_wh: Any, archive: Path
) -> None:
    stress_asyncio(file_wh, archive, duration=30.0, max_keys=3_000_000)


# -- invariant 5: hot reads never wait for the store ----------------------------------------------


@contextlib.contextmanager
def store_held(wh: Warehouse) -> Iterator[None]:
    """Hold the store lock (as a long flush, export or query does) in another thread."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with wh._store.lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)
    try:
        yield
    finally:
        release.set()
        holder.join(5)


def test_hot_reads_and_appends_while_store_lock_is_held_complete_without_waiting(
    file_wh: Any,
) -> None:
    wh = file_wh(**OPTIONS)
    wh.extend([key_bar(k) for k in range(40 * SYMBOLS)])
    wh.flush()
    results: list[Any] = []

    def reads() -> None:
        for name in NAMES:
            results.append((wh.count(name), wh.latest(name), wh.last_n(name, WINDOW),
                            wh.since(name, T0 + 30 * MINUTE), wh.latest_many(NAMES),
                            wh.metrics(name)))
        wh.append(*key_bar(40 * SYMBOLS))
        wh.extend([key_bar(40 * SYMBOLS + 1)])

    with store_held(wh):
        reader = threading.Thread(target=reads, daemon=True)
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "a hot read or an append waited for the store lock"
    assert len(results) == SYMBOLS
    assert results[0][0] == 40
    assert results[0][1] == key_bar(39 * SYMBOLS)
    assert all(len(r[3]) == 10 for r in results)
    assert all(r[5] is not None and r[5].bar_count == 40 for r in results)
    assert wh.count("S0") == 41
    assert wh.count("S1") == 41
