"""Reading a received email: who sent it, what it answers, its new text, its attachments.

Tolerant by design: mail arrives with broken encodings, odd MIME and missing headers, and
each of those still yields a result (with the damage noted), never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

import nh3
import quotequail  # type: ignore[import-untyped]
from inscriptis import get_text  # type: ignore[import-untyped]
from mailparser_reply import EmailReplyParser  # type: ignore[import-untyped]

from models.text import REPLACEMENT, clean, problem

NUMBER = re.compile(r"\bDSP-\d{4}-\d{6}\b")
MAX_TEXT = 50_000


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class ReadMail:
    sender: str
    """The From address, lower-case ('' when there is none)."""
    sender_name: str
    subject: str
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    text: str
    """The whole body as text (HTML converted)."""
    reply_text: str
    """The new part only: quoted history and signature stripped, for display."""
    html: str | None
    """The HTML body, sanitised, when there was one."""
    attachments: list[Attachment] = field(default_factory=list)
    automatic: str | None = None
    """Why this is an auto-reply, bounce or list mail, when it is one."""
    sender_problem: str | None = None
    """Why the sender is not one address (two From headers, two addresses in one), if not."""
    headers: dict[str, list[str]] = field(default_factory=dict)
    cleaned: list[str] = field(default_factory=list)
    """What was replaced because it cannot be stored (models.text.clean), per field: told to
    the sender and the admins, since a message cannot be refused like a form."""

    def numbers(self) -> list[str]:
        """Dispute numbers named in the subject."""
        return NUMBER.findall(self.subject)


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except MemoryError:  # over the reader's memory budget: the attempt fails, not the header
        raise
    except Exception:  # a malformed header that the policy cannot even fold
        return ""
    return str(value or "").strip()


def _ids(value: str) -> list[str]:
    # An id holding what a header or a column cannot (a NUL, a control character) is no
    # message's id: dropped, as if absent, so it is never stored nor answered under.
    return [i for i in re.findall(r"<[^<>\s]+>", value) if problem(i, multiline=False) is None]


def automatic_reason(message: Message) -> str | None:
    """RFC 3834 and the usual conventions: never answer machines."""
    # "auto-replied; owner-email=..." carries parameters; only the keyword counts.
    auto = _header(message, "Auto-Submitted").lower().split(";")[0].strip()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = _header(message, "Precedence").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if _header(message, header):
            return f"{header} present"
    if _header(message, "List-Id") or _header(message, "List-Unsubscribe"):
        return "mailing-list message"
    content_type = message.get_content_type()
    if content_type == "multipart/report":
        return "delivery report (bounce)"
    sender = parseaddr(_header(message, "From"))[1].lower()
    if (
        sender.startswith(("mailer-daemon@", "postmaster@"))
        or _header(message, "Return-Path") == "<>"
    ):
        return "bounce from a mail system"
    return None


def _text_of(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, UnicodeError, AssertionError, KeyError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


MAX_AUTHENTICATION_RESULTS = 20
"""Our MTA stamps one; a message carrying thousands is not worth parsing them all."""


def _sender_problem(message: Message) -> str | None:
    """More than one sender cannot be attributed to one party: the message is held."""
    try:
        values = [str(v) for v in message.get_all("From", []) or []]
    except Exception:  # unfoldable: parseaddr below finds no sender, which is held too
        return None
    addresses = [a for _, a in getaddresses(values) if a]
    if len(values) > 1:
        return f"more than one sender: {len(values)} From headers"
    if len(addresses) > 1:
        return f"more than one sender: {len(addresses)} addresses in From"
    return None


def _leaves(part: Message) -> Iterator[Message]:
    """The parts to read, depth first; a forwarded message (message/rfc822) is one part, kept
    whole, not read as if its text were the sender's."""
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        yield part
        return
    payload = part.get_payload()
    for sub in payload if isinstance(payload, list) else []:
        if isinstance(sub, Message):
            yield from _leaves(sub)


def _forwarded(part: Message, position: int) -> Attachment:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    try:
        data = inner.as_bytes() if isinstance(inner, Message) else b""
    except Exception:  # headers the generator cannot fold: keep the text as parsed
        data = str(inner).encode("utf-8", "replace")
    name = part.get_filename() or f"forwarded-message-{position}.eml"
    return Attachment(filename=name, content_type="message/rfc822", data=data)


def read(raw: bytes) -> ReadMail:
    message = parse(raw)
    cleaned: list[str] = []

    def kept(label: str, value: str, *, multiline: bool) -> str:
        # The parser already shows bytes that are not valid in the declared (or assumed)
        # encoding as U+FFFD, silently: told like the characters cleaned here.
        broken = value.count(REPLACEMENT)
        if broken:
            cleaned.append(
                f"{label}: {broken} byte{'s' if broken > 1 else ''} not valid in the message's"
                f" encoding replaced by {REPLACEMENT}"
            )
        value, note = clean(value, multiline=multiline)
        if note is not None:
            cleaned.append(f"{label}: {note}")
        return value

    name, address = parseaddr(_header(message, "From"))
    text_part: str | None = None
    html_part: str | None = None
    attachments: list[Attachment] = []
    leaves = [message] if message.get_content_type() == "message/rfc822" else _leaves(message)
    for part in leaves:
        if part is not message and part.get_content_type() == "message/rfc822":
            attachments.append(_forwarded(part, len(attachments) + 1))
            continue
        if part.is_multipart():
            continue
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        content_type = part.get_content_type()
        if disposition == "attachment" or (filename and disposition != "inline"):
            data = part.get_payload(decode=True)
            attachments.append(
                Attachment(
                    filename=kept("attachment name", filename or "attachment", multiline=False),
                    content_type=content_type,
                    data=data if isinstance(data, bytes) else b"",
                )
            )
        elif content_type == "text/plain" and text_part is None:
            text_part = _text_of(part)
        elif content_type == "text/html" and html_part is None:
            html_part = _text_of(part)
    # Cleaned before anything reads them, so every part derived (the reply, the HTML's text)
    # is clean too and the damage is told once.
    if html_part is not None:
        html_part = kept("body", html_part, multiline=True)
    if text_part is not None:
        text_part = kept("body", text_part, multiline=True)
    text = text_part if text_part is not None else (get_text(html_part) if html_part else "")
    text = text[:MAX_TEXT]
    new_part = text
    if text_part is None and html_part:
        # HTML-only mail: cut the quoted history in the HTML (quotequail) before reading it.
        try:
            shown = "".join(h for keep, h in quotequail.quote_html(html_part) if keep)
            new_part = get_text(shown)[:MAX_TEXT] or text
        except MemoryError:
            raise
        except Exception:  # heuristic; the whole text is the fallback
            new_part = text
    try:
        # The latest reply's body: without the quoted history, the signature or disclaimers.
        replies = EmailReplyParser(languages=["en", "de", "fr"]).read(text=new_part).replies
        reply = replies[0].body if replies else new_part
    except MemoryError:
        raise
    except Exception:  # the reply parser is heuristic; the full text is the fallback
        reply = new_part
    return ReadMail(
        sender=kept("sender", address.lower(), multiline=False),
        sender_name=kept("sender name", name, multiline=False),
        subject=kept("subject", _header(message, "Subject")[:400], multiline=False),
        message_id=next(iter(_ids(_header(message, "Message-ID"))), None),
        in_reply_to=_ids(_header(message, "In-Reply-To")),
        references=_ids(_header(message, "References")),
        text=text,
        reply_text=(reply or text).strip()[:MAX_TEXT],
        html=nh3.clean(html_part) if html_part else None,
        attachments=attachments,
        automatic=automatic_reason(message),
        sender_problem=_sender_problem(message),
        headers={
            "authentication-results": [
                str(v)
                for v in (message.get_all("Authentication-Results", []) or [])[
                    :MAX_AUTHENTICATION_RESULTS
                ]
            ],
            "to": [a for _, a in getaddresses([_header(message, "To")]) if a],
        },
        cleaned=cleaned,
    )
