"""What a ruling may cite: the clauses of its pinned playbook version, the precedents that exist.

Read-only, so a retry simply asks again; the workflow decides what to refuse.
"""

from __future__ import annotations

from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.platform.db import SessionFactory
from accord.playbooks.library import PlaybookError, PlaybookLibrary
from models.payloads import Citable, CitationLookup
from models.tables import Precedent


class CitationActivities:
    def __init__(self, sessions: SessionFactory, playbooks: PlaybookLibrary) -> None:
        self.sessions = sessions
        self.playbooks = playbooks

    @activity.defn
    def find_citable(self, lookup: CitationLookup) -> Citable:
        """Every clause of the playbook version, and which of the precedents asked about exist."""
        try:
            playbook = self.playbooks.get(lookup.playbook_version)
        except PlaybookError as exc:
            raise ApplicationError(str(exc), type="PlaybookError", non_retryable=True) from None
        found: set[str] = set()
        if lookup.precedents:
            with self.sessions.read() as session:
                found = set(
                    session.exec(
                        select(Precedent.dispute_number).where(
                            col(Precedent.dispute_number).in_(lookup.precedents)
                        )
                    ).all()
                )
        return Citable(
            playbook_clauses=playbook.clauses(),
            precedents=tuple(p for p in lookup.precedents if p in found),
        )
