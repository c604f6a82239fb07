"""Deadlines in business days, computed once and stored with their explanation."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.calendar import BusinessCalendar
from accord.playbook import PlaybookError, PlaybookLibrary
from models.payloads import (
    Deadline,
    DeadlineRequest,
    ExtendDeadlineRequest,
    ShiftDeadlineRequest,
    WarningPoint,
)


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
        due, skipped = calendar.add_business_days(request.starts_at, request.business_days)
        explanation = (
            f"{request.business_days} business days on the {calendar.name} calendar "
            f"({calendar.describe()}) from {_fmt(request.starts_at, calendar)}, "
            f"counting from the next day, ending at close of business on {_fmt(due, calendar)}"
        )
        if skipped:
            explanation += "; skipped " + ", ".join(f"{d.isoformat()} ({n})" for d, n in skipped)
        return Deadline(
            purpose=request.purpose,
            calendar=calendar.name,
            starts_at=request.starts_at,
            due_at=due,
            business_days=request.business_days,
            warnings=self._warnings(calendar, request.starts_at, due, request.warning_fractions),
            explanation=explanation,
        )

    @activity.defn
    def shift_deadline(self, request: ShiftDeadlineRequest) -> Deadline:
        """Move a paused deadline (and its warnings) by the business time the pause lasted."""
        old = request.deadline
        calendar = self._calendar(request.playbook_version, old.calendar)
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
        old = request.deadline
        calendar = self._calendar(request.playbook_version, old.calendar)
        # Extending from one second before the old close of business keeps the new deadline
        # at the close of a business day counted from the old deadline's day.
        due, skipped = calendar.add_business_days(
            old.due_at - timedelta(seconds=1), request.business_days
        )
        explanation = (
            f"{old.explanation}; extended by {request.business_days} business days to "
            f"{_fmt(due, calendar)} ({request.reason})"
        )
        if skipped:
            explanation += "; skipped " + ", ".join(f"{d.isoformat()} ({n})" for d, n in skipped)
        return old.model_copy(
            update={
                "due_at": due,
                "business_days": old.business_days + request.business_days,
                "warnings": self._warnings(
                    calendar, old.starts_at, due, tuple(w.fraction for w in old.warnings)
                ),
                "explanation": explanation,
            }
        )
