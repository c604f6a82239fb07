"""Filing a dispute: validate against the directory and playbook, store, then start the workflow.

The filing is stored before it is acknowledged. The same submission twice maps to the same
receipt and number; a submission matching an open dispute (same parties, category and a
shared contested object) is linked to it instead of opening a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, exists
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from accord.channel import alerts
from accord.disputes import evidence
from accord.platform.db import SessionFactory, Turn
from accord.playbooks.library import PlaybookLibrary
from models.enums import TERMINAL_STAGES, DisputeStage, EvidenceVisibility, ObjectKind, Role
from models.payloads import (
    Actor,
    AlertOrigin,
    ContestedObject,
    DisputeInput,
    FilingResult,
    FilingSubmission,
    LinkFiling,
    Party,
)
from models.tables import (
    Account,
    ConflictAlert,
    Dispute,
    DisputeCounter,
    DisputeEvent,
    DisputeObject,
    DisputeParty,
    FilingReceipt,
    Partner,
    PartnerContact,
    Person,
    Territory,
)
from models.text import recorded
from workflows.dispute import DisputeWorkflow


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


NUMBER_TRIES = 3
"""A new filing is stored again at most this many times when its number was taken."""
log = logging.getLogger("accord.filing")
NUMBER = re.compile(r"DSP-(\d{4})-(\d{6,})")
RECONCILE_MARGIN = timedelta(days=1)
"""How far before the newest dispute here reconciliation looks for workflows (clocks differ,
and a filing's row and its workflow's start are not the same instant)."""


@dataclass(frozen=True)
class Reconciled:
    numbers: dict[int, int]
    """By year, the highest dispute number Temporal knows (the counter is now at least it)."""
    adopted: list[str]
    """Running disputes whose rows were missing, stored again from their workflows."""
    lost: list[str]
    """Closed disputes whose rows are missing: their records cannot be rebuilt."""
    unreadable: list[str]
    """Running disputes whose rows are missing and whose workflow's input cannot be read here
    (sealed with a payload key this process lacks, say): not stored again."""


def _filing_columns(
    submission: FilingSubmission, version: str, filed_at: datetime
) -> dict[str, object]:
    """A dispute row's columns that come from its filing."""
    return {
        "category": submission.category,
        "claimant_id": submission.claimant_id,
        "respondent_ids": list(submission.respondent_ids),
        "party_key": party_key(submission),
        "contested_objects": [o.model_dump(mode="json") for o in submission.contested_objects],
        "summary": submission.summary,
        "facts": submission.facts,
        "desired_remedy": submission.desired_remedy,
        "amount_at_stake": submission.amount_at_stake,
        "currency": submission.currency,
        "occurred_on": submission.occurred_on,
        "playbook_version": version,
        "filed_by": submission.filed_by,
        "filed_at": filed_at,
    }


def _insert_filing(
    session: Session, number: str, submission: FilingSubmission, version: str, filed_at: datetime
) -> None:
    """A new dispute's rows: the dispute at FILED, its contested objects and its parties."""
    session.add(
        Dispute(
            number=number,
            stage=DisputeStage.FILED,
            updated_at=filed_at,
            **_filing_columns(submission, version, filed_at),  # type: ignore[arg-type]
        )
    )
    session.flush()
    _insert_parts(session, number, submission)


def _insert_parts(session: Session, number: str, submission: FilingSubmission) -> None:
    """A dispute's contested objects and parties, from its filing."""
    for obj in submission.contested_objects:
        session.add(DisputeObject(dispute_number=number, kind=obj.kind, ref=obj.ref))
    session.add(
        DisputeParty(dispute_number=number, partner_id=submission.claimant_id, side="claimant")
    )
    for respondent in submission.respondent_ids:
        session.add(DisputeParty(dispute_number=number, partner_id=respondent, side="respondent"))


class FilingRejected(ValueError):
    """The submission cannot be filed; nothing was written."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


_POLLING: dict[tuple[int, str], set[int]] = {}
"""The workers of this process polling now, by their client (its id) and task queue."""


def worker_polling(client: Client, task_queue: str, worker: object, polling: bool) -> None:
    """Say that `worker`, on `client` and `task_queue`, polls now (or no longer does): a filing
    on that client asks for its dispute's first workflow task back only while one does."""
    key = (id(client), task_queue)
    workers = _POLLING.setdefault(key, set())
    if polling:
        workers.add(id(worker))
    else:
        workers.discard(id(worker))
        if not workers:
            _POLLING.pop(key, None)


def polled_here(client: Client, task_queue: str) -> bool:
    """Whether a worker of this process polls `task_queue` on `client` now."""
    return bool(_POLLING.get((id(client), task_queue)))


def filing_key(submission: FilingSubmission) -> str:
    if submission.submission_id:
        return f"{submission.claimant_id}:{submission.submission_id}"
    canonical = submission.model_dump(mode="json", exclude={"submission_id"})
    canonical["respondent_ids"] = sorted(canonical["respondent_ids"])
    body = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def submission_of(dispute: Dispute) -> FilingSubmission:
    """The submission a stored dispute was filed from (its client key aside); read back as
    recorded text, since it may have been taken in under an older rule (models.text)."""
    with recorded():
        return _submission_of(dispute)


def _submission_of(dispute: Dispute) -> FilingSubmission:
    return FilingSubmission(
        claimant_id=dispute.claimant_id,
        respondent_ids=list(dispute.respondent_ids),
        category=dispute.category,
        contested_objects=[ContestedObject.model_validate(o) for o in dispute.contested_objects],
        summary=dispute.summary,
        facts=dispute.facts,
        desired_remedy=dispute.desired_remedy,
        amount_at_stake=dispute.amount_at_stake,
        currency=dispute.currency,
        occurred_on=dispute.occurred_on,
        filed_by=dispute.filed_by,
    )


def party_key(submission: FilingSubmission) -> str:
    return "|".join(sorted([submission.claimant_id, *submission.respondent_ids]))


ALERT_KEY = re.compile(r":alert-(\d+)$")
"""A filing key of a converted conflict alert (its submission id is alert-<id>)."""

FILING_STAFF = (Role.ADMIN,)
"""Who may file for a partner, by converting a conflict alert into a dispute."""


class FilingService:
    def __init__(
        self,
        sessions: SessionFactory,
        playbooks: PlaybookLibrary,
        client: Client,
        *,
        task_queue: str,
        admin_email: str,
        task_timeout: timedelta,
    ) -> None:
        self.sessions = sessions
        self.playbooks = playbooks
        self.client = client
        self.task_queue = task_queue
        self.admin_email = admin_email
        self.task_timeout = task_timeout

    async def file(
        self,
        submission: FilingSubmission,
        now: datetime | None = None,
        *,
        key: str | None = None,
        origin: AlertOrigin | None = None,
    ) -> FilingResult:
        """`key`: the receipt's key when a stored filing is filed again (it lost its number).
        `origin`: the conflict alert a channel manager made this dispute from (its evidence
        snapshot is attached at filing); its `filed_by` is the manager, not a partner contact."""
        now = now or datetime.now(UTC)
        key = key or filing_key(submission)
        for _ in range(NUMBER_TRIES):
            # The database work is synchronous (a blocking driver, SQLite's one writer): it runs
            # on a thread, so the event loop it is called from (which the worker may share) goes
            # on.
            stored = await asyncio.to_thread(self._store, submission, key, now, origin)
            if isinstance(stored, FilingReceipt):
                answer = await self._repeat(stored, submission)
                if answer is not None:
                    return answer
                continue  # its number was a lost dispute's: stored again under the next
            if isinstance(stored, str):
                return await self._link(stored, key, submission, now, origin)
            if await self._start(stored, key, fresh=True):
                return FilingResult(
                    number=stored.number,
                    linked=False,
                    duplicate=False,
                    message=f"filed as {stored.number}",
                )
        raise RuntimeError(f"no free dispute number after {NUMBER_TRIES} tries")

    async def _start(self, dispute: DisputeInput, key: str, *, fresh: bool) -> bool:
        """Start the dispute's workflow. True: it runs this filing, started now, or before for a
        filing stored before (`fresh` False: a repeat, a filing stranded by a crash). False: its
        number belongs to another filing's workflow, and this filing was taken off it.

        A number taken from the counter, or stored after a restore, can be one whose workflow
        runs a dispute this database lost (restored from a backup older than Temporal's, and
        not reconciled yet). Attaching this filing to that workflow would mix the two (this
        filing's row, that dispute's workflow). The number is given back to that dispute
        (_give_back), the database reconciled, and the caller files this one again: under the
        next number, or, when it is that dispute's own filing sent again, as a repeat of it."""
        try:
            await self.client.start_workflow(
                DisputeWorkflow.run,
                dispute,
                id=dispute.number,
                task_queue=self.task_queue,
                task_timeout=self.task_timeout,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # The first workflow task comes back with the start and runs on this process's
                # worker when it shares the client (the intake's, `accord run`'s), so the
                # dispute is acknowledged at once; queued, it waited behind every running
                # dispute's tasks (5 to 35 s under the intake bench). Only while that worker
                # polls: one built and not yet running (or stopping) on the client would be
                # handed the task and hold it until its timeout (10 s).
                request_eager_start=polled_here(self.client, self.task_queue),
            )
            if dispute.origin is not None:
                # Started (now, or by the worker after a crash): the alert points at it.
                await asyncio.to_thread(
                    alerts.made_dispute,
                    self.sessions,
                    dispute.origin.alert_id,
                    dispute.number,
                    dispute.filing.claimant_id,
                    by=dispute.origin.converted_by.id,
                    now=datetime.now(UTC),
                )
            return True
        except WorkflowAlreadyStartedError:
            pass
        theirs = await self._input_of(dispute.number)
        if not fresh and theirs is not None and filing_key(theirs.filing) == key:
            return True  # stored and started before: this filing's own workflow
        log.warning(
            "dispute number %s belongs to a workflow of a filing the database does not have (a"
            " restore not reconciled yet): reconciling, and filing this one again",
            dispute.number,
        )
        await self._give_back(dispute.number, theirs)
        await self.reconcile_with_temporal()
        return False

    async def _give_back(self, number: str, theirs: DisputeInput | None) -> None:
        """Make dispute `number`'s rows its workflow's again. A running workflow's filing is
        written over this filing's row, in place (its records may already have landed on it);
        a closed one's, or one this process cannot read, is not rebuilt (reconcile names it)
        and this filing's rows are removed."""
        running = (
            await self.client.get_workflow_handle(number).describe()
        ).status == WorkflowExecutionStatus.RUNNING
        if theirs is not None and running:
            await asyncio.to_thread(self._rewrite_as, theirs)
        else:
            await asyncio.to_thread(self._take_back, number)

    def _rewrite_as(self, dispute: DisputeInput) -> None:
        number = dispute.number
        with self.sessions.begin() as session:
            for table in (DisputeParty, DisputeObject):
                session.exec(delete(table).where(col(table.dispute_number) == number))
            session.exec(delete(FilingReceipt).where(col(FilingReceipt.dispute_number) == number))
            session.flush()
            row = session.get(Dispute, number)
            if row is None:
                _insert_filing(
                    session, number, dispute.filing, dispute.terms.version, dispute.filed_at
                )
            else:
                columns = _filing_columns(dispute.filing, dispute.terms.version, dispute.filed_at)
                for name, value in columns.items():
                    setattr(row, name, value)
                session.add(row)
                session.flush()
                _insert_parts(session, number, dispute.filing)
            key = filing_key(dispute.filing)
            if session.get(FilingReceipt, key) is None:
                session.add(
                    FilingReceipt(
                        filing_key=key,
                        dispute_number=number,
                        filed_by=dispute.filing.filed_by,
                        received_at=dispute.filed_at,
                    )
                )

    def _take_back(self, number: str) -> None:
        """Remove a filing's rows from a number another dispute's workflow holds (its workflow
        never started, and that one writes nothing here)."""
        with self.sessions.begin() as session:
            for table in (DisputeParty, DisputeObject):
                session.exec(delete(table).where(col(table.dispute_number) == number))
            session.exec(delete(FilingReceipt).where(col(FilingReceipt.dispute_number) == number))
            session.exec(delete(Dispute).where(col(Dispute.number) == number))

    def _store(
        self,
        submission: FilingSubmission,
        key: str,
        now: datetime,
        origin: AlertOrigin | None = None,
    ) -> FilingReceipt | str | DisputeInput:
        """Validate and store a new filing: the receipt of the same submission received
        before, the number of the open dispute it matches, or the new dispute's input."""
        with self.sessions.read() as session:
            receipt = session.get(FilingReceipt, key)
        if receipt is not None:
            return receipt

        playbook = self.playbooks.in_force(now.date())
        with self.sessions.read() as session:
            parties = self._validate(
                session,
                submission,
                now,
                playbook.filing_window_days,
                filer=None if origin is None else origin.converted_by,
            )
            existing = self._open_match(session, submission)
        if existing is not None:
            return existing

        try:
            # Someone waits on this answer: it goes before the disputes' and the mail's writes.
            with self.sessions.begin(turn=Turn.URGENT) as session:
                number = self._next_number(session, now.year)
                _insert_filing(session, number, submission, playbook.version, now)
                session.add(
                    FilingReceipt(
                        filing_key=key,
                        dispute_number=number,
                        filed_by=submission.filed_by,
                        received_at=now,
                    )
                )
        except IntegrityError:
            # The same submission raced in from another process; it owns the receipt.
            with self.sessions.read() as session:
                receipt = session.get(FilingReceipt, key)
            if receipt is None:
                raise
            return receipt

        return DisputeInput(
            number=number,
            filing=submission,
            filed_at=now,
            claimant=parties[0],
            respondents=tuple(parties[1:]),
            terms=playbook.terms_for(submission.category),
            admin_email=self.admin_email,
            origin=origin,
        )

    # --- after a restore ----------------------------------------------------------------------

    async def reconcile_with_temporal(self) -> Reconciled:
        """Bring Accord's database level with Temporal after it was restored from a backup
        older than Temporal's (the operator's guide takes Accord's first): a dispute filed
        between the two backups has a workflow but no row here, and its number is free again
        in the counter. Every number Temporal knows is taken out of the counter (a new filing
        would otherwise get a number whose workflow is another dispute's); each running dispute
        whose row is missing is stored again from its workflow's input, which holds the whole
        filing, so that its records land and it goes on (its steps taken before the restore
        become a gap entry in its trail). A closed one cannot be rebuilt: it is listed in
        `lost` (and `accord verify --all` reports it). Safe to run at any time and from several
        processes at once; the worker runs it when it starts.

        Only workflows started since shortly before the newest dispute here are looked at:
        anything older was in the backup."""
        with self.sessions.read() as session:
            newest = session.exec(
                select(Dispute.filed_at).order_by(col(Dispute.filed_at).desc()).limit(1)
            ).first()
        query = "WorkflowType = 'DisputeWorkflow'"
        if newest is not None:
            since = (newest - RECONCILE_MARGIN).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            query += f" AND StartTime >= '{since}'"
        highest: dict[int, int] = {}
        running: dict[str, bool] = {}
        async for execution in self.client.list_workflows(query):
            match = NUMBER.fullmatch(execution.id)
            if match is None:
                continue
            year, sequence = int(match[1]), int(match[2])
            highest[year] = max(highest.get(year, 0), sequence)
            running[execution.id] = running.get(execution.id, False) or (
                execution.status == WorkflowExecutionStatus.RUNNING
            )
        missing = await asyncio.to_thread(self._missing, highest, sorted(running))
        adopted, unreadable = [], []
        for number in (n for n in missing if running[n]):
            dispute = await self._input_of(number)
            if dispute is None:
                unreadable.append(number)
            elif await asyncio.to_thread(self._store_adopted, dispute):
                adopted.append(number)
        lost = [n for n in missing if not running[n]]
        return Reconciled(numbers=highest, adopted=adopted, lost=lost, unreadable=unreadable)

    def _missing(self, highest: dict[int, int], numbers: list[str]) -> list[str]:
        """Moves each year's counter past the highest number Temporal knows; the numbers that
        have no dispute here."""
        with self.sessions.begin() as session:
            for year, sequence in highest.items():
                upsert = (
                    pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
                )
                statement = upsert(DisputeCounter).values(year=year, last=sequence)
                session.execute(
                    statement.on_conflict_do_update(
                        index_elements=[col(DisputeCounter.year)],
                        set_={
                            "last": case(
                                (
                                    col(DisputeCounter.last) < statement.excluded.last,
                                    statement.excluded.last,
                                ),
                                else_=col(DisputeCounter.last),
                            )
                        },
                    )
                )
            present = set(
                session.exec(select(Dispute.number).where(col(Dispute.number).in_(numbers))).all()
            )
        return [n for n in numbers if n not in present]

    async def _input_of(self, number: str) -> DisputeInput | None:
        """The input of dispute `number`'s workflow (its current run's, which carries the whole
        filing too), or None if it cannot be read here: sealed with a key this process does not
        have, or not a dispute's input. Temporal's own errors are raised."""
        async for event in self.client.get_workflow_handle(number).fetch_history_events():
            payloads = list(event.workflow_execution_started_event_attributes.input.payloads)
            try:
                [dispute] = await self.client.data_converter.decode(payloads, [DisputeInput])
            except Exception as error:  # the key, the payload's shape: told; the others go on
                log.warning(
                    "the input of workflow %s cannot be read (%s)", number, type(error).__name__
                )
                return None
            return dispute if isinstance(dispute, DisputeInput) else None
        return None

    def _store_adopted(self, dispute: DisputeInput) -> bool:
        key = filing_key(dispute.filing)
        try:
            with self.sessions.begin() as session:
                if session.get(Dispute, dispute.number) is not None:
                    return False
                _insert_filing(
                    session, dispute.number, dispute.filing, dispute.terms.version, dispute.filed_at
                )
                # The same submission sent again maps to it (unless it was filed anew already).
                if session.get(FilingReceipt, key) is None:
                    session.add(
                        FilingReceipt(
                            filing_key=key,
                            dispute_number=dispute.number,
                            filed_by=dispute.filing.filed_by,
                            received_at=dispute.filed_at,
                        )
                    )
        except IntegrityError:
            return False  # another process stored it first
        return True

    # --- validation ---------------------------------------------------------------------------

    def _validate(
        self,
        session: Session,
        s: FilingSubmission,
        now: datetime,
        window_days: int,
        *,
        filer: Actor | None = None,
        check_filer: bool = True,
    ) -> list[Party]:
        """`filer`: the staff member filing for the claimant (a conversion of a conflict alert),
        in place of a contact of the claimant; `check_filer` False for a filing validated when
        it was stored and rebuilt now (a contact deactivated since does not strand it)."""
        errors: list[FieldError] = []
        parties: list[Party] = []
        for field, partner_id in [("claimant_id", s.claimant_id)] + [
            (f"respondent_ids[{i}]", r) for i, r in enumerate(s.respondent_ids)
        ]:
            partner = session.get(Partner, partner_id)
            if partner is None or not partner.active:
                errors.append(FieldError(field, f"unknown partner {partner_id!r}"))
                continue
            contacts = session.exec(
                select(PartnerContact.email).where(
                    PartnerContact.partner_id == partner_id,
                    PartnerContact.active == True,  # noqa: E712
                )
            ).all()
            parties.append(
                Party(
                    partner_id=partner.id,
                    name=partner.name,
                    tier=partner.tier,
                    region=partner.regions[0] if partner.regions else "unknown",
                    calendar=partner.calendar,
                    contacts=tuple(contacts),
                )
            )
        if filer is not None:
            person = session.get(Person, filer.id)
            if person is None or not person.active or person.role not in FILING_STAFF:
                errors.append(FieldError("filed_by", f"{filer.id} may not file for a partner"))
            elif person.email.lower() != s.filed_by.lower():
                errors.append(FieldError("filed_by", f"is not {filer.id}'s address"))
        elif check_filer:
            contact = session.exec(
                select(PartnerContact).where(PartnerContact.email == s.filed_by.lower())
            ).first()
            if contact is None or not contact.active or contact.partner_id != s.claimant_id:
                errors.append(
                    FieldError(
                        "filed_by", f"{s.filed_by} is not an active contact of {s.claimant_id}"
                    )
                )
        for i, obj in enumerate(s.contested_objects):
            known: object = True
            if obj.kind is ObjectKind.ACCOUNT:
                known = session.get(Account, obj.ref)
            elif obj.kind is ObjectKind.TERRITORY:
                known = session.get(Territory, obj.ref)
            if known is None:
                errors.append(
                    FieldError(
                        f"contested_objects[{i}].ref", f"unknown {obj.kind.value} {obj.ref!r}"
                    )
                )
        age = (now.date() - s.occurred_on).days
        if age < 0:
            errors.append(FieldError("occurred_on", "is in the future"))
        elif age > window_days:
            errors.append(
                FieldError(
                    "occurred_on",
                    f"outside the filing window: {age} days ago, the playbook allows {window_days}",
                )
            )
        if errors:
            raise FilingRejected(errors)
        return parties

    def _open_match(self, session: Session, s: FilingSubmission) -> str | None:
        for obj in s.contested_objects:
            match = session.exec(
                select(Dispute.number)
                .join(DisputeObject, col(DisputeObject.dispute_number) == col(Dispute.number))
                .where(Dispute.party_key == party_key(s))
                .where(Dispute.category == s.category)
                .where(col(Dispute.stage).not_in(TERMINAL_STAGES))
                .where(DisputeObject.kind == obj.kind, DisputeObject.ref == obj.ref)
                .order_by(col(Dispute.filed_at))
            ).first()
            if match:
                return match
        return None

    # --- writing --------------------------------------------------------------------------------

    @staticmethod
    def _next_number(session: Session, year: int) -> str:
        # One statement creates the year's counter or bumps it: two filings that both found no
        # counter for the year would otherwise both insert it (PostgreSQL: a duplicate key for
        # the one that commits second), where the second must take the next number.
        upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        bumped = session.execute(
            upsert(DisputeCounter)
            .values(year=year, last=1)
            .on_conflict_do_update(
                index_elements=[col(DisputeCounter.year)],
                set_={"last": DisputeCounter.last + 1},
            )
            .returning(col(DisputeCounter.last))
        ).scalar_one()
        return f"DSP-{year}-{bumped:06d}"

    async def _link(
        self,
        number: str,
        key: str,
        s: FilingSubmission,
        now: datetime,
        origin: AlertOrigin | None = None,
    ) -> FilingResult:
        await asyncio.to_thread(self._store_link, number, key, s, now)
        await self._tell_workflow_of_link(number, key, s, origin)
        return FilingResult(
            number=number,
            linked=True,
            duplicate=False,
            message=(
                f"matches open dispute {number} (same parties, category and contested object);"
                " linked to it"
            ),
        )

    def _store_link(self, number: str, key: str, s: FilingSubmission, now: datetime) -> None:
        # IntegrityError: a concurrent identical submission recorded the receipt first.
        with contextlib.suppress(IntegrityError), self.sessions.begin(turn=Turn.URGENT) as session:
            session.add(
                FilingReceipt(
                    filing_key=key,
                    dispute_number=number,
                    linked=True,
                    filed_by=s.filed_by,
                    received_at=now,
                )
            )

    async def _tell_workflow_of_link(
        self, number: str, key: str, s: FilingSubmission, origin: AlertOrigin | None = None
    ) -> None:
        handle = self.client.get_workflow_handle(number)
        # Refused if the dispute closed meanwhile; the receipt still records the link.
        with contextlib.suppress(WorkflowUpdateFailedError):
            await handle.execute_update(
                DisputeWorkflow.link_filing,
                LinkFiling(
                    actor=Actor(id=s.filed_by, role=Role.SYSTEM, partner_id=s.claimant_id),
                    filing_key=key,
                    summary=s.summary,
                    evidence=origin.evidence if origin else None,
                ),
            )

    async def _repeat(self, receipt: FilingReceipt, s: FilingSubmission) -> FilingResult | None:
        """The same submission again: same number, and finish whatever a crash interrupted.
        None if its number turned out to be a lost dispute's (see _start): file it again."""
        if receipt.linked:
            origin = await asyncio.to_thread(
                self._origin, receipt.filing_key, s.filed_by, receipt.dispute_number
            )
            await self._tell_workflow_of_link(receipt.dispute_number, receipt.filing_key, s, origin)
        else:
            stranded = await asyncio.to_thread(
                self._unstarted, receipt.dispute_number, s, receipt.filing_key
            )
            if stranded is not None and not await self._start(
                stranded, receipt.filing_key, fresh=False
            ):
                return None
        return FilingResult(
            number=receipt.dispute_number,
            linked=receipt.linked,
            duplicate=True,
            message=f"this submission was already received as {receipt.dispute_number}",
        )

    async def start_stranded(self, older_than: timedelta = timedelta(minutes=1)) -> list[str]:
        """Start the workflow of any filing stored but never started (a crash between the two).

        The filer was not acknowledged in that case, but the filing was stored, and stored
        filings are never lost: the worker calls this periodically.
        """
        cutoff = datetime.now(UTC) - older_than
        started = []
        for dispute, key in await asyncio.to_thread(self._stranded, cutoff):
            if await self._start(dispute, key, fresh=False):
                started.append(dispute.number)
            else:  # its number was a lost dispute's: filed again, under the next one
                started.append((await self.file(dispute.filing, key=key)).number)
        return started

    def _unstarted(self, number: str, s: FilingSubmission, key: str) -> DisputeInput | None:
        """The input of dispute `number` if it was stored but its workflow may not have
        started (it is still at FILED)."""
        with self.sessions.read() as session:
            dispute = session.get(Dispute, number)
        if dispute is None or dispute.stage is not DisputeStage.FILED:
            return None
        return self._rebuild_input(dispute, s, key)

    def _stranded(self, cutoff: datetime) -> list[tuple[DisputeInput, str]]:
        """Filings stored and never started, each with its receipt's key."""
        with self.sessions.read() as session:
            stranded = session.exec(
                select(Dispute)
                .where(Dispute.stage == DisputeStage.FILED)
                .where(col(Dispute.filed_at) < cutoff)
                .where(~exists().where(col(DisputeEvent.dispute_number) == col(Dispute.number)))
                .limit(100)
            ).all()
            keys = {
                r.dispute_number: r.filing_key
                for r in session.exec(
                    select(FilingReceipt).where(
                        col(FilingReceipt.dispute_number).in_([d.number for d in stranded])
                    )
                )
            }
        found = []
        for dispute in stranded:
            submission = submission_of(dispute)
            key = keys.get(dispute.number, filing_key(submission))
            found.append((self._rebuild_input(dispute, submission, key), key))
        return found

    def _origin(self, key: str, filed_by: str, number: str) -> AlertOrigin | None:
        """The conflict alert a stored filing was made from (its key names it), so a filing
        started or linked again after a crash keeps its snapshot. Only for a filing by the admin
        who converted that alert: a partner's own submission id naming an alert gets nothing."""
        found = ALERT_KEY.search(key)
        if found is None:
            return None
        with self.sessions.read() as session:
            alert = session.get(ConflictAlert, int(found[1]))
            person = session.get(Person, alert.decided_by) if alert and alert.decided_by else None
        if alert is None or alert.id is None or person is None:
            return None
        if person.email.lower() != filed_by.lower() or alert.dispute_number not in (None, number):
            return None
        item = evidence.store(
            self.sessions,
            alerts.snapshot(alert),
            description=alerts.SNAPSHOT_DESCRIPTION.format(alert=alert.id),
            visibility=EvidenceVisibility.PARTIES,
            side_partner_id=None,
        )
        by = Actor(id=person.id, role=person.role, name=person.name)
        return AlertOrigin(alert_id=alert.id, converted_by=by, evidence=item)

    def _rebuild_input(self, dispute: Dispute, s: FilingSubmission, key: str) -> DisputeInput:
        playbook = self.playbooks.get(dispute.playbook_version)
        with self.sessions.read() as session:
            parties = self._validate(session, s, dispute.filed_at, 10**6, check_filer=False)
        return DisputeInput(
            number=dispute.number,
            filing=s,
            filed_at=dispute.filed_at,
            claimant=parties[0],
            respondents=tuple(parties[1:]),
            terms=playbook.terms_for(s.category),
            admin_email=self.admin_email,
            origin=self._origin(key, dispute.filed_by, dispute.number),
        )
