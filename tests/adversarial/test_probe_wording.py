"""Probe of issue 16, item 1 ("no internals in anything a person reads"), from the outside:
wrong input at every entry point, and what each then says. Each test was seen failing first."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from accord.platform import wording
from accord.platform.db import SessionFactory
from models.enums import TaskKind
from models.payloads import Remedy
from models.text import plain_error, relevant
from tests.activities.test_activities import seeded_sessions
from tests.conftest import Stack
from tests.platform.test_wording import leaks
from tests.processes import deployed_environment
from tests.web_harness import api, filing_form, make_app, messages, signed_in, token_for
from tests.webhook_receiver import Receiver
from tests.workflows.test_remedy_stage import settle

NAMES = wording.Names(partners={"northwind": "Northwind Traders", "contoso": "Contoso Systems"})


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    """The demo directory and one dispute in triage (as tests/activities/test_activities.py)."""
    return seeded_sessions(database_url)


def _errors(remedy: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Remedy).validate_python(remedy)
    return [plain_error(e) for e in relevant(caught.value.errors())]


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        (None, "kind: null is not one of 'territory_reassignment'"),
        (["commission_split"], "kind: a list is not one of 'territory_reassignment'"),
        ({"a": 1}, "kind: an object is not one of"),
        (7, "kind: 7 is not one of"),
        (True, "kind: true is not one of"),
    ],
)
def test_a_remedy_kind_that_is_not_text_is_said_without_python_reprs(
    kind: object, said: str
) -> None:
    """{"kind": null} was said "kind: 'None' is not one of ..."; a list, "'['x']'"."""
    [message] = _errors({"kind": kind})
    assert message.startswith(said), message
    assert "None" not in message and "['" not in message and "{'" not in message, message


@pytest.mark.parametrize(
    ("remedy", "said"),
    [
        (
            {"kind": "mdf_credit", "partner_id": "northwind", "amount": "5", "currency": "usd"},
            "a currency code: three capital letters, e.g. USD",
        ),
        (
            {"kind": "mdf_credit", "partner_id": "northwind", "amount": "1e30", "currency": "USD"},
            "at most 14 digits",
        ),
        (
            {
                "kind": "mdf_credit",
                "partner_id": "northwind",
                "amount": "1.23456",
                "currency": "USD",
            },
            "at most 2 decimal places",
        ),
    ],
)
def test_a_constraint_is_said_in_words_not_as_a_pattern_or_pydantic_type(
    remedy: dict[str, Any], said: str
) -> None:
    """'String should match pattern '^[A-Z]{3}$'' and 'Decimal input should have no more than
    14 digits in total' were what the CLI, the API and the forms said."""
    messages = _errors(remedy)
    assert any(said in m for m in messages), messages
    for message in messages:
        assert "pattern" not in message and "^" not in message, message
        assert "Decimal input" not in message, message


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (
            "retry_remedy is not possible while the dispute is triage (possible in: remedy)",
            "retry a remedy is not possible while the dispute is in triage"
            " (possible in: applying remedies)",
        ),
        (
            "appeal is not possible while the dispute is remedy (possible in: appeal_window)",
            "appeal is not possible while the dispute is applying remedies"
            " (possible in: appeal window)",
        ),
        (
            "dismiss is not possible while the dispute is mediation "
            "(possible in: awaiting_party, formal_review, mediation)",
            "dismiss is not possible while the dispute is in mediation"
            " (possible in: awaiting a party, formal review, mediation)",
        ),
        (
            "accept_assignment in stage triage is for mediator, not partner",
            "accept the assignment in stage triage is for mediator, not partner",
        ),
        (
            "waive_remedy in stage remedy is for admin, not board",
            "waive a remedy in stage applying remedies is for admin, not board member",
        ),
        (
            "link_filing in stage formal_review is for system, not partner",
            "link a filing in stage formal review is for Accord (automatic), not partner",
        ),
    ],
)
def test_a_refusal_by_stage_names_the_stage_and_roles_in_words(stored: str, shown: str) -> None:
    """'possible in: remedy' is the stage's value (its words are 'applying remedies'), and 'while
    the dispute is triage' is not English."""
    assert wording.summary(stored, NAMES) == shown


def test_accord_disputes_with_an_unknown_stage_says_the_stages_without_pydantic_words(
    sqlite_url: str, tmp_path: Path
) -> None:
    """It said "Value error, 'bogus' is not one of 'filed', ..., 'awaiting_party', ...'"."""
    env = deployed_environment(DATABASE_URL=sqlite_url, ACCORD_STATE_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", "disputes", "--stage", "bogus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "'bogus' is not one of: filed, triage, mediation" in done.stderr, done.stderr
    assert "Value error" not in done.stderr, done.stderr


OPEN_OFFER = '{"kind":"commission_split","deal_ref":"D","shares":{"northwind":70,"contoso":30}}'


async def test_a_refusal_on_the_dispute_page_names_no_payload_field(stack: Stack) -> None:
    """The page said 'Respond to an offer refused: offer_id: offer-9 is not an open settlement
    offer.': the field's name in the payload, which no form shows."""
    app = make_app(stack)
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    browser = await signed_in(app, "nora@northwind.example")
    mediator = f"{state.candidate_mediator_id}@vendor.example"
    async with api(app, token_for(stack, mediator)) as client:
        done = await client.post(
            f"/api/disputes/{number}/accept-assignment",
            json={"impartiality_declaration": "No ties to either party."},
        )
        assert done.status_code == 200, done.text
        asked = await client.post(
            f"/api/disputes/{number}/request-information",
            json={"party_id": "ghost", "questions": "When did you first meet Acme?"},
        )
        assert asked.status_code == 409, asked.text
    page = await browser.post(
        f"/disputes/{number}/actions/respond-to-offer",
        data={"offer_id": "offer-9", "accept": "true"},
    )
    assert page.status_code == 409, page.text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "offer-9 is not an open settlement offer" in text, text
    assert "offer_id" not in text, text
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text.split("refused:")[1][:200]), text


async def test_the_api_says_a_pattern_and_a_kind_in_words(stack: Stack) -> None:
    """The API's problem said "number: String should match pattern '^DSP-\\d{4}-\\d{6}$'" and
    "kind: 'None' is not one of ..."."""
    app = make_app(stack)
    number = (await stack.file()).number
    async with api(app, token_for(stack, "nora@northwind.example")) as client:
        path = await client.get("/api/disputes/nonsense/timeline")
        assert path.status_code == 422, path.text
        assert "a dispute number, e.g. DSP-2026-000001" in path.json()["detail"], path.text
        for body in (
            {"terms": "the terms", "remedies": [{"kind": None}]},
            {"terms": "the terms", "remedies": [{"kind": "mdf_credit", "currency": "usd"}]},
        ):
            said = await client.post(f"/api/disputes/{number}/propose-settlement", json=body)
            assert said.status_code == 422, said.text
            for error in said.json()["errors"]:
                message = error["message"]
                assert "None" not in message and "pattern" not in message, said.text
                assert not leaks(re.sub(r"'[a-z_]+'", "''", message)), said.text


async def test_a_remedy_waiting_for_an_admin_is_numbered_from_1_when_another_is_named(
    webhook_stack: Stack,
    receiver: Receiver,
) -> None:
    """`accord waive-remedy --position 4` was answered "--position: remedy 0 is waiting for an
    admin, not 3": the payload's places from 0, where `accord show` and the person count
    from 1."""
    from tests.cli.test_cli import accord

    stack = webhook_stack
    receiver.refuse_with = 422
    number = await settle(stack)
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    reason = "Paid by hand in the December run."
    for command in ("waive-remedy", "retry-remedy"):
        code, out = await accord(
            stack, command, number, "--as", "alex.admin", "--position", "4", "--reason", reason
        )
        assert code == 2, out
        assert "--position: remedy 1 is waiting for an admin, not remedy 4" in out, out
        assert not leaks(out), out


@pytest.mark.parametrize(
    ("reference", "said"),
    [
        ("ledger_commission_split:1", "Reference: commission split ledger entry 1"),
        ("ledger_mdf_credit:12", "Reference: MDF credit ledger entry 12"),
        ("CRM-00042", "Reference: CRM-00042"),
    ],
)
def test_the_remedy_applied_mail_gives_the_ledger_reference_in_words(
    reference: str, said: str
) -> None:
    """The parties read 'Reference: ledger_commission_split:1': the ledger's table and row id."""
    from notifications.render import TemplateCatalog
    from tests.platform.test_wording import MAIL_CONTEXT

    email = TemplateCatalog().render("remedy_applied", {**MAIL_CONTEXT, "reference": reference})
    assert said in email.text, email.text
    assert said.removeprefix("Reference: ") in email.html, email.html
    assert "ledger_" not in email.text + email.html


def test_a_panel_that_cannot_be_drawn_names_board_functions_in_words(
    sessions: SessionFactory,
) -> None:
    """The admins' email and the history said 'too few eligible board members: no
    partner_management': the playbook's key for the board function, on SQLite and PostgreSQL."""
    from activities.assignment import PanelActivities
    from models.payloads import PanelRequest

    panel = PanelActivities(sessions).draw_panel(
        PanelRequest(
            number="DSP-2026-000009",
            party_ids=("northwind", "contoso"),
            contested_objects=(),
            excluded_person_ids=("board.partners",),
            functions=("sales", "partner_management"),
        )
    )
    assert not panel.complete
    assert "no partner management" in panel.reason, panel.reason
    assert "partner_management" not in panel.reason, panel.reason


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (
            "remedy 1 (commission_split) applied through ledger",
            "remedy 1 (commission split) applied through Accord's remedy ledger",
        ),
        (
            "remedy 2 (mdf_credit) applied through webhook",
            "remedy 2 (MDF credit) applied through the connected partner system",
        ),
        (
            "board.partners recused from the panel (partner_management): a conflict",
            "board.partners recused from the panel (partner management): a conflict",
        ),
    ],
)
def test_the_history_says_through_what_a_remedy_was_applied_in_words(
    stored: str, shown: str
) -> None:
    """`accord show` said 'via Accord's remedy ledger' on its remedy line and 'applied through
    ledger' in the history under it."""
    assert wording.summary(stored, NAMES) == shown


def test_a_remedy_routed_to_a_webhook_is_said_through_the_partner_system() -> None:
    """With ACCORD_REMEDY_WEBHOOKS set, the adapter is named 'webhook:<kind>': the parties' mail
    said 'carried out through webhook:commission_split', `accord show` 'via
    webhook:commission_split' and the history 'applied through webhook:commission_split'."""
    from notifications.render import TemplateCatalog
    from tests.platform.test_wording import MAIL_CONTEXT

    routed = "webhook:commission_split"
    assert wording.adapter(routed) == "the connected partner system"
    email = TemplateCatalog().render("remedy_applied", {**MAIL_CONTEXT, "adapter": routed})
    assert "through the connected partner system" in email.text, email.text
    assert "webhook:" not in email.text + email.html
    shown = wording.summary(f"remedy 1 (commission_split) applied through {routed}", NAMES)
    assert shown == "remedy 1 (commission split) applied through the connected partner system"


def test_a_filing_whose_claimant_is_also_respondent_names_the_option_typed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`accord file --claimant northwind --respondent northwind` said 'error: respondent_ids:
    the claimant cannot also be a respondent': the payload's field, not --respondent."""
    from typer import Exit

    from accord.cli.common import _run
    from tests.conftest import Stack

    async def both_sides() -> None:
        Stack.submission(None, respondent_ids=["northwind"])  # type: ignore[arg-type]

    with pytest.raises(Exit):
        _run(both_sides())
    err = capsys.readouterr().err
    assert "error: --respondent: the claimant cannot also be a respondent" in err, err
    assert "respondent_ids" not in err, err


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"terms": "the terms", "remedies": "x"}, "remedies: Input should be a list"),
        ({"terms": "the terms", "remedies": ["x"]}, "remedies #1: Input should be an object"),
        ({"terms": "the terms", "remedies": {"a": 1}}, "remedies: Input should be a list"),
    ],
)
def test_a_value_of_the_wrong_shape_is_named_as_json_names_it(
    body: dict[str, object], said: str
) -> None:
    """The API and the CLI said 'remedies: Input should be a valid tuple': Python's word, where
    the reader wrote JSON."""
    from models.payloads import ProposeSettlement

    with pytest.raises(ValidationError) as caught:
        ProposeSettlement.model_validate({"actor": {"id": "m", "role": "mediator"}, **body})
    shown = [
        f"{wording.where(e['loc'], kinds=True)}: {plain_error(e)}"
        for e in relevant(caught.value.errors())
    ]
    assert said in shown, shown
    assert not any("tuple" in s or "dictionary" in s for s in shown), shown


async def test_a_choice_sent_from_a_tampered_form_is_refused_in_words(stack: Stack) -> None:
    """A form's select sent with a value it does not offer was answered on the page with the
    values as the API takes them: "Input should be 'uphold', 'partly_uphold' or 'deny'",
    "'territory_reassignment', 'commission_split', ..."; the page says the choices' words."""
    app = make_app(stack)
    number = (await stack.file()).number
    await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    browser = await signed_in(app, "nora@northwind.example")
    for slug, form in (
        ("cast-vote", {"outcome": "perhaps", "reasons": "Because the registration came first."}),
        ("propose-settlement", {"terms": "the terms", "remedy-0-kind": "teleport"}),
    ):
        page = await browser.post(f"/disputes/{number}/actions/{slug}", data=form)
        assert page.status_code == 422, page.text
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)).replace("&#39;", "'")
        said = text[text.index("refused:") :][:400]
        assert "partly_uphold" not in said and "territory_reassignment" not in said, said
        assert ("partly upheld" in said) or ("territory reassignment" in said), said
    filed = await browser.post("/disputes/new", data=filing_form(category="bogus"))
    assert filed.status_code == 422, filed.text
    said = " ".join(messages(filed.text))
    assert "deal registration" in said and "deal_registration" not in said, said


def test_an_information_deadline_is_named_in_words_not_by_its_clock_key() -> None:
    """The history and the timeline said '50% of the information:info-1 window has passed' and
    'deadline (information:info-1)': the workflow's key for the clock."""
    from jinja2 import Environment

    assert (
        wording.summary("50% of the information:info-1 window has passed", NAMES)
        == "50% of the window to answer info-1 has passed"
    )
    env = Environment(autoescape=True)
    wording.install(env, NAMES)
    said = env.from_string("{{ p|purpose }} / {{ q|purpose }}").render(
        p="information:info-1", q="mediation"
    )
    assert said == "answer to info-1 / mediation", said


def test_the_system_is_named_accord_not_by_its_actor_id() -> None:
    """The timeline read 'accord (Accord (automatic))' and `accord show` 'accord' for what the
    system did: the actor's id."""
    assert NAMES.person("accord") == "Accord"
    assert wording.actor("accord", "system", NAMES) == "Accord (automatic)"
    assert wording.actor("greta", "mediator", NAMES) == "greta (mediator)"


async def test_the_dispute_page_names_remedy_kinds_and_precedent_outcomes_in_words(
    stack: Stack,
) -> None:
    """The chair's page read 'mdf credit' and 'co selling resources' among the remedy kinds,
    'DSP-2026-000001: uphold (...)' among the precedents to cite, '1 comparable precedents
    (...): uphold 1' above the ruling form and 'Paula Partners (partner_management)' on the
    panel."""
    from tests.workflows.test_formal_review import in_review, ruled

    first = await ruled(stack)
    state = await stack.state(first)
    window = next(d for d in state.deadlines if d.purpose == "appeal")
    await stack.env.sleep(window.due_at - await stack.env.get_current_time() + timedelta(hours=1))
    await stack.handle(first).result()
    await stack.wait_for_event(first, "closed")
    original = stack.file

    async def another(**overrides: Any) -> Any:
        return await original(**{"amount_at_stake": "125001.00", **overrides})

    stack.file = another  # type: ignore[method-assign]
    second = await in_review(stack)
    app = make_app(stack)
    chair = await signed_in(app, "c.chair@vendor.example")
    page = (await chair.get(f"/disputes/{second}")).text
    assert f"{first}: upheld (" in page and f"{first}: uphold (" not in page, page
    assert "ruled_uphold" not in page
    # The case file's pattern: '1 comparable precedents (...): uphold 1'.
    assert f"1 comparable precedent ({first}): upheld 1" in page, page
    # The panel: 'Paula Partners (partner_management)'.
    assert "Paula Partners (partner management)" in page, page
    assert ">MDF credit<" in page and ">co-selling resources<" in page, page
    assert ">mdf credit<" not in page and ">co selling resources<" not in page


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("Neither side will move.", "has ended without a settlement: Neither side will move.\n"),
        ("Neither side will move", "has ended without a settlement: Neither side will move.\n"),
        ("Will they ever agree?", "has ended without a settlement: Will they ever agree?\n"),
    ],
)
def test_the_escalation_mail_ends_the_mediators_reason_with_one_full_stop(
    reason: str, said: str
) -> None:
    """The parties read 'has ended without a settlement: Neither side will move..'."""
    from notifications.render import TemplateCatalog
    from tests.platform.test_wording import MAIL_CONTEXT

    email = TemplateCatalog().render("escalation", {**MAIL_CONTEXT, "reason": reason})
    assert said in email.text, email.text
    assert ".." not in email.text and "..<" not in email.html and "?.<" not in email.html


def test_a_divergence_names_the_outcomes_in_words() -> None:
    """The chair's refusal said '2 of 3 comparable rulings were partly uphold (...), this one is
    deny': the vote values with spaces."""
    stored = (
        "divergence_acknowledgement: this diverges from the precedents on the same clause — "
        "outcome: 2 of 3 comparable rulings were partly uphold (DSP-2026-000001, "
        "DSP-2026-000002), this one is deny. Acknowledge it with a reason"
    )
    shown = wording.summary(stored, NAMES)
    assert "were partly upheld (DSP-2026-000001, DSP-2026-000002), this one is denied." in shown


FAILED_REMEDY = 'RemedyRefused: https://crm.example/accord answered 422: {"error": "frozen"}'


def test_a_failed_remedy_is_said_without_the_exception_class(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The history (which the parties read), `accord show`, the page and the admins' mail said
    'could not be applied: RemedyRefused: https://...': the Python exception's class name."""
    from notifications.render import TemplateCatalog
    from tests.platform.test_wording import MAIL_CONTEXT

    stored = f"remedy 1 (commission_split) could not be applied: {FAILED_REMEDY}"
    shown = wording.summary(stored, NAMES)
    assert shown == (
        "remedy 1 (commission split) could not be applied: "
        'https://crm.example/accord answered 422: {"error": "frozen"}'
    ), shown
    assert wording.failure(FAILED_REMEDY).startswith("https://crm.example/accord answered 422")
    assert wording.failure("RemedyRetryable: timed out") == "timed out"
    email = TemplateCatalog().render("remedy_failed", {**MAIL_CONTEXT, "reason": FAILED_REMEDY})
    assert "RemedyRefused" not in email.text + email.html, email.text
