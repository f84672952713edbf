"""Lifecycle edges (invariant 6): close, clear and flush racing writers, stale handles, misuse.

Every test here failed on the warehouse before issue 6: each loses or half-keeps an
acknowledged bar, or lets a raw error through, on the code of that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from warehouse import Bar, ClosedError, InvalidBarError, StoreError, Warehouse, WarehouseError
from warehouse.schema import BAR_SCHEMA

T0 = 1_763_735_400_000_000
MINUTE = 60_000_000
JOURNAL = [pytest.param(False, id="plain"), pytest.param(True, id="journal")]


def bar(symbol: str, i: int) -> Bar:
    price = 100.0 + i % 7
    return Bar(symbol, T0 + i * MINUTE, price, price + 1, price - 1, price + 0.5, 10.0 + i)


def stored(db: Path, journal: bool = False) -> dict[tuple[str, int], Bar]:
    """Every bar of the file as SQL sees it after a reopen (which replays a journal)."""
    with Warehouse(db, journal=journal, flush_interval=None) as wh:
        table = wh.sql("SELECT * EXCLUDE (origin) FROM bars")
    keys = zip(table.column("symbol").to_pylist(),
               table.column("ts").cast(pa.int64()).to_pylist(), strict=True)
    assert table.num_rows == len(set(keys)), "a bar is stored twice"
    rows = table.to_pylist()
    return {(r["symbol"], int(r["ts"].timestamp() * 1e6)): r for r in rows}  # type: ignore[misc]


class Feeder(threading.Thread):
    """Appends bars of one symbol as fast as it can until refused; records what was accepted."""

    def __init__(self, append: Callable[..., None], symbol: str) -> None:
        super().__init__(daemon=True)
        self.append, self.symbol = append, symbol
        self.acked = 0
        self.error: BaseException | None = None
        self.started_feeding = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for i in range(10**9):
                if self.stop.is_set():
                    return
                self.append(*bar(self.symbol, i))
                self.acked = i + 1  # the append returned: acknowledged
                if i == 200:
                    self.started_feeding.set()
        except BaseException as exc:  # the error is the result under test
            self.error = exc
        finally:
            self.started_feeding.set()


# -- close ------------------------------------------------------------------------------------


@pytest.mark.parametrize("journal", JOURNAL)
@pytest.mark.parametrize("bound", [False, True], ids=["wh.append", "bound-before-close"])
def test_close_racing_appends_stores_every_acknowledged_bar(
    tmp_path: Path, journal: bool, bound: bool
) -> None:
    db = tmp_path / "wh.duckdb"
    wh = Warehouse(db, journal=journal, flush_rows=5_000, flush_interval=0.005)
    # ``ap = wh.append`` before close is what the demo does: it must refuse after close too.
    feeders = [Feeder(wh.append if bound else (lambda *b: wh.append(*b)), f"S{k}")
               for k in range(3)]
    for feeder in feeders:
        feeder.start()
    for feeder in feeders:
        assert feeder.started_feeding.wait(30)
    wh.close()
    for feeder in feeders:
        feeder.join(10)
        assert isinstance(feeder.error, ClosedError), feeder.error
    bars = stored(db)
    for feeder in feeders:
        mine = {ts for symbol, ts in bars if symbol == feeder.symbol}
        # Exactly the acknowledged bars, all of them: none lost, none half-kept.
        assert mine == {T0 + i * MINUTE for i in range(feeder.acked)}
    assert not list(Path(f"{db}.journal").glob("*.journal"))


def test_append_bound_before_close_raises_closed_error_after_it(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb", journal=True, flush_interval=None)
    append, extend = wh.append, wh.extend
    append(*bar("ES", 0))
    wh.close()
    with pytest.raises(ClosedError, match="closed"):
        append(*bar("ES", 1))
    with pytest.raises(ClosedError, match="closed"):
        extend([bar("ES", 2)])
    assert list(stored(tmp_path / "wh.duckdb")) == [("ES", T0)]


@pytest.mark.parametrize("journal", JOURNAL)
def test_every_command_after_close_raises_closed_error_and_leaves_no_segment(
    tmp_path: Path, journal: bool
) -> None:
    db = tmp_path / "wh.duckdb"
    wh = Warehouse(db, journal=journal, flush_interval=None)
    wh.append(*bar("ES", 0))
    wh.close()
    for command in (wh.flush, wh.checkpoint, wh.clear, lambda: wh.export_parquet(tmp_path)):
        with pytest.raises(ClosedError):
            command()
    # A flush after close used to start a journal segment that then blocked a plain reopen.
    assert not list(Path(f"{db}.journal").glob("*.journal"))
    with Warehouse(db, flush_interval=None) as plain:
        assert plain.count("ES") == 1


def test_close_whose_last_flush_fails_raises_and_can_be_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "wh.duckdb"
    wh = Warehouse(db, flush_interval=None)
    wh.append(*bar("ES", 0))
    original = wh._store.write

    def refuse(*args: Any) -> None:
        raise StoreError("disk full (injected)")

    monkeypatch.setattr(wh._store, "write", refuse)
    with pytest.raises(StoreError, match="injected"):
        wh.close()
    with pytest.raises(ClosedError):  # closing: no new bars, but the waiting one is kept
        wh.append(*bar("ES", 1))
    assert wh.stats()["unflushed"] == 1
    monkeypatch.setattr(wh._store, "write", original)
    wh.close()
    assert list(stored(db)) == [("ES", T0)]


def test_concurrent_closes_close_once(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb", journal=True, flush_interval=None)
    wh.extend([bar("ES", i) for i in range(100)])
    errors: list[BaseException] = []

    def close() -> None:
        try:
            wh.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(stored(tmp_path / "wh.duckdb")) == 100


# -- clear ------------------------------------------------------------------------------------


@pytest.mark.parametrize("journal", JOURNAL)
def test_clear_racing_appends_keeps_exactly_the_bars_after_it(
    tmp_path: Path, journal: bool
) -> None:
    db = tmp_path / "wh.duckdb"
    wh = Warehouse(db, journal=journal, flush_rows=2_000, flush_interval=0.005)
    feeder = Feeder(wh.append, "ES")
    feeder.start()
    assert feeder.started_feeding.wait(30)
    wh.clear()
    cleared_at = feeder.acked
    while feeder.acked < cleared_at + 200 and feeder.is_alive():
        time.sleep(0.001)  # the feed goes on into the new session: 200 bars at least
    feeder.stop.set()
    feeder.join(60)
    assert feeder.error is None, repr(feeder.error)  # never a raw error from the journal
    hot = [b.ts for b in wh.since("ES", T0)]
    sql = sorted(wh.sql("SELECT ts FROM bars").column("ts").cast(pa.int64()).to_pylist())
    wh.close()
    # What the clear removed is a prefix of the arrivals, what it kept the rest: one cut.
    assert hot == sql
    assert hot == [T0 + i * MINUTE for i in range(feeder.acked - len(hot), feeder.acked)]
    assert 0 < len(hot) < feeder.acked
    assert sorted(ts for _, ts in stored(db, journal)) == hot


def test_clear_with_journal_leaves_no_segment_of_the_old_session(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    wh = Warehouse(db, journal=True, flush_interval=None)
    wh.extend([bar("OLD", i) for i in range(50)])
    wh.flush()
    wh.extend([bar("OLD", i) for i in range(50, 80)])  # journaled, not flushed
    wh.clear()
    wh.append(*bar("NEW", 0))
    # A kill now: the reopen replays the new session only.
    wh._journal.sync()  # type: ignore[union-attr]
    assert wh._journal is not None
    wh._journal.close()
    wh._store.close()
    wh._stopping = True
    wh._wake.set()
    assert list(stored(db, journal=True)) == [("NEW", T0)]


# -- a second handle --------------------------------------------------------------------------


@pytest.mark.parametrize("journal", JOURNAL)
def test_second_writable_handle_on_a_file_is_refused(tmp_path: Path, journal: bool) -> None:
    db = tmp_path / "wh.duckdb"
    first = Warehouse(db, journal=journal, flush_interval=None)
    first.append(*bar("ES", 0))
    with pytest.raises(StoreError, match="already open for writing in this process"):
        Warehouse(db, journal=journal, flush_interval=None)
    # Another spelling of the same path is the same file.
    with pytest.raises(StoreError, match="already open"):
        Warehouse(tmp_path / "." / "wh.duckdb", flush_interval=None)
    first.append(*bar("ES", 1))  # the refused open changed nothing for the first
    first.close()
    with Warehouse(db, flush_interval=None) as again:  # free once closed
        assert again.count("ES") == 2


def test_failed_open_does_not_hold_the_file(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    with pytest.raises(ValueError, match="flush_interval"):
        Warehouse(db, flush_interval=0)
    with pytest.raises(WarehouseError):
        Warehouse(db, sql_dir=tmp_path / "missing")
    Warehouse(db, flush_interval=None).close()


# -- bars the store cannot hold ----------------------------------------------------------------

UNSTORABLE: list[tuple[str, dict[str, Any]]] = [
    ("trade_count", {"trade_count": 2**63}),
    ("trade_count", {"trade_count": np.uint64(2**64 - 1)}),
    ("open", {"open": 10**400, "high": 10**400}),
    ("volume", {"volume": 10**400}),
    ("vwap", {"vwap": -(10**400)}),
]


@pytest.mark.parametrize(("field", "change"), UNSTORABLE)
@pytest.mark.parametrize("kind", ["append", "rows"])
def test_unstorable_value_is_rejected_and_never_poisons_the_log(
    tmp_path: Path, field: str, change: dict[str, Any], kind: str
) -> None:
    db = tmp_path / "wh.duckdb"
    wh = Warehouse(db, journal=True, flush_interval=None)
    wh.append(*bar("GOOD", 0))
    bad = bar("BAD", 1)._asdict()
    bad.update(change)
    add = (lambda: wh.append(**bad)) if kind == "append" else (lambda: wh.extend([bad]))
    with pytest.raises(InvalidBarError) as caught:
        add()
    assert caught.value.field == field
    assert caught.value.symbol == "BAD"
    wh.flush()  # used to raise here and drop every waiting bar
    wh.close()
    assert list(stored(db)) == [("GOOD", T0)]


def test_arrow_trade_count_beyond_bigint_is_refused_naming_the_column(wh: Warehouse) -> None:
    table = pa.table({**{n: [v] for n, v in bar("ES", 0)._asdict().items()
                         if n not in ("ts", "trade_count")},
                      "ts": pa.array([T0], pa.int64()),
                      "trade_count": pa.array([2**64 - 1], pa.uint64())})
    with pytest.raises(WarehouseError, match="trade_count"):
        wh.extend(table)
    assert wh.stats()["bars"] == 0


def test_failed_drain_puts_every_bar_back(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    wh.append(*bar("ES", 0))
    wh.extend([bar("NQ", 0), bar("NQ", 1)])
    wh.append(*bar("ES", 0)._replace(close=100.0))  # a replacement waits too

    def broken(*args: Any) -> Any:
        raise pa.ArrowInvalid("conversion failed (injected)")

    monkeypatch.setattr("warehouse.buffer.to_tables", broken)
    with pytest.raises(pa.ArrowInvalid):
        wh.flush()
    monkeypatch.undo()
    assert wh.stats()["unflushed"] == 4
    wh.flush()
    table = wh.sql("SELECT symbol, close FROM bars ORDER BY symbol, ts")
    assert table.to_pylist() == [{"symbol": "ES", "close": 100.0},
                                 {"symbol": "NQ", "close": 100.5}, {"symbol": "NQ", "close": 101.5}]


@pytest.mark.parametrize("symbol", ["A\u009b", "\u0080X", "B\u0085"])
@pytest.mark.parametrize("kind", ["append", "rows", "arrow"])
def test_c1_control_character_in_symbol_is_refused(wh: Warehouse, symbol: str, kind: str) -> None:
    row = bar(symbol, 0)
    adders = {"append": lambda: wh.append(*row), "rows": lambda: wh.extend([row]),
              "arrow": lambda: wh.extend(pa.Table.from_pylist([row._asdict()], schema=BAR_SCHEMA))}
    with pytest.raises(InvalidBarError, match="control characters") as caught:
        adders[kind]()
    assert caught.value.field == "symbol"
    assert wh.symbols() == []
