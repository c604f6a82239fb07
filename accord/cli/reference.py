"""What `accord partners`, `accord people` and `accord playbook` print: the directory and the
rules in force, told so a person can act on them from the command line (which ids to pass,
which categories exist, which remedies each allows and how to write one as JSON).

Every line fits 80 columns (tests/cli/test_cli_reference.py checks it)."""

from __future__ import annotations

import json
import textwrap
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from sqlmodel import Session, col, func, select

from accord.platform.wording import join, label, plural, visible
from accord.playbooks.library import Playbook
from models.enums import DisputeCategory, RemedyKind
from models.payloads import Remedy
from models.tables import Partner, PartnerContact, Person

WIDTH = 80


# --- remedies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemedyField:
    name: str
    type: str
    meaning: str


@dataclass(frozen=True)
class RemedyGuide:
    meaning: str
    fields: tuple[RemedyField, ...]
    example: dict[str, Any]


_PARTNER = "partner id"
_MONEY = "amount, e.g. 2500.00"
_CURRENCY = "currency code"

# One entry per remedy kind, each field of its payload model (models.payloads) with its type and
# meaning, and an example that validates (tests/cli/test_cli_reference.py checks both).
REMEDIES: dict[RemedyKind, RemedyGuide] = {
    RemedyKind.TERRITORY_REASSIGNMENT: RemedyGuide(
        "moves a territory from one partner to another from a given day",
        (
            RemedyField("territory_code", "territory code", "the territory that moves"),
            RemedyField("from_partner_id", _PARTNER, "the partner that holds it now"),
            RemedyField("to_partner_id", _PARTNER, "the partner that holds it from then on"),
            RemedyField("effective_on", "date, YYYY-MM-DD", "the day the move takes effect"),
        ),
        {
            "kind": "territory_reassignment",
            "territory_code": "US-NY-METRO",
            "from_partner_id": "northwind",
            "to_partner_id": "contoso",
            "effective_on": "2027-01-01",
        },
    ),
    RemedyKind.COMMISSION_SPLIT: RemedyGuide(
        "shares the commission on a deal between partners",
        (
            RemedyField("deal_ref", "deal reference", "the deal whose commission is shared"),
            RemedyField(
                "shares",
                "partner id: percent",
                "each partner's percent (at least two partners; they add up to 100)",
            ),
        ),
        {
            "kind": "commission_split",
            "deal_ref": "DR-2026-0042",
            "shares": {"northwind": 70, "contoso": 30},
        },
    ),
    RemedyKind.REBATE_ADJUSTMENT: RemedyGuide(
        "changes a partner's rebate by an amount (negative to take some back)",
        (
            RemedyField("partner_id", _PARTNER, "whose rebate changes"),
            RemedyField("amount", "amount, e.g. -1500.00", "by how much (two decimals at most)"),
            RemedyField("currency", _CURRENCY, "three capital letters, e.g. USD"),
        ),
        {
            "kind": "rebate_adjustment",
            "partner_id": "contoso",
            "amount": "-1500.00",
            "currency": "USD",
        },
    ),
    RemedyKind.CO_SELLING_RESOURCES: RemedyGuide(
        "commits the vendor's people to help a partner sell, for a number of hours",
        (
            RemedyField("partner_id", _PARTNER, "the partner who gets the help"),
            RemedyField("resource", "text", "who or what helps, e.g. a solution engineer"),
            RemedyField("hours", "whole number", "how many hours (1 to 10,000)"),
        ),
        {
            "kind": "co_selling_resources",
            "partner_id": "northwind",
            "resource": "solution engineer",
            "hours": 40,
        },
    ),
    RemedyKind.LEAD_REROUTE: RemedyGuide(
        "hands a lead to another partner",
        (
            RemedyField("lead_ref", "lead reference", "the lead that moves"),
            RemedyField("to_partner_id", _PARTNER, "the partner who gets it"),
        ),
        {"kind": "lead_reroute", "lead_ref": "LEAD-2026-118", "to_partner_id": "northwind"},
    ),
    RemedyKind.MDF_CREDIT: RemedyGuide(
        "credits market development funds (MDF) to a partner",
        (
            RemedyField("partner_id", _PARTNER, "the partner credited"),
            RemedyField("amount", _MONEY, "more than zero, two decimals at most"),
            RemedyField("currency", _CURRENCY, "three capital letters, e.g. USD"),
        ),
        {"kind": "mdf_credit", "partner_id": "northwind", "amount": "5000.00", "currency": "USD"},
    ),
    RemedyKind.WRITTEN_WARNING: RemedyGuide(
        "puts a written warning on a partner's record",
        (
            RemedyField("partner_id", _PARTNER, "the partner warned"),
            RemedyField("text", "text", "the warning, as the partner will read it"),
        ),
        {
            "kind": "written_warning",
            "partner_id": "contoso",
            "text": "Register deals before you work them.",
        },
    ),
}

REMEDY_KINDS = ", ".join(k.value for k in RemedyKind)

REMEDY_OPTION_HELP = (
    'a remedy as JSON, e.g. {"kind": "mdf_credit", "partner_id": "northwind", '
    '"amount": "5000.00", "currency": "USD"}; repeat for several. Kinds: '
    f"{REMEDY_KINDS}. `accord playbook` lists each kind's fields, with an example, and "
    "which kinds each category allows"
)
"""The help of every action's --remedy option."""

_REMEDY: TypeAdapter[Remedy] = TypeAdapter(Remedy)


def example_json(kind: RemedyKind) -> str:
    """The example of a kind as the JSON --remedy takes, on one line."""
    return json.dumps(REMEDIES[kind].example, separators=(",", ":"))


def validate_example(kind: RemedyKind) -> Remedy:
    return _REMEDY.validate_json(example_json(kind))


# --- layout -----------------------------------------------------------------------------------


def _wrap(text: str, indent: str, hanging: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent if hanging is None else hanging,
        break_on_hyphens=False,
    ) or [indent.rstrip()]


def _shown(text: str) -> str:
    """A cell as a terminal shows it: what it would hide is written `\\u202e`, so that whoever
    reads the table sees what the directory holds (`--json` keeps it exactly)."""
    return visible(text)


def _columns(text: str) -> int:
    """Terminal columns `text` takes: East Asian wide characters two, combining marks none."""
    return sum(
        0
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me")
        else 2
        if unicodedata.east_asian_width(c) in ("W", "F")
        else 1
        for c in text
    )


def _fit(text: str, width: int) -> list[str]:
    """`text` wrapped at spaces into lines of at most `width` columns (a word longer than that
    is broken, never let out of its column)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while _columns(word) > width:
            room = width - _columns(line) - (1 if line else 0)
            if room <= 0:
                lines.append(line)
                line = ""
                continue
            cut = 0
            while cut < len(word) and _columns(word[: cut + 1]) <= room:
                cut += 1
            line = f"{line} {word[:cut]}" if line else word[:cut]
            lines.append(line)
            line, word = "", word[cut:]
        if not word:
            continue
        if line and _columns(line) + 1 + _columns(word) > width:
            lines.append(line)
            line = ""
        line = f"{line} {word}" if line else word
    return [*lines, line] if line or not lines else lines


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns as wide as their widest cell, within WIDTH: while the table is wider, the widest
    column gives up a column, and its cells wrap within it. Cells show what a terminal would
    hide (`_shown`) and are measured as a terminal shows them (`_columns`)."""
    table = [[_shown(cell) for cell in row] for row in (header, *rows)]
    widths = [max(_columns(r[i]) for r in table) for i in range(len(header))]
    floors = [min(w, max(_columns(header[i]), 8)) for i, w in enumerate(widths)]
    room = WIDTH - 2 * (len(header) - 1)
    while sum(widths) > room:
        widest = max(
            (i for i in range(len(widths)) if widths[i] > floors[i]),
            key=lambda i: widths[i],
            default=None,
        )
        if widest is None:
            break
        widths[widest] -= 1
    lines = []
    for row in table:
        cells = [_fit(cell, w) for cell, w in zip(row, widths, strict=True)]
        for n in range(max(len(c) for c in cells)):
            parts = [c[n] if n < len(c) else "" for c in cells]
            padded = [p + " " * (w - _columns(p)) for p, w in zip(parts, widths, strict=True)]
            lines.append("  ".join(padded).rstrip())
    return lines


# --- the directory ----------------------------------------------------------------------------


def partners_text(session: Session, with_contacts: bool = False) -> list[str]:
    partners = session.exec(select(Partner).order_by(col(Partner.id))).all()
    if not partners:
        return ["no partners: load some with `accord import-directory <file>` (or seed-demo)"]
    counts = dict(
        session.exec(
            select(PartnerContact.partner_id, func.count())
            .where(col(PartnerContact.active))
            .group_by(col(PartnerContact.partner_id))
        ).all()
    )
    rows = []
    for p in partners:
        count = counts.get(p.id, 0)
        rows.append(
            [
                p.id,
                p.name + (" *" if p.is_direct_sales else "") + ("" if p.active else " (inactive)"),
                label(p.tier),
                ", ".join(p.regions) or "-",
                str(count),
            ]
        )
    lines = _table(["ID", "NAME", "TIER", "REGIONS", "CONTACTS"], rows)
    if any(p.is_direct_sales for p in partners):
        lines += ["* the vendor's own direct sales team (a party in channel vs. direct disputes)"]
    if with_contacts:
        contacts = session.exec(
            select(PartnerContact).order_by(
                col(PartnerContact.partner_id), col(PartnerContact.email)
            )
        ).all()
        lines += ["", "Contacts (they act with --as <email>):"]
        lines += _table(
            ["PARTNER", "EMAIL", "NAME"],
            [
                [c.partner_id, c.email, c.name + ("" if c.active else " (inactive)")]
                for c in contacts
            ],
        )
    else:
        lines += ["", "Partner contacts act with --as <email>: `accord partners --contacts`."]
    return lines


def people_text(session: Session, role: str | None = None) -> list[str]:
    query = select(Person).order_by(col(Person.role), col(Person.id))
    if role:
        query = query.where(Person.role == role)
    people = session.exec(query).all()
    if not people:
        return ["no people" + (f" with the role {label(role)}" if role else "")]
    partner_names = dict(session.exec(select(Partner.id, Partner.name)).all())
    rows = []
    for p in people:
        organisation = (
            "the vendor"
            if p.organisation == "vendor"
            else partner_names.get(p.organisation, p.organisation)
        )
        rows.append(
            [
                p.id,
                p.name + ("" if p.active else " (inactive)"),
                label(p.role),
                label(p.function) if p.function else "-",
                organisation,
            ]
        )
    lines = _table(["ID", "NAME", "ROLE", "FUNCTION", "WORKS FOR"], rows)
    lines += ["", "They act with --as <id> (or their email); `--json` adds emails and limits."]
    return lines


# --- the playbook -----------------------------------------------------------------------------


def _days(n: int, kind: str = "business") -> str:
    return plural(n, f"{kind} day")


def playbook_text(playbook: Playbook) -> list[str]:
    s = playbook.stages
    lines = [
        f"Playbook {playbook.version}, in force since {playbook.effective_from.isoformat()}",
        "",
        "Deadlines",
    ]
    for name, rule in (
        ("accepting an assignment", s.acceptance),
        ("mediation", s.mediation),
        ("answering an information request", s.information_request),
        ("formal review", s.formal_review),
        ("applying remedies", s.remedy),
    ):
        lines += _wrap(
            f"{name}: {_days(rule.business_days)} on the {rule.calendar_of}'s calendar", "  "
        )
    lines += _wrap(
        f"filing: within {_days(playbook.filing_window_days, 'calendar')} of the conflict",
        "  ",
    )
    lines += _wrap(
        f"appeal: within {_days(playbook.appeal_window_days)} of a ruling, on the board's "
        f"calendar ({playbook.board_calendar})",
        "  ",
        "    ",
    )
    if playbook.warnings:
        shares = " and ".join(f"{round(w * 100)}%" for w in playbook.warnings)
        lines += _wrap(f"the owner of a deadline is warned at {shares} of its time", "  ")
    lines.append("")
    lines += _wrap(
        "A review panel draws one board member per function - "
        + join(label(f) for f in playbook.panel.functions)
        + " - and a chair.",
        "",
    )
    lines.append("")
    lines += _wrap(
        "Categories (file with --category <code>; a ruling cites a clause by its reference, "
        "e.g. --clause 'RoE 3.1')",
        "",
    )
    for category in DisputeCategory:
        rules = playbook.categories[category]
        words = label(category)
        lines.append(f"  {category.value}" + (f" ({words})" if words != category.value else ""))
        lines += _wrap(f"clause: {rules.clause}", "    ", "      ")
        lines += _wrap(
            "remedies allowed: " + ", ".join(k.value for k in rules.allowed_remedies),
            "    ",
            "      ",
        )
    lines += [
        "",
        "Remedies (--remedy takes one as JSON; repeat --remedy for several)",
    ]
    for kind, guide in REMEDIES.items():
        lines.append("")
        lines += _wrap(f"{kind.value}: {guide.meaning}", "  ", "      ")
        lines += _wrap(
            "allowed in: "
            + ", ".join(
                c.value for c in DisputeCategory if kind in playbook.categories[c].allowed_remedies
            )
            if any(kind in playbook.categories[c].allowed_remedies for c in DisputeCategory)
            else "allowed in: no category of this playbook",
            "    ",
            "      ",
        )
        width = max(len(f.name) for f in guide.fields)
        type_width = max(len(f.type) for f in guide.fields)
        for f in guide.fields:
            lead = f"    {f.name:<{width}}  {f.type:<{type_width}}  "
            lines += _wrap(f.meaning, lead, " " * len(lead))
        lines += _example(kind)
    return lines


def _example(kind: RemedyKind) -> list[str]:
    one_line = f"    e.g. --remedy '{example_json(kind)}'"
    if len(one_line) <= WIDTH:
        return [one_line]
    body = json.dumps(REMEDIES[kind].example, indent=2).splitlines()
    return [
        "    e.g. --remedy '" + body[0],
        *(f"    {line}" for line in body[1:-1]),
        f"    {body[-1]}'",
    ]
