"""Deadlines that cannot be computed as the playbook says, and extensions after a pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from temporalio.exceptions import ApplicationError

from accord.platform.settings import REPO_ROOT
from accord.playbooks.calendar import BusinessCalendar
from accord.playbooks.library import PlaybookError, PlaybookLibrary
from activities.deadlines import BUILT_IN_CALENDAR, DeadlineActivities
from models.enums import DisputeStage, Role, TaskKind, TaskState
from models.payloads import (
    AcceptAssignment,
    AnswerInformation,
    DeadlineRequest,
    DisputeState,
    ExtendDeadline,
    ExtendDeadlineRequest,
    RequestInformation,
)
from models.tables import Partner, Person, Task
from tests.conftest import Stack
from tests.workflows.test_dispute_paths import DECLARATION, in_mediation, offered
from workflows.dispute import DisputeWorkflow

ADMINS = "channel-admins@vendor.example"
LIBRARY = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks")


def request(
    calendar: str, starts_at: datetime, days: int, version: str = "2026.1"
) -> DeadlineRequest:
    return DeadlineRequest(
        purpose="mediation",
        calendar=calendar,
        playbook_version=version,
        starts_at=starts_at,
        business_days=days,
        warning_fractions=(0.5, 0.8),
    )


# --- the activity ----------------------------------------------------------------------------


def test_calendar_arithmetic_that_cannot_work_fails_for_good_instead_of_retrying() -> None:
    with pytest.raises(ApplicationError) as refused:
        DeadlineActivities(LIBRARY).compute_deadline(
            request("US-NY", datetime(2026, 12, 1, 15, tzinfo=UTC), 0)
        )
    assert refused.value.type == "DeadlineError" and refused.value.non_retryable
    assert "days must be at least 1" in refused.value.message


def test_the_built_in_calendar_needs_no_playbook_and_knows_no_holidays() -> None:
    activities = DeadlineActivities(LIBRARY)
    with pytest.raises(ApplicationError, match=r"'1999\.1' is not available"):
        activities.compute_deadline(
            request("US-NY", datetime(2026, 12, 24, tzinfo=UTC), 1, "1999.1")
        )
    deadline = activities.compute_deadline(
        request(BUILT_IN_CALENDAR, datetime(2026, 12, 24, 10, tzinfo=UTC), 1, "1999.1")
    )
    assert deadline.due_at == datetime(2026, 12, 25, 17, tzinfo=UTC)
    assert "(UTC, Mon-Fri 09:00-17:00, no holidays)" in deadline.explanation


def test_an_extension_puts_only_the_warnings_not_yet_sent_on_the_remaining_window() -> None:
    activities = DeadlineActivities(LIBRARY)
    calendar = BusinessCalendar("DE-BY", LIBRARY.get("2026.1").calendars["DE-BY"])
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    deadline = activities.compute_deadline(request("DE-BY", start, 15))
    half, _ = deadline.warnings
    extended_at = half.at + timedelta(days=1, hours=2)
    extended = activities.extend_deadline(
        ExtendDeadlineRequest(
            deadline=deadline,
            business_days=3,
            reason="The CFO is on leave",
            playbook_version="2026.1",
            warnings_from=extended_at,
            warned=(0.5,),
        )
    )
    kept, moved = extended.warnings
    assert kept == half
    remaining = calendar.business_seconds_between(extended_at, extended.due_at)
    assert calendar.business_seconds_between(extended_at, moved.at) == pytest.approx(
        0.8 * remaining, abs=1
    )
    assert "the warnings not yet sent (80 %) are at those shares of the remaining" in (
        extended.explanation
    )


def give_mediators_calendar(stack: Stack, calendar: str) -> None:
    """As if the directory had been imported under a playbook that defines `calendar`."""
    with stack.sessions.begin() as session:
        for person in session.exec(select(Person).where(Person.role == Role.MEDIATOR)).all():
            person.calendar = calendar
            session.add(person)


def deadline_tasks(state: DisputeState) -> list[str]:
    return sorted(
        t.key.split(":", 1)[1] for t in state.open_tasks if t.kind is TaskKind.RESOLVE_DEADLINE
    )


def task_state(stack: Stack, key: str) -> TaskState | None:
    with stack.sessions.read() as session:
        task = session.get(Task, key)
        return task.state if task is not None else None


async def test_a_mediator_calendar_missing_from_the_playbook_falls_back_to_the_board_calendar(
    stack: Stack,
) -> None:
    give_mediators_calendar(stack, "ATLANTIS")
    number = (await stack.file()).number

    mediator = await offered(stack, number)
    state = await stack.state(number)
    acceptance = state.deadlines[0]
    assert acceptance.purpose == "acceptance" and acceptance.calendar == "US-NY"
    assert acceptance.business_days == 2
    assert "2 business days on the US-NY calendar" in acceptance.explanation
    assert "'ATLANTIS' is not defined in playbook 2026.2" in acceptance.explanation
    assert deadline_tasks(state) == ["accept-1-deadline"]
    problem = await stack.wait_for_event(number, "deadline_fallback")
    assert problem.content["purpose"] == "acceptance"
    assert problem.content["calendar"] == "ATLANTIS" and problem.content["used"] == "US-NY"
    assert "'ATLANTIS' is not defined in playbook 2026.2" in problem.content["reason"]
    mail = await stack.mail.wait_for(ADMINS, "deadline is not as the playbook sets it")
    assert "ATLANTIS" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # The offer runs on the fallback and is accepted; mediation falls back the same way.
    await stack.handle(number).execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=stack.actor(mediator), impartiality_declaration=DECLARATION),
    )
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    mediation = state.deadlines[0]
    assert mediation.calendar == "US-NY" and mediation.business_days == 15
    assert deadline_tasks(state) == ["mediate-deadline"]
    await stack.wait_for_event(number, "deadline_fallback", count=2)
    assert task_state(stack, f"{number}:accept-1-deadline") is TaskState.DONE

    # An admin extending the deadline has dealt with it.
    await stack.handle(number).execute_update(
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(
            actor=stack.actor("alex.admin"),
            business_days=2,
            reason="Two days for the mediator's holidays the board calendar does not know",
        ),
    )
    state = await stack.state(number)
    assert deadline_tasks(state) == []
    await stack.wait_for_event(number, "deadline_extended")
    assert task_state(stack, f"{number}:mediate-deadline") is TaskState.DONE


async def test_a_party_calendar_missing_from_the_playbook_still_pauses_the_clock(
    stack: Stack,
) -> None:
    with stack.sessions.begin() as session:
        contoso = session.get(Partner, "contoso")
        assert contoso is not None
        contoso.calendar = "ATLANTIS"
        session.add(contoso)
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)

    asked = await stack.handle(number).execute_update(
        DisputeWorkflow.request_information,
        RequestInformation(
            actor=stack.actor(mediator), party_id="contoso", questions="Send the registration form."
        ),
    )
    state = await stack.state(number)
    assert state.stage is DisputeStage.AWAITING_PARTY and state.clock_paused
    owed = next(d for d in state.deadlines if d.purpose == f"information:{asked.reference}")
    assert owed.calendar == "US-NY" and "'ATLANTIS' is not defined" in owed.explanation
    assert deadline_tasks(state) == [f"info-{asked.reference}-deadline"]
    await stack.mail.wait_for(ADMINS, "deadline is not as the playbook sets it")

    # The answer closes the party's task and the admins' task about its deadline.
    await stack.handle(number).execute_update(
        DisputeWorkflow.answer_information,
        AnswerInformation(
            actor=stack.actor("carl@contoso.example"),
            request_id=asked.reference or "",
            answer="Attached to this message.",
        ),
    )
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    assert deadline_tasks(state) == []


async def test_without_its_playbook_a_deadline_runs_on_the_built_in_weekday_calendar(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(version: str) -> Any:
        raise PlaybookError(f"playbook version {version!r} is not available")

    # The worker was deployed without the playbook the dispute pinned.
    monkeypatch.setattr(stack.services.playbooks, "get", unavailable)
    number = (await stack.file()).number

    await offered(stack, number)
    state = await stack.state(number)
    acceptance = state.deadlines[0]
    assert acceptance.calendar == "built-in"
    assert "2 business days on the built-in calendar" in acceptance.explanation
    assert "playbook version '2026.2' is not available" in acceptance.explanation
    # The rules of engagement cannot be applied either: said, and the dispute goes on.
    unapplied = await stack.wait_for_event(number, "recommendation")
    assert unapplied.content["purpose"] == "triage"
    assert unapplied.content["error"] == "playbook version '2026.2' is not available"
    assert state.recommendation is None
    problem = await stack.wait_for_event(number, "deadline_fallback")
    assert problem.content["used"] == "built-in"
    assert deadline_tasks(state) == ["accept-1-deadline"]


async def test_an_extension_after_a_pause_warns_at_shares_of_the_remaining_running_window(
    stack: Stack,
) -> None:
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    asked = await handle.execute_update(
        DisputeWorkflow.request_information,
        RequestInformation(
            actor=stack.actor(mediator), party_id="contoso", questions="Who called Acme first?"
        ),
    )
    await stack.env.sleep(timedelta(days=2, hours=3))
    await handle.execute_update(
        DisputeWorkflow.answer_information,
        AnswerInformation(
            actor=stack.actor("carl@contoso.example"),
            request_id=asked.reference or "",
            answer="We did, on 9 November.",
        ),
    )
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    resumed = state.deadlines[0]
    half = next(w for w in resumed.warnings if w.fraction == 0.5)

    # The 50 % warning is sent on the resumed window; then an admin extends it.
    await stack.env.sleep(half.at - await stack.env.get_current_time() + timedelta(hours=1))
    await stack.wait_for_event(number, "deadline_warning")
    await handle.execute_update(
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(
            actor=stack.actor("alex.admin"), business_days=3, reason="Contoso's CFO is on leave"
        ),
    )
    extension = await stack.wait_for_event(number, "deadline_extended")
    extended_at = datetime.fromisoformat(extension.content["warnings_from"])
    extended = (await stack.state(number)).deadlines[0]
    assert extended.due_at > resumed.due_at

    playbook = stack.services.playbooks.get(state.playbook_version)
    calendar = BusinessCalendar(extended.calendar, playbook.calendars[extended.calendar])
    remaining = calendar.business_seconds_between(extended_at, extended.due_at)
    sent, late = extended.warnings
    assert sent == half, "a warning already sent keeps its instant"
    assert late.fraction == 0.8
    assert calendar.business_seconds_between(extended_at, late.at) == pytest.approx(
        0.8 * remaining, abs=1
    )
    # Not 80 % of the whole window from the start, which counts the pause as running time.
    whole = calendar.point_at_fraction(extended.starts_at, extended.due_at, 0.8)
    assert abs((whole - late.at).total_seconds()) > 3600
    assert "remaining running window" in extended.explanation

    await stack.env.sleep(extended.due_at - await stack.env.get_current_time() + timedelta(hours=1))
    await stack.wait_for_event(number, "deadline_passed")
    events = stack.events(number)
    warnings = [e for e in events if e.action == "deadline_warning"]
    assert [w.content["fraction"] for w in warnings] == [0.5, 0.8]
    assert abs((warnings[0].at - half.at).total_seconds()) < 1
    assert abs((warnings[1].at - late.at).total_seconds()) < 1, "80 % not at the exact instant"
    passed = next(e for e in events if e.action == "deadline_passed")
    assert abs((passed.at - extended.due_at).total_seconds()) < 1


async def test_a_pause_that_cannot_be_measured_leaves_the_deadline_and_tells_the_admins(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    before = (await stack.state(number)).deadlines[0]
    asked = await stack.handle(number).execute_update(
        DisputeWorkflow.request_information,
        RequestInformation(
            actor=stack.actor(mediator), party_id="contoso", questions="Who called Acme first?"
        ),
    )

    def broken(*_: Any) -> float:
        raise ValueError("holiday data for 2026 could not be read")

    # From here on, the business time of the pause cannot be measured.
    monkeypatch.setattr(BusinessCalendar, "business_seconds_between", broken)
    await stack.env.sleep(timedelta(days=1))
    await stack.handle(number).execute_update(
        DisputeWorkflow.answer_information,
        AnswerInformation(
            actor=stack.actor("carl@contoso.example"),
            request_id=asked.reference or "",
            answer="We did, on 9 November.",
        ),
    )
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    after = state.deadlines[0]
    assert after.due_at == before.due_at and after.warnings == before.warnings
    assert "not moved: the pause could not be measured" in after.explanation
    assert deadline_tasks(state) == ["mediate-deadline"]
    problem = await stack.wait_for_event(number, "deadline_not_moved")
    assert "holiday data for 2026 could not be read" in problem.content["reason"]
    await stack.wait_for_event(number, "clock_resumed")
    await stack.mail.wait_for(ADMINS, "mediation deadline is not as")


async def test_the_review_and_appeal_deadlines_on_a_fallback_close_their_admin_tasks_with_them(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody can extend a review or appeal deadline, so the admins' task about a fallback one
    is told, then closes when the work it timed is done: the ruling, the appeal window."""
    from tests.workflows.test_formal_review import ruled

    library = stack.services.playbooks
    real = library.get

    def without_the_board_calendar(version: str) -> Any:
        # The worker's copy of the playbook lacks the board calendar (an edited file deployed).
        playbook = real(version)
        calendars = {k: v for k, v in playbook.calendars.items() if k != "US-NY"}
        return playbook.model_copy(update={"calendars": calendars})

    monkeypatch.setattr(library, "get", without_the_board_calendar)
    number = await ruled(stack)
    fallbacks = [
        e.content["purpose"] for e in stack.events(number) if e.action == "deadline_fallback"
    ]
    assert "review" in fallbacks and "appeal" in fallbacks
    state = await stack.state(number)
    assert deadline_tasks(state) == ["deadline-appeal"]  # the review's closed with the ruling
    assert task_state(stack, f"{number}:ruling-1-deadline") is TaskState.DONE
    due = next(d for d in state.deadlines if d.purpose == "appeal").due_at
    await stack.env.sleep(due - await stack.env.get_current_time() + timedelta(hours=1))
    await stack.wait_for_event(number, "appeal_window_closed")
    assert task_state(stack, f"{number}:deadline-appeal") is TaskState.DONE
