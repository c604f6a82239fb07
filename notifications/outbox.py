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
        rendered = self.catalog.render(
            request.template, {**request.context, "base_url": self.base_url}
        )
        root = thread_root(request.number, self.domain)
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
                        message_id=f"<{request.number}.{digest}@{self.domain}>",
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

    def _claim(self, row_id: int, now: datetime) -> OutboxMessage | None:
        with self.sessions.begin() as session:
            claimed = session.execute(
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
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return session.get(OutboxMessage, row_id)

    def _finish(self, row_id: int, error: str | None) -> None:
        with self.sessions.begin() as session:
            row = session.get(OutboxMessage, row_id)
            if row is None:
                return
            if error is None:
                row.state = OutboxState.SENT
                row.sent_at = datetime.now(UTC)
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
        sent = 0
        failures: list[str] = []
        for row_id in ids:
            row = await asyncio.to_thread(self._claim, row_id, datetime.now(UTC))
            if row is None:
                continue  # sent already, or another worker is sending it right now
            try:
                await self.mailer.send(self.build_message(row))
            except Exception as exc:  # any SMTP or network failure: keep the row pending
                await asyncio.to_thread(self._finish, row_id, f"{type(exc).__name__}: {exc}")
                failures.append(f"{row.recipient}: {exc}")
                continue
            await asyncio.to_thread(self._finish, row_id, None)
            sent += 1
        if failures:
            raise RuntimeError("could not send: " + "; ".join(failures))
        return sent

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
        except RuntimeError:
            return 0
