"""The rules of engagement for one dispute: its facts read from the channel data, evaluated
against the decision tables of the playbook version it pinned.

Read-only, so a retry asks again; the workflow records the recommendation it got, so the case
file shows what the mediator and the panel saw even after the channel data changes.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.channel.facts import establish
from accord.platform.db import SessionFactory
from accord.playbooks.engagement import recommend
from accord.playbooks.library import PlaybookError, PlaybookLibrary
from models.payloads.engagement import EngagementFacts, EngagementRequest, Recommendation


class EngagementActivities:
    def __init__(self, sessions: SessionFactory, playbooks: PlaybookLibrary) -> None:
        self.sessions = sessions
        self.playbooks = playbooks

    @activity.defn
    def recommend(self, request: EngagementRequest) -> Recommendation:
        try:
            playbook = self.playbooks.get(request.playbook_version)
        except PlaybookError as exc:
            raise ApplicationError(str(exc), type="PlaybookError", non_retryable=True) from None
        facts = EngagementFacts()
        if playbook.engagement is not None:
            with self.sessions.read() as session:
                facts = establish(session, request, playbook.engagement)
        return recommend(playbook, request.category, facts, purpose=request.purpose)
