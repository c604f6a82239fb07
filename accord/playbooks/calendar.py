"""Business-day arithmetic on a playbook calendar: time zone, working days and hours, holidays.

Only activities call this (deadlines are computed once and stored), so a `holidays` upgrade
can never change what a replayed workflow sees.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holiday_data

from accord.playbooks.library import WEEKDAYS, CalendarSpec

# A deadline is at most a few hundred business days out; walking further means a calendar
# with no working days at all, which the playbook schema already refuses.
_MAX_DAYS_WALKED = 20_000


class BusinessCalendar:
    def __init__(self, name: str, spec: CalendarSpec) -> None:
        self.name = name
        self.spec = spec
        self.zone = ZoneInfo(spec.time_zone)
        self._workdays = frozenset(WEEKDAYS.index(d) for d in spec.working_days)
        self._opens, self._closes = spec.working_hours
        self._public = holiday_data.country_holidays(
            spec.holidays.country, subdiv=spec.holidays.subdivision
        )

    # --- days ---------------------------------------------------------------------------------

    def holiday_name(self, day: date) -> str | None:
        if day in self.spec.holidays.extra:
            return self.spec.holidays.extra[day]
        name = self._public.get(day)
        return str(name) if name else None

    def is_working_weekday(self, day: date) -> bool:
        return day.weekday() in self._workdays

    def is_business_day(self, day: date) -> bool:
        return self.is_working_weekday(day) and self.holiday_name(day) is None

    def _at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self.zone).astimezone(UTC)

    def opens_at(self, day: date) -> datetime:
        return self._at(day, self._opens)

    def closes_at(self, day: date) -> datetime:
        return self._at(day, self._closes)

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    # --- business days ----------------------------------------------------------------------

    def add_business_days(
        self, start: datetime, days: int
    ) -> tuple[datetime, list[tuple[date, str]]]:
        """End of the working day `days` business days after the start's local date.

        Returns the deadline and the holidays skipped on what would have been working days.
        """
        if days < 1:
            raise ValueError("days must be at least 1")
        day = self.local_date(start)
        counted = 0
        skipped: list[tuple[date, str]] = []
        for _ in range(_MAX_DAYS_WALKED):
            day += timedelta(days=1)
            if not self.is_working_weekday(day):
                continue
            name = self.holiday_name(day)
            if name is not None:
                skipped.append((day, name))
                continue
            counted += 1
            if counted == days:
                return self.closes_at(day), skipped
        raise ValueError(f"calendar {self.name} has no working days")

    # --- business time ------------------------------------------------------------------------

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Working seconds in [start, end): the time a business clock runs between the two."""
        if end <= start:
            return 0.0
        total = 0.0
        day = self.local_date(start) - timedelta(days=1)
        last = self.local_date(end)
        while day <= last:
            if self.is_business_day(day):
                lo = max(start, self.opens_at(day))
                hi = min(end, self.closes_at(day))
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant at which `seconds` of working time have passed since `start`."""
        if seconds <= 0:
            return start
        remaining = seconds
        day = self.local_date(start) - timedelta(days=1)
        for _ in range(_MAX_DAYS_WALKED):
            if self.is_business_day(day):
                lo = max(start, self.opens_at(day))
                hi = self.closes_at(day)
                if hi > lo:
                    available = (hi - lo).total_seconds()
                    if remaining <= available:
                        return lo + timedelta(seconds=remaining)
                    remaining -= available
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name} has no working time")

    def point_at_fraction(self, start: datetime, due: datetime, fraction: float) -> datetime:
        """The instant when `fraction` of the business time from start to due has passed."""
        span = self.business_seconds_between(start, due)
        return self.add_business_seconds(start, round(span * fraction))

    def describe(self) -> str:
        days = self.spec.working_days
        span = f"{days[0].capitalize()}-{days[-1].capitalize()}" if len(days) > 1 else days[0]
        hours = f"{self._opens:%H:%M}-{self._closes:%H:%M}"
        region = self.spec.holidays.country + (
            f"-{self.spec.holidays.subdivision}" if self.spec.holidays.subdivision else ""
        )
        return f"{self.spec.time_zone}, {span} {hours}, {region} holidays"
