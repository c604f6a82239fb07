"""The outbox: a notification is stored before it is sent, and sent once per recipient.

`enqueue` inserts one row per recipient keyed on (notification key, recipient), so a retried
activity adds nothing. `deliver` claims a row before sending, so two workers never send the
same row at once; a crash after the SMTP server accepted a message but before the row was
marked leaves it to be sent again after the claim lease, with the same Message-ID, which
lets receiving systems drop the duplicate. The relay picks up anything left pending.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy import or_, update
from sqlmodel import col, select

from accord import texts
from accord.db import SessionFactory
from models.enums import OutboxState
from models.payloads import NotificationRequest
from models.tables import OutboxMessage
from notifications.mailer import Mailer
from notifications.render import TemplateCatalog

CLAIM_LEASE = timedelta(minutes=2)


def thread_root(number: str, domain: str) -> str:
    """The Message-ID every notification of a dispute replies to, so mail clients thread them."""
    return f"<{number}@{domain}>"


class MailNotSent(RuntimeError):
    """Some messages could not be sent this time; they stay pending in the outbox."""

    def __init__(self, sent: int, failures: list[str]) -> None:
        super().__init__("could not send: " + "; ".join(failures))
        self.sent = sent


class Outbox:
    def __init__(
        self,
        sessions: SessionFactory,
        mailer: Mailer,
        catalog: TemplateCatalog,
        *,
        sender: str,
        domain: str,
        base_url: str,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.catalog = catalog
        self.sender = sender
        self.domain = domain
        self.base_url = base_url.rstrip("/")

    def enqueue(self, request: NotificationRequest, now: datetime) -> list[int]:
        """Store one message per recipient (insert-or-skip); returns the rows still to send."""
        # A text the workflow names by its stored reference is read in here (accord.texts).
        context = texts.resolve_context(self.sessions, request.context)
        rendered = self.catalog.render(request.template, {**context, "base_url": self.base_url})
        # An answer to a received email threads under it; a dispute's mail under the dispute.
        # An answer to an email without a Message-ID, on no dispute, threads under nothing.
        root = request.in_reply_to or (
            thread_root(request.number, self.domain) if request.number else None
        )
        prefix = request.number or "intake"
        ids: list[int] = []
        with self.sessions.begin() as session:
            for recipient in request.recipients:
                key = f"{request.key}:{recipient.lower()}"
                row = session.exec(select(OutboxMessage).where(OutboxMessage.key == key)).first()
                if row is None:
                    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
                    row = OutboxMessage(
                        key=key,
                        dispute_number=request.number,
                        template=request.template,
                        recipient=recipient,
                        subject=rendered.subject,
                        text_body=rendered.text,
                        html_body=rendered.html,
                        message_id=f"<{prefix}.{digest}@{self.domain}>",
                        in_reply_to=root,
                        references=root,
                        state=OutboxState.PENDING,
                        created_at=now,
                    )
                    session.add(row)
                    session.flush()
                if row.state is OutboxState.PENDING and row.id is not None:
                    ids.append(row.id)
        return ids

    def _claim(self, ids: list[int], now: datetime) -> list[OutboxMessage]:
        """Mark the pending, unclaimed rows as being sent by us; returns the ones we got."""
        claimed: list[OutboxMessage] = []
        with self.sessions.begin() as session:
            for row_id in ids:
                result = session.execute(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id) == row_id)
                    .where(col(OutboxMessage.state) == OutboxState.PENDING)
                    .where(
                        or_(
                            col(OutboxMessage.claimed_at).is_(None),
                            col(OutboxMessage.claimed_at) < now - CLAIM_LEASE,
                        )
                    )
                    .values(claimed_at=now, attempts=OutboxMessage.attempts + 1)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    row = session.get(OutboxMessage, row_id)
                    if row is not None:
                        claimed.append(row)
        return claimed

    def _finish(self, outcomes: list[tuple[int, str | None]]) -> None:
        """Record what happened to each claimed row: sent, or the error (and release it)."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            for row_id, error in outcomes:
                row = session.get(OutboxMessage, row_id)
                if row is None:
                    continue
                if error is None:
                    row.state = OutboxState.SENT
                    row.sent_at = now
                else:
                    row.last_error = error[:2000]
                    row.claimed_at = None
                session.add(row)

    def build_message(self, row: OutboxMessage) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = row.recipient
        message["Subject"] = row.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = row.message_id
        if row.in_reply_to:
            message["In-Reply-To"] = row.in_reply_to
        if row.references:
            message["References"] = row.references
        message["Auto-Submitted"] = "auto-generated"
        message["X-Accord-Dispute"] = row.dispute_number
        message.set_content(row.text_body)
        message.add_alternative(row.html_body, subtype="html")
        return message

    async def deliver(self, ids: list[int]) -> int:
        """Send the given pending rows; raises after trying all if any failed (so it retries)."""
        if not ids:
            return 0
        claimed = await asyncio.to_thread(self._claim, ids, datetime.now(UTC))
        outcomes: list[tuple[int, str | None]] = []
        failures: list[str] = []
        for row in claimed:
            assert row.id is not None
            try:
                await self.mailer.send(self.build_message(row))
            except Exception as exc:  # any SMTP or network failure: keep the row pending
                outcomes.append((row.id, f"{type(exc).__name__}: {exc}"))
                failures.append(f"{row.recipient}: {exc}")
            else:
                outcomes.append((row.id, None))
        await asyncio.to_thread(self._finish, outcomes)
        if failures:
            raise MailNotSent(len(outcomes) - len(failures), failures)
        return len(outcomes) - len(failures)

    def pending_ids(self, now: datetime, older_than: timedelta) -> list[int]:
        with self.sessions.read() as session:
            rows = session.exec(
                select(OutboxMessage.id)
                .where(OutboxMessage.state == OutboxState.PENDING)
                .where(col(OutboxMessage.created_at) < now - older_than)
                .order_by(col(OutboxMessage.id))
                .limit(500)
            ).all()
        return [r for r in rows if r is not None]

    async def relay_once(self, older_than: timedelta = timedelta(minutes=1)) -> int:
        """Send what an interrupted activity left behind; returns how many were sent."""
        ids = await asyncio.to_thread(self.pending_ids, datetime.now(UTC), older_than)
        if not ids:
            return 0
        try:
            return await self.deliver(ids)
        except MailNotSent as failure:
            return failure.sent
