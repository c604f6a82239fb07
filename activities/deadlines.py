"""Deadlines in business days, computed once and stored with their explanation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.playbooks.calendar import BusinessCalendar
from accord.playbooks.library import CalendarSpec, HolidaySource, PlaybookError, PlaybookLibrary
from models.payloads import (
    Deadline,
    DeadlineRequest,
    ExtendDeadlineRequest,
    ShiftDeadlineRequest,
    WarningPoint,
)

BUILT_IN_CALENDAR = "built-in"
"""The last resort when no calendar of the pinned playbook can be used (its version is not on
this worker): Monday to Friday, 09:00-17:00 UTC, no holidays. It needs no playbook."""


class _BuiltInCalendar(BusinessCalendar):
    def __init__(self) -> None:
        # The schema asks for a holiday source; this calendar never consults it.
        spec = CalendarSpec(
            time_zone="UTC",
            working_days=["mon", "tue", "wed", "thu", "fri"],
            working_hours=(time(9), time(17)),
            holidays=HolidaySource(country="US"),
        )
        super().__init__(BUILT_IN_CALENDAR, spec)

    def holiday_name(self, day: date) -> str | None:
        return None

    def describe(self) -> str:
        return "UTC, Mon-Fri 09:00-17:00, no holidays"


@contextmanager
def _deadline_errors() -> Iterator[None]:
    """Calendar arithmetic that fails fails the same way on every retry: say so at once."""
    try:
        yield
    except ValueError as exc:
        raise ApplicationError(str(exc), type="DeadlineError", non_retryable=True) from None


def _fmt(instant: datetime, calendar: BusinessCalendar) -> str:
    return instant.astimezone(calendar.zone).strftime("%Y-%m-%d %H:%M %Z")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class DeadlineActivities:
    def __init__(self, playbooks: PlaybookLibrary) -> None:
        self.playbooks = playbooks
        self._calendar = lru_cache(maxsize=256)(self._load_calendar)

    def _load_calendar(self, version: str, name: str) -> BusinessCalendar:
        if name == BUILT_IN_CALENDAR:
            return _BuiltInCalendar()
        try:
            playbook = self.playbooks.get(version)
        except PlaybookError as exc:
            raise ApplicationError(str(exc), type="PlaybookError", non_retryable=True) from None
        spec = playbook.calendars.get(name)
        if spec is None:
            raise ApplicationError(
                f"calendar {name!r} is not defined in playbook {version}",
                type="PlaybookError",
                non_retryable=True,
            )
        return BusinessCalendar(name, spec)

    def _warnings(
        self,
        calendar: BusinessCalendar,
        start: datetime,
        due: datetime,
        fractions: tuple[float, ...],
    ) -> tuple[WarningPoint, ...]:
        return tuple(
            WarningPoint(fraction=f, at=calendar.point_at_fraction(start, due, f))
            for f in fractions
        )

    @activity.defn
    def compute_deadline(self, request: DeadlineRequest) -> Deadline:
        calendar = self._calendar(request.playbook_version, request.calendar)
        with _deadline_errors():
            due, skipped = calendar.add_business_days(request.starts_at, request.business_days)
        explanation = (
            f"{request.business_days} business days on the {calendar.name} calendar "
            f"({calendar.describe()}) from {_fmt(request.starts_at, calendar)}, "
            f"counting from the next day, ending at close of business on {_fmt(due, calendar)}"
        )
        if skipped:
            explanation += "; skipped " + ", ".join(f"{d.isoformat()} ({n})" for d, n in skipped)
        with _deadline_errors():
            warnings = self._warnings(calendar, request.starts_at, due, request.warning_fractions)
        return Deadline(
            purpose=request.purpose,
            calendar=calendar.name,
            starts_at=request.starts_at,
            due_at=due,
            business_days=request.business_days,
            warnings=warnings,
            explanation=explanation,
        )

    @activity.defn
    def shift_deadline(self, request: ShiftDeadlineRequest) -> Deadline:
        """Move a paused deadline (and its warnings) by the business time the pause lasted."""
        old = request.deadline
        calendar = self._calendar(request.playbook_version, old.calendar)
        with _deadline_errors():
            paused = calendar.business_seconds_between(request.paused_from, request.paused_until)
            due = calendar.add_business_seconds(old.due_at, paused)
            warnings = tuple(
                WarningPoint(fraction=w.fraction, at=calendar.add_business_seconds(w.at, paused))
                if w.at >= request.paused_from
                else w
                for w in old.warnings
            )
        explanation = (
            f"{old.explanation}; paused {_fmt(request.paused_from, calendar)} to "
            f"{_fmt(request.paused_until, calendar)} while a party owed information: "
            f"moved by {_duration(paused)} of business time to {_fmt(due, calendar)}"
        )
        return old.model_copy(
            update={"due_at": due, "warnings": warnings, "explanation": explanation}
        )

    @activity.defn
    def extend_deadline(self, request: ExtendDeadlineRequest) -> Deadline:
        """Move the deadline by business days, counted from the old deadline's day.

        With `warnings_from`, the warnings not yet sent fall at their fractions of the
        *remaining running window*: the business time, on the deadline's own calendar, from
        `warnings_from` (the instant of the extension) to the new deadline. An extension is
        made while its clock runs (during a pause it goes to the party's deadline instead), so
        no paused time is in that window, and a warning never lands before the extension.
        Warnings already sent (`warned`) keep their instants. Without `warnings_from` (requests
        made before it existed) every warning is put at its fraction of the whole window from
        `starts_at`, which counts any pause since as running time.
        """
        old = request.deadline
        calendar = self._calendar(request.playbook_version, old.calendar)
        fractions = tuple(w.fraction for w in old.warnings)
        with _deadline_errors():
            # Extending from one second before the old close of business keeps the new
            # deadline at the close of a business day counted from the old deadline's day.
            due, skipped = calendar.add_business_days(
                old.due_at - timedelta(seconds=1), request.business_days
            )
            start = request.warnings_from or old.starts_at
            fresh = self._warnings(calendar, start, due, fractions)
        explanation = (
            f"{old.explanation}; extended by {request.business_days} business days to "
            f"{_fmt(due, calendar)} ({request.reason})"
        )
        if skipped:
            explanation += "; skipped " + ", ".join(f"{d.isoformat()} ({n})" for d, n in skipped)
        warnings = fresh
        if request.warnings_from is not None:
            warnings = tuple(
                kept if kept.fraction in request.warned else moved
                for kept, moved in zip(old.warnings, fresh, strict=True)
            )
            moving = [f"{round(f * 100)} %" for f in fractions if f not in request.warned]
            if moving:
                window = calendar.business_seconds_between(request.warnings_from, due)
                explanation += (
                    f"; the warnings not yet sent ({', '.join(moving)}) are at those shares of "
                    f"the remaining running window, {_duration(window)} of business time from "
                    f"{_fmt(request.warnings_from, calendar)}"
                )
        return old.model_copy(
            update={
                "due_at": due,
                "business_days": old.business_days + request.business_days,
                "warnings": warnings,
                "explanation": explanation,
            }
        )
