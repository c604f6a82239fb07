"""From a stored email to its outcome: filed, threaded into a dispute, answered with what is
missing, quarantined for an admin, or ignored as a machine's mail.

Every message is stored raw before anything else (`store`), and processing is idempotent:
a filing is keyed on the message, a message and its attachments are keyed on the stored
row, and replies go through the outbox keyed on the row; so processing the same row again
after a crash adds nothing.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from sqlalchemy import or_, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlmodel import col, select
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from accord.application import Services, build_filing
from accord.directory.records import UnknownActor, resolve_actor
from accord.disputes import evidence as uploads
from accord.disputes import texts
from accord.disputes.access import Viewer, can_see_dispute
from accord.disputes.filing import FilingRejected
from accord.disputes.operations import DisputeGone, Refused, perform
from accord.platform.db import SessionFactory, first_of
from intake.authentication import (
    SELF,
    Evidence,
    SelfVerifier,
    SenderUnverifiable,
    Verdict,
    from_mta,
    judge,
)
from intake.filing_mail import MailFiling, read_filing
from intake.parsing import ParseFailed, Readers, Unreadable
from intake.reading import ReadMail
from models.enums import EvidenceVisibility, InboundState, Role
from models.payloads import (
    Actor,
    AddEvidence,
    AddMessage,
    FilingSubmission,
    MailMessage,
    NotificationRequest,
    TextRef,
)
from models.tables import DisputeEvent, InboundMessage, OutboxMessage, Partner, may_be_row_id
from models.text import clean, plain_error, problem
from notifications.outbox import intake_reply_key
from workflows.dispute import DisputeWorkflow

log = logging.getLogger("accord.intake")
NULL_RETURN_PATH = "<>"
"""How the receiver stores `MAIL FROM:<>`: bounces and other machine mail (RFC 3834)."""


def dedupe_key(raw: bytes) -> str:
    """The Message-ID when the message has one, else the hash of its bytes."""
    headers = BytesHeaderParser().parsebytes(raw)
    message_id = [
        i
        for i in re.findall(r"<[^<>\s]+>", str(headers.get("Message-ID") or ""))
        # An id that cannot be stored (a NUL: the insert fails on PostgreSQL, every time)
        # is no id: the hash keys the message instead.
        if problem(i, multiline=False) is None
    ]
    if message_id:
        return f"mid:{message_id[0][:190]}"
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


@dataclass(frozen=True)
class _Session:
    """What the sending server said in the SMTP session (nothing, for mail fetched over IMAP)."""

    envelope_from: str
    envelope_to: tuple[str, ...]
    peer_ip: str
    helo: str


class NotHeld(ValueError):
    """Only a held (quarantined) or failed message can be processed again."""


@dataclass
class Outcome:
    state: InboundState
    reason: str
    number: str | None = None
    reply: dict[str, Any] | None = None
    """The context of the reply to send, when the sender is to be answered."""
    reply_key: str | None = None
    """The reply's outbox key when it is not the message's own: one answer for many messages."""
    authentication: dict[str, str] = field(default_factory=dict)


class IntakeProcessor:
    BATCH = 200
    """Messages looked at per round (failed attempts back off, so none holds the others up)."""
    LARGE_BYTES = 1024 * 1024
    LARGE_PARALLEL = 8
    """Messages over LARGE_BYTES processed at the same time: each holds its bytes and what was
    read from them (up to three times `intake_max_bytes`) until it is done, and the intake
    takes many messages at once (`intake_parallel`) because most of their time is waiting."""

    def __init__(self, services: Services, client: Client) -> None:
        self.services = services
        self.settings = services.settings
        self.client = client
        self.sessions = services.sessions
        self._slots = asyncio.Semaphore(self.settings.intake_parallel)
        self._large = asyncio.Semaphore(min(self.settings.intake_parallel, self.LARGE_PARALLEL))
        # Each reading is a process on a CPU: fewer of them than messages in flight.
        self._parsers = asyncio.Semaphore(self.settings.intake_parse_processes)
        self._readers = Readers(
            self.settings.intake_parse_processes, self.settings.intake_parse_memory_mb
        )

    def close(self) -> None:
        """Stop the reading processes (they are started again when needed)."""
        self._readers.close()

    # --- storing ---------------------------------------------------------------------------

    def store(
        self,
        raw: bytes,
        *,
        source: str,
        envelope_from: str = "",
        envelope_to: tuple[str, ...] = (),
        peer_ip: str = "",
        helo: str = "",
    ) -> tuple[int, bool]:
        """Keep the raw message; returns its row id and whether it is new (not a redelivery).

        A different message under a Message-ID already stored is kept too, held for an admin:
        discarding it would lose mail, and processing it could let anyone who knows a
        Message-ID pass their message off as a redelivery or a thread's reply."""
        key = dedupe_key(raw)
        smtp = _Session(envelope_from, envelope_to, peer_ip, helo)
        row = self._insert(raw, key, source, smtp, None)
        if row is not None:
            return row, True
        with self.sessions.read() as session:
            existing = session.exec(
                select(InboundMessage).where(InboundMessage.dedupe_key == key)
            ).one()
        assert existing.id is not None
        if key.startswith("sha256:") or same_message(bytes(existing.raw), raw):
            return existing.id, False
        held_key = f"sha256:{hashlib.sha256(raw).hexdigest()}"
        reason = (
            f"reuses the Message-ID of message {existing.id} ({key[4:]}) with different"
            " content: held, so neither replaces the other; process it again to take it in"
        )
        row = self._insert(raw, held_key, source, smtp, reason)
        if row is not None:
            log.warning("intake %s: %s", row, reason)
            return row, True
        with self.sessions.read() as session:
            held = session.exec(
                select(InboundMessage).where(InboundMessage.dedupe_key == held_key)
            ).one()
        assert held.id is not None
        return held.id, False

    def _insert(
        self,
        raw: bytes,
        key: str,
        source: str,
        smtp: _Session,
        held: str | None,
    ) -> int | None:
        """The new row's id, or None when the key is taken."""
        try:
            with self.sessions.begin() as session:
                row = InboundMessage(
                    dedupe_key=key,
                    source=source,
                    # The envelope is the sending server's word, not the message's: kept
                    # as storable text (models.text), so no address can fail the insert.
                    envelope_from=clean(smtp.envelope_from[:320], multiline=False)[0],
                    envelope_to=[clean(a, multiline=False)[0] for a in smtp.envelope_to[:50]],
                    peer_ip=clean(smtp.peer_ip[:64], multiline=False)[0] or None,
                    helo=clean(smtp.helo[:255], multiline=False)[0] or None,
                    raw=raw,
                    size=len(raw),
                    received_at=datetime.now(UTC),
                    state=InboundState.QUARANTINED if held else InboundState.RECEIVED,
                    reason=held,
                )
                session.add(row)
                session.flush()
                assert row.id is not None
                return row.id
        except IntegrityError:
            return None

    # --- claiming ---------------------------------------------------------------------------

    def pending(self) -> list[int]:
        """Messages to process: received, and neither claimed nor backing off."""
        now = datetime.now(UTC)
        with self.sessions.read() as session:
            ids = session.exec(
                select(InboundMessage.id)
                .where(InboundMessage.state == InboundState.RECEIVED)
                .where(
                    or_(
                        col(InboundMessage.claimed_until).is_(None),
                        col(InboundMessage.claimed_until) < now,
                    )
                )
                .order_by(col(InboundMessage.id))
                .limit(self.BATCH)
            ).all()
        return [i for i in ids if i is not None]

    def claim(self, inbound_id: int) -> str | None:
        """Take the message for processing; returns the claim's token, or None when it is not
        to be processed (done, or claimed by another processor, or backing off, or failed).

        The attempt is counted here, when it starts: a message that kills its processor (or
        hangs it past its claim) never reaches the end of an attempt, so counting there let it
        be taken again forever. A message taken the last time without an outcome is marked
        failed instead of taken again.

        One conditional UPDATE: on SQLite writers are serialised, and PostgreSQL re-checks the
        condition on the row it waited for, so of two processors exactly one gets it."""
        token = uuid.uuid4().hex
        now = datetime.now(UTC)
        limit = self.settings.intake_max_attempts
        takeable = (
            col(InboundMessage.id) == inbound_id,
            col(InboundMessage.state) == InboundState.RECEIVED,
            or_(
                col(InboundMessage.claimed_until).is_(None),
                col(InboundMessage.claimed_until) < now,
            ),
        )
        with self.sessions.begin() as session:
            result = session.execute(
                update(InboundMessage)
                .where(*takeable)
                .where(col(InboundMessage.attempts) < limit)
                .values(
                    claim_token=token,
                    claimed_until=now + self._lease(),
                    attempts=InboundMessage.attempts + 1,
                )
            )
            taken = result.rowcount == 1  # type: ignore[attr-defined]
            if taken:
                return token
            # Every attempt taken, the last one's claim lapsed without an outcome (a failed
            # attempt ending normally is marked failed by _failed): the processor died on it.
            result = session.execute(
                update(InboundMessage)
                .where(*takeable)
                .where(col(InboundMessage.attempts) >= limit)
                .values(
                    state=InboundState.FAILED,
                    reason=(
                        f"taken {limit} times without an outcome: each time the intake stopped"
                        " (crashed, or hung past its claim) while processing it"
                    ),
                    last_error="the intake stopped while processing it",
                    claim_token=None,
                    claimed_until=None,
                    processed_at=now,
                )
            )
            failed = result.rowcount == 1  # type: ignore[attr-defined]
        if failed:
            log.error(
                "intake %s: taken %d times without an outcome (the processor died or hung on"
                " it each time); marked failed for an admin",
                inbound_id,
                limit,
            )
        return None

    def release(self, inbound_id: int, token: str) -> None:
        """Give the claim up unprocessed (stopping), so another processor takes it at once;
        the attempt is given back (stopping is not the message's fault)."""
        with self.sessions.begin() as session:
            session.execute(
                update(InboundMessage)
                .where(col(InboundMessage.id) == inbound_id)
                .where(col(InboundMessage.claim_token) == token)
                .values(
                    claim_token=None,
                    claimed_until=None,
                    attempts=InboundMessage.attempts - 1,
                )
            )

    def _renew(self, inbound_id: int, token: str) -> bool:
        with self.sessions.begin() as session:
            result = session.execute(
                update(InboundMessage)
                .where(col(InboundMessage.id) == inbound_id)
                .where(col(InboundMessage.claim_token) == token)
                .values(claimed_until=datetime.now(UTC) + self._lease())
            )
            renewed: bool = result.rowcount == 1  # type: ignore[attr-defined]
        return renewed

    async def _keep_claim(self, inbound_id: int, token: str) -> None:
        """Renew the claim while the message is processed (a filing waits on Temporal)."""
        while True:
            await asyncio.sleep(self.settings.intake_claim_seconds / 3)
            if not await asyncio.to_thread(self._renew, inbound_id, token):
                log.warning("intake %s: the claim lapsed while it was processed", inbound_id)
                return

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.intake_claim_seconds)

    def reopen(self, inbound_id: int, by: str) -> None:
        """An admin's "process again" on a held or failed message: back in the queue with a
        fresh set of attempts (the admin has changed something: the directory, a budget)."""
        if not may_be_row_id(inbound_id):
            raise LookupError(f"message {inbound_id}")
        # The row locked (PostgreSQL), the transaction the only writer (SQLite): a decision
        # taken on it at the same moment (a discard) is seen, not overwritten.
        with self.sessions.begin(immediate=True) as session:
            row = session.get(InboundMessage, inbound_id, with_for_update=True)
            if row is None:
                raise LookupError(f"message {inbound_id}")
            if row.state not in (InboundState.QUARANTINED, InboundState.FAILED):
                raise NotHeld(f"message {inbound_id} is {row.state.value}, not held or failed")
            row.reason = f"retry by {by} (was: {row.reason})"[:5000]
            row.state = InboundState.RECEIVED
            row.attempts = 0
            row.claim_token = None
            row.claimed_until = None
            session.add(row)

    # --- processing ------------------------------------------------------------------------

    async def process_pending(self) -> int:
        """Process what is waiting now, and wait for it (tests, and a one-off drain)."""
        ids = await asyncio.to_thread(self.pending)
        await asyncio.gather(*(self._one(i) for i in ids))
        return len(ids)

    async def _one(self, inbound_id: int) -> None:
        """Process one message in a slot: the bound is the processor's, shared by the loop and
        every direct call, not one round's."""
        async with self._slots:
            try:
                await self.process(inbound_id)
            except Exception:
                # Not even the failure could be written (the database is down, say): the
                # claim lapses and the message is taken again.
                log.exception("intake %s: left for a later attempt", inbound_id)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Process what arrives (woken by the receiver) and what a crash left behind.

        Messages are started as slots free up, not in rounds: a message that takes its whole
        parse budget holds one slot, never the mail that arrives after it."""
        running: dict[int, asyncio.Task[None]] = {}

        def finished(inbound_id: int, _: asyncio.Task[None]) -> None:
            running.pop(inbound_id, None)
            wake.set()  # a slot is free: look again

        while not stop.is_set():
            # Cleared before looking, so a message stored while we work wakes the next look.
            wake.clear()
            try:
                ids = await asyncio.to_thread(self.pending)
            except Exception:  # the database is away: keep serving, look again later
                log.exception("intake: could not look for messages; retrying")
                ids = []
            for inbound_id in ids:
                if inbound_id in running or len(running) >= self.settings.intake_parallel:
                    continue
                task = asyncio.create_task(self._one(inbound_id))
                running[inbound_id] = task
                task.add_done_callback(functools.partial(finished, inbound_id))
            if wake.is_set():
                continue
            try:
                idle = await asyncio.to_thread(self._idle_seconds, set(running))
            except Exception:  # the database is away: the longest wait, then look again
                idle = self.IDLE_SECONDS
            waiting = asyncio.ensure_future(wake.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiting, stopping}, timeout=idle, return_when="FIRST_COMPLETED")
            waiting.cancel()
            stopping.cancel()
        # Stopping: what is under way finishes (each step is idempotent, but a finished
        # message needs no second look).
        await asyncio.gather(*running.values(), return_exceptions=True)
        self.close()

    IDLE_SECONDS = 30.0

    def _idle_seconds(self, running: set[int]) -> float:
        """How long to wait for a wake before looking again: until the first claim or back-off
        of a message not ours lapses (a processor that died holding a message, one backing off
        after a failure), and never longer than IDLE_SECONDS. Waiting the whole idle time left
        a message a restarted intake first saw claimed by the dead one for 30 s."""
        now = datetime.now(UTC)
        with self.sessions.read() as session:
            lapsing = session.exec(
                select(InboundMessage.id, InboundMessage.claimed_until)
                .where(InboundMessage.state == InboundState.RECEIVED)
                .where(col(InboundMessage.claimed_until) >= now)
                .order_by(col(InboundMessage.claimed_until))
                .limit(len(running) + 1)
            ).all()
        for inbound_id, until in lapsing:
            if inbound_id not in running and until is not None:
                # A moment past the lapse, so the look finds it lapsed.
                return min(self.IDLE_SECONDS, max(0.05, (until - now).total_seconds() + 0.05))
        return self.IDLE_SECONDS

    async def process(self, inbound_id: int) -> InboundState:
        """Claim the message, then process it; a failure is written down on it (and logged)
        and the message is retried after a back-off, or marked failed after the last try."""
        token = await asyncio.to_thread(self.claim, inbound_id)
        if token is None:
            return await asyncio.to_thread(self._state, inbound_id)
        keeping = asyncio.create_task(self._keep_claim(inbound_id, token))
        try:
            return await self._attempt(inbound_id, token)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self.release, inbound_id, token))
            raise
        except Exception as exc:
            return await asyncio.to_thread(self._failed, inbound_id, token, exc)
        finally:
            keeping.cancel()

    def _state(self, inbound_id: int) -> InboundState:
        with self.sessions.read() as session:
            row = session.get(InboundMessage, inbound_id)
        return row.state if row else InboundState.IGNORED

    def _row(self, inbound_id: int) -> InboundMessage:
        with self.sessions.read() as session:
            row = session.get(InboundMessage, inbound_id)
        assert row is not None  # claimed a moment ago; rows are never deleted
        return row

    def _size(self, inbound_id: int) -> int:
        with self.sessions.read() as session:
            size = session.exec(
                select(InboundMessage.size).where(InboundMessage.id == inbound_id)
            ).one()
        return int(size)

    async def _attempt(self, inbound_id: int, token: str) -> InboundState:
        # Every database call of the intake runs in a thread: the event loop is the worker's
        # (and in `accord run` the web app's) too, and SQLite's writers queue on a lock.
        size = await asyncio.to_thread(self._size, inbound_id)
        if size <= self.LARGE_BYTES:
            return await self._attempt_in_hand(inbound_id, token)
        async with self._large:
            return await self._attempt_in_hand(inbound_id, token)

    async def _attempt_in_hand(self, inbound_id: int, token: str) -> InboundState:
        row = await asyncio.to_thread(self._row, inbound_id)
        if len(row.raw) > self.settings.intake_max_bytes:
            outcome = Outcome(
                InboundState.QUARANTINED,
                f"larger than the intake's limit ({self.settings.intake_max_bytes:,} bytes)",
            )
            await asyncio.to_thread(self._finish, inbound_id, token, outcome, None)
            return outcome.state
        try:
            async with self._parsers:
                mail = await asyncio.to_thread(
                    self._readers.read, bytes(row.raw), self.settings.intake_parse_seconds
                )
        except Unreadable as exc:  # the parser gave up entirely: keep it for an admin
            outcome = Outcome(InboundState.QUARANTINED, f"unreadable message: {exc}")
            await asyncio.to_thread(self._finish, inbound_id, token, outcome, None)
            return outcome.state
        outcome = await self._decide(inbound_id, mail, row)
        if mail.cleaned:
            # Changed before it was kept: the admins read it in the reason, the sender in the
            # answer (one is sent for this alone, unless the mail is a machine's or held).
            outcome.reason += "; cleaned: " + "; ".join(mail.cleaned)
            if outcome.reply is None and outcome.state in (
                InboundState.THREADED,
                InboundState.FILED,
            ):
                outcome.reply = {"outcome": "threaded" if outcome.number else "cleaned"}
            if outcome.reply is not None:
                outcome.reply["cleaned"] = mail.cleaned
        request = self._reply_request(inbound_id, mail, outcome)
        ids: list[int] = []
        if request is not None:
            # Queued before the outcome is recorded: a failure in between retries the message,
            # and the reply's key (the message's) keeps it to one.
            ids = await asyncio.to_thread(self.services.outbox.enqueue, request, datetime.now(UTC))
        if not await asyncio.to_thread(self._finish, inbound_id, token, outcome, mail):
            return await asyncio.to_thread(self._state, inbound_id)
        if ids:
            # Sending is the relay's job (claimed, leased, retried, refusals shown to admins):
            # the relays of this process are woken now; `accord intake` runs one of its own.
            self.services.outbox.nudge()
        return outcome.state

    def _failed(self, inbound_id: int, token: str, exc: Exception) -> InboundState:
        """Write the failed attempt down: back off, or after the last attempt mark it failed."""
        plain = describe_failure(exc)
        with self.sessions.begin() as session:
            row = session.get(InboundMessage, inbound_id)
            if row is None or row.claim_token != token:
                log.error("intake %s: failed (%s) after losing its claim", inbound_id, plain)
                return row.state if row else InboundState.IGNORED
            # The attempt was counted when the message was claimed.
            row.last_error = plain
            row.claim_token = None
            if row.attempts >= self.settings.intake_max_attempts:
                row.state = InboundState.FAILED
                row.reason = f"failed {row.attempts} times; the last time: {plain}"
                row.claimed_until = None
                row.processed_at = datetime.now(UTC)
            else:
                backoff = self.settings.intake_retry_seconds * 2 ** (row.attempts - 1)
                row.claimed_until = datetime.now(UTC) + timedelta(seconds=min(backoff, 3600))
            session.add(row)
            state, attempts = row.state, row.attempts
        log.warning(
            "intake %s: attempt %d of %d failed: %s%s",
            inbound_id,
            attempts,
            self.settings.intake_max_attempts,
            plain,
            "; marked failed for an admin" if state is InboundState.FAILED else "; will retry",
            exc_info=exc,
        )
        return state

    async def _decide(self, inbound_id: int, mail: ReadMail, row: InboundMessage) -> Outcome:
        # The MTA's word costs nothing to read: kept also on mail that is not acted on.
        mta = self._mta_evidence(mail)
        auth = mta.record(mail.sender.rpartition("@")[2]) if mta else {}
        if row.envelope_from == NULL_RETURN_PATH:
            return Outcome(
                InboundState.IGNORED,
                "not answered: null return path (MAIL FROM:<>), a bounce or automatic message"
                " (RFC 3834)",
                authentication=auth,
            )
        if mail.automatic:
            return Outcome(
                InboundState.IGNORED, f"not answered: {mail.automatic}", authentication=auth
            )
        if mail.message_id and mail.message_id.endswith(f"@{self.settings.mail_domain}>"):
            return Outcome(
                InboundState.IGNORED, "our own message came back: a loop", authentication=auth
            )
        if mail.sender_problem:
            return Outcome(InboundState.QUARANTINED, mail.sender_problem, authentication=auth)
        if not mail.sender:
            return Outcome(InboundState.QUARANTINED, "no sender address", authentication=auth)
        # Held before anything is looked up or answered: a forged From gets no backscatter.
        evidence = mta or await self._own_evidence(mail, row)
        if evidence is not None:
            auth = evidence.record(mail.sender.rpartition("@")[2])
            verdict = judge(evidence, mail.sender)
        else:
            verdict = Verdict(False, doubt="nothing verifies senders (ACCORD_INTAKE_VERIFY)")
        if verdict.failure is not None:
            return Outcome(
                InboundState.QUARANTINED,
                f"sender authentication failed: {verdict.failure}",
                authentication=auth,
            )
        if not verdict.trusted and verdict.unavailable and evidence and evidence.by == SELF:
            # Our own check may succeed later (DNS answers again): retried, never trusted.
            raise SenderUnverifiable(
                f"the sender could not be checked ({verdict.unavailable}); retried, and not"
                " trusted meanwhile"
            )
        if self.settings.intake_require_authentication and not verdict.trusted:
            reason = verdict.doubt
            if verdict.unavailable:
                reason += f"; {evidence.by if evidence else 'the MTA'} could not check:"
                reason += f" {verdict.unavailable}"
            return Outcome(InboundState.QUARANTINED, reason, authentication=auth)
        try:
            actor = await asyncio.to_thread(self._actor, mail.sender)
        except UnknownActor:
            return Outcome(
                InboundState.QUARANTINED,
                f"{mail.sender} is not a registered contact or person"
                + await asyncio.to_thread(self._domain_hint, mail.sender),
                authentication=auth,
            )
        number = self._dispute_of(mail)
        if number is not None:
            outcome = await self._thread(inbound_id, mail, actor, number)
        elif actor.role is not Role.PARTNER:
            outcome = Outcome(
                InboundState.ANSWERED,
                "staff wrote to the intake without a dispute number",
                reply={"outcome": "staff"},
            )
        else:
            outcome = await self._file(inbound_id, mail, actor)
        outcome.authentication = auth
        return outcome

    def _actor(self, sender: str) -> Actor:
        with self.sessions.read() as session:
            return resolve_actor(session, sender)

    def _domain_hint(self, sender: str) -> str:
        """Which partner the sender's domain belongs to: what the admin needs to decide."""
        domain = sender.rpartition("@")[2]
        with self.sessions.read() as session:
            for partner in session.exec(select(Partner).where(Partner.active)).all():
                if domain in [d.lower() for d in partner.email_domains]:
                    return (
                        f"; the domain {domain} is {partner.name}'s ({partner.id}): add the"
                        " sender as its contact to let the message through"
                    )
        return ""

    def _mta_evidence(self, mail: ReadMail) -> Evidence | None:
        """The results our own MTA stamped, when it is the one that verifies senders."""
        trusted = self.settings.intake_authserv_id
        if self.settings.intake_verify != "mta" or not trusted:
            return None
        return from_mta(mail.headers.get("authentication-results", []), trusted)

    async def _own_evidence(self, mail: ReadMail, row: InboundMessage) -> Evidence | None:
        """DKIM, SPF and DMARC checked here, when Accord verifies senders itself (DNS: off the
        event loop)."""
        if self.settings.intake_verify != "self":
            return None
        verifier = SelfVerifier(
            self.settings.intake_dns_servers, self.settings.intake_dns_timeout_seconds
        )
        return await asyncio.to_thread(
            verifier.verify,
            bytes(row.raw),
            sender=mail.sender,
            peer_ip=row.peer_ip,
            helo=row.helo,
            mail_from=row.envelope_from,
        )

    def _dispute_of(self, mail: ReadMail) -> str | None:
        ours = re.compile(
            rf"^<(DSP-\d{{4}}-\d{{6}})(?:\.[0-9a-f]+)?@{re.escape(self.settings.mail_domain)}>$"
        )
        for message_id in [*mail.in_reply_to, *reversed(mail.references)]:
            matched = ours.match(message_id)
            if matched:
                return matched.group(1)
        numbers = mail.numbers()
        return numbers[0] if numbers else None

    # --- correspondence -----------------------------------------------------------------

    async def _thread(self, inbound_id: int, mail: ReadMail, actor: Actor, number: str) -> Outcome:
        visible = await asyncio.to_thread(
            self._can_see, Viewer(actor=actor, login=mail.sender), number
        )
        if not visible:
            return Outcome(
                InboundState.QUARANTINED, f"{mail.sender} is not on {number}", number=None
            )
        side = actor.partner_id if actor.role is Role.PARTNER else None
        visibility = EvidenceVisibility.SIDE if side else EvidenceVisibility.NEUTRALS
        taken: list[TextRef] = []
        try:
            # The body is stored first, before any attachment: over a volume limit (or too
            # long) nothing is attached or recorded, and the sender is told which and why.
            # The workflow gets the stored text's reference (accord.disputes.texts).
            text_ref = await asyncio.to_thread(
                texts.store,
                self.sessions,
                number,
                "message",
                actor.id,
                mail.reply_text or mail.text,
                field="text",
                limits=texts.limits_of(self.settings),
                taken=taken,
            )
        except texts.TooManyTexts as problem:
            return await asyncio.to_thread(self._over_limit, number, mail.sender, problem)
        except texts.TextProblem as problem:
            return Outcome(
                InboundState.ANSWERED,
                f"not added to {number}: {problem.message}",
                number=number,
                reply={"outcome": "not_added", "errors": [problem.message]},
            )
        try:
            evidence_ids, refused = await self._attach(
                inbound_id, mail, actor, number, visibility, side
            )
            message = MailMessage(
                inbound_id=inbound_id,
                sender=mail.sender,
                subject=mail.subject,
                side_partner_id=side,
                evidence_ids=tuple(evidence_ids),
                text_ref=text_ref,
            )
            await self._perform(
                f"intake-{inbound_id}:message",
                number,
                AddMessage(actor=actor, message=message),
                DisputeWorkflow.add_message,
            )
        except (Refused, DisputeGone) as exc:
            # Not added: the stored body takes no place under the limits.
            await asyncio.to_thread(texts.set_aside, self.sessions, taken)
            reason = (
                refusal_in_words(number, exc)
                if isinstance(exc, Refused)
                else f"{number} is no longer open"
            )
            if isinstance(exc, Refused):
                # The dispute's own words go to the log (and the admins' reason) only.
                log.info(
                    "intake %s: %s refused the message: %s (%s)", inbound_id, number, exc, exc.kind
                )
            return Outcome(
                InboundState.ANSWERED,
                f"not added to {number}: {reason}",
                number=number,
                reply={"outcome": "not_added", "errors": [reason]},
            )
        reply = {"outcome": "threaded", "refused_attachments": refused} if refused else None
        return Outcome(InboundState.THREADED, f"added to {number}", number=number, reply=reply)

    def _can_see(self, viewer: Viewer, number: str) -> bool:
        with self.sessions.read() as session:
            return can_see_dispute(session, viewer, number)

    def _over_limit(self, number: str, sender: str, problem: texts.TextProblem) -> Outcome:
        """Over a volume limit: the sender is told once a day per dispute, not once a message,
        so two mail robots answering each other (or a forward without Auto-Submitted) cannot
        keep a loop going through us. The answer's outbox key is the sender's, the dispute's
        and the day's: two such messages processed at once still queue one answer."""
        today = datetime.now(UTC).date().isoformat()
        key = f"intake-limit:{number}:{today}"
        reason = f"not added to {number}: {problem.message}"
        with self.sessions.read() as session:
            told = session.exec(
                select(OutboxMessage.id).where(OutboxMessage.key == f"{key}:{sender.lower()}")
            ).first()
        if told is not None:
            return Outcome(
                InboundState.IGNORED,
                f"{reason}; not answered: {sender} was told about this limit today already"
                " (one answer a day, so no mail loop runs through the intake)",
                number=number,
            )
        return Outcome(
            InboundState.ANSWERED,
            reason,
            number=number,
            reply={"outcome": "not_added", "errors": [problem.message]},
            reply_key=key,
        )

    async def _attach(
        self,
        inbound_id: int,
        mail: ReadMail,
        actor: Actor,
        number: str,
        visibility: EvidenceVisibility,
        side: str | None,
    ) -> tuple[list[str], list[str]]:
        """Store and attach the acceptable attachments; name the refused ones."""
        added: list[str] = []
        refused: list[str] = []
        for position, attachment in enumerate(mail.attachments):
            upload = uploads.Upload(
                filename=attachment.filename,
                content_type=attachment.content_type,
                data=attachment.data,
            )
            if position >= self.settings.upload_max_files:
                refused.append(
                    f"{attachment.filename}: at most {self.settings.upload_max_files} attachments"
                )
                continue
            try:
                uploads.check_upload(self.settings, upload, position)
            except uploads.UploadProblem as refusal:
                refused.append(refusal.message)
                continue
            item = await asyncio.to_thread(
                uploads.store,
                self.sessions,
                upload,
                description=f"attached to an email from {mail.sender}",
                visibility=visibility,
                side_partner_id=side,
            )
            # The id is the message's and the position's, so a retry attaches nothing twice.
            item = item.model_copy(update={"id": _evidence_id(inbound_id, position)})
            await self._perform(
                f"intake-{inbound_id}:evidence-{position}",
                number,
                AddEvidence(actor=actor, evidence=item),
                DisputeWorkflow.add_evidence,
            )
            added.append(item.id)
        return added, refused

    UPDATE_TRIES = 5
    """Times an update is asked for when the engine's answer does not come back in time."""

    async def _perform(self, update_id: str, number: str, payload: Any, update: Any) -> None:
        """Apply an action to the dispute under an id of this message's own: a busy engine lets
        the RPC time out while the update goes on, and asking again under the same id attaches
        to that update (applied once) instead of failing the attempt, which waited out its
        back-off (30 s and more) for a message already taken in."""
        for attempt in range(1, self.UPDATE_TRIES + 1):
            try:
                await perform(self.client, number, payload, update, update_id=update_id)
                return
            except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
                task = asyncio.current_task()
                # The client says the same for our own cancellation (the intake stopping).
                stopping = task is not None and task.cancelling() > 0
                if stopping or isinstance(exc.__cause__, asyncio.CancelledError):
                    raise
                if attempt == self.UPDATE_TRIES:
                    raise
                log.warning(
                    "%s: the engine did not answer %s in time; asking again (%d of %d)",
                    number,
                    update_id,
                    attempt + 1,
                    self.UPDATE_TRIES,
                )

    # --- filing -----------------------------------------------------------------------------

    async def _file(self, inbound_id: int, mail: ReadMail, actor: Actor) -> Outcome:
        assert actor.partner_id is not None
        filing = await asyncio.to_thread(self._read_filing, actor.partner_id, mail)
        form_url = (
            f"{self.settings.resolved_base_url()}/disputes/new?{urlencode(filing.understood)}"
        )
        if filing.missing:
            return Outcome(
                InboundState.ANSWERED,
                "incomplete filing: " + "; ".join(filing.missing),
                reply={"outcome": "incomplete", "missing": filing.missing, "form_url": form_url},
            )
        try:
            submission = FilingSubmission.model_validate(
                {
                    **filing.data,
                    "filed_by": mail.sender,
                    "submission_id": f"mail-{inbound_id}-{_short(mail.message_id or '')}",
                }
            )
            result = await build_filing(self.services, self.client).file(submission)
        except ValidationError as exc:
            errors = [
                f"{'.'.join(map(str, e['loc'])) or 'filing'}: {plain_error(e)}"
                for e in exc.errors()
            ]
            return Outcome(
                InboundState.ANSWERED,
                "filing refused: " + "; ".join(errors),
                reply={"outcome": "refused", "errors": errors, "form_url": form_url},
            )
        except FilingRejected as exc:
            errors = [str(e) for e in exc.errors]
            return Outcome(
                InboundState.ANSWERED,
                "filing refused: " + "; ".join(errors),
                reply={"outcome": "refused", "errors": errors, "form_url": form_url},
            )
        refused: list[str] = []
        if mail.attachments:
            # The dispute is started (the server has its workflow); its attachments wait until
            # it has taken in its filing, so they follow it in its record. Without any there
            # is nothing to wait for: waiting here held an intake slot for a second or more.
            await self._wait_until_started(result.number)
            _, refused = await self._attach(
                inbound_id, mail, actor, result.number, EvidenceVisibility.PARTIES, None
            )
        # The dispute's own acknowledgement carries the number to every claimant contact; a
        # reply from here is only needed to name refused attachments.
        reply = {"outcome": "threaded", "refused_attachments": refused} if refused else None
        return Outcome(InboundState.FILED, result.message, number=result.number, reply=reply)

    def _read_filing(self, partner_id: str, mail: ReadMail) -> MailFiling:
        with self.sessions.read() as session:
            return read_filing(session, partner_id, mail.subject, mail.reply_text or mail.text)

    async def _wait_until_started(self, number: str) -> None:
        """Until the dispute's first audit entry (its filing) is in the trail, at most 10 s.
        Read from the database, not asked of the workflow: a query answered while its first
        record is being written is what makes a busy worker split that task
        (workflows.core, PATCHES_AT_START_PATCH)."""
        for _ in range(100):
            if await asyncio.to_thread(self._has_an_entry, number):
                return
            await asyncio.sleep(0.1)

    def _has_an_entry(self, number: str) -> bool:
        with self.sessions.read() as session:
            return (
                session.exec(
                    select(DisputeEvent.seq).where(DisputeEvent.dispute_number == number).limit(1)
                ).first()
                is not None
            )

    # --- recording and answering ------------------------------------------------------------

    def _finish(self, inbound_id: int, token: str, outcome: Outcome, mail: ReadMail | None) -> bool:
        """Record the outcome, if the claim is still ours (else another processor has it)."""
        with self.sessions.begin() as session:
            row = session.get(InboundMessage, inbound_id)
            if row is None or row.claim_token != token:
                log.error("intake %s: claim lost before the outcome was recorded", inbound_id)
                return False
            row.state = outcome.state
            # Reasons quote what they refuse (an exception's text, a field's value): kept as
            # storable text, or the row could never leave RECEIVED on PostgreSQL.
            row.reason = clean(outcome.reason[:5000], multiline=True)[0]
            row.dispute_number = outcome.number
            row.authentication = outcome.authentication
            row.processed_at = datetime.now(UTC)
            row.claim_token = None
            row.claimed_until = None
            row.last_error = None
            if mail is not None:
                row.sender = mail.sender[:320] or None
                row.subject = mail.subject[:400] or None
            session.add(row)
        log.info("intake %s: %s (%s)", inbound_id, outcome.state.value, outcome.reason)
        return True

    def _reply_request(
        self, inbound_id: int, mail: ReadMail, outcome: Outcome
    ) -> NotificationRequest | None:
        if outcome.reply is None or not mail.sender:
            return None
        context = {
            "number": outcome.number or "",
            "subject": " ".join(mail.subject.split())[:200] or "your message",
            "intake_address": self.settings.intake_address,
            "missing": [],
            "errors": [],
            "refused_attachments": [],
            "cleaned": [],
            "form_url": "",
            **outcome.reply,
        }
        return NotificationRequest(
            key=outcome.reply_key or intake_reply_key(inbound_id),
            number=outcome.number or "",
            template="intake_reply",
            recipients=(mail.sender,),
            context=context,
            in_reply_to=mail.message_id,
        )


def same_message(stored: bytes, arrived: bytes) -> bool:
    """The same message delivered again: equal but for the trace headers each hop adds and
    the MIME boundaries (a client that sends again may flatten the message anew)."""
    return _comparable(stored) == _comparable(arrived)


_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\s]+)"?', re.IGNORECASE)


def _comparable(raw: bytes) -> bytes:
    kept = _without_trace(raw)
    boundaries = set(_BOUNDARY.findall(kept))
    if len(boundaries) > 50:  # each costs a pass over the message: compare them as they are
        return kept
    for boundary in boundaries:
        kept = kept.replace(boundary, b"<boundary>")
    return kept


_TRACE = re.compile(
    rb"^(received|return-path|delivered-to|x-original-to|authentication-results|received-spf"
    rb"|arc-seal|arc-message-signature|arc-authentication-results|x-received):",
    re.IGNORECASE,
)


def _without_trace(raw: bytes) -> bytes:
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # a folded continuation belongs to the header above
            if not dropping:
                kept.append(line)
            continue
        dropping = _TRACE.match(line) is not None
        if not dropping:
            kept.append(line)
    return b"\n".join(kept) + sep + body


WORDED_REFUSALS = frozenset(
    {"ValueError", "StaleAction", "RuleNoLongerHolds", "RemedyNotWaived", "UnknownCitation"}
)
"""The refusals whose text the workflow writes for a user (a validator's rule, a named
refusal); any other failure (a bug, a broken invariant, a library's error) is not explained in
its own words to a sender."""

_ACTION_WORDS = {
    "add_message": "messages",
    "add_evidence": "evidence",
}
_STAGE_RULE = re.compile(r"^([a-z_]+) in stage ([a-z_]+) is for ([a-z_ ]+), not ([a-z_]+)$")
_NOT_NOW = re.compile(r"^([a-z_]+) is not possible while the dispute is ([a-z_]+)")
_ENGINE_TEXT = re.compile(
    r"error|exception|traceback|workflow|temporal|activity|update|rpc|psycopg|sqlalchemy"
    r"|sqlite|pydantic|[<>{}\[\]_\n]",
    re.IGNORECASE,
)


def refusal_in_words(number: str, refused: Refused) -> str:
    """Why the dispute turned an emailed message or attachment down, in words a sender can act
    on: the dispute's rules rewritten as sentences, its other worded refusals kept when they
    hold no engine's terms; anything else is a fault on our side, said as such."""
    text = str(refused).strip()
    if refused.kind in WORDED_REFUSALS:
        rule = _STAGE_RULE.match(text)
        if rule:
            action, stage, roles, role = rule.groups()
            return (
                f"{number} takes {_ACTION_WORDS.get(action, action.replace('_', ' '))} by"
                f" email only from {roles.replace('_', ' ')}s at its current stage"
                f" ({stage.replace('_', ' ')}), not from {role.replace('_', ' ')}s"
            )
        rule = _NOT_NOW.match(text)
        if rule:
            action, stage = rule.groups()
            return (
                f"{number} does not take {_ACTION_WORDS.get(action, action.replace('_', ' '))}"
                f" at its current stage ({stage.replace('_', ' ')})"
            )
        if text and len(text) <= 300 and not _ENGINE_TEXT.search(text):
            return text
    return (
        f"{number} could not take it because of a fault on our side; the administrators can"
        " see it and will follow up"
    )


def describe_failure(exc: BaseException) -> str:
    """What went wrong, in words an admin can act on; the engines' own text (which can hold
    the data that failed, or a driver's internals) goes only to the log."""
    if isinstance(exc, ParseFailed | SenderUnverifiable):
        return str(exc)
    if isinstance(exc, DBAPIError | SQLAlchemyError):
        driver = type(getattr(exc, "orig", None) or exc).__name__
        return f"the database refused or did not answer ({driver})"
    if isinstance(exc, RPCError | WorkflowUpdateRPCTimeoutOrCancelledError) or (
        # What the client raises when it cannot reach the server to connect (a lazy client,
        # or one started while Temporal was down): the bridge's text, no type of its own.
        isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect")
    ):
        return "the dispute engine (Temporal) did not answer or turned the request down"
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        return f"a service did not answer in time ({type(exc).__name__})"
    return f"an internal error ({type(exc).__name__}); the log has the details"


def _evidence_id(inbound_id: int, position: int) -> str:
    return f"ev-{hashlib.sha256(f'mail:{inbound_id}:{position}'.encode()).hexdigest()[:16]}"


def _short(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


LISTED = 200
"""The intake messages of one state a list shows (admin page, `accord inbound`), newest first."""


def listed(sessions: SessionFactory, state: InboundState) -> tuple[list[InboundMessage], int]:
    """The newest LISTED messages in `state`, and how many are in it: the oldest of a long
    queue have waited longest for an admin, so a list must say when it does not show them."""
    query = select(InboundMessage).where(InboundMessage.state == state)
    newest = (col(InboundMessage.received_at).desc(), col(InboundMessage.id).desc())
    with sessions.read() as session:
        return first_of(session, query.order_by(*newest), LISTED)
