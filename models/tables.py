"""Database tables (SQLModel). Rows never cross the Temporal boundary: activities convert them.

JSON columns hold small lists (regions, domains, conflicts, contested objects) that are
always read with their row; anything we query on has a column or a table of its own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    LargeBinary,
    Numeric,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from models.enums import (
    AlertKind,
    AlertState,
    AssignmentState,
    ChannelKind,
    DisputeCategory,
    DisputeStage,
    EvidenceVisibility,
    ExceptionState,
    ImportFormat,
    ImportState,
    InboundState,
    ObjectKind,
    OutboxState,
    PartnerTier,
    RegistrationStatus,
    RemedyKind,
    RemedyState,
    Role,
    TaskKind,
    TaskState,
)


def _enum(enum: type[StrEnum], *, index: bool = False) -> Any:
    """Stored as its string value in a VARCHAR: readable in SQL, and a new member needs no
    database type migration (PostgreSQL native enums would)."""
    return Field(
        sa_type=SAEnum(
            enum,
            native_enum=False,
            create_constraint=False,
            length=32,
            values_callable=lambda members: [m.value for m in members],
        ),
        index=index,
    )


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every backend (SQLite alone would hand back naive
    values, and a naive time hashes differently in the audit chain)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_column(nullable: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable)


class Partner(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    tier: PartnerTier = _enum(PartnerTier)
    regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    email_domains: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    calendar: str = Field(max_length=64, description="playbook calendar for this partner's answers")
    is_direct_sales: bool = False
    """The vendor's own direct sales team, a party in channel-vs-direct conflicts."""
    active: bool = True
    crm_id: str | None = Field(default=None, max_length=64, unique=True, index=True)
    """The partner's account id in the vendor's CRM: how a Salesforce export names it
    (PartnerAccountId), read by the channel-data import."""


class PartnerContact(SQLModel, table=True):
    __tablename__ = "partner_contact"
    id: int | None = Field(default=None, primary_key=True)
    partner_id: str = Field(foreign_key="partner.id", index=True)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320, unique=True)
    active: bool = True


class Territory(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    partner_id: str | None = Field(default=None, foreign_key="partner.id", index=True)
    exclusive: bool = False
    owner_person_id: str | None = Field(default=None, foreign_key="person.id")
    """The vendor's territory manager: never neutral in a conflict over this territory."""
    countries: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """ISO 3166 alpha-2 codes it covers: a registration naming only a country is placed here."""
    modified_at: datetime | None = _utc_column(nullable=True)
    """When its source last changed it (channel-data import); None: from the directory."""


class Account(SQLModel, table=True):
    """A customer account. `partner_id` is the partner it is named to (the direct-sales
    partner for the vendor's house accounts), None when it is nobody's."""

    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    partner_id: str | None = Field(default=None, foreign_key="partner.id", index=True)
    owner_person_id: str | None = Field(default=None, foreign_key="person.id")
    domain: str | None = Field(default=None, max_length=253)
    address: str | None = Field(default=None, max_length=500)
    country: str | None = Field(default=None, max_length=2)
    territory_code: str | None = Field(default=None, max_length=64)
    modified_at: datetime | None = _utc_column(nullable=True)
    """When its source last changed it (channel-data import); None: from the directory."""


class Person(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320, unique=True)
    role: Role = _enum(Role)
    organisation: str = Field(max_length=64, description="'vendor' or the id of a partner")
    function: str | None = Field(default=None, max_length=64)
    declared_conflicts: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """Partner ids, or 'kind:ref' object references, this person must not judge."""
    calendar: str = Field(max_length=64)
    case_limit: int = 10
    active: bool = True
    last_assigned_at: datetime | None = _utc_column(nullable=True)


class Dispute(SQLModel, table=True):
    """The read model of one dispute; the workflow owns the truth and projects it here."""

    # The compliance list's usual filter, newest first, answered from the index alone.
    __table_args__ = (Index("ix_dispute_stage_category_filed", "stage", "category", "filed_at"),)

    number: str = Field(primary_key=True, max_length=32)
    category: DisputeCategory = _enum(DisputeCategory)
    claimant_id: str = Field(foreign_key="partner.id", index=True)
    respondent_ids: list[str] = Field(sa_column=Column(JSON, nullable=False))
    party_key: str = Field(index=True, max_length=400)
    """Sorted party ids joined by '|': finds an open dispute between the same parties."""
    contested_objects: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
    summary: str = Field(max_length=300)
    facts: str = Field(sa_column=Column(Text, nullable=False))
    desired_remedy: str = Field(sa_column=Column(Text, nullable=False))
    amount_at_stake: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    currency: str = Field(max_length=3)
    occurred_on: date
    stage: DisputeStage = _enum(DisputeStage, index=True)
    stage_deadline: datetime | None = _utc_column(nullable=True)
    deadline_explanation: str | None = Field(default=None, sa_column=Column(Text))
    stage_warning_50_at: datetime | None = _utc_column(nullable=True)
    """When the stage deadline's owner is warned that half its business time is used, and
    (`_80_`) four fifths: the workflow's warning instants (Deadline.warnings, on the deadline's
    calendar: weekends and holidays do not count), projected with the deadline. The work queue's
    SLA state follows them; none for a deadline recorded before they were."""
    stage_warning_80_at: datetime | None = _utc_column(nullable=True)
    mediator_id: str | None = Field(default=None, foreign_key="person.id", index=True)
    playbook_version: str = Field(max_length=32)
    filed_by: str = Field(max_length=320)
    filed_at: datetime = Field(default=None, sa_type=UTCDateTime, nullable=False, index=True)
    """Indexed: every dispute list is newest first."""
    updated_at: datetime = _utc_column()
    closed_at: datetime | None = _utc_column(nullable=True)
    outcome: str | None = Field(default=None, max_length=64)


class DisputeObject(SQLModel, table=True):
    """One contested object of a dispute, indexed so duplicate filings are found."""

    __tablename__ = "dispute_object"
    __table_args__ = (Index("ix_dispute_object_ref", "kind", "ref"),)
    id: int | None = Field(default=None, primary_key=True)
    dispute_number: str = Field(foreign_key="dispute.number", index=True)
    kind: ObjectKind = _enum(ObjectKind)
    ref: str = Field(max_length=128)


class DisputeParty(SQLModel, table=True):
    """Which partners are party to a dispute: what a partner user's lists are filtered by."""

    __tablename__ = "dispute_party"
    dispute_number: str = Field(foreign_key="dispute.number", primary_key=True, max_length=32)
    partner_id: str = Field(foreign_key="partner.id", primary_key=True, index=True, max_length=64)
    side: str = Field(max_length=16)
    """'claimant' or 'respondent'."""


class DisputeCounter(SQLModel, table=True):
    __tablename__ = "dispute_counter"
    year: int = Field(primary_key=True)
    last: int = 0


class FilingReceipt(SQLModel, table=True):
    """One row per distinct submission: the same submission twice maps to the same number."""

    __tablename__ = "filing_receipt"
    filing_key: str = Field(primary_key=True, max_length=128)
    dispute_number: str = Field(foreign_key="dispute.number", index=True)
    linked: bool = False
    """True when the submission matched an already open dispute and was linked to it."""
    filed_by: str = Field(max_length=320)
    received_at: datetime = _utc_column()


class DisputeEvent(SQLModel, table=True):
    """Append-only audit trail; each entry's hash covers the previous entry's hash."""

    __tablename__ = "dispute_event"
    __table_args__ = (
        UniqueConstraint("dispute_number", "seq"),
        Index("uq_dispute_event_step", "dispute_number", "step", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    dispute_number: str = Field(foreign_key="dispute.number", index=True)
    seq: int
    """Place in the chain, given by the activity that writes the entry (last + 1)."""
    step: int | None = None
    """The workflow's step this entry records (its idempotency key); None for a gap entry,
    which names the steps it stands for in its content. Not hashed: it says nothing of what
    happened, and the entries written before it existed carry step = seq."""
    at: datetime = _utc_column()
    actor_id: str = Field(max_length=320)
    actor_role: Role = _enum(Role)
    action: str = Field(max_length=64, index=True)
    content: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class Assignment(SQLModel, table=True):
    """A mediator offered a dispute; one row per assignment round.

    Written OFFERED when the mediator is chosen (the seat is reserved then), and moved on by
    the round's audit entries. OFFERED or ACCEPTED on an open dispute counts against the
    mediator's case limit.
    """

    __table_args__ = (UniqueConstraint("dispute_number", "round"),)
    id: int | None = Field(default=None, primary_key=True)
    dispute_number: str = Field(foreign_key="dispute.number", index=True)
    round: int
    person_id: str = Field(foreign_key="person.id", index=True)
    state: AssignmentState = _enum(AssignmentState)
    assigned_at: datetime = _utc_column()


class PanelSeat(SQLModel, table=True):
    """A board member's seat on a dispute's review panel: one row per review round and seat.

    Held (not released) on an open dispute, it counts against the member's case limit.
    """

    __tablename__ = "panel_seat"
    __table_args__ = (UniqueConstraint("dispute_number", "review_round", "seat"),)
    id: int | None = Field(default=None, primary_key=True)
    dispute_number: str = Field(foreign_key="dispute.number", index=True, max_length=32)
    review_round: int
    seat: str = Field(max_length=64)
    """The board function the member sits for, or 'chair'."""
    person_id: str = Field(foreign_key="person.id", index=True, max_length=64)
    seated_at: datetime = _utc_column()
    released_at: datetime | None = _utc_column(nullable=True)
    """When the member recused (their seat is drawn again) or a new review round replaced
    the panel."""


class Task(SQLModel, table=True):
    """A human task: an inbox row for a person, or for every admin when assignee_id is null."""

    key: str = Field(primary_key=True, max_length=200)
    dispute_number: str = Field(foreign_key="dispute.number", index=True)
    kind: TaskKind = _enum(TaskKind)
    title: str = Field(max_length=300)
    assignee_id: str | None = Field(default=None, max_length=320, index=True)
    assignee_role: Role = _enum(Role)
    due_at: datetime | None = _utc_column(nullable=True)
    state: TaskState = _enum(TaskState, index=True)
    created_at: datetime = _utc_column()
    closed_at: datetime | None = _utc_column(nullable=True)


class OutboxMessage(SQLModel, table=True):
    """One email to one recipient; `key` makes a retried notification a no-op."""

    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_message_due", "state", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400, unique=True)
    dispute_number: str = Field(max_length=32, index=True)
    template: str = Field(max_length=64)
    recipient: str = Field(max_length=320)
    subject: str = Field(max_length=400)
    text_body: str = Field(sa_column=Column(Text, nullable=False))
    html_body: str = Field(sa_column=Column(Text, nullable=False))
    message_id: str = Field(max_length=400)
    in_reply_to: str | None = Field(default=None, max_length=400)
    references: str | None = Field(default=None, sa_column=Column(Text))
    state: OutboxState = _enum(OutboxState, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    """Why the last attempt did not go out (the SMTP server's answer); for a failed message,
    why it never will unless an admin sends it again."""
    created_at: datetime = _utc_column()
    claimed_at: datetime | None = _utc_column(nullable=True)
    """When the relay holding it last renewed its lease (it renews while a send is slow)."""
    claimed_by: str | None = Field(default=None, max_length=64)
    """The relay holding the lease: only that relay marks the outcome."""
    next_attempt_at: datetime | None = _utc_column(nullable=True)
    """Not tried again before this (backoff after a temporary failure); none means due."""
    sent_at: datetime | None = _utc_column(nullable=True)
    merged_into: int | None = Field(default=None, index=True)
    """The message this one went out in, one email with each part (notifications to one
    recipient on one dispute within a moment of each other); that row carries the email."""


class Precedent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    dispute_number: str = Field(foreign_key="dispute.number", unique=True)
    category: DisputeCategory = _enum(DisputeCategory, index=True)
    playbook_version: str = Field(max_length=32)
    clauses: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    facts: str = Field(sa_column=Column(Text, nullable=False))
    contested_objects: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
    outcome: str = Field(max_length=64)
    remedies: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    rationale: str = Field(sa_column=Column(Text, nullable=False))
    timeline: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    claimant_tier: PartnerTier = _enum(PartnerTier)
    claimant_region: str = Field(max_length=64)
    amount_at_stake: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    decided_at: datetime = _utc_column()
    parties: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    precedents_cited: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    votes_summary: dict[str, int] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    """Everything searchable in the full record (compliance, staff): indexed for full text."""
    public_text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    """The anonymised view's text (partners): indexed separately, so a party's name can never
    match, nor show in a snippet."""
    facet_values: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    """The many-valued facets as "facet=value" lines (as in precedent_facet): read with the
    search candidates to count facets without a join per facet."""
    facet_tokens: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    """Every facet value as one word (`facet_token`): the SQLite full-text index's facet column."""


class PrecedentFacet(SQLModel, table=True):
    """A precedent's many-valued facets, one row per value: each remedy kind, each playbook
    clause, and whether its deadlines were met or breached. Search filters and counts by them."""

    __tablename__ = "precedent_facet"
    __table_args__ = (Index("ix_precedent_facet_value", "facet", "value", "precedent_id"),)
    precedent_id: int = Field(foreign_key="precedent.id", primary_key=True)
    facet: str = Field(primary_key=True, max_length=16)
    value: str = Field(primary_key=True, max_length=128)


# --- remedies: one application row per remedy, and the built-in ledger ---------------------


class RemedyApplication(SQLModel, table=True):
    """One remedy of a settlement or ruling on its way to being applied, exactly once."""

    __tablename__ = "remedy_application"
    key: str = Field(primary_key=True, max_length=200)
    """Dispute number, decision and remedy index: the idempotency key sent to adapters."""
    dispute_number: str = Field(foreign_key="dispute.number", index=True)
    position: int
    kind: RemedyKind = _enum(RemedyKind)
    remedy: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    adapter: str = Field(max_length=64)
    state: RemedyState = _enum(RemedyState, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    external_ref: str | None = Field(default=None, max_length=400)
    created_at: datetime = _utc_column()
    applied_at: datetime | None = _utc_column(nullable=True)
    verified_at: datetime | None = _utc_column(nullable=True)
    waived_reason: str | None = Field(default=None, sa_column=Column(Text))


class _LedgerEntry(SQLModel):
    id: int | None = Field(default=None, primary_key=True)
    application_key: str = Field(max_length=200, unique=True)
    dispute_number: str = Field(max_length=32, index=True)
    applied_at: datetime = _utc_column()


class LedgerTerritoryReassignment(_LedgerEntry, table=True):
    __tablename__ = "ledger_territory_reassignment"
    territory_code: str = Field(max_length=64)
    from_partner_id: str = Field(max_length=64)
    to_partner_id: str = Field(max_length=64)
    effective_on: date


class LedgerCommissionSplit(_LedgerEntry, table=True):
    __tablename__ = "ledger_commission_split"
    deal_ref: str = Field(max_length=128)
    shares: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))


class LedgerRebateAdjustment(_LedgerEntry, table=True):
    __tablename__ = "ledger_rebate_adjustment"
    partner_id: str = Field(max_length=64)
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    currency: str = Field(max_length=3)


class LedgerCoSellingResources(_LedgerEntry, table=True):
    __tablename__ = "ledger_co_selling_resources"
    partner_id: str = Field(max_length=64)
    resource: str = Field(max_length=200)
    hours: int


class LedgerLeadReroute(_LedgerEntry, table=True):
    __tablename__ = "ledger_lead_reroute"
    lead_ref: str = Field(max_length=128)
    to_partner_id: str = Field(max_length=64)


class LedgerMdfCredit(_LedgerEntry, table=True):
    __tablename__ = "ledger_mdf_credit"
    partner_id: str = Field(max_length=64)
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    currency: str = Field(max_length=3)


class LedgerWrittenWarning(_LedgerEntry, table=True):
    __tablename__ = "ledger_written_warning"
    partner_id: str = Field(max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))


# --- evidence ---------------------------------------------------------------------------------


class EvidenceBlob(SQLModel, table=True):
    """Uploaded bytes, stored once per content hash (the same file twice is one blob)."""

    __tablename__ = "evidence_blob"
    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Evidence(SQLModel, table=True):
    """One evidence item on a dispute; written with its audit entry, in the same transaction."""

    id: str = Field(primary_key=True, max_length=64)
    dispute_number: str = Field(foreign_key="dispute.number", index=True)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=128)
    size: int
    sha256: str = Field(foreign_key="evidence_blob.sha256", max_length=64)
    description: str = Field(sa_column=Column(Text, nullable=False))
    visibility: EvidenceVisibility = _enum(EvidenceVisibility)
    side_partner_id: str | None = Field(default=None, max_length=64)
    """With SIDE visibility: the party whose side may read it."""
    added_by: str = Field(max_length=320)
    added_by_role: Role = _enum(Role)
    added_at: datetime = _utc_column()


class IdempotencyRecord(SQLModel, table=True):
    """The request an idempotency key was first sent with: the same key again must be the same
    request. Written before the workflow is asked, removed when the dispute refused it (a
    refused request does not use up its key)."""

    __tablename__ = "idempotency_record"
    scope: str = Field(primary_key=True, max_length=64)
    """sha256 of the action, the actor's id and the key."""
    fingerprint: str = Field(max_length=64)
    """sha256 of the dispute number and the request: its payload, or its files' hashes."""
    created_at: datetime = _utc_column()
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """The dispute's answer to the request (an ActionResult as JSON), once it gave one: the same
    key again is answered with it. Temporal knows an update id within one run only, and a
    dispute that continued as new refuses an action it applied before instead of answering."""


# --- sign-in --------------------------------------------------------------------------------


class UserAccount(SQLModel, table=True):
    """A sign-in for a person or a partner contact; the directory decides what it may do."""

    __tablename__ = "user_account"
    login: str = Field(primary_key=True, max_length=320)
    """The person's or contact's email, lower-case."""
    password_hash: str | None = Field(default=None, max_length=400)
    """argon2; None for an account that signs in only through OpenID Connect."""
    active: bool = True
    created_at: datetime = _utc_column()
    last_sign_in_at: datetime | None = _utc_column(nullable=True)
    sessions_valid_after: datetime | None = _utc_column(nullable=True)
    """Sessions issued before this instant are refused (sign out everywhere, password change)."""


class ApiToken(SQLModel, table=True):
    """A personal API token; only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(foreign_key="user_account.login", index=True, max_length=320)
    name: str = Field(max_length=100)
    token_sha256: str = Field(max_length=64, unique=True)
    created_at: datetime = _utc_column()
    last_used_at: datetime | None = _utc_column(nullable=True)
    revoked_at: datetime | None = _utc_column(nullable=True)


class WebSession(SQLModel, table=True):
    """A browser's signed-in session. The signed cookie names it; a cookie whose row is gone
    (signed out, signed out everywhere, the account disabled or its role changed) is refused,
    so a copy of the cookie dies with the session."""

    __tablename__ = "web_session"
    id_sha256: str = Field(primary_key=True, max_length=64)
    """sha256 of the id the cookie carries: the table alone does not let anyone sign in."""
    login: str = Field(foreign_key="user_account.login", index=True, max_length=320)
    role: Role = _enum(Role)
    """The role the session was started with: a session does not outlive a change of role."""
    created_at: datetime = _utc_column()
    expires_at: datetime = _utc_column()


class SignInThrottle(SQLModel, table=True):
    """Failed sign-ins counted per account and per client address, in the database so every
    web process sees the same count. A row is the delay it imposes: the next attempt waits
    until `next_attempt_at`."""

    __tablename__ = "sign_in_throttle"
    kind: str = Field(primary_key=True, max_length=16)
    """'account' or 'address'."""
    subject: str = Field(primary_key=True, max_length=320)
    """The login as typed (lower-case), or the client's address."""
    failures: int = 0
    last_failure_at: datetime = _utc_column()
    next_attempt_at: datetime = _utc_column()
    refusals: int = 0
    """Attempts refused for coming too early since the last failure: counted here, and only
    the first goes into the account's audit (hammering a locked account writes no rows)."""


class AccountEvent(SQLModel, table=True):
    """The audit of an account: sign-ins, failed and refused ones, lockouts and who lifted
    them, sign-outs. Append-only."""

    __tablename__ = "account_event"
    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(foreign_key="user_account.login", index=True, max_length=320)
    at: datetime = _utc_column()
    action: str = Field(max_length=32)
    actor: str = Field(max_length=320)
    """Who acted: the account itself, or the admin who lifted a lockout."""
    address: str | None = Field(default=None, max_length=64)
    """The client address the app saw (see accord.platform.settings trusted_proxies)."""
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- email intake ------------------------------------------------------------------------------


class ImapCursor(SQLModel, table=True):
    """Where the poller of one mailbox stopped: a new UIDVALIDITY starts it over."""

    __tablename__ = "imap_cursor"
    mailbox: str = Field(primary_key=True, max_length=400)
    """user@host/folder."""
    # IMAP UIDs are unsigned 32-bit: beyond PostgreSQL's INTEGER.
    uidvalidity: int = Field(sa_type=BigInteger)
    last_uid: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime = _utc_column()


class SchemaRelease(SQLModel, table=True):
    """A release (its last migration) whose code the schema serves: the release it was migrated
    to, and the one before while the migrations since only added (accord.platform.schema's
    record_release). A process is ready on a schema that serves its release, so the old web tier
    keeps serving during a rolling upgrade."""

    __tablename__ = "schema_release"
    revision: str = Field(primary_key=True, max_length=32)


class ChannelImport(SQLModel, table=True):
    """One import of channel data (a file, or rows posted to the API): its progress while it
    runs, and what it did or why nothing of it was written."""

    __tablename__ = "channel_import"
    id: int | None = Field(default=None, primary_key=True)
    kind: ChannelKind = _enum(ChannelKind)
    format: ImportFormat = _enum(ImportFormat)
    file_name: str = Field(max_length=255)
    digest: str = Field(max_length=64)
    """SHA-256 of the file as received."""
    state: ImportState = _enum(ImportState)
    started_by: str = Field(max_length=64)
    started_at: datetime = _utc_column()
    heartbeat_at: datetime = _utc_column()
    """Written with each progress step: a READING or WRITING import whose heartbeat is old was
    ended by its process (its transaction rolled back)."""
    finished_at: datetime | None = _utc_column(nullable=True)
    rows_total: int = 0
    rows_done: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    """Rows whose source modification time was not later than the stored row's."""
    alerts_raised: int = 0
    """Conflict alerts the import's rows raised (accord.channel.detection)."""
    alerts_refreshed: int = 0
    """Open alerts its rows found again, brought up to date."""
    problem_count: int = 0
    problems: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """The first problems ({"row", "field", "problem"}), each naming where it is."""


class _ChannelRow(SQLModel):
    """What every imported row has: the source's id for it (a registration, opportunity or
    lead id a dispute names as a contested object) and when the source last changed it."""

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True)
    modified_at: datetime = _utc_column()
    import_id: int = Field(foreign_key="channel_import.id", index=True)


class DealRegistration(_ChannelRow, table=True):
    __tablename__ = "deal_registration"
    partner_id: str = Field(foreign_key="partner.id", index=True)
    customer_name: str = Field(max_length=200)
    customer_key: str = Field(max_length=200, index=True)
    """The name normalised for matching (accord.channel.names): legal form, case, accents and
    punctuation gone."""
    customer_domain: str | None = Field(default=None, max_length=253, index=True)
    customer_address: str | None = Field(default=None, max_length=500)
    country: str | None = Field(default=None, max_length=2)
    territory_code: str | None = Field(default=None, max_length=64, index=True)
    account_code: str | None = Field(default=None, max_length=64, index=True)
    product: str | None = Field(default=None, max_length=200)
    amount: Decimal | None = Field(default=None, sa_type=Numeric(16, 2))
    currency: str | None = Field(default=None, max_length=3)
    status: RegistrationStatus = _enum(RegistrationStatus)
    registered_at: datetime = _utc_column()
    expires_at: datetime | None = _utc_column(nullable=True)
    discount: Decimal | None = Field(default=None, sa_type=Numeric(5, 2))
    """Percent off the list price (the playbook's pricing bands cap it per tier)."""
    customer_chose_at: datetime | None = _utc_column(nullable=True)
    """When the customer confirmed this partner in writing (the customer's written choice)."""


class Opportunity(_ChannelRow, table=True):
    partner_id: str = Field(foreign_key="partner.id", index=True)
    name: str = Field(max_length=200)
    customer_name: str = Field(max_length=200)
    customer_key: str = Field(max_length=200, index=True)
    customer_domain: str | None = Field(default=None, max_length=253, index=True)
    account_code: str | None = Field(default=None, max_length=64, index=True)
    territory_code: str | None = Field(default=None, max_length=64)
    registration_id: str | None = Field(default=None, max_length=64)
    """The external id of the deal registration it pursues, if any."""
    stage: str = Field(max_length=64)
    amount: Decimal | None = Field(default=None, sa_type=Numeric(16, 2))
    currency: str | None = Field(default=None, max_length=3)
    expected_close: date | None = None
    discount: Decimal | None = Field(default=None, sa_type=Numeric(5, 2))


class Lead(_ChannelRow, table=True):
    partner_id: str | None = Field(default=None, foreign_key="partner.id", index=True)
    """The partner it was routed to; None while it is the vendor's (not routed)."""
    customer_name: str = Field(max_length=200)
    customer_key: str = Field(max_length=200, index=True)
    customer_domain: str | None = Field(default=None, max_length=253, index=True)
    email: str | None = Field(default=None, max_length=320)
    country: str | None = Field(default=None, max_length=2)
    territory_code: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=64)
    routed_at: datetime | None = _utc_column(nullable=True)


class ConflictAlert(SQLModel, table=True):
    """An overlap found in the channel data before anyone filed: one per kind and pair of
    objects, whatever how many imports find it again (an open one is brought up to date, a
    dismissed or converted one is left as it was decided)."""

    __tablename__ = "conflict_alert"
    __table_args__ = (UniqueConstraint("kind", "pair_key"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: AlertKind = _enum(AlertKind, index=True)
    pair_key: str = Field(max_length=300)
    """The two objects, as 'registration:DR-1|territory:DACH', in a fixed order."""
    partner_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    score: float
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Who registered what, when, as of the detection: each object's fields."""
    state: AlertState = _enum(AlertState, index=True)
    detected_at: datetime = _utc_column()
    updated_at: datetime = _utc_column()
    import_id: int | None = Field(default=None, foreign_key="channel_import.id")
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = _utc_column(nullable=True)
    decision_reason: str | None = Field(default=None, sa_type=Text)
    dispute_number: str | None = Field(default=None, max_length=32)


class AlertEvent(SQLModel, table=True):
    """The audit of conflict alerts: every decision on one (dismissed; claimed for a dispute,
    made that dispute, or given back open after its filing was refused), who took it, when and
    why. Append-only; written in the decision's own transaction."""

    __tablename__ = "alert_event"
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="conflict_alert.id", index=True)
    at: datetime = _utc_column()
    actor: str = Field(max_length=64)
    action: str = Field(max_length=32)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ChannelException(SQLModel, table=True):
    """An exception to one rule of engagement the board is asked for, or granted: a partner
    may do, for one account or territory and until a date, what the clause reserves to
    another (workflows/exception.py decides it; this row is its read model)."""

    __tablename__ = "channel_exception"
    id: int | None = Field(default=None, primary_key=True)
    partner_id: str = Field(foreign_key="partner.id", index=True)
    """Who the exception is for."""
    clause: str = Field(max_length=1000)
    """The clause excepted, as the playbook words it."""
    scope_kind: str = Field(max_length=16)
    """"account" or "territory"."""
    scope_ref: str = Field(max_length=64)
    affected_partner_ids: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """The partners the clause protects here: told of the request, and may object."""
    reason: str = Field(sa_type=Text)
    requested_by: str = Field(max_length=320)
    requested_at: datetime = _utc_column()
    until: date
    expires_at: datetime = _utc_column()
    """The end of `until` on the board calendar: in force before it, expired from it."""
    playbook_version: str = Field(max_length=32)
    state: ExceptionState = _enum(ExceptionState, index=True)
    objections_close_at: datetime | None = _utc_column(nullable=True)
    decision_due_at: datetime | None = _utc_column(nullable=True)
    panel: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The members and chair drawn, as {"members": [...], "chair": {...}}."""
    decided_by: str | None = Field(default=None, max_length=320)
    decided_at: datetime | None = _utc_column(nullable=True)
    decision_reason: str | None = Field(default=None, sa_type=Text)


class ExceptionEvent(SQLModel, table=True):
    """The audit of exceptions: every step of one (requested, objected, panel drawn, vote cast
    as a sealed commitment, ballot opened, decided, withdrawn, lapsed, expired). Append-only,
    one row per step of its workflow, so a retried write finds its row."""

    __tablename__ = "exception_event"
    __table_args__ = (UniqueConstraint("exception_id", "step"),)
    id: int | None = Field(default=None, primary_key=True)
    exception_id: int = Field(foreign_key="channel_exception.id", index=True)
    step: int
    at: datetime = _utc_column()
    actor: str = Field(max_length=320)
    action: str = Field(max_length=32)
    summary: str = Field(sa_type=Text)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


MAX_ROW_ID = 2**31 - 1
"""The largest id a serial key column holds (INTEGER on PostgreSQL)."""


def may_be_row_id(value: int) -> bool:
    """Whether `value` is an id a serial key column could hold. An id a user typed (a path, a
    command's argument) outside it is unknown: asked of the database, SQLite's driver and
    PostgreSQL both fail on it instead of finding nothing."""
    return 0 < value <= MAX_ROW_ID


class InboundMessage(SQLModel, table=True):
    """One received email, stored raw before it is acknowledged to the sending server."""

    __tablename__ = "inbound_message"
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=200, unique=True)
    """'mid:' + the Message-ID, or 'sha256:' + the content hash when it has none."""
    source: str = Field(max_length=16)
    """smtp or imap."""
    envelope_from: str = Field(default="", max_length=320)
    envelope_to: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    peer_ip: str | None = Field(default=None, max_length=64)
    """The address of the server that handed the message to our SMTP receiver (what SPF
    checks); none for mail fetched from a mailbox."""
    helo: str | None = Field(default=None, max_length=255)
    """The name that server gave in HELO/EHLO."""
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int
    received_at: datetime = _utc_column()
    state: InboundState = _enum(InboundState, index=True)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    sender: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=400)
    authentication: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    """Results per method (spf, dkim, dmarc), as the trusted receiving server stamped them or
    as Accord's own checks found them (`verified_by` says which), with the domain of each."""
    dispute_number: str | None = Field(default=None, max_length=32, index=True)
    attempts: int = 0
    processed_at: datetime | None = _utc_column(nullable=True)
    claim_token: str | None = Field(default=None, max_length=64)
    """Whose processing this is, while it is claimed (a processor's per-claim token)."""
    claimed_until: datetime | None = _utc_column(nullable=True)
    """Nobody else processes it before then: the claim's lease while it is processed (renewed
    as it goes), or the back-off after a failed attempt."""
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    """Why the last attempt failed, in plain words (the engine's own text is only logged)."""


class DisputeText(SQLModel, table=True):
    """The body of a text said in a dispute (a note, an email, a question, an answer, ...),
    stored by the adapter that received it before the workflow is asked. The workflow and its
    audit entry carry only the id and the hash, so a busy dispute's history stays small; the
    hash in the audit entry puts the body under the hash chain."""

    __tablename__ = "dispute_text"
    id: str = Field(primary_key=True, max_length=40)
    """tx- and 32 hex digits of the hash of dispute, kind, author and body: the same text sent
    again (a retried request) is the same row."""
    dispute_number: str = Field(foreign_key="dispute.number", index=True, max_length=32)
    kind: str = Field(max_length=32)
    body: str = Field(sa_column=Column(Text, nullable=False))
    sha256: str = Field(max_length=64)
    size: int
    """Characters in the body."""
    author: str = Field(max_length=320, index=True)
    created_at: datetime = _utc_column()


class RefusedText(SQLModel, table=True):
    """A stored text whose action the dispute refused (its stage or the sender's role did not
    allow it): it was not said, so it takes no place under the volume limits. Kept apart from
    `dispute_text`, which is append-only; the same text sent again and taken removes the row."""

    __tablename__ = "dispute_text_refused"
    text_id: str = Field(primary_key=True, foreign_key="dispute_text.id", max_length=40)
    refused_at: datetime = _utc_column()


class DisputeLive(SQLModel, table=True):
    """A dispute's live state as its workflow last recorded it (the read model of
    `DisputeWorkflow.get_state`): what the pages, the API and `accord show` read, so that they
    never wait on the engine. Written by the record activity in the transaction of the audit
    entry (`accord.disputes.live.project_live`); the workflow stays the only judge of what may be
    done."""

    __tablename__ = "dispute_live"
    dispute_number: str = Field(primary_key=True, foreign_key="dispute.number", max_length=32)
    version: int
    """The workflow's count of the live states it sent (carried over continue-as-new): a
    change applies on top of the version it was computed from, a whole state over any older."""
    state: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """`DisputeState` as JSON, without its history (the audit trail), notes (below) and the
    actions each role may take (the transition table, from the stage)."""
    updated_at: datetime = _utc_column()


class DisputeLiveNote(SQLModel, table=True):
    """The notes of the live state, one row each: a busy dispute's notes are only appended,
    never written again with every change."""

    __tablename__ = "dispute_live_note"
    dispute_number: str = Field(primary_key=True, foreign_key="dispute.number", max_length=32)
    position: int = Field(primary_key=True)
    note: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
