"""Filing by email: the forgiving format, read into a filing submission.

The subject is the summary; lines of the form `Name: value` give the rest, in any order and
any case, with the usual synonyms; everything else in the body is the facts:

    Subject: Contoso registered our Acme deal after we did

    Respondent: Contoso
    Category: deal registration
    Deal: DR-2026-0042
    Amount: 125,000 USD
    Occurred: 2026-11-20
    Remedy: Registration confirmed to us

    We registered DR-2026-0042 for Acme on 2 November; Contoso a week later.

Partner and account names are matched fuzzily (rapidfuzz on names normalised by cleanco),
so "Contoso Ltd" or "contoso systems" find Contoso Systems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cleanco import basename  # type: ignore[import-untyped]
from rapidfuzz import fuzz, process
from sqlmodel import Session, select

from models.enums import DisputeCategory, ObjectKind
from models.tables import Account, Partner

KEYS: dict[str, str] = {
    "respondent": "respondent",
    "respondents": "respondent",
    "against": "respondent",
    "other party": "respondent",
    "category": "category",
    "type": "category",
    "deal": "deal_registration",
    "deal registration": "deal_registration",
    "registration": "deal_registration",
    "account": "account",
    "customer": "account",
    "lead": "lead",
    "territory": "territory",
    "price list": "price_list",
    "pricelist": "price_list",
    "amount": "amount",
    "amount at stake": "amount",
    "value": "amount",
    "occurred": "occurred_on",
    "occurred on": "occurred_on",
    "date": "occurred_on",
    "when": "occurred_on",
    "remedy": "desired_remedy",
    "desired remedy": "desired_remedy",
    "we want": "desired_remedy",
    "facts": "facts",
}
LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]{1,20}?)\s*:\s*(.+?)\s*$")
MATCH_CUTOFF = 85
SUMMARY_LIMIT = 300
"""FilingSubmission.summary's maximum length."""


@dataclass
class MailFiling:
    data: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    """Exactly what is missing or not understood, in words for the reply."""
    understood: dict[str, str] = field(default_factory=dict)
    """What was understood, as web form fields, for the pre-filled link."""


def _normal(name: str) -> str:
    return str(basename(name)).lower().strip()


def match_partner(session: Session, text: str, exclude: str | None) -> str | None:
    partners = [p for p in session.exec(select(Partner).where(Partner.active)).all()]
    for p in partners:
        if text.strip().lower() == p.id and p.id != exclude:
            return p.id
    choices = {p.id: _normal(p.name) for p in partners if p.id != exclude}
    found = process.extractOne(
        _normal(text), choices, scorer=fuzz.WRatio, score_cutoff=MATCH_CUTOFF
    )
    return str(found[2]) if found else None


def match_account(session: Session, text: str) -> str | None:
    accounts = session.exec(select(Account)).all()
    for a in accounts:
        if text.strip().upper() == a.code.upper():
            return a.code
    choices = {a.code: _normal(a.name) for a in accounts}
    found = process.extractOne(
        _normal(text), choices, scorer=fuzz.WRatio, score_cutoff=MATCH_CUTOFF
    )
    return str(found[2]) if found else None


def match_category(text: str) -> DisputeCategory | None:
    choices = {c: c.value.replace("_", " ") for c in DisputeCategory}
    found = process.extractOne(text.lower(), choices, scorer=fuzz.WRatio, score_cutoff=75)
    return DisputeCategory(found[2]) if found else None


@dataclass(frozen=True)
class Amount:
    value: Decimal
    currency: str


@dataclass(frozen=True)
class Unclear:
    """An amount that could be read two ways (or not read for certain): asked, never guessed."""

    question: str


MINOR_DIGITS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "KWD": 3, "BHD": 3, "JOD": 3}
MINOR_DIGITS |= {"OMR": 3, "TND": 3, "IQD": 3, "LYD": 3}
"""Decimals of the currencies that do not have two: a three-digit tail after one separator is
a thousands group only where the currency has fewer than three decimals."""
NUMBER = re.compile(r"(\d[\d,.'\u00a0\u202f ]*\d|\d)\s*([kKmM](?![A-Za-z]))?")


def _grouped(digits: str, sep: str) -> bool:
    """Thousands grouped properly: 1 to 3 digits, then groups of exactly 3."""
    return re.fullmatch(r"\d{1,3}(?:" + re.escape(sep) + r"\d{3})*", digits) is not None


def parse_amount(text: str) -> Amount | Unclear | None:
    """'125.000,00 EUR', '40.000 EUR', '$40,000', '1.5m GBP'; None when there is no number.

    The last separator followed by one or two digits marks the decimals, whichever it is;
    the other groups thousands. One separator followed by exactly three digits ('40,000',
    '40.000', '1,234') groups thousands only when a named currency has fewer than three
    decimals; otherwise it could be either, and the sender is asked."""
    currency, named = "USD", False
    for iso, symbol in (("USD", "$"), ("EUR", "€"), ("GBP", "£")):
        if symbol in text:
            currency, named = iso, True
    code = re.search(r"\b([A-Z]{3})\b", text)
    if code:
        currency, named = code.group(1), True
    number = NUMBER.search(text)
    if not number:
        return None
    written = number.group(1)
    unsure = Unclear(
        f"Amount: {text.strip()!r} is not an amount I can read for certain; write it with"
        " its currency, e.g. 'Amount: 125000.00 EUR'"
    )
    # Spaces and apostrophes only ever group thousands (125 000,00; 1'250'000).
    chunks = re.split(r"[ '\u00a0\u202f]+", written)
    if len(chunks) > 1:
        if not all(re.match(r"\d{3}(?!\d)", c) for c in chunks[1:]) or len(chunks[0]) > 3:
            return unsure
        written = "".join(chunks)
    marks = [c for c in written if c in ",."]
    minor = MINOR_DIGITS.get(currency, 2)
    if not marks:
        value = Decimal(written)
    elif len(set(marks)) == 2:
        decimal_mark = marks[-1]
        group_mark = "," if decimal_mark == "." else "."
        whole, _, fraction = written.rpartition(decimal_mark)
        if marks.count(decimal_mark) > 1 or not 1 <= len(fraction) <= max(minor, 2):
            return unsure
        if not _grouped(whole, group_mark):
            return unsure
        value = Decimal(f"{whole.replace(group_mark, '')}.{fraction}")
    elif len(marks) > 1:
        if not _grouped(written, marks[0]):
            return unsure
        value = Decimal(written.replace(marks[0], ""))
    else:
        whole, mark, fraction = written.partition(marks[0])
        as_decimals = Decimal(f"{whole}.{fraction}")
        if len(fraction) in (1, 2) or whole == "0":
            value = as_decimals
        elif len(fraction) != 3:
            return unsure
        elif named and minor < 3:
            value = Decimal(whole + fraction)
        else:
            return Unclear(
                f"Amount: {text.strip()!r} can be read two ways: {whole + fraction} (the"
                f" {mark!r} grouping thousands) or {as_decimals} (the {mark!r} marking"
                f" decimals); write it with its currency and cents, e.g."
                f" 'Amount: {whole + fraction}.00 {currency}' or"
                f" 'Amount: {as_decimals.quantize(Decimal('0.01'))} {currency}'"
            )
    value *= {"k": 1_000, "m": 1_000_000}.get((number.group(2) or "").lower(), 1)
    return Amount(value.quantize(Decimal("0.01")), currency)


def parse_date(text: str) -> date | None:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def read_filing(session: Session, claimant_id: str, subject: str, body: str) -> MailFiling:
    fields: dict[str, list[str]] = {}
    facts: list[str] = []
    for line in body.splitlines():
        matched = LINE.match(line)
        key = KEYS.get(matched.group(1).strip().lower()) if matched else None
        if matched and key:
            fields.setdefault(key, []).append(matched.group(2))
        else:
            facts.append(line)
    summary = re.sub(r"^\s*((re|fwd?|aw|wg)\s*:\s*)+", "", subject, flags=re.IGNORECASE).strip()
    if len(summary) > SUMMARY_LIMIT:
        # A long subject is still the summary, cut with a marker; the whole is in the original.
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    filing = MailFiling(data={"claimant_id": claimant_id, "summary": summary})
    if len(summary) < 5:
        filing.missing.append("a subject line of at least 5 characters (it becomes the summary)")
    else:
        filing.understood["summary"] = summary

    respondents: list[str] = []
    for value in fields.get("respondent", []):
        for name in re.split(r",|;| and ", value):
            if not name.strip():
                continue
            partner = match_partner(session, name, exclude=claimant_id)
            if partner is None:
                filing.missing.append(f"Respondent: no partner matches {name.strip()!r}")
            elif partner not in respondents:
                respondents.append(partner)
    if not fields.get("respondent"):
        filing.missing.append("Respondent: the partner (or direct sales) you dispute with")
    filing.data["respondent_ids"] = respondents
    if respondents:
        filing.understood["respondent_ids"] = ",".join(respondents)

    category_text = (fields.get("category") or [""])[0]
    category = match_category(category_text) if category_text else None
    if category is None:
        allowed = ", ".join(c.value.replace("_", " ") for c in DisputeCategory)
        filing.missing.append(
            f"Category: one of {allowed}"
            + (f" ({category_text!r} is not one)" if category_text else "")
        )
    else:
        filing.data["category"] = category.value
        filing.understood["category"] = category.value

    objects: list[dict[str, str]] = []
    for kind in ObjectKind:
        for value in fields.get(kind.value, []):
            ref = value.strip()
            if kind is ObjectKind.ACCOUNT:
                code = match_account(session, ref)
                if code is None:
                    filing.missing.append(f"Account: no account matches {ref!r}")
                    continue
                ref = code
            objects.append({"kind": kind.value, "ref": ref[:128]})
    if not objects and not any(m.startswith("Account:") for m in filing.missing):
        filing.missing.append(
            "the contested object: a line such as 'Deal: DR-2026-0042', 'Account: Acme', "
            "'Lead: L-77', 'Territory: US-NE' or 'Price list: PL-2026'"
        )
    filing.data["contested_objects"] = objects
    for i, obj in enumerate(objects[:5]):
        filing.understood[f"object-{i}-kind"] = obj["kind"]
        filing.understood[f"object-{i}-ref"] = obj["ref"]

    amount = parse_amount((fields.get("amount") or [""])[0])
    if amount is None:
        filing.missing.append("Amount: the amount at stake, e.g. 'Amount: 125,000 USD'")
    elif isinstance(amount, Unclear):
        filing.missing.append(amount.question)
    else:
        filing.data["amount_at_stake"] = str(amount.value)
        filing.data["currency"] = amount.currency
        filing.understood["amount_at_stake"] = str(amount.value)
        filing.understood["currency"] = amount.currency

    occurred_text = (fields.get("occurred_on") or [""])[0]
    occurred = parse_date(occurred_text) if occurred_text else None
    if occurred is None:
        filing.missing.append(
            "Occurred: when the conflict happened, e.g. 'Occurred: 2026-11-20'"
            + (f" ({occurred_text!r} is not a date I can read)" if occurred_text else "")
        )
    else:
        filing.data["occurred_on"] = occurred.isoformat()
        filing.understood["occurred_on"] = occurred.isoformat()

    remedy = " ".join(fields.get("desired_remedy", [])).strip()
    filing.data["desired_remedy"] = remedy or "To be discussed in mediation"
    filing.understood["desired_remedy"] = filing.data["desired_remedy"]

    text = "\n".join([*fields.get("facts", []), *facts]).strip()
    if len(text) < 10:
        filing.missing.append("the facts: a few sentences on what happened, in the body")
    else:
        filing.data["facts"] = text[:20_000]
        filing.understood["facts"] = text[:2_000]
    return filing
