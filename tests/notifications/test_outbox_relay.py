"""The outbox relay: each message claimed, sent and marked on its own, once, by one relay.

Two relays share a backlog on a slow real SMTP server; a slow send keeps its lease; a relay
that dies mid-send leaves its message to the other; refusals fail for good (5xx) or wait out
a growing backoff (4xx, no server). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select
from temporalio.client import Client

from accord.application import Services, build_services
from accord.runtime.wiring import build_worker
from chaos.processes import DatabaseOutage
from models.enums import DisputeStage, OutboxState
from models.payloads import NotificationRequest
from models.tables import Dispute, OutboxMessage
from notifications.mailer import refusal
from notifications.outbox import OutboxRefused, Outcome, RelayPolicy
from tests.activities.test_activities import add_dispute
from tests.conftest import CONVERTER, Stack, make_settings, seed
from tests.processes import free_port

CONTEXT: dict[str, object] = {
    "number": "DSP-2026-000007",
    "category": "pricing",
    "summary": "Undercut",
    "claimant": "Northwind Traders",
    "respondents": ["Contoso Systems"],
    "stage": "closed",
    "mediator": None,
    "outcome": "settled",
    "reason": "both sides agreed",
}


class SlowServer:
    """A real SMTP server that takes `delay` seconds over each message, refuses the mailboxes
    in `gone` for good, and can hold a transfer until `hold` is released."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[str] = []
        self.messages: list[EmailMessage] = []
        self.gone: set[str] = set()
        self.hold: threading.Event | None = None
        self.holding = threading.Event()
        self.accept_held = False
        """The held transfer is accepted when released (else it is cut off, 451)."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.gone:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        hold = self.hold
        if hold is not None:
            self.hold = None  # only the first transfer is held
            self.holding.set()
            while not hold.is_set():
                await asyncio.sleep(0.02)
            if not self.accept_held:
                return "451 transfer cut off"  # the client is gone by now: nothing was accepted
        await asyncio.sleep(self.delay)  # on the server's own loop: transfers overlap
        parsed = BytesParser(policy=email_policy.default).parsebytes(envelope.content)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        for line in envelope.content.decode().splitlines():
            if line.lower().startswith("message-id:"):
                self.received.append(line.split(":", 1)[1].strip())
                break
        return "250 OK"


@contextlib.contextmanager
def serving(handler: SlowServer) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def relay(database_url: str, port: int, tmp_path: Path, **policy: Any) -> Services:
    """A relay's own services (its own engine and sessions, as another worker would have).

    Merging mail to one recipient on one dispute is off unless a test asks for it: these
    tests send a backlog of one dispute's messages to one person, each on its own."""
    services = build_services(make_settings(database_url, port, tmp_path))
    policy.setdefault("coalesce", timedelta(0))
    services.outbox.policy = replace(services.outbox.policy, **policy)
    return services


def notification(i: int, to: str = "nora@northwind.example") -> NotificationRequest:
    return NotificationRequest(
        key=f"DSP-2026-000007:{i}:closure",
        number="DSP-2026-000007",
        template="closure",
        recipients=(to,),
        context=CONTEXT,
    )


def rows(services: Services) -> list[OutboxMessage]:
    with services.sessions.read() as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())  # type: ignore[arg-type]


async def test_two_relays_on_a_slow_server_send_each_message_once(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer(delay=0.05)
    with serving(server) as port:
        one = relay(database_url, port, tmp_path)
        two = relay(database_url, port, tmp_path)
        backlog = 300
        for i in range(backlog):
            one.outbox.enqueue(notification(i), datetime.now(UTC))
        sent = await asyncio.wait_for(
            asyncio.gather(one.outbox.relay_once(), two.outbox.relay_once()), 120
        )
    assert sum(sent) == backlog
    assert all(sent), f"both relays should have had a share: {sent}"
    assert len(server.received) == backlog, Counter(server.received).most_common(3)
    assert len(set(server.received)) == backlog
    stored = rows(one)
    assert all(r.state is OutboxState.SENT and r.attempts == 1 for r in stored)
    assert {r.message_id for r in stored} == set(server.received)


async def test_a_slow_send_keeps_its_lease_and_no_other_relay_sends_it(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer()
    server.hold = release = threading.Event()
    lease = timedelta(seconds=1)
    with serving(server) as port:
        one = relay(database_url, port, tmp_path, lease=lease)
        two = relay(database_url, port, tmp_path, lease=lease)
        [row_id] = one.outbox.enqueue(notification(1), datetime.now(UTC))
        claim = one.outbox.claim(datetime.now(UTC))
        assert claim is not None
        sending = asyncio.create_task(one.outbox.send(claim))
        await asyncio.to_thread(server.holding.wait, 10)
        claimed_at = rows(one)[0].claimed_at
        assert claimed_at is not None
        # Twice the lease goes by with the transfer held: the claim is renewed meanwhile.
        while datetime.now(UTC) < claimed_at + 2 * lease:
            assert await two.outbox.relay_once() == 0
            await asyncio.sleep(0.1)
        renewed = rows(one)[0].claimed_at
        assert renewed is not None and renewed > claimed_at + lease / 2
        assert two.outbox.claim(datetime.now(UTC)) is None
        release.set()
        outcome, _ = await sending
    # The held transfer was cut off (451): the message waits out its backoff, held by nobody.
    assert outcome is Outcome.RETRY
    [row] = rows(one)
    assert row.id == row_id and row.state is OutboxState.PENDING and row.claimed_by is None
    assert row.attempts == 1 and server.received == []


async def test_a_relay_killed_mid_send_leaves_its_message_to_another(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer()
    server.hold = release = threading.Event()
    # Long enough that no pass below outlives it on a loaded machine (one did with a second's
    # lease in CI, and took the fifth too); its running out is then a clock moved on, below.
    lease = timedelta(seconds=60)
    with serving(server) as port:
        dying = relay(database_url, port, tmp_path, lease=lease)
        other = relay(database_url, port, tmp_path, lease=lease)
        for i in range(5):
            dying.outbox.enqueue(notification(i), datetime.now(UTC))
        claim = dying.outbox.claim(datetime.now(UTC))
        assert claim is not None
        killed = asyncio.create_task(dying.outbox.send(claim))
        await asyncio.to_thread(server.holding.wait, 10)
        killed.cancel()  # the process dies: nothing renews its lease, nothing is recorded
        release.set()  # (else the cancelled client's polite QUIT waits out its timeout)
        with contextlib.suppress(asyncio.CancelledError):
            await killed
        # The other relay sends the four unclaimed ones at once, the fifth once the lease ran out.
        assert await other.outbox.relay_once() == 4
        assert other.outbox.claim(datetime.now(UTC)) is None
        taken = other.outbox.claim(datetime.now(UTC) + lease)
        assert taken is not None and taken.row_id == claim.row_id
        assert (await other.outbox.send(taken))[0] is Outcome.SENT
    stored = rows(other)
    assert all(r.state is OutboxState.SENT for r in stored)
    assert sorted(server.received) == sorted(r.message_id for r in stored)
    first = next(r for r in stored if r.id == claim.row_id)
    # Sent with the Message-ID of the interrupted try: a receiver that got both drops one.
    assert first.message_id == claim.message["Message-ID"]
    assert first.attempts == 2


async def test_a_send_accepted_while_the_database_is_away_is_recorded_when_it_returns(
    database_url: str, tmp_path: Path
) -> None:
    """The server accepts an email while the database is unreachable (PostgreSQL refusing
    connections, SQLite locked by another process): the relay keeps the outcome and records it
    once the database is back, and the email is not sent again when its lease runs out."""
    server = SlowServer()
    server.hold = release = threading.Event()
    server.accept_held = True
    lease = timedelta(seconds=3)
    outage = DatabaseOutage(database_url)
    with serving(server) as port:
        services = relay(database_url, port, tmp_path, lease=lease)
        [row_id] = services.outbox.enqueue(notification(1), datetime.now(UTC))
        claim = services.outbox.claim(datetime.now(UTC))
        assert claim is not None
        sending = asyncio.create_task(services.outbox.send(claim))
        await asyncio.to_thread(server.holding.wait, 10)
        await asyncio.to_thread(outage.begin)
        try:
            release.set()  # accepted: from here on the email is out
            await asyncio.sleep(1.5)  # the relay tries to record it, and cannot
        finally:
            await asyncio.to_thread(outage.end)
        outcome, error = await asyncio.wait_for(sending, 30)
        assert (outcome, error) == (Outcome.SENT, None)
        # Past the lease of the claim: nothing is due, nothing goes out again.
        await asyncio.sleep(lease.total_seconds() + 0.5)
        assert await services.outbox.relay_once() == 0
    [row] = rows(services)
    assert row.id == row_id and row.state is OutboxState.SENT and row.attempts == 1
    assert row.claimed_by is None and claim.message is not None
    assert server.received == [claim.message["Message-ID"]]


async def test_a_database_outage_during_a_send_neither_ends_the_send_nor_sends_it_twice(
    database_url: str, tmp_path: Path
) -> None:
    """The database goes away while a transfer is under way, for longer than the lease is
    renewed at: the renewals that fail are tried again, the send goes on and is recorded."""
    server = SlowServer()
    server.hold = release = threading.Event()
    server.accept_held = True
    lease = timedelta(seconds=3)  # renewed every second
    outage = DatabaseOutage(database_url)
    with serving(server) as port:
        services = relay(database_url, port, tmp_path, lease=lease)
        services.outbox.enqueue(notification(1), datetime.now(UTC))
        claim = services.outbox.claim(datetime.now(UTC))
        assert claim is not None
        sending = asyncio.create_task(services.outbox.send(claim))
        await asyncio.to_thread(server.holding.wait, 10)
        await asyncio.to_thread(outage.begin)
        try:
            await asyncio.sleep(2.5)  # two renewals fall in the outage
        finally:
            await asyncio.to_thread(outage.end)
        release.set()
        outcome, error = await asyncio.wait_for(sending, 30)
        assert (outcome, error) == (Outcome.SENT, None)
        await asyncio.sleep(lease.total_seconds() + 0.5)
        assert await services.outbox.relay_once() == 0
    [row] = rows(services)
    assert row.state is OutboxState.SENT and row.attempts == 1
    assert len(server.received) == 1


async def test_a_permanent_refusal_fails_the_message_with_the_servers_answer(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer()
    server.gone.add("gone@contoso.example")
    with serving(server) as port:
        services = relay(database_url, port, tmp_path)
        outbox = services.outbox
        outbox.enqueue(notification(1, "gone@contoso.example"), datetime.now(UTC))
        outbox.enqueue(notification(2), datetime.now(UTC))
        assert await outbox.relay_once() == 1
        assert await outbox.relay_once() == 0  # a failed message is not tried again
    refused, delivered = rows(services)
    assert refused.state is OutboxState.FAILED and refused.attempts == 1
    assert refused.last_error is not None
    assert "550" in refused.last_error and "no such mailbox" in refused.last_error
    assert refused.claimed_by is None and refused.next_attempt_at is None
    assert delivered.state is OutboxState.SENT
    # No dispute DSP-2026-000007 in this database: nothing to hang an admin task on (the
    # dispute-level test sees the task).
    assert [m.id for m in outbox.undelivered()] == [refused.id]


@pytest.mark.parametrize("cause", ["451 from the server", "no server listening"])
async def test_a_temporary_failure_waits_out_a_growing_backoff_and_is_logged(
    cause: str, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = SlowServer()
    with serving(server) as port:
        refusing = SlowServer()

        async def busy(*args: Any) -> str:
            return "451 4.3.2 try again later"

        refusing.handle_DATA = busy  # type: ignore[method-assign]
        with contextlib.ExitStack() as outage:
            bad_port = outage.enter_context(serving(refusing)) if "451" in cause else free_port()
            services = relay(database_url, bad_port, tmp_path)
            outbox = services.outbox
            outbox.enqueue(notification(1), datetime.now(UTC))
            waits = []
            for attempt in (1, 2, 3):
                before = datetime.now(UTC)
                with caplog.at_level(logging.WARNING, logger="accord.outbox"):
                    assert await outbox.relay_once() == 0
                [row] = rows(services)
                assert row.state is OutboxState.PENDING and row.attempts == attempt
                assert row.claimed_by is None and row.next_attempt_at is not None
                waits.append(row.next_attempt_at - before)
                assert await outbox.relay_once() == 0  # not due again before its backoff
                assert outbox.send_waiting_now(datetime.now(UTC)) == 1  # the admin's "now"
            assert row.last_error
            # The server's words, or none: a port number can hold "451" (45129 did, in CI).
            assert ("try again later" in row.last_error) == ("451" in cause)
        # 30 s, 60 s, 120 s (each measured from just before its pass).
        base = timedelta(seconds=30)
        for n, wait in enumerate(waits):
            assert base * 2**n <= wait < base * 2**n + timedelta(seconds=10)
        assert sum("attempt" in r.getMessage() for r in caplog.records) == 3
        # The server is back: the next pass sends it.
        outbox.mailer = replace(outbox.mailer, port=port)  # type: ignore[type-var]
        assert await outbox.relay_once() == 1
    assert rows(services)[0].state is OutboxState.SENT
    assert len(server.received) == 1


def test_the_backoff_doubles_up_to_its_ceiling_and_never_overflows() -> None:
    policy = RelayPolicy(retry_base=timedelta(seconds=30), retry_max=timedelta(hours=1))
    assert [policy.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert policy.backoff(8) == timedelta(hours=1)
    assert policy.backoff(10**6) == timedelta(hours=1)


async def test_a_resend_and_a_dismissal_of_one_message_change_it_once(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer()
    server.gone.add("gone@contoso.example")
    with serving(server) as port:
        services = relay(database_url, port, tmp_path)
        outbox = services.outbox
        [row_id] = outbox.enqueue(notification(1, "gone@contoso.example"), datetime.now(UTC))
        await outbox.relay_once()
        assert outbox.resend(row_id, datetime.now(UTC)).state is OutboxState.PENDING
        # The dismissal checked a failed message; it is pending again now: refused, unchanged.
        with pytest.raises(
            OutboxRefused, match=f"message {row_id}: cannot dismiss it: it is still"
        ):
            outbox.dismiss(row_id, datetime.now(UTC))
        with pytest.raises(OutboxRefused, match=f"message {row_id}: cannot send it again: it is"):
            outbox.resend(row_id, datetime.now(UTC))
        await outbox.relay_once()  # refused again
        assert outbox.dismiss(row_id, datetime.now(UTC)).state is OutboxState.DISMISSED
        assert await outbox.relay_once() == 0
        with pytest.raises(OutboxRefused, match="no such message"):
            outbox.dismiss(2**40, datetime.now(UTC))
    [row] = rows(services)
    assert row.state is OutboxState.DISMISSED and row.attempts == 2


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no", "a@x")]),
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(550, "no", "a@x"),
                    aiosmtplib.SMTPRecipientRefused(452, "full", "b@x"),
                ]
            ),
            False,  # one of them may still take it later
        ),
        (aiosmtplib.SMTPDataError(554, "spam"), True),
        (aiosmtplib.SMTPDataError(451, "later"), False),
        # Our sender or our login refused: every message would be; the set-up is at fault.
        (aiosmtplib.SMTPSenderRefused(550, "not you", "disputes@accord"), False),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), False),
        (aiosmtplib.SMTPConnectError("refused"), False),
    ],
)
def test_only_a_5xx_to_the_recipient_or_the_message_is_a_permanent_refusal(
    error: Exception, permanent: bool
) -> None:
    assert (refusal(error) is not None) is permanent


async def test_a_message_no_mail_can_carry_fails_for_good_and_the_queue_goes_on(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer()
    with serving(server) as port:
        services = relay(database_url, port, tmp_path)
        outbox = services.outbox
        outbox.enqueue(notification(1, "evil@x.example\r\nBcc: all@x.example"), datetime.now(UTC))
        outbox.enqueue(notification(2), datetime.now(UTC))
        assert await outbox.relay_once() == 1
    poisoned, fine = rows(services)
    assert poisoned.state is OutboxState.FAILED
    assert (poisoned.last_error or "").startswith("the message cannot be built")
    assert fine.state is OutboxState.SENT and len(server.received) == 1


async def test_two_workers_on_one_database_send_each_notification_of_their_disputes_once(
    stack: Stack,
) -> None:
    # A second worker process (its own client, engine, outbox and relay) on the same queue.
    client = await Client.connect(
        stack.client.service_client.config.target_host,
        namespace=stack.client.namespace,
        data_converter=CONVERTER,
    )
    second = build_worker(client, build_services(stack.settings), stack.settings.task_queue)
    async with second:
        numbers = [
            (
                await stack.file(
                    contested_objects=[{"kind": "deal_registration", "ref": f"DR-{i}"}]
                )
            ).number
            for i in range(6)
        ]
        for number in numbers:
            await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
        await stack.mail_settled()
    ids = Counter(str(m["Message-ID"]) for m in stack.mail.messages)
    assert ids and max(ids.values()) == 1
    with stack.sessions.read() as session:
        stored = session.exec(select(OutboxMessage)).all()
    assert {r.message_id for r in stored} == set(ids)
    assert all(r.state is OutboxState.SENT and r.attempts == 1 for r in stored)


# --- one email per recipient for what happened at once ----------------------------------

PARTS = (
    ("settlement", {"outcome": "settled"}),
    (
        "remedy_applied",
        {"position": 0, "kind": "commission_split", "adapter": "ledger", "reference": "L-1"},
    ),
    ("closure", {"outcome": "settled", "reason": "every party accepted offer-1"}),
)
NORA, CARL, ADMINS = "nora@northwind.example", "carl@contoso.example", "admins@vendor.example"


def part(
    step: int, template: str, extra: dict[str, object], *to: str, number: str = "DSP-2026-000007"
) -> NotificationRequest:
    return NotificationRequest(
        key=f"{number}:{step}:{template}",
        number=number,
        template=template,
        recipients=to,
        context={**CONTEXT, "number": number, **extra},
    )


def settled_closed(outbox: Any, t0: datetime) -> None:
    """Settled, remedy applied and closed within a second, as the workflow enqueues them;
    nora also gets mail on another dispute in that second, and on this one a minute later."""
    (settled, s_extra), (applied, a_extra), (closed, c_extra) = PARTS
    outbox.enqueue(part(10, settled, s_extra, NORA, CARL), t0)
    outbox.enqueue(part(1, "closure", c_extra, NORA, number="DSP-2026-000008"), t0)
    outbox.enqueue(part(11, applied, a_extra, NORA, CARL, ADMINS), t0 + timedelta(seconds=0.3))
    outbox.enqueue(part(12, closed, c_extra, NORA, CARL, ADMINS), t0 + timedelta(seconds=0.7))
    outbox.enqueue(part(13, "closure", c_extra, NORA), t0 + timedelta(minutes=1))
    # Not an outcome's mail: sent at once, on its own, however close to the others.
    outbox.enqueue(part(9, "escalation", {"reason": "impasse"}, NORA), t0 + timedelta(seconds=0.2))


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def test_settled_remedy_applied_and_closed_within_a_second_is_one_email_per_party(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer()
    with serving(server) as port:
        services = relay(database_url, port, tmp_path, coalesce=timedelta(seconds=1))
        outbox = services.outbox
        t0 = datetime.now(UTC) - timedelta(hours=1)
        settled_closed(outbox, t0)
        # Under a second old, an outcome's mail waits for the rest of what happened with it.
        early = outbox.claim(t0 + timedelta(seconds=0.5))
        assert early is not None and early.template == "escalation"
        assert (await outbox.send(early))[0] is Outcome.SENT
        assert outbox.claim(t0 + timedelta(seconds=0.5)) is None
        assert await outbox.relay_once() == 5
    by_to: dict[str, list[EmailMessage]] = {}
    for message in server.messages:
        by_to.setdefault(str(message["To"]), []).append(message)
    subjects = {to: sorted(str(m["Subject"]) for m in mail) for to, mail in by_to.items()}
    assert subjects == {
        NORA: [
            "[DSP-2026-000007] Dispute closed: settled",  # a minute later: on its own
            "[DSP-2026-000007] Escalated to formal review",
            "[DSP-2026-000007] Settled, remedy applied and closed",
            "[DSP-2026-000008] Dispute closed: settled",  # another dispute: on its own
        ],
        CARL: ["[DSP-2026-000007] Settled, remedy applied and closed"],
        ADMINS: ["[DSP-2026-000007] Remedy applied and closed"],
    }
    merged = next(m for m in by_to[NORA] if "Settled," in str(m["Subject"]))
    text = plain(merged)
    # Each part, in the order it happened, and the dispute's footer once.
    said = [
        "DSP-2026-000007 is settled",
        "Remedy 1 of DSP-2026-000007 is applied",
        "DSP-2026-000007 is settled: every party accepted offer-1",
    ]
    assert [text.index(s) for s in said] == sorted(text.index(s) for s in said)
    assert text.count("Open it:") == 1
    html = merged.get_body(preferencelist=("html",))
    assert html is not None and str(html.get_content()).count("<html") == 1
    shown = str(html.get_content())
    assert all(s in shown for s in [*said[:2], "every party accepted offer-1"])
    stored = rows(services)
    assert all(r.state is OutboxState.SENT for r in stored)
    [lead] = [r for r in stored if r.message_id == merged["Message-ID"]]
    parts = [r for r in stored if r.merged_into == lead.id]
    assert sorted(r.template for r in parts) == ["closure", "remedy_applied"]
    assert lead.merged_into is None and lead.recipient == NORA


async def test_a_relay_killed_mid_merged_send_neither_loses_nor_repeats_a_part(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer()
    server.hold = release = threading.Event()
    lease = timedelta(seconds=1)
    with serving(server) as port:
        window = {"coalesce": timedelta(seconds=1), "lease": lease}
        dying = relay(database_url, port, tmp_path, **window)
        # Another relay whose lease does not run out while it sends the late part (on a loaded
        # machine a pass can outlast a second, and would rightly take the lapsed email too)...
        patient = relay(database_url, port, tmp_path, coalesce=window["coalesce"])
        # ...and one that takes it over once its lease has run out.
        other = relay(database_url, port, tmp_path, **window)
        t0 = datetime.now(UTC) - timedelta(hours=1)
        for step, (template, extra) in enumerate(PARTS):
            dying.outbox.enqueue(part(step, template, extra, NORA), t0)
        claim = dying.outbox.claim(datetime.now(UTC))
        assert claim is not None and claim.message is not None
        killed = asyncio.create_task(dying.outbox.send(claim))
        await asyncio.to_thread(server.holding.wait, 10)
        killed.cancel()  # the process dies mid-send: nothing renews its lease or records
        release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await killed
        # A part enqueued after the email was put together goes out on its own; no part of the
        # interrupted email is sent apart from it.
        late = part(9, "closure", {"outcome": "settled", "reason": "late"}, NORA)
        dying.outbox.enqueue(late, t0 + timedelta(seconds=0.5))
        assert await patient.outbox.relay_once() == 1
        deadline = asyncio.get_running_loop().time() + 20
        while (taken := other.outbox.claim(datetime.now(UTC))) is None:
            assert asyncio.get_running_loop().time() < deadline, "the lease never ran out"
            await asyncio.sleep(0.05)
        assert taken.row_id == claim.row_id and taken.message is not None
        assert str(taken.message["Subject"]) == str(claim.message["Subject"])
        assert taken.message.get_body(preferencelist=("plain",)) is not None
        assert plain(taken.message) == plain(claim.message)
        assert (await other.outbox.send(taken))[0] is Outcome.SENT
        assert await other.outbox.relay_once() == 0
    stored = rows(other)
    assert all(r.state is OutboxState.SENT for r in stored)
    assert len(server.messages) == 2
    merged = next(m for m in server.messages if m["Message-ID"] == claim.message["Message-ID"])
    assert str(merged["Subject"]) == "[DSP-2026-000007] Settled, remedy applied and closed"
    assert "late" not in plain(merged)
    assert [r.merged_into for r in stored] == [None, claim.row_id, claim.row_id, None]


async def test_a_part_is_never_taken_alone_while_the_part_before_it_is_being_claimed(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks skipped by a concurrent claim: PostgreSQL's (SQLite claims in turn)")
    server = SlowServer()
    with serving(server) as port:
        services = relay(database_url, port, tmp_path, coalesce=timedelta(seconds=1))
        outbox = services.outbox
        t0 = datetime.now(UTC) - timedelta(hours=1)
        [first] = outbox.enqueue(part(1, "settlement", {}, NORA), t0)
        outbox.enqueue(part(2, "closure", PARTS[2][1], NORA), t0 + timedelta(seconds=0.5))
        # Another relay is in the middle of claiming the settlement (its row is locked): the
        # closure is not taken on its own meanwhile, it waits to be taken in with it.
        assert await claimed_while_another_holds(services, first) is None
        assert await outbox.relay_once() == 1
    [merged] = server.messages
    assert str(merged["Subject"]) == "[DSP-2026-000007] Settled and closed"


async def claimed_while_another_holds(services: Any, row_id: int) -> Any:
    """What a relay's claim takes while another relay, in the middle of its own claim, holds
    the row `row_id` locked (PostgreSQL's FOR UPDATE; the lock ends with the block)."""
    with services.sessions.begin() as other:
        other.exec(select(OutboxMessage).where(OutboxMessage.id == row_id).with_for_update())
        return await asyncio.to_thread(services.outbox.claim, datetime.now(UTC))


async def test_a_refused_merged_email_is_resent_or_dismissed_whole(
    database_url: str, tmp_path: Path
) -> None:
    server = SlowServer()
    server.gone.add(NORA)
    with serving(server) as port:
        services = relay(database_url, port, tmp_path, coalesce=timedelta(seconds=1))
        outbox = services.outbox
        t0 = datetime.now(UTC) - timedelta(hours=1)
        for step, (template, extra) in enumerate(PARTS):
            outbox.enqueue(part(step, template, extra, NORA), t0)
        assert await outbox.relay_once() == 0
        lead, *merged = rows(services)
        assert lead.state is OutboxState.FAILED
        assert [(r.state, r.merged_into) for r in merged] == [(OutboxState.FAILED, lead.id)] * 2
        # Admins see (and act on) the email, not each of its parts.
        assert [m.id for m in outbox.undelivered()] == [lead.id]
        assert merged[0].id is not None and lead.id is not None
        with pytest.raises(OutboxRefused, match=f"part of message {lead.id}; send that one"):
            outbox.resend(merged[0].id, datetime.now(UTC))
        server.gone.clear()
        outbox.resend(lead.id, datetime.now(UTC))
        assert await outbox.relay_once() == 1
    assert all(r.state is OutboxState.SENT for r in rows(services))
    [sent] = server.messages
    assert str(sent["Subject"]) == "[DSP-2026-000007] Settled, remedy applied and closed"


async def test_a_relay_pass_with_nothing_due_takes_no_write_transaction(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pass ends with each lane finding nothing due, and every enqueue wakes a pass: on
    SQLite each of those looks was a write transaction queued behind (and holding up) every
    other writer of the process, activities and the intake included."""
    with serving(SlowServer()) as port:
        services = relay(database_url, port, tmp_path)
        services.outbox.enqueue(notification(1), datetime.now(UTC))
        writes: list[str] = []
        begin = services.sessions.begin

        def counted(*args: Any, **kwargs: Any) -> Any:
            writes.append("begin")
            return begin(*args, **kwargs)

        monkeypatch.setattr(services.sessions, "begin", counted)
        assert await services.outbox.relay_once() == 1
        # The message's claim and its outcome; the lanes' empty looks wrote nothing.
        assert len(writes) == 2
        writes.clear()
        assert await services.outbox.relay_once() == 0
        assert writes == []


async def test_a_relay_lane_sends_its_messages_over_one_connection_and_a_refusal_keeps_it(
    database_url: str, tmp_path: Path
) -> None:
    """Each message used to open (and log in on) a connection of its own; a lane keeps one
    open for its messages, a recipient refused for good included (the envelope is reset)."""

    class Counting(SlowServer):
        def __init__(self) -> None:
            super().__init__()
            self.peers: list[object] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.peers.append(session.peer)
            return await super().handle_DATA(server, session, envelope)

    server = Counting()
    server.gone.add("gone@northwind.example")
    with serving(server) as port:
        services = relay(database_url, port, tmp_path, concurrency=1)
        now = datetime.now(UTC)
        services.outbox.enqueue(notification(0), now)
        services.outbox.enqueue(notification(1, to="gone@northwind.example"), now)
        for i in range(2, 6):
            services.outbox.enqueue(notification(i), now)
        assert await asyncio.wait_for(services.outbox.relay_once(), 60) == 5
    assert len(server.received) == 5
    assert len(set(server.peers)) == 1, server.peers
    refused = [r for r in rows(services) if r.state is OutboxState.FAILED]
    assert [r.recipient for r in refused] == ["gone@northwind.example"]


async def test_a_kept_connection_the_server_closed_is_opened_again_for_the_next_message() -> None:
    from email.message import EmailMessage

    from notifications.mailer import SmtpMailer

    def message(i: int) -> EmailMessage:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "accord@vendor.example", "nora@northwind.example", "x"
        m["Message-ID"] = f"<kept-{i}@vendor.example>"
        m.set_content("hello")
        return m

    port = free_port()
    first, second = SlowServer(), SlowServer()
    mailer = SmtpMailer(host="127.0.0.1", port=port, timeout=10)
    controller = Controller(first, hostname="127.0.0.1", port=port)
    controller.start()
    await mailer.send(message(1))
    controller.stop()  # restarted: the kept connection is gone
    controller = Controller(second, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await mailer.send(message(2))
    finally:
        await mailer.close()
        controller.stop()
    assert first.received == ["<kept-1@vendor.example>"]
    assert second.received == ["<kept-2@vendor.example>"]


async def test_a_sent_message_is_recorded_ahead_of_the_disputes_queued_writes(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Between the server's acceptance and the record of it, a relay that dies sends the
    message again (same Message-ID) once its lease runs out. On SQLite that record waited for
    the writer behind every dispute write queued before it (up to the relay's patience, half
    a second): a worker killed under load sent three emails twice in the chaos run. The
    outcome goes first now. (PostgreSQL has no queue of this process's writers.)"""
    server = SlowServer()
    with serving(server) as port:
        services = relay(sqlite_url, port, tmp_path)
        [row_id] = services.outbox.enqueue(notification(1), datetime.now(UTC))
        claim = services.outbox.claim(datetime.now(UTC))
        assert claim is not None and claim.message is not None
        await services.outbox.mailer.send(claim.message)  # accepted by the server
        seen_by_entry: list[OutboxState] = []

        def dispute_write() -> None:
            with services.sessions.begin() as session:
                row = session.get(OutboxMessage, row_id, populate_existing=True)
                assert row is not None
                seen_by_entry.append(row.state)

        sessions = services.sessions
        with sessions.begin():  # another writer holds SQLite's writer meanwhile
            entry = threading.Thread(target=dispute_write)
            entry.start()
            await asyncio.to_thread(_queued_writers, sessions, 1)
            recording = asyncio.create_task(
                asyncio.to_thread(
                    services.outbox.record, claim, Outcome.SENT, None, datetime.now(UTC)
                )
            )
            await asyncio.to_thread(_queued_writers, sessions, 2)
        assert await recording
        await asyncio.to_thread(entry.join, 10)
    assert seen_by_entry == [OutboxState.SENT], "the dispute's write went before the record"


def _queued_writers(sessions: Any, count: int) -> None:
    deadline = time.monotonic() + 10
    while sessions.writers_waiting() < count:
        assert time.monotonic() < deadline, "the writers never queued"
        time.sleep(0.005)


async def test_a_filings_answer_stored_here_is_sent_before_older_mail(
    database_url: str, tmp_path: Path
) -> None:
    """The one a partner waits for goes first: under a burst of filings the acknowledgements
    queued behind every dispute's other mail (offers, notices to respondents) and left the
    outbox a median 16 s after the filing in the intake benchmark. An audit entry's answer
    to a filing is named to the relays of the process that stored it, once committed."""
    server = SlowServer()
    with serving(server) as port:
        services = relay(database_url, port, tmp_path, concurrency=1)
        now = datetime.now(UTC)
        for i in range(3):
            services.outbox.enqueue(notification(i, f"r{i}@contoso.example"), now)
        answers = [
            NotificationRequest(
                key=f"DSP-2026-000007:{9 + i}:{template}",
                number="DSP-2026-000007",
                template=template,
                recipients=("nora@northwind.example",),
                context={**CONTEXT, "linked_summary": "Undercut"},
            )
            for i, template in enumerate(("acknowledgement", "filing_linked"))
        ]
        first: list[int] = []
        with services.sessions.begin() as session:
            for request in answers:
                first += services.outbox.enqueue_in(session, request, now)
        services.outbox.nudge(first)  # once committed, as record_event does
        assert await services.outbox.relay_once() == 5
    template_of = {r.message_id: r.template for r in rows(services)}
    assert [template_of[m] for m in server.received] == [
        "acknowledgement",
        "filing_linked",
        "closure",
        "closure",
        "closure",
    ]


async def test_an_outcome_s_mail_waits_while_its_dispute_is_still_applying_it(
    database_url: str, tmp_path: Path
) -> None:
    """On a busy machine the steps of an outcome can be seconds apart: a settlement's mail
    waits for the rest while its dispute is settled or applying remedies (or, for a final
    ruling, still in review), however long past the one-second window, and goes out with them
    once the dispute closes; at most `outcome_hold` (a remedy waiting days for an admin)."""
    server = SlowServer()
    with serving(server) as port:
        services = relay(database_url, port, tmp_path, coalesce=timedelta(seconds=1))
        outbox = services.outbox
        seed(services.sessions)
        add_dispute(services.sessions, "DSP-2026-000007", DisputeStage.REMEDY)
        add_dispute(services.sessions, "DSP-2026-000009", DisputeStage.REMEDY)
        t0 = datetime.now(UTC) - timedelta(hours=1)
        (settled, s_extra), (applied, a_extra), (closed, c_extra) = PARTS
        outbox.enqueue(part(10, settled, s_extra, NORA), t0)
        outbox.enqueue(part(11, applied, a_extra, NORA), t0 + timedelta(seconds=4))
        # Long past the window: still applying, so nothing yet.
        assert outbox.claim(t0 + timedelta(seconds=9)) is None
        # It closes 8 s after it settled: the three go out together.
        with services.sessions.begin() as session:
            dispute = session.get(Dispute, "DSP-2026-000007")
            assert dispute is not None
            dispute.stage = DisputeStage.CLOSED
        outbox.enqueue(part(12, closed, c_extra, NORA), t0 + timedelta(seconds=8))
        claim = outbox.claim(t0 + timedelta(seconds=9.5))
        assert claim is not None
        assert (await outbox.send(claim))[0] is Outcome.SENT
        # Another dispute whose remedy waits for an admin: its settlement goes after the hold.
        number = "DSP-2026-000009"
        outbox.enqueue(part(20, settled, s_extra, NORA, number=number), t0)
        held = outbox.policy.outcome_hold
        assert outbox.claim(t0 + held - timedelta(seconds=1)) is None
        late = outbox.claim(t0 + held + timedelta(seconds=1))
        assert late is not None and late.number == number
        assert (await outbox.send(late))[0] is Outcome.SENT
    assert [str(m["Subject"]) for m in server.messages] == [
        "[DSP-2026-000007] Settled, remedy applied and closed",
        "[DSP-2026-000009] Settled",
    ]
