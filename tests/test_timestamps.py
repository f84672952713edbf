"""The compiled append's timestamp conversion against the Python rule (`schema.to_micros`).

`append` converts what feeds send (aware datetimes in any zone, pandas Timestamps, int
subclasses) in C and leaves everything else to `to_micros`; both must give the same micros and
the same error for every value. The hypothesis tests draw datetimes over 1890..2210 in every
zone the zone database knows (DST transitions and historical offsets such as local mean time
included), fixed offsets down to the microsecond, dateutil and pytz zones where installed,
pandas Timestamps with nanoseconds, and hostile values.
"""

from __future__ import annotations

import enum
import itertools
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse import Bar, Warehouse
from warehouse._hot import fast_micros
from warehouse.schema import MAX_TS, MIN_TS, PLAIN_FROM, PLAIN_UNTIL, to_micros

try:
    import pandas as pd
except ImportError:  # pragma: no cover - pandas is a dev dependency
    pd = None
try:
    import pytz
except ImportError:  # pytz comes with some pandas installs, not with pandas 3
    pytz = None
try:
    from dateutil import tz as dateutil_tz
except ImportError:  # pragma: no cover - matplotlib brings dateutil
    dateutil_tz = None

#: A conversion is cheap: many examples in the default suite too (an append takes the profile's).
CHEAP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONES = sorted(zoneinfo.available_timezones())
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
_serial = itertools.count(1)


class Count(enum.IntEnum):
    """An int subclass, as some feeds hand out."""

    OPEN = 1_763_735_400_000_000


class Lying(int):
    """An int subclass whose int() is another number: the rule calls it."""

    def __int__(self) -> int:
        return 1_763_735_460_000_000


class Raising(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("this zone cannot say")


class Unknown(tzinfo):
    def utcoffset(self, dt: datetime | None) -> None:
        return None


class Minutes(tzinfo):
    """A zone that answers in minutes, not a timedelta."""

    def utcoffset(self, dt: datetime | None) -> int:  # type: ignore[override]
        return 60


class TooFar(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=24)


class Span(timedelta):
    """A timedelta subclass, which datetime takes as an offset."""


class SubclassOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return Span(hours=-3)


class Tuesday(datetime):
    """A datetime subclass with an offset of its own (the rule asks it, not its zone)."""

    def utcoffset(self) -> timedelta:
        return timedelta(hours=2)


class Broken(datetime):
    def utcoffset(self) -> timedelta:
        raise ValueError("no offset today")


HOSTILE_ZONES = [Raising(), Unknown(), Minutes(), TooFar(), SubclassOffset()]


def zone_strategy() -> st.SearchStrategy[tzinfo]:
    fixed = st.integers(-86_399_999_999, 86_399_999_999).map(
        lambda us: timezone(timedelta(microseconds=us)))
    choices = [st.just(UTC), fixed, st.sampled_from(ZONES).map(zoneinfo.ZoneInfo)]
    if dateutil_tz is not None:
        choices.append(st.sampled_from(ZONES).map(dateutil_tz.gettz))
        choices.append(st.just(dateutil_tz.tzutc()))
    return st.one_of(choices)


def transitions() -> st.SearchStrategy[datetime]:
    """Local times near New York's clock changes: skipped, repeated (both folds), around them."""
    days = st.sampled_from([datetime(2025, 3, 9), datetime(2025, 11, 2),  # noqa: DTZ001
                            datetime(1918, 3, 31), datetime(1918, 10, 27)])  # noqa: DTZ001
    return st.builds(
        lambda day, minute, fold: (day + timedelta(minutes=minute)).replace(
            tzinfo=NEW_YORK, fold=fold),
        days, st.integers(0, 6 * 60), st.integers(0, 1),
    )


def pytz_times() -> st.SearchStrategy[Any]:
    if pytz is None:
        return st.nothing()
    naive = st.datetimes(min_value=datetime(1890, 1, 1), max_value=datetime(2210, 1, 1))  # noqa: DTZ001
    return st.builds(lambda zone, dt: pytz.timezone(zone).localize(dt), st.sampled_from(ZONES),
                     naive)


def pandas_times() -> st.SearchStrategy[Any]:
    if pd is None:
        return st.nothing()
    # 1890..2210 (pandas holds 1677..2262 in nanoseconds), and next to the range's ends.
    nanos = st.one_of(st.integers(-2_524_521_600 * 10**9, 7_573_651_200 * 10**9),
                      *(st.integers(edge * 1000 - 10**4, edge * 1000 + 10**4)
                        for edge in (MIN_TS, MAX_TS)))
    zone = st.none() | st.just("UTC") | st.sampled_from(ZONES) | st.builds(
        lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439))
    unit = st.sampled_from(["ns", "us", "ms", "s"])
    return st.builds(lambda n, z, u: pd.Timestamp(n, tz=z).as_unit(u), nanos, zone, unit)


def values() -> st.SearchStrategy[Any]:
    lo, hi = datetime(1890, 1, 1), datetime(2210, 1, 1)  # noqa: DTZ001
    aware = st.datetimes(min_value=lo, max_value=hi, timezones=zone_strategy())
    return st.one_of(
        aware,
        st.datetimes(timezones=zone_strategy()),  # years 1..9999: past the range mostly
        transitions(),
        pytz_times(),
        pandas_times(),
        st.datetimes(min_value=lo, max_value=hi),  # naive
        st.datetimes(min_value=lo, max_value=hi, timezones=st.sampled_from(HOSTILE_ZONES)),
        st.builds(lambda dt: Tuesday.fromisoformat(dt.isoformat()),
                  st.datetimes(min_value=lo, max_value=hi, timezones=zone_strategy())),
        st.builds(lambda dt: Broken.fromisoformat(dt.isoformat()),
                  st.datetimes(min_value=lo, max_value=hi, timezones=st.just(UTC))),
        st.integers(MIN_TS - 2, MIN_TS + 2) | st.integers(MAX_TS - 2, MAX_TS + 2),
        st.sampled_from([1, 10**3, 10**6, 10**9]).flatmap(
            lambda per: st.integers(PLAIN_FROM * per - 2, PLAIN_UNTIL * per + 2)),
        st.integers(-(2**70), 2**70),
        st.sampled_from([Count.OPEN, Lying(5), True, False, None, 1.5e15, float("nan"),
                         "2025-11-21T14:30:00Z", "2025-11-21T14:30:00", "", b"x",
                         timedelta(0), object()]),
    )


def outcome(convert: Any, value: object) -> tuple[Any, ...]:
    """What converting ``value`` gives: ("ok", micros) or ("error", type, message)."""
    try:
        return ("ok", convert(value))
    except Exception as exc:
        return ("error", type(exc), str(exc))


@pytest.fixture(scope="module")
def twh() -> Iterator[Warehouse]:
    with Warehouse(":memory:", flush_interval=None, window=4) as warehouse:
        yield warehouse


def check_against_the_rule(value: object) -> None:
    fast = fast_micros(value)
    expected = outcome(to_micros, value)
    if fast is not None:
        assert expected == ("ok", fast)
    if expected[0] == "error":
        assert fast is None


@CHEAP
@given(value=values())
def test_compiled_conversion_is_the_python_rules_where_it_answers(value: object) -> None:
    check_against_the_rule(value)


@pytest.mark.slow
@settings(CHEAP, max_examples=5_000)
@given(value=values())
def test_compiled_conversion_is_the_python_rules_where_it_answers_long(value: object) -> None:
    check_against_the_rule(value)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values())
def test_append_stores_what_the_rule_says_or_raises_its_error(
    twh: Warehouse, value: object
) -> None:
    symbol = f"T{next(_serial)}"
    expected = outcome(lambda v: to_micros(v, symbol), value)
    got = outcome(lambda v: twh.append(symbol, v, 1.0, 2.0, 0.5, 1.5, 10.0), value)
    if expected[0] == "ok":
        assert got == ("ok", None)
        assert twh.latest(symbol) == Bar(symbol, expected[1], 1.0, 2.0, 0.5, 1.5, 10.0)
    else:
        assert got == expected
        assert twh.latest(symbol) is None


@CHEAP
@given(value=st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30),  # noqa: DTZ001
                 timezones=zone_strategy()),
    transitions(), pytz_times(),
    pandas_times().filter(lambda t: t.tzinfo is not None and MIN_TS < t.value // 1000 < MAX_TS),
))
def test_what_feeds_send_is_converted_in_c(value: object) -> None:
    """The common kinds never fall back to the Python rule (the point of the fast path)."""
    assert fast_micros(value) == to_micros(value)


@pytest.mark.parametrize(
    "value",
    [Count.OPEN, datetime(2025, 11, 21, 14, 30, tzinfo=UTC),
     datetime(2025, 11, 21, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
     datetime(2025, 11, 21, 9, 30, tzinfo=NEW_YORK)],
    ids=["IntEnum", "utc", "fixed-offset", "zoneinfo"],
)
def test_common_kinds_are_converted_in_c(value: object) -> None:
    assert fast_micros(value) == 1_763_735_400_000_000


def test_pandas_timestamp_nanoseconds_are_floored_to_the_microsecond() -> None:
    """The documented rule: below the microsecond, a Timestamp's nanoseconds are dropped
    towards the past (floored), before 1970 as after."""
    if pd is None:
        pytest.skip("pandas is not installed")
    late = pd.Timestamp("2025-11-21 09:30:00.000001999", tz="America/New_York")
    early = pd.Timestamp("1969-12-31 23:59:59.999999001", tz="UTC")
    assert fast_micros(late) == to_micros(late) == 1_763_735_400_000_001
    assert fast_micros(early) == to_micros(early) == -1
    with Warehouse(":memory:", flush_interval=None) as wh:
        wh.append("ES", late, 1.0, 2.0, 0.5, 1.5, 10.0)
        assert wh.latest("ES").ts == 1_763_735_400_000_001


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (datetime(2025, 11, 21, 14, 30, tzinfo=Raising()), RuntimeError, "this zone cannot say"),
        (datetime(2025, 11, 21, 14, 30, tzinfo=Unknown()), ValueError, "ts is naive"),
        (datetime(2025, 11, 21, 14, 30, tzinfo=Minutes()), TypeError, "must return None or"),
        (datetime(2025, 11, 21, 14, 30, tzinfo=TooFar()), ValueError, "strictly between"),
        (Broken(2025, 11, 21, tzinfo=UTC), ValueError, "no offset today"),
        (True, ValueError, "ts is a bool"),
        (1_763_735_400, ValueError, "ts looks like epoch seconds"),
        (2**64, ValueError, "ts is outside 1900-01-01"),
    ],
    ids=["raises", "none", "int", "a-day", "subclass-raises", "bool", "seconds", "huge"],
)
def test_hostile_timestamps_fail_in_append_as_in_the_rule(
    value: object, error: type[Exception], message: str
) -> None:
    with Warehouse(":memory:", flush_interval=None) as wh:
        with pytest.raises(error, match=message) as raised:
            wh.append("ES", value, 1.0, 2.0, 0.5, 1.5, 10.0)
        assert outcome(lambda v: to_micros(v, "ES"), value) == (
            "error", type(raised.value), str(raised.value))
        assert wh.symbols() == []
