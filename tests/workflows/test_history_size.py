"""Bounded workflow history (issue 14, item 1): the bodies of notes, emails, information
requests and answers are stored in the database by the adapter that received them; the workflow,
its history and its audit entries carry only the stored text's id and hash. Per dispute and per
sender the number of texts is limited, and a sender over a limit is told which and why."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from accord.disputes import texts
from accord.disputes.operations import Refused, perform
from models.enums import DisputeStage, InboundState
from models.payloads import AddNote, TextRef
from models.tables import DisputeText, Evidence, Precedent
from tests.conftest import Stack
from tests.intake_harness import Intake, mail
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_history_confidentiality import payloads_of
from workflows.dispute import DisputeWorkflow

CLAIMANT = "nora@northwind.example"
RESPONDENT = "carl@contoso.example"


def marked(marker: str, size: int) -> str:
    """A text of about `size` characters that can be found by its marker in any serialisation."""
    line = f"{marker} the registration of DR-2026-0042 predates theirs by a week. "
    return (line * (size // len(line) + 1))[:size].strip()


async def history_bytes(stack: Stack, number: str) -> bytes:
    """The workflow's history with its payloads opened (Temporal stores them sealed:
    test_history_confidentiality), so what the workflow carries can be searched."""
    history = await stack.handle(number).fetch_history()
    codec = stack.client.data_converter.payload_codec
    assert codec is not None
    for event in history.events:
        payloads = payloads_of(event)
        for payload, opened in zip(payloads, await codec.decode(payloads), strict=True):
            payload.CopyFrom(opened)
    return b"".join(event.SerializeToString() for event in history.events)


async def in_mediation(stack: Stack) -> tuple[str, str]:
    """A filed dispute whose mediator has accepted: its number and the mediator's login."""
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    # The offer's task (which lets the mediator see the dispute) is written with its entry, a
    # moment after the query shows the candidate.
    await stack.recorded(number)
    mediator = f"{state.candidate_mediator_id}@vendor.example"
    app = make_app(stack)
    async with api(app, token_for(stack, mediator)) as med:
        accepted = await med.post(
            f"/api/disputes/{number}/accept-assignment",
            json={"impartiality_declaration": "No ties to either party or to the outcome."},
        )
        assert accepted.status_code == 200, accepted.text
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    return number, mediator


@pytest.fixture
def intake(intake_on_both: Intake) -> Intake:
    """This module's intake runs on both databases."""
    return intake_on_both


async def test_text_bodies_stay_out_of_the_workflow_history(intake: Intake) -> None:
    """On both databases: a note, an information request, its answer and an email reply, each
    long and marked, reach the people who read them, and none of the bodies is in the
    workflow's history; each audit entry holds the text's id and sha256 instead."""
    stack = intake.stack
    number, mediator = await in_mediation(stack)
    note, questions = marked("NOTE-7a1", 19_000), marked("ASK-3c9", 15_000)
    answer = marked("ANSWER-5e2", 18_000)
    reply_text = marked("REPLY-9d4", 45_000)
    app = make_app(stack)
    async with api(app, token_for(stack, mediator)) as med:
        added = await med.post(f"/api/disputes/{number}/add-note", json={"text": note})
        assert added.status_code == 200, added.text
        asked = await med.post(
            f"/api/disputes/{number}/request-information",
            json={"party_id": "northwind", "questions": questions},
        )
        assert asked.status_code == 200, asked.text
        request_id = asked.json()["reference"]
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        answered = await nora.post(
            f"/api/disputes/{number}/answer-information",
            json={"request_id": request_id, "answer": answer},
        )
        assert answered.status_code == 200, answered.text
    notice = await stack.mail.wait_for(RESPONDENT, "naming your organisation")
    row = await intake.deliver(
        mail(
            RESPONDENT,
            f"Re: {notice['Subject']}",
            reply_text,
            headers={"In-Reply-To": str(notice["Message-ID"])},
        )
    )
    assert row.state is InboundState.THREADED, row.reason
    await stack.wait_for_event(number, "message_received")

    history = await history_bytes(stack, number)
    assert b"DR-2026-0042" in history  # the filing is in it: the search below can find text
    for marker in (b"NOTE-7a1", b"ASK-3c9", b"ANSWER-5e2", b"REPLY-9d4"):
        assert marker not in history, f"{marker!r} is in the workflow history"
    assert len(history) < 60_000, len(history)

    # The audit entries name each text by id and hash: the hash chain covers the bodies.
    stored = {}
    with stack.sessions.read() as session:
        for text in session.exec(select(DisputeText)).all():
            assert text.sha256 == hashlib.sha256(text.body.encode()).hexdigest()
            stored[text.id] = text
    by_action = {e.action: e.content for e in stack.events(number)}
    for action, name, body in (
        ("note_added", "text", note),
        ("information_requested", "questions", questions),
        ("information_answered", "answer", answer),
        ("message_received", "text", reply_text.strip()),
    ):
        content = by_action[action]
        assert name not in content, f"{action} carries its body inline"
        ref = content[f"{name}_ref"]
        assert isinstance(ref, dict)
        assert stored[ref["id"]].body == body
        assert ref["sha256"] == hashlib.sha256(body.encode()).hexdigest()
        assert stored[ref["id"]].dispute_number == number

    # Those who read them still do: the mediator's view, the party's email, the dispute page.
    async with api(app, token_for(stack, mediator)) as med:
        detail = (await med.get(f"/api/disputes/{number}")).json()
    assert [n["text"] for n in detail["state"]["notes"]] == [note]
    (request,) = detail["state"]["information_requests"]
    assert (request["questions"], request["answer"]) == (questions, answer)
    asked_mail = await stack.mail.wait_for(CLAIMANT, "Information requested")
    assert "ASK-3c9" in asked_mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    page = await _page(stack, mediator, number)
    assert "REPLY-9d4" in page


async def _page(stack: Stack, login: str, number: str) -> str:
    browser = await signed_in(make_app(stack), login)
    try:
        response = await browser.get(f"/disputes/{number}")
        assert response.status_code == 200
        return response.text
    finally:
        await browser.close()


async def test_a_stored_text_of_another_dispute_or_altered_since_is_refused(
    stack_on_both: Stack,
) -> None:
    """An action naming another dispute's text, or a text whose body changed after it was sent,
    is refused by the dispute before anything changes: no note, no audit entry."""
    stack = stack_on_both
    number, mediator = await in_mediation(stack)
    other = (await stack.file(contested_objects=[{"kind": "lead", "ref": "L-1"}])).number
    actor = stack.actor(mediator)
    foreign = texts.store(
        stack.sessions,
        other,
        "note",
        actor.id,
        "A note filed on the other dispute.",
        field="text",
        limits=None,
    )
    await stack.recorded(number)
    before = len(stack.events(number))
    with pytest.raises(Refused, match=f"is not a text of {number}"):
        await perform(
            stack.client, number, AddNote(actor=actor, text_ref=foreign), DisputeWorkflow.add_note
        )
    said = "What the mediator wrote."
    # The table refuses to change a stored text (append-only, like the audit trail) ...
    mine = texts.store(stack.sessions, number, "note", actor.id, said, field="text", limits=None)
    for statement in (
        f"UPDATE dispute_text SET body = 'What someone changed it to.' WHERE id = '{mine.id}'",
        f"DELETE FROM dispute_text WHERE id = '{mine.id}'",
    ):
        with pytest.raises(DBAPIError, match="dispute_text is append-only"):
            _execute(stack, statement)
    # ... so a changed body can only come from outside (a doctored restore): still refused.
    with stack.sessions.begin() as session:
        session.add(
            DisputeText(
                id="tx-" + "e" * 32,
                dispute_number=number,
                kind="note",
                body="What someone changed it to.",
                sha256=texts.sha256(said),
                size=len(said),
                author=actor.id,
                created_at=datetime.now(UTC),
            )
        )
    doctored = TextRef(id="tx-" + "e" * 32, sha256=texts.sha256(said), size=len(said))
    with pytest.raises(Refused, match="does not have the hash"):
        await perform(
            stack.client, number, AddNote(actor=actor, text_ref=doctored), DisputeWorkflow.add_note
        )
    forged = TextRef(id="tx-" + "0" * 32, sha256="0" * 64, size=1)
    with pytest.raises(Refused, match="is not a text of"):
        await perform(
            stack.client, number, AddNote(actor=actor, text_ref=forged), DisputeWorkflow.add_note
        )
    await stack.recorded(number)
    assert len(stack.events(number)) == before
    assert (await stack.state(number)).notes == ()


def _execute(stack: Stack, statement: str) -> None:
    with stack.sessions.begin() as session:
        session.connection().exec_driver_sql(statement)


async def test_the_api_takes_no_stored_text_reference_from_outside(stack: Stack) -> None:
    number, mediator = await in_mediation(stack)
    async with api(make_app(stack), token_for(stack, mediator)) as med:
        sent = await med.post(
            f"/api/disputes/{number}/add-note",
            json={"text": "hello there", "text_ref": {"id": "tx-" + "1" * 32}},
        )
        assert sent.status_code == 422
        assert [e["field"] for e in sent.json()["errors"]] == ["text_ref"]
        missing = await med.post(f"/api/disputes/{number}/add-note", json={})
        assert missing.status_code == 422
        assert [e["field"] for e in missing.json()["errors"]] == ["text"]


async def test_a_sender_over_a_volume_limit_is_told_and_nothing_is_recorded(
    intake: Intake,
) -> None:
    """Per sender and per dispute: over the web/API a 429 problem naming the limit, by email an
    answer saying it; in both, no text stored, no entry, no attachment."""
    stack = intake.stack
    stack.settings.texts_per_sender = 2
    stack.settings.texts_per_dispute = 3
    number, mediator = await in_mediation(stack)
    app = make_app(stack)
    async with api(app, token_for(stack, mediator)) as med:
        for n in (1, 2):
            ok = await med.post(f"/api/disputes/{number}/add-note", json={"text": f"Note {n}."})
            assert ok.status_code == 200, ok.text
        # The same note sent again (a retry with its key) is the same text: not counted twice.
        again = await med.post(
            f"/api/disputes/{number}/add-note",
            json={"text": "Note 2."},
            headers={"Idempotency-Key": "same-note-2"},
        )
        assert again.status_code == 200, again.text
        over = await med.post(f"/api/disputes/{number}/add-note", json={"text": "Note 3."})
        assert over.status_code == 429, over.text
        problem = over.json()
        assert problem["type"] == "urn:accord:problem:too-many"
        assert problem["errors"][0]["field"] == "text"
        assert "the most one person may send in one dispute (2)" in problem["errors"][0]["message"]
    notice = await stack.mail.wait_for(RESPONDENT, "naming your organisation")

    def reply(body: str) -> object:
        message = mail(
            RESPONDENT,
            f"Re: {notice['Subject']}",
            body,
            headers={"In-Reply-To": str(notice["Message-ID"])},
        )
        message.add_attachment(
            b"meeting notes", maintype="text", subtype="plain", filename="notes.txt"
        )
        return message

    first = await intake.deliver(reply("Our first answer."))  # type: ignore[arg-type]
    assert first.state is InboundState.THREADED, first.reason
    await stack.wait_for_event(number, "message_received")
    await stack.recorded(number)
    entries = len(stack.events(number))
    # The dispute now holds 3 texts: the respondent's second is over the dispute's limit.
    second = await intake.deliver(reply("Our second answer."))  # type: ignore[arg-type]
    assert second.state is InboundState.ANSWERED
    assert "the most one dispute takes (3)" in (second.reason or "")
    answer = await stack.mail.wait_for(RESPONDENT, "Re: Re:")
    told = answer.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "the most one dispute takes (3)" in told
    await stack.recorded(number)
    assert len(stack.events(number)) == entries
    with stack.sessions.read() as session:
        assert len(session.exec(select(DisputeText)).all()) == 3
        assert len(session.exec(select(Evidence)).all()) == 1


def test_a_text_over_its_size_is_refused_naming_the_field(sqlite_url: str) -> None:
    from accord.platform.db import SessionFactory, make_engine

    sessions = SessionFactory(make_engine(sqlite_url))
    with pytest.raises(texts.TextProblem) as problem:
        texts.store(
            sessions, "DSP-2026-000001", "note", "a", "x" * 20_001, field="text", limits=None
        )
    assert problem.value.field == "text"
    assert "at most 20,000 characters" in problem.value.message


SPLIT = {
    "kind": "commission_split",
    "deal_ref": "DR-2026-0042",
    "shares": {"northwind": 80, "contoso": 20},
}
BOARD = {
    "board.sales": "b.sales@vendor.example",
    "board.marketing": "m.marketing@vendor.example",
    "board.product": "p.product@vendor.example",
}


async def test_a_settlement_s_terms_stay_out_of_the_history_and_make_the_precedent(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    number, mediator = await in_mediation(stack)
    terms = marked("TERMS-2b8", 19_000)
    app = make_app(stack)
    async with api(app, token_for(stack, mediator)) as med:
        offered = await med.post(
            f"/api/disputes/{number}/propose-settlement", json={"terms": terms, "remedies": [SPLIT]}
        )
        assert offered.status_code == 200, offered.text
        offer_id = offered.json()["reference"]
        (offer,) = (await med.get(f"/api/disputes/{number}")).json()["state"]["offers"]
        assert offer["terms"] == terms
    offer_mail = await stack.mail.wait_for(CLAIMANT, offer_id)
    assert "TERMS-2b8" in offer_mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    for login in (CLAIMANT, RESPONDENT):
        async with api(app, token_for(stack, login)) as party:
            answer = await party.post(
                f"/api/disputes/{number}/respond-to-offer",
                json={"offer_id": offer_id, "accept": True},
            )
            assert answer.status_code == 200, answer.text
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.CLOSED)
    assert b"TERMS-2b8" not in await history_bytes(stack, number)
    with stack.sessions.read() as session:
        (precedent,) = session.exec(select(Precedent)).all()
    assert precedent.rationale == terms


async def test_votes_reasons_and_the_ruling_s_rationale_stay_out_of_the_history(
    stack: Stack,
) -> None:
    from tests.workflows.test_formal_review import in_review

    number = await in_review(stack)
    await stack.wait_for_event(number, "panel_drawn")
    app = make_app(stack)
    for n, email in enumerate(BOARD.values()):
        async with api(app, token_for(stack, email)) as member:
            voted = await member.post(
                f"/api/disputes/{number}/cast-vote",
                json={
                    "outcome": "uphold",
                    "remedies": [SPLIT],
                    "reasons": marked(f"VOTE{n}-x", 900),
                },
            )
            assert voted.status_code == 200, voted.text
    rationale = marked("RULING-4f1", 15_000)
    async with api(app, token_for(stack, "c.chair@vendor.example")) as chair:
        short = await chair.post(
            f"/api/disputes/{number}/issue-ruling",
            json={
                "outcome": "uphold",
                "remedies": [SPLIT],
                "rationale": "Too short.",
                "votes_relied_on": ["board.sales"],
                "clauses_applied": ["RoE 3.1"],
            },
        )
        assert short.status_code == 422
        assert short.json()["errors"][0]["field"] == "rationale"
        opened = await chair.post(
            f"/api/disputes/{number}/unseal-ballot", json={"reason": "A quorum has voted."}
        )
        assert opened.status_code == 200, opened.text
        ruled = await chair.post(
            f"/api/disputes/{number}/issue-ruling",
            json={
                "outcome": "uphold",
                "remedies": [SPLIT],
                "rationale": rationale,
                "votes_relied_on": ["board.sales", "board.marketing"],
                "clauses_applied": ["RoE 3.1"],
            },
        )
        assert ruled.status_code == 200, ruled.text
        state = (await chair.get(f"/api/disputes/{number}")).json()["state"]
    assert [r["rationale"] for r in state["rulings"]] == [rationale]
    assert sorted(v["reasons"] for v in state["review"]["votes"]) == [
        marked(f"VOTE{n}-x", 900) for n in range(3)
    ]
    ruling_mail = await stack.mail.wait_for(CLAIMANT, "Ruling:")
    assert "RULING-4f1" in ruling_mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    history = await history_bytes(stack, number)
    for marker in (b"RULING-4f1", b"VOTE0-x", b"VOTE1-x", b"VOTE2-x"):
        assert marker not in history, f"{marker!r} is in the workflow history"
    # The sealed commitment and the opened vote name the same stored reasons.
    entries = {e.action: e.content for e in stack.events(number)}
    votes = entries["ruling_issued"]["votes"]
    assert isinstance(votes, list)
    assert all("reasons" not in v and "reasons_ref" in v for v in votes)


async def test_two_texts_sent_at_once_cannot_both_take_the_last_place(
    stack_on_both: Stack,
) -> None:
    """The count and the insert hold together (the dispute's row locked on PostgreSQL, BEGIN
    IMMEDIATE on SQLite): of eight senders racing for the one place left, exactly one gets it."""
    stack = stack_on_both
    number = (await stack.file()).number
    limits = texts.VolumeLimits(per_dispute=1, per_sender=10)
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def send(n: int) -> None:
        start.wait()
        try:
            texts.store(
                stack.sessions,
                number,
                "note",
                f"sender-{n}",
                f"Note number {n}.",
                field="text",
                limits=limits,
            )
            outcomes.append("stored")
        except texts.TooManyTexts:
            outcomes.append("refused")

    def race() -> None:
        threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    await asyncio.to_thread(race)
    assert sorted(outcomes) == ["refused"] * 7 + ["stored"]
    with stack.sessions.read() as session:
        assert len(session.exec(select(DisputeText)).all()) == 1


async def test_accord_verify_reports_a_stored_text_changed_behind_the_trail(stack: Stack) -> None:
    """The audit entry holds the text's hash: a body edited by someone who lifted the
    append-only guard is reported by `accord verify`, for the dispute and with --all."""
    from tests.cli.test_cli import accord

    number, mediator = await in_mediation(stack)
    async with api(make_app(stack), token_for(stack, mediator)) as med:
        added = await med.post(f"/api/disputes/{number}/add-note", json={"text": "As agreed."})
        assert added.status_code == 200, added.text
    entry = await stack.wait_for_event(number, "note_added")
    code, out = await accord(stack, "verify", number)
    assert code == 0, out
    ref = entry.content["text_ref"]
    assert isinstance(ref, dict)
    _execute(stack, "DROP TRIGGER dispute_text_no_update")
    _execute(stack, f"UPDATE dispute_text SET body = 'Never agreed.' WHERE id = '{ref['id']}'")
    for args in ((number,), ("--all",)):
        code, out = await accord(stack, "verify", *args)
        assert code == 2, out
        assert f"entry {entry.seq}: text {ref['id']} does not match its hash" in out
