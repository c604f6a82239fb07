"""Vocabulary of SPEC section 2, as string enums shared by tables and payloads."""

from __future__ import annotations

from enum import StrEnum


class PartnerTier(StrEnum):
    REGISTERED = "registered"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


class Role(StrEnum):
    PARTNER = "partner"
    MEDIATOR = "mediator"
    BOARD = "board"
    COMPLIANCE = "compliance"
    ADMIN = "admin"
    SYSTEM = "system"
    """The engine itself: timers, escalations, automatic reassignment."""


class DisputeCategory(StrEnum):
    DEAL_REGISTRATION = "deal_registration"
    TERRITORY = "territory"
    PRICING = "pricing"
    LEAD_ROUTING = "lead_routing"
    CHANNEL_VS_DIRECT = "channel_vs_direct"
    CO_MARKETING = "co_marketing"
    OTHER = "other"


class DisputeStage(StrEnum):
    FILED = "filed"
    TRIAGE = "triage"
    MEDIATION = "mediation"
    AWAITING_PARTY = "awaiting_party"
    SETTLED = "settled"
    REMEDY = "remedy"
    """Remedies of the settlement or ruling are being applied."""
    FORMAL_REVIEW = "formal_review"
    APPEAL_WINDOW = "appeal_window"
    """Ruled; either party may appeal once until the window closes."""
    WITHDRAWN = "withdrawn"
    DISMISSED = "dismissed"
    CLOSED = "closed"

    @property
    def is_open(self) -> bool:
        return self not in TERMINAL_STAGES


TERMINAL_STAGES = frozenset({DisputeStage.WITHDRAWN, DisputeStage.DISMISSED, DisputeStage.CLOSED})


class ObjectKind(StrEnum):
    """What a contested-object reference points at."""

    DEAL_REGISTRATION = "deal_registration"
    ACCOUNT = "account"
    LEAD = "lead"
    TERRITORY = "territory"
    PRICE_LIST = "price_list"


class RemedyKind(StrEnum):
    TERRITORY_REASSIGNMENT = "territory_reassignment"
    COMMISSION_SPLIT = "commission_split"
    REBATE_ADJUSTMENT = "rebate_adjustment"
    CO_SELLING_RESOURCES = "co_selling_resources"
    LEAD_REROUTE = "lead_reroute"
    MDF_CREDIT = "mdf_credit"
    WRITTEN_WARNING = "written_warning"


class Action(StrEnum):
    """Every human or system action on a dispute; the transition table is keyed on these."""

    ACCEPT_ASSIGNMENT = "accept_assignment"
    RECUSE = "recuse"
    ADD_NOTE = "add_note"
    REQUEST_INFORMATION = "request_information"
    ANSWER_INFORMATION = "answer_information"
    PROPOSE_SETTLEMENT = "propose_settlement"
    RESPOND_TO_OFFER = "respond_to_offer"
    DECLARE_IMPASSE = "declare_impasse"
    DISMISS = "dismiss"
    WITHDRAW = "withdraw"
    EXTEND_DEADLINE = "extend_deadline"
    ASSIGN_MEDIATOR = "assign_mediator"
    LINK_FILING = "link_filing"
    RETRY_REMEDY = "retry_remedy"
    WAIVE_REMEDY = "waive_remedy"
    CAST_VOTE = "cast_vote"
    ISSUE_RULING = "issue_ruling"
    APPEAL = "appeal"
    REDRAW_PANEL = "redraw_panel"
    UNSEAL_BALLOT = "unseal_ballot"
    ADD_EVIDENCE = "add_evidence"
    ADD_MESSAGE = "add_message"


class NoteVisibility(StrEnum):
    SHARED = "shared"
    CAUCUS = "caucus"
    """Private between the mediator and one side."""


class EvidenceVisibility(StrEnum):
    """Who may read an evidence item, besides admins and compliance (who see everything)."""

    PARTIES = "parties"
    """Everyone on the dispute: both sides and the neutrals."""
    NEUTRALS = "neutrals"
    """The mediator and the panel, and the person who added it; not the parties."""
    SIDE = "side"
    """One party's side and the neutrals."""


class TaskKind(StrEnum):
    ACCEPT_ASSIGNMENT = "accept_assignment"
    MEDIATE = "mediate"
    ANSWER_INFORMATION = "answer_information"
    RESPOND_TO_OFFER = "respond_to_offer"
    ASSIGN_MEDIATOR = "assign_mediator"
    FORMAL_REVIEW = "formal_review"
    RESOLVE_REMEDY = "resolve_remedy"
    """A remedy keeps failing: an admin retries it or waives it with a reason."""
    COMPOSE_PANEL = "compose_panel"
    CAST_VOTE = "cast_vote"
    ISSUE_RULING = "issue_ruling"
    EXECUTIVE_REVIEW = "executive_review"
    """The review deadline passed: the executive sponsor must get the panel to rule."""
    RESOLVE_DEADLINE = "resolve_deadline"
    """A deadline could not be computed on the calendar it should use: it runs on a fallback
    calendar meanwhile; an admin corrects the calendar and extends the deadline if need be."""
    RESOLVE_MAIL = "resolve_mail"
    """The mail server refused a notification for good: an admin sends it again (once the
    address or the server is put right) or dismisses it. Opened by the outbox relay, not the
    workflow."""


class TaskState(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class AssignmentState(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    RECUSED = "recused"
    EXPIRED = "expired"
    RELEASED = "released"


class InboundState(StrEnum):
    """Where one received email stands; every end state carries its reason."""

    RECEIVED = "received"
    """Stored, not yet processed: the processor picks it up (again, after a crash)."""
    FILED = "filed"
    THREADED = "threaded"
    """Attached to a dispute as a message (and its attachments as evidence)."""
    ANSWERED = "answered"
    """Not filed: the sender was told exactly why (what is missing)."""
    QUARANTINED = "quarantined"
    """Unknown or unauthenticated sender, or not a party: waits for an admin."""
    IGNORED = "ignored"
    """Auto-reply, bounce or loop: recorded, never answered."""
    FAILED = "failed"
    """Processing failed on every attempt (parse budget, database, engine): kept for an admin,
    who can process it again; it no longer holds up the messages behind it."""


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    """The mail server refused it for good (5xx); an admin sends it again or dismisses it."""
    DISMISSED = "dismissed"
    """Failed, and an admin decided it will not be sent."""


class RemedyState(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    """The adapter accepted it; not yet read back."""
    VERIFIED = "verified"
    FAILED = "failed"
    """The last attempt failed; retried, or left to an admin."""
    WAIVED = "waived"


class VoteOutcome(StrEnum):
    UPHOLD = "uphold"
    PARTLY_UPHOLD = "partly_uphold"
    DENY = "deny"


class ChannelKind(StrEnum):
    """What one channel-data import file holds (accord.channel)."""

    REGISTRATION = "registration"
    OPPORTUNITY = "opportunity"
    LEAD = "lead"
    ACCOUNT = "account"
    TERRITORY = "territory"


class ImportFormat(StrEnum):
    CSV = "csv"
    SALESFORCE = "salesforce"
    """A Salesforce REST query result or export: {"records": [{"attributes": {"type": ...}}]}."""
    API = "api"
    """Rows posted as JSON to the API."""


class ImportState(StrEnum):
    READING = "reading"
    """Rows read and checked; nothing written yet."""
    WRITING = "writing"
    """Every row passed; the one transaction that writes them is open."""
    DONE = "done"
    REFUSED = "refused"
    """A row (or the file) was wrong: nothing of the file was written; `problems` says where."""
    STOPPED = "stopped"
    """The process ended midway (its transaction rolled back): nothing was written."""


class RegistrationStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WON = "won"
    LOST = "lost"


class AlertKind(StrEnum):
    """What a conflict alert found in the channel data (accord.channel.detection)."""

    SAME_CUSTOMER = "same_customer"
    """One end customer registered or pursued by two partners."""
    EXCLUSIVE_TERRITORY = "exclusive_territory"
    """A registration inside another partner's exclusive territory."""
    DIRECT_ON_REGISTERED_ACCOUNT = "direct_on_registered_account"
    """Direct sales pursuing a customer a partner has registered."""
    LEAD_AGAINST_ROUTING = "lead_against_routing"
    """A lead routed where the playbook's routing rules do not send it."""
    PRICE_OUTSIDE_BAND = "price_outside_band"
    """A discount beyond the pricing band of the partner's tier."""


class AlertState(StrEnum):
    OPEN = "open"
    DISMISSED = "dismissed"
    """A channel manager said why it is no conflict: the next import does not raise it again."""
    CONVERTED = "converted"
    """Made into a dispute."""


class ExceptionState(StrEnum):
    """Where a request for an exception to the rules of engagement stands
    (workflows/exception.py)."""

    REQUESTED = "requested"
    """Told to the partners it affects, who may object until the objection window closes."""
    IN_REVIEW = "in_review"
    """A board panel votes (sealed) and its chair decides."""
    APPROVED = "approved"
    """In force until it expires: detection and the recommendation honour it (RoE 2.1)."""
    DENIED = "denied"
    WITHDRAWN = "withdrawn"
    LAPSED = "lapsed"
    """Undecided when the date it was asked until came."""
    EXPIRED = "expired"
    """Approved, and its date has passed."""

    @property
    def is_open(self) -> bool:
        return self in (ExceptionState.REQUESTED, ExceptionState.IN_REVIEW)


class ExceptionChoice(StrEnum):
    """A panelist's vote, and the chair's decision, on an exception."""

    APPROVE = "approve"
    DENY = "deny"
