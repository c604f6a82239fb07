"""The check of the stored texts an action refers to (`accord.disputes.texts`).

The workflow cannot read the database, and its validators cannot call activities: the action's
handler asks this before it changes anything, so an action naming another dispute's text, or a
text whose body was changed since it was sent, is refused with nothing recorded.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.disputes import texts
from accord.platform.db import SessionFactory
from models.payloads import Ack, TextCheck


class TextActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def check_texts(self, request: TextCheck) -> Ack:
        with self.sessions.read() as session:
            try:
                texts.check(session, request.number, request.refs)
            except texts.TextProblem as problem:
                raise ApplicationError(
                    f"text {problem}", type="UnknownText", non_retryable=True
                ) from None
        return Ack(done=f"{len(request.refs)} texts of {request.number} checked")
