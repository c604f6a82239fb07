"""Exceptions to the rules of engagement (workflows/exception.py): the request the workflow
starts from, the actions of the partners and the panel, what each step records, and its state.

Texts here travel inline, unlike a dispute's (`TextRef`): an exception has a bounded number of
them (one objection per affected partner, one vote per panelist, one decision), each at most
5,000 characters, so its history stays small; the payload codec encrypts them like the rest."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from models.enums import ExceptionChoice, ExceptionState
from models.payloads.common import Actor, ContestedObject, Payload, Reason
from models.payloads.state import PanelMember


class ExceptionInput(Payload):
    """What the request decided before the workflow started (accord.channel.exceptions): the
    playbook's rule and timeline, who is affected, and when the exception would end."""

    exception_id: int
    clause: str
    partner_id: str
    """Who asks (the exception is for them)."""
    affected_partner_ids: tuple[str, ...]
    scope: ContestedObject
    objects: tuple[ContestedObject, ...]
    """What the panel is screened against: the scope, and the territory an account lies in."""
    until: date
    expires_at: datetime
    requested_by: str
    playbook_version: str
    board_calendar: str
    objection_days: int
    decision_days: int
    panel_functions: tuple[str, ...]
    warning_fractions: tuple[float, ...] = ()

    @property
    def number(self) -> str:
        return exception_number(self.exception_id)


def exception_number(exception_id: int) -> str:
    return f"EXC-{exception_id}"


def exception_workflow_id(exception_id: int) -> str:
    return f"exception-{exception_id}"


class ExceptionAction(Payload):
    actor: Actor


class ObjectToException(ExceptionAction):
    """An affected partner objects, while the objection window is open."""

    reason: Reason


class VoteOnException(ExceptionAction):
    """A panelist's sealed vote."""

    choice: ExceptionChoice
    reasons: Reason


class DecideException(ExceptionAction):
    """The chair's decision, once the ballot is open."""

    choice: ExceptionChoice
    reason: Reason


class WithdrawException(ExceptionAction):
    """The partner who asked (or an admin) takes the request back before it is decided."""

    reason: Reason


class RedrawExceptionPanel(ExceptionAction):
    """An admin asks for the panel to be drawn again (after completing the board)."""

    reason: Reason


class ExceptionActed(Payload):
    exception_id: int
    state: ExceptionState
    message: str
    step: int
    """The step the action recorded: the read model has it once this step is stored."""


class ExceptionNotice(Payload):
    """Mail a step sends: the template's event, and to whom (resolved from the directory by
    the activity: 'beneficiary', 'affected', 'panel', 'chair', 'admins')."""

    event: str
    audiences: tuple[str, ...]


class ExceptionStep(Payload):
    """One step of an exception: appended to its audit trail (once per step, however often
    the activity is tried) and projected onto its read model, in one transaction."""

    exception_id: int
    step: int
    at: datetime
    actor: str
    action: str
    summary: str
    detail: dict[str, Any] = {}
    state: ExceptionState | None = None
    objections_close_at: datetime | None = None
    decision_due_at: datetime | None = None
    panel: dict[str, Any] | None = None
    decision: DecideException | None = None
    notify: tuple[ExceptionNotice, ...] = ()


class ExceptionStanding(Payload):
    """Asked before the request goes to the board: may its partner still act on it?"""

    exception_id: int
    partner_id: str


class Standing(Payload):
    ended: str | None = None
    """Why the request can go no further (its partner no longer active), or None."""


class ExceptionView(Payload):
    """The workflow's state, as the query gives it: votes stay sealed (who voted, not how)
    until the ballot is open."""

    exception_id: int
    state: ExceptionState
    objections_open: bool
    objected: tuple[str, ...]
    panel: tuple[PanelMember, ...]
    chair: PanelMember | None
    awaiting_panel: bool
    voted: tuple[str, ...]
    ballot_open: bool
    votes: tuple[VoteOnException, ...] = ()
    objections_close_at: datetime | None = None
    decision_due_at: datetime | None = None


class ExceptionOutcome(Payload):
    exception_id: int
    state: ExceptionState
