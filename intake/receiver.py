"""The SMTP receiver for the intake address: a message is stored before the server answers
250, so once the sending server has its answer nothing can lose the message."""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.controller import Controller

from intake.processor import NULL_RETURN_PATH, IntakeProcessor


class IntakeHandler:
    def __init__(
        self, processor: IntakeProcessor, wake: asyncio.Event, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.processor = processor
        self.wake = wake
        self.loop = loop

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        # SMTP always names a sender; an empty one is the null return path `MAIL FROM:<>`.
        mail_from = str(envelope.mail_from or "") or NULL_RETURN_PATH
        try:
            inbound_id, new = await asyncio.to_thread(
                self.processor.store,
                raw,
                source="smtp",
                envelope_from=mail_from,
                envelope_to=tuple(str(r) for r in envelope.rcpt_tos),
                # What SPF checks, when Accord verifies senders itself (at processing time).
                peer_ip=str(session.peer[0]) if isinstance(session.peer, tuple) else "",
                helo=str(session.host_name or ""),
            )
        except Exception:  # not stored: the sender must keep it and try again
            return "451 4.3.0 could not store the message; try again later"
        # The processor runs on the stack's loop; the receiver on its own thread.
        self.loop.call_soon_threadsafe(self.wake.set)
        return f"250 2.0.0 stored as {inbound_id}" + ("" if new else " (already received)")


def start_receiver(
    processor: IntakeProcessor, wake: asyncio.Event, host: str, port: int, max_bytes: int
) -> Controller:
    handler = IntakeHandler(processor, wake, asyncio.get_running_loop())
    controller = Controller(handler, hostname=host, port=port, data_size_limit=max_bytes)
    controller.start()
    return controller
