"""Exceptions to the rules of engagement, as people ask for and decide them: a request stored
and its workflow started; an objection, a vote, the chair's decision, a withdrawal or a redraw
sent to that workflow. The API, the web pages and the CLI all go through here.

Who acts is checked against the directory at the moment they act, so a role that ended stops
at once: a board member removed from the board or deactivated no longer votes or decides (the
workflow checks they sit on the panel), a partner contact deactivated no longer objects.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from accord.channel import exceptions
from accord.channel.exceptions import ExceptionRefused, ExceptionRequest
from accord.platform.db import SessionFactory
from accord.playbooks.library import PlaybookLibrary
from models.enums import ExceptionState, ObjectKind, Role
from models.payloads import (
    Actor,
    ContestedObject,
    DecideException,
    ExceptionActed,
    ExceptionAction,
    ExceptionInput,
    ExceptionView,
    ObjectToException,
    RedrawExceptionPanel,
    VoteOnException,
    WithdrawException,
    exception_workflow_id,
)
from models.tables import (
    Account,
    ChannelException,
    ExceptionEvent,
    Partner,
    PartnerContact,
    Person,
    may_be_row_id,
)
from workflows.exception import ExceptionWorkflow

log = logging.getLogger("accord.exceptions")


class ExceptionNotFound(LookupError):
    def __init__(self, exception_id: int) -> None:
        super().__init__(f"no exception EXC-{exception_id}")


class ExceptionForbidden(PermissionError):
    """The actor may not take this action on this exception (said to them)."""


ACTIONS: dict[str, tuple[type[ExceptionAction], Any]] = {
    "object": (ObjectToException, ExceptionWorkflow.object),
    "vote": (VoteOnException, ExceptionWorkflow.cast_vote),
    "decide": (DecideException, ExceptionWorkflow.decide),
    "withdraw": (WithdrawException, ExceptionWorkflow.withdraw),
    "redraw": (RedrawExceptionPanel, ExceptionWorkflow.redraw_panel),
}


class ExceptionService:
    def __init__(
        self,
        sessions: SessionFactory,
        playbooks: PlaybookLibrary,
        client: Client,
        *,
        task_queue: str,
    ) -> None:
        self.sessions = sessions
        self.playbooks = playbooks
        self.client = client
        self.task_queue = task_queue

    # --- requests -----------------------------------------------------------------------

    async def request(
        self, request: ExceptionRequest, actor: Actor, *, now: datetime | None = None
    ) -> ChannelException:
        """Check the request against the playbook in force and the channel data, store it and
        start its workflow. Raises ExceptionRefused (field and rule) or ExceptionForbidden."""
        now = now or datetime.now(UTC)
        if actor.role is Role.PARTNER:
            if actor.partner_id != request.partner_id:
                raise ExceptionForbidden("a partner asks for exceptions for itself only")
        elif actor.role is not Role.ADMIN:
            raise ExceptionForbidden("partners (or an admin for them) ask for exceptions")
        row, started = await asyncio.to_thread(self._store, request, actor, now)
        try:
            await self._start(started)
        except (RPCError, WorkflowAlreadyStartedError):
            # Stored, so never lost: the worker's recovery pass starts it (start_stranded), and
            # the partners are told then. The requester has their exception's number now.
            log.warning(
                "exception EXC-%s stored, its workflow not started yet", row.id, exc_info=True
            )
        return row

    def _store(
        self, request: ExceptionRequest, actor: Actor, now: datetime
    ) -> tuple[ChannelException, ExceptionInput]:
        playbook = self.playbooks.in_force(now.date())
        with self.sessions.begin(immediate=True) as session:
            _still_acting(session, actor)
            prepared = exceptions.prepare(
                session, playbook, request, requested_by=actor.id, now=now
            )
            session.add(prepared.row)
            session.flush()
            session.refresh(prepared.row)
            row = prepared.row
            started = self._input(session, row, prepared)
        return row, started

    @staticmethod
    def _input(
        session: Any, row: ChannelException, prepared: exceptions.Prepared
    ) -> ExceptionInput:
        assert row.id is not None
        kind = ObjectKind.ACCOUNT if row.scope_kind == "account" else ObjectKind.TERRITORY
        scope = ContestedObject(kind=kind, ref=row.scope_ref)
        objects = [scope]
        if kind is ObjectKind.ACCOUNT:
            account = session.get(Account, row.scope_ref)
            if account is not None and account.territory_code:
                objects.append(
                    ContestedObject(kind=ObjectKind.TERRITORY, ref=account.territory_code)
                )
        return ExceptionInput(
            exception_id=row.id,
            clause=row.clause,
            partner_id=row.partner_id,
            affected_partner_ids=tuple(row.affected_partner_ids),
            scope=scope,
            objects=tuple(objects),
            until=row.until,
            expires_at=row.expires_at,
            requested_by=row.requested_by,
            playbook_version=row.playbook_version,
            board_calendar=prepared.board_calendar,
            objection_days=prepared.objection_days,
            decision_days=prepared.decision_days,
            panel_functions=prepared.panel_functions,
            warning_fractions=prepared.warning_fractions,
        )

    async def _start(self, started: ExceptionInput) -> None:
        # USE_EXISTING: a request started twice (a stranded one found by two workers) runs once.
        await self.client.start_workflow(
            ExceptionWorkflow.run,
            started,
            id=exception_workflow_id(started.exception_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )

    async def start_stranded(self, older_than: timedelta = timedelta(minutes=1)) -> list[int]:
        """Start the workflow of any request stored but never started (a crash, or Temporal
        unreachable, between the two): the worker calls this periodically."""
        cutoff = datetime.now(UTC) - older_than
        stranded = await asyncio.to_thread(self._stranded, cutoff)
        started = []
        for request in stranded:
            try:
                await self._start(request)
            except (RPCError, WorkflowAlreadyStartedError):
                # Still unreachable: the next pass tries again, the others are not held up.
                log.warning("EXC-%s still not started", request.exception_id, exc_info=True)
                continue
            started.append(request.exception_id)
        return started

    def _stranded(self, cutoff: datetime) -> list[ExceptionInput]:
        found = []
        with self.sessions.read() as session:
            rows = session.exec(
                select(ChannelException)
                .where(ChannelException.state == ExceptionState.REQUESTED)
                .where(col(ChannelException.requested_at) < cutoff)
                .where(
                    col(ChannelException.id).not_in(select(ExceptionEvent.exception_id).distinct())
                )
            ).all()
            for row in rows:
                playbook = self.playbooks.get(row.playbook_version)
                rules = playbook.engagement.exceptions if playbook.engagement else None
                if rules is None:
                    continue
                prepared = exceptions.Prepared(
                    row=row,
                    objection_days=rules.objection_days,
                    decision_days=rules.decision_days,
                    board_calendar=playbook.board_calendar,
                    panel_functions=tuple(playbook.panel.functions),
                    warning_fractions=tuple(playbook.warnings),
                )
                found.append(self._input(session, row, prepared))
        return found

    # --- actions ------------------------------------------------------------------------

    async def act(
        self, exception_id: int, action: str, actor: Actor, data: dict[str, Any]
    ) -> ExceptionActed:
        """One action on an exception: the payload validated (pydantic's ValidationError names
        the field), the actor checked against the directory now, then sent to the workflow,
        whose rules refuse what the request's state no longer allows (ExceptionRefused)."""
        payload_type, update = ACTIONS[action]
        payload = payload_type.model_validate({**data, "actor": actor})
        await asyncio.to_thread(self._check_actor, exception_id, actor)
        handle = self.client.get_workflow_handle_for(
            ExceptionWorkflow.run, exception_workflow_id(exception_id)
        )
        try:
            result: ExceptionActed = await handle.execute_update(update, payload)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise ExceptionRefused(
                "action", getattr(cause, "message", None) or str(cause)
            ) from None
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                with self.sessions.read() as session:
                    ended = session.get(ChannelException, exception_id)
                state = ended.state.value if ended else "closed"
                raise ExceptionRefused(
                    "action", f"EXC-{exception_id} is {state}; nothing was changed"
                ) from None
            raise
        return result

    def _check_actor(self, exception_id: int, actor: Actor) -> None:
        if not may_be_row_id(exception_id):
            raise ExceptionNotFound(exception_id)
        with self.sessions.read() as session:
            row = session.get(ChannelException, exception_id)
            if row is None:
                raise ExceptionNotFound(exception_id)
            _still_acting(session, actor)
            if actor.role is Role.PARTNER and actor.partner_id not in (
                row.partner_id,
                *row.affected_partner_ids,
            ):
                raise ExceptionNotFound(exception_id)  # not theirs: not even its existence

    async def state(self, exception_id: int) -> ExceptionView | None:
        """The workflow's own view (votes sealed until the ballot opens); None once it ended
        and Temporal no longer keeps it."""
        handle = self.client.get_workflow_handle_for(
            ExceptionWorkflow.run, exception_workflow_id(exception_id)
        )
        try:
            view: ExceptionView = await handle.query(ExceptionWorkflow.get_state)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        return view


def _still_acting(session: Session, actor: Actor) -> None:
    """The actor as the directory has them now: a contact deactivated or moved to another
    partner, a partner deactivated, a board member or admin deactivated or given another
    role, is refused (ExceptionForbidden) whatever their signed-in session says."""
    if actor.role is Role.PARTNER:
        contact = session.exec(
            select(PartnerContact).where(PartnerContact.email == actor.id)
        ).first()
        partner = session.get(Partner, actor.partner_id) if actor.partner_id else None
        if (
            contact is None
            or not contact.active
            or contact.partner_id != actor.partner_id
            or partner is None
            or not partner.active
        ):
            raise ExceptionForbidden(f"{actor.id} no longer acts for {actor.partner_id}")
    elif actor.role in (Role.BOARD, Role.ADMIN):
        person = session.get(Person, actor.id)
        if person is None or not person.active or person.role is not actor.role:
            raise ExceptionForbidden(f"{actor.id} is no longer an active {actor.role.value}")
    else:
        raise ExceptionForbidden(f"a {actor.role.value} takes no action on exceptions")


def visible_to(row: ChannelException, actor: Actor) -> bool:
    """Who may read an exception: the board, compliance and admins; a partner it names."""
    if actor.role in (Role.BOARD, Role.COMPLIANCE, Role.ADMIN):
        return True
    if actor.role is Role.PARTNER:
        return actor.partner_id in (row.partner_id, *row.affected_partner_ids)
    return False


def insider(actor: Actor) -> bool:
    """Reads the objections' texts and the opened ballot."""
    return actor.role in (Role.BOARD, Role.COMPLIANCE, Role.ADMIN)
