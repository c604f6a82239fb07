"""Notifications through the outbox."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from temporalio import activity

from models.payloads import NotificationRequest, NotificationResult
from notifications.outbox import MailNotSent, Outbox

log = logging.getLogger("accord.notifications")


class NotificationActivities:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    @activity.defn
    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        """Store the messages, then try once to send them. What the mail server turns away stays
        pending in the outbox for the relay: a dispute never waits on its mail (it holds the
        decision lock while it notifies, so a retried send would hold up every action)."""
        ids = await asyncio.to_thread(self.outbox.enqueue, request, datetime.now(UTC))
        try:
            sent = await self.outbox.deliver(ids)
        except MailNotSent as failure:
            log.warning("%s: left for the outbox relay: %s", request.key, failure)
            sent = failure.sent
        return NotificationResult(queued=len(ids), sent=sent)
