"""What a party reads of the engine's own troubles: that something is held up and who is on it,
not the screening behind it (a board member's or mediator's declared conflicts and loads) nor a
partner system's address and raw answer. Staff read the entries whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.disputes.access import Standing, Viewer, visible_events
from models.enums import DisputeCategory, DisputeStage, Role, VoteOutcome
from models.payloads import Actor, RemedyProgress
from models.tables import DisputeEvent
from tests.platform.test_wording import _state
from web.views import filtered_state

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOOK = "https://crm.vendor.example/hooks/accord?token=s3cret"

# Each entry: what the workflow records, and what must never reach a party of it.
ENTRIES = {
    "no_eligible_mediator": (
        "no eligible mediator: Kenji Sato declared a conflict with Contoso Systems; "
        "Maria Lopez has 12 open cases (limit 10)",
        ("Kenji", "conflict", "open cases"),
    ),
    "panel_incomplete": (
        "too few eligible board members: no sales (Sergio Sales declared a conflict with "
        "Contoso Systems; Beatrice Sales sat on the first panel)",
        ("Sergio", "Beatrice", "conflict"),
    ),
    "remedy_failed": (
        f"remedy 1 (commission_split) could not be applied: RemedyRefused: {HOOK} answered "
        '422: {"error": "deal DR-2026-0042 locked by jdoe"}',
        (HOOK, "crm.vendor", "422", "jdoe", "RemedyRefused"),
    ),
    # Its summary says nothing private; its content lists each remedy's last error.
    "remedy_overdue": (
        "the remedy deadline passed with remedies still outstanding; escalated to the admins",
        (HOOK,),
    ),
}


def _event(seq: int, action: str, summary: str) -> DisputeEvent:
    return DisputeEvent(
        dispute_number="DSP-2026-000001",
        seq=seq,
        step=seq,
        at=AT,
        actor_id="accord",
        actor_role=Role.SYSTEM,
        action=action,
        content={"summary": summary, "reason": summary, "remedies": [{"error": HOOK}]},
        prev_hash="0" * 64,
        hash="1" * 64,
    )


def _viewer(role: Role, partner: str | None = None) -> Viewer:
    actor = Actor(id="someone", role=role, partner_id=partner)
    return Viewer(actor=actor, login="someone@example")


EVENTS = [_event(i, action, summary) for i, (action, (summary, _)) in enumerate(ENTRIES.items())]


@pytest.mark.parametrize("action", ENTRIES)
def test_a_party_reads_that_it_is_held_up_not_the_screening_or_the_target_s_answer(
    action: str,
) -> None:
    party = _viewer(Role.PARTNER, "northwind")
    shown = {e.action: e for e in visible_events(party, Standing.PARTY, EVENTS, {})}
    assert action in shown, "the party is still told it happened"
    content = repr(shown[action].content)
    summary, secrets = ENTRIES[action]
    for secret in secrets:
        assert secret not in content, (secret, content)
    assert shown[action].content["summary"], "the party is told something"
    # The stored entry is untouched: the trail's hash covers it.
    assert next(e for e in EVENTS if e.action == action).content["summary"] == summary


@pytest.mark.parametrize(
    "standing", [Standing.MEDIATOR, Standing.OVERSIGHT, Standing.PANELIST], ids=str
)
def test_staff_read_the_entries_whole(standing: Standing) -> None:
    staff = _viewer(Role.ADMIN if standing is Standing.OVERSIGHT else Role.MEDIATOR)
    shown = {e.action: e for e in visible_events(staff, standing, EVENTS, {})}
    for action, (summary, _) in ENTRIES.items():
        assert shown[action].content["summary"] == summary


def test_a_party_reads_a_failed_remedy_s_state_not_the_target_s_answer() -> None:
    state = _state(
        DisputeStage.REMEDY, DisputeCategory.DEAL_REGISTRATION, VoteOutcome.UPHOLD
    ).model_copy(
        update={
            "remedies": (
                RemedyProgress(
                    position=0,
                    kind="commission_split",
                    state="failed",
                    adapter="webhook:commission_split",
                    error=f"RemedyRefused: {HOOK} answered 422",
                ),
            )
        }
    )
    party = filtered_state(_viewer(Role.PARTNER, "northwind"), Standing.PARTY, state)
    assert HOOK not in repr(party.remedies) and "422" not in repr(party.remedies)
    assert party.remedies[0].state == "failed"
    admin = filtered_state(_viewer(Role.ADMIN), Standing.OVERSIGHT, state)
    assert admin.remedies[0].error == f"RemedyRefused: {HOOK} answered 422"
