"""Sending mail: an interface, and the SMTP implementation over aiosmtplib."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
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

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            timeout=self.timeout,
        )

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Mailer]:
        """A mailer sending over one connection, opened at its first send, again after a
        failure, and closed at the end: a relay lane's messages do not each pay for a
        connection (and login)."""
        reused = _Connection(self)
        try:
            yield reused
        finally:
            await reused.close()

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


class _Connection:
    """One SMTP connection, sending message after message (SmtpMailer.connection)."""

    def __init__(self, mailer: SmtpMailer) -> None:
        self._mailer = mailer
        self._smtp: aiosmtplib.SMTP | None = None

    async def send(self, message: EmailMessage) -> None:
        reused = self._smtp is not None and self._smtp.is_connected
        try:
            await self._send(message)
        except aiosmtplib.SMTPServerDisconnected:
            if not reused:
                raise
            # The server closed the connection kept from the message before (idle, restarted):
            # this message gets a new one, as it would have had without the reuse.
            await self._send(message)

    async def _send(self, message: EmailMessage) -> None:
        try:
            if self._smtp is None or not self._smtp.is_connected:
                smtp = self._mailer._client()
                await smtp.connect()
                self._smtp = smtp
            await self._smtp.send_message(message)
        except aiosmtplib.SMTPException as exc:
            refused = refusal(exc)
            if refused is not None:
                # The server reset the envelope: the connection carries the next message.
                raise refused from exc
            self._drop()
            raise
        except BaseException:
            self._drop()  # in an unknown state: the next message opens a new one
            raise

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    async def close(self) -> None:
        """Say goodbye (QUIT) on a connection still open; drop it if it cannot."""
        smtp = self._smtp
        if smtp is None or not smtp.is_connected:
            self._drop()
            return
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self._drop()
