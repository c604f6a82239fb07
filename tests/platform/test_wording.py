"""accord.platform.wording: every enum member has words, and each formatter says things as people
read them - no underscores, no reprs, names instead of ids."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from types import SimpleNamespace
from typing import Any

import pytest
from jinja2 import Environment
from pydantic import TypeAdapter

from accord.directory import records as directory
from accord.platform import wording
from accord.platform.wording import Names
from models import enums
from models.enums import DisputeCategory, RemedyKind, Role, TaskKind, VoteOutcome
from models.payloads import (
    CommissionSplit,
    CoSellingResources,
    LeadReroute,
    MdfCredit,
    RebateAdjustment,
    Remedy,
    TerritoryReassignment,
    WrittenWarning,
)
from notifications import exceptions as exception_notices
from notifications.render import SUBJECTS, TemplateCatalog

NAMES = Names(
    partners={"northwind": "Northwind", "contoso": "Contoso", "tailspin": "Tailspin"},
    people={"sam.okafor": "Sam Okafor"},
)

ALL_ENUMS = [
    member
    for _, member in inspect.getmembers(enums, inspect.isclass)
    if issubclass(member, Enum) and member.__module__ == enums.__name__
]


@pytest.mark.parametrize("enum", ALL_ENUMS, ids=lambda e: e.__name__)
def test_every_member_of_every_enum_has_its_words(enum: type[Enum]) -> None:
    table = wording.LABELS.get(enum)
    assert table is not None, f"accord.platform.wording.LABELS has no table for {enum.__name__}"
    for member in enum:
        words = wording.label(member)
        assert member in table, f"{enum.__name__}.{member.name} has no wording"
        assert "_" not in words and words.strip() == words and words
        # The value as a bare string reads the same (or as another enum's same value).
        assert "_" not in wording.label(member.value)


def test_labels_where_replacing_underscores_reads_badly() -> None:
    assert wording.label(VoteOutcome.PARTLY_UPHOLD) == "partly upheld"
    assert wording.label("partly_uphold") == "partly upheld"
    assert wording.label("ruled_partly_uphold") == "ruled: partly upheld"
    assert wording.label("ruled_deny") == "ruled: denied"
    assert wording.label(TaskKind.MEDIATE) == "mediate"
    assert wording.label("channel_vs_direct") == "channel vs. direct sales"
    assert wording.label(DisputeCategory.CO_MARKETING) == "co-marketing"
    assert wording.label(RemedyKind.MDF_CREDIT) == "MDF credit"
    assert wording.label("something_new") == "something new"
    assert wording.label(None) == "-"


def test_where_names_a_field_in_words() -> None:
    assert wording.where(("remedies", 0, "deal_ref")) == "remedies #1 deal ref"
    assert wording.where(("commission_split", "shares"), kinds=True) == "(commission split) shares"
    assert wording.where(()) == ""


def test_plural_and_ordinal() -> None:
    assert wording.plural(1, "remedy") == "1 remedy"
    assert wording.plural(2, "remedy") == "2 remedies"
    assert wording.plural(0, "offer") == "0 offers"
    assert wording.plural(3, "day") == "3 days"
    assert wording.plural(2, "person") == "2 people"
    assert wording.plural(2, "box") == "2 boxes"
    assert [wording.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 102)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "102nd",
    ]


def test_money_and_percent() -> None:
    assert wording.money(Decimal("5000"), "USD") == "USD 5,000.00"
    assert wording.money("1234567.5", "EUR") == "EUR 1,234,567.50"
    assert wording.money(Decimal("-500"), "USD") == "-USD 500.00"
    assert wording.money(12) == "12.00"
    assert wording.percent(Decimal("70")) == "70%"
    assert wording.percent("33.50") == "33.5%"
    assert wording.percent(Decimal("1E+2")) == "100%"


def test_when_takes_datetimes_dates_and_iso_text() -> None:
    instant = datetime(2026, 12, 2, 17, 0, tzinfo=UTC) + timedelta(hours=-1)
    assert wording.when(instant) == "2026-12-02 16:00 UTC"
    assert wording.when("2026-12-02T16:00:00+00:00") == "2026-12-02 16:00 UTC"
    assert wording.when(date(2027, 1, 1)) == "2027-01-01"
    assert wording.when(None) == "-"
    assert wording.when("not a time") == "not a time"


def test_countdown() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert wording.countdown(now + timedelta(days=2, hours=4), now) == "2d 4h left"
    assert wording.countdown(now + timedelta(hours=3, minutes=10), now) == "3h 10m left"
    assert wording.countdown(now - timedelta(days=1, hours=2), now) == "overdue by 1d 2h"
    assert wording.countdown((now + timedelta(hours=1)).isoformat(), now) == "1h 0m left"
    assert wording.countdown(None, now) == "no deadline"


def test_names_fall_back_to_the_id_only_when_unknown() -> None:
    assert NAMES.partner("tailspin") == "Tailspin"
    assert NAMES.partner("unknown-co") == "unknown-co"
    assert NAMES.person("sam.okafor") == "Sam Okafor"
    assert NAMES.person(None) == "-"
    assert NAMES.partner_list(["northwind", "contoso", "tailspin"]) == (
        "Northwind, Contoso and Tailspin"
    )


REMEDY_LINES = [
    (
        CommissionSplit(
            deal_ref="DR-2026-0042", shares={"northwind": Decimal(70), "contoso": Decimal(30)}
        ),
        "Commission split on deal DR-2026-0042: Northwind 70%, Contoso 30%",
    ),
    (
        MdfCredit(partner_id="northwind", amount=Decimal(5000), currency="USD"),
        "MDF credit of USD 5,000.00 to Northwind",
    ),
    (
        TerritoryReassignment(
            territory_code="EMEA-North",
            from_partner_id="tailspin",
            to_partner_id="northwind",
            effective_on=date(2027, 1, 1),
        ),
        "Territory EMEA-North moves from Tailspin to Northwind on 2027-01-01",
    ),
    (
        RebateAdjustment(partner_id="contoso", amount=Decimal("-1500.5"), currency="EUR"),
        "Rebate reduced by EUR 1,500.50 for Contoso",
    ),
    (
        CoSellingResources(partner_id="contoso", resource="solutions engineer", hours=40),
        "Co-selling resources for Contoso: 40 hours of solutions engineer",
    ),
    (
        LeadReroute(lead_ref="LEAD-7", to_partner_id="northwind"),
        "Lead LEAD-7 is rerouted to Northwind",
    ),
    (
        WrittenWarning(partner_id="tailspin", text="Do not poach registered deals."),
        "Written warning to Tailspin: Do not poach registered deals.",
    ),
]


def test_remedy_kinds_all_have_a_line() -> None:
    assert {r.kind for r, _ in REMEDY_LINES} == set(RemedyKind)


@pytest.mark.parametrize(("payload", "line"), REMEDY_LINES, ids=lambda v: getattr(v, "kind", ""))
def test_one_line_per_remedy_from_a_payload_or_its_json(payload: object, line: str) -> None:
    assert wording.remedy(payload, NAMES) == line
    as_json = payload.model_dump(mode="json")  # type: ignore[attr-defined]
    assert wording.remedy(as_json, NAMES) == line


def test_install_registers_the_filters_and_reads_names_from_the_context() -> None:
    env = Environment(autoescape=True)
    wording.install(env, NAMES)
    template = env.from_string(
        "{{ o|label }} | {{ n|plural('remedy') }} | {{ p|partner }} | {{ s|person }} | "
        "{{ r|remedy }} | {{ a|money('USD') }}"
    )
    text = template.render(
        o="ruled_partly_uphold",
        n=1,
        p="tailspin",
        s="sam.okafor",
        r=REMEDY_LINES[1][0].model_dump(mode="json"),
        a="70",
    )
    assert text == (
        "ruled: partly upheld | 1 remedy | Tailspin | Sam Okafor | "
        "MDF credit of USD 5,000.00 to Northwind | USD 70.00"
    )
    # A template's own `names` wins over the environment's.
    other = Names(partners={"tailspin": "Tailspin Toys"})
    assert env.from_string("{{ p|partner }}").render(p="tailspin", names=other) == "Tailspin Toys"


# --- the render test: everything a person reads, with every enum value --------------------

# Ids that must never show where a name belongs (the names below are what should show).
PARTNER_IDS = {"ptn-north": "Northwind Traders", "ptn-contoso": "Contoso Systems"}
PERSON_IDS = {"sam.okafor": "Sam Okafor", "maria.lopez": "Maria Lopez"}
RENDER_NAMES = Names(partners=PARTNER_IDS, people=PERSON_IDS)

_RAW_VALUES = sorted(
    {str(m.value) for e in ALL_ENUMS for m in e if "_" in str(m.value)}
    | {o for o in wording.OUTCOMES if "_" in o},
    key=len,
    reverse=True,
)
_RAW = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, _RAW_VALUES)) + r")(?![\w-])")
_ENUM_REPR = re.compile(r"<[A-Z]\w*\.[A-Z_]+: ")


def _ids(ids: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w.@-])(" + "|".join(map(re.escape, ids)) + r")(?![\w@-]|\.\w)")


_IDS = _ids([*PARTNER_IDS, *PERSON_IDS])


def leaks(text: str, ids: re.Pattern[str] = _IDS) -> list[str]:
    """What in `text` is written for the machine, not for its reader."""
    found = [f"raw enum value {m.group(0)!r}" for m in _RAW.finditer(text)]
    found += [f"enum repr {m.group(0)!r}" for m in _ENUM_REPR.finditer(text)]
    found += [f"python repr {r!r}" for r in ("{'", "['", "Decimal(") if r in text]
    found += ["'None'" for _ in re.finditer(r"\bNone\b", text)]
    found += [f"id {m.group(0)!r} where a name belongs" for m in ids.finditer(text)]
    return found


def test_the_leak_detector_sees_each_kind_of_leak() -> None:
    assert leaks("Dispute ruled_partly_uphold")
    assert leaks("Ruling: partly_uphold")
    assert leaks("kind <RemedyKind.TERRITORY_REASSIGNMENT: 'territory_reassignment'>")
    assert leaks("shares={'ptn-north': '70'}") and leaks("Decimal('70')") and leaks("None")
    assert leaks("ptn-north appealed") and leaks("Mediator: sam.okafor")
    assert not leaks("Northwind Traders appealed; ruled: partly upheld; --position 1")
    assert not leaks("write to sam.okafor@vendor.example")


REMEDY_JSON = [
    r.model_dump(mode="json")
    for r in (
        CommissionSplit(
            deal_ref="DR-2026-0042",
            shares={"ptn-north": Decimal(70), "ptn-contoso": Decimal(30)},
        ),
        MdfCredit(partner_id="ptn-north", amount=Decimal(5000), currency="USD"),
        TerritoryReassignment(
            territory_code="EMEA-North",
            from_partner_id="ptn-contoso",
            to_partner_id="ptn-north",
            effective_on=date(2027, 1, 1),
        ),
        RebateAdjustment(partner_id="ptn-contoso", amount=Decimal("-1500"), currency="EUR"),
        CoSellingResources(partner_id="ptn-contoso", resource="solutions engineer", hours=40),
        LeadReroute(lead_ref="LEAD-7", to_partner_id="ptn-north"),
        WrittenWarning(partner_id="ptn-contoso", text="Do not poach registered deals."),
    )
]

MAIL_CONTEXT: dict[str, object] = {
    "number": "DSP-2026-000007",
    "category": "pricing",
    "summary": "Undercut on price",
    "claimant": "Northwind Traders",
    "respondents": ["Contoso Systems"],
    "stage": "mediation",
    "mediator": "Maria Lopez",
    "base_url": "http://accord.test",
    "deadline": "2026-12-10T22:00:00+00:00",
    "reason": "the mediation deadline passed",
    "outcome": "settled",
    "request_id": "info-1",
    "questions": "Why?",
    "explanation": "5 business days",
    "offer_id": "offer-1",
    "terms": "Split",
    "remedies": REMEDY_JSON,
    "partner_id": "ptn-contoso",
    "comment": "",
    "percent": 50,
    "purpose": "mediation",
    "linked_summary": "Again",
    "kind": "commission_split",
    "round": 1,
    "rationale": "Registration came first.",
    "grounds": "The registration date was wrong.",
    "position": 0,
    "adapter": "ledger",
    "reference": "LEDGER-1",
    "names": RENDER_NAMES,
}

# Where an enum goes in a mail context, every value it can take.
MAIL_ENUMS: dict[str, list[str]] = {
    "category": [c.value for c in DisputeCategory],
    "stage": [s.value for s in enums.DisputeStage],
    "outcome": [*wording.OUTCOMES, *(o.value for o in VoteOutcome)],
    "kind": [k.value for k in RemedyKind],
    "purpose": ["acceptance", "mediation", "information", "review", "remedy", "appeal"],
}


def _mail_contexts(name: str) -> list[dict[str, object]]:
    contexts = [MAIL_CONTEXT] + [
        {**MAIL_CONTEXT, key: value} for key, values in MAIL_ENUMS.items() for value in values
    ]
    # A ruled dispute closes with the workflow's own reason (workflows/dispute.py).
    contexts += [
        {**MAIL_CONTEXT, "outcome": f"ruled_{o.value}", "reason": f"ruled {o.value} by the board"}
        for o in VoteOutcome
        if name == "closure"
    ]
    return contexts


NOT_OF_A_DISPUTE = {"intake_reply", "alert_raised", "alert_dismissed", "exception_notice"}
"""Mail that belongs to no dispute: each has its own test below."""


@pytest.mark.parametrize("name", sorted(set(SUBJECTS) - NOT_OF_A_DISPUTE))
def test_every_email_reads_as_written_for_its_reader(name: str) -> None:
    catalog = TemplateCatalog()
    problems: set[str] = set()
    for context in _mail_contexts(name):
        email = catalog.render(name, context)
        for part, text in (("subject", email.subject), ("text", email.text), ("html", email.html)):
            problems |= {f"{part}: {leak}" for leak in leaks(text)}
    assert not problems, sorted(problems)


@pytest.mark.parametrize("name", ["alert_raised", "alert_dismissed"])
@pytest.mark.parametrize("kind", list(enums.AlertKind))
def test_every_alert_notice_reads_as_written_for_its_reader(
    name: str, kind: enums.AlertKind
) -> None:
    email = TemplateCatalog().render(
        name,
        {
            "number": "",
            "alert_id": 12,
            "kind": kind.value,
            "partner": "Northwind Traders",
            "own": [
                {"object": "registration:DR-1", "customer": "Acme Corp"},
                {"object": "territory:DACH", "customer": ""},
            ],
            "base_url": "http://accord.test",
        },
    )
    assert not leaks(email.subject + email.text + email.html)


@pytest.mark.parametrize("event", list(exception_notices.HEADLINES))
@pytest.mark.parametrize("audience", ["beneficiary", "affected", "panel", "chair", "admins"])
def test_every_exception_notice_reads_as_written_for_its_reader(event: str, audience: str) -> None:
    email = TemplateCatalog().render(
        "exception_notice",
        {
            "number": "",
            "exception": "EXC-4",
            "event": event,
            "audience": audience,
            "headline": exception_notices.HEADLINES[event],
            "partner": "Contoso Systems",
            "clause": "RoE 4.2",
            "rule": "Exclusive territories are served only by their holder",
            "scope": "territory US-NY-METRO",
            "until": "2027-02-01",
            "objections_close_at": "2026-12-14 17:00 UTC",
            "decision_due_at": "2026-12-28 17:00 UTC",
            "decision_reason": "The customer asked for Contoso in writing.",
            "base_url": "http://accord.test",
        },
    )
    assert not leaks(email.subject + email.text + email.html)


@pytest.mark.parametrize("outcome", ["incomplete", "refused", "not_added", "staff", "threaded"])
def test_every_intake_reply_reads_as_written_for_its_reader(outcome: str) -> None:
    email = TemplateCatalog().render(
        "intake_reply",
        {
            "number": "DSP-2026-000007" if outcome in ("threaded", "not_added") else "",
            "subject": "Deal",
            "outcome": outcome,
            "missing": ["Respondent: no partner matches 'Acme'"],
            "errors": ["the summary is empty"],
            "refused_attachments": ["virus.exe"],
            "form_url": "http://accord.test/disputes/new?summary=Deal",
            "intake_address": "disputes@accord.test",
            "base_url": "http://accord.test",
        },
    )
    assert not leaks(email.subject + email.text + email.html)


# --- the CLI's human outputs -----------------------------------------------------------------

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _state(stage: enums.DisputeStage, category: DisputeCategory, outcome: VoteOutcome) -> object:
    from models.payloads import (
        Deadline,
        DisputeState,
        HistoryEntry,
        InformationRequestView,
        OfferView,
        OpenTask,
        PanelMember,
        RemedyProgress,
        ReviewView,
        RulingView,
        VoteView,
    )

    remedies = tuple(TypeAdapter(Remedy).validate_python(r) for r in REMEDY_JSON)
    seats = tuple(
        PanelMember(person_id=p, name=n, email=f"{p}@vendor.example", function="sales")
        for p, n in PERSON_IDS.items()
    )
    return DisputeState(
        number="DSP-2026-000007",
        stage=stage,
        category=category,
        claimant_id="ptn-north",
        respondent_ids=("ptn-contoso",),
        mediator_id="sam.okafor",
        candidate_mediator_id="maria.lopez",
        playbook_version="2026.1",
        deadlines=(
            Deadline(
                purpose="mediation",
                calendar="EU",
                starts_at=NOW,
                due_at=NOW + timedelta(days=3),
                business_days=5,
                warnings=(),
                explanation="5 business days on the EU calendar",
            ),
        ),
        clock_paused=True,
        open_tasks=tuple(
            OpenTask(key=f"k{i}", kind=k, assignee="sam.okafor", due_at=NOW)
            for i, k in enumerate(TaskKind)
        ),
        information_requests=(
            InformationRequestView(
                id="info-1",
                party_id="ptn-contoso",
                questions="When?",
                requested_at=NOW,
                due_at=NOW,
                answered_at=NOW,
                answer="Then.",
            ),
        ),
        offers=(
            OfferView(
                id="offer-1",
                remedies=remedies,
                terms="70/30 split",
                proposed_at=NOW,
                responses={"ptn-north": True, "ptn-contoso": False},
                open=False,
            ),
        ),
        notes=(),
        history=tuple(
            HistoryEntry(
                seq=i, at=NOW, actor="sam.okafor", role=enums.Role.MEDIATOR, action=a, summary="s"
            )
            for i, a in enumerate(enums.Action)
        ),
        linked_filings=(),
        remedies=tuple(
            RemedyProgress(position=i, kind=k, state=s, adapter="ledger")
            for i, (k, s) in enumerate(zip(RemedyKind, [*enums.RemedyState] * 2, strict=False))
        ),
        review=ReviewView(
            round=1,
            panel=seats,
            chair=seats[0],
            votes=tuple(
                VoteView(person_id=p, cast_at=NOW, outcome=o, remedies=remedies)
                for p, o in zip(PERSON_IDS, [outcome, None], strict=True)
            ),
            sealed=False,
            quorum=2,
        ),
        rulings=(
            RulingView(
                round=1,
                chair_id="sam.okafor",
                outcome=outcome,
                remedies=remedies,
                rationale="Because.",
                votes_relied_on=("sam.okafor",),
                clauses_applied=("4.2",),
                precedents_cited=(),
                against_majority_reason=None,
                issued_at=NOW,
                final=False,
            ),
        ),
        outcome=None,
        allowed_actions={r.value: tuple(enums.Action) for r in enums.Role},
    )


@pytest.mark.parametrize("stage", list(enums.DisputeStage), ids=str)
def test_accord_show_reads_as_written_for_its_reader(stage: enums.DisputeStage) -> None:
    from accord.cli.records import describe

    problems: set[str] = set()
    for category, outcome in zip(
        DisputeCategory, [*VoteOutcome, *VoteOutcome, *VoteOutcome], strict=False
    ):
        lines = describe(_state(stage, category, outcome), RENDER_NAMES, NOW)  # type: ignore[arg-type]
        problems |= {f"{leak} in {line!r}" for line in lines for leak in leaks(line)}
    assert not problems, sorted(problems)
    text = "\n".join(
        describe(_state(stage, DisputeCategory.PRICING, VoteOutcome.DENY), RENDER_NAMES, NOW)
    )  # type: ignore[arg-type]
    assert "remedy       1: " in text and "remedy       0:" not in text
    assert (
        "Commission split on deal DR-2026-0042: Northwind Traders 70%, Contoso Systems 30%" in text
    )
    assert (
        "offer-1 closed: 70/30 split (Northwind Traders accepted; Contoso Systems rejected)" in text
    )


def test_the_cli_says_which_dispute_is_missing_or_closed(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    from typer import Exit

    from accord.cli.common import _run
    from accord.cli.records import show_state
    from accord.disputes.operations import DisputeGone
    from accord.platform.db import SessionFactory, make_engine

    async def missing() -> None:
        show_state(SessionFactory(make_engine(sqlite_url)), "DSP-2026-999999")

    async def closed() -> None:
        raise DisputeGone("DSP-2026-000003", closed=True)

    for coro, said in [
        (missing, "error: no dispute DSP-2026-999999\n"),
        (closed, "error: DSP-2026-000003 is closed; nothing was changed\n"),
    ]:
        with pytest.raises(Exit):
            _run(coro())
        err = capsys.readouterr().err
        assert err == said, err
        assert not leaks(err)


def test_a_pydantic_refusal_names_the_field_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    from typer import Exit

    from accord.cli.neutrals import _remedies_from_json

    with pytest.raises(Exit):
        _remedies_from_json(
            [
                '{"kind":"mdf_credit","partner_id":"a","amount":"5","currency":"USD"}',
                '{"kind":"commission_split","deal_ref":"D","shares":{"a":60,"b":30}}',
            ]
        )
    err = capsys.readouterr().err
    assert err == (
        "error: --remedy 2 (commission split) shares: shares must add up to 100, "
        "they add up to 90\n"
    ), err


def test_a_task_says_its_kind_once() -> None:
    mediate = SimpleNamespace(kind=TaskKind.MEDIATE, title="mediate: DSP-2026-000001")
    assert wording.task(mediate) == "mediate DSP-2026-000001"
    cast = SimpleNamespace(kind=TaskKind.CAST_VOTE, title="cast vote: DSP-2026-000001")
    assert wording.task(cast) == "cast a vote DSP-2026-000001"
    mail = SimpleNamespace(kind=TaskKind.RESOLVE_MAIL, title="mail refused: offer to a@b.example")
    assert wording.task(mail) == "resolve undelivered mail: mail refused: offer to a@b.example"


def test_a_refusal_without_a_field_is_said_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    from typer import Exit

    from accord.cli.common import _run
    from models.payloads import FilingSubmission

    async def bad() -> None:
        FilingSubmission.model_validate({"claimant_id": "a", "respondent_ids": "x"})

    async def whole() -> None:
        TypeAdapter(Remedy).validate_python(
            {"kind": "commission_split", "deal_ref": "D", "shares": {"a": 60, "b": 30}}
        )

    for coro in (bad, whole):
        with pytest.raises(Exit):
            _run(coro())
        err = capsys.readouterr().err
        assert "Value error" not in err and "error: input:" not in err and not leaks(err), err
        assert "_" not in err.split(":")[1], err


def test_a_history_line_names_partners_and_words_outcomes() -> None:
    said = [
        ("ptn-north appealed the ruling", "Northwind Traders appealed the ruling"),
        ("final ruling: partly_uphold", "final ruling: partly upheld"),
        ("ruling issued: deny", "ruling issued: denied"),
        ("ruled partly_uphold by the board", "ruled partly upheld by the board"),
        (
            "remedy 1 (mdf_credit) applied through ledger",
            "remedy 1 (MDF credit) applied through Accord's remedy ledger",
        ),
        (
            "deal_registration filed by nora@ptn-north.example against ptn-contoso",
            "deal registration filed by nora@ptn-north.example against Contoso Systems",
        ),
        ("ptn-contoso accepted offer-1", "Contoso Systems accepted offer-1"),
        ("sam.okafor recused: no", "Sam Okafor recused: no"),
        ("offer-1: 1 remedies proposed", "offer-1: 1 remedy proposed"),
        ("offer-2: 11 remedies proposed", "offer-2: 11 remedies proposed"),
        ("1 similar precedents attached for triage", "1 similar precedent attached for triage"),
        ("extended by 1 business days: late", "extended by 1 business day: late"),
        (
            "remedies[0]: territory_reassignment is not allowed for deal_registration disputes",
            "remedy 1: territory reassignment is not allowed for deal registration disputes",
        ),
        (
            "appeal is not possible while the dispute is remedy (possible in: appeal_window)",
            "appeal is not possible while the dispute is applying remedies"
            " (possible in: appeal window)",
        ),
    ]
    for stored, shown in said:
        assert wording.summary(stored, RENDER_NAMES) == shown
        assert not leaks(shown)


# --- the pages -------------------------------------------------------------------------------

VIEWERS = {
    Role.ADMIN: ("alex.admin", None, "oversight"),
    Role.COMPLIANCE: ("cora.compliance", None, "oversight"),
    Role.MEDIATOR: ("sam.okafor", None, "mediator"),
    Role.BOARD: ("maria.lopez", None, "panelist"),
    Role.PARTNER: ("nora@north.example", "ptn-north", "party"),
}


def _record(state: Any) -> Any:
    from accord.disputes.access import Standing
    from models.tables import Dispute, DisputeEvent, Partner
    from web.views import DisputeFile

    row = Dispute(
        number=state.number,
        category=state.category,
        claimant_id="ptn-north",
        respondent_ids=["ptn-contoso"],
        party_key="ptn-contoso|ptn-north",
        contested_objects=[{"kind": k.value, "ref": "REF-1"} for k in enums.ObjectKind],
        summary="Summary",
        facts="Facts",
        desired_remedy="Remedy",
        amount_at_stake=Decimal("5000"),
        currency="USD",
        occurred_on=date(2026, 1, 1),
        stage=state.stage,
        stage_deadline=NOW,
        deadline_explanation="5 business days",
        mediator_id="sam.okafor",
        playbook_version="2026.1",
        filed_by="nora@north.example",
        filed_at=NOW,
        updated_at=NOW,
        outcome=state.outcome,
    )
    parties = {
        p: Partner(id=p, name=n, tier=enums.PartnerTier.GOLD, regions=["EU"], calendar="EU")
        for p, n in PARTNER_IDS.items()
    }
    summaries = [
        "ptn-north appealed the ruling",
        "final ruling: partly_uphold",
        "remedy 1 (mdf_credit) applied through ledger",
        "ptn-contoso accepted offer-1",
        "ruled partly_uphold by the board",
    ]
    events = [
        DisputeEvent(
            dispute_number=state.number,
            seq=i,
            at=NOW,
            actor_id=actor,
            actor_role=role,
            action=action,
            content={
                "summary": summaries[i % len(summaries)],
                "deadline": {"purpose": "appeal", "due_at": NOW.isoformat(), "explanation": "x"},
            },
            hash="h",
            prev_hash="p",
        )
        for i, (action, (role, (actor, _, _))) in enumerate(
            zip(
                [*(a.value for a in enums.Action), "stage_formal_review", "offer_accepted"],
                [*VIEWERS.items()] * 10,
                strict=False,
            )
        )
    ]
    return DisputeFile(
        row=row,
        standing=Standing.OVERSIGHT,
        parties=parties,
        side=None,
        events=events,
        evidence=[],
        state=state,
        names=RENDER_NAMES,
    )


def _visible(html: str) -> str:
    """What a reader sees of a page: its text, not its markup (class names, form values)."""
    return re.sub(r"<[^>]+>", " ", html)


@pytest.mark.parametrize("stage", list(enums.DisputeStage), ids=str)
def test_every_page_reads_as_written_for_its_reader(stage: enums.DisputeStage) -> None:
    from collections import defaultdict

    from jinja2 import StrictUndefined

    from accord.disputes.access import Standing, Viewer
    from models.payloads import Actor
    from models.tables import Task
    from web.forms import ACTION_FORMS, REMEDY_INPUTS, REMEDY_ROWS
    from web.pages.disputes import queue_context
    from web.queue import QueueItem, Sla, awaited, read_queue_query
    from web.templating import make_templates

    env = make_templates().env
    env.undefined = StrictUndefined
    problems: set[str] = set()
    tasks = [
        QueueItem(
            task=Task(
                key=f"k{i}",
                dispute_number="DSP-2026-000007",
                kind=kind,
                title=f"{kind.value.replace('_', ' ')}: DSP-2026-000007",
                assignee_id="sam.okafor",
                assignee_role=Role.MEDIATOR,
                state=enums.TaskState.OPEN,
                due_at=NOW,
                opened_at=NOW,
            ),
            due_at=NOW,
            sla=sla,
            category=category,
            stage=stage,
            amount=Decimal("125000"),
            currency="USD",
            claimant="Northwind Traders",
            respondents=("Contoso Systems",),
            awaiting=awaited(kind, [(k.value, "Contoso Systems") for k in TaskKind]),
        )
        for i, (kind, sla, category) in enumerate(
            zip(TaskKind, [*Sla] * 4, [*DisputeCategory] * 3, strict=False)
        )
    ]
    inbox = queue_context(tasks, "Task inbox", "/inbox", read_queue_query([]))
    for category, outcome in zip(DisputeCategory, [*VoteOutcome] * 3, strict=False):
        record = _record(_state(stage, category, outcome))
        for role, (login, partner_id, standing) in VIEWERS.items():
            record.standing = Standing(standing)
            viewer = Viewer(
                actor=Actor(id=login, role=role, name="Someone", partner_id=partner_id),
                login=login,
            )
            base = {
                "viewer": viewer,
                "csrf": "t",
                "flash": None,
                "home": "/",
                "oidc": False,
                "oidc_label": "",
                "names": RENDER_NAMES,
            }
            pages = {
                "dispute.html": {
                    "d": record,
                    "forms": ACTION_FORMS,
                    "options": defaultdict(list),
                    "remedy_rows": range(REMEDY_ROWS),
                    "remedy_inputs": REMEDY_INPUTS,
                    "failed": None,
                    "errors": {},
                    "values": {},
                    "visibilities": list(enums.EvidenceVisibility),
                    "prefill": {},
                    "suggested": [],
                    "allowed_remedies": list(RemedyKind),
                    "precedent_pattern": (),
                    "undelivered": [],
                },
                "timeline.html": {"d": record},
                "disputes.html": {
                    "rows": [record.row],
                    "total": 1,
                    "page": 1,
                    "pages": 1,
                    "filters": SimpleNamespace(
                        q=None,
                        stage=None,
                        category=None,
                        party=None,
                        open_only=False,
                        filed_from=None,
                        filed_to=None,
                    ),
                    "query": "",
                    "stages": list(enums.DisputeStage),
                    "categories": list(DisputeCategory),
                    "partners": [],
                },
                "inbox.html": inbox,
            }
            for name, context in pages.items():
                text = _visible(env.get_template(name).render(**base, **context))
                problems |= {f"{name} as {role.value}: {leak}" for leak in leaks(text)}
    assert not problems, sorted(problems)


# --- names in mail: read from the directory when the outbox renders -------------------------


def test_the_outbox_names_partners_the_workflow_gave_by_id(
    database_url: str, smtp: tuple[Any, int], tmp_path: Any
) -> None:
    from accord.application import build_services
    from models.payloads import NotificationRequest
    from models.tables import OutboxMessage, Partner
    from tests.conftest import make_settings

    _, port = smtp
    services = build_services(make_settings(database_url, port, tmp_path))
    with services.sessions.begin() as session:
        for pid, name in PARTNER_IDS.items():
            session.add(
                Partner(
                    id=pid,
                    name=name,
                    tier=enums.PartnerTier.GOLD,
                    regions=["EU"],
                    calendar="EU",
                )
            )
    context = {k: v for k, v in MAIL_CONTEXT.items() if k != "names"}
    for template in ("appeal_received", "offer", "offer_rejected"):
        ids = services.outbox.enqueue(
            NotificationRequest(
                key=f"DSP-2026-000007:1:{template}",
                number="DSP-2026-000007",
                template=template,
                recipients=("nora@north.example",),
                context=context,
            ),
            NOW,
        )
        with services.sessions.read() as session:
            row = session.get(OutboxMessage, ids[0])
            assert row is not None
            body = row.text_body
        assert "Contoso Systems" in body and not leaks(body), body


def test_the_engine_not_finding_a_dispute_is_said_as_what_it_means() -> None:
    from temporalio.service import RPCError, RPCStatusCode

    from accord.disputes.operations import DisputeGone

    missing = RPCError("workflow not found for ID: DSP-2026-999999", RPCStatusCode.NOT_FOUND, b"")
    done = RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")
    other = RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")
    assert str(DisputeGone.from_rpc(missing, "DSP-2026-999999")) == "no dispute DSP-2026-999999"
    assert str(DisputeGone.from_rpc(done, "DSP-2026-000001")) == (
        "DSP-2026-000001 is closed; nothing was changed"
    )
    assert DisputeGone.from_rpc(other, "DSP-2026-000001") is None


async def test_the_cli_says_no_dispute_and_is_closed_against_the_engine(stack: Any) -> None:
    from tests.cli.test_cli import FILING, accord

    code, out = await accord(stack, "show", "DSP-2026-999999")
    assert code == 2 and "error: no dispute DSP-2026-999999" in out, out
    assert "Temporal" not in out and "workflow" not in out, out
    code, out = await accord(stack, *FILING)
    assert code == 0, out
    number = out.split(":")[0]
    withdraw = ("withdraw", number, "--as", "nora@northwind.example", "--reason")
    code, out = await accord(stack, *withdraw, "We settled it between us.")
    assert code == 0, out
    await stack.handle(number).result()
    code, out = await accord(stack, *withdraw, "Once more, to be sure.")
    assert code == 2 and f"error: {number} is closed; nothing was changed" in out, out
    assert "Temporal" not in out and "workflow" not in out, out
    # What the CLI lists reads with names, never the directory's ids.
    with stack.services.sessions.read() as session:
        known = directory.names(session)
    ids = _ids([*known.partners, *known.people])
    for command in (("show", number), ("disputes",), ("tasks", "--all"), ("mail",)):
        code, out = await accord(stack, *command)
        assert code == 0 and not leaks(out, ids), (command, leaks(out, ids), out)
