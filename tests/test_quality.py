"""Completeness of the open session (issue 9, item 1): expected minutes from the calendar,
present bars from the hot state, gaps, bar_quality; equal to the named query `gaps` and to an
independent oracle.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from warehouse import Calendar, SessionError, Warehouse
from warehouse.calendar import MINUTE
from warehouse.sample import generate_sessions
from warehouse.schema import BAR_SCHEMA

XNYS = Calendar("XNYS", start=date(2025, 1, 1), end=date(2025, 12, 31))
DAY = date(2025, 11, 21)  # the bundled sample's session
EARLY_CLOSE = date(2025, 11, 28)  # 13:00 New York: 210 minutes
AFTER_DST_END = date(2025, 11, 3)  # the first session on standard time: opens 14:30Z
BEFORE_DST_END = date(2025, 10, 31)  # the last on daylight time: opens 13:30Z
SAMPLE = pq.read_table(Path(__file__).resolve().parent.parent / "data" / "sample_session.parquet")


def utc(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1e6, UTC)


def session_bars(day: date, symbols: int) -> pa.Table:
    return generate_sessions(XNYS, day, 1, symbols)[0]


def drop(table: pa.Table, holes: dict[str, list[tuple[int, int]]]) -> pa.Table:
    """``table`` without the bars of each symbol's holes, given as [first, last) minute indices."""
    day_open = pc.min(table["ts"].cast(pa.int64())).as_py()
    minute = pc.divide(pc.subtract(table["ts"].cast(pa.int64()), day_open), MINUTE)
    keep = pa.array([True] * table.num_rows)
    for symbol, ranges in holes.items():
        for first, last in ranges:
            inside = pc.and_(pc.greater_equal(minute, first), pc.less(minute, last))
            keep = pc.and_(keep, pc.invert(pc.and_(pc.equal(table["symbol"], symbol), inside)))
    return table.filter(keep)


def append_all(wh: Warehouse, table: pa.Table) -> None:
    """Feed ``table`` bar by bar, as a live feed does."""
    columns = [table[name].to_pylist() for name in BAR_SCHEMA.names]
    columns[1] = table["ts"].cast(pa.int64()).to_pylist()
    for row in zip(*columns, strict=True):
        wh.append(*row)


def oracle(
    calendar: Calendar, day: date, now: int, bars: dict[str, set[int]]
) -> dict[str, list[tuple[int, int, int]]]:
    """Per symbol, its gaps as (start, end, minutes), from first principles."""
    window = calendar.window(day)
    limit = min(now, window.close)
    expected = [m for m in calendar.minutes(day).tolist() if m + MINUTE <= limit]
    result: dict[str, list[tuple[int, int, int]]] = {}
    for symbol, stamps in bars.items():
        present = {ts - ts % MINUTE for ts in stamps}
        gaps: list[tuple[int, int, int]] = []
        run: list[int] = []
        for m in [*expected, None]:
            if m is not None and m not in present:
                run.append(m)
            elif run:
                gaps.append((run[0], run[-1] + MINUTE, len(run)))
                run = []
        result[symbol] = gaps
    return result


def gaps_of_report(report: pl.DataFrame) -> dict[str, list[tuple[int, int, int]]]:
    out: dict[str, list[tuple[int, int, int]]] = {}
    for row in report.iter_rows(named=True):
        out[row["symbol"]] = [
            (to_us(r["start"]), to_us(r["end"]), r["minutes"]) for r in row["ranges"]
        ]
    return out


def gaps_of_sql(wh: Warehouse, now: object, symbols: list[str]) -> dict[str, list[tuple]]:
    table = wh.query("gaps", wh.gaps_params(now=now, symbols=symbols))
    out: dict[str, list[tuple[int, int, int]]] = {}
    for row in table.to_pylist():
        out.setdefault(row["symbol"], []).append(
            (to_us(row["start"]), to_us(row["end"]), row["minutes"])
        )
    return out


def to_us(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def started(day: date, calendar: Calendar = XNYS, **options: object) -> Warehouse:
    wh = Warehouse(":memory:", flush_interval=None, calendar=calendar, **options)
    wh.start_session(day)
    return wh


# -- the full session --------------------------------------------------------------------


def test_quality_of_the_sample_replayed_bar_by_bar_is_100_percent() -> None:
    with started(DAY) as wh:
        append_all(wh, SAMPLE)
        report = wh.quality(now=XNYS.window(DAY).close)
        assert report.height == 400
        assert report["expected"].unique().to_list() == [390]
        assert report["present"].unique().to_list() == [390]
        assert report["quality"].unique().to_list() == [100.0]
        assert report["gaps"].sum() == 0
        assert report["ranges"].list.len().sum() == 0
        assert report.columns == [
            "symbol",
            "expected",
            "present",
            "missing",
            "quality",
            "gaps",
            "has_bars",
            "ranges",
        ]
        assert report["symbol"].to_list() == sorted(report["symbol"].to_list())
        assert wh.query("gaps", wh.gaps_params(now=XNYS.window(DAY).close)).num_rows == 0


def test_quality_after_deleting_bars_gives_exactly_the_deleted_ranges() -> None:
    holes = {
        "AAPL": [(0, 5), (100, 101)],
        "MSFT": [(385, 390)],
        "NVDA": [(0, 390)],
        "SPY": [(200, 230), (231, 240)],
    }
    table = drop(session_bars(DAY, 12), holes)
    open_ = XNYS.window(DAY).open
    with started(DAY) as wh:
        wh.extend(table)
        report = wh.quality(now=XNYS.window(DAY).close, symbols=["NVDA"])
        found = {s: g for s, g in gaps_of_report(report).items() if g}
        assert found == {
            symbol: [(open_ + a * MINUTE, open_ + b * MINUTE, b - a) for a, b in ranges]
            for symbol, ranges in holes.items()
        }
        row = report.filter(symbol="AAPL").row(0, named=True)
        assert (row["expected"], row["present"], row["missing"], row["gaps"]) == (390, 384, 6, 2)
        assert row["quality"] == pytest.approx(384 / 390 * 100)
        nvda = report.filter(symbol="NVDA").row(0, named=True)
        assert (nvda["present"], nvda["quality"], nvda["has_bars"]) == (0, 0.0, False)
        assert gaps_of_sql(wh, XNYS.window(DAY).close, ["NVDA"]) == found


def test_symbol_without_any_bar_is_reported_as_such() -> None:
    with started(DAY) as wh:
        wh.extend(session_bars(DAY, 3))
        report = wh.quality(now=XNYS.window(DAY).open + 10 * MINUTE, symbols=["ZZZ", "AAPL"])
        assert report["symbol"].to_list() == ["AAPL", "MSFT", "NVDA", "ZZZ"]
        zzz = report.filter(symbol="ZZZ").row(0, named=True)
        assert zzz["has_bars"] is False
        assert (zzz["expected"], zzz["present"], zzz["gaps"]) == (10, 0, 1)
        assert zzz["ranges"][0]["minutes"] == 10


def test_bars_arriving_late_fill_their_gap() -> None:
    table = session_bars(DAY, 4)
    with started(DAY) as wh:
        wh.extend(drop(table, {"AAPL": [(10, 20)]}))
        close = XNYS.window(DAY).close
        assert wh.quality(now=close).filter(symbol="AAPL")["gaps"].item() == 1
        late = drop(table, {"AAPL": [(0, 10), (20, 390)]}).filter(
            pc.equal(drop(table, {"AAPL": [(0, 10), (20, 390)]})["symbol"], "AAPL")
        )
        append_all(wh, late.slice(0, 5))  # single appends, older than the latest bar
        after = wh.quality(now=close).filter(symbol="AAPL").row(0, named=True)
        assert (after["present"], after["gaps"]) == (385, 1)
        wh.extend(late.slice(5))  # a batch reaching back
        assert wh.quality(now=close).filter(symbol="AAPL")["quality"].item() == 100.0


def test_quality_of_a_reopened_file_is_the_same(tmp_path) -> None:
    path = tmp_path / "wh.duckdb"
    table = drop(session_bars(DAY, 5), {"MSFT": [(30, 60)]})
    close = XNYS.window(DAY).close
    with Warehouse(path, flush_interval=None, calendar=XNYS) as wh:
        wh.start_session(DAY)
        wh.extend(table)
        before = wh.quality(now=close)
    with Warehouse(path, read_only=True) as wh:  # its default calendar: XNYS, built anew
        assert wh.quality(now=close).equals(before)


# -- the expected minutes ----------------------------------------------------------------


def test_now_mid_session_limits_the_expected_minutes() -> None:
    open_ = XNYS.window(DAY).open
    with started(DAY) as wh:
        wh.extend(session_bars(DAY, 2))
        # 60 minutes and 30 seconds in: the bar of minute 60 is still forming.
        report = wh.quality(now=utc(open_ + 60 * MINUTE + 30_000_000))
        assert report["expected"].to_list() == [60, 60]
        assert report["present"].to_list() == [60, 60]
        assert report["quality"].to_list() == [100.0, 100.0]
        before_open = wh.quality(now=open_ - 1)
        assert before_open["expected"].to_list() == [0, 0]
        assert before_open["quality"].null_count() == 2
        assert before_open["gaps"].to_list() == [0, 0]


def test_now_defaults_to_the_wall_clock() -> None:
    with started(DAY) as wh:  # a past session: every minute is due by now
        wh.extend(session_bars(DAY, 1))
        assert wh.quality()["expected"].to_list() == [390]


def test_early_close_day_expects_210_minutes() -> None:
    with started(EARLY_CLOSE) as wh:
        table = session_bars(EARLY_CLOSE, 3)
        assert table.num_rows == 3 * 210
        wh.extend(drop(table, {"MSFT": [(205, 210)]}))
        report = wh.quality(now=datetime(2025, 11, 29, tzinfo=UTC))
        assert report["expected"].to_list() == [210, 210, 210]
        assert report["present"].to_list() == [210, 205, 210]
        ranges = report.filter(symbol="MSFT")["ranges"].item().to_list()
        assert ranges[0]["end"] == XNYS.window(EARLY_CLOSE).close_time
        assert gaps_of_sql(wh, "2025-11-29T00:00:00Z", []) == {
            s: g for s, g in gaps_of_report(report).items() if g
        }


@pytest.mark.parametrize(("day", "open_utc"), [(BEFORE_DST_END, "13:30"), (AFTER_DST_END, "14:30")])
def test_daylight_saving_moves_the_expected_minutes_with_the_open(day, open_utc) -> None:
    with started(day) as wh:
        wh.extend(drop(session_bars(day, 2), {"AAPL": [(0, 1)]}))
        report = wh.quality(now=XNYS.window(day).close, symbols=["NONE"])
        assert report["expected"].to_list() == [390, 390, 390]
        gap = report.filter(symbol="AAPL")["ranges"].item().to_list()
        assert [g["start"].strftime("%H:%M") for g in gap] == [open_utc]
        whole = report.filter(symbol="NONE")["ranges"].item().to_list()
        assert whole[0]["start"] == XNYS.window(day).open_time
        assert whole[0]["end"] == XNYS.window(day).close_time


def test_lunch_break_is_not_expected_and_a_gap_runs_across_it() -> None:
    xhkg = Calendar("XHKG", start=date(2025, 11, 1), end=date(2025, 12, 31))
    day = date(2025, 11, 21)
    window = xhkg.window(day)
    assert window.break_start is not None
    minutes = xhkg.minutes(day).tolist()
    cut = minutes.index(window.break_end)
    kept = minutes[: cut - 3] + minutes[cut + 2 :]  # 3 minutes before the break, 2 after
    with started(day, xhkg) as wh:
        for ts in kept:
            wh.append("0700", ts, 10.0, 11.0, 9.0, 10.5, 100.0)
        report = wh.quality(now=window.close)
        row = report.row(0, named=True)
        assert (row["expected"], row["present"], row["gaps"]) == (len(minutes), len(kept), 1)
        assert row["ranges"][0]["minutes"] == 5
        assert gaps_of_report(report) == oracle(xhkg, day, window.close, {"0700": set(kept)})
        assert gaps_of_sql(wh, window.close, []) == gaps_of_report(report)


# -- incremental == SQL == oracle ---------------------------------------------------------

SMALL_DAY = EARLY_CLOSE
SMALL_MINUTES = XNYS.minutes(SMALL_DAY).tolist()


@st.composite
def sessions(draw: st.DrawFn) -> tuple[dict[str, set[int]], int, list[str]]:
    symbols = draw(st.lists(st.sampled_from(["A", "B", "C", "D", "E"]), unique=True, max_size=5))
    bars = {}
    for symbol in symbols:
        chosen = draw(st.sets(st.integers(0, len(SMALL_MINUTES) - 1), min_size=1))
        # Sometimes a bar stamped inside its minute rather than at its start.
        seconds = draw(st.sampled_from([0, 0, 0, 30_000_000]))
        bars[symbol] = {SMALL_MINUTES[i] + (seconds if i % 7 == 0 else 0) for i in chosen}
    now = SMALL_MINUTES[0] + draw(st.integers(-MINUTE, (len(SMALL_MINUTES) + 30) * MINUTE))
    named = draw(st.lists(st.sampled_from(["A", "X", "Y"]), unique=True, max_size=2))
    return bars, now, named


@given(sessions(), st.randoms(use_true_random=False), st.booleans())
def test_incremental_equals_sql_equals_oracle(case, rng: random.Random, batch: bool) -> None:
    bars, now, named = case
    rows = [(symbol, ts) for symbol, stamps in bars.items() for ts in stamps]
    rng.shuffle(rows)  # any arrival order: late bars included
    with started(SMALL_DAY) as wh:
        if batch and rows:
            half = len(rows) // 2
            for part in (rows[:half], rows[half:]):
                if not part:
                    continue
                wh.extend(
                    pa.table(
                        {
                            "symbol": [s for s, _ in part],
                            "ts": pa.array([t for _, t in part]).cast(BAR_SCHEMA.field("ts").type),
                            "open": [10.0] * len(part),
                            "high": [11.0] * len(part),
                            "low": [9.0] * len(part),
                            "close": [10.5] * len(part),
                            "volume": [1.0] * len(part),
                        }
                    )
                )
        else:
            for symbol, ts in rows:
                wh.append(symbol, ts, 10.0, 11.0, 9.0, 10.5, 1.0)
        if rng.random() < 0.5:
            wh.flush()  # SQL over flushed and unflushed bars alike
        report = wh.quality(now=now, symbols=named)
        expected = oracle(XNYS, SMALL_DAY, now, {**{s: set() for s in named}, **bars})
        assert gaps_of_report(report) == expected
        assert gaps_of_sql(wh, now, named) == {s: g for s, g in expected.items() if g}
        due = sum(1 for m in SMALL_MINUTES if m + MINUTE <= now)
        for row in report.iter_rows(named=True):
            missing = sum(g[2] for g in expected[row["symbol"]])
            assert (row["expected"], row["missing"], row["gaps"]) == (
                due,
                missing,
                len(expected[row["symbol"]]),
            )
            assert row["present"] == due - missing


# -- errors ------------------------------------------------------------------------------


def test_quality_without_a_session_raises_session_error(wh: Warehouse) -> None:
    wh.append("AAPL", "2025-11-21T14:30:00Z", 1.0, 2.0, 0.5, 1.5, 10.0)
    with pytest.raises(SessionError, match=r"quality\(\) needs an open session.*start_session"):
        wh.quality()
    with pytest.raises(SessionError, match=r"gaps_params\(\) needs an open session"):
        wh.gaps_params()


def test_quality_after_the_session_was_sealed_raises_session_error(tmp_path) -> None:
    with Warehouse(
        ":memory:", flush_interval=None, calendar=XNYS, archive=tmp_path / "archive"
    ) as wh:
        wh.start_session(DAY)
        wh.extend(session_bars(DAY, 1))
        wh.end_session()
        with pytest.raises(SessionError, match=r"session 2025-11-21 is sealed"):
            wh.quality()


def test_quality_refuses_a_symbol_that_is_not_one() -> None:
    with started(DAY) as wh, pytest.raises(ValueError, match="symbol"):
        wh.quality(symbols=[""])


def test_module_examples_run() -> None:
    import doctest

    import warehouse.quality

    assert doctest.testmod(warehouse.quality).failed == 0
