"""Exceptions approved by the board (issue 20, item 5), on the time-skipping server: a request
told to the partners it affects, their objections, a panel screened like a dispute's voting a
sealed ballot, the chair's decision, and the exception's end; refusals by rule, by role and at
the same moment."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import select
from temporalio.service import RPCError, RPCStatusCode

from accord.application import build_exceptions
from accord.channel.exceptions import ExceptionRefused, ExceptionRequest
from accord.governance.exceptions import ExceptionForbidden, ExceptionService
from models.enums import ExceptionState
from models.payloads import exception_workflow_id
from models.tables import ChannelException, ExceptionEvent, OutboxMessage, PartnerContact, Person
from tests.conftest import HISTORIES, Stack
from workflows.exception import ExceptionWorkflow

REASON = "Acme's New York office buys only through Contoso under its master agreement."
WHY = "The holder does not serve this customer and the customer asked for Contoso."


async def keep_history(stack: Stack, exception_id: int, name: str) -> None:
    """Store the exception's history for the replay test (`make histories`), never over one
    already stored (it stands for requests running on the code that recorded it)."""
    if os.environ.get("ACCORD_RECORD_HISTORIES") != "1":
        return
    path = HISTORIES / f"exception-{name}.json"
    if not path.exists():
        handle = stack.client.get_workflow_handle_for(
            ExceptionWorkflow.run, exception_workflow_id(exception_id)
        )
        path.write_text((await handle.fetch_history()).to_json())


def service(stack: Stack) -> ExceptionService:
    return build_exceptions(stack.services, stack.client)


def request(**overrides: Any) -> ExceptionRequest:
    fields: dict[str, Any] = {
        "partner_id": "contoso",
        "clause": "RoE 4.2",
        "territory": "US-NY-METRO",
        "until": (date.today() + timedelta(days=60)).isoformat(),
        "reason": REASON,
    }
    fields.update(overrides)
    return ExceptionRequest.model_validate(fields)


def row(stack: Stack, exception_id: int) -> ChannelException:
    with stack.sessions.read() as session:
        found = session.get(ChannelException, exception_id)
        assert found is not None
        return found


def events(stack: Stack, exception_id: int) -> list[ExceptionEvent]:
    with stack.sessions.read() as session:
        return list(
            session.exec(
                select(ExceptionEvent)
                .where(ExceptionEvent.exception_id == exception_id)
                .order_by(ExceptionEvent.step)  # type: ignore[arg-type]
            )
        )


async def event(stack: Stack, exception_id: int, action: str) -> ExceptionEvent:
    for _ in range(400):
        found = [e for e in events(stack, exception_id) if e.action == action]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {action!r}: {[e.action for e in events(stack, exception_id)]}")


def mail_to(stack: Stack, recipient: str) -> list[OutboxMessage]:
    with stack.sessions.read() as session:
        return list(
            session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.template == "exception_notice",
                    OutboxMessage.recipient == recipient,
                )
            )
        )


async def requested(stack: Stack) -> tuple[ExceptionService, int]:
    svc = service(stack)
    made = await svc.request(request(), stack.actor("carl@contoso.example"))
    assert made.id is not None
    await event(stack, made.id, "requested")
    return svc, made.id


async def in_review(stack: Stack) -> tuple[ExceptionService, int]:
    svc, exception_id = await requested(stack)
    await stack.env.sleep(timedelta(days=8))  # past 5 business days of objections
    await event(stack, exception_id, "panel_drawn")
    return svc, exception_id


async def refused(svc: ExceptionService, *args: Any) -> str:
    with pytest.raises(ExceptionRefused) as caught:
        await svc.act(*args)
    return caught.value.message


def panel_of(stack: Stack, exception_id: int) -> tuple[list[str], str]:
    panel = row(stack, exception_id).panel
    return [m["person_id"] for m in panel["members"]], panel["chair"]["person_id"]


async def test_a_request_is_objected_to_voted_sealed_approved_and_expires(
    stack_on_both: Stack,
) -> None:
    """The whole lifecycle, on SQLite and on PostgreSQL."""
    stack = stack_on_both
    svc, exception_id = await requested(stack)
    made = row(stack, exception_id)
    assert made.state is ExceptionState.REQUESTED and made.affected_partner_ids == ["northwind"]
    assert made.clause.startswith("RoE 4.2 Exclusive territories")
    assert made.objections_close_at is not None
    await stack.mail_settled()
    (told,) = mail_to(stack, "nora@northwind.example")
    assert "Contoso Systems asks the governance board for an exception" in told.text_body
    assert "You may object" in told.text_body and told.subject.startswith("Exception EXC-")
    (asked,) = mail_to(stack, "carl@contoso.example")
    assert "Your request for Contoso Systems is recorded" in asked.text_body

    nora = stack.actor("nora@northwind.example")
    done = await svc.act(exception_id, "object", nora, {"reason": "We serve Acme in New York."})
    assert done.state is ExceptionState.REQUESTED
    again = await refused(svc, exception_id, "object", nora, {"reason": "And again we object."})
    assert again == "northwind has objected already"
    carl = stack.actor("carl@contoso.example")
    assert "only a partner this exception affects" in await refused(
        svc, exception_id, "object", carl, {"reason": "We object to ourselves."}
    )
    assert "no panel is waiting to be drawn, and none sits" in await refused(
        svc, exception_id, "redraw", stack.actor("alex.admin"), {"reason": "Too early for it."}
    )
    assert "no ballot is open" in await refused(
        svc, exception_id, "vote", stack.actor("board.sales"), {"choice": "approve", "reasons": WHY}
    )

    await stack.env.sleep(timedelta(days=8))
    drawn = await event(stack, exception_id, "panel_drawn")
    members, chair = panel_of(stack, exception_id)
    assert members and chair == "board.chair" and chair not in members
    assert drawn.detail["chair"]["person_id"] == "board.chair"
    closed = await event(stack, exception_id, "objections_closed")
    assert closed.detail == {"objected": ["northwind"]}
    late = await refused(svc, exception_id, "object", nora, {"reason": "Late objection."})
    assert late == "the objection window is closed"

    first, *others = members
    await svc.act(exception_id, "vote", stack.actor(first), {"choice": "approve", "reasons": WHY})
    cast = await event(stack, exception_id, "vote_cast")
    assert set(cast.detail) == {"commitment"} and "approve" not in cast.summary
    view = await svc.state(exception_id)
    assert view is not None and view.voted == (first,) and view.votes == ()
    assert "the ballot is sealed" in await refused(
        svc, exception_id, "decide", stack.actor(chair), {"choice": "approve", "reason": WHY}
    )
    for member in others:
        await svc.act(exception_id, "vote", stack.actor(member), {"choice": "deny", "reasons": WHY})
    opened = await event(stack, exception_id, "ballot_opened")
    votes = {v["person_id"]: v for v in opened.detail["votes"]}
    assert set(votes) == set(members) and votes[first]["choice"] == "approve"
    body = json.dumps({"choice": "approve", "reasons": WHY}, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(f"{first}\n{body}".encode()).hexdigest() == cast.detail["commitment"]
    assert "no vote is taken once the others are known" in await refused(
        svc, exception_id, "vote", stack.actor(first), {"choice": "deny", "reasons": WHY}
    )
    assert "only the chair" in await refused(
        svc, exception_id, "decide", stack.actor(first), {"choice": "approve", "reason": WHY}
    )

    decided = await svc.act(
        exception_id, "decide", stack.actor(chair), {"choice": "approve", "reason": WHY}
    )
    assert decided.state is ExceptionState.APPROVED
    approved = row(stack, exception_id)
    assert approved.state is ExceptionState.APPROVED and approved.decided_by == chair
    assert approved.decision_reason == WHY
    await stack.mail_settled()
    assert any(
        "approved exception" in m.text_body for m in mail_to(stack, "nora@northwind.example")
    )
    assert "is approved: it cannot be withdrawn" in await refused(
        svc, exception_id, "withdraw", carl, {"reason": "We no longer need it."}
    )

    await stack.env.sleep(timedelta(days=70))
    await event(stack, exception_id, "expired")
    assert row(stack, exception_id).state is ExceptionState.EXPIRED
    actions = [e.action for e in events(stack, exception_id)]
    assert actions == [
        "requested",
        "objected",
        "objections_closed",
        "panel_drawn",
        *["vote_cast"] * len(members),
        "ballot_opened",
        "approved",
        "expired",
    ]
    await keep_history(stack, exception_id, "approved-and-expired")


async def test_an_overdue_decision_opens_the_ballot_tells_the_chair_and_lapses(
    stack: Stack,
) -> None:
    svc, exception_id = await in_review(stack)
    members, chair = panel_of(stack, exception_id)
    await svc.act(exception_id, "vote", stack.actor(members[0]), {"choice": "deny", "reasons": WHY})
    await stack.env.sleep(timedelta(days=16))  # past 10 business days
    opened = await event(stack, exception_id, "ballot_opened")
    assert "the decision deadline passed" in opened.summary
    await event(stack, exception_id, "decision_overdue")
    await stack.mail_settled()
    assert any("overdue" in m.subject for m in mail_to(stack, "c.chair@vendor.example"))
    assert any("overdue" in m.subject for m in mail_to(stack, "alex.admin@vendor.example"))
    await stack.env.sleep(timedelta(days=60))
    await event(stack, exception_id, "lapsed")
    assert row(stack, exception_id).state is ExceptionState.LAPSED
    late = await refused(
        svc, exception_id, "decide", stack.actor(chair), {"choice": "approve", "reason": WHY}
    )
    assert late == f"EXC-{exception_id} is lapsed; nothing was changed"
    await keep_history(stack, exception_id, "overdue-and-lapsed")


async def test_roles_that_ended_and_strangers_cannot_act(stack: Stack) -> None:
    svc, exception_id = await in_review(stack)
    members, chair = panel_of(stack, exception_id)
    with stack.sessions.begin() as session:
        person = session.get(Person, members[0])
        assert person is not None
        voter = stack.actor(members[0])
        person.active = False
        session.add(person)
    with pytest.raises(ExceptionForbidden, match="no longer an active board"):
        await svc.act(exception_id, "vote", voter, {"choice": "approve", "reasons": WHY})
    with stack.sessions.begin() as session:
        contact = session.exec(
            select(PartnerContact).where(PartnerContact.email == "nora@northwind.example")
        ).one()
        nora = stack.actor("nora@northwind.example")
        contact.active = False
        session.add(contact)
    with pytest.raises(ExceptionForbidden, match="no longer acts for northwind"):
        await svc.act(exception_id, "withdraw", nora, {"reason": "Not ours to withdraw."})
    # A partner the exception does not name is not even told it exists.
    fay = stack.actor("fay@fabrikam.example")
    with pytest.raises(LookupError):
        await svc.act(exception_id, "object", fay, {"reason": "We object as well."})
    mediator = stack.actor("maria.lopez")
    with pytest.raises(ExceptionForbidden):
        await svc.act(exception_id, "withdraw", mediator, {"reason": "Mediators cannot."})
    assert "only an admin may redraw" in await refused(
        svc, exception_id, "redraw", stack.actor(chair), {"reason": "Draw it again please."}
    )


async def test_two_decisions_at_the_same_moment_record_one(stack_on_both: Stack) -> None:
    stack = stack_on_both
    svc, exception_id = await in_review(stack)
    members, chair = panel_of(stack, exception_id)
    for member in members:
        await svc.act(
            exception_id, "vote", stack.actor(member), {"choice": "approve", "reasons": WHY}
        )
    await event(stack, exception_id, "ballot_opened")
    boss = stack.actor(chair)
    carl = stack.actor("carl@contoso.example")
    results = await asyncio.gather(
        svc.act(exception_id, "decide", boss, {"choice": "approve", "reason": WHY}),
        svc.act(exception_id, "decide", boss, {"choice": "deny", "reason": WHY}),
        svc.act(exception_id, "withdraw", carl, {"reason": "We take it back now."}),
        return_exceptions=True,
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, ExceptionRefused)]
    assert len(done) == 1 and len(failed) == 2, results
    ends = [
        e.action
        for e in events(stack, exception_id)
        if e.action in ("approved", "denied", "withdrawn")
    ]
    assert len(ends) == 1 and row(stack, exception_id).state.value == ends[0]
    await keep_history(stack, exception_id, "decided-at-the-same-moment")


async def test_a_withdrawn_request_ends_and_tells_everyone(stack: Stack) -> None:
    svc, exception_id = await requested(stack)
    carl = stack.actor("carl@contoso.example")
    done = await svc.act(exception_id, "withdraw", carl, {"reason": "The customer went direct."})
    assert done.state is ExceptionState.WITHDRAWN
    await stack.mail_settled()
    assert any("withdrawn" in m.subject for m in mail_to(stack, "nora@northwind.example"))
    await stack.env.sleep(timedelta(days=10))
    assert [e.action for e in events(stack, exception_id)] == ["requested", "withdrawn"]
    await keep_history(stack, exception_id, "withdrawn")


async def test_a_board_that_cannot_seat_a_panel_asks_the_admins_who_redraw(stack: Stack) -> None:
    svc, exception_id = await requested(stack)

    def chair_active(active: bool) -> None:
        with stack.sessions.begin() as session:
            chair = session.get(Person, "board.chair")
            assert chair is not None
            chair.active = active
            session.add(chair)

    chair_active(False)
    await stack.env.sleep(timedelta(days=8))
    incomplete = await event(stack, exception_id, "panel_incomplete")
    assert "no chair" in incomplete.summary and "Charles Chair is not active" in incomplete.summary
    await stack.mail_settled()
    assert any(
        "no panel can be seated" in m.subject for m in mail_to(stack, "alex.admin@vendor.example")
    )
    admin = stack.actor("alex.admin")
    chair_active(True)
    await svc.act(exception_id, "redraw", admin, {"reason": "The chair is back from leave."})
    await event(stack, exception_id, "panel_drawn")
    assert panel_of(stack, exception_id)[1] == "board.chair"
    await keep_history(stack, exception_id, "panel-incomplete-then-redrawn")


async def test_a_request_stored_while_temporal_is_unreachable_is_started_by_the_recovery_pass(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal refusing the start is simulated (the test server cannot be stopped and started
    again under one client): the request is stored and answered, and the worker's recovery pass
    starts it, once, however often it runs."""
    svc = service(stack)
    real_start = stack.client.start_workflow

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(stack.client, "start_workflow", unreachable)
    made = await svc.request(request(), stack.actor("carl@contoso.example"))
    assert made.id is not None and row(stack, made.id).state is ExceptionState.REQUESTED
    assert events(stack, made.id) == []
    assert await svc.start_stranded(older_than=timedelta(0)) == []  # still unreachable: kept
    monkeypatch.setattr(stack.client, "start_workflow", real_start)
    assert await svc.start_stranded(older_than=timedelta(0)) == [made.id]
    await event(stack, made.id, "requested")
    assert await svc.start_stranded(older_than=timedelta(0)) == []
    assert [e.action for e in events(stack, made.id)] == ["requested"]


async def test_a_panel_whose_member_left_the_board_is_redrawn_and_votes_afresh(
    stack: Stack,
) -> None:
    svc, exception_id = await in_review(stack)
    members, chair = panel_of(stack, exception_id)
    await svc.act(exception_id, "vote", stack.actor(members[0]), {"choice": "deny", "reasons": WHY})
    leaving = members[1]
    with stack.sessions.begin() as session:
        person = session.get(Person, leaving)
        assert person is not None
        person.active = False
        # The board appoints someone to the seat.
        session.add(
            Person(
                id="board.newcomer",
                name="Nell Newcomer",
                email="nell.newcomer@vendor.example",
                role=person.role,
                calendar="US-NY",
                function=person.function,
                organisation=person.organisation,
            )
        )
    admin = stack.actor("alex.admin")
    done = await svc.act(exception_id, "redraw", admin, {"reason": f"{leaving} left the board."})
    assert "sealed vote(s) set aside" not in done.message
    asked = await event(stack, exception_id, "redraw_asked")
    assert asked.summary == "panel to be drawn again; 1 sealed vote(s) set aside"
    assert asked.detail["votes_set_aside"] == 1 and "choice" not in json.dumps(asked.detail)
    for _ in range(200):
        drawn = [e for e in events(stack, exception_id) if e.action == "panel_drawn"]
        if len(drawn) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(drawn) == 2
    fresh, _ = panel_of(stack, exception_id)
    assert leaving not in fresh and "board.newcomer" in fresh
    view = await svc.state(exception_id)
    assert view is not None and view.voted == () and not view.ballot_open
    # The first panel's vote was set aside: its member votes again, like everyone else.
    for member in fresh:
        await svc.act(
            exception_id, "vote", stack.actor(member), {"choice": "approve", "reasons": WHY}
        )
    opened = [e for e in events(stack, exception_id) if e.action == "ballot_opened"]
    assert len(opened) == 1 and {v["person_id"] for v in opened[0].detail["votes"]} == set(fresh)
    await svc.act(exception_id, "decide", stack.actor(chair), {"choice": "deny", "reason": WHY})
    assert row(stack, exception_id).state is ExceptionState.DENIED
    await keep_history(stack, exception_id, "panel-redrawn-after-a-member-left")
