"""Probe of issue 16 ("every word a person reads"): bad input as a hostile user types it, and
what each entry point then says. Each test was written from the outside and seen failing first.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from models.enums import DisputeCategory, DisputeStage, VoteOutcome
from models.payloads import ProposeSettlement, Remedy
from models.text import plain_error, relevant
from tests.conftest import Stack
from tests.platform.test_wording import leaks
from tests.web_harness import api, make_app, token_for

# What no message a person reads may hold (issue 16, item 1).
INTERNALS = (
    "Temporal",
    "RPCError",
    "Value error,",
    "<RemedyKind.",
    "Traceback",
    "discriminator",
    "Tuple should",
)


def _said(capsys: pytest.CaptureFixture[str], remedy: str) -> str:
    from typer import Exit

    from accord.cli.neutrals import _remedies_from_json

    with pytest.raises(Exit):
        _remedies_from_json([remedy])
    return capsys.readouterr().err


def _clean(text: str) -> None:
    assert not [i for i in INTERNALS if i in text], text
    # A remedy kind written as its JSON value, in quotes, is what the reader types: not a leak.
    unquoted = re.sub(r"'[a-z_]+'", "''", text)
    assert not leaks(unquoted), (leaks(unquoted), text)


@pytest.mark.parametrize(
    ("remedy", "said"),
    [
        ('{"kind":"teleport","partner_id":"contoso"}', "error: --remedy 1 kind: 'teleport' is not"),
        ('{"partner_id":"contoso"}', "error: --remedy 1 kind: missing"),
        ("{not json", "error: --remedy 1: Invalid JSON"),
        ("[1, 2]", "error: --remedy 1: "),
    ],
)
def test_a_remedy_of_no_known_kind_is_said_in_words_on_the_command_line(
    capsys: pytest.CaptureFixture[str], remedy: str, said: str
) -> None:
    err = _said(capsys, remedy)
    assert err.startswith(said), err
    assert "--remedy 1 :" not in err, err
    _clean(err)


def test_a_remedy_of_no_known_kind_is_said_in_words_to_the_api_and_forms() -> None:
    """plain_error is what the web forms, the JSON API and intake say too."""
    for remedy in ({"kind": "teleport"}, {"partner_id": "contoso"}, {"kind": 7}):
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(Remedy).validate_python(remedy)
        for err in caught.value.errors():
            _clean(plain_error(err))
    with pytest.raises(ValidationError) as caught:
        ProposeSettlement.model_validate(
            {"actor": {}, "terms": "t", "remedies": [{"kind": "teleport"}]}
        )
    for err in relevant(caught.value.errors()):
        _clean(plain_error(err))


def _accord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ("vote", "DSP-2026-000001", "--as", "a", "--outcome", "maybe", "--reasons", "r"),
            "'--outcome': 'maybe' is not one of: uphold, partly_uphold, deny",
        ),
        (
            ("rule", "DSP-2026-000001", "--as", "a", "--outcome", "yes", "--rationale", "r"),
            "'--outcome': 'yes' is not one of",
        ),
        (
            (
                "extend",
                "DSP-2026-000001",
                "--as",
                "a",
                "--days",
                "1",
                "--deadline",
                "soon",
                "--reason",
                "r",
            ),
            "'--deadline': 'soon' is not one of: acceptance, mediation, information",
        ),
    ],
)
def test_a_choice_the_command_line_does_not_offer_is_said_without_pydantic_words(
    args: tuple[str, ...], said: str
) -> None:
    done = _accord(*args)
    assert done.returncode == 2
    assert said in done.stderr, done.stderr
    assert "Value error" not in done.stderr, done.stderr


WARNING = '{"kind":"written_warning","partner_id":"contoso","text":"Do not poach."}'


async def test_an_action_with_a_text_on_a_dispute_never_filed_says_no_dispute(stack: Stack) -> None:
    """A text an action carries is stored before the workflow is asked; a number that names no
    dispute made that store fail on its foreign key, shown as a traceback."""
    from tests.cli.test_cli import accord

    mediator = ("--as", "greta.hoffmann")
    for number in ("DSP-2026-999999", "12", "DSP-x y"):
        for args in (
            ("propose", number, *mediator, "--terms", "the terms", "--remedy", WARNING),
            ("note", number, *mediator, "--text", "a note of the mediator"),
            (
                "vote",
                number,
                "--as",
                "board.chair",
                "--outcome",
                "uphold",
                "--reasons",
                "The registration came first.",
            ),
        ):
            code, out = await accord(stack, *args)
            assert (code, out) == (2, f"error: no dispute {number}\n"), (args, out)

    app = make_app(stack)
    async with api(app, token_for(stack, "greta.hoffmann@vendor.example")) as client:
        gone = await client.post(
            "/api/disputes/DSP-2026-999999/propose-settlement",
            json={"terms": "the terms", "remedies": [json.loads(WARNING)]},
        )
        assert gone.status_code == 404, gone.text
        _clean(gone.json()["detail"])
        number = (await stack.file()).number
        teleport = await client.post(
            f"/api/disputes/{number}/propose-settlement",
            json={"terms": "the terms", "remedies": [{"kind": "teleport"}]},
        )
        assert teleport.status_code == 422, teleport.text
        _clean(teleport.text)
        assert "'teleport' is not one of" in teleport.text, teleport.text


def test_the_merged_outcome_email_says_each_part_once_and_that_the_dispute_is_closed() -> None:
    """Settled, remedy applied and closed in one email: the closure part repeated the
    settlement's heading ('... is settled') and never said 'closed', which the subject does."""
    from types import SimpleNamespace

    from notifications.outbox import merged_email
    from notifications.render import TemplateCatalog
    from tests.platform.test_wording import MAIL_CONTEXT

    catalog = TemplateCatalog()
    parts = []
    for template in ("settlement", "remedy_applied", "closure"):
        email = catalog.render(template, {**MAIL_CONTEXT, "outcome": "settled"})
        parts.append(
            SimpleNamespace(
                template=template,
                subject=email.subject,
                text_body=email.text,
                html_body=email.html,
                dispute_number=MAIL_CONTEXT["number"],
            )
        )
    subject, text, html = merged_email(parts)  # type: ignore[arg-type]
    assert subject.endswith("Settled, remedy applied and closed"), subject
    headings = [part.strip().splitlines()[0] for part in text.split("* * *")]
    assert len(set(headings)) == 3, headings
    assert headings[2] == f"{MAIL_CONTEXT['number']} is closed", headings
    assert html.count(f"{MAIL_CONTEXT['number']} is closed") == 1, html


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        ("respondent_ids[0]: unknown partner 'ghost'", "--respondent 1: unknown partner 'ghost'"),
        ("claimant_id: unknown partner 'ghost'", "--claimant: unknown partner 'ghost'"),
        ("filed_by: a@b.example is not an active contact", "--as: a@b.example is not an active"),
        ("caucus_partner_id: ghost is not a party", "--caucus: ghost is not a party"),
        ("person_id: ghost is not a mediator", "--person: ghost is not a mediator"),
    ],
)
def test_the_command_line_names_the_option_typed_not_the_payload_field(
    capsys: pytest.CaptureFixture[str], raised: str, said: str
) -> None:
    """A refusal or a filing's problem named the payload's field ('caucus_partner_id'), which
    the person never typed: the command line names its option."""
    from typer import Exit

    from accord.cli.common import _run
    from accord.disputes.filing import FieldError, FilingRejected
    from accord.disputes.operations import Refused

    async def refused() -> None:
        raise Refused(raised)

    async def rejected() -> None:
        field, _, message = raised.partition(": ")
        raise FilingRejected([FieldError(field, message)])

    for coro in (refused, rejected):
        with pytest.raises(Exit):
            _run(coro())
        err = capsys.readouterr().err
        assert said in err, err
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", err), err


def test_a_field_a_pydantic_error_names_is_the_option_typed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from typer import Exit

    from accord.cli.common import _run
    from models.payloads import ExtendDeadline

    async def bad() -> None:
        ExtendDeadline.model_validate({"actor": {}, "business_days": 0, "reason": "r"})

    with pytest.raises(Exit):
        _run(bad())
    err = capsys.readouterr().err
    assert "error: --days: " in err and "error: --reason: " in err, err


def test_a_bad_remedy_in_a_form_is_one_problem_not_also_an_empty_list() -> None:
    """pydantic also says the remedies tuple is empty ('Tuple should have at least 1 item after
    validation, not 0') when one of them is refused: the form and the API said both."""
    from web.forms import field_errors

    with pytest.raises(ValidationError) as caught:
        ProposeSettlement.model_validate(
            {
                "actor": {"id": "m", "role": "mediator", "name": "M"},
                "terms": "the terms",
                "remedies": [
                    {"kind": "commission_split", "deal_ref": "D", "shares": {"northwind": "x"}}
                ],
            }
        )
    said = field_errors(caught.value)
    assert said == [("remedies", "#1 shares northwind: Input should be a valid decimal")], said


def test_each_playbook_example_names_partners_and_territories_of_the_demo() -> None:
    """`accord playbook`'s examples are copied as they are against the demo data: the territory
    example moved 'NA-EAST-NY', which the demo has not, from contoso, which holds nothing (the
    ledger then records it as applied and moves nothing)."""
    from accord.cli.reference import REMEDIES, validate_example
    from accord.directory.demo import DEMO
    from models.payloads import remedy_parties

    partners = {p.id for p in DEMO.partners}
    holders = {t.code: t.partner_id for t in DEMO.territories}
    for kind in REMEDIES:
        remedy = validate_example(kind)
        assert remedy_parties(remedy) <= partners, (kind, remedy_parties(remedy))
        code = getattr(remedy, "territory_code", None)
        if code is not None:
            assert code in holders, (kind, code, sorted(holders))
            assert holders[code] == remedy.from_partner_id, (kind, code, holders[code])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("adapter", "said"),
    [
        ("ledger", "through Accord's remedy ledger"),
        ("webhook", "through the connected partner system"),
        ("erp-bridge", "through erp-bridge"),
    ],
)
def test_the_remedy_applied_mail_says_through_what_in_words(adapter: str, said: str) -> None:
    """'It was carried out through ledger': the adapter's name, not words, went to the parties."""
    from notifications.render import TemplateCatalog
    from tests.platform.test_wording import MAIL_CONTEXT

    email = TemplateCatalog().render("remedy_applied", {**MAIL_CONTEXT, "adapter": adapter})
    assert f"It was carried out {said} and checked afterwards." in email.text, email.text
    assert f"It was carried out {said} and checked afterwards." in email.html.replace(
        "&#39;", "'"
    ), email.html


def test_a_partner_contact_is_named_not_shown_by_email(
    database_url: str, smtp: tuple[Any, int], tmp_path: Path
) -> None:
    from accord.application import build_services
    from accord.directory import records as directory
    from tests.conftest import make_settings, seed

    _, port = smtp
    services = build_services(make_settings(database_url, port, tmp_path))
    seed(services.sessions)
    with services.sessions.read() as session:
        names = directory.names(session)
    assert "Nora Quinn" in names.person("nora@northwind.example")


def test_the_dispute_list_says_what_is_missing_in_words(sqlite_url: str, tmp_path: Path) -> None:
    """A dispute with no deadline and no mediator read 'due -  mediator -'."""
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from accord.platform.db import SessionFactory, make_engine
    from models.enums import DisputeCategory, DisputeStage
    from models.tables import Dispute
    from tests.conftest import seed
    from tests.processes import deployed_environment

    sessions = SessionFactory(make_engine(sqlite_url))
    seed(sessions)
    with sessions.begin() as session:
        session.add(
            Dispute(
                number="DSP-2026-000001",
                category=DisputeCategory.PRICING,
                claimant_id="northwind",
                respondent_ids=["contoso"],
                party_key="contoso|northwind",
                contested_objects=[],
                summary="Undercut on price",
                facts="Facts.",
                desired_remedy="A refund",
                amount_at_stake=Decimal(10),
                currency="USD",
                occurred_on=date(2026, 11, 1),
                stage=DisputeStage.WITHDRAWN,
                playbook_version="2026.1",
                filed_by="nora@northwind.example",
                filed_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
    env = deployed_environment(DATABASE_URL=sqlite_url, ACCORD_STATE_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", "disputes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "due -" not in done.stdout and "mediator -" not in done.stdout, done.stdout
    assert "no deadline" in done.stdout and "no mediator" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("remedies", "said"),
    [
        ([], "remedies: at least 1 is needed, none was given"),
        ([json.loads(WARNING)] * 30, "remedies: at most 20, 30 were given"),
    ],
)
def test_too_few_or_too_many_remedies_are_said_without_python_words(
    remedies: list[object], said: str
) -> None:
    """The API said 'remedies: Tuple should have at least 1 item after validation, not 0'."""
    from web.forms import field_errors

    with pytest.raises(ValidationError) as caught:
        ProposeSettlement.model_validate(
            {"actor": {"id": "m", "role": "mediator"}, "terms": "the terms", "remedies": remedies}
        )
    errors = relevant(caught.value.errors())
    assert [f"{e['loc'][0]}: {plain_error(e)}" for e in errors] == [said]
    assert field_errors(caught.value) == [tuple(said.split(": ", 1))]


def test_shares_typed_in_a_form_in_another_shape_are_told_the_shape() -> None:
    """The form said '#1 shares: Input should be a valid dictionary' for 'northwind 60'."""
    from starlette.datastructures import FormData

    from web.forms import _remedies, field_errors

    form = FormData(
        [
            ("remedy-0-kind", "commission_split"),
            ("remedy-0-deal_ref", "D"),
            ("remedy-0-shares", "northwind 60 contoso 40"),
        ]
    )
    with pytest.raises(ValidationError) as caught:
        ProposeSettlement.model_validate(
            {"actor": {"id": "m", "role": "mediator"}, "terms": "t", "remedies": _remedies(form)}
        )
    [(field, message)] = field_errors(caught.value)
    assert field == "remedies"
    assert "dictionary" not in message and "partner=percent" in message, message


def test_accord_show_says_through_what_a_remedy_went_in_words() -> None:
    """'remedy 1: Commission split, verified via ledger': the adapter's name, as in the mail."""
    from accord.cli.records import describe
    from tests.platform.test_wording import NOW, RENDER_NAMES, _state

    text = "\n".join(
        describe(
            _state(DisputeStage.REMEDY, DisputeCategory.PRICING, VoteOutcome.DENY),  # type: ignore[arg-type]
            RENDER_NAMES,
            NOW,
        )
    )
    assert "via Accord's remedy ledger" in text and "via ledger" not in text, text
