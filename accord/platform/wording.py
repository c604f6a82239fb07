"""The one place that words things for people: enums, outcomes, remedies, money, times,
partners and people, as plain functions and as the Jinja2 filters pages and mail share.

Pure: it reads no database and no clock it is not given (`countdown` defaults to now). The
names of partners and people come in a `Names`, built above this module (accord.directory.records)
from the directory.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from models.enums import (
    Action,
    AlertKind,
    AlertState,
    AssignmentState,
    ChannelKind,
    DisputeCategory,
    DisputeStage,
    EvidenceVisibility,
    ExceptionChoice,
    ExceptionState,
    ImportFormat,
    ImportState,
    InboundState,
    NoteVisibility,
    ObjectKind,
    OutboxState,
    PartnerTier,
    RegistrationStatus,
    RemedyKind,
    RemedyState,
    Role,
    TaskKind,
    TaskState,
    VoteOutcome,
)

# --- enums -----------------------------------------------------------------------------------

# One table per enum: every member has its words (tests/platform/test_wording.py checks it).
LABELS: dict[type[Enum], dict[Enum, str]] = {
    PartnerTier: {
        PartnerTier.REGISTERED: "registered",
        PartnerTier.SILVER: "silver",
        PartnerTier.GOLD: "gold",
        PartnerTier.PLATINUM: "platinum",
    },
    Role: {
        Role.PARTNER: "partner",
        Role.MEDIATOR: "mediator",
        Role.BOARD: "board member",
        Role.COMPLIANCE: "compliance",
        Role.ADMIN: "admin",
        Role.SYSTEM: "Accord (automatic)",
    },
    DisputeCategory: {
        DisputeCategory.DEAL_REGISTRATION: "deal registration",
        DisputeCategory.TERRITORY: "territory",
        DisputeCategory.PRICING: "pricing",
        DisputeCategory.LEAD_ROUTING: "lead routing",
        DisputeCategory.CHANNEL_VS_DIRECT: "channel vs. direct sales",
        DisputeCategory.CO_MARKETING: "co-marketing",
        DisputeCategory.OTHER: "other",
    },
    DisputeStage: {
        DisputeStage.FILED: "filed",
        DisputeStage.TRIAGE: "triage",
        DisputeStage.MEDIATION: "mediation",
        DisputeStage.AWAITING_PARTY: "awaiting a party",
        DisputeStage.SETTLED: "settled",
        DisputeStage.REMEDY: "applying remedies",
        DisputeStage.FORMAL_REVIEW: "formal review",
        DisputeStage.APPEAL_WINDOW: "appeal window",
        DisputeStage.WITHDRAWN: "withdrawn",
        DisputeStage.DISMISSED: "dismissed",
        DisputeStage.CLOSED: "closed",
    },
    ObjectKind: {
        ObjectKind.DEAL_REGISTRATION: "deal registration",
        ObjectKind.ACCOUNT: "account",
        ObjectKind.LEAD: "lead",
        ObjectKind.TERRITORY: "territory",
        ObjectKind.PRICE_LIST: "price list",
    },
    RemedyKind: {
        RemedyKind.TERRITORY_REASSIGNMENT: "territory reassignment",
        RemedyKind.COMMISSION_SPLIT: "commission split",
        RemedyKind.REBATE_ADJUSTMENT: "rebate adjustment",
        RemedyKind.CO_SELLING_RESOURCES: "co-selling resources",
        RemedyKind.LEAD_REROUTE: "lead reroute",
        RemedyKind.MDF_CREDIT: "MDF credit",
        RemedyKind.WRITTEN_WARNING: "written warning",
    },
    Action: {
        Action.ACCEPT_ASSIGNMENT: "accept the assignment",
        Action.RECUSE: "recuse",
        Action.ADD_NOTE: "add a note",
        Action.REQUEST_INFORMATION: "request information",
        Action.ANSWER_INFORMATION: "answer an information request",
        Action.PROPOSE_SETTLEMENT: "propose a settlement",
        Action.RESPOND_TO_OFFER: "respond to an offer",
        Action.DECLARE_IMPASSE: "declare an impasse",
        Action.DISMISS: "dismiss",
        Action.WITHDRAW: "withdraw",
        Action.EXTEND_DEADLINE: "extend a deadline",
        Action.ASSIGN_MEDIATOR: "assign a mediator",
        Action.LINK_FILING: "link a filing",
        Action.RETRY_REMEDY: "retry a remedy",
        Action.WAIVE_REMEDY: "waive a remedy",
        Action.CAST_VOTE: "cast a vote",
        Action.ISSUE_RULING: "issue the ruling",
        Action.APPEAL: "appeal",
        Action.REDRAW_PANEL: "redraw the panel",
        Action.UNSEAL_BALLOT: "unseal the ballot",
        Action.ADD_EVIDENCE: "add evidence",
        Action.ADD_MESSAGE: "add a message",
    },
    NoteVisibility: {
        NoteVisibility.SHARED: "shared",
        NoteVisibility.CAUCUS: "caucus (one side only)",
    },
    EvidenceVisibility: {
        EvidenceVisibility.PARTIES: "everyone on the dispute",
        EvidenceVisibility.NEUTRALS: "the neutrals only",
        EvidenceVisibility.SIDE: "one side and the neutrals",
    },
    TaskKind: {
        TaskKind.ACCEPT_ASSIGNMENT: "accept the assignment",
        TaskKind.MEDIATE: "mediate",
        TaskKind.ANSWER_INFORMATION: "answer an information request",
        TaskKind.RESPOND_TO_OFFER: "respond to a settlement offer",
        TaskKind.ASSIGN_MEDIATOR: "assign a mediator",
        TaskKind.FORMAL_REVIEW: "formal review",
        TaskKind.RESOLVE_REMEDY: "resolve a failed remedy",
        TaskKind.COMPOSE_PANEL: "complete the review panel",
        TaskKind.CAST_VOTE: "cast a vote",
        TaskKind.ISSUE_RULING: "issue the ruling",
        TaskKind.EXECUTIVE_REVIEW: "executive review",
        TaskKind.RESOLVE_DEADLINE: "resolve a deadline problem",
        TaskKind.RESOLVE_MAIL: "resolve undelivered mail",
    },
    TaskState: {
        TaskState.OPEN: "open",
        TaskState.DONE: "done",
        TaskState.CANCELLED: "cancelled",
    },
    AssignmentState: {
        AssignmentState.OFFERED: "offered",
        AssignmentState.ACCEPTED: "accepted",
        AssignmentState.RECUSED: "recused",
        AssignmentState.EXPIRED: "expired",
        AssignmentState.RELEASED: "released",
    },
    InboundState: {
        InboundState.RECEIVED: "received",
        InboundState.FILED: "filed",
        InboundState.THREADED: "added to a dispute",
        InboundState.ANSWERED: "answered",
        InboundState.QUARANTINED: "quarantined",
        InboundState.IGNORED: "ignored",
        InboundState.FAILED: "failed",
    },
    ChannelKind: {
        ChannelKind.REGISTRATION: "deal registration",
        ChannelKind.OPPORTUNITY: "opportunity",
        ChannelKind.LEAD: "lead",
        ChannelKind.ACCOUNT: "account",
        ChannelKind.TERRITORY: "territory",
    },
    ImportFormat: {
        ImportFormat.CSV: "CSV",
        ImportFormat.SALESFORCE: "Salesforce export",
        ImportFormat.API: "API rows",
    },
    ImportState: {
        ImportState.READING: "checking",
        ImportState.WRITING: "writing",
        ImportState.DONE: "done",
        ImportState.REFUSED: "refused",
        ImportState.STOPPED: "stopped",
    },
    RegistrationStatus: {
        RegistrationStatus.SUBMITTED: "submitted",
        RegistrationStatus.APPROVED: "approved",
        RegistrationStatus.REJECTED: "rejected",
        RegistrationStatus.EXPIRED: "expired",
        RegistrationStatus.WON: "won",
        RegistrationStatus.LOST: "lost",
    },
    AlertKind: {
        AlertKind.SAME_CUSTOMER: "same customer",
        AlertKind.EXCLUSIVE_TERRITORY: "exclusive territory",
        AlertKind.DIRECT_ON_REGISTERED_ACCOUNT: "direct sales on a registered customer",
        AlertKind.LEAD_AGAINST_ROUTING: "lead routed against the rules",
        AlertKind.PRICE_OUTSIDE_BAND: "price outside the tier's band",
    },
    AlertState: {
        AlertState.OPEN: "open",
        AlertState.DISMISSED: "dismissed",
        AlertState.CONVERTED: "made a dispute",
    },
    ExceptionState: {
        ExceptionState.REQUESTED: "requested",
        ExceptionState.IN_REVIEW: "before the board",
        ExceptionState.APPROVED: "approved",
        ExceptionState.DENIED: "denied",
        ExceptionState.WITHDRAWN: "withdrawn",
        ExceptionState.LAPSED: "lapsed undecided",
        ExceptionState.EXPIRED: "expired",
    },
    ExceptionChoice: {
        ExceptionChoice.APPROVE: "approve",
        ExceptionChoice.DENY: "deny",
    },
    OutboxState: {
        OutboxState.PENDING: "pending",
        OutboxState.SENT: "sent",
        OutboxState.FAILED: "failed",
        OutboxState.DISMISSED: "dismissed",
    },
    RemedyState: {
        RemedyState.PENDING: "pending",
        RemedyState.APPLIED: "applied",
        RemedyState.VERIFIED: "verified",
        RemedyState.FAILED: "failed",
        RemedyState.WAIVED: "waived",
    },
    VoteOutcome: {
        VoteOutcome.UPHOLD: "upheld",
        VoteOutcome.PARTLY_UPHOLD: "partly upheld",
        VoteOutcome.DENY: "denied",
    },
}

# How a dispute ended (DisputeOutcome.outcome, precedents): "settled", "ruled_<vote outcome>",
# or the terminal stage's name.
OUTCOMES: dict[str, str] = {
    "settled": "settled",
    "dismissed": "dismissed",
    "withdrawn": "withdrawn",
    "closed": "closed",
    **{f"ruled_{o.value}": f"ruled: {LABELS[VoteOutcome][o]}" for o in VoteOutcome},
}

# A bare string is looked up here: the first table that knows it wins (the same value in two
# enums - "filed", "territory" - reads the same in both). Outcomes first, then vote outcomes,
# so "partly_uphold" reads "partly upheld".
_BY_VALUE: dict[str, str] = {}
for _table in (OUTCOMES, *({str(m.value): w for m, w in t.items()} for t in LABELS.values())):
    for _value, _words in _table.items():
        _BY_VALUE.setdefault(_value, _words)
for _o, _w in LABELS[VoteOutcome].items():
    _BY_VALUE[str(_o.value)] = _w


def label(value: object) -> str:
    """An enum member, an enum's value or an outcome as words: 'partly upheld', 'ruled:
    partly upheld', 'channel vs. direct sales'. Anything unknown: underscores become spaces."""
    if value is None:
        return "-"
    if isinstance(value, Enum):
        words = LABELS.get(type(value), {}).get(value)
        if words is not None:
            return words
        value = value.value
    text = str(value)
    return _BY_VALUE.get(text, text.replace("_", " "))


def sentence(text: object) -> str:
    """A text ended as a sentence: a full stop added unless it ends in one already (or in '!',
    '?'): a reason someone typed with its own full stop is not shown with two."""
    words = str(text).rstrip()
    return words if words.endswith((".", "!", "?")) else f"{words}."


_EXCEPTION = re.compile(r"^[A-Z][A-Za-z]*(?:Error|Refused|Retryable|Exception|Failure): ")


def failure(text: object) -> str:
    """Why something failed, without the Python exception's class name the engine put first
    ('RemedyRefused: https://crm.example/... answered 422' -> 'https://... answered 422')."""
    return _EXCEPTION.sub("", str(text))


def capital(text: object) -> str:
    """The first letter upper-cased, the rest left alone ('MDF credit' stays)."""
    words = str(text)
    return words[:1].upper() + words[1:]


def where(loc: Iterable[object], *, kinds: bool = False) -> str:
    """A validation error's place in words: ('remedies', 0, 'deal_ref') -> 'remedies #1 deal
    ref'. With `kinds`, a remedy kind (pydantic's branch of a tagged union) is put in
    parentheses: ('commission_split', 'shares') -> '(commission split) shares'."""
    words: list[str] = []
    for step in loc:
        if isinstance(step, int):
            words.append(f"#{step + 1}")
        elif kinds and str(step) in {k.value for k in RemedyKind}:
            words.append(f"({label(step)})")
        else:
            words.append(label(step))
    return " ".join(words)


# --- numbers ---------------------------------------------------------------------------------

_IRREGULAR = {"person": "people", "party": "parties", "child": "children"}


def plural(n: int, noun: str, many: str | None = None) -> str:
    """'1 remedy', '2 remedies', '0 offers'; `many` when English has its own plural."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {many or _plural_of(noun)}"


def _plural_of(noun: str) -> str:
    if noun in _IRREGULAR:
        return _IRREGULAR[noun]
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 102nd."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def money(amount: object, currency: str | None = None) -> str:
    """'USD 5,000.00'; a negative amount '-USD 500.00'; no currency, just the figure."""
    number = _decimal(amount)
    if number is None:
        return str(amount)
    figure = f"{abs(number):,.2f}"
    text = f"{currency} {figure}" if currency else figure
    return f"-{text}" if number < 0 else text


def percent(value: object) -> str:
    """'70%', '33.5%' - no trailing zeros, no Decimal repr."""
    number = _decimal(value)
    if number is None:
        return str(value)
    text = f"{number:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


# --- time ------------------------------------------------------------------------------------


def _instant(value: object) -> datetime | date | None:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        try:
            if len(value) == len("2027-01-01"):
                return date.fromisoformat(value)
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def when(value: object) -> str:
    """An instant as people read it: '2026-12-02 16:00 UTC'; a date '2026-12-02'; '-' for
    none. Takes a datetime, a date or an ISO text (mail contexts are JSON)."""
    if value is None or value == "":
        return "-"
    instant = _instant(value)
    if isinstance(instant, datetime):
        if instant.tzinfo is None:
            return instant.strftime("%Y-%m-%d %H:%M")
        return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(instant, date):
        return instant.isoformat()
    return str(value)


def countdown(value: object, now: datetime | None = None) -> str:
    """Time to a deadline: '2d 4h left', '3h 10m left', 'overdue by 1d 2h'."""
    instant = _instant(value) if value is not None else None
    if not isinstance(instant, datetime) or instant.tzinfo is None:
        return "no deadline" if value is None else when(value)
    now = now or datetime.now(UTC)
    seconds = int((instant - now).total_seconds())
    late = seconds < 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d {hours}h" if days else f"{hours}h {minutes}m"
    return f"overdue by {text}" if late else f"{text} left"


# --- partners and people ---------------------------------------------------------------------


# Who acts without being a person of the directory: the system itself (models.payloads.SYSTEM).
_ACTORS = {"accord": "Accord"}


@dataclass(frozen=True)
class Names:
    """Display names by id; an id nobody knows is shown as itself (never as 'None')."""

    partners: Mapping[str, str] = field(default_factory=dict)
    people: Mapping[str, str] = field(default_factory=dict)
    territories: Mapping[str, str] = field(default_factory=dict)
    """Territory code -> name ('US-NY-METRO' -> 'New York Metro')."""

    def partner(self, partner_id: object) -> str:
        if partner_id is None or partner_id == "":
            return "-"
        key = str(partner_id)
        return self.partners.get(key) or key

    def person(self, person_id: object) -> str:
        if person_id is None or person_id == "":
            return "-"
        key = str(person_id)
        return self.people.get(key) or self.partners.get(key) or _ACTORS.get(key) or key

    def territory(self, code: object) -> str:
        """'New York Metro (US-NY-METRO)': its name and the code remedies and filings use; a
        code the directory does not know, as itself."""
        if code is None or code == "":
            return "-"
        key = str(code)
        name = self.territories.get(key)
        return f"{name} ({key})" if name and name != key else key

    def partner_list(self, partner_ids: Iterable[object]) -> str:
        return join([self.partner(p) for p in partner_ids])

    def person_list(self, person_ids: Iterable[object]) -> str:
        return join([self.person(p) for p in person_ids])


NO_NAMES = Names()


def actor(person_id: object, role: object, names: Names | None = None) -> str:
    """Who did something, with their role: 'Greta Hoffmann (mediator)'; the system is
    'Accord (automatic)', not 'accord (Accord (automatic))'."""
    if str(getattr(role, "value", role)) == Role.SYSTEM.value:
        return "Accord (automatic)"
    return f"{(names or NO_NAMES).person(person_id)} ({label(role)})"


_CLOCK = re.compile(r"^information:(.+)$")


def purpose(value: object) -> str:
    """A deadline's purpose: 'mediation', 'formal review'; an information request's clock
    ('information:info-1', the workflow's key) is 'answer to info-1'."""
    found = _CLOCK.match(str(value))
    if found is not None:
        return f"answer to {found.group(1)}"
    return label(value)


def join(items: Iterable[object], last: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = [str(i) for i in items]
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


# --- remedies --------------------------------------------------------------------------------


def _fields(value: object) -> dict[str, Any]:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        fields = dump(mode="json")
        return dict(fields) if isinstance(fields, Mapping) else {}
    if isinstance(value, Mapping):
        return dict(value)
    return {}


def remedy(value: object, names: Names | None = None) -> str:
    """One line per remedy, as its reader decides on it: 'Commission split on deal
    DR-2026-0042: Northwind 70%, Contoso 30%'. Takes a remedy payload or its JSON dict."""
    n = names or NO_NAMES
    r = _fields(value)
    kind = str(r.get("kind", ""))
    match kind:
        case RemedyKind.TERRITORY_REASSIGNMENT:
            return (
                f"Territory {n.territory(r.get('territory_code'))} moves from "
                f"{n.partner(r.get('from_partner_id'))} to {n.partner(r.get('to_partner_id'))}"
                f" on {when(r.get('effective_on'))}"
            )
        case RemedyKind.COMMISSION_SPLIT:
            shares = r.get("shares") or {}
            split = ", ".join(f"{n.partner(p)} {percent(s)}" for p, s in dict(shares).items())
            return f"Commission split on deal {r.get('deal_ref')}: {split}"
        case RemedyKind.REBATE_ADJUSTMENT:
            amount = _decimal(r.get("amount")) or Decimal(0)
            way = "Rebate reduced" if amount < 0 else "Rebate increased"
            return (
                f"{way} by {money(abs(amount), r.get('currency'))} for "
                f"{n.partner(r.get('partner_id'))}"
            )
        case RemedyKind.CO_SELLING_RESOURCES:
            hours = r.get("hours")
            count = plural(int(hours), "hour") if isinstance(hours, int) else f"{hours} hours"
            return (
                f"Co-selling resources for {n.partner(r.get('partner_id'))}: "
                f"{count} of {r.get('resource')}"
            )
        case RemedyKind.LEAD_REROUTE:
            return f"Lead {r.get('lead_ref')} is rerouted to {n.partner(r.get('to_partner_id'))}"
        case RemedyKind.MDF_CREDIT:
            return (
                f"MDF credit of {money(r.get('amount'), r.get('currency'))} to "
                f"{n.partner(r.get('partner_id'))}"
            )
        case RemedyKind.WRITTEN_WARNING:
            return f"Written warning to {n.partner(r.get('partner_id'))}: {r.get('text')}"
    return capital(label(kind)) if kind else "Remedy"


_MAIL_REFUSED = re.compile(r"^(mail refused: )([a-z0-9_]+) to ")
"""The outbox's title of a refused email's task: 'mail refused: <template> to <recipient>';
the template's name (a file's: 'final_ruling') is said in words ('final ruling')."""


def task(value: object) -> str:
    """A task as its assignee reads it: 'mediate DSP-2026-000001', not 'mediate: mediate:
    DSP-...'. The workflow titles its tasks '<kind words>: <number>'; other titles (mail the
    server refused) say more and are kept after the kind."""
    kind = getattr(value, "kind", None)
    title = _MAIL_REFUSED.sub(
        lambda m: f"{m.group(1)}{m.group(2).replace('_', ' ')} to ",
        str(getattr(value, "title", "") or ""),
    )
    words = label(kind)
    for prefix in (
        f"{words}: ",
        f"{label(str(getattr(kind, 'value', kind)))}: ",
        f"{str(getattr(kind, 'value', kind)).replace('_', ' ')}: ",
    ):
        if title.startswith(prefix):
            return f"{words} {title.removeprefix(prefix)}"
    return f"{words}: {title}" if title else words


def remedies(values: Iterable[object], names: Names | None = None) -> list[str]:
    """Every remedy's line, in order."""
    return [remedy(v, names) for v in values]


# --- texts the workflow wrote ----------------------------------------------------------------

_VOTES = "|".join(o.value for o in VoteOutcome)
_RULING = re.compile(rf"\b(ruling(?: issued)?: |ruled )({_VOTES})\b")
_RAW = re.compile(
    r"(?<![\w-])("
    + "|".join(sorted((re.escape(v) for v in _BY_VALUE if "_" in v), key=len, reverse=True))
    + r")(?![\w-])"
)
_ONE = re.compile(
    r"(?<![\d.,])\b1 ((?:similar |business )?)(remed)ies\b|(?<![\d.,])\b1 ((?:similar |business )?)"
    r"(precedent|day|vote|partner|member|message|offer)s\b"
)
_PLACE = re.compile(r"\bremedies\[(\d+)\]")
# A remedy's history line names its adapter ('applied through ledger'); a panel recusal, the
# seat by the playbook's key ('recused from the panel (partner_management)').
_THROUGH = re.compile(r"\b(remedy \d+ \([^)]*\) applied) through ([\w:-]+)")
# A ruling's divergence from precedent (accord.rules.consistency), its outcomes with spaces.
_VOTE_WORDS = {o.value.replace("_", " "): w for o, w in LABELS[VoteOutcome].items()}
_VOTE_SPACED = "|".join(sorted(_VOTE_WORDS, key=len, reverse=True))
_WERE = re.compile(
    rf"(comparable rulings were )({_VOTE_SPACED}) \(([^)]*)\), this one is ({_VOTE_SPACED})\b"
)
_FAILED = re.compile(r"(could not be applied: )(.*)$", re.DOTALL)
_WINDOW = re.compile(r"\bthe information:([\w-]+) window")
_SEAT = re.compile(r"(recused from the panel )\(([a-z_]+)\)")
_STAGES = "|".join(sorted((s.value for s in DisputeStage), key=len, reverse=True))
_ROLES = "|".join(r.value for r in Role)
# The transition table's two refusals (accord.rules.transitions.why_not), with stage and role
# values: said with their words ('applying remedies', 'board member'), 'in triage'.
_NOT_NOW = re.compile(
    rf"\bis not possible while the dispute is ({_STAGES})"
    rf" \(possible in: ((?:{_STAGES})(?:, (?:{_STAGES}))*)\)"
)
_NOT_YOURS = re.compile(
    rf"\bin stage ({_STAGES}) is for ((?:{_ROLES})(?: or (?:{_ROLES}))*), not ({_ROLES})\b"
)
# Stages one is "in"; the others a dispute "is" (filed, settled, awaiting a party, ...).
_IN_STAGE = frozenset(
    {
        DisputeStage.TRIAGE,
        DisputeStage.MEDIATION,
        DisputeStage.FORMAL_REVIEW,
        DisputeStage.APPEAL_WINDOW,
    }
)


def stage_phrase(stage: DisputeStage | str) -> str:
    """How a sentence says a dispute is at `stage`: 'in triage', 'in formal review', 'applying
    remedies', 'closed'."""
    member = DisputeStage(stage)
    words = label(member)
    return f"in {words}" if member in _IN_STAGE else words


def _not_now(found: re.Match[str]) -> str:
    possible = ", ".join(label(DisputeStage(s)) for s in found.group(2).split(", "))
    return (
        f"is not possible while the dispute is {stage_phrase(found.group(1))}"
        f" (possible in: {possible})"
    )


def _not_yours(found: re.Match[str]) -> str:
    roles = " or ".join(label(Role(r)) for r in found.group(2).split(" or "))
    return (
        f"in stage {label(DisputeStage(found.group(1)))} is for {roles}, "
        f"not {label(Role(found.group(3)))}"
    )


# An id the directory knows: a partner's or person's id, or a contact's email (they act by it).
_TOKEN = re.compile(
    r"(?<![\w.@/+-])([\w.+-]+@[\w-]+(?:\.[\w-]+)+|[a-z0-9][\w.-]*[a-z0-9]|[a-z0-9])"
    r"(?![\w@/-]|\.\w)"
)


def summary(text: object, names: Names | None = None) -> str:
    """A line the workflow wrote for the history ('tailspin appealed the ruling', 'ruling:
    partly_uphold', 'remedy 1 (mdf_credit) applied') as its reader reads it: names for the
    ids the directory knows, words for enum values. The stored line itself is unchanged (it
    is part of the audit trail); only what is shown is."""
    n = names or NO_NAMES
    words = _PLACE.sub(lambda m: f"remedy {int(m.group(1)) + 1}", str(text))
    words = _ONE.sub(
        lambda m: f"1 {m.group(1)}remedy" if m.group(2) else f"1 {m.group(3)}{m.group(4)}", words
    )
    words = _RULING.sub(lambda m: m.group(1) + label(VoteOutcome(m.group(2))), words)
    words = _NOT_NOW.sub(_not_now, words)
    words = _WERE.sub(
        lambda m: (
            f"{m.group(1)}{_VOTE_WORDS[m.group(2)]} ({m.group(3)}), this one is "
            f"{_VOTE_WORDS[m.group(4)]}"
        ),
        words,
    )
    words = _FAILED.sub(lambda m: m.group(1) + failure(m.group(2)), words)
    words = _WINDOW.sub(lambda m: f"the window to answer {m.group(1)}", words)
    words = _THROUGH.sub(lambda m: f"{m.group(1)} through {adapter(m.group(2))}", words)
    words = _SEAT.sub(lambda m: f"{m.group(1)}({m.group(2).replace('_', ' ')})", words)
    words = _NOT_YOURS.sub(_not_yours, words)
    words = _RAW.sub(lambda m: label(m.group(1)), words)
    known = {**n.partners, **n.people}
    if not known:
        return words
    return _TOKEN.sub(lambda m: known.get(m.group(1), m.group(1)), words)


_QUOTED = re.compile(r"'([a-z_]+)'")


def choices(text: object) -> str:
    """A message listing enum values as an API client types them ("Input should be 'uphold',
    'partly_uphold' or 'deny'") for a page, where they were choices of a form: their words
    ('Input should be upheld, partly upheld or denied'). Other quoted text is kept."""
    return _QUOTED.sub(lambda m: _BY_VALUE.get(m.group(1), m.group(0)), str(text))


# --- Jinja2 ----------------------------------------------------------------------------------

NamesProvider = Callable[[], Names]


ADAPTERS: dict[str, str] = {
    "ledger": "Accord's remedy ledger",
    "webhook": "the connected partner system",
}
"""The remedy adapters (accord.remedies.adapters) as their readers know them; another is its
name."""


def adapter(name: object) -> str:
    """'ledger' -> "Accord's remedy ledger"; a webhook routed for one kind ('webhook:mdf_credit',
    accord.runtime.wiring) as any webhook; an adapter configured under another name, as named."""
    text = str(name)
    return ADAPTERS.get(text) or ADAPTERS.get(text.partition(":")[0], text)


_LEDGER_ROW = re.compile(r"^ledger_([a-z_]+):(\d+)$")


def remedy_reference(value: object) -> str:
    """Where an applied remedy is recorded: Accord's ledger says its row as '<table>:<id>'
    ('ledger_commission_split:1'), read 'commission split ledger entry 1'; a partner system's
    own reference is shown as it gave it."""
    text = str(value)
    found = _LEDGER_ROW.match(text)
    if found is None:
        return text
    return f"{label(found.group(1))} ledger entry {found.group(2)}"


def install(env: Environment, names: Names | NamesProvider | None = None) -> None:
    """Register every formatter as a filter. Partner and person names come from the
    template's own `names` variable when it has one, else from `names` given here."""

    def _names(context: Context) -> Names:
        given = context.get("names")
        if isinstance(given, Names):
            return given
        if isinstance(names, Names):
            return names
        return names() if names is not None else NO_NAMES

    @pass_context
    def _partner(context: Context, value: object) -> str:
        if isinstance(value, list | tuple):
            return _names(context).partner_list(value)
        return _names(context).partner(value)

    @pass_context
    def _person(context: Context, value: object) -> str:
        if isinstance(value, list | tuple):
            return _names(context).person_list(value)
        return _names(context).person(value)

    @pass_context
    def _remedy(context: Context, value: object) -> str:
        return remedy(value, _names(context))

    @pass_context
    def _actor(context: Context, value: object, role: object) -> str:
        return actor(value, role, _names(context))

    @pass_context
    def _summary(context: Context, value: object) -> str:
        return summary(value, _names(context))

    @pass_context
    def _remedies(context: Context, values: Iterable[object]) -> list[str]:
        return remedies(values, _names(context))

    env.filters.update(
        label=label,
        capital=capital,
        when=when,
        countdown=countdown,
        plural=plural,
        ordinal=ordinal,
        money=money,
        percent=percent,
        join_words=join,
        partner=_partner,
        person=_person,
        remedy=_remedy,
        remedies=_remedies,
        task=task,
        summary=_summary,
        adapter=adapter,
        remedy_reference=remedy_reference,
        purpose=purpose,
        sentence=sentence,
        failure=failure,
        actor=_actor,
    )


# --- on a terminal -------------------------------------------------------------------------------

_UNSEEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Characters a terminal does not show as themselves: controls (a carriage return rewrites the
line), format characters (a right-to-left override reverses the rest of it, zero-width ones
shift columns) and the line and paragraph separators."""
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


def visible(text: str) -> str:
    """`text` with every character a terminal would not show as itself written `\\u202e`."""
    return "".join(
        f"\\u{ord(c):04x}" if c != "\t" and unicodedata.category(c) in _UNSEEN else c for c in text
    )


def terminal_line(text: str) -> str:
    """One line of the CLI's output as a terminal shows it: a line break inside it (a note, the
    terms of an offer, a reason: prose keeps them) shown as ` ⏎ `, so that no text prints a
    line of its own that reads as another; the rest as `visible`."""
    return visible(_LINE_BREAK.sub(" \u23ce ", text))
