"""Sending mail: an interface, and the SMTP implementation over aiosmtplib."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib


class MailRefused(Exception):
    """The mail server refused this message for good (a 5xx answer to its recipient or its
    content): sending it again unchanged would be refused again.

    Any other exception from `Mailer.send` is temporary (4xx, connection refused, timeout, and
    also a 5xx to our sender address or our login, which would refuse every message alike:
    that is the server's set-up, to be fixed and retried, not one message's fault)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def _permanent(code: int) -> bool:
    return 500 <= code < 600


def refusal(exc: Exception) -> MailRefused | None:
    """The permanent refusal `exc` stands for, if it is one."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if codes and all(_permanent(c) for c in codes):
            return MailRefused(
                "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            )
        return None
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused) and _permanent(exc.code):
        return MailRefused(f"{exc.recipient}: {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPDataError) and _permanent(exc.code):
        return MailRefused(f"message refused: {exc.code} {exc.message}")
    return None


@dataclass(frozen=True)
class SmtpMailer:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 20.0

    async def send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPException as exc:
            refused = refusal(exc)
            if refused is not None:
                raise refused from exc
            raise
