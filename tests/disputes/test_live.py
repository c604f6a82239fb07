"""The live read model's writes (`accord.disputes.live.project_live`): a change applies on top of the
version it was computed from and only there, a whole state over anything older, a repeat is a
no-op, notes are appended and offers replaced by id. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.disputes.live import live_state, project_live
from accord.platform.db import SessionFactory, make_engine
from models.enums import DisputeStage, NoteVisibility
from models.payloads import DisputeState, LiveDelta, NoteView, OfferView
from tests.activities.test_activities import add_dispute
from tests.conftest import seed

NUMBER = "DSP-2026-000042"
AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
WHOLE = {
    "number": NUMBER,
    "stage": "mediation",
    "category": "deal_registration",
    "claimant_id": "northwind",
    "respondent_ids": ["contoso"],
    "mediator_id": "greta.hoffmann",
    "candidate_mediator_id": None,
    "playbook_version": "2026.1",
    "deadlines": [],
    "clock_paused": False,
    "open_tasks": [],
    "linked_filings": [],
    "remedies": [],
    "review": None,
    "rulings": [],
    "similar": None,
    "outcome": None,
}


def note(text: str) -> NoteView:
    return NoteView(
        at=AT,
        author="greta.hoffmann",
        text=text,
        visibility=NoteVisibility.SHARED,
        caucus_partner_id=None,
    )


def offer(offer_id: str, responses: dict[str, bool]) -> OfferView:
    return OfferView(
        id=offer_id, remedies=(), terms="70/30", proposed_at=AT, responses=responses, open=True
    )


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    add_dispute(factory, NUMBER, DisputeStage.MEDIATION)
    return factory


def apply(sessions: SessionFactory, live: LiveDelta) -> bool:
    with sessions.begin() as session:
        return project_live(session, NUMBER, AT, live)


def read(sessions: SessionFactory) -> DisputeState | None:
    with sessions.read() as session:
        return live_state(session, NUMBER)


def test_changes_apply_in_order_and_a_repeat_changes_nothing(sessions: SessionFactory) -> None:
    assert read(sessions) is None
    whole = LiveDelta(
        version=1, sections=WHOLE, notes=(note("one"),), offers=(offer("offer-1", {}),)
    )
    assert apply(sessions, whole)
    change = LiveDelta(
        version=2,
        base=1,
        sections={"clock_paused": True},
        notes_from=1,
        notes=(note("two"),),
        offers=(offer("offer-1", {"contoso": True}), offer("offer-2", {})),
    )
    assert apply(sessions, change)
    assert apply(sessions, change)  # a retry: already there
    state = read(sessions)
    assert state is not None and state.clock_paused and state.stage is DisputeStage.MEDIATION
    assert [n.text for n in state.notes] == ["one", "two"]
    assert [(o.id, o.responses) for o in state.offers] == [
        ("offer-1", {"contoso": True}),
        ("offer-2", {}),
    ]
    assert "respond_to_offer" in [a.value for a in state.allowed_actions["partner"]]


def test_a_change_on_a_version_the_read_model_lacks_is_refused_until_the_whole_state(
    sessions: SessionFactory,
) -> None:
    assert apply(sessions, LiveDelta(version=1, sections=WHOLE, notes=(note("one"),)))
    skipped = LiveDelta(version=3, base=2, sections={"stage": "formal_review"})
    assert not apply(sessions, skipped)
    wrong_notes = LiveDelta(version=2, base=1, notes_from=5, notes=(note("six"),))
    assert not apply(sessions, wrong_notes)
    state = read(sessions)
    assert state is not None and state.stage is DisputeStage.MEDIATION
    assert [n.text for n in state.notes] == ["one"]
    again = {**WHOLE, "stage": "formal_review"}
    assert apply(sessions, LiveDelta(version=4, sections=again, notes=(note("a"), note("b"))))
    assert apply(sessions, LiveDelta(version=2, sections=WHOLE))  # older than stored: a no-op
    state = read(sessions)
    assert state is not None and state.stage is DisputeStage.FORMAL_REVIEW
    assert [n.text for n in state.notes] == ["a", "b"]
