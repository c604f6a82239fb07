"""The outbox: a notification is stored before it is sent, and sent once per recipient.

`enqueue` inserts one row per recipient keyed on (notification key, recipient), so a retried
activity adds nothing; that is all a workflow does. The relay (`run`, in every worker process)
sends them: it claims one due row at a time under a lease it renews while the send is in
progress, sends it, and records the outcome only if it still holds the claim. So two relays
never send the same row, and a relay that dies mid-send leaves the row to another once its
lease runs out; it is then sent again with the same Message-ID (the first try may have reached
the server), which lets receiving systems drop the duplicate. A database outage alone sends
nothing twice: the relay keeps renewing the lease and recording the outcome until the database
is back (a lane that cannot claim stops without cancelling the others' records).

An outcome's notifications come in a burst (settled, each remedy applied, closed): each waits
until it is `RelayPolicy.coalesce` old (1 s), and the first to be claimed takes in the others
to the same recipient on the same dispute within that window (`merged_into`), in the claim's
own transaction, so they go out as one email with each part: the same email, with the same
Message-ID, on every later try, and every part in exactly one email. A busy worker can spread
an outcome's steps over seconds: while the dispute is still applying it (UNFOLDING), its mail
waits for the rest, up to `RelayPolicy.outcome_hold`, and once the dispute has closed every part
of it goes in the one email.

A temporary failure (4xx, no connection, timeout) is tried again after a growing backoff, and
logged each time. A permanent refusal (5xx to the recipient or the message) marks the row
FAILED with the server's answer and opens an admin task on its dispute; an admin sends it again
or dismisses it (`resend`, `dismiss`; CLI `accord outbox`, and the dispute page).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from enum import StrEnum
from html import escape as html_escape
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, or_, update
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from accord.directory import records as directory
from accord.disputes import texts
from accord.platform.db import SessionFactory, Turn, engine_words, unreachable
from accord.platform.wording import Names
from models.enums import DisputeStage, OutboxState, Role, TaskKind, TaskState
from models.payloads import NotificationRequest
from models.tables import Dispute, OutboxMessage, Task, may_be_row_id
from notifications.context import enrich
from notifications.mailer import Mailer, MailRefused
from notifications.render import RenderedEmail, TemplateCatalog

log = logging.getLogger("accord.outbox")

ERROR_LIMIT = 2000
"""Characters of a server's answer kept on the row (some servers answer at length)."""


def thread_root(number: str, domain: str) -> str:
    """The Message-ID every notification of a dispute replies to, so mail clients thread them."""
    return f"<{number}@{domain}>"


def mail_task_key(number: str, row_id: int) -> str:
    """The admin task about one refused message (one per message: each is resent on its own)."""
    return f"{number}:mail-{row_id}"


def intake_reply_key(inbound_id: int) -> str:
    """The outbox key (before the recipient) of the intake's answer to received message
    `inbound_id`: one answer per message, however often the message is processed."""
    return f"intake-{inbound_id}:reply"


_INTAKE_REPLY = re.compile(r"^intake-(\d+):reply:")


def answered_message(row: OutboxMessage) -> int | None:
    """The received message this outbox row answers, when it is an intake answer."""
    matched = _INTAKE_REPLY.match(row.key)
    return int(matched.group(1)) if matched else None


MERGED_TEMPLATES = ("settlement", "final_ruling", "remedy_applied", "closure")
"""The notifications of an outcome, which come in a burst (settled or finally ruled, each
remedy applied, closed): only these wait a moment and share an email. Anything else is
sent at once, on its own (an offer, a question, a deadline)."""


UNFOLDING = (DisputeStage.FORMAL_REVIEW, DisputeStage.SETTLED, DisputeStage.REMEDY)
"""A dispute's stages while an outcome's mail is still coming: a final ruling is announced
in review, a settlement once settled, then each remedy applied, then the closure."""


def _held_by_its_outcome() -> ColumnElement[bool]:
    """An outcome's mail whose dispute is still applying the outcome, younger than the hold
    (bind parameter `unfolded`: now - `RelayPolicy.outcome_hold`): it waits for the rest."""
    return and_(
        _mergeable(),
        col(OutboxMessage.created_at) > bindparam("unfolded"),
        exists().where(
            col(Dispute.number) == col(OutboxMessage.dispute_number),
            col(Dispute.stage).in_(UNFOLDING),
        ),
    )


def _mergeable() -> ColumnElement[bool]:
    """An outcome's mail on a dispute: it may share an email."""
    return and_(
        col(OutboxMessage.dispute_number).is_not(None),
        col(OutboxMessage.dispute_number) != "",
        col(OutboxMessage.template).in_(MERGED_TEMPLATES),
        ~col(OutboxMessage.key).startswith("intake-"),
    )


def _follow(session: Session, lead_id: int, values: dict[str, Any]) -> None:
    """The messages merged into `lead_id` take on what happened to it (sent, refused, sent
    again, dismissed): they went out in it, or will."""
    session.execute(
        update(OutboxMessage).where(col(OutboxMessage.merged_into) == lead_id).values(values)
    )


PHRASES: dict[str, tuple[str, str]] = {
    "settlement": ("settled", "settled"),
    "remedy_applied": ("remedy applied", "remedies applied"),
    "closure": ("closed", "closed"),
}
"""How a merged email's subject says each part (one of it, several), by template."""

_LAYOUT_PART = re.compile(r"<!-- part -->(.*?)<!-- /part -->", re.DOTALL)
_FOOTER = "\n--\n"


def merged_subject(parts: list[OutboxMessage]) -> str:
    """What happened overall: '[DSP-...] Settled, remedy applied and closed'."""
    said: list[str] = []
    counts: dict[str, int] = {}
    for row in parts:
        counts[row.template] = counts.get(row.template, 0) + 1
    for row in parts:
        if row.template in PHRASES:
            one, many = PHRASES[row.template]
            phrase = many if counts[row.template] > 1 else one
        else:
            phrase = row.subject.removeprefix(f"[{row.dispute_number}] ")
        if phrase not in said:
            said.append(phrase)
    words = said[0] if len(said) == 1 else f"{', '.join(said[:-1])} and {said[-1]}"
    words = words[:1].upper() + words[1:]
    number = parts[0].dispute_number
    return f"[{number}] {words}" if number else words


def merged_email(parts: list[OutboxMessage]) -> tuple[str, str, str]:
    """One email (subject, text, HTML) with each part in the order it happened; the
    dispute's footer once, after the last part."""
    texts = [row.text_body.rpartition(_FOOTER) for row in parts]
    footer = _FOOTER + texts[-1][2] if texts[-1][1] else ""
    bodies = [(head if sep else tail).rstrip("\n") for head, sep, tail in texts]
    text = "\n\n* * *\n\n".join(bodies) + "\n" + footer
    sections = [_LAYOUT_PART.search(row.html_body) for row in parts]
    first = sections[0]
    if first is None or any(found is None for found in sections):
        # Not from the layout (cannot be for dispute mail): the text, as HTML can carry it.
        html = f"<pre>{html_escape(text)}</pre>"
    else:
        joined = '\n<hr style="border: 0; border-top: 1px solid #d0d7de;">\n'.join(
            found.group(1) for found in sections if found is not None
        )
        html = parts[0].html_body[: first.start(1)] + joined + parts[0].html_body[first.end(1) :]
    return merged_subject(parts), text, html


_MAY_BE_DUE = (
    select(col(OutboxMessage.id))
    .where(
        col(OutboxMessage.state) == OutboxState.PENDING,
        col(OutboxMessage.merged_into).is_(None),
        or_(
            col(OutboxMessage.next_attempt_at).is_(None),
            col(OutboxMessage.next_attempt_at) <= bindparam("now"),
        ),
        or_(
            col(OutboxMessage.claimed_at).is_(None),
            col(OutboxMessage.claimed_at) < bindparam("lapsed"),
        ),
        # Held while its outcome unfolds (up to two minutes, not a second): a pass that finds
        # only such mail must not open the claim's write transaction, nudge after nudge.
        ~_held_by_its_outcome(),
    )
    .limit(1)
)
"""`Outbox._due` without the 1 s wait for an outcome's other mail, prepared once."""
WAITED_FOR = ("acknowledgement", "filing_linked")
"""The answers to a filing: the partner who filed waits for one. Under a burst of filings they
queued behind every dispute's offers and notices and left the outbox a median 16 s after the
filing in the intake benchmark. The process that stores one asks its relays for it by id
(`Outbox.claim_next`); ordering the whole queue by kind instead made each claim ten times
slower with 20,000 messages due (a sort of every due row)."""

_THIS_MAY_BE_DUE = _MAY_BE_DUE.where(col(OutboxMessage.id) == bindparam("only"))


@dataclass(frozen=True)
class RelayPolicy:
    lease: timedelta = timedelta(seconds=60)
    """How long a claim holds without renewal; the relay renews it every third of this."""
    retry_base: timedelta = timedelta(seconds=30)
    """The wait after the first temporary failure; it doubles with each further one."""
    retry_max: timedelta = timedelta(hours=1)
    concurrency: int = 4
    """Messages one relay sends at once (each on its own claim)."""
    coalesce: timedelta = timedelta(seconds=1)
    """A dispute's message waits until it is this old, and goes out as one email with the
    messages to the same person on the same dispute enqueued within this of it (settled,
    remedy applied, closed). Zero sends each at once, on its own."""
    outcome_hold: timedelta = timedelta(minutes=2)
    """How long an outcome's message waits, at most, for the rest of its outcome while its
    dispute is still applying it (UNFOLDING): a busy worker can take seconds between the
    settlement and the closure, and a remedy can wait days for an admin."""

    def backoff(self, attempts: int) -> timedelta:
        # Capped exponent: the doubling of a long outage must not overflow timedelta.
        wait: timedelta = self.retry_base * 2 ** min(max(attempts - 1, 0), 20)
        return min(wait, self.retry_max)


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    LOST = "lost"
    """The lease ran out and another relay took the row over; it records the outcome."""


@dataclass(frozen=True)
class Claim:
    token: str
    """Held in `claimed_by` while this claim lasts; the outcome is recorded only under it."""
    row_id: int
    attempts: int
    number: str
    recipient: str
    template: str
    message: EmailMessage | None
    """None if the row cannot make a message (a header no mail can carry): it fails for good
    at once instead of stopping the relay at the head of the queue on every pass."""
    problem: str | None = None


OUTAGE_PAUSE = 0.2
"""Seconds between tries of a lease renewal or an outcome's record the database could not take:
short, so that once the database is back they land before the lease runs out."""


@dataclass
class _Lease:
    """When this relay last renewed a claim it holds (the event loop's clock): the lease runs
    `RelayPolicy.lease` from then."""

    renewed_at: float


class MailNotSent(RuntimeError):
    """Some messages could not be sent this time; they stay in the outbox for the relay."""

    def __init__(self, sent: int, failures: list[str]) -> None:
        super().__init__("could not send: " + "; ".join(failures))
        self.sent = sent


class OutboxRefused(ValueError):
    """An admin's request about a message that cannot be carried out (named, with why)."""


_T = TypeVar("_T")

_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]


class Outbox:
    def __init__(
        self,
        sessions: SessionFactory,
        mailer: Mailer,
        catalog: TemplateCatalog,
        *,
        sender: str,
        domain: str,
        base_url: str,
        policy: RelayPolicy | None = None,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.catalog = catalog
        self.sender = sender
        self.domain = domain
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RelayPolicy()
        # The relays running on this outbox (one per worker in this process), woken by nudge().
        self._wakes: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        # Answers to a filing stored in this process (`WAITED_FOR`), claimed by id before the
        # oldest due row. A hint only: after a restart, or past the bound (a process storing
        # them with no relay of its own), they are sent in their turn.
        self._asked: deque[int] = deque(maxlen=10_000)
        self._asked_lock = threading.Lock()
        # The relay's claims and records wait their turn behind the disputes' writes: on
        # threads of their own, not the event loop's default ones, where they kept a filing
        # sharing the process queued for a thread (a median 10-25 ms in the lifecycle bench).
        self._threads = ThreadPoolExecutor(
            max_workers=self.policy.concurrency + 1, thread_name_prefix="outbox"
        )

    async def _off_loop(self, fn: Callable[..., _T], /, *args: Any) -> _T:
        """`asyncio.to_thread` on the outbox's own threads."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    # --- enqueueing -------------------------------------------------------------------------

    def enqueue(self, request: NotificationRequest, now: datetime) -> list[int]:
        """Store one message per recipient (insert-or-skip); returns the rows still to send."""
        with self.sessions.read() as session:
            template, rendered = self._render(session, request)
        with self.sessions.begin() as session:
            return self._store(session, request, template, rendered, now)

    def enqueue_in(
        self,
        session: Session,
        request: NotificationRequest,
        now: datetime,
        names: Names | None = None,
    ) -> list[int]:
        """`enqueue` inside the caller's write transaction (an audit entry's, whose mail stands
        or falls with it); the caller nudges the relay once it has committed, handing it the
        ids returned here: the rows of an answer to a filing (`WAITED_FOR`), to be sent first.
        `names`: the directory's names, if the caller read them before its transaction
        (`read_names`)."""
        template, rendered = self._render(session, request, names)
        ids = self._store(session, request, template, rendered, now)
        return ids if template in WAITED_FOR else []

    def read_names(self) -> Names:
        """The directory's names, read outside any write transaction: on SQLite a writer
        holds the process's one writer's turn while it reads, and these four queries were a
        fifth of what enqueueing an audit entry's mail cost it."""
        with self.sessions.read() as session:
            return directory.names(session)

    def _render(
        self, session: Session, request: NotificationRequest, names: Names | None = None
    ) -> tuple[str, RenderedEmail]:
        # A text the workflow names by its stored reference is read in here (accord.disputes.texts).
        context = texts.resolve_context(self.sessions, request.context)
        # What the reader must decide on, from the dispute's record (notifications.context);
        # the workflow names partners and people by id, their names are read here too.
        template, extra = enrich(session, request)
        if names is None:
            names = directory.names(session)
        rendered = self.catalog.render(
            template, {**context, **extra, "base_url": self.base_url, "names": names}
        )
        return template, rendered

    def _store(
        self,
        session: Session,
        request: NotificationRequest,
        template: str,
        rendered: RenderedEmail,
        now: datetime,
    ) -> list[int]:
        # An answer to a received email threads under it; a dispute's mail under the dispute.
        # An answer to an email without a Message-ID, on no dispute, threads under nothing.
        root = request.in_reply_to or (
            thread_root(request.number, self.domain) if request.number else None
        )
        prefix = request.number or "intake"
        # One query for the rows already stored and one INSERT for the new ones, as Core
        # statements (an audit entry's mail is stored while its transaction holds SQLite's one
        # writer, and the ORM's bookkeeping was most of what storing it cost).
        wanted = {
            f"{request.key}:{recipient.lower()}": recipient for recipient in request.recipients
        }
        db = session.connection()
        stored = db.execute(
            sa_select(_OUTBOX.c.key, _OUTBOX.c.id, _OUTBOX.c.state).where(
                _OUTBOX.c.key.in_(list(wanted))
            )
        ).all()
        pending = {row.key: row.id for row in stored if row.state is OutboxState.PENDING}
        taken = {row.key for row in stored}
        new = [
            {
                "key": key,
                "dispute_number": request.number,
                "template": template,
                "recipient": recipient,
                "subject": rendered.subject,
                "text_body": rendered.text,
                "html_body": rendered.html,
                "message_id": f"<{prefix}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"
                f"@{self.domain}>",
                "in_reply_to": root,
                "references": root,
                "state": OutboxState.PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
            for key, recipient in wanted.items()
            if key not in taken
        ]
        if new:
            made = db.execute(
                sa_insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True), new
            ).scalars()
            pending.update(zip((row["key"] for row in new), made, strict=True))
        # In the recipients' order: the relay sends the rows named first in this order.
        return [pending[key] for key in wanted if key in pending]

    def nudge(self, first: list[int] | None = None) -> None:
        """Wake the relays of this process now (after an enqueue), from any thread; `first`:
        committed rows to claim before the oldest due one (`enqueue_in`'s answers to a filing;
        a row stored by a transaction that did not commit must not be named: its id may be
        given to another row)."""
        if first:
            with self._asked_lock:
                self._asked.extend(first)
        for loop, wake in list(self._wakes):
            with contextlib.suppress(RuntimeError):  # that relay's loop has closed
                loop.call_soon_threadsafe(wake.set)

    def build_message(self, row: OutboxMessage) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = row.recipient
        message["Subject"] = row.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = row.message_id
        if row.in_reply_to:
            message["In-Reply-To"] = row.in_reply_to
        if row.references:
            message["References"] = row.references
        message["Auto-Submitted"] = "auto-generated"
        message["X-Accord-Dispute"] = row.dispute_number
        message.set_content(row.text_body)
        message.add_alternative(row.html_body, subtype="html")
        return message

    # --- claiming and recording ----------------------------------------------------------

    def _due_params(self, now: datetime) -> dict[str, datetime]:
        """The values of `_due`'s bind parameters at `now`."""
        return {
            "now": now,
            "lapsed": now - self.policy.lease,
            "settled": now - self.policy.coalesce,
            "unfolded": now - self.policy.outcome_hold,
        }

    @functools.cached_property
    def _due_held(self) -> ColumnElement[bool]:
        return self._due(hold=True)

    @functools.cached_property
    def _due_now(self) -> ColumnElement[bool]:
        return self._due(hold=False)

    def _due(self, *, hold: bool = True) -> ColumnElement[bool]:
        """Which rows a relay may claim, over bind parameters (`_due_params`): built once per
        outbox (`_due_held`, `_due_now`); building it for every claim was a third of the
        claim's CPU."""
        due = and_(
            col(OutboxMessage.state) == OutboxState.PENDING,
            col(OutboxMessage.merged_into).is_(None),
            or_(
                col(OutboxMessage.next_attempt_at).is_(None),
                col(OutboxMessage.next_attempt_at) <= bindparam("now"),
            ),
            or_(
                col(OutboxMessage.claimed_at).is_(None),
                col(OutboxMessage.claimed_at) < bindparam("lapsed"),
            ),
        )
        if not hold or self.policy.coalesce <= timedelta(0):
            return due
        # An outcome's mail waits a moment for what else happens with it (`_merge`), and is
        # never taken on its own while an earlier part, not yet claimed, would take it in:
        # another relay claiming that one now must find it, not lose the race for it.
        earlier = aliased(OutboxMessage)
        waits_for_earlier = exists().where(
            col(earlier.id) != col(OutboxMessage.id),
            col(earlier.state) == OutboxState.PENDING,
            col(earlier.merged_into).is_(None),
            col(earlier.attempts) == 0,
            col(earlier.dispute_number) == col(OutboxMessage.dispute_number),
            func.lower(col(earlier.recipient)) == func.lower(col(OutboxMessage.recipient)),
            col(earlier.template).in_(MERGED_TEMPLATES),
            or_(
                col(earlier.created_at) < col(OutboxMessage.created_at),
                and_(
                    col(earlier.created_at) == col(OutboxMessage.created_at),
                    col(earlier.id) < col(OutboxMessage.id),
                ),
            ),
        )
        # And while its dispute is still applying the outcome, it waits for the rest of it
        # (the closure comes once the dispute has left these stages), up to `outcome_hold`.
        # Asked before `waits_for_earlier`: that one reads the other pending rows, and a
        # thousand held rows each reading them all held SQLite's writer for seconds a pass.
        return and_(
            due,
            or_(
                ~_mergeable(),
                and_(
                    col(OutboxMessage.created_at) <= bindparam("settled"),
                    ~_held_by_its_outcome(),
                    ~waits_for_earlier,
                ),
            ),
        )

    def _unclaimed(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            col(OutboxMessage.claimed_at).is_(None),
            col(OutboxMessage.claimed_at) < now - self.policy.lease,
        )

    def claim(self, now: datetime, only: int | None = None) -> Claim | None:
        """Take the lease on the oldest due row (or on row `only`, if it is due): the row is
        ours until we record its outcome or stop renewing the lease. On its first try, the
        row takes in the messages to the same person on the same dispute enqueued within
        `policy.coalesce` of it, and carries the one email made of them all from then on."""
        if not self._any_due(now, only):
            # Most passes end on an empty queue: say so from a read, without queueing for
            # SQLite's one writer (the audit trail's entries wait behind each claim).
            return None
        token = uuid.uuid4().hex
        # Row `only` is asked for now (an intake answer): it neither waits nor merges.
        due = self._due_held if only is None else self._due_now
        params = self._due_params(now)
        if only is not None:
            due = and_(due, col(OutboxMessage.id) == only)
        # Nothing of the table is loaded in this session yet: no objects for the ORM to bring
        # up to date by evaluating the condition in Python (a tenth of the claim's CPU).
        taking = (
            update(OutboxMessage)
            .values(claimed_at=now, claimed_by=token, attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        # A pass's claim is background work; an intake answer asked for now is not.
        turn = Turn.BACKGROUND if only is None else Turn.NORMAL
        with self.sessions.begin(immediate=True, turn=turn) as session:
            row_id: int | None = None
            if session.get_bind().dialect.name == "postgresql":
                # Relays skip the rows another is claiming instead of queueing behind its lock.
                pick = (
                    select(OutboxMessage.id)
                    .where(due)
                    .order_by(col(OutboxMessage.id))
                    .limit(1)
                    .with_for_update(skip_locked=True)
                    .scalar_subquery()
                )
                row_id = session.execute(
                    taking.where(col(OutboxMessage.id) == pick)
                    .where(due)
                    .returning(col(OutboxMessage.id)),
                    params,
                ).scalar_one_or_none()
            else:
                # SQLite: BEGIN IMMEDIATE makes this transaction the only writer; the update
                # still re-checks the row is due, so the count says whether we got it.
                candidate = session.exec(
                    select(OutboxMessage.id).where(due).order_by(col(OutboxMessage.id)).limit(1),
                    params=params,
                ).first()
                if candidate is not None:
                    result = session.execute(
                        taking.where(col(OutboxMessage.id) == candidate).where(due), params
                    )
                    if result.rowcount == 1:  # type: ignore[attr-defined]
                        row_id = candidate
            if row_id is None:
                return None
            row = session.get(OutboxMessage, row_id, populate_existing=True)
            if row is None or row.id is None:  # cannot be: updated in this transaction
                return None
            if only is None and row.attempts == 1:
                self._merge(session, row, token, now)
        # Built once the claim is committed: the writer's turn is not held for it.
        message: EmailMessage | None = None
        problem: str | None = None
        try:
            message = self.build_message(row)
        except (ValueError, TypeError) as exc:  # what email.message refuses to carry
            problem = f"the message cannot be built: {exc}"
        return Claim(
            token=token,
            row_id=row_id,
            attempts=row.attempts,
            number=row.dispute_number,
            recipient=row.recipient,
            template=row.template,
            message=message,
            problem=problem,
        )

    def claim_next(self, now: datetime) -> Claim | None:
        """The relay's next claim: an answer to a filing asked for here if one is due (by id:
        no scan of the queue), else the oldest due row (`claim`)."""
        while True:
            with self._asked_lock:
                if not self._asked:
                    break
                asked = self._asked.popleft()
            taken = self.claim(now, only=asked)
            if taken is not None:
                return taken
        return self.claim(now)

    def _any_due(self, now: datetime, only: int | None) -> bool:
        """Whether a row may be due: the rule without the wait for an outcome's other mail
        (true of every row `_due` takes, and of a few it does not take yet). One prepared
        statement on a plain connection: building `_due` and an ORM session for every pass
        cost 2 ms, the query itself microseconds."""
        with self.sessions.engine.connect() as connection:
            found = connection.execute(
                _MAY_BE_DUE if only is None else _THIS_MAY_BE_DUE,
                {
                    "now": now,
                    "lapsed": now - self.policy.lease,
                    "unfolded": now - self.policy.outcome_hold,
                    "only": only,
                },
            ).first()
        return found is not None

    def _merge(self, session: Session, lead: OutboxMessage, token: str, now: datetime) -> None:
        """Make `lead` one email with the other messages to its recipient on its dispute
        enqueued within the window (within `outcome_hold` after it once the dispute has ended),
        and take those under this claim for good (`merged_into`):
        they go out only in it. Done once, on the lead's first try, in the claim's own
        transaction, so the email is the same on every later try (another relay's, after a
        crash) and each part is in exactly one email."""
        window = self.policy.coalesce
        if (
            window <= timedelta(0)
            or not lead.dispute_number
            or lead.template not in MERGED_TEMPLATES
            or lead.key.startswith("intake-")
        ):
            return
        # An outcome that has ended (its dispute closed) goes as one email however far apart a
        # busy worker spread its steps: every part up to `outcome_hold` after the lead.
        dispute = session.get(Dispute, lead.dispute_number)
        ended = dispute is not None and not dispute.stage.is_open
        after = self.policy.outcome_hold if ended else window
        siblings = (
            select(OutboxMessage)
            .where(
                _mergeable(),
                col(OutboxMessage.id) != lead.id,
                col(OutboxMessage.dispute_number) == lead.dispute_number,
                func.lower(col(OutboxMessage.recipient)) == lead.recipient.lower(),
                col(OutboxMessage.state) == OutboxState.PENDING,
                col(OutboxMessage.merged_into).is_(None),
                col(OutboxMessage.attempts) == 0,
                col(OutboxMessage.created_at) >= lead.created_at - window,
                col(OutboxMessage.created_at) <= lead.created_at + max(window, after),
                self._unclaimed(now),
            )
            .order_by(col(OutboxMessage.id))
        )
        if session.get_bind().dialect.name == "postgresql":
            # A part another relay is claiming right now stays its own: no waiting on it.
            siblings = siblings.with_for_update(skip_locked=True)
        parts = list(session.exec(siblings).all())
        if not parts:
            return
        whole = merged_email(sorted([lead, *parts], key=lambda r: (r.created_at, r.id or 0)))
        lead.subject, lead.text_body, lead.html_body = whole
        session.add(lead)
        for row in parts:
            row.merged_into = lead.id
            row.claimed_by = token
            row.claimed_at = now
            session.add(row)
        session.flush()

    def _held(self, claim: Claim) -> ColumnElement[bool]:
        return and_(
            col(OutboxMessage.id) == claim.row_id,
            col(OutboxMessage.claimed_by) == claim.token,
            col(OutboxMessage.state) == OutboxState.PENDING,
        )

    def renew(self, claim: Claim, now: datetime) -> bool:
        """Extend the lease; False if it ran out and another relay has the row now."""
        with self.sessions.begin(turn=Turn.BACKGROUND) as session:
            result = session.execute(
                update(OutboxMessage)
                .where(self._held(claim))
                .values(claimed_at=now)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def record(
        self,
        claim: Claim,
        outcome: Outcome,
        error: str | None,
        now: datetime,
        *,
        again: bool = False,
    ) -> bool:
        """Record the send's outcome, if the claim is still ours (else another relay will).

        `again`: an earlier try may have committed before its connection was cut (PostgreSQL
        going away mid-COMMIT); a row that already holds exactly this outcome is ours."""
        values: dict[str, Any]
        if outcome is Outcome.SENT:
            values = {"state": OutboxState.SENT, "sent_at": now, "claimed_by": None}
        elif outcome is Outcome.FAILED:
            values = {
                "state": OutboxState.FAILED,
                "last_error": (error or "")[:ERROR_LIMIT],
                "claimed_at": None,
                "claimed_by": None,
                "next_attempt_at": None,
            }
        else:
            values = {
                "last_error": (error or "")[:ERROR_LIMIT],
                "claimed_at": None,
                "claimed_by": None,
                "next_attempt_at": now + self.policy.backoff(claim.attempts),
            }
        # Ahead of every other writer: from the server's acceptance until this commits, a relay
        # that dies leaves the email to be sent again. Queued behind the disputes' writes (half
        # a second under load), a killed worker sent three emails twice in the chaos run.
        with self.sessions.begin(turn=Turn.URGENT) as session:
            result = session.execute(
                update(OutboxMessage)
                .where(self._held(claim))
                .values(values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return again and self._holds(session, claim.row_id, values)
            if outcome is not Outcome.RETRY:  # the parts of a merged email share its fate
                _follow(session, claim.row_id, values)
            if outcome is Outcome.FAILED:
                self._open_mail_task(session, claim, now)
        return True

    @staticmethod
    def _holds(session: Session, row_id: int, values: dict[str, Any]) -> bool:
        """Row `row_id` carries exactly these recorded values (this outcome, this moment)."""
        row = session.execute(
            sa_select(*(_OUTBOX.c[name] for name in values)).where(_OUTBOX.c.id == row_id)
        ).one_or_none()
        return row is not None and dict(zip(values, row, strict=True)) == values

    @staticmethod
    def _open_mail_task(session: Session, claim: Claim, now: datetime) -> None:
        # An intake reply to someone who filed nothing has no dispute to hang a task on; it
        # stays FAILED in the outbox, listed by `accord outbox`.
        if not claim.number or session.get(Dispute, claim.number) is None:
            return
        key = mail_task_key(claim.number, claim.row_id)
        task = session.get(Task, key)
        if task is None:
            task = Task(
                key=key,
                dispute_number=claim.number,
                kind=TaskKind.RESOLVE_MAIL,
                title=f"mail refused: {claim.template} to {claim.recipient}"[:300],
                assignee_id=None,
                assignee_role=Role.ADMIN,
                due_at=None,
                state=TaskState.OPEN,
                created_at=now,
            )
        else:  # sent again by an admin and refused again
            task.state = TaskState.OPEN
            task.closed_at = None
        session.add(task)

    # --- sending -----------------------------------------------------------------------------

    async def _keep_lease(self, claim: Claim, lease: _Lease) -> None:
        """Renew the claim every third of the lease until cancelled; a renewal the database
        cannot take now is tried again at once and then every `OUTAGE_PAUSE`, so the lease is
        renewed as soon as the database is back."""
        pause = self.policy.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(pause)
            try:
                renewed = await self._off_loop(self.renew, claim, datetime.now(UTC))
            except Exception as exc:
                if not unreachable(exc):
                    raise
                if pause != OUTAGE_PAUSE:  # once an outage, not at every try
                    log.warning(
                        "outbox message %d: lease not renewed, the database is unreachable (%s)",
                        claim.row_id,
                        engine_words(exc),
                    )
                pause = OUTAGE_PAUSE
                continue
            if not renewed:
                log.warning(
                    "outbox message %d: lease lost during a slow send; another relay has it",
                    claim.row_id,
                )
                return
            lease.renewed_at = asyncio.get_running_loop().time()
            pause = self.policy.lease.total_seconds() / 3

    async def _record_through_outage(
        self,
        claim: Claim,
        lease: _Lease,
        outcome: Outcome,
        error: str | None,
        now: datetime,
        stop: asyncio.Event | None,
    ) -> bool | None:
        """`record`, tried again every `OUTAGE_PAUSE` while the database is unreachable: the
        server may have the email already, and an outcome not recorded sends it again once a
        relay takes the row over. The lease is renewed meanwhile (`send`), so the record lands
        as soon as the database is back, ahead of any other relay while the lease holds.

        In the relay's loop (`stop` given) it goes on past the lease until the relay stops: the
        loop's next pass cannot start meanwhile, so this relay never takes its own row over,
        and a row another relay took is refused to the record (False). Otherwise (`deliver`, a
        single pass) it stops once the lease, as last renewed, has run out. None if it gave up.
        """
        loop = asyncio.get_running_loop()
        again = False
        while True:
            try:
                record = functools.partial(self.record, again=again)
                return await self._off_loop(record, claim, outcome, error, now)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                left = lease.renewed_at + self.policy.lease.total_seconds() - loop.time()
                patient = stop is not None and not stop.is_set()
                if patient:
                    left = max(left, OUTAGE_PAUSE)  # on until the database is back
                if left <= 0:
                    log.error(
                        "outbox message %d: %s, but the database stayed unreachable (%s); once"
                        " its lease runs out it is sent again, with the same Message-ID",
                        claim.row_id,
                        outcome.value,
                        engine_words(exc),
                    )
                    return None
                if not again:
                    log.warning(
                        "outbox message %d: outcome %s not recorded yet, the database is"
                        " unreachable (%s); trying again %s",
                        claim.row_id,
                        outcome.value,
                        engine_words(exc),
                        "until it is back" if patient else f"for up to {left:.0f} s",
                    )
                again = True
            await asyncio.sleep(min(OUTAGE_PAUSE, max(left, 0.0)))

    async def send(
        self, claim: Claim, stop: asyncio.Event | None = None
    ) -> tuple[Outcome, str | None]:
        """Send one claimed message, renewing its lease until its outcome is recorded (through
        a database outage: `_record_through_outage`, which `stop` bounds)."""
        lease = _Lease(asyncio.get_running_loop().time())
        renewing = asyncio.create_task(self._keep_lease(claim, lease))
        error: str | None = None
        try:
            try:
                if claim.message is None:
                    raise MailRefused(claim.problem or "the message cannot be built")
                await self.mailer.send(claim.message)
                outcome = Outcome.SENT
            except MailRefused as refused:
                outcome, error = Outcome.FAILED, refused.reason
            except Exception as exc:  # any other SMTP or network failure is worth another try
                outcome, error = Outcome.RETRY, f"{type(exc).__name__}: {exc}"
            now = datetime.now(UTC)
            recorded = await self._record_through_outage(claim, lease, outcome, error, now, stop)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if recorded is None:
            return Outcome.LOST, error
        if not recorded:
            log.warning(
                "outbox message %d: lease lost; its outcome is left to the relay holding it",
                claim.row_id,
            )
            return Outcome.LOST, error
        if outcome is Outcome.FAILED:
            log.error(
                "outbox message %d (%s to %s, %s) refused for good: %s; admin task opened",
                claim.row_id,
                claim.template,
                claim.recipient,
                claim.number or "intake",
                error,
            )
        elif outcome is Outcome.RETRY:
            log.warning(
                "outbox message %d (%s to %s): attempt %d failed: %s; next try in %s",
                claim.row_id,
                claim.template,
                claim.recipient,
                claim.attempts,
                error,
                self.policy.backoff(claim.attempts),
            )
        return outcome, error

    async def deliver(self, ids: list[int]) -> int:
        """Send these rows now, if due and unclaimed (an intake reply that should not wait for
        the relay); raises MailNotSent naming what did not go out (the relay retries it)."""
        sent = 0
        failures: list[str] = []
        for i, row_id in enumerate(ids):
            try:
                claim = await self._off_loop(self.claim, datetime.now(UTC), row_id)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                # The rest would meet the same outage: all of them are left to the relay.
                away = f"not sent now, the database is unreachable ({engine_words(exc)})"
                failures += [f"message {later}: {away}" for later in ids[i:]]
                break
            if claim is None:
                continue
            outcome, error = await self.send(claim)
            if outcome is Outcome.SENT:
                sent += 1
            elif outcome is not Outcome.LOST:
                failures.append(f"{claim.recipient}: {error}")
        if failures:
            raise MailNotSent(sent, failures)
        return sent

    async def relay_once(self, stop: asyncio.Event | None = None) -> int:
        """Send every message due now, a few at a time, each on its own claim; returns how
        many went out. A message that fails now is due again only after its backoff. Once
        `stop` is set no new message is claimed; those being sent are finished and recorded."""
        sent = 0
        lanes_running = 0
        away: list[BaseException] = []

        async def lane() -> None:
            nonlocal sent, lanes_running
            try:
                while not ((stop and stop.is_set()) or away):
                    try:
                        claim = await self._off_loop(self.claim_next, datetime.now(UTC))
                    except Exception as exc:
                        if not unreachable(exc):
                            raise
                        # The database is away: this lane stops claiming, and so do the others
                        # once their sends are recorded; raised into the group, it would cancel
                        # a lane carrying an accepted email's record through the outage.
                        away.append(exc)
                        return
                    if claim is None:
                        return
                    # Something was due, so there may be more: another lane joins. Lanes start
                    # as mail turns up, not all at once: started together, each raced for the
                    # one message an enqueue had just woken the relay for.
                    widen()
                    outcome, _ = await self.send(claim, stop)
                    sent += outcome is Outcome.SENT
            finally:
                lanes_running -= 1

        # A task group: if one lane fails (the database went away), the others stop with it
        # instead of running on behind the next pass.
        async with asyncio.TaskGroup() as lanes:

            def widen() -> None:
                nonlocal lanes_running
                if lanes_running < max(1, self.policy.concurrency):
                    lanes_running += 1
                    lanes.create_task(lane())

            widen()
        if away:
            raise away[0]
        return sent

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """The relay: a pass whenever something is enqueued here (nudge) and every `interval`
        seconds (mail enqueued by other processes, backoffs running out), until `stop` is set;
        then it returns once the sends under way are finished and recorded."""
        wake = asyncio.Event()
        me = (asyncio.get_running_loop(), wake)
        self._wakes.add(me)
        try:
            while not stop.is_set():
                wake.clear()  # a nudge during the pass brings another pass at once
                try:
                    sent = await self.relay_once(stop)
                    if sent:
                        log.info("outbox relay sent %d messages", sent)
                except Exception:
                    log.exception("outbox relay pass failed; trying again")
                stopping = asyncio.create_task(stop.wait())
                woken = asyncio.create_task(wake.wait())
                try:
                    await asyncio.wait(
                        {stopping, woken},
                        timeout=await self._next_pass_in(interval),
                        return_when="FIRST_COMPLETED",
                    )
                finally:
                    stopping.cancel()
                    woken.cancel()
        finally:
            self._wakes.discard(me)
            # The connections the mailer kept for the next messages (SmtpMailer) are closed.
            closing = getattr(self.mailer, "close", None)
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing()

    async def _next_pass_in(self, interval: float) -> float:
        """Seconds to the next pass: `interval`, or sooner when a message waiting for its
        dispute's other mail (`RelayPolicy.coalesce`, `outcome_hold`) is due before then."""
        window = self.policy.coalesce
        if window <= timedelta(0):
            return interval
        try:
            held = await asyncio.to_thread(self._next_release, datetime.now(UTC))
        except Exception:  # the database is away: the next pass says so
            return interval
        if held is None:
            return interval
        wait = (held - datetime.now(UTC)).total_seconds()
        return min(interval, max(wait, 0.0) + 0.01)

    def _next_release(self, now: datetime) -> datetime | None:
        """When the next held outcome's mail comes out of its wait: the end of its 1 s window,
        or of its outcome's hold."""
        pending = and_(
            col(OutboxMessage.state) == OutboxState.PENDING,
            col(OutboxMessage.merged_into).is_(None),
            _mergeable(),
        )
        with self.sessions.read() as session:
            windowed = session.exec(
                select(func.min(OutboxMessage.created_at)).where(
                    pending, col(OutboxMessage.created_at) > now - self.policy.coalesce
                )
            ).one()
            unfolding = session.exec(
                select(func.min(OutboxMessage.created_at)).where(pending, _held_by_its_outcome()),
                params={"unfolded": now - self.policy.outcome_hold},
            ).one()
        ends = [
            *([windowed + self.policy.coalesce] if windowed is not None else []),
            *([unfolding + self.policy.outcome_hold] if unfolding is not None else []),
        ]
        return min(ends, default=None)

    # --- what admins see and do ------------------------------------------------------------

    def undelivered(self, number: str | None = None) -> list[OutboxMessage]:
        """Messages refused for good (failed, or failed and dismissed), newest first; of one
        dispute, or of all."""
        with self.sessions.read() as session:
            query = select(OutboxMessage).where(
                col(OutboxMessage.state).in_([OutboxState.FAILED, OutboxState.DISMISSED]),
                # A part of a merged email is listed as that email.
                col(OutboxMessage.merged_into).is_(None),
            )
            if number is not None:
                query = query.where(OutboxMessage.dispute_number == number)
            return list(session.exec(query.order_by(col(OutboxMessage.id).desc())).all())

    def refused_intake_replies(self) -> list[OutboxMessage]:
        """The intake's answers refused for good that belong to no dispute (an incomplete
        filing, staff writing without a number): no dispute page or admin task shows them, the
        intake page does, next to the message each answers. Newest first."""
        with self.sessions.read() as session:
            rows = session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.state == OutboxState.FAILED)
                .where(
                    or_(
                        col(OutboxMessage.dispute_number).is_(None),
                        col(OutboxMessage.dispute_number) == "",
                    )
                )
                .where(col(OutboxMessage.key).startswith("intake-"))
                .order_by(col(OutboxMessage.id).desc())
                .limit(200)
            ).all()
        return [r for r in rows if answered_message(r) is not None]

    def message(self, row_id: int) -> OutboxMessage | None:
        if not may_be_row_id(row_id):  # not an id the column could hold
            return None
        with self.sessions.read() as session:
            return session.get(OutboxMessage, row_id)

    def waiting(self) -> list[OutboxMessage]:
        """Messages still to be sent (due, or waiting out a backoff), oldest first."""
        with self.sessions.read() as session:
            return list(
                session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.state == OutboxState.PENDING)
                    .order_by(col(OutboxMessage.id))
                ).all()
            )

    def _admin_change(
        self,
        row_id: int,
        allowed: tuple[OutboxState, ...],
        values: dict[str, Any],
        task_state: TaskState,
        now: datetime,
        doing: str,
    ) -> OutboxMessage:
        if not may_be_row_id(row_id):
            raise OutboxRefused(f"message {row_id}: no such message in the outbox")
        with self.sessions.begin() as session:
            # One conditional update: an admin racing another (or a dismissal racing a resend
            # the relay has already claimed) changes the row once, from the state it checked.
            changed = session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row_id)
                .where(col(OutboxMessage.merged_into).is_(None))
                .where(col(OutboxMessage.state).in_(allowed))
                .values(values)
            )
            row = session.get(OutboxMessage, row_id, populate_existing=True)
            if row is None:
                raise OutboxRefused(f"message {row_id}: no such message in the outbox")
            if row.merged_into is not None:
                raise OutboxRefused(
                    f"message {row_id}: cannot {doing}: it went out as part of message"
                    f" {row.merged_into}; {doing.split(' ')[0]} that one"
                )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                why = {
                    OutboxState.SENT: f"it was sent at {row.sent_at:%Y-%m-%d %H:%M} UTC"
                    if row.sent_at
                    else "it was sent",
                    OutboxState.PENDING: "it is still being sent (it has not failed)",
                    OutboxState.DISMISSED: "it was dismissed already",
                    OutboxState.FAILED: "it has failed",
                }[row.state]
                raise OutboxRefused(f"message {row_id}: cannot {doing}: {why}")
            _follow(session, row_id, values)
            task = session.get(Task, mail_task_key(row.dispute_number, row_id))
            if task is not None and task.state is TaskState.OPEN:
                task.state = task_state
                task.closed_at = now
                session.add(task)
            return row

    def resend(self, row_id: int, now: datetime) -> OutboxMessage:
        """Send a refused (or dismissed) message again, as it was, with its Message-ID; its
        admin task is done. Refused again, it fails again and reopens the task."""
        row = self._admin_change(
            row_id,
            (OutboxState.FAILED, OutboxState.DISMISSED),
            {
                "state": OutboxState.PENDING,
                "next_attempt_at": now,
                "claimed_at": None,
                "claimed_by": None,
            },
            TaskState.DONE,
            now,
            "send it again",
        )
        log.info("outbox message %d: sent again by an admin", row_id)
        self.nudge()
        return row

    def dismiss(self, row_id: int, now: datetime) -> OutboxMessage:
        """Give up on a refused message for good; its admin task is closed as cancelled."""
        row = self._admin_change(
            row_id,
            (OutboxState.FAILED,),
            {"state": OutboxState.DISMISSED},
            TaskState.CANCELLED,
            now,
            "dismiss it",
        )
        log.info("outbox message %d: dismissed by an admin", row_id)
        return row

    def send_waiting_now(self, now: datetime) -> int:
        """Make every message waiting out a backoff due now (the mail server is back)."""
        with self.sessions.begin() as session:
            result = session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.state) == OutboxState.PENDING)
                .where(col(OutboxMessage.next_attempt_at) > now)
                .values(next_attempt_at=now)
            )
            count = int(result.rowcount)  # type: ignore[attr-defined]
        self.nudge()
        return count
