"""Sending mail: an interface, and the SMTP implementation over aiosmtplib."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
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
    """Sends over SMTP, keeping the connections it opened for the next messages: a relay
    sending a burst pays for one connection (and its TLS and login), not one per message.

    A connection is used by one send at a time, only on the event loop that opened it, and
    only if it has been idle less than `idle_seconds` (servers close idle connections, RFC
    5321 allows them to after 5 minutes). A kept connection the server has closed anyway is
    found at the first command of the next message, before any of it is sent: that message
    goes over a new connection. After a permanent refusal of one message the connection is kept
    (the envelope was reset); after any other failure it is dropped, never reused."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 20.0
    idle_seconds: float = 30.0
    keep: int = 16
    """Idle connections kept at most (one per relay lane is what a relay uses)."""
    _idle: list[tuple[asyncio.AbstractEventLoop, aiosmtplib.SMTP, float]] = field(
        default_factory=list, compare=False, repr=False
    )

    async def send(self, message: EmailMessage) -> None:
        try:
            await self._send(message)
        except aiosmtplib.SMTPException as exc:
            refused = refusal(exc)
            if refused is not None:
                raise refused from exc
            raise

    async def _send(self, message: EmailMessage) -> None:
        client = self._take()
        if client is not None:
            try:
                # A NOOP first: a connection the server closed while it was idle fails here,
                # before anything of the message is sent, so sending anew cannot double it.
                await client.noop()
            except (aiosmtplib.SMTPException, OSError):
                self._drop(client)
                client = None
        if client is None:
            client = self._client()
            await client.connect()
        try:
            await client.send_message(message)
        except aiosmtplib.SMTPException as exc:
            if refusal(exc) is not None and client.is_connected:
                # One message refused for good: aiosmtplib has reset the envelope (RSET), so
                # the connection carries the next message.
                self._give_back(client)
            else:
                self._drop(client)
            raise
        except BaseException:
            self._drop(client)
            raise
        self._give_back(client)

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            timeout=self.timeout,
        )

    def _take(self) -> aiosmtplib.SMTP | None:
        loop, now = asyncio.get_running_loop(), time.monotonic()
        while self._idle:
            owner, client, since = self._idle.pop()
            if owner is loop and client.is_connected and now - since < self.idle_seconds:
                return client
            if owner is loop:
                self._drop(client)
            # A connection of another (maybe closed) loop cannot be used or closed from here:
            # it is let go, and its transport closes with that loop.
        return None

    def _give_back(self, client: aiosmtplib.SMTP) -> None:
        if len(self._idle) >= self.keep:
            self._drop(client)
            return
        self._idle.append((asyncio.get_running_loop(), client, time.monotonic()))

    @staticmethod
    def _drop(client: aiosmtplib.SMTP) -> None:
        # Without QUIT: the connection may be broken, and a server is not owed one.
        client.close()

    async def close(self) -> None:
        """Say goodbye on the kept connections of this event loop (a relay stopping)."""
        loop = asyncio.get_running_loop()
        mine = [client for owner, client, _ in self._idle if owner is loop]
        self._idle[:] = [kept for kept in self._idle if kept[0] is not loop]
        for client in mine:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
            client.close()
