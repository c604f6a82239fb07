"""Business-day arithmetic over weekends, holidays, time zones and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.platform.settings import REPO_ROOT
from accord.playbooks.calendar import BusinessCalendar
from accord.playbooks.library import CalendarSpec, HolidaySource, PlaybookLibrary

PLAYBOOK = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").get("2026.1")
CALENDARS = {name: BusinessCalendar(name, spec) for name, spec in PLAYBOOK.calendars.items()}


def cal(name: str) -> BusinessCalendar:
    return CALENDARS[name]


def test_christmas_and_new_year_are_skipped_in_bavaria() -> None:
    start = datetime(2026, 12, 18, 10, 0, tzinfo=UTC)  # a Friday
    due, skipped = cal("DE-BY").add_business_days(start, 10)
    assert due == datetime(2027, 1, 5, 16, 0, tzinfo=UTC)  # 17:00 CET
    assert [d for d, _ in skipped] == [date(2026, 12, 25), date(2027, 1, 1)]
    assert all(name for _, name in skipped)


def test_epiphany_is_a_holiday_in_bavaria_only() -> None:
    berlin = BusinessCalendar(
        "DE-BE",
        CalendarSpec(
            time_zone="Europe/Berlin",
            working_days=["mon", "tue", "wed", "thu", "fri"],
            working_hours=(time(9), time(17)),
            holidays=HolidaySource(country="DE", subdivision="BE"),
        ),
    )
    assert not cal("DE-BY").is_business_day(date(2027, 1, 6))
    assert berlin.is_business_day(date(2027, 1, 6))


def test_deadline_lands_at_close_of_business_in_local_time_across_dst() -> None:
    # US DST ends on 2026-11-01; a deadline after it is 17:00 EST = 22:00 UTC, before it 21:00 UTC.
    # Election Day (2026-11-03) is a public holiday in New York and is skipped.
    before, _ = cal("US-NY").add_business_days(datetime(2026, 10, 26, 14, 0, tzinfo=UTC), 3)
    after, skipped = cal("US-NY").add_business_days(datetime(2026, 10, 29, 14, 0, tzinfo=UTC), 3)
    assert before == datetime(2026, 10, 29, 21, 0, tzinfo=UTC)
    assert after == datetime(2026, 11, 4, 22, 0, tzinfo=UTC)
    assert skipped == [(date(2026, 11, 3), "Election Day")]


def test_the_same_instant_gives_different_deadlines_in_tokyo_and_new_york() -> None:
    instant = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)  # Friday evening in NY, Saturday in Tokyo
    ny, _ = cal("US-NY").add_business_days(instant, 1)
    tokyo, _ = cal("JP").add_business_days(instant, 1)
    assert ny.astimezone(cal("US-NY").zone).date() == date(2026, 12, 7)
    assert tokyo.astimezone(cal("JP").zone).date() == date(2026, 12, 7)
    assert tokyo < ny


def test_business_seconds_count_only_working_hours() -> None:
    ny = cal("US-NY")
    friday_4pm = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
    monday_10am = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert ny.business_seconds_between(friday_4pm, monday_10am) == 2 * 3600


instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
calendar_names = st.sampled_from(sorted(CALENDARS))


@settings(max_examples=150, deadline=None)
@given(start=instants, days=st.integers(min_value=1, max_value=40), name=calendar_names)
def test_a_deadline_is_the_close_of_a_business_day_after_the_start(
    start: datetime, days: int, name: str
) -> None:
    calendar = cal(name)
    due, skipped = calendar.add_business_days(start, days)
    local = due.astimezone(calendar.zone)
    assert due > start
    assert calendar.is_business_day(local.date())
    assert local.time() == calendar.spec.working_hours[1]
    business_days_between = sum(
        1
        for i in range(1, (local.date() - calendar.local_date(start)).days + 1)
        if calendar.is_business_day(calendar.local_date(start) + timedelta(days=i))
    )
    assert business_days_between == days
    assert all(
        not calendar.is_business_day(d) and calendar.is_working_weekday(d) for d, _ in skipped
    )


@settings(max_examples=150, deadline=None)
@given(start=instants, days=st.integers(min_value=1, max_value=30), name=calendar_names)
def test_more_business_days_never_end_earlier(start: datetime, days: int, name: str) -> None:
    calendar = cal(name)
    assert (
        calendar.add_business_days(start, days)[0] < calendar.add_business_days(start, days + 1)[0]
    )


@settings(max_examples=150, deadline=None)
@given(
    start=instants, seconds=st.integers(min_value=1, max_value=60 * 8 * 3600), name=calendar_names
)
def test_adding_business_seconds_round_trips(start: datetime, seconds: int, name: str) -> None:
    calendar = cal(name)
    end = calendar.add_business_seconds(start, seconds)
    assert end > start
    assert calendar.business_seconds_between(start, end) == pytest.approx(seconds, abs=1e-3)


@settings(max_examples=100, deadline=None)
@given(
    start=instants,
    days=st.integers(min_value=1, max_value=20),
    name=calendar_names,
    fraction=st.sampled_from([0.5, 0.8]),
)
def test_warning_points_split_the_business_time(
    start: datetime, days: int, name: str, fraction: float
) -> None:
    calendar = cal(name)
    due, _ = calendar.add_business_days(start, days)
    point = calendar.point_at_fraction(start, due, fraction)
    total = calendar.business_seconds_between(start, due)
    assert start <= point <= due
    assert calendar.business_seconds_between(start, point) == pytest.approx(
        round(total * fraction), abs=1
    )
