"""The side effects of an exception's workflow: each step into its audit trail and read model,
with the step's mail, in one transaction (accord.channel.exceptions, notifications.exceptions)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from accord.channel import exceptions
from accord.platform.db import SessionFactory
from models.payloads import Ack, ExceptionStanding, ExceptionStep, Standing
from models.tables import ChannelException, Partner
from notifications import exceptions as notices
from notifications.outbox import Outbox


class ExceptionActivities:
    def __init__(self, sessions: SessionFactory, outbox: Outbox) -> None:
        self.sessions = sessions
        self.outbox = outbox

    @activity.defn
    def record_exception_step(self, step: ExceptionStep) -> Ack:
        """Once per (exception, step), however often it is tried: a retry finds its step
        recorded and enqueues nothing again (the outbox's keys would refuse it anyway)."""
        names = self.outbox.read_names() if step.notify else None
        first: list[int] = []
        fresh = False
        with self.sessions.begin() as session:
            fresh = exceptions.record(session, step)
            if fresh and step.notify:
                row = session.get(ChannelException, step.exception_id)
                assert row is not None
                now = datetime.now(UTC)
                for notice in step.notify:
                    for request in notices.requests(session, row, step, notice):
                        first.extend(self.outbox.enqueue_in(session, request, now, names))
        if step.notify:
            self.outbox.nudge(first)  # committed: the relay may send them now
        return Ack(done=f"{step.action} recorded" if fresh else f"{step.action} found recorded")

    @activity.defn
    def standing(self, request: ExceptionStanding) -> Standing:
        """Whether the request may still go to the board: its partner deactivated since it
        asked has nobody left to act on it (withdraw it, or act under it)."""
        with self.sessions.read() as session:
            partner = session.get(Partner, request.partner_id)
        if partner is None or not partner.active:
            name = partner.name if partner else request.partner_id
            return Standing(ended=f"{name} is no longer an active partner: the request ends")
        return Standing()
