"""The exchange calendar, against the real `exchange_calendars` data.

The expected values are known facts (holidays, early closes, daylight-saving shifts); the
calendar under test takes them from the library, never from a list kept here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse import CalendarError, WarehouseError
from warehouse.calendar import MINUTE, Calendar, SessionWindow

NEW_YORK = ZoneInfo("America/New_York")
THANKSGIVING = date(2025, 11, 27)
EARLY_CLOSE = date(2025, 11, 28)
FULL_DAY = date(2025, 11, 26)
HOUR = 60 * MINUTE


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.fixture(scope="module")
def xnys() -> Calendar:
    return Calendar("XNYS", start=date(2023, 12, 1), end=date(2027, 1, 31))


@pytest.fixture(scope="module")
def xnys_extended() -> Calendar:
    return Calendar("XNYS", extended_hours=True, start=date(2023, 12, 1), end=date(2027, 1, 31))


# -- sessions and windows ------------------------------------------------------------------


def test_thanksgiving_2025_is_not_a_session(xnys: Calendar) -> None:
    assert not xnys.is_session(THANKSGIVING)
    assert xnys.is_session(FULL_DAY)
    assert xnys.is_session(EARLY_CLOSE)
    assert not xnys.is_session(date(2025, 11, 29))  # a Saturday


def test_full_day_2025_11_26_is_1430_to_2100_utc_with_390_minutes(xnys: Calendar) -> None:
    window = xnys.window(FULL_DAY)
    assert window == SessionWindow(
        FULL_DAY, us(utc(2025, 11, 26, 14, 30)), us(utc(2025, 11, 26, 21))
    )
    assert window.open_time == utc(2025, 11, 26, 14, 30)
    assert window.close_time == utc(2025, 11, 26, 21)
    assert window.minutes == 390


def test_early_close_2025_11_28_closes_at_13_new_york_18_utc_with_210_minutes(
    xnys: Calendar,
) -> None:
    window = xnys.window(EARLY_CLOSE)
    assert window.open_time == utc(2025, 11, 28, 14, 30)
    assert window.close_time == utc(2025, 11, 28, 18)
    assert window.close_time.astimezone(NEW_YORK).hour == 13
    assert window.minutes == 210
    assert len(xnys.minutes(EARLY_CLOSE)) == 210


@pytest.mark.parametrize(
    ("day", "open_utc"),
    [
        (date(2025, 3, 7), utc(2025, 3, 7, 14, 30)),  # last Friday of standard time
        (date(2025, 3, 10), utc(2025, 3, 10, 13, 30)),  # first Monday of daylight time
        (date(2025, 10, 31), utc(2025, 10, 31, 13, 30)),  # last Friday of daylight time
        (date(2025, 11, 3), utc(2025, 11, 3, 14, 30)),  # first Monday of standard time
    ],
)
def test_open_moves_with_new_york_daylight_saving(
    xnys: Calendar, day: date, open_utc: datetime
) -> None:
    window = xnys.window(day)
    assert window.open_time == open_utc
    assert window.close_time == open_utc + timedelta(hours=6, minutes=30)
    assert window.open_time.astimezone(NEW_YORK).time().isoformat() == "09:30:00"


def test_minutes_run_from_open_inclusive_to_close_exclusive(xnys: Calendar) -> None:
    minutes = xnys.minutes(FULL_DAY)
    window = xnys.window(FULL_DAY)
    assert minutes.dtype == np.int64
    assert len(minutes) == 390
    assert minutes[0] == window.open
    assert minutes[-1] == window.close - MINUTE
    assert (np.diff(minutes) == MINUTE).all()


def test_window_holds_its_open_not_its_close(xnys: Calendar) -> None:
    window = xnys.window(EARLY_CLOSE)
    assert window.open in window
    assert window.close - 1 in window
    assert window.close not in window
    assert window.open - 1 not in window
    assert "not an instant" not in window


def test_public_results_are_plain_python_and_numpy_types(xnys: Calendar) -> None:
    window = xnys.window(FULL_DAY)
    assert type(window.date) is date
    assert type(window.open) is int
    assert type(window.close) is int
    assert window.break_start is None
    assert type(xnys.minutes(FULL_DAY)) is np.ndarray
    assert type(xnys.next_session(FULL_DAY)) is date
    assert type(xnys.session_of(window.open)) is date
    assert type(xnys.current_or_next(window.open)) is date
    assert {type(day) for day in xnys.previous_sessions(FULL_DAY, 5)} == {date}
    assert type(xnys.first_session) is date
    assert type(xnys.last_session) is date


# -- neighbours ----------------------------------------------------------------------------


def test_next_and_previous_session_skip_thanksgiving(xnys: Calendar) -> None:
    assert xnys.next_session(FULL_DAY) == EARLY_CLOSE
    assert xnys.previous_session(EARLY_CLOSE) == FULL_DAY
    # The date asked about need not be a session itself.
    assert xnys.next_session(THANKSGIVING) == EARLY_CLOSE
    assert xnys.previous_session(THANKSGIVING) == FULL_DAY
    assert xnys.next_session(EARLY_CLOSE) == date(2025, 12, 1)


def test_previous_sessions_across_thanksgiving_are_oldest_first_without_the_holiday(
    xnys: Calendar,
) -> None:
    assert xnys.previous_sessions(date(2025, 12, 1), 4) == [
        date(2025, 11, 24),
        date(2025, 11, 25),
        date(2025, 11, 26),
        date(2025, 11, 28),
    ]
    assert xnys.previous_sessions(date(2025, 12, 1), 0) == []


def test_previous_sessions_with_negative_n_raises(xnys: Calendar) -> None:
    with pytest.raises(CalendarError, match="n must be an int >= 0"):
        xnys.previous_sessions(FULL_DAY, -1)


def test_previous_sessions_past_the_range_start_says_how_to_widen_it(xnys: Calendar) -> None:
    with pytest.raises(CalendarError, match=r"500 sessions before .* holds .*earlier start"):
        xnys.previous_sessions(date(2024, 1, 10), 500)


def test_next_session_after_the_last_one_says_how_to_widen_the_range(xnys: Calendar) -> None:
    with pytest.raises(CalendarError, match=r"no session after 2027-01-29 .*later end"):
        xnys.next_session(xnys.last_session)
    with pytest.raises(CalendarError, match=r"no session before 2023-12-01 .*earlier start"):
        xnys.previous_session(xnys.first_session)


# -- instants ------------------------------------------------------------------------------


def test_session_of_takes_the_open_and_leaves_out_the_close(xnys: Calendar) -> None:
    window = xnys.window(EARLY_CLOSE)
    assert xnys.session_of(window.open) == EARLY_CLOSE
    assert xnys.session_of(window.close - 1) == EARLY_CLOSE
    assert xnys.session_of(window.close) is None
    assert xnys.session_of(window.open - 1) is None
    assert xnys.session_of(np.int64(window.open)) == EARLY_CLOSE


def test_session_of_between_sessions_is_none(xnys: Calendar) -> None:
    assert xnys.session_of(us(utc(2025, 11, 27, 17))) is None  # Thanksgiving, midday
    assert xnys.session_of(us(utc(2025, 11, 29, 17))) is None  # Saturday
    assert xnys.session_of(us(utc(2025, 11, 26, 23))) is None  # after the close


def test_session_of_takes_any_aware_datetime(xnys: Calendar) -> None:
    assert xnys.session_of(datetime(2025, 11, 28, 9, 30, tzinfo=NEW_YORK)) == EARLY_CLOSE
    assert xnys.session_of(datetime(2025, 11, 28, 13, 0, tzinfo=NEW_YORK)) is None
    assert xnys.session_of(utc(2025, 11, 28, 17, 59)) == EARLY_CLOSE


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2025, 11, 26, 12), FULL_DAY),  # before the open: today's session
        (utc(2025, 11, 26, 14, 30), FULL_DAY),  # at the open
        (utc(2025, 11, 26, 18), FULL_DAY),  # during the session
        (utc(2025, 11, 26, 21), EARLY_CLOSE),  # at the close: the next session
        (utc(2025, 11, 26, 23), EARLY_CLOSE),  # after the close, skipping Thanksgiving
        (utc(2025, 11, 27, 15), EARLY_CLOSE),  # on the holiday
        (utc(2025, 11, 29, 15), date(2025, 12, 1)),  # on the weekend
        (utc(2025, 11, 28, 19), date(2025, 12, 1)),  # after the early close
    ],
)
def test_current_or_next(xnys: Calendar, now: datetime, expected: date) -> None:
    assert xnys.current_or_next(now) == expected
    assert xnys.current_or_next(us(now)) == expected


def test_current_or_next_defaults_to_the_wall_clock() -> None:
    calendar = Calendar("XNYS")  # the library's default range holds today
    before = datetime.now(UTC)
    session = calendar.current_or_next()
    after = datetime.now(UTC)
    assert session in {calendar.current_or_next(before), calendar.current_or_next(after)}
    assert calendar.is_session(session)


# -- extended hours ------------------------------------------------------------------------


def test_extended_hours_run_from_4_to_20_new_york_on_a_full_day(
    xnys_extended: Calendar,
) -> None:
    window = xnys_extended.window(FULL_DAY)
    assert window.open_time == utc(2025, 11, 26, 9)  # 04:00 EST
    assert window.close_time == utc(2025, 11, 27, 1)  # 20:00 EST
    assert window.minutes == 960
    summer = xnys_extended.window(date(2025, 7, 15))
    assert summer.open_time == utc(2025, 7, 15, 8)  # 04:00 EDT
    assert summer.close_time == utc(2025, 7, 16, 0)  # 20:00 EDT


def test_extended_hours_end_4_hours_after_an_early_close(xnys_extended: Calendar) -> None:
    window = xnys_extended.window(EARLY_CLOSE)
    assert window.close_time.astimezone(NEW_YORK).hour == 17
    assert window.minutes == 13 * 60
    assert len(xnys_extended.minutes(EARLY_CLOSE)) == 13 * 60


def test_extended_hours_widen_session_of_and_current_or_next(
    xnys: Calendar, xnys_extended: Calendar
) -> None:
    pre_market = us(utc(2025, 11, 26, 10))
    post_market = us(utc(2025, 11, 26, 22))
    assert xnys.session_of(pre_market) is None
    assert xnys_extended.session_of(pre_market) == FULL_DAY
    assert xnys_extended.session_of(post_market) == FULL_DAY
    assert xnys.current_or_next(post_market) == EARLY_CLOSE
    assert xnys_extended.current_or_next(post_market) == FULL_DAY
    assert xnys_extended.is_session(THANKSGIVING) is False


def test_extended_hours_through_an_alias() -> None:
    calendar = Calendar("NYSE", extended_hours=True)
    assert calendar.code == "XNYS"
    assert calendar.extended_hours


def test_extended_hours_on_an_exchange_without_them_raises() -> None:
    with pytest.raises(CalendarError, match="no extended hours are defined for XLON"):
        Calendar("XLON", extended_hours=True)


# -- other exchanges -----------------------------------------------------------------------


def test_london_sessions_holidays_and_early_close() -> None:
    xlon = Calendar("XLON", start=date(2025, 1, 1), end=date(2025, 12, 31))
    assert xlon.tz == "Europe/London"
    assert xlon.window(FULL_DAY).open_time == utc(2025, 11, 26, 8)  # 08:00 GMT
    assert xlon.window(date(2025, 7, 15)).open_time == utc(2025, 7, 15, 7)  # 08:00 BST
    assert xlon.is_session(THANKSGIVING)  # not a London holiday
    assert not xlon.is_session(date(2025, 12, 25))
    assert not xlon.is_session(date(2025, 12, 26))
    christmas_eve = xlon.window(date(2025, 12, 24))
    assert christmas_eve.close_time == utc(2025, 12, 24, 12, 30)
    assert christmas_eve.minutes == 270
    assert xlon.next_session(date(2025, 12, 24)) == date(2025, 12, 29)


def test_lunch_break_is_in_the_window_but_has_no_minutes() -> None:
    xhkg = Calendar("XHKG", start=date(2025, 11, 1), end=date(2025, 11, 30))
    window = xhkg.window(FULL_DAY)
    assert window.break_start is not None
    assert window.break_end is not None
    minutes = xhkg.minutes(FULL_DAY)
    assert len(minutes) == window.minutes
    assert not ((minutes >= window.break_start) & (minutes < window.break_end)).any()
    assert xhkg.session_of(window.break_start) == FULL_DAY


def test_session_is_named_by_the_exchange_date_not_the_utc_date() -> None:
    # CME Globex's session of a trading date opens the evening before (17:00 Chicago).
    cmes = Calendar("CMES", start=date(2025, 11, 1), end=date(2025, 11, 30))
    assert cmes.window(FULL_DAY).open_time.date() == date(2025, 11, 25)
    assert cmes.session_of(utc(2025, 11, 25, 23, 30)) == FULL_DAY


# -- construction and caching --------------------------------------------------------------


def test_calendars_of_one_exchange_and_range_share_one_build() -> None:
    first = Calendar("XNYS", start=date(2025, 1, 1), end=date(2025, 12, 31))
    again = Calendar("NYSE", start=date(2025, 1, 1), end=date(2025, 12, 31))
    assert first._s is again._s


def test_repr_names_code_and_range(xnys: Calendar) -> None:
    assert repr(xnys) == "Calendar('XNYS', extended_hours=False, sessions 2023-12-01..2027-01-29)"


# -- refusals ------------------------------------------------------------------------------


def test_unknown_code_raises_with_close_matches_and_where_to_list_them() -> None:
    with pytest.raises(CalendarError, match="unknown exchange code 'XNSY'") as caught:
        Calendar("XNSY")
    assert "XNYS" in str(caught.value)
    assert "get_calendar_names()" in str(caught.value)
    assert caught.value.code == "XNSY"
    assert isinstance(caught.value, WarehouseError)
    assert isinstance(caught.value, ValueError)


def test_window_of_a_non_session_names_the_sessions_around_it(xnys: Calendar) -> None:
    with pytest.raises(
        CalendarError,
        match=r"2025-11-27 is not a session \(previous session: 2025-11-26, next: 2025-11-28\)",
    ) as caught:
        xnys.window(THANKSGIVING)
    assert caught.value.value == THANKSGIVING
    with pytest.raises(CalendarError, match="2025-11-29 is not a session"):
        xnys.minutes(date(2025, 11, 29))


def test_naive_datetime_is_refused(xnys: Calendar) -> None:
    naive = datetime(2025, 11, 26, 15)  # noqa: DTZ001
    with pytest.raises(CalendarError, match="naive datetime 2025-11-26T15:00:00"):
        xnys.session_of(naive)
    with pytest.raises(CalendarError, match="naive"):
        xnys.current_or_next(naive)


@pytest.mark.parametrize("value", [utc(2025, 11, 26), "2025-11-26", 20251126])
def test_a_date_that_is_not_a_date_is_refused(xnys: Calendar, value: object) -> None:
    with pytest.raises(CalendarError, match="is not a date"):
        xnys.is_session(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["2025-11-26T15:00:00Z", 1.5e15, True])
def test_an_instant_that_is_not_an_instant_is_refused(xnys: Calendar, value: object) -> None:
    with pytest.raises(CalendarError, match="is not an instant"):
        xnys.session_of(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("day", "fix"), [(date(2000, 1, 3), "earlier start"), (date(2030, 1, 2), "later end")]
)
def test_date_outside_the_range_says_how_to_widen_it(xnys: Calendar, day: date, fix: str) -> None:
    for ask in (xnys.is_session, xnys.window, xnys.next_session, xnys.previous_session):
        with pytest.raises(CalendarError, match=f"{day} is outside the calendar's range.*{fix}"):
            ask(day)


def test_instant_outside_the_span_is_refused(xnys: Calendar) -> None:
    with pytest.raises(CalendarError, match="outside the span of the calendar's sessions"):
        xnys.session_of(0)
    with pytest.raises(CalendarError, match=f"{10**20} us is outside the span"):
        xnys.session_of(10**20)
    with pytest.raises(CalendarError, match="later end"):
        xnys.current_or_next(utc(2030, 1, 1))


def test_range_the_library_cannot_build_is_a_calendar_error() -> None:
    with pytest.raises(CalendarError, match=r"cannot build sessions 2025-12-31\.\.2025-01-01"):
        Calendar("XNYS", start=date(2025, 12, 31), end=date(2025, 1, 1))
    with pytest.raises(CalendarError, match="not a date"):
        Calendar("XNYS", start=utc(2025, 1, 1))


# -- properties ----------------------------------------------------------------------------

SPAN_START = us(utc(2024, 1, 1))
SPAN_END = us(utc(2027, 1, 1))


@settings(max_examples=300, deadline=None)
@given(ts=st.integers(SPAN_START, SPAN_END - 1), extended=st.booleans())
def test_any_instant_is_in_its_session_or_before_the_next_one(
    xnys: Calendar, xnys_extended: Calendar, ts: int, extended: bool
) -> None:
    calendar = xnys_extended if extended else xnys
    session = calendar.session_of(ts)
    current = calendar.current_or_next(ts)
    if session is not None:
        assert ts in calendar.window(session)
        assert current == session
    else:
        assert calendar.window(current).open > ts
        assert calendar.window(calendar.previous_session(current)).close <= ts


@settings(max_examples=60, deadline=None)
@given(day=st.dates(date(2024, 1, 1), date(2026, 12, 31)), extended=st.booleans())
def test_minutes_step_one_minute_and_map_back_to_their_session(
    xnys: Calendar, xnys_extended: Calendar, day: date, extended: bool
) -> None:
    calendar = xnys_extended if extended else xnys
    if not calendar.is_session(day):
        with pytest.raises(CalendarError, match="is not a session"):
            calendar.minutes(day)
        return
    window = calendar.window(day)
    minutes = calendar.minutes(day)
    assert len(minutes) == window.minutes
    assert minutes[0] == window.open
    assert minutes[-1] + MINUTE == window.close
    assert (np.diff(minutes) == MINUTE).all()
    assert all(calendar.session_of(m) == day for m in minutes)
    assert calendar.session_of(window.close) != day
