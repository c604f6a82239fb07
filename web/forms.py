"""HTML forms for the actions and the filing: which fields each has, and how a posted form
becomes the payload's data. Validation itself is the payload's (pydantic) and the workflow's;
this module only maps their errors back onto the fields the user typed into."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from models.enums import Action, RemedyKind
from models.text import plain_error, relevant

REMEDY_ROWS = 3

# Which inputs of a remedy row each kind reads; the others in the row are ignored.
REMEDY_FIELDS: dict[RemedyKind, tuple[str, ...]] = {
    RemedyKind.TERRITORY_REASSIGNMENT: (
        "territory_code",
        "from_partner_id",
        "to_partner_id",
        "effective_on",
    ),
    RemedyKind.COMMISSION_SPLIT: ("deal_ref", "shares"),
    RemedyKind.REBATE_ADJUSTMENT: ("partner_id", "amount", "currency"),
    RemedyKind.CO_SELLING_RESOURCES: ("partner_id", "resource", "hours"),
    RemedyKind.LEAD_REROUTE: ("lead_ref", "to_partner_id"),
    RemedyKind.MDF_CREDIT: ("partner_id", "amount", "currency"),
    RemedyKind.WRITTEN_WARNING: ("partner_id", "text"),
}
REMEDY_INPUTS = sorted({f for fields in REMEDY_FIELDS.values() for f in fields})


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str = "textarea"
    """text, textarea, number, select, multi (checkboxes), yesno, remedies, evidence_refs."""
    options: str | None = None
    """Where a select's choices come from (see web.pages.form_options)."""
    required: bool = True
    help: str = ""


def _reason(label: str = "Reason") -> FormField:
    return FormField("reason", label)


def _divergence() -> FormField:
    return FormField(
        "divergence_acknowledgement",
        "Why this departs from precedent",
        required=False,
        help="Needed only when it diverges from the similar precedents on the same clause "
        "(shown above); at least a sentence, kept in the record.",
    )


def _departure() -> FormField:
    return FormField(
        "departure_reason",
        "Why this departs from the rules' recommendation",
        required=False,
        help="Needed only when it departs from what the rules of engagement recommend (shown "
        "above); at least a sentence, kept in the record.",
    )


ACTION_FORMS: dict[Action, tuple[FormField, ...]] = {
    Action.ACCEPT_ASSIGNMENT: (
        FormField(
            "impartiality_declaration",
            "Impartiality declaration",
            help="State that you have no interest in the outcome and no tie to either party.",
        ),
    ),
    Action.RECUSE: (_reason(),),
    Action.ADD_NOTE: (
        FormField("text", "Note"),
        FormField("visibility", "Shared with", "select", "note_visibility"),
        FormField(
            "caucus_partner_id",
            "Caucus side",
            "select",
            "parties",
            required=False,
            help="For a caucus note: the one side that may read it.",
        ),
    ),
    Action.REQUEST_INFORMATION: (
        FormField("party_id", "Ask", "select", "parties"),
        FormField("questions", "Questions"),
    ),
    Action.ANSWER_INFORMATION: (
        FormField("request_id", "Request", "select", "my_requests"),
        FormField("answer", "Answer"),
    ),
    Action.PROPOSE_SETTLEMENT: (
        FormField("terms", "Terms"),
        FormField("remedies", "Remedies", "remedies"),
        _divergence(),
        _departure(),
    ),
    Action.RESPOND_TO_OFFER: (
        FormField("offer_id", "Offer", "select", "open_offers"),
        FormField("accept", "Your answer", "yesno"),
        FormField("comment", "Comment", required=False),
    ),
    Action.DECLARE_IMPASSE: (_reason(),),
    Action.DISMISS: (_reason(),),
    Action.WITHDRAW: (_reason(),),
    Action.EXTEND_DEADLINE: (
        # The deadline the admin sees running: if another runs by the time it applies (the
        # mediator accepted meanwhile, say), the extension is refused rather than misapplied.
        FormField("deadline", "Deadline", "select", options="deadlines"),
        FormField("business_days", "Business days", "number"),
        _reason("Reason (goes into the audit trail)"),
    ),
    Action.ASSIGN_MEDIATOR: (
        FormField("person_id", "Mediator", "select", "mediators"),
        _reason(),
    ),
    Action.RETRY_REMEDY: (
        FormField("position", "Remedy", "select", "failed_remedies"),
        FormField("reason", "What changed", required=False),
    ),
    Action.WAIVE_REMEDY: (
        FormField("position", "Remedy", "select", "failed_remedies"),
        _reason(),
    ),
    Action.CAST_VOTE: (
        FormField("outcome", "Vote", "select", "outcomes"),
        FormField("reasons", "Written reasons", help="At least a sentence; sealed until all vote."),
        FormField("remedies", "Remedies", "remedies", required=False),
    ),
    Action.ISSUE_RULING: (
        FormField("outcome", "Ruling", "select", "outcomes"),
        FormField("rationale", "Rationale"),
        FormField("votes_relied_on", "Votes relied on", "multi", "voters"),
        FormField("clauses_applied", "Playbook clauses applied", "multi", "clauses"),
        FormField("precedents_cited", "Precedents cited", "multi", "precedents", required=False),
        FormField(
            "against_majority_reason",
            "Why against the majority",
            required=False,
            help="Required only when the ruling differs from most votes.",
        ),
        FormField("remedies", "Remedies", "remedies", required=False),
        _divergence(),
        _departure(),
    ),
    Action.APPEAL: (
        FormField("grounds", "Grounds"),
        FormField(
            "new_evidence",
            "New evidence",
            "evidence_refs",
            "evidence",
            help="Tick evidence you added, or write one reference per line as "
            "'reference | description'.",
        ),
    ),
    Action.REDRAW_PANEL: (_reason(),),
    Action.UNSEAL_BALLOT: (_reason(),),
}


_FIELD_FIRST = re.compile(r"^([a-z]+_[a-z_]+): ")


def refused_as_shown(action: Action, text: str) -> str:
    """A refusal that starts with a payload field ('offer_id: offer-9 is not an open settlement
    offer') started with the form's label for it ('Offer: ...'): the page shows no field names."""
    found = _FIELD_FIRST.match(text)
    if found is None:
        return text
    labels = {f.name: f.label for f in ACTION_FORMS.get(action, ())}
    name = found.group(1)
    return (
        f"{labels.get(name) or name.removesuffix('_id').replace('_', ' ')}: {text[found.end() :]}"
    )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _remedies(form: FormData) -> list[dict[str, Any]]:
    remedies: list[dict[str, Any]] = []
    for i in range(REMEDY_ROWS):
        kind = _text(form, f"remedy-{i}-kind")
        if not kind:
            continue
        remedy: dict[str, Any] = {"kind": kind}
        try:
            fields = REMEDY_FIELDS[RemedyKind(kind)]
        except ValueError:
            fields = ()
        for name in fields:
            value = _text(form, f"remedy-{i}-{name}")
            if name == "shares":
                remedy[name] = _shares(value)
            elif value:
                remedy[name] = value
        remedies.append(remedy)
    return remedies


def _shares(text: str) -> dict[str, str] | str:
    """'northwind=60, contoso=40' -> {'northwind': '60', 'contoso': '40'}; left as text (and so
    refused with a clear message) when it is not in that shape."""
    shares: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partner, sep, percent = part.partition("=")
        if not sep:
            return text
        shares[partner.strip()] = percent.strip()
    return shares


def _evidence_refs(form: FormData, name: str, descriptions: dict[str, str]) -> list[dict[str, str]]:
    refs = [
        {"ref": ref, "description": descriptions.get(ref, ref)}
        for ref in form.getlist(name)
        if isinstance(ref, str) and ref
    ]
    for line in _text(form, f"{name}-other").splitlines():
        if not line.strip():
            continue
        ref, _, description = line.partition("|")
        refs.append({"ref": ref.strip(), "description": description.strip() or ref.strip()})
    return refs


def action_data(
    action: Action, form: FormData, evidence_descriptions: dict[str, str]
) -> dict[str, Any]:
    """The posted form as the action payload's fields (actor excluded)."""
    data: dict[str, Any] = {}
    for field in ACTION_FORMS[action]:
        match field.kind:
            case "remedies":
                data[field.name] = _remedies(form)
            case "multi":
                data[field.name] = [v for v in form.getlist(field.name) if isinstance(v, str)]
            case "yesno":
                data[field.name] = _text(form, field.name) == "yes"
            case "evidence_refs":
                data[field.name] = _evidence_refs(form, field.name, evidence_descriptions)
            case _:
                value = _text(form, field.name)
                if value or field.required:
                    data[field.name] = value
    return data


_FIELD_IN_MESSAGE = re.compile(r"^(?:Value error, )?([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)*): (.*)$")


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, message) pairs a person can act on: the field is the first part of the location,
    the message names the rest (e.g. 'remedies', '1 amount: Input should be greater than 0')."""
    errors: list[tuple[str, str]] = []
    for err in relevant(exc.errors()):
        loc = [
            f"#{p + 1}" if isinstance(p, int) else str(p)
            for p in err["loc"]
            if p not in _DISCRIMINATOR_TAGS
        ]
        message = plain_error(err)
        if not loc:
            matched = _FIELD_IN_MESSAGE.match(message)
            if matched:
                errors.append((matched.group(1).split(".")[0].split("[")[0], matched.group(2)))
                continue
            errors.append(("form", message.removeprefix("Value error, ")))
            continue
        rest = " ".join(loc[1:])
        errors.append((loc[0], f"{rest}: {message}" if rest else message))
    return errors


_DISCRIMINATOR_TAGS = {k.value for k in RemedyKind}
