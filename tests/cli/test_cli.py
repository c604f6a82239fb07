"""The `accord` command, run as a real process against the stack under test."""

from __future__ import annotations

import asyncio
import sys

import pytest
from sqlalchemy import text

from accord.platform import wording
from accord.platform.wording import Names
from models.enums import DisputeCategory, DisputeStage, VoteOutcome
from tests.conftest import Stack, cli_env


async def accord(stack: Stack, *args: str) -> tuple[int, str]:
    env = cli_env(stack)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


FILING = (
    "file",
    "--as",
    "nora@northwind.example",
    "--claimant",
    "northwind",
    "--respondent",
    "contoso",
    "--category",
    "deal_registration",
    "--object",
    "deal_registration:DR-7",
    "--amount",
    "5000",
    "--summary",
    "Contoso took our registered deal",
    "--facts",
    "We registered DR-7 first, in writing.",
    "--remedy",
    "Registration confirmed to us",
)


async def test_a_dispute_is_filed_shown_and_acted_on_from_the_command_line(stack: Stack) -> None:
    code, out = await accord(stack, *FILING)
    assert code == 0, out
    number = out.split(":")[0]
    assert number.startswith("DSP-")
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)

    code, out = await accord(stack, "show", number)
    assert code == 0 and "triage" in out and "business days on the" in out

    code, out = await accord(
        stack,
        "accept",
        number,
        "--as",
        "nora@northwind.example",
        "--declaration",
        "I am neutral, trust me",
    )
    assert (
        code == 2
        and "refused: accept the assignment in stage triage is for mediator, not partner" in out
    )

    code, out = await accord(
        stack,
        "accept",
        number,
        "--as",
        state.candidate_mediator_id or "",
        "--declaration",
        "No ties to either party.",
    )
    assert code == 0 and "mediation has begun" in out
    assert (await stack.state(number)).stage is DisputeStage.MEDIATION

    code, out = await accord(stack, "disputes")
    assert code == 0 and number in out and "mediation" in out
    code, out = await accord(stack, "tasks", "--for", state.candidate_mediator_id or "")
    assert code == 0 and "mediate" in out
    code, out = await accord(stack, "verify", number)
    assert code == 0 and "audit trail intact" in out


async def test_bad_input_on_the_command_line_names_the_field(stack: Stack) -> None:
    code, out = await accord(
        stack,
        "file",
        "--as",
        "nora@northwind.example",
        "--claimant",
        "northwind",
        "--respondent",
        "ghost",
        "--category",
        "deal_registration",
        "--object",
        "deal_registration:DR-8",
        "--amount",
        "10",
        "--summary",
        "A short summary",
        "--facts",
        "Facts that are long enough.",
        "--remedy",
        "Anything",
    )
    assert code == 2 and "--respondent 1: unknown partner 'ghost'" in out
    code, out = await accord(
        stack,
        "file",
        "--as",
        "nora@northwind.example",
        "--claimant",
        "northwind",
        "--respondent",
        "contoso",
        "--category",
        "deal_registration",
        "--object",
        "no-colon",
        "--amount",
        "10",
        "--summary",
        "A short summary",
        "--facts",
        "Facts that are long enough.",
        "--remedy",
        "Anything",
    )
    assert code == 2 and "--object 'no-colon': write it as kind:reference" in out
    code, out = await accord(
        stack,
        "propose",
        "DSP-2026-000001",
        "--as",
        "greta.hoffmann",
        "--terms",
        "x",
        "--remedy",
        '{"kind":"commission_split","deal_ref":"D","shares":{"a":60,"b":30}}',
    )
    assert code == 2 and "shares must add up to 100" in out
    code, out = await accord(stack, "tasks", "--for", "nobody@nowhere.example")
    assert code == 2 and "neither a person nor an active partner contact" in out
    assert "Traceback" not in out


async def test_the_board_votes_and_rules_from_the_command_line(stack: Stack) -> None:
    from tests.workflows.test_formal_review import in_review

    number = await in_review(stack)
    split = '{"kind":"commission_split","deal_ref":"DR-2026-0042","shares":{"northwind":80,"contoso":20}}'
    reasons = "Northwind registered first and did the discovery work."
    for who in ("board.sales", "board.marketing"):
        code, out = await accord(
            stack,
            "vote",
            number,
            "--as",
            who,
            "--outcome",
            "uphold",
            "--reasons",
            reasons,
            "--remedy",
            split,
        )
        assert code == 0, out
    code, out = await accord(stack, "show", number)
    assert code == 0 and "Beatrice Sales: sealed" in out and "uphold" not in out.split("panel")[1]
    code, out = await accord(
        stack,
        "rule",
        number,
        "--as",
        "board.chair",
        "--outcome",
        "uphold",
        "--rationale",
        "First valid registration wins under RoE 3.1.",
        "--relied-on",
        "board.sales",
        "--clause",
        "RoE 3.1",
        "--remedy",
        split,
    )
    assert code == 2 and "the ballot is sealed (2 of 5 votes cast)" in out
    code, out = await accord(
        stack, "unseal-ballot", number, "--as", "board.chair", "--reason", "Time is short."
    )
    assert code == 2 and "no quorum yet: 2 of 5 votes cast, 3 needed" in out
    code, out = await accord(
        stack,
        "vote",
        number,
        "--as",
        "board.product",
        "--outcome",
        "uphold",
        "--reasons",
        "Too short",
    )
    assert code == 2 and "reasons" in out
    code, out = await accord(
        stack,
        "vote",
        number,
        "--as",
        "board.product",
        "--outcome",
        "uphold",
        "--reasons",
        reasons,
        "--remedy",
        split,
    )
    assert code == 0, out
    code, out = await accord(
        stack, "unseal-ballot", number, "--as", "board.chair", "--reason", "A quorum has voted."
    )
    assert code == 0 and "the ballot is open" in out, out
    code, out = await accord(
        stack,
        "rule",
        number,
        "--as",
        "board.chair",
        "--outcome",
        "uphold",
        "--rationale",
        "First valid registration wins under RoE 3.1.",
        "--relied-on",
        "board.sales",
        "--clause",
        "RoE 3.1",
        "--remedy",
        split,
    )
    assert code == 0 and "ruling issued: upheld" in out, out
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    code, out = await accord(
        stack,
        "appeal",
        number,
        "--as",
        "carl@contoso.example",
        "--grounds",
        "The portal shows our registration was first, see log.",
        "--evidence",
        "no-colon-here",
    )
    assert code == 2 and "write it as reference:description" in out


async def test_reindexing_precedents_applies_a_new_amount_threshold(stack: Stack) -> None:
    from decimal import Decimal

    from sqlmodel import select

    from models.enums import DisputeCategory
    from models.tables import Precedent
    from tests.precedent_rows import add_precedent

    with stack.sessions.begin() as session:
        add_precedent(
            session,
            "DSP-2025-000077",
            category=DisputeCategory.PRICING,
            outcome="settled",
            facts="A rebate of 50,000 USD was withheld for the gold tier.",
            rationale="The price list applies.",
            amount=Decimal(50_000),
        )

    def public_text() -> str:
        with stack.sessions.read() as session:
            return session.exec(
                select(Precedent.public_text).where(Precedent.dispute_number == "DSP-2025-000077")
            ).one()

    assert "50,000 USD" not in public_text()
    # k = 3: one platinum partner in NA-East; Lamna alone in LATAM joins NA in AMER.
    assert "a partner in AMER\n" in public_text()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.cli",
        "reindex-precedents",
        env=cli_env(
            stack, ACCORD_PUBLIC_AMOUNT_THRESHOLD="100000", ACCORD_PRECEDENT_ANONYMITY_K="1"
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    assert (
        "reindexed 1 precedents (amounts over 100,000 hidden from partners;"
        " every party label shared by at least 1 partners)"
    ) in out.decode()
    assert "50,000 USD" in public_text()
    # With k = 1 every label is shared enough as it is: the claimant's tier and region show.
    assert "a platinum partner in NA-East" in public_text()


async def test_verify_all_checks_every_trail_and_names_a_broken_one(stack: Stack) -> None:
    first, second = (
        (await stack.file()).number,
        (
            await stack.file(
                contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0077"}]
            )
        ).number,
    )
    await stack.wait_for_event(second, "mediator_offered")
    code, out = await accord(stack, "verify")
    assert code == 2 and "name one dispute, or pass --all" in out

    code, out = await accord(stack, "verify", "--all")
    entries = len(stack.events(first)) + len(stack.events(second))
    # Exit 1, not 0: the time-skipping server cannot list workflows, so disputes deleted with
    # their row could not be looked for (tests/activities/test_audit_trail.py does, on a dev server).
    assert code == 1, out
    assert f"2 disputes: every audit trail intact ({entries} entries)" in out
    assert "not looked for: disputes deleted from the database with their whole trail" in out

    # Someone with the database's owner rights lifts the append-only guard and edits history.
    with stack.sessions.begin() as session:
        session.execute(text("DROP TRIGGER dispute_event_no_update"))
        session.execute(
            text(
                "UPDATE dispute_event SET actor_id = 'mallory' WHERE dispute_number = :n AND seq = 2"
            ),
            {"n": second},
        )
    code, out = await accord(stack, "verify", "--all")
    assert code == 2
    assert f"{second}: audit trail broken at entry 2" in out and first not in out


def test_an_engine_error_is_told_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    from temporalio.service import RPCError, RPCStatusCode
    from typer import Exit

    from accord.cli.common import _run

    async def engine_down() -> None:
        raise RPCError(
            "tcp connect error: Connection refused (os error 111)", RPCStatusCode.UNAVAILABLE, b""
        )

    async def engine_refuses() -> None:
        raise RPCError("Namespace default is not found.", RPCStatusCode.NOT_FOUND, b"")

    for engine, said in [
        (engine_down, "the dispute engine (Temporal) did not answer; is `make run`"),
        (engine_refuses, "the dispute engine (Temporal) turned the request down"),
    ]:
        with pytest.raises(Exit):
            _run(engine())
        err = capsys.readouterr().err
        assert said in err and "nothing was changed" in err.lower(), err
        assert "os error" not in err and "Namespace" not in err, err


def test_show_lines_up_its_history_whatever_the_length_of_a_name() -> None:
    """A party's contact is named with their organisation ('Carl Mendez (Contoso Systems)'),
    longer than the column once fixed at 24: every history line's action and summary start
    at the same column, so the history reads as a table."""
    from accord.cli.records import describe
    from tests.platform.test_wording import NOW, _state

    state = _state(DisputeStage.MEDIATION, DisputeCategory.PRICING, VoteOutcome.UPHOLD)
    long = "carl.mendez-very-long-contact@contoso.example"
    history = tuple(
        h.model_copy(update={"actor": long if i % 2 else h.actor})
        for i, h in enumerate(state.history)
    )
    names = Names(
        partners={}, people={long: "Carl Mendez-Longname (Contoso Systems International)"}
    )
    lines = describe(state.model_copy(update={"history": history}), names, NOW)
    rows = lines[lines.index("  history") + 1 : -1]
    assert len(rows) > 2
    starts = {row.index(wording.label(h.action)) for row, h in zip(rows, history, strict=True)}
    assert len(starts) == 1, rows[:3]
