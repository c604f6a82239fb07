"""Notifications: rendered per event, escaped in HTML, threaded, sent once through the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from accord.application import build_services
from models.enums import DisputeStage, OutboxState, Role, TaskKind, TaskState
from models.payloads import NotificationRequest
from models.tables import OutboxMessage, Task
from notifications import exceptions as notices_of_exceptions
from notifications.outbox import mail_task_key
from notifications.render import SUBJECTS, TemplateCatalog
from tests.cli.test_cli import accord
from tests.conftest import MailCapture, Stack, make_settings
from tests.races import local_activities, scheduled_activities
from tests.web_harness import Browser, make_app

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


DISPUTE_EVENTS = sorted(
    set(SUBJECTS) - {"intake_reply", "alert_raised", "alert_dismissed", "exception_notice"}
)
"""Alert and exception notices and the intake's answers belong to no dispute: tested below."""


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


@pytest.mark.parametrize("name", ["alert_raised", "alert_dismissed"])
def test_an_alert_notice_escapes_the_partner_s_own_objects_and_carries_no_number(
    name: str,
) -> None:
    email = TemplateCatalog().render(
        name,
        {
            "number": "",
            "alert_id": 7,
            "kind": "same_customer",
            "partner": "North\r\nBcc: x@example.com <b>wind</b>",
            "own": [{"object": "registration:DR-1", "customer": "<script>x</script> Acme"}],
            "base_url": "http://accord.test",
        },
    )
    assert "\n" not in email.subject and not email.subject.startswith("[")
    assert "&lt;script&gt;x&lt;/script&gt; Acme" in email.html and "<script>" not in email.html
    assert "registration:DR-1 (<script>x</script> Acme)" in email.text
    assert "alert 7" in email.text


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
    assert (
        "Split" in text.get_content() and "MDF credit of USD 10.00 to contoso" in text.get_content()
    )


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
    assert await outbox.deliver(ids) == 0  # each waits out its backoff...
    assert outbox.send_waiting_now(datetime.now(UTC)) == 2  # ...unless an admin says now
    assert await outbox.deliver(ids) == 2
    assert len(mail.messages) == 2


def outbox_rows(stack: Stack, number: str) -> list[OutboxMessage]:
    with stack.sessions.read() as session:
        return list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.dispute_number == number)
                .order_by(col(OutboxMessage.id))
            ).all()
        )


async def wait_for_row(
    stack: Stack, number: str, predicate: Callable[[OutboxMessage], bool]
) -> OutboxMessage:
    """The dispute's first outbox row matching `predicate`, once the relay has got it there."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        found = [r for r in outbox_rows(stack, number) if predicate(r)]
        if found:
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no such outbox row: {outbox_rows(stack, number)}")
        await asyncio.sleep(0.05)


async def until(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.05)


async def all_sent(stack: Stack, number: str) -> list[OutboxMessage]:
    """The dispute's outbox rows, once every one of them is sent."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        rows = outbox_rows(stack, number)
        if rows and all(m.state is OutboxState.SENT for m in rows):
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not all sent: {[(m.template, m.state) for m in rows]}")
        await asyncio.sleep(0.05)


async def test_a_mail_outage_holds_up_no_dispute_and_the_relay_sends_afterwards(
    stack: Stack,
) -> None:
    # The mail server turns every message away for now (451): filing goes on regardless.
    stack.mail.refuse = True
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    assert state.stage is DisputeStage.TRIAGE
    # Filing notifies the claimant, the respondent and the mediator offered the case: once
    # all three were tried (and none is in flight), the server comes back.
    await wait_for_row(stack, number, lambda m: m.template == "assignment")
    await until(
        lambda: all(
            m.last_error is not None and m.claimed_by is None for m in outbox_rows(stack, number)
        ),
        "every notification of the filing tried once",
    )
    ack = next(m for m in outbox_rows(stack, number) if m.template == "acknowledgement")
    assert "451" in (ack.last_error or "") and ack.next_attempt_at is not None
    assert all(m.state is OutboxState.PENDING for m in outbox_rows(stack, number))
    assert stack.mail.messages == []
    # The server is back; an admin has the waiting mail tried now (the relay would anyway,
    # once the backoff ran out) and the relay sends each message once.
    stack.mail.refuse = False
    stack.services.outbox.send_waiting_now(datetime.now(UTC))
    await stack.mail.wait_for("nora@northwind.example", "filed")
    rows = await all_sent(stack, number)
    sent = [(m["To"], m["Subject"]) for m in stack.mail.messages]
    assert len(sent) == len(rows) == len(set(sent))  # each message once


async def test_the_workflow_only_enqueues_and_the_relay_sends_promptly(stack: Stack) -> None:
    number = (await stack.file()).number
    # Mail goes out with no relay pass asked for: the enqueue woke the worker's relay.
    message = await stack.mail.wait_for("nora@northwind.example", "filed")
    ack = await wait_for_row(stack, number, lambda m: m.template == "acknowledgement")
    assert message["Message-ID"] == ack.message_id
    # The filing's entry put its mail in the outbox in its own activity (RECORD_NOTICES_PATCH,
    # a local one since LOCAL_RECORD_PATCH): no activity sends, or waits on the mail server.
    # The local activity's marker reaches the history when its workflow task completes, which
    # can be after the relay, woken by the entry's commit, has sent the mail: read until then.
    for _ in range(100):
        history = await stack.handle(number).fetch_history()
        if "record_event" in [a["activity_type"] for a in local_activities(history)]:
            break
        await asyncio.sleep(0.1)
    assert "record_event" in [a["activity_type"] for a in local_activities(history)]
    assert "send_notification" not in scheduled_activities(history)


async def test_a_refused_address_fails_its_message_opens_an_admin_task_and_holds_up_nothing(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    stack.mail.gone.add("nora@northwind.example")
    number = (await stack.file()).number
    # The dispute goes on: the respondent is told, a mediator is sought.
    await stack.mail.wait_for("carl@contoso.example", "")
    await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    ack = await wait_for_row(stack, number, lambda m: m.state is OutboxState.FAILED)
    assert ack.template == "acknowledgement" and ack.recipient == "nora@northwind.example"
    assert ack.attempts == 1  # refused for good: not tried again
    assert "550" in (ack.last_error or "") and "no such mailbox" in (ack.last_error or "")
    assert ack.id is not None
    task = task_row(stack, mail_task_key(number, ack.id))
    assert task is not None and task.state is TaskState.OPEN
    assert task.kind is TaskKind.RESOLVE_MAIL and task.assignee_role is Role.ADMIN
    assert task.dispute_number == number and "nora@northwind.example" in task.title

    # The dispute page shows it to admins (not to the parties), with what the server said.
    browser = Browser(make_app(stack))
    try:
        await browser.sign_in("alex.admin@vendor.example")
        page = (await browser.get(f"/disputes/{number}")).text
        assert "Mail not delivered" in page and "no such mailbox here" in page
        inbox = (await browser.get("/inbox")).text
        assert (
            "Resolve undelivered mail: mail refused: acknowledgement to nora" in inbox
            and f"/disputes/{number}" in inbox
        )
        # Sent again while the address is still refused: it fails again, the task reopens.
        done = await browser.post(f"/disputes/{number}/mail/{ack.id}/resend", {})
        assert done.status_code == 303
        await wait_for_row(stack, number, lambda m: m.id == ack.id and m.attempts == 2)
        again = await wait_for_row(
            stack, number, lambda m: m.id == ack.id and m.state is OutboxState.FAILED
        )
        assert again.attempts == 2
        reopened = task_row(stack, mail_task_key(number, ack.id))
        assert reopened is not None and reopened.state is TaskState.OPEN
        # The mailbox exists now: sent again, it arrives, with the Message-ID it always had.
        stack.mail.gone.clear()
        await browser.post(f"/disputes/{number}/mail/{ack.id}/resend", {})
        arrived = await stack.mail.wait_for("nora@northwind.example", "filed")
        assert arrived["Message-ID"] == ack.message_id
        await wait_for_row(stack, number, lambda m: m.id == ack.id and m.state is OutboxState.SENT)
        closed = task_row(stack, mail_task_key(number, ack.id))
        assert closed is not None and closed.state is TaskState.DONE
        page = (await browser.get(f"/disputes/{number}")).text
        assert "Mail not delivered" not in page
        # Sent is sent: a second "send again" is refused, naming the message and why.
        refused = await browser.post(f"/disputes/{number}/mail/{ack.id}/resend", {})
        assert refused.status_code == 422 and "it was sent at" in refused.text
        # Another dispute's message through this one's address: not found.
        wrong = await browser.post(f"/disputes/DSP-2026-999999/mail/{ack.id}/resend", {})
        assert wrong.status_code == 404
        # An id no column could hold is just unknown (not a database error).
        huge = await browser.post(f"/disputes/{number}/mail/{2**64}/resend", {})
        assert huge.status_code == 404

        await browser.sign_in("nora@northwind.example")
        assert (
            await browser.post(f"/disputes/{number}/mail/{ack.id}/dismiss", {})
        ).status_code == 403
    finally:
        await browser.close()
    assert len(stack.mail.to("nora@northwind.example")) == 1


def task_row(stack: Stack, key: str) -> Task | None:
    with stack.sessions.read() as session:
        return session.get(Task, key)


async def test_an_admin_lists_resends_and_dismisses_refused_mail_from_the_command_line(
    stack: Stack,
) -> None:
    stack.mail.gone.update({"nora@northwind.example", "carl@contoso.example"})
    number = (await stack.file()).number
    failed = [
        await wait_for_row(
            stack, number, lambda m, t=t: m.template == t and m.state is OutboxState.FAILED
        )
        for t in ("acknowledgement", "respondent_notice")
    ]
    ack, notice = failed
    code, out = await accord(stack, "outbox", "list")
    assert code == 0 and f"{ack.id:>6}  {number}" in out and "550" in out
    code, out = await accord(
        stack, "outbox", "dismiss", str(notice.id), "--as", "nora@northwind.example"
    )
    assert code == 2 and "only admins" in out
    code, out = await accord(stack, "outbox", "dismiss", str(notice.id), "--as", "alex.admin")
    assert code == 0 and "dismissed" in out, out
    code, out = await accord(stack, "outbox", "dismiss", str(notice.id), "--as", "alex.admin")
    assert code == 2 and f"message {notice.id}: cannot dismiss it: it was dismissed already" in out
    for unknown in ("999999", str(2**64), "0"):
        code, out = await accord(stack, "outbox", "resend", unknown, "--as", "alex.admin")
        assert code == 2 and f"message {unknown}: no such message in the outbox" in out, out
    assert notice.id is not None and ack.id is not None
    dismissed = task_row(stack, mail_task_key(number, notice.id))
    assert dismissed is not None and dismissed.state is TaskState.CANCELLED
    stack.mail.gone.clear()
    code, out = await accord(stack, "outbox", "resend", str(ack.id), "--as", "alex.admin")
    assert code == 0 and "queued to be sent again" in out, out
    # Another process asked: this worker's relay finds it on its next poll.
    await stack.mail.wait_for("nora@northwind.example", "filed")
    assert stack.mail.to("carl@contoso.example") == []


async def test_each_entry_of_a_settled_dispute_carries_its_mail_into_the_outbox(
    stack: Stack,
) -> None:
    """Filing to settlement: every email is enqueued by the audit entry it belongs to, keyed on
    that entry's step, and sent once; no send_notification activity runs."""
    from models.payloads import RespondToOffer
    from models.tables import DisputeEvent
    from tests.workflows.test_dispute_paths import in_mediation, split_offer
    from workflows.dispute import DisputeWorkflow

    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    offer = await handle.execute_update(
        DisputeWorkflow.propose_settlement, split_offer(stack, mediator)
    )
    for who in ("nora@northwind.example", "carl@contoso.example"):
        await handle.execute_update(
            DisputeWorkflow.respond_to_offer,
            RespondToOffer(actor=stack.actor(who), offer_id=offer.reference or "", accept=True),
        )
    await handle.result()
    rows = await all_sent(stack, number)
    with stack.sessions.read() as session:
        steps = {
            e.step: e.action
            for e in session.exec(
                select(DisputeEvent).where(DisputeEvent.dispute_number == number)
            ).all()
        }
    by_entry = {(steps[int(r.key.split(":")[1])], r.template) for r in rows}
    assert {
        ("filed", "acknowledgement"),
        ("filed", "respondent_notice"),
        ("mediator_offered", "assignment"),
        ("settlement_proposed", "offer"),
        ("settled", "settlement"),
        ("closed", "closure"),
    } <= by_entry, by_entry
    sent = [(m["To"], m["Message-ID"]) for m in stack.mail.messages]
    assert len(sent) == len(set(sent))  # each email once
    history = await handle.fetch_history()
    scheduled = {
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    assert "send_notification" not in scheduled


EXCEPTION_CONTEXT = {
    "number": "",
    "exception": "EXC-4",
    "headline": "approved",
    "partner": "Contoso <script>x</script>\r\nBcc: all@example.com",
    "clause": "RoE 4.2",
    "rule": "Exclusive territories are served only by their holder",
    "scope": "territory <b>US-NY-METRO</b>",
    "until": "2027-02-01",
    "objections_close_at": "2026-12-14 17:00 UTC",
    "decision_due_at": "2026-12-28 17:00 UTC",
    "decision_reason": "<i>The customer asked</i> for Contoso.",
    "base_url": "http://accord.test",
}


@pytest.mark.parametrize("event", list(notices_of_exceptions.HEADLINES))
@pytest.mark.parametrize("audience", ["beneficiary", "affected", "panel", "chair", "admins"])
def test_an_exception_notice_escapes_what_people_wrote_and_carries_no_number(
    event: str, audience: str
) -> None:
    email = TemplateCatalog().render(
        "exception_notice",
        {
            **EXCEPTION_CONTEXT,
            "event": event,
            "audience": audience,
            "headline": notices_of_exceptions.HEADLINES[event],
        },
    )
    assert "\n" not in email.subject and email.subject.startswith("Exception EXC-4 to RoE 4.2")
    assert "<script>" not in email.html and "<b>US-NY-METRO</b>" not in email.html
    assert "<i>The customer" not in email.html
    assert "EXC-4" in email.text and "DSP-" not in email.text
    if event in ("approved", "denied"):
        assert "<i>The customer asked</i> for Contoso." in email.text  # the chair's reasons
