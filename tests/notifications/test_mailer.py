"""The SMTP mailer keeps its connections open between messages (a relay sending a burst pays
one connection, not one per message), and a connection the server has closed meanwhile costs
nothing but a new one: the message still goes out, once."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from notifications.mailer import MailRefused, SmtpMailer
from tests.processes import free_port


class CountingServer:
    """Keeps each message with the SMTP session (connection) it came over."""

    def __init__(self) -> None:
        self.sessions: list[int] = []
        self.subjects: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sessions.append(id(session))
        subject = [line for line in envelope.content.split(b"\r\n") if line.startswith(b"Subject:")]
        self.subjects.append(subject[0].decode()[9:] if subject else "")
        return "250 OK"


def start(handler: CountingServer, port: int) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def server(port: int) -> Iterator[CountingServer]:
    handler = CountingServer()
    controller = start(handler, port)
    try:
        yield handler
    finally:
        controller.stop()


def message(subject: str, to: str = "nora@northwind.example") -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "accord@accord.localhost", to, subject
    m.set_content("text")
    return m


async def test_messages_in_a_row_share_one_connection(server: CountingServer, port: int) -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=port)
    try:
        for i in range(3):
            await mailer.send(message(f"m{i}"))
    finally:
        await mailer.close()
    assert server.subjects == ["m0", "m1", "m2"]
    assert len(set(server.sessions)) == 1


async def test_a_connection_the_server_closed_is_replaced_and_the_message_sent(
    port: int,
) -> None:
    first = CountingServer()
    controller = start(first, port)
    mailer = SmtpMailer(host="127.0.0.1", port=port)
    try:
        await mailer.send(message("before"))
        controller.stop()  # the server goes away with our idle connection
        second = CountingServer()
        controller = start(second, port)
        await mailer.send(message("after"))
        assert first.subjects == ["before"] and second.subjects == ["after"]
    finally:
        await mailer.close()
        controller.stop()


async def test_a_refused_recipient_is_refused_for_good_and_the_next_message_goes_out(
    server: CountingServer, port: int
) -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=port)
    try:
        with pytest.raises(MailRefused, match="550"):
            await mailer.send(message("refused", to="gone@northwind.example"))
        await mailer.send(message("next"))
    finally:
        await mailer.close()
    assert server.subjects == ["next"]
