"""As-of joins: `asof` (Polars), `Warehouse.asof` over the archive and today, the named query
``asof_bars`` (DuckDB's ASOF JOIN) and `warehouse asof`, against an oracle in plain Python."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import polars.testing as plt
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse import (
    SchemaMismatchError,
    StoreError,
    Warehouse,
    asof,
    scan_archive,
)
from warehouse.cli import main
from warehouse.joins import BAR_COLUMNS

T0 = datetime(2025, 11, 21, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
VALUES = ("open", "high", "low", "close", "volume", "vwap", "trade_count")


def bar_rows(symbol: str, minutes: list[int], base: float = 100.0,
             start: datetime = T0) -> list[dict[str, Any]]:
    return [{"symbol": symbol, "ts": start + m * MINUTE, "open": base + m, "high": base + m + 1,
             "low": base + m - 1, "close": base + m + 0.5, "volume": 10.0 + m,
             "vwap": None if m % 2 else base + m, "trade_count": m or None} for m in minutes]


def bars_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "open": pl.Float64,
              "high": pl.Float64, "low": pl.Float64, "close": pl.Float64,
              "volume": pl.Float64, "vwap": pl.Float64, "trade_count": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def oracle(events: list[dict[str, Any]], bars: list[dict[str, Any]], *, known: str = "end",
           tolerance: timedelta | None = None, step: timedelta = MINUTE,
           end_of: Any = None) -> list[dict[str, Any]]:
    """For each event: the bar of its symbol with the latest known instant <= its time."""
    out = []
    for event in events:
        found = None
        if event["ts"] is not None and event["symbol"] is not None:
            for bar in bars:
                if bar["symbol"] != event["symbol"]:
                    continue
                seen = bar["ts"] if known == "start" else (
                    end_of(bar) if end_of else bar["ts"] + step)
                if seen <= event["ts"] and (found is None or seen > found[0]):
                    found = (seen, bar)
        if found is not None and tolerance is not None and event["ts"] - found[0] > tolerance:
            found = None
        bar = {} if found is None else found[1]
        out.append({**event, "bar_ts": bar.get("ts"), **{c: bar.get(c) for c in VALUES}})
    return out


def as_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.select("id", "symbol", "ts", *BAR_COLUMNS).to_dicts()


# -- the join itself --------------------------------------------------------------------------


def test_a_bar_is_known_at_its_end_and_not_a_microsecond_before() -> None:
    bars = bars_frame(bar_rows("ES", [0, 1, 2]))
    at = [T0 + MINUTE - timedelta(microseconds=1), T0 + MINUTE, T0 + 2 * MINUTE + timedelta(
        seconds=30), T0]
    events = pl.DataFrame({"id": range(4), "symbol": ["ES"] * 4, "ts": at})
    ends = asof(events, bars)
    assert ends["bar_ts"].to_list() == [None, T0, T0 + MINUTE, None]
    starts = asof(events, bars, known="start")  # the bar an event happens in: look-ahead
    assert starts["bar_ts"].to_list() == [T0, T0 + MINUTE, T0 + 2 * MINUTE, T0]
    assert ends.columns == ["id", "symbol", "ts", *BAR_COLUMNS]


def test_events_come_back_in_their_order_whatever_it_is() -> None:
    bars = bars_frame(bar_rows("ES", list(range(10))) + bar_rows("NQ", list(range(10))))
    times = [T0 + timedelta(seconds=s) for s in (500, 70, 610, 65, 300, 61)]
    events = pl.DataFrame({"id": range(6), "symbol": ["ES", "NQ"] * 3, "ts": times})
    joined = asof(events, bars)
    assert joined["id"].to_list() == list(range(6))
    assert as_rows(joined) == oracle(events.to_dicts(), bars.to_dicts())


def test_events_from_pandas_and_pyarrow_and_in_other_zones_and_units() -> None:
    bars = bars_frame(bar_rows("ES", [0, 1, 2]))
    new_york = ["2025-11-21 09:31:30", "2025-11-21 09:33:00"]
    frame = pd.DataFrame({"sym": ["ES", "ES"], "at": pd.to_datetime(new_york)
                          .tz_localize("America/New_York").as_unit("ns"), "qty": [1, 2]})
    joined = asof(frame, bars, on="at", by="sym")
    assert joined.columns == ["sym", "at", "qty", *BAR_COLUMNS]
    assert joined["bar_ts"].to_list() == [T0, T0 + 2 * MINUTE]
    assert joined.schema["at"] == pl.Datetime("ns", "America/New_York")  # kept as given
    table = pa.Table.from_pandas(frame, preserve_index=False)
    plt.assert_frame_equal(asof(table, bars, on="at", by="sym"), joined)


def test_an_event_column_named_like_a_bar_column_is_kept() -> None:
    bars = bars_frame(bar_rows("ES", [0]))
    events = pl.DataFrame({"symbol": ["ES"], "ts": [T0 + MINUTE], "close": [99.0]})
    joined = asof(events, bars)
    assert joined["close"].to_list() == [99.0]
    assert joined["close_bar"].to_list() == [100.5]


def test_tolerance_leaves_out_bars_known_too_long_before() -> None:
    bars = bars_frame(bar_rows("ES", [0, 10]))
    times = [T0 + 6 * MINUTE, T0 + 6 * MINUTE + timedelta(seconds=1), T0 + 16 * MINUTE]
    events = pl.DataFrame({"symbol": ["ES"] * 3, "ts": times})
    assert asof(events, bars, tolerance="5m")["bar_ts"].to_list() == [T0, None, T0 + 10 * MINUTE]
    assert asof(events, bars, tolerance=timedelta(0))["bar_ts"].to_list() == [None] * 3


@pytest.mark.parametrize(("events", "message"), [
    (pl.DataFrame({"symbol": ["ES"]}), r"no column 'ts' \(on='ts'\); their columns are symbol"),
    (pl.DataFrame({"ts": [T0]}), r"no column 'symbol' \(by='symbol'\)"),
    (pl.DataFrame({"symbol": ["ES"], "ts": [T0.replace(tzinfo=None)]}),
     r"'ts' \(on=\) holds Datetime.*not timestamps with a time zone.*replace_time_zone"),
    (pl.DataFrame({"symbol": ["ES"], "ts": ["2025-11-21T14:31:00Z"]}),
     r"'ts' \(on=\) holds String"),
    (pl.DataFrame({"symbol": [1], "ts": [T0]}), r"'symbol' \(by=\) holds Int64, not symbols"),
    ([("ES", T0)], r"cannot read events from a list"),
])
def test_bad_events_are_refused_naming_the_column(events: object, message: str) -> None:
    with pytest.raises(SchemaMismatchError, match=message):
        asof(events, bars_frame(bar_rows("ES", [0])))


@pytest.mark.parametrize(("option", "message"), [
    ({"known": "later"}, "known='later'"),
    ({"tolerance": timedelta(minutes=-1)}, "negative"),
    ({"tolerance": "soon"}, "tolerance='soon'"),
    ({"interval": "7s"}, "not a number of minutes"),
])
def test_bad_options_are_refused(option: dict[str, Any], message: str) -> None:
    events = pl.DataFrame({"symbol": ["ES"], "ts": [T0]})
    with pytest.raises(ValueError, match=message):
        asof(events, bars_frame(bar_rows("ES", [0])), **option)


def test_events_without_a_time_or_symbol_and_no_bars_at_all() -> None:
    events = pl.DataFrame({"symbol": ["ES", None, "ES"], "ts": [None, T0 + MINUTE, T0 + MINUTE]},
                          schema={"symbol": pl.String, "ts": pl.Datetime("us", "UTC")})
    joined = asof(events, bars_frame(bar_rows("ES", [0])))
    assert joined["bar_ts"].to_list() == [None, None, T0]
    empty = asof(events, bars_frame([]))
    assert empty["bar_ts"].to_list() == [None] * 3
    assert empty.columns == ["symbol", "ts", *BAR_COLUMNS]


# -- equal to DuckDB's ASOF JOIN (the named query) and to the oracle, under hypothesis -------


@pytest.fixture(scope="module")
def joiner() -> Iterator[Warehouse]:
    """A warehouse over an empty archive (so that `bars_all` exists), reused by the examples."""
    with tempfile.TemporaryDirectory() as folder, \
            Warehouse(":memory:", flush_interval=None, archive=folder) as wh:
        yield wh


def joined_by_sql(wh: Warehouse, events: pl.DataFrame, known: str,
                  tolerance: timedelta | None) -> list[dict[str, Any]]:
    after = MINUTE if known == "end" else timedelta(0)
    table = wh.query("asof_bars", {"known_after": after, "tolerance": tolerance},
                     tables={"events": events})
    return as_rows(pl.from_arrow(table).sort("id"))  # type: ignore[arg-type]


SYMBOLS = ["ES", "NQ", "CL"]  # CL never has a bar
bar_keys = st.sets(st.tuples(st.sampled_from(SYMBOLS[:2]), st.integers(0, 12)), max_size=14)
event_rows = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), st.integers(-60, 15 * 60).map(lambda s: s * 15)),
    max_size=25,
)


def check_all_agree(wh: Warehouse, keys: set[tuple[str, int]],
                    times: list[tuple[str, int]], known: str, tolerance: int | None) -> None:
    rows = [r for symbol, m in sorted(keys) for r in bar_rows(symbol, [m])]
    bars = bars_frame(rows)
    events = pl.DataFrame(
        {"id": range(len(times)), "symbol": [s for s, _ in times],
         "ts": [T0 + timedelta(seconds=t) for _, t in times]},
        schema={"id": pl.Int64, "symbol": pl.String, "ts": pl.Datetime("us", "UTC")},
    )
    limit = None if tolerance is None else timedelta(seconds=tolerance * 15)
    expected = oracle(events.to_dicts(), rows, known=known, tolerance=limit)
    assert as_rows(asof(events, bars, known=known, tolerance=limit)) == expected  # type: ignore[arg-type]
    wh.clear()
    wh.extend(bars)
    assert as_rows(wh.asof(events, known=known, tolerance=limit)) == expected  # type: ignore[arg-type]
    assert joined_by_sql(wh, events, known, limit) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=bar_keys, times=event_rows, known=st.sampled_from(["end", "start"]),
       tolerance=st.none() | st.integers(0, 12))
def test_polars_duckdb_and_the_oracle_agree(
    joiner: Warehouse, keys: set[tuple[str, int]], times: list[tuple[str, int]], known: str,
    tolerance: int | None,
) -> None:
    check_all_agree(joiner, keys, times, known, tolerance)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=bar_keys, times=event_rows, known=st.sampled_from(["end", "start"]),
       tolerance=st.none() | st.integers(0, 12))
def test_polars_duckdb_and_the_oracle_agree_at_length(
    joiner: Warehouse, keys: set[tuple[str, int]], times: list[tuple[str, int]], known: str,
    tolerance: int | None,
) -> None:
    check_all_agree(joiner, keys, times, known, tolerance)


def test_tables_a_query_reads_are_the_callers_only(wh: Warehouse) -> None:
    events = pl.DataFrame({"x": [1, 2]})
    assert wh.sql("SELECT sum(x) AS s FROM events", tables={"events": events}).to_pylist() == [
        {"s": 3}]
    with pytest.raises(StoreError, match="does not exist"):
        wh.sql("SELECT * FROM events")  # registered for that query alone
    with pytest.raises(StoreError, match=r"'_unflushed'.*warehouse's own"):
        wh.sql("SELECT 1", tables={"_unflushed": events})
    with pytest.raises(StoreError, match="already exists"):
        wh.sql("SELECT 1", tables={"bars": events})
    wh.append("ES", T0, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert wh.sql("SELECT count(*) AS n FROM bars").to_pylist() == [{"n": 1}]


# -- over the warehouse: archive and today, derived intervals ----------------------------------

XNYS_DAY = date(2025, 11, 26)
EARLY_CLOSE = date(2025, 11, 28)  # 13:00 New York


def session_start(wh: Warehouse, day: date) -> datetime:
    return datetime.fromtimestamp(wh.calendar().window(day).open / 1e6, UTC)


@pytest.fixture
def sealed_and_today(tmp_path: Path) -> Iterator[Warehouse]:
    """A sealed session (ES, NQ: 10 minutes from the open) and today's, open (ES: 3 minutes)."""
    archive = tmp_path / "archive"
    with Warehouse(tmp_path / "past.duckdb", flush_interval=None, archive=archive) as wh:
        wh.start_session(XNYS_DAY)
        start = session_start(wh, XNYS_DAY)
        wh.extend(bars_frame(bar_rows("ES", list(range(10)), start=start)
                             + bar_rows("NQ", list(range(10)), 200.0, start=start)))
        wh.end_session()
    wh = Warehouse(tmp_path / "live.duckdb", flush_interval=None, archive=archive)
    wh.start_session(EARLY_CLOSE)
    wh.extend(bars_frame(bar_rows("ES", [0, 1, 2], 300.0, start=session_start(wh, EARLY_CLOSE))))
    yield wh
    wh.close()


def test_warehouse_asof_joins_across_the_archive_and_today(sealed_and_today: Warehouse) -> None:
    wh = sealed_and_today
    yesterday, today = session_start(wh, XNYS_DAY), session_start(wh, EARLY_CLOSE)
    events = pl.DataFrame({
        "id": range(5),
        "symbol": ["ES", "ES", "NQ", "ES", "GC"],
        "ts": [yesterday + 3 * MINUTE, today + timedelta(seconds=30), today + 2 * MINUTE,
               today + 3 * MINUTE, today + 3 * MINUTE],
    })
    joined = wh.asof(events)
    assert joined["bar_ts"].to_list() == [
        yesterday + 2 * MINUTE,  # archived session
        yesterday + 9 * MINUTE,  # today's first bar not finished: yesterday's last
        yesterday + 9 * MINUTE,  # NQ has no bar today
        today + 2 * MINUTE,  # today's
        None,  # no GC bar at all
    ]
    assert wh.asof(events, bars="bars")["bar_ts"].to_list()[1:4] == [None, None, today + 2 * MINUTE]
    assert wh.asof(events, bars="history")["bar_ts"].to_list()[3] == yesterday + 9 * MINUTE
    every = wh.scan().collect().to_dicts()
    assert as_rows(joined) == oracle(events.to_dicts(), every)
    sql = wh.query("asof_bars", {"known_after": MINUTE, "tolerance": None},
                   tables={"events": events})
    assert as_rows(pl.from_arrow(sql).sort("id")) == as_rows(joined)  # type: ignore[arg-type]
    # scan_archive and the module function: the archive alone, on another machine.
    archived = asof(events, scan_archive(wh.archive))  # type: ignore[arg-type]
    plt.assert_frame_equal(archived, wh.asof(events, bars="history"))


def test_warehouse_asof_over_an_empty_archive_finds_no_bar(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    with Warehouse(":memory:", flush_interval=None, archive=tmp_path / "archive") as wh:
        events = pl.DataFrame({"symbol": ["ES"], "ts": [T0]})
        assert wh.asof(events, bars="history")["bar_ts"].to_list() == [None]
        assert asof(events, scan_archive(tmp_path / "archive"))["close"].to_list() == [None]


def resampled(wh: Warehouse, minutes: int) -> list[dict[str, Any]]:
    """The session's derived bars by the named query ``resample_bars``, each with its end."""
    close = datetime.fromtimestamp(wh.calendar().window(EARLY_CLOSE).close / 1e6, UTC)
    table = wh.query("resample_bars", wh.resample_params(minutes))
    return [{**row, "end": min(row["ts"] + minutes * MINUTE, close)}
            for row in table.to_pylist()]


def test_derived_interval_bars_are_known_at_their_end_cut_at_the_close(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb", flush_interval=None,
                   archive=tmp_path / "archive") as wh:
        wh.start_session(EARLY_CLOSE)
        opening = session_start(wh, EARLY_CLOSE)
        close = datetime.fromtimestamp(wh.calendar().window(EARLY_CLOSE).close / 1e6, UTC)
        minutes = int((close - opening) / MINUTE)
        wh.extend(bars_frame(bar_rows("ES", list(range(1, minutes)), start=opening)
                             + bar_rows("NQ", list(range(0, minutes, 7)), start=opening)))
        times = [opening + timedelta(seconds=s) for s in range(0, minutes * 60 + 300, 97)]
        events = pl.DataFrame({"id": range(len(times) * 2), "symbol": ["ES", "NQ"] * len(times),
                               "ts": [t for t in times for _ in (0, 1)]})
        derived = resampled(wh, 20)  # 3.5 hours: the last bar is cut to 10 minutes
        assert derived[-1]["end"] == close
        assert derived[-1]["end"] - derived[-1]["ts"] == 10 * MINUTE
        for known in ("end", "start"):
            expected = oracle(events.to_dicts(), derived, known=known,
                              end_of=lambda bar: bar["end"])
            joined = wh.asof(events, interval="20m", known=known)
            assert_rows_close(joined, expected)  # vwap: sums in another order
        # Sealed, the session's bars are anchored to its open by the manifest.
        wh.end_session()
        expected = oracle(events.to_dicts(), derived, end_of=lambda bar: bar["end"])
        assert_rows_close(wh.asof(events, interval="20m", bars="history"), expected)


def assert_rows_close(joined: pl.DataFrame, expected: list[dict[str, Any]]) -> None:
    found = joined.select("id", "symbol", "ts", *BAR_COLUMNS)
    plt.assert_frame_equal(found, pl.DataFrame(expected, schema=found.schema),
                           check_exact=False, rel_tol=1e-12)


# -- warehouse asof (the command) ----------------------------------------------------------------


def test_cli_asof_writes_the_join_as_parquet(sealed_and_today: Warehouse, tmp_path: Path) -> None:
    wh = sealed_and_today
    today = session_start(wh, EARLY_CLOSE)
    events = pl.DataFrame({"id": [0, 1], "symbol": ["NQ", "ES"],
                           "ts": [today + MINUTE, today + 2 * MINUTE]})
    expected = wh.asof(events)
    db, archive = wh._store.path, wh.archive
    wh.close()
    csv = tmp_path / "fills.csv"
    events.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%:z")).write_csv(csv)
    out = tmp_path / "out.parquet"
    assert main(["asof", str(csv), "--db", str(db), "--archive", str(archive),
                 "--format", "parquet", "-o", str(out)]) == 0
    plt.assert_frame_equal(pl.read_parquet(out), expected)
    # Its own input, the warehouse file or the archive are never written over.
    for target in (csv, Path(db), archive / f"date={XNYS_DAY}" / "x.parquet"):
        assert main(["asof", str(csv), "--db", str(db), "--archive", str(archive),
                     "-o", str(target)]) == 1
    assert main(["asof", str(csv), "--db", str(db), "--bars", "history",
                 "-o", str(out)]) == 1  # the archive is needed for history


def test_cli_asof_refuses_naive_times_naming_the_column(
    sealed_and_today: Warehouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sealed_and_today._store.path
    sealed_and_today.close()
    path = tmp_path / "e.parquet"
    naive = datetime(2025, 11, 28, 14, 31, tzinfo=UTC).replace(tzinfo=None)
    pl.DataFrame({"sym": ["ES"], "at": [naive]}).write_parquet(path)
    assert main(["asof", str(path), "--db", str(db), "--on", "at", "--by", "sym"]) == 1
    assert "'at' (on=) holds Datetime" in capsys.readouterr().err
    assert pl.read_parquet(path).height == 1  # the file is still whole


def test_bars_in_any_order_are_joined_right() -> None:
    rows = bar_rows("ES", [0, 5, 9]) + bar_rows("NQ", [2, 3]) + bar_rows("ES", [1, 4])
    times = [T0 + timedelta(minutes=m, seconds=30) for m in (1, 3, 5, 7, 10)]
    events = pl.DataFrame({"id": range(10), "symbol": ["ES", "NQ"] * 5,
                           "ts": [t for t in times for _ in (0, 1)]})
    shuffled = bars_frame(rows)  # ES's bars in two runs, the second going back in time
    assert as_rows(asof(events, shuffled)) == oracle(events.to_dicts(), rows)
    assert as_rows(asof(events, shuffled.lazy())) == oracle(events.to_dicts(), rows)
