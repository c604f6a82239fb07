"""The hostile mail of the run: what the email intake must survive while disputes go on."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import aiosmtplib

from tests.intake_corpus import header_bomb

HEADER_BOMB = "encoded-word header bomb"
"""The one hostile message that must end failed (over its reading budget), shown to admins."""

STARTING_SECONDS = 180.0
"""How long a message is offered while the intake may still be starting: on a loaded machine
its imports alone take more than ten seconds (CI once gave up after ten, with none sent)."""


def _plain(sender: str, to: str, subject: str, body: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return message


def hostile_mail(to: str, run: str) -> list[tuple[str, str, bytes]]:
    """(name, envelope sender, raw message) for each hostile message."""
    nora = "nora@northwind.example"
    found: list[tuple[str, str, bytes]] = []

    # ~400 KB of encoded words in one header, slow to decode: the intake tests' own bomb.
    found.append((HEADER_BOMB, nora, header_bomb(400_000)))

    found.append(
        (
            "NUL in the subject",
            nora,
            _plain(nora, to, "Deal \x00 conflict", "A NUL above.", f"<nul.{run}@n.example>")
            .as_bytes()
            .replace(b"Deal  conflict", b"Deal \x00 conflict"),
        )
    )
    found.append(
        (
            "bounce (MAIL FROM:<>)",
            "",
            _plain(
                "MAILER-DAEMON@northwind.example",
                to,
                "Undelivered Mail Returned to Sender",
                "delivery failed",
                f"<bounce.{run}@n.example>",
            ).as_bytes(),
        )
    )
    two_from = (
        f"From: {nora}\r\nFrom: carl@contoso.example\r\nTo: {to}\r\nSubject: two senders\r\n"
        f"Message-ID: <twofrom.{run}@n.example>\r\n\r\nWho sent this?\r\n"
    ).encode()
    found.append(("two From headers", nora, two_from))
    found.append(
        (
            "two addresses in From",
            nora,
            _plain(
                f"{nora}, carl@contoso.example",
                to,
                "two addresses",
                "Which one?",
                f"<twoaddr.{run}@n.example>",
            ).as_bytes(),
        )
    )
    inner = _plain("carl@contoso.example", nora, "our registration", "We got there first.", "<i@c>")
    forwarded = MIMEMultipart()
    forwarded["From"] = nora
    forwarded["To"] = to
    forwarded["Subject"] = "Fwd: our registration"
    forwarded["Message-ID"] = f"<fwd.{run}@n.example>"
    forwarded.attach(MIMEText("Forwarding what Contoso wrote to us."))
    forwarded.attach(MIMEMessage(inner))
    found.append(("forwarded message/rfc822", nora, forwarded.as_bytes()))
    first = _plain(nora, to, "first", "the first message", f"<reused.{run}@n.example>")
    second = _plain(nora, to, "second", "a different one", f"<reused.{run}@n.example>")
    found.append(("Message-ID reused (first)", nora, first.as_bytes()))
    found.append(("Message-ID reused (second)", nora, second.as_bytes()))
    found.append(
        (
            "bytes that are not UTF-8",
            nora,
            b"From: "
            + nora.encode()
            + b"\r\nTo: "
            + to.encode()
            + b"\r\nSubject: caf\xe9\r\nContent-Type: text/plain; charset=utf-8"
            + b"\r\n\r\n\xff\xfe\r\n",
        )
    )
    return found


async def send_hostile(host: str, port: int, to: str, run: str) -> list[str]:
    """Send each hostile message to the intake; returns the names of those it accepted."""
    loop = asyncio.get_running_loop()
    accepted: list[str] = []
    for name, sender, raw in hostile_mail(to, run):
        deadline = loop.time() + STARTING_SECONDS
        while True:
            try:
                async with aiosmtplib.SMTP(hostname=host, port=port, timeout=60) as smtp:
                    await smtp.sendmail(sender, [to], raw)  # "" sends MAIL FROM:<>
            except aiosmtplib.SMTPResponseException as refusal:
                if refusal.code >= 500:
                    break  # turned away at the door is a fine answer too
                # 4xx: "try again later" (the database is away, say), as a sending MTA would.
                if loop.time() > deadline:
                    break
                await asyncio.sleep(0.5)
                continue
            except (aiosmtplib.SMTPException, OSError):
                if loop.time() > deadline:
                    break
                await asyncio.sleep(0.2)
                continue
            accepted.append(name)
            break
    return accepted
