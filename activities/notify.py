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
        """Store the messages in the outbox and wake the relay; nothing more. A dispute never
        waits on a mail server: it holds its decision lock while it notifies, so a send in here
        (slow, refused, retried) would hold up every action on it. The name stays for the
        histories of running disputes, which call it by this name."""
        ids = await asyncio.to_thread(self.outbox.enqueue, request, datetime.now(UTC))
        self.outbox.nudge()
        return NotificationResult(queued=len(ids), sent=0)
