"""Probe of issue 16 ("every word a person reads"): bad input as a hostile user types it, and
what each entry point then says. Each test was written from the outside and seen failing first.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

from models.payloads import ProposeSettlement, Remedy
from models.text import plain_error
from tests.conftest import Stack
from tests.test_wording import leaks
from tests.web_harness import api, make_app, token_for

# What no message a person reads may hold (issue 16, item 1).
INTERNALS = ("Temporal", "RPCError", "Value error,", "<RemedyKind.", "Traceback", "discriminator")


def _said(capsys: pytest.CaptureFixture[str], remedy: str) -> str:
    from typer import Exit

    from accord.cli import _remedies_from_json

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
    for err in caught.value.errors():
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
    from tests.test_cli import accord

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
