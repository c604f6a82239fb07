"""From a stored email to its outcome: filed, threaded into a dispute, answered with what is
missing, quarantined for an admin, or ignored as a machine's mail.

Every message is stored raw before anything else (`store`), and processing is idempotent:
a filing is keyed on the message, a message and its attachments are keyed on the stored
row, and replies go through the outbox keyed on the row; so processing the same row again
after a crash adds nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import urlencode

import authres  # type: ignore[import-untyped]
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from temporalio.client import Client

from accord import texts
from accord.access import Viewer, can_see_dispute
from accord.directory import UnknownActor, resolve_actor
from accord.filing import FilingRejected
from accord.runtime import Services, build_filing
from intake.filing_mail import read_filing
from intake.reading import ReadMail, read
from models.enums import EvidenceVisibility, InboundState, Role
from models.payloads import (
    Actor,
    AddEvidence,
    AddMessage,
    FilingSubmission,
    MailMessage,
    NotificationRequest,
)
from models.tables import InboundMessage, Partner
from web import evidence as uploads
from web.operations import DisputeGone, Refused, perform
from workflows.dispute import DisputeWorkflow

log = logging.getLogger("accord.intake")
PARALLEL = 8


def dedupe_key(raw: bytes) -> str:
    """The Message-ID when the message has one, else the hash of its bytes."""
    headers = BytesHeaderParser().parsebytes(raw)
    message_id = re.findall(r"<[^<>\s]+>", str(headers.get("Message-ID") or ""))
    if message_id:
        return f"mid:{message_id[0][:190]}"
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


@dataclass
class Outcome:
    state: InboundState
    reason: str
    number: str | None = None
    reply: dict[str, Any] | None = None
    """The context of the reply to send, when the sender is to be answered."""
    authentication: dict[str, str] = field(default_factory=dict)


class IntakeProcessor:
    def __init__(self, services: Services, client: Client) -> None:
        self.services = services
        self.settings = services.settings
        self.client = client
        self.sessions = services.sessions

    # --- storing ---------------------------------------------------------------------------

    def store(
        self, raw: bytes, *, source: str, envelope_from: str = "", envelope_to: tuple[str, ...] = ()
    ) -> tuple[int, bool]:
        """Keep the raw message; returns its row id and whether it is new (not a redelivery)."""
        key = dedupe_key(raw)
        try:
            with self.sessions.begin() as session:
                row = InboundMessage(
                    dedupe_key=key,
                    source=source,
                    envelope_from=envelope_from[:320],
                    envelope_to=list(envelope_to)[:50],
                    raw=raw,
                    size=len(raw),
                    received_at=datetime.now(UTC),
                    state=InboundState.RECEIVED,
                )
                session.add(row)
                session.flush()
                assert row.id is not None
                return row.id, True
        except IntegrityError:
            with self.sessions.read() as session:
                existing = session.exec(
                    select(InboundMessage).where(InboundMessage.dedupe_key == key)
                ).one()
                assert existing.id is not None
                return existing.id, False

    # --- processing ------------------------------------------------------------------------

    def pending(self) -> list[int]:
        with self.sessions.read() as session:
            ids = session.exec(
                select(InboundMessage.id)
                .where(InboundMessage.state == InboundState.RECEIVED)
                .order_by(col(InboundMessage.id))
                .limit(200)
            ).all()
        return [i for i in ids if i is not None]

    async def process_pending(self) -> int:
        """Process what is waiting, several at a time (each waits on Temporal, not the CPU)."""
        ids = await asyncio.to_thread(self.pending)
        slots = asyncio.Semaphore(PARALLEL)

        async def one(inbound_id: int) -> None:
            async with slots:
                await self.process(inbound_id)

        await asyncio.gather(*(one(i) for i in ids))
        return len(ids)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Process what arrives (woken by the receiver) and what a crash left behind."""
        while not stop.is_set():
            # Cleared before looking, so a message stored while we work wakes the next round.
            wake.clear()
            try:
                await self.process_pending()
            except Exception:  # keep serving; the row stays RECEIVED and is retried
                log.exception("intake processing failed; retrying")
            if wake.is_set():
                continue
            waiting = asyncio.ensure_future(wake.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiting, stopping}, timeout=30, return_when="FIRST_COMPLETED")
            waiting.cancel()
            stopping.cancel()

    async def process(self, inbound_id: int) -> InboundState:
        with self.sessions.read() as session:
            row = session.get(InboundMessage, inbound_id)
        if row is None or row.state is not InboundState.RECEIVED:
            return row.state if row else InboundState.IGNORED
        try:
            mail = read(row.raw)
        except Exception as exc:  # the parser gave up entirely: keep it for an admin
            outcome = Outcome(InboundState.QUARANTINED, f"unreadable message: {exc}")
            await asyncio.to_thread(self._finish, inbound_id, outcome, None)
            return outcome.state
        outcome = await self._decide(inbound_id, mail)
        await asyncio.to_thread(self._finish, inbound_id, outcome, mail)
        if outcome.reply is not None and mail.sender:
            await self._reply(inbound_id, mail, outcome)
        return outcome.state

    async def _decide(self, inbound_id: int, mail: ReadMail) -> Outcome:
        auth = self.authentication(mail)
        if mail.automatic:
            return Outcome(
                InboundState.IGNORED, f"not answered: {mail.automatic}", authentication=auth
            )
        if mail.message_id and mail.message_id.endswith(f"@{self.settings.mail_domain}>"):
            return Outcome(
                InboundState.IGNORED, "our own message came back: a loop", authentication=auth
            )
        if not mail.sender:
            return Outcome(InboundState.QUARANTINED, "no sender address", authentication=auth)
        failed = [m for m in ("dmarc", "dkim", "spf") if auth.get(m) in ("fail", "permerror")]
        if "dmarc" in failed or {"dkim", "spf"} <= set(failed):
            return Outcome(
                InboundState.QUARANTINED,
                f"sender authentication failed ({', '.join(f'{m}={auth[m]}' for m in failed)})",
                authentication=auth,
            )
        if self.settings.intake_require_authentication and not any(
            auth.get(m) == "pass" for m in ("dmarc", "dkim", "spf")
        ):
            return Outcome(
                InboundState.QUARANTINED, "no trusted authentication result", authentication=auth
            )
        try:
            with self.sessions.read() as session:
                actor = resolve_actor(session, mail.sender)
        except UnknownActor:
            return Outcome(
                InboundState.QUARANTINED,
                f"{mail.sender} is not a registered contact or person"
                + self._domain_hint(mail.sender),
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

    def authentication(self, mail: ReadMail) -> dict[str, str]:
        """Results from Authentication-Results headers stamped by our own MTA only."""
        trusted = self.settings.intake_authserv_id
        results: dict[str, str] = {}
        if not trusted:
            return results
        for header in mail.headers.get("authentication-results", []):
            try:
                parsed = authres.AuthenticationResultsHeader.parse_value(header)
            except Exception:  # a malformed or forged header: not ours, ignore it
                log.debug("unparseable Authentication-Results header ignored: %r", header)
                continue
            if str(parsed.authserv_id).lower() != trusted.lower():
                continue
            for result in parsed.results:
                results.setdefault(str(result.method).lower(), str(result.result).lower())
        return results

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
        viewer = Viewer(actor=actor, login=mail.sender)
        with self.sessions.read() as session:
            visible = can_see_dispute(session, viewer, number)
        if not visible:
            return Outcome(
                InboundState.QUARANTINED, f"{mail.sender} is not on {number}", number=None
            )
        side = actor.partner_id if actor.role is Role.PARTNER else None
        visibility = EvidenceVisibility.SIDE if side else EvidenceVisibility.NEUTRALS
        try:
            # The body is stored first, before any attachment: over a volume limit (or too
            # long) nothing is attached or recorded, and the sender is told which and why.
            # The workflow gets the stored text's reference (accord.texts).
            text_ref = texts.store(
                self.sessions,
                number,
                "message",
                actor.id,
                mail.reply_text or mail.text,
                field="text",
                limits=texts.limits_of(self.settings),
            )
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
            await perform(
                self.client,
                number,
                AddMessage(actor=actor, message=message),
                DisputeWorkflow.add_message,
            )
        except (Refused, DisputeGone) as exc:
            reason = str(exc) if isinstance(exc, Refused) else f"{number} is no longer open"
            return Outcome(
                InboundState.ANSWERED,
                f"not added to {number}: {reason}",
                number=number,
                reply={"outcome": "not_added", "errors": [reason]},
            )
        reply = {"outcome": "threaded", "refused_attachments": refused} if refused else None
        return Outcome(InboundState.THREADED, f"added to {number}", number=number, reply=reply)

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
            except uploads.UploadProblem as problem:
                refused.append(problem.message)
                continue
            item = uploads.store(
                self.sessions,
                upload,
                description=f"attached to an email from {mail.sender}",
                visibility=visibility,
                side_partner_id=side,
            )
            # The id is the message's and the position's, so a retry attaches nothing twice.
            item = item.model_copy(update={"id": _evidence_id(inbound_id, position)})
            await perform(
                self.client,
                number,
                AddEvidence(actor=actor, evidence=item),
                DisputeWorkflow.add_evidence,
            )
            added.append(item.id)
        return added, refused

    # --- filing -----------------------------------------------------------------------------

    async def _file(self, inbound_id: int, mail: ReadMail, actor: Actor) -> Outcome:
        assert actor.partner_id is not None
        with self.sessions.read() as session:
            filing = read_filing(
                session, actor.partner_id, mail.subject, mail.reply_text or mail.text
            )
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
                f"{'.'.join(map(str, e['loc'])) or 'filing'}: {e['msg']}" for e in exc.errors()
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
        await self._wait_until_started(result.number)
        _, refused = await self._attach(
            inbound_id, mail, actor, result.number, EvidenceVisibility.PARTIES, None
        )
        # The dispute's own acknowledgement carries the number to every claimant contact; a
        # reply from here is only needed to name refused attachments.
        reply = {"outcome": "threaded", "refused_attachments": refused} if refused else None
        return Outcome(InboundState.FILED, result.message, number=result.number, reply=reply)

    async def _wait_until_started(self, number: str) -> None:
        handle = self.client.get_workflow_handle_for(DisputeWorkflow.run, number)
        for _ in range(100):
            try:
                state = await handle.query(DisputeWorkflow.get_state)
            except Exception:  # not polled yet by a worker
                await asyncio.sleep(0.1)
                continue
            if state.stage.value != "filed" or state.history:
                return
            await asyncio.sleep(0.1)

    # --- recording and answering ------------------------------------------------------------

    def _finish(self, inbound_id: int, outcome: Outcome, mail: ReadMail | None) -> None:
        with self.sessions.begin() as session:
            row = session.get(InboundMessage, inbound_id)
            if row is None:
                return
            row.state = outcome.state
            row.reason = outcome.reason[:5000]
            row.dispute_number = outcome.number
            row.authentication = outcome.authentication
            row.attempts += 1
            row.processed_at = datetime.now(UTC)
            if mail is not None:
                row.sender = mail.sender[:320] or None
                row.subject = mail.subject[:400] or None
            session.add(row)
        log.info("intake %s: %s (%s)", inbound_id, outcome.state.value, outcome.reason)

    async def _reply(self, inbound_id: int, mail: ReadMail, outcome: Outcome) -> None:
        assert outcome.reply is not None
        context = {
            "number": outcome.number or "",
            "subject": " ".join(mail.subject.split())[:200] or "your message",
            "intake_address": self.settings.intake_address,
            "missing": [],
            "errors": [],
            "refused_attachments": [],
            "form_url": "",
            **outcome.reply,
        }
        request = NotificationRequest(
            key=f"intake-{inbound_id}:reply",
            number=outcome.number or "",
            template="intake_reply",
            recipients=(mail.sender,),
            context=context,
            in_reply_to=mail.message_id,
        )
        outbox = self.services.outbox
        ids = await asyncio.to_thread(outbox.enqueue, request, datetime.now(UTC))
        try:
            await outbox.deliver(ids)
        except RuntimeError:
            log.warning("intake %s: reply left in the outbox for the relay", inbound_id)


def _evidence_id(inbound_id: int, position: int) -> str:
    return f"ev-{hashlib.sha256(f'mail:{inbound_id}:{position}'.encode()).hexdigest()[:16]}"


def _short(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]
