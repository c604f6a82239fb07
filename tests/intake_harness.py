"""The email intake as a test drives it: the SMTP receiver and the processor behind it on a
test's stack, and the messages partners send."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING

import aiosmtplib

from intake.processor import IntakeProcessor
from intake.receiver import start_receiver
from models.tables import InboundMessage
from tests.processes import free_port

if TYPE_CHECKING:  # the fixtures in conftest use Intake: conftest imports this module
    from tests.conftest import Stack


CLAIMANT = "nora@northwind.example"


RESPONDENT = "carl@contoso.example"


FILING_BODY = """Respondent: Contoso Systems Ltd
Category: deal registration
Deal: DR-2026-0042
Amount: 125,000 USD
Occurred: {occurred}
Remedy: Registration confirmed to Northwind

We registered DR-2026-0042 for Acme on 2 November; Contoso registered it a week later.
"""


class Intake:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.processor = IntakeProcessor(stack.services, stack.client)
        self.wake = asyncio.Event()
        self.port = free_port()
        self.controller = start_receiver(
            self.processor, self.wake, "127.0.0.1", self.port, stack.settings.intake_max_bytes
        )

    async def send(self, message: EmailMessage) -> str:
        """Deliver over SMTP; returns the server's answer to DATA."""
        errors, answer = await aiosmtplib.send(message, hostname="127.0.0.1", port=self.port)
        assert not errors
        return answer

    async def deliver(self, message: EmailMessage) -> InboundMessage:
        answer = await self.send(message)
        assert answer.startswith("2.0.0 stored as"), answer
        await self.processor.process_pending()
        inbound_id = int(answer.split()[3])
        with self.stack.sessions.read() as session:
            row = session.get(InboundMessage, inbound_id)
        assert row is not None
        return row


def mail(
    sender: str, subject: str, body: str, *, headers: dict[str, str] | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "disputes@accord.localhost"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="sender.example")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message


def filing_mail(occurred: str = "") -> EmailMessage:
    occurred = occurred or (date.today() - timedelta(days=5)).isoformat()
    message = mail(
        CLAIMANT,
        "Contoso registered our Acme deal after we did",
        FILING_BODY.format(occurred=occurred),
    )
    message.add_attachment(
        b"%PDF-1.4 registration", maintype="application", subtype="pdf", filename="reg.pdf"
    )
    return message
