"""Notifications through the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio import activity

from models.payloads import NotificationRequest, NotificationResult
from notifications.outbox import Outbox


class NotificationActivities:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    @activity.defn
    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        """Store the messages, then send them; a retry finds them stored and sends the rest."""
        ids = await asyncio.to_thread(self.outbox.enqueue, request, datetime.now(UTC))
        sent = await self.outbox.deliver(ids)
        return NotificationResult(queued=len(ids), sent=sent)
