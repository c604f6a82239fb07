"""Activities against SQLite and PostgreSQL: idempotent, chained, screened."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from accord.directory.records import Directory, PersonRecord
from accord.platform.db import SessionFactory, make_engine
from accord.rules.audit import GENESIS, ITEMISED, first_broken_link, gap_content
from activities.assignment import AssignmentActivities, PanelActivities
from activities.records import RecordActivities
from models.enums import (
    AssignmentState,
    DisputeCategory,
    DisputeStage,
    ObjectKind,
    Role,
    TaskKind,
    TaskState,
)
from models.payloads import (
    SYSTEM,
    ContestedObject,
    EventRecord,
    MediatorRequest,
    NotificationRequest,
    PanelRequest,
    RecordAssignment,
    Recorded,
    SeatRelease,
    TaskOpen,
    UnrecordedStep,
)
from models.tables import (
    Assignment,
    Dispute,
    DisputeEvent,
    DisputeLive,
    DisputeLiveNote,
    OutboxMessage,
    Person,
    Task,
)
from notifications.outbox import Outbox
from notifications.render import TemplateCatalog
from tests.conftest import seed

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    return seeded_sessions(database_url)


def seeded_sessions(database_url: str) -> SessionFactory:
    """The demo directory and one dispute in triage, on `database_url`."""
    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    add_dispute(factory, "DSP-2026-000009", DisputeStage.TRIAGE)  # what `request()` asks about
    return factory


def dispute_row(
    number: str, stage: DisputeStage = DisputeStage.FILED, amount: str = "10.00", **fields: Any
) -> Dispute:
    """A pricing dispute of Northwind against Contoso, as the read model holds one; `fields`
    replace any of its values."""
    values: dict[str, Any] = {
        "number": number,
        "category": DisputeCategory.PRICING,
        "claimant_id": "northwind",
        "respondent_ids": ["contoso"],
        "party_key": "contoso|northwind",
        "contested_objects": [{"kind": "account", "ref": "ACME-001"}],
        "summary": "Pricing undercut",
        "facts": "Contoso quoted below floor.",
        "desired_remedy": "Rebate",
        "amount_at_stake": Decimal(amount),
        "currency": "USD",
        "occurred_on": date(2026, 11, 20),
        "stage": stage,
        "playbook_version": "2026.1",
        "filed_by": "nora@northwind.example",
        "filed_at": NOW,
        "updated_at": NOW,
    }
    return Dispute(**{**values, **fields})


def add_dispute(
    sessions: SessionFactory, number: str, stage: DisputeStage = DisputeStage.FILED
) -> None:
    with sessions.begin() as session:
        session.add(dispute_row(number, stage))


def event(number: str, step: int, **extra: object) -> EventRecord:
    return EventRecord(
        number=number,
        step=step,
        at=NOW + timedelta(minutes=step),
        actor=SYSTEM,
        action=f"step_{step}",
        content={"summary": f"step {step}", "n": step},
        **extra,
    )  # type: ignore[arg-type]


def trail(sessions: SessionFactory, number: str) -> list[DisputeEvent]:
    """The dispute's audit entries in chain order."""
    with sessions.read() as session:
        return list(
            session.exec(
                select(DisputeEvent)
                .where(DisputeEvent.dispute_number == number)
                .order_by(col(DisputeEvent.seq))
            ).all()
        )


def test_audit_trail_is_chained_idempotent_and_projects_the_read_model(
    sessions: SessionFactory,
) -> None:
    add_dispute(sessions, "DSP-2026-000001")
    records = RecordActivities(sessions)
    first = records.record_event(event("DSP-2026-000001", 1))
    assert records.record_event(event("DSP-2026-000001", 1)) == first  # a retry changes nothing
    records.record_event(
        event(
            "DSP-2026-000001",
            2,
            stage=DisputeStage.TRIAGE,
            mediator_id="maria.lopez",
            assignment=RecordAssignment(
                round=1, person_id="maria.lopez", state=AssignmentState.OFFERED
            ),
        )
    )
    records.record_event(event("DSP-2026-000001", 3, stage=DisputeStage.CLOSED, outcome="settled"))
    with sessions.read() as session:
        events = session.exec(select(DisputeEvent).order_by(DisputeEvent.seq)).all()  # type: ignore[arg-type]
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[1].prev_hash == events[0].hash
        assert first_broken_link(events) is None
        dispute = session.get(Dispute, "DSP-2026-000001")
        assert (
            dispute is not None
            and dispute.stage is DisputeStage.CLOSED
            and dispute.closed_at is not None
        )
        assert dispute.mediator_id == "maria.lopez" and dispute.outcome == "settled"
        assignment = session.exec(select(Assignment)).one()
        assert assignment.state is AssignmentState.OFFERED
        maria = session.get(Person, "maria.lopez")
        assert maria is not None and maria.last_assigned_at == NOW + timedelta(minutes=2)


def test_steps_that_never_got_an_entry_are_recorded_as_a_gap_in_the_chain(
    sessions: SessionFactory,
) -> None:
    """A step refused for good (or lost with a restore) no longer stops every later entry."""
    from temporalio.exceptions import ApplicationError

    number = "DSP-2026-000002"
    add_dispute(sessions, number)
    records = RecordActivities(sessions)
    records.record_event(event(number, 1))
    refused = UnrecordedStep(step=3, action="evidence_added", reason="no stored content")
    fifth = event(number, 5, unrecorded=(refused,))
    recorded = records.record_event(fifth)
    assert records.record_event(fifth) == recorded  # a retry writes neither entry again
    with sessions.read() as session:
        events = list(session.exec(select(DisputeEvent).order_by(col(DisputeEvent.seq))).all())
    assert [(e.seq, e.step, e.action) for e in events] == [
        (1, 1, "step_1"),
        (2, None, "audit_gap"),
        (3, 5, "step_5"),
    ]
    assert recorded.seq == 3 and recorded.hash == events[2].hash
    assert first_broken_link(events) is None
    gap = events[1].content
    assert gap["missing_steps"] == [2, 4]
    assert gap["refused"] == [
        {"step": 3, "action": "evidence_added", "reason": "no stored content"}
    ]
    assert "steps 2-4" in gap["summary"]
    # A step already counted as missing (a late attempt that outlived its timeout) is refused.
    with pytest.raises(ApplicationError, match="step 4 of DSP-2026-000002 is already recorded as"):
        records.record_event(event(number, 4))


def test_two_attempts_of_one_step_at_once_write_its_entry_and_its_gap_once(
    sessions: SessionFactory,
) -> None:
    """An attempt that outlived its timeout and its retry, both writing after a gap."""
    number = "DSP-2026-000008"
    add_dispute(sessions, number)
    records = RecordActivities(sessions)
    records.record_event(event(number, 1))
    together = threading.Barrier(2)

    def attempt(_: int) -> Recorded:
        together.wait()
        return records.record_event(event(number, 3))

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(attempt, range(2))
    assert first == second
    events = trail(sessions, number)
    assert [(e.seq, e.step, e.action) for e in events] == [
        (1, 1, "step_1"),
        (2, None, "audit_gap"),
        (3, 3, "step_3"),
    ]
    assert first_broken_link(events) is None and first.seq == 3


def test_a_gap_past_the_itemised_refusals_says_the_rest_are_not_itemised() -> None:
    refused = [{"step": n, "action": "note_added", "reason": "x"} for n in range(1, ITEMISED + 1)]
    summary = gap_content(1, ITEMISED + 5, refused)["summary"]
    assert summary.startswith(f"steps 1-{ITEMISED + 5} not recorded (note_added refused: x;")
    assert summary.endswith("; 5 more not itemised: refused too, or lost after being recorded)")
    assert "restore" not in summary


def test_a_record_scheduled_by_an_older_worker_unwedges_a_dispute_stuck_on_a_missing_entry(
    sessions: SessionFactory,
) -> None:
    """Before steps, the workflow sent `seq` and a refused entry left the next one retrying
    'entry N missing' for ever: that pending task, as stored in Temporal, now goes through."""
    number = "DSP-2026-000010"
    add_dispute(sessions, number)
    records = RecordActivities(sessions)
    records.record_event(event(number, 1))
    stored = event(number, 3).model_dump(mode="json")
    stored["seq"] = stored.pop("step")
    del stored["unrecorded"]
    recorded = records.record_event(EventRecord.model_validate(stored))
    events = trail(sessions, number)
    assert [(e.seq, e.step, e.action) for e in events] == [
        (1, 1, "step_1"),
        (2, None, "audit_gap"),
        (3, 3, "step_3"),
    ]
    assert recorded.seq == 3 and first_broken_link(events) is None


def test_the_first_entry_after_a_trail_lost_entirely_starts_with_the_gap(
    sessions: SessionFactory,
) -> None:
    number = "DSP-2026-000006"
    add_dispute(sessions, number)
    RecordActivities(sessions).record_event(event(number, 3))
    with sessions.read() as session:
        events = list(session.exec(select(DisputeEvent).order_by(col(DisputeEvent.seq))).all())
    assert [(e.seq, e.action) for e in events] == [(1, "audit_gap"), (2, "step_3")]
    assert events[0].prev_hash == GENESIS and events[0].content["missing_steps"] == [1, 2]
    assert first_broken_link(events) is None


def test_the_database_refuses_to_alter_the_audit_trail(sessions: SessionFactory) -> None:
    add_dispute(sessions, "DSP-2026-000003")
    RecordActivities(sessions).record_event(event("DSP-2026-000003", 1))
    for statement in ("UPDATE dispute_event SET action = 'forged'", "DELETE FROM dispute_event"):
        with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as session:
            session.execute(text(statement))


def test_the_audit_trail_cannot_be_truncated_or_replaced_in_place(
    sessions: SessionFactory,
) -> None:
    number = "DSP-2026-000007"
    add_dispute(sessions, number)
    RecordActivities(sessions).record_event(event(number, 1))
    with sessions.read() as session:
        entry = session.exec(
            select(DisputeEvent).where(DisputeEvent.dispute_number == number)
        ).one()
    values = {"id": entry.id, "n": number, "at": entry.at, "h": "f" * 64, "g": GENESIS}
    columns = (
        "(id, dispute_number, seq, at, actor_id, actor_role, action, content, prev_hash, hash)"
    )
    forged = "(:id, :n, 1, :at, 'mallory', 'admin', 'forged', '{}', :g, :h)"
    if sessions.engine.dialect.name == "postgresql":
        statements = [
            "TRUNCATE dispute_event",
            "TRUNCATE dispute CASCADE",
            f"INSERT INTO dispute_event {columns} VALUES {forged} "
            "ON CONFLICT (id) DO UPDATE SET action = 'forged'",
        ]
    else:
        # REPLACE deletes the old row without firing DELETE triggers (recursive_triggers is off).
        statements = [
            f"INSERT OR REPLACE INTO dispute_event {columns} VALUES {forged}",
            f"REPLACE INTO dispute_event {columns} VALUES {forged}",
            f"INSERT OR REPLACE INTO dispute_event {columns} VALUES "
            "(NULL, :n, 1, :at, 'mallory', 'admin', 'forged', '{}', :g, :h)",
        ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as session:
            session.execute(text(statement), values)
    with sessions.read() as session:
        kept = session.exec(select(DisputeEvent).where(DisputeEvent.dispute_number == number)).all()
    assert [(e.id, e.action, e.hash) for e in kept] == [(entry.id, entry.action, entry.hash)]


def test_tampering_is_detected_at_the_first_broken_link(sessions: SessionFactory) -> None:
    add_dispute(sessions, "DSP-2026-000004")
    records = RecordActivities(sessions)
    for seq in (1, 2, 3):
        records.record_event(event("DSP-2026-000004", seq))
    with sessions.read() as session:
        events = list(session.exec(select(DisputeEvent).order_by(DisputeEvent.seq)).all())  # type: ignore[arg-type]
    events[1].content = {**events[1].content, "n": 99}
    assert first_broken_link(events) == 2


def test_tasks_open_and_close_with_their_audit_entry_once(sessions: SessionFactory) -> None:
    add_dispute(sessions, "DSP-2026-000005")
    records = RecordActivities(sessions)
    task = TaskOpen(
        key="DSP-2026-000005:mediate",
        number="DSP-2026-000005",
        kind=TaskKind.MEDIATE,
        title="mediate",
        assignee_id="maria.lopez",
        assignee_role=Role.MEDIATOR,
        due_at=NOW + timedelta(days=3),
        at=NOW,
    )
    opened = event("DSP-2026-000005", 1, open_tasks=(task,))
    records.record_event(opened)
    records.record_event(opened)  # a retry opens nothing twice
    records.record_event(event("DSP-2026-000005", 2, done_tasks=(task.key,)))
    records.record_event(event("DSP-2026-000005", 3, cancelled_tasks=(task.key,)))
    with sessions.read() as session:
        rows = session.exec(select(Task)).all()
        assert len(rows) == 1 and rows[0].state is TaskState.DONE  # done stays done
        assert rows[0].closed_at == NOW + timedelta(minutes=2)


def request(**overrides: object) -> MediatorRequest:
    fields: dict[str, object] = {
        "number": "DSP-2026-000009",
        "round": 1,
        "party_ids": ("northwind", "contoso"),
        "contested_objects": (ContestedObject(kind=ObjectKind.DEAL_REGISTRATION, ref="DR-1"),),
        "excluded_person_ids": (),
        "at": NOW,
    }
    fields.update(overrides)
    return MediatorRequest.model_validate(fields)


def test_mediator_screening_and_ranking(sessions: SessionFactory) -> None:
    assign = AssignmentActivities(sessions)
    # Everyone idle and unloaded: ties go by id, so Greta (no conflict with these parties) first.
    assert assign.assign_mediator(request()).person_id == "greta.hoffmann"
    # Greta declared a conflict with Adatum.
    assert (
        assign.assign_mediator(request(party_ids=("adatum", "litware"))).person_id == "kenji.sato"
    )
    # Maria owns the contested account ACME-001; Greta is excluded after recusing.
    choice = assign.assign_mediator(
        request(
            contested_objects=(ContestedObject(kind=ObjectKind.ACCOUNT, ref="ACME-001"),),
            excluded_person_ids=("greta.hoffmann", "kenji.sato", "sam.okafor"),
        )
    )
    assert choice.person_id is None
    assert "Maria Lopez owns the contested account:ACME-001" in choice.reason
    assert "Greta Hoffmann recused or let an earlier offer" in choice.reason


def test_least_loaded_wins_then_longest_idle(sessions: SessionFactory) -> None:
    records = RecordActivities(sessions)
    for i, person in enumerate(["greta.hoffmann", "kenji.sato"], start=1):
        number = f"DSP-2026-00010{i}"
        add_dispute(sessions, number, DisputeStage.MEDIATION)
        records.record_event(
            event(
                number,
                1,
                assignment=RecordAssignment(
                    round=1, person_id=person, state=AssignmentState.ACCEPTED
                ),
            )
        )
    assign = AssignmentActivities(sessions)
    # Greta and Kenji carry a case each; Maria and Sam none, never assigned: Maria by id.
    assert assign.assign_mediator(request()).person_id == "maria.lopez"
    # The workflow does not offer that round after all: Maria's seat is free again.
    assign.release_seat(SeatRelease(number="DSP-2026-000009", round=1, person_id="maria.lopez"))
    with sessions.begin() as session:
        maria = session.get(Person, "maria.lopez")
        sam = session.get(Person, "sam.okafor")
        assert maria and sam
        maria.last_assigned_at = NOW
        sam.last_assigned_at = NOW - timedelta(days=30)
        session.add_all([maria, sam])
    assert assign.assign_mediator(request(round=2)).person_id == "sam.okafor"  # idle longest


def mediator(person_id: str, **fields: object) -> PersonRecord:
    return PersonRecord.model_validate(
        {
            "id": person_id,
            "name": person_id.replace(".", " ").title(),
            "email": f"{person_id}@vendor.example",
            "role": Role.MEDIATOR,
            "calendar": "US-NY",
            **fields,
        }
    )


def territory(code: str) -> tuple[ContestedObject, ...]:
    return (ContestedObject(kind=ObjectKind.TERRITORY, ref=code),)


def test_whoever_works_for_the_holder_of_a_contested_exclusive_territory_is_not_neutral(
    sessions: SessionFactory,
) -> None:
    # Adatum holds Bavaria (DE-BY) exclusively; Fabrikam holds Northern California, not
    # exclusively. Neither is a party to a dispute between Northwind and Contoso.
    seed(
        sessions,
        Directory(
            people=[
                mediator("ines.adatum", organisation="adatum"),
                mediator("finn.fabrikam", organisation="fabrikam"),
            ]
        ),
    )
    assign = AssignmentActivities(sessions)
    refused = assign.assign_mediator(
        request(chosen_person_id="ines.adatum", contested_objects=territory("DE-BY"))
    )
    assert refused.person_id is None
    assert (
        "Ines Adatum works for Adatum GmbH, which holds the contested exclusive territory:DE-BY"
        in refused.reason
    )
    # Not contested here, or not exclusive: no stake that bars them.
    for person_id, code in [("ines.adatum", "US-CA-NORTH"), ("finn.fabrikam", "US-CA-NORTH")]:
        choice = assign.assign_mediator(
            request(chosen_person_id=person_id, contested_objects=territory(code))
        )
        assert choice.person_id == person_id, choice.reason


def test_against_direct_sales_the_vendors_sales_people_are_not_neutral(
    sessions: SessionFactory,
) -> None:
    seed(sessions, Directory(people=[mediator("sol.sales", function="sales")]))
    assign = AssignmentActivities(sessions)
    for parties in [("northwind", "direct-sales"), ("direct-sales", "contoso")]:
        refused = assign.assign_mediator(request(chosen_person_id="sol.sales", party_ids=parties))
        assert refused.person_id is None
        assert (
            "Sol Sales is in the vendor's sales function, and Vendor Direct Sales"
            " (the vendor's direct sales) is a party" in refused.reason
        )
    # Between two partners the same person may mediate.
    assert assign.assign_mediator(request(chosen_person_id="sol.sales")).person_id == "sol.sales"
    # The board's sales member is screened alike; the other functions still sit.
    panel = PanelActivities(sessions).draw_panel(
        PanelRequest(
            number="DSP-2026-000009",
            party_ids=("northwind", "direct-sales"),
            contested_objects=(),
            excluded_person_ids=(),
            functions=("sales", "marketing", "finance"),
        )
    )
    drawn = {m.person_id for m in panel.members}
    assert "board.sales" not in drawn
    assert {"board.marketing", "board.finance"} <= drawn
    # The sales seat sits this dispute out, said in the panel's reason: no admin could fill it
    # (every vendor sales member is barred alike), so it must not wait for one.
    assert panel.complete, panel.reason
    assert (
        "no sales seat: Vendor Direct Sales (the vendor's direct sales) is a party" in panel.reason
    )


def test_case_limit_and_inactive_people_are_skipped(sessions: SessionFactory) -> None:
    with sessions.begin() as session:
        for person in session.exec(select(Person).where(Person.role == Role.MEDIATOR)).all():
            person.case_limit = 0 if person.id != "sam.okafor" else 5
            person.active = person.id != "kenji.sato"
            session.add(person)
    choice = AssignmentActivities(sessions).assign_mediator(request())
    assert choice.person_id == "sam.okafor"


def test_directory_import_is_idempotent(sessions: SessionFactory) -> None:
    extra = Directory(
        people=[
            PersonRecord(
                id="new.mediator",
                name="New Mediator",
                email="new@vendor.example",
                role=Role.MEDIATOR,
                calendar="US-NY",
            )
        ]
    )
    seed(sessions, extra)
    seed(sessions, extra)
    seed(sessions)
    with sessions.read() as session:
        assert len(session.exec(select(Person).where(Person.id == "new.mediator")).all()) == 1


def test_an_excluded_mediator_is_named_with_what_they_did_on_this_dispute(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        for round_no, person_id, state in [
            (1, "greta.hoffmann", AssignmentState.RECUSED),
            (2, "kenji.sato", AssignmentState.EXPIRED),
        ]:
            session.add(
                Assignment(
                    dispute_number="DSP-2026-000009",
                    round=round_no,
                    person_id=person_id,
                    state=state,
                    assigned_at=NOW,
                )
            )
    choice = AssignmentActivities(sessions).assign_mediator(
        request(
            round=3,
            contested_objects=(ContestedObject(kind=ObjectKind.ACCOUNT, ref="ACME-001"),),
            excluded_person_ids=("greta.hoffmann", "kenji.sato", "sam.okafor"),
        )
    )
    assert choice.person_id is None
    assert "Greta Hoffmann recused from mediating this dispute" in choice.reason
    assert "Kenji Sato let the offer to mediate this dispute expire" in choice.reason
    # Excluded with nothing on record to say why: the general reason.
    assert "Sam Okafor recused or let an earlier offer of this dispute expire" in choice.reason


class NoMail:
    async def send(self, message: object) -> None:
        raise AssertionError("recording never sends")


def recording_outbox(sessions: SessionFactory) -> Outbox:
    return Outbox(
        sessions,
        NoMail(),
        TemplateCatalog(),
        sender="a@b.example",
        domain="b.example",
        base_url="http://accord.example",
    )


def notice(number: str, step: int, template: str, *to: str) -> NotificationRequest:
    return NotificationRequest(
        key=f"{number}:{step}:{template}",
        number=number,
        template=template,
        recipients=to,
        context={
            "number": number,
            "category": "pricing",
            "summary": "Pricing undercut",
            "claimant": "Northwind Traders",
            "respondents": ["Contoso"],
            "stage": "filed",
            "mediator": None,
        },
    )


def test_an_entry_puts_its_mail_in_the_outbox_in_its_own_transaction(
    sessions: SessionFactory,
) -> None:
    """One activity, one transaction: the entry and its emails stand or fall together, and a
    retry adds neither twice."""
    number = "DSP-2026-000011"
    add_dispute(sessions, number)
    records = RecordActivities(sessions, outbox=recording_outbox(sessions))

    def mail() -> list[tuple[str, str]]:
        with sessions.read() as session:
            rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
            return [(r.key, r.template) for r in rows]

    filed = event(
        number,
        1,
        notices=(
            notice(number, 1, "acknowledgement", "nora@northwind.example"),
            notice(number, 1, "respondent_notice", "carl@contoso.example", "dana@contoso.example"),
        ),
    )
    first = records.record_event(filed)
    assert records.record_event(filed) == first  # a retry changes nothing
    assert mail() == [
        (f"{number}:1:acknowledgement:nora@northwind.example", "acknowledgement"),
        (f"{number}:1:respondent_notice:carl@contoso.example", "respondent_notice"),
        (f"{number}:1:respondent_notice:dana@contoso.example", "respondent_notice"),
    ]

    # Refused for good (a terminal dispute cannot move back): neither entry nor mail.
    records.record_event(event(number, 2, stage=DisputeStage.CLOSED, outcome="settled"))
    with pytest.raises(Exception, match="cannot move it"):
        records.record_event(
            event(
                number,
                3,
                stage=DisputeStage.MEDIATION,
                notices=(notice(number, 3, "closure", "x@y"),),
            )
        )
    assert len(mail()) == 3


def test_a_filings_acknowledgement_is_claimed_before_older_mail_once_recorded(
    sessions: SessionFactory,
) -> None:
    """The partner who filed waits for it: the entry names it to its process's relays when
    committed, and they take it before the older mail of other disputes."""
    older, filed = "DSP-2026-000012", "DSP-2026-000013"
    add_dispute(sessions, older)
    add_dispute(sessions, filed)
    outbox = recording_outbox(sessions)
    records = RecordActivities(sessions, outbox=outbox)
    records.record_event(
        event(older, 1, notices=(notice(older, 1, "respondent_notice", "carl@contoso.example"),))
    )
    records.record_event(
        event(filed, 1, notices=(notice(filed, 1, "acknowledgement", "nora@northwind.example"),))
    )
    now = datetime.now(UTC)
    taken = [outbox.claim_next(now), outbox.claim_next(now), outbox.claim_next(now)]
    assert [(c.number, c.template) if c else None for c in taken] == [
        (filed, "acknowledgement"),
        (older, "respondent_notice"),
        None,
    ]


HOSTILE = "nul\x00 rtl\u202e emoji\U0001f600 quote' \"; DROP TABLE dispute_event; --"


def test_an_entry_with_hostile_content_is_stored_and_chained_as_written(
    sessions: SessionFactory,
) -> None:
    """The entry, its live state and its notes are written as statements of their own (not the
    ORM's): NUL, bidi controls, SQL-looking text, deep nesting and bulk go in and come back as
    written, on both databases, and the chain still verifies."""
    from models.enums import NoteVisibility
    from models.payloads import LiveDelta, NoteView

    number = "DSP-2026-000012"
    add_dispute(sessions, number)
    records = RecordActivities(sessions)
    nested: dict[str, Any] = {"leaf": HOSTILE}
    for depth in range(60):
        nested = {f"level{depth}": nested}
    content = {"summary": HOSTILE, "bulk": "x" * 200_000, "nested": nested, "list": [HOSTILE] * 3}
    note = NoteView(
        at=NOW,
        author="maria.lopez",
        text=HOSTILE,
        visibility=NoteVisibility.SHARED,
        caucus_partner_id=None,
    )
    live = LiveDelta(version=1, sections={"summary": HOSTILE, "stage": "filed"}, notes=(note,))
    first = records.record_event(
        EventRecord(
            number=number, step=1, at=NOW, actor=SYSTEM, action="filed", content=content, live=live
        )
    )
    assert not first.live_behind
    follow = LiveDelta(version=2, base=1, notes_from=1, notes=(note,))
    records.record_event(event(number, 2, live=follow))
    events = trail(sessions, number)
    assert events[0].content == content and events[0].hash == first.hash
    assert first_broken_link(events) is None
    with sessions.read() as session:
        stored = session.get(DisputeLive, number)
        notes = session.exec(
            select(DisputeLiveNote.note)
            .where(DisputeLiveNote.dispute_number == number)
            .order_by(col(DisputeLiveNote.position))
        ).all()
    assert stored is not None and stored.version == 2 and stored.state["summary"] == HOSTILE
    assert [n["text"] for n in notes] == [HOSTILE, HOSTILE]


def test_an_entry_changes_only_what_it_names_and_a_task_opened_again_stays_as_it_is(
    sessions: SessionFactory,
) -> None:
    """The dispute's row keeps its deadline through entries that do not name one, loses it to
    the entry that clears it; an empty mediator id clears the mediator; a task key opened again
    by a later entry (a retried step's) keeps the state it reached."""
    from models.payloads import Deadline, WarningPoint

    number = "DSP-2026-000013"
    add_dispute(sessions, number)
    records = RecordActivities(sessions)
    due = NOW + timedelta(days=5)
    deadline = Deadline(
        purpose="triage",
        calendar="default",
        starts_at=NOW,
        due_at=due,
        business_days=3,
        warnings=(WarningPoint(fraction=0.5, at=NOW + timedelta(days=2)),),
        explanation="3 business days",
    )
    task = TaskOpen(
        key=f"{number}:triage",
        number=number,
        kind=TaskKind.MEDIATE,
        title="triage",
        assignee_id=None,
        assignee_role=Role.ADMIN,
        due_at=due,
        at=NOW,
    )

    def row() -> Dispute:
        with sessions.read() as session:
            found = session.get(Dispute, number)
            assert found is not None
            return found

    records.record_event(
        event(
            number,
            1,
            stage=DisputeStage.TRIAGE,
            deadline=deadline,
            mediator_id="maria.lopez",
            open_tasks=(task,),
        )
    )
    records.record_event(event(number, 2, done_tasks=(task.key,)))
    records.record_event(event(number, 3, open_tasks=(task,)))  # opened again: stays done
    kept = row()
    assert kept.stage is DisputeStage.TRIAGE and kept.stage_deadline == due
    assert kept.deadline_explanation == "3 business days"
    assert kept.stage_warning_50_at == NOW + timedelta(days=2) and kept.stage_warning_80_at is None
    assert kept.mediator_id == "maria.lopez" and kept.updated_at == NOW + timedelta(minutes=3)
    records.record_event(event(number, 4, clear_deadline=True, mediator_id=""))
    cleared = row()
    assert cleared.stage_deadline is None and cleared.deadline_explanation is None
    assert cleared.stage_warning_50_at is None and cleared.mediator_id is None
    assert cleared.stage is DisputeStage.TRIAGE and cleared.closed_at is None
    with sessions.read() as session:
        tasks = session.exec(select(Task).where(Task.dispute_number == number)).all()
    assert [(t.state, t.closed_at) for t in tasks] == [(TaskState.DONE, NOW + timedelta(minutes=2))]


def test_mail_stored_in_part_is_completed_and_what_is_pending_is_named_once(
    sessions: SessionFactory,
) -> None:
    """An entry's notice whose email to one recipient is stored already (sent, even) stores
    only the others, and names for sending first only what is still pending."""
    from models.enums import OutboxState

    number = "DSP-2026-000014"
    add_dispute(sessions, number)
    outbox = recording_outbox(sessions)
    filed = notice(number, 1, "acknowledgement", "nora@northwind.example")
    with sessions.begin() as session:
        [stored] = outbox.enqueue_in(session, filed, NOW)
    with sessions.begin() as session:
        sent = session.get(OutboxMessage, stored)
        assert sent is not None
        sent.state = OutboxState.SENT
        session.add(sent)
    both = notice(number, 1, "acknowledgement", "nora@northwind.example", "Ola@Northwind.example")
    with sessions.begin() as session:
        pending = outbox.enqueue_in(session, both, NOW)
    with sessions.begin() as session:
        again = outbox.enqueue_in(session, both, NOW)
    with sessions.read() as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    assert [(r.recipient, r.state) for r in rows] == [
        ("nora@northwind.example", OutboxState.SENT),
        ("Ola@Northwind.example", OutboxState.PENDING),
    ]
    assert pending == again == [rows[1].id]
    assert rows[1].attempts == 0 and rows[1].message_id.endswith("@b.example>")
