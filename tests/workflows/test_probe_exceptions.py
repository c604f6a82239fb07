"""Adversarial probes of the exception workflow on the time-skipping server: dates that pass
while the request waits, redraws against the read model and the sealed ballot, the recovery
pass, ended roles, outages at the worst point, hostile text reaching the mail, and people
acting at the same moment.

A probe that found a defect is a strict xfail naming it (it flips when the defect is fixed);
the others guard the behaviour they checked."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from accord.channel.exceptions import ExceptionRefused, event_view
from activities.exceptions import ExceptionActivities
from models.enums import ExceptionState, Role
from models.payloads import ExceptionStep, exception_workflow_id
from models.tables import (
    ChannelException,
    OutboxMessage,
    Partner,
    PartnerContact,
    Person,
    Territory,
)
from tests.conftest import Stack
from tests.workflows.test_exception import (
    WHY,
    event,
    events,
    in_review,
    mail_to,
    panel_of,
    refused,
    request,
    requested,
    row,
    service,
)

NY = ZoneInfo("America/New_York")


async def until_true(check: Callable[[], bool], seconds: float = 10) -> bool:
    for _ in range(int(seconds / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def actions(stack: Stack, exception_id: int) -> list[str]:
    return [e.action for e in events(stack, exception_id)]


async def vote_all(stack: Stack, svc: Any, exception_id: int, choice: str = "approve") -> None:
    members, _ = panel_of(stack, exception_id)
    for member in members:
        await svc.act(exception_id, "vote", stack.actor(member), {"choice": choice, "reasons": WHY})


async def short_request(stack: Stack) -> tuple[Any, int]:
    """A request for one day only: its last day is tomorrow on the board calendar."""
    svc = service(stack)
    today = datetime.now(NY).date()
    made = await svc.request(
        request(until=(today + timedelta(days=1)).isoformat()),
        stack.actor("carl@contoso.example"),
    )
    assert made.id is not None
    await event(stack, made.id, "requested")
    return svc, made.id


# --- dates that pass while the request waits -----------------------------------------------


async def test_a_request_whose_last_day_passes_while_objections_are_open_lapses(
    stack: Stack,
) -> None:
    _svc, exception_id = await short_request(stack)
    await stack.env.sleep(timedelta(days=3))  # past its last day, inside 5 business days
    assert await until_true(lambda: row(stack, exception_id).state is ExceptionState.LAPSED), (
        row(stack, exception_id).state,
        actions(stack, exception_id),
    )
    await stack.env.sleep(timedelta(days=6))
    await asyncio.sleep(1)
    assert "panel_drawn" not in actions(stack, exception_id)


async def test_an_exception_past_its_last_day_cannot_be_approved(stack: Stack) -> None:
    svc, exception_id = await short_request(stack)
    await stack.env.sleep(timedelta(days=8))
    await asyncio.sleep(1)
    if row(stack, exception_id).panel:
        members, _ = panel_of(stack, exception_id)
        for member in members:
            try:
                await svc.act(
                    exception_id, "vote", stack.actor(member), {"choice": "approve", "reasons": WHY}
                )
            except ExceptionRefused:
                pass
    with pytest.raises(ExceptionRefused):
        await svc.act(
            exception_id,
            "decide",
            stack.actor("board.chair"),
            {"choice": "approve", "reason": WHY},
        )
    assert "approved" not in actions(stack, exception_id)


# --- the read model against the workflow ---------------------------------------------------


def set_active(stack: Stack, person_id: str, active: bool) -> None:
    with stack.sessions.begin() as session:
        person = session.get(Person, person_id)
        assert person is not None
        person.active = active
        session.add(person)


async def test_a_redraw_that_seats_no_panel_clears_the_read_model_s_panel(stack: Stack) -> None:
    svc, exception_id = await in_review(stack)
    set_active(stack, "board.chair", False)
    await svc.act(
        exception_id, "redraw", stack.actor("alex.admin"), {"reason": "The chair has left."}
    )
    await event(stack, exception_id, "panel_incomplete")
    view = await svc.state(exception_id)
    assert view is not None and view.awaiting_panel and view.panel == () and view.chair is None
    stored = row(stack, exception_id)
    assert not stored.panel.get("members"), stored.panel


async def test_the_read_model_agrees_with_the_workflow_after_each_ending(stack: Stack) -> None:
    svc = service(stack)
    carl = stack.actor("carl@contoso.example")
    # Approved by the chair.
    svc, exception_id = await in_review(stack)
    await vote_all(stack, svc, exception_id)
    await event(stack, exception_id, "ballot_opened")
    _, chair = panel_of(stack, exception_id)
    await svc.act(exception_id, "decide", stack.actor(chair), {"choice": "deny", "reason": WHY})
    view = await svc.state(exception_id)
    stored = row(stack, exception_id)
    assert view is not None and view.state is stored.state is ExceptionState.DENIED
    assert stored.decided_by == chair and stored.decision_reason == WHY
    assert [m["person_id"] for m in stored.panel["members"]] == [m.person_id for m in view.panel]
    # Withdrawn while in review: nobody decided it.
    with stack.sessions.begin() as session:
        session.add(
            Territory(
                code="US-BOS",
                name="Boston",
                partner_id="northwind",
                exclusive=True,
                countries=["US"],
            )
        )
    other = await svc.request(request(territory="US-BOS"), carl)
    assert other.id is not None
    await event(stack, other.id, "requested")
    await svc.act(other.id, "withdraw", carl, {"reason": "The customer went direct."})
    stored = row(stack, other.id)
    assert stored.state is ExceptionState.WITHDRAWN and stored.decided_by is None
    assert stored.decided_at is None and stored.decision_reason is None


# --- the sealed ballot ---------------------------------------------------------------------


async def test_a_redraw_once_the_ballot_is_open_replaces_the_chair_and_the_votes_stand(
    stack: Stack,
) -> None:
    """The votes are published once the ballot opens: a new panel voting afresh would vote
    knowing them. A redraw then replaces only the chair (one gone, one recused)."""
    svc, exception_id = await in_review(stack)
    members, chair = panel_of(stack, exception_id)
    await vote_all(stack, svc, exception_id, "deny")
    opened = await event(stack, exception_id, "ballot_opened")
    with stack.sessions.begin() as session:
        session.add(
            Person(
                id="board.chair2",
                name="Chloe Chair",
                email="chloe.chair@vendor.example",
                role=Role.BOARD,
                calendar="US-NY",
                function="chair",
                organisation="Vendor",
            )
        )
    done = await svc.act(
        exception_id, "redraw", stack.actor("alex.admin"), {"reason": "The chair recused."}
    )
    assert done.message == "the panel will be drawn again"
    asked = [e for e in events(stack, exception_id) if e.action == "redraw_asked"]
    assert asked[0].summary == "a new chair to be drawn; the opened votes stand"
    for _ in range(200):
        if actions(stack, exception_id).count("panel_drawn") == 2:
            break
        await asyncio.sleep(0.05)
    assert panel_of(stack, exception_id) == (members, "board.chair2")
    view = await svc.state(exception_id)
    assert view is not None and view.ballot_open and set(view.voted) == set(members)
    assert actions(stack, exception_id).count("ballot_opened") == 1
    assert "only the chair" in await refused(
        svc, exception_id, "decide", stack.actor(chair), {"choice": "approve", "reason": WHY}
    )
    await svc.act(
        exception_id, "decide", stack.actor("board.chair2"), {"choice": "deny", "reason": WHY}
    )
    assert row(stack, exception_id).state.value == "denied"
    assert opened.detail["votes"]  # the votes published stand as they were


async def test_partners_do_not_read_the_tally(stack: Stack) -> None:
    svc, exception_id = await in_review(stack)
    members, chair = panel_of(stack, exception_id)
    await svc.act(exception_id, "vote", stack.actor(members[0]), {"choice": "deny", "reasons": WHY})
    for member in members[1:]:
        await svc.act(
            exception_id, "vote", stack.actor(member), {"choice": "approve", "reasons": WHY}
        )
    await event(stack, exception_id, "ballot_opened")
    await svc.act(exception_id, "decide", stack.actor(chair), {"choice": "approve", "reason": WHY})
    outside = [event_view(e, insider=False) for e in events(stack, exception_id)]
    leaked = [v["summary"] for v in outside if "to deny" in v["summary"]]
    assert leaked == []


async def test_nothing_of_a_vote_is_readable_before_the_ballot_opens(stack: Stack) -> None:
    svc, exception_id = await in_review(stack)
    members, _ = panel_of(stack, exception_id)
    secret = "My secret reasons: approve because the holder never served Acme."
    await svc.act(
        exception_id, "vote", stack.actor(members[0]), {"choice": "approve", "reasons": secret}
    )
    await event(stack, exception_id, "vote_cast")
    with stack.sessions.read() as session:
        stored = session.get(ChannelException, exception_id)
        assert stored is not None
        everything = repr(stored.model_dump()) + repr(
            [e.model_dump() for e in events(stack, exception_id)]
        )
        mail = session.exec(select(OutboxMessage)).all()
    assert "secret reasons" not in everything and "approve" not in everything.replace(
        "to approve", ""
    )
    assert not any("secret reasons" in m.text_body for m in mail)
    view = await svc.state(exception_id)
    assert view is not None and view.votes == () and view.voted == (members[0],)
    # A redraw sets the sealed vote aside without opening it.
    await svc.act(exception_id, "redraw", stack.actor("alex.admin"), {"reason": "New panel now."})
    await asyncio.sleep(1)
    assert not any("secret reasons" in repr(e.detail) for e in events(stack, exception_id))


async def test_objection_texts_stay_with_the_board(stack: Stack) -> None:
    svc, exception_id = await requested(stack)
    text = "Our confidential objection: we serve Acme under contract 4711."
    await svc.act(exception_id, "object", stack.actor("nora@northwind.example"), {"reason": text})
    await stack.env.sleep(timedelta(days=8))
    await event(stack, exception_id, "panel_drawn")
    await stack.mail_settled()
    outside = [event_view(e, insider=False) for e in events(stack, exception_id)]
    assert text not in repr(outside)
    inside = [event_view(e, insider=True) for e in events(stack, exception_id)]
    assert text in repr(inside)
    with stack.sessions.read() as session:
        mail = session.exec(select(OutboxMessage)).all()
    assert not any("contract 4711" in (m.text_body + (m.html_body or "")) for m in mail)


# --- ended roles ---------------------------------------------------------------------------


async def test_a_panelist_whose_role_changed_or_a_contact_who_moved_cannot_act(
    stack: Stack,
) -> None:
    svc, exception_id = await requested(stack)
    nora = stack.actor("nora@northwind.example")
    with stack.sessions.begin() as session:
        contact = session.exec(
            select(PartnerContact).where(PartnerContact.email == "nora@northwind.example")
        ).one()
        contact.partner_id = "contoso"  # moved to the partner who asked
        session.add(contact)
    with pytest.raises(Exception, match="no longer acts for northwind"):
        await svc.act(exception_id, "object", nora, {"reason": "We object as northwind."})
    moved = stack.actor("nora@northwind.example")
    assert moved.partner_id == "contoso"
    assert "only a partner this exception affects" in await refused(
        svc, exception_id, "object", moved, {"reason": "We object as contoso now."}
    )
    await stack.env.sleep(timedelta(days=8))
    await event(stack, exception_id, "panel_drawn")
    members, _chair = panel_of(stack, exception_id)
    voter = stack.actor(members[0])
    with stack.sessions.begin() as session:
        person = session.get(Person, members[0])
        assert person is not None
        person.role = Role.ADMIN
        session.add(person)
    with pytest.raises(Exception, match="no longer an active board"):
        await svc.act(exception_id, "vote", voter, {"choice": "approve", "reasons": WHY})
    assert "only a member of this exception's panel may vote" in await refused(
        svc, exception_id, "vote", stack.actor(members[0]), {"choice": "approve", "reasons": WHY}
    )


async def test_a_board_member_who_owns_the_territory_or_declared_a_conflict_is_not_drawn(
    stack: Stack,
) -> None:
    with stack.sessions.read() as session:
        board = [
            p.id for p in session.exec(select(Person).where(Person.role == Role.BOARD)) if p.active
        ]
    svc, exception_id = await in_review(stack)
    first, chair = panel_of(stack, exception_id)
    owner, conflicted = first[0], first[-1]
    with stack.sessions.begin() as session:
        territory = session.get(Territory, "US-NY-METRO")
        assert territory is not None
        territory.owner_person_id = owner
        session.add(territory)
        person = session.get(Person, conflicted)
        assert person is not None
        person.declared_conflicts = [*person.declared_conflicts, "northwind"]
        session.add(person)
    await svc.act(exception_id, "redraw", stack.actor("alex.admin"), {"reason": "Re-screen all."})
    # The board has one member per function: without them no panel can be seated.
    incomplete = await event(stack, exception_id, "panel_incomplete")
    assert "owns the contested territory:US-NY-METRO" in incomplete.summary, incomplete.summary
    assert "declared a conflict with Northwind" in incomplete.summary, incomplete.summary
    view = await svc.state(exception_id)
    assert view is not None and view.awaiting_panel and view.panel == ()
    assert board and chair == "board.chair"


async def test_a_request_of_a_partner_deactivated_after_asking_does_not_go_to_the_board(
    stack: Stack,
) -> None:
    svc, exception_id = await requested(stack)
    with stack.sessions.begin() as session:
        partner = session.get(Partner, "contoso")
        assert partner is not None
        partner.active = False
        session.add(partner)
    with pytest.raises(Exception, match="no longer acts for contoso"):
        await svc.act(
            exception_id,
            "withdraw",
            stack.actor("carl@contoso.example"),
            {"reason": "We take it back."},
        )
    await stack.env.sleep(timedelta(days=8))
    await asyncio.sleep(1)
    assert "panel_drawn" not in actions(stack, exception_id)


async def test_a_contact_deactivated_since_signing_in_cannot_request(stack: Stack) -> None:
    svc = service(stack)
    carl = stack.actor("carl@contoso.example")
    with stack.sessions.begin() as session:
        contact = session.exec(
            select(PartnerContact).where(PartnerContact.email == "carl@contoso.example")
        ).one()
        contact.active = False
        session.add(contact)
    with pytest.raises(Exception, match="no longer acts for contoso"):
        await svc.request(request(), carl)
    with stack.sessions.read() as session:
        assert session.exec(select(ChannelException)).all() == []


# --- the recovery pass ---------------------------------------------------------------------


async def test_one_stranded_request_that_cannot_start_does_not_hold_up_the_others(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from temporalio.service import RPCError, RPCStatusCode

    svc = service(stack)
    real_start = stack.client.start_workflow

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    with stack.sessions.begin() as session:
        session.add(
            Territory(
                code="US-BOS",
                name="Boston",
                partner_id="northwind",
                exclusive=True,
                countries=["US"],
            )
        )
    monkeypatch.setattr(stack.client, "start_workflow", unreachable)
    carl = stack.actor("carl@contoso.example")
    poisoned = await svc.request(request(), carl)
    healthy = await svc.request(request(territory="US-BOS"), carl)
    monkeypatch.setattr(stack.client, "start_workflow", real_start)
    assert poisoned.id is not None and healthy.id is not None
    # An operator ran (and terminated) something under the first request's workflow id.
    stray = await stack.client.start_workflow(
        "NoSuchWorkflow", id=exception_workflow_id(poisoned.id), task_queue="nobody-listens"
    )
    await stray.terminate("operator")
    try:
        started = await svc.start_stranded(older_than=timedelta(0))
    except Exception as exc:
        started = [f"raised {type(exc).__name__}"]  # type: ignore[list-item]
    assert healthy.id in started, started


async def test_the_recovery_pass_and_the_original_start_at_once_run_one_workflow(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = service(stack)
    real_start = stack.client.start_workflow
    go = asyncio.Event()
    calls = 0

    async def slow_first(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await go.wait()
        return await real_start(*args, **kwargs)

    monkeypatch.setattr(stack.client, "start_workflow", slow_first)
    asked = asyncio.create_task(svc.request(request(), stack.actor("carl@contoso.example")))
    for _ in range(200):
        if calls:
            break
        await asyncio.sleep(0.02)
    assert await svc.start_stranded(older_than=timedelta(0)) != []
    go.set()
    made = await asked
    assert made.id is not None
    await event(stack, made.id, "requested")
    await stack.env.sleep(timedelta(hours=1))
    await asyncio.sleep(0.5)
    assert actions(stack, made.id) == ["requested"]
    await stack.mail_settled()
    assert len(mail_to(stack, "nora@northwind.example")) == 1


# --- outages -------------------------------------------------------------------------------


async def test_a_step_whose_activity_fails_after_committing_is_recorded_and_mailed_once(
    stack_outage: Stack,
) -> None:
    stack = stack_outage
    svc, exception_id = await requested(stack)
    await svc.act(
        exception_id, "object", stack.actor("nora@northwind.example"), {"reason": "We object."}
    )
    await stack.env.sleep(timedelta(days=8))
    await event(stack, exception_id, "panel_drawn")
    await stack.mail_settled()
    assert actions(stack, exception_id) == [
        "requested",
        "objected",
        "objections_closed",
        "panel_drawn",
    ]
    assert len(mail_to(stack, "nora@northwind.example")) == 1
    assert len(mail_to(stack, "carl@contoso.example")) == 1
    assert FAILED_AFTER_COMMIT  # the outage really happened, on each step


FAILED_AFTER_COMMIT: list[str] = []


@pytest.fixture
async def stack_outage(
    monkeypatch: pytest.MonkeyPatch,
    env: Any,
    sqlite_url: str,
    smtp: Any,
    tmp_path: Any,
) -> Any:
    """A stack whose record activity commits each step, then fails once (the connection
    dropped before it answered): the retry must find it recorded."""
    from temporalio import activity

    from tests.conftest import running_stack

    original = ExceptionActivities.record_exception_step
    FAILED_AFTER_COMMIT.clear()

    @functools.wraps(original)
    def flaky(self: ExceptionActivities, step: ExceptionStep) -> Any:
        result = original(self, step)
        if step.action not in FAILED_AFTER_COMMIT:
            FAILED_AFTER_COMMIT.append(step.action)
            raise ConnectionError("server closed the connection unexpectedly")
        return result

    # functools.wraps copied the original's activity definition; the wrapper gets its own.
    del flaky.__dict__["__temporal_activity_definition"]
    monkeypatch.setattr(
        ExceptionActivities,
        "record_exception_step",
        activity.defn(name="record_exception_step")(flaky),
    )
    async with running_stack(env, sqlite_url, smtp, tmp_path) as harness:
        yield harness


# --- hostile text reaching the mail --------------------------------------------------------


async def test_crlf_in_a_partner_s_name_and_the_chair_s_reasons_never_becomes_a_header(
    stack: Stack,
) -> None:
    with stack.sessions.begin() as session:
        partner = session.get(Partner, "contoso")
        assert partner is not None
        partner.name = "Contoso\r\nBcc: evil@attacker.example\r\nX-Injected: yes"
        session.add(partner)
    svc, exception_id = await in_review(stack)
    await vote_all(stack, svc, exception_id)
    await event(stack, exception_id, "ballot_opened")
    _, chair = panel_of(stack, exception_id)
    reason = "Approved.\r\nBcc: evil@attacker.example\r\nSubject: hijacked\r\n\r\n\u202eevil"
    await svc.act(
        exception_id, "decide", stack.actor(chair), {"choice": "approve", "reason": reason}
    )
    await stack.mail_settled()
    assert stack.mail.to("evil@attacker.example") == []
    delivered = stack.mail.to("nora@northwind.example")
    assert delivered
    for message in delivered:
        assert message["X-Injected"] is None and "hijacked" not in str(message["Subject"])
        assert "\n" not in str(message["Subject"])


# --- at the same moment --------------------------------------------------------------------


async def test_two_objections_of_one_partner_at_once_record_one(stack: Stack) -> None:
    svc, exception_id = await requested(stack)
    nora = stack.actor("nora@northwind.example")
    results = await asyncio.gather(
        *(
            svc.act(exception_id, "object", nora, {"reason": f"Objection number {n}."})
            for n in range(4)
        ),
        return_exceptions=True,
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    assert len(done) == 1, results
    assert all(isinstance(r, ExceptionRefused) for r in results if r not in done), results
    assert actions(stack, exception_id).count("objected") == 1


async def test_a_vote_and_a_redraw_at_once_leave_a_coherent_ballot(stack: Stack) -> None:
    svc, exception_id = await in_review(stack)
    members, _ = panel_of(stack, exception_id)
    for member in members[:-1]:
        await svc.act(exception_id, "vote", stack.actor(member), {"choice": "deny", "reasons": WHY})
    results = await asyncio.gather(
        svc.act(exception_id, "vote", stack.actor(members[-1]), {"choice": "deny", "reasons": WHY}),
        svc.act(exception_id, "redraw", stack.actor("alex.admin"), {"reason": "Redraw it now."}),
        return_exceptions=True,
    )
    assert not any(
        isinstance(r, BaseException) and not isinstance(r, ExceptionRefused) for r in results
    ), results
    voted, redrawn = results
    assert not isinstance(redrawn, BaseException), results
    if isinstance(voted, ExceptionRefused):
        # The redraw first: the last vote is refused, a new panel votes afresh.
        await until_true(lambda: actions(stack, exception_id).count("panel_drawn") == 2)
        view = await svc.state(exception_id)
        assert view is not None and view.voted == () and not view.ballot_open
    else:
        # The vote first: the ballot opened, so only the chair is replaced (the board of one
        # chair has none to seat: the admins are asked) and the opened votes stand.
        await event(stack, exception_id, "panel_incomplete")
        view = await svc.state(exception_id)
        assert view is not None and view.ballot_open and set(view.voted) == set(members)
        assert view.chair is None
    assert row(stack, exception_id).state is ExceptionState.IN_REVIEW


async def test_a_decision_and_a_withdrawal_at_once_end_it_once(stack: Stack) -> None:
    svc, exception_id = await in_review(stack)
    await vote_all(stack, svc, exception_id)
    await event(stack, exception_id, "ballot_opened")
    _, chair = panel_of(stack, exception_id)
    results = await asyncio.gather(
        svc.act(exception_id, "withdraw", stack.actor("alex.admin"), {"reason": "Admin stops it."}),
        svc.act(exception_id, "decide", stack.actor(chair), {"choice": "approve", "reason": WHY}),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    ends = [a for a in actions(stack, exception_id) if a in ("approved", "withdrawn")]
    assert len(ends) == 1 and row(stack, exception_id).state.value == ends[0]
    view = await svc.state(exception_id)
    assert view is not None and view.state.value == ends[0]


async def test_a_decision_at_the_deadline_is_recorded_once_with_the_overdue_notice(
    stack: Stack,
) -> None:
    svc, exception_id = await in_review(stack)
    due = row(stack, exception_id).decision_due_at
    assert due is not None
    await stack.env.sleep(timedelta(days=16))
    await event(stack, exception_id, "decision_overdue")
    _, chair = panel_of(stack, exception_id)
    await svc.act(exception_id, "decide", stack.actor(chair), {"choice": "deny", "reason": WHY})
    assert actions(stack, exception_id)[-3:] == ["ballot_opened", "decision_overdue", "denied"]
    await stack.env.sleep(timedelta(days=70))
    await asyncio.sleep(0.5)
    assert actions(stack, exception_id)[-1] == "denied"
    assert row(stack, exception_id).state is ExceptionState.DENIED
