"""Deadlines: what an activity is asked to compute, and a deadline with its explanation."""

from __future__ import annotations

from datetime import datetime

from models.payloads.common import Payload

# --- deadlines -----------------------------------------------------------------------------------


class DeadlineRequest(Payload):
    purpose: str
    calendar: str
    playbook_version: str
    starts_at: datetime
    business_days: int
    warning_fractions: tuple[float, ...]


class ShiftDeadlineRequest(Payload):
    """Move a deadline by the business time that passed (same calendar) between two instants."""

    deadline: Deadline
    paused_from: datetime
    paused_until: datetime
    playbook_version: str


class ExtendDeadlineRequest(Payload):
    deadline: Deadline
    business_days: int
    reason: str
    playbook_version: str
    warnings_from: datetime | None = None
    """When the extension is made: the start of the remaining running window over which the
    warnings not yet sent are put (None in requests made before: over the whole window)."""
    warned: tuple[float, ...] = ()
    """Fractions whose warnings were already sent: they keep their instants."""


class WarningPoint(Payload):
    fraction: float
    at: datetime


class Deadline(Payload):
    purpose: str
    calendar: str
    starts_at: datetime
    due_at: datetime
    business_days: int
    warnings: tuple[WarningPoint, ...]
    explanation: str

    def warning_at(self, fraction: float) -> datetime | None:
        """When the owner is warned that `fraction` (or more) of the business time is used:
        the earliest warning at that fraction or past it; None if the playbook has none."""
        return min((p.at for p in self.warnings if p.fraction >= fraction), default=None)


ShiftDeadlineRequest.model_rebuild()
ExtendDeadlineRequest.model_rebuild()
