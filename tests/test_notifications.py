"""Notifications: rendered per event, escaped in HTML, threaded, sent once through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from accord.runtime import build_services
from models.enums import DisputeStage, OutboxState
from models.payloads import NotificationRequest
from models.tables import OutboxMessage
from notifications.render import SUBJECTS, TemplateCatalog
from tests.conftest import MailCapture, Stack, make_settings

CONTEXT = {
    "number": "DSP-2026-000007",
    "category": "pricing",
    "summary": "Undercut on <script>alert('x')</script> & friends",
    "claimant": "Northwind Traders",
    "respondents": ["Contoso Systems"],
    "stage": "mediation",
    "mediator": "Maria Lopez",
    "base_url": "http://accord.test",
    "deadline": "2026-12-10T22:00:00+00:00",
    "reason": "the mediation deadline passed",
    "outcome": "settled",
    "request_id": "info-1",
    "questions": "Why?",
    "explanation": "5 business days",
    "offer_id": "offer-1",
    "terms": "Split",
    "remedies": [
        {"kind": "mdf_credit", "partner_id": "contoso", "amount": "10.00", "currency": "USD"}
    ],
    "partner_id": "contoso",
    "comment": "",
    "percent": 50,
    "purpose": "mediation",
    "linked_summary": "Again",
    "kind": "commission_split",
    "round": 1,
    "rationale": "Registration came first.",
    "grounds": "The registration date was wrong.",
    "position": 0,
    "adapter": "ledger",
    "reference": "ledger_commission_split:1",
}


DISPUTE_EVENTS = sorted(set(SUBJECTS) - {"intake_reply"})


@pytest.mark.parametrize("name", DISPUTE_EVENTS)
def test_every_event_has_a_text_and_an_escaped_html_part(name: str) -> None:
    email = TemplateCatalog().render(name, CONTEXT)
    assert email.subject.startswith("[DSP-2026-000007] ")
    assert "DSP-2026-000007" in email.text and "DSP-2026-000007" in email.html
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "<script>alert('x')</script> & friends" in email.text  # plain text stays readable


def test_an_intake_reply_escapes_what_the_sender_wrote_and_adds_no_header() -> None:
    email = TemplateCatalog().render(
        "intake_reply",
        {
            "number": "",
            "subject": "Deal <script>x</script>\r\nBcc: everyone@example.com",
            "outcome": "incomplete",
            "missing": ["Respondent: no partner matches '<b>Acme</b>'"],
            "errors": [],
            "refused_attachments": [],
            "form_url": "http://accord.test/disputes/new?summary=Deal",
            "intake_address": "disputes@accord.test",
            "base_url": "http://accord.test",
        },
    )
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.subject.startswith("Re: Deal")  # no dispute yet: no number prefix
    assert "&lt;b&gt;Acme&lt;/b&gt;" in email.html and "<b>Acme</b>" not in email.html
    assert "Respondent: no partner matches '<b>Acme</b>'" in email.text


def test_subject_cannot_inject_header_lines() -> None:
    email = TemplateCatalog().render(
        "offer", {**CONTEXT, "offer_id": "x\r\nBcc: victim@example.com"}
    )
    assert "\n" not in email.subject and "\r" not in email.subject


def request(key: str = "DSP-2026-000007:3:offer") -> NotificationRequest:
    return NotificationRequest(
        key=key,
        number="DSP-2026-000007",
        template="offer",
        recipients=("nora@northwind.example", "carl@contoso.example"),
        context=CONTEXT,
    )


async def test_outbox_sends_once_per_recipient_across_retries(
    database_url: str, smtp: tuple[MailCapture, int], tmp_path
) -> None:
    mail, port = smtp
    services = build_services(make_settings(database_url, port, tmp_path))
    outbox = services.outbox
    now = datetime.now(UTC)

    ids = outbox.enqueue(request(), now)
    assert len(ids) == 2
    assert await outbox.deliver(ids) == 2
    # The activity is retried: the same key enqueues nothing new and sends nothing.
    assert outbox.enqueue(request(), now) == []
    assert await outbox.deliver(ids) == 0
    assert len(mail.messages) == 2

    nora = mail.to("nora@northwind.example")[0]
    carl = mail.to("carl@contoso.example")[0]
    assert nora["In-Reply-To"] == "<DSP-2026-000007@accord.localhost>"
    assert nora["References"] == "<DSP-2026-000007@accord.localhost>"
    assert nora["Message-ID"] != carl["Message-ID"]
    assert nora["Message-ID"].endswith("@accord.localhost>")
    assert nora["Auto-Submitted"] == "auto-generated"
    html = nora.get_body(preferencelist=("html",))
    text = nora.get_body(preferencelist=("plain",))
    assert html is not None and text is not None
    assert "&lt;script&gt;" in html.get_content()
    assert "<script>alert" in text.get_content()
    assert "Split" in text.get_content() and "mdf_credit" in text.get_content()


async def test_a_failed_send_stays_in_the_outbox_and_is_sent_later(
    database_url: str, smtp: tuple[MailCapture, int], tmp_path
) -> None:
    mail, port = smtp
    services = build_services(make_settings(database_url, port, tmp_path))
    outbox = services.outbox
    mail.refuse = True
    ids = outbox.enqueue(request("DSP-2026-000007:4:offer"), datetime.now(UTC))
    with pytest.raises(RuntimeError, match="could not send"):
        await outbox.deliver(ids)
    with services.sessions.read() as session:
        rows = [session.get(OutboxMessage, i) for i in ids]
        assert all(r is not None and r.state is OutboxState.PENDING and r.last_error for r in rows)
    mail.refuse = False
    assert await outbox.deliver(ids) == 2
    assert len(mail.messages) == 2


async def test_a_mail_outage_holds_up_no_dispute_and_the_relay_sends_afterwards(
    stack: Stack,
) -> None:
    # The mail server turns every message away for now (451): filing goes on regardless.
    stack.mail.refuse = True
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    assert state.stage is DisputeStage.TRIAGE
    with stack.sessions.read() as session:
        pending = session.exec(
            select(OutboxMessage).where(OutboxMessage.dispute_number == number)
        ).all()
    assert pending and all(m.state is OutboxState.PENDING for m in pending)
    assert next(m for m in pending if m.template == "acknowledgement").last_error
    assert stack.mail.messages == []
    # The server is back: the relay (the worker runs it every minute) sends each message once.
    stack.mail.refuse = False
    await stack.services.outbox.relay_once(older_than=timedelta(0))
    await stack.mail.wait_for("nora@northwind.example", "filed")
    with stack.sessions.read() as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.dispute_number == number)
        ).all()
    assert all(m.state is OutboxState.SENT for m in rows)
    sent = [(m["To"], m["Subject"]) for m in stack.mail.messages]
    assert len(sent) == len(rows) == len(set(sent))  # each message once
