"""A request for an exception to the rules of engagement, checked before anything is stored or
started (issue 20, item 5: "an exception request outside the playbook's rules is refused with
the rule"), on SQLite and PostgreSQL: each refusal names the field and the rule, and what the
playbook and the channel data allow is prepared with the partners it affects."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import select

from accord.channel import exceptions
from accord.channel.exceptions import ExceptionRefused, ExceptionRequest, end_of
from accord.platform.db import SessionFactory
from accord.platform.settings import REPO_ROOT
from accord.playbooks.library import Playbook, PlaybookError, PlaybookLibrary, load_playbook
from models.enums import ExceptionState
from models.payloads import ExceptionStep
from models.tables import Account, ChannelException, ExceptionEvent, Territory

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
REASON = "The customer's head office buys only through Northwind under its master agreement."


def playbook() -> Playbook:
    return PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").get("2026.2")


def ask(**overrides: Any) -> ExceptionRequest:
    fields: dict[str, Any] = {
        "partner_id": "northwind",
        "clause": "RoE 4.2",
        "territory": "DACH",
        "until": "2027-01-31",
        "reason": REASON,
    }
    fields.update(overrides)
    return ExceptionRequest.model_validate(fields)


@pytest.fixture
def channel(sessions: SessionFactory) -> SessionFactory:
    with sessions.begin() as session:
        session.add(Territory(code="OPEN-1", name="Open land", partner_id="contoso"))
        session.add(
            Account(code="ACC-7", name="Initech GmbH", partner_id="contoso", territory_code="DACH")
        )
        session.add(Account(code="ACC-8", name="Globex", partner_id=None, territory_code="OPEN-1"))
    return sessions


def refusal(sessions: SessionFactory, request: ExceptionRequest, now: datetime = NOW) -> str:
    with sessions.read() as session, pytest.raises(ExceptionRefused) as caught:
        exceptions.prepare(session, playbook(), request, requested_by="nora@n.example", now=now)
    return str(caught.value)


def test_an_exclusive_territory_is_excepted_for_the_partner_who_asks(
    channel: SessionFactory,
) -> None:
    with channel.read() as session:
        prepared = exceptions.prepare(
            session, playbook(), ask(), requested_by="nora@n.example", now=NOW
        )
    row = prepared.row
    assert row.affected_partner_ids == ["contoso"] and row.scope_kind == "territory"
    assert row.clause == "RoE 4.2 Exclusive territories are served only by their holder"
    assert row.state is ExceptionState.REQUESTED and row.playbook_version == "2026.2"
    # The end of its last day on the board calendar (US-NY): 05:00 UTC the next day.
    assert row.expires_at == datetime(2027, 2, 1, 5, 0, tzinfo=UTC)
    assert (prepared.objection_days, prepared.decision_days) == (5, 10)
    # An account inside the territory: its holder is affected; a named account: its partner.
    with channel.read() as session:
        by_account = exceptions.prepare(
            session,
            playbook(),
            ask(territory=None, account="ACC-7"),
            requested_by="x",
            now=NOW,
        )
        named = exceptions.prepare(
            session,
            playbook(),
            ask(clause="RoE 3.4", territory=None, account="ACC-7"),
            requested_by="x",
            now=NOW,
        )
    assert by_account.row.affected_partner_ids == ["contoso"]
    assert named.row.affected_partner_ids == ["contoso"]
    assert named.row.clause.startswith("RoE 3.4 A named account")


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (
            {"clause": "RoE 3.1"},
            "clause: RoE 3.1 may not be excepted under playbook 2026.2: the board may except "
            "RoE 4.2 (account, territory); RoE 3.4 (account)",
        ),
        ({"clause": "no such rule"}, "clause: no such rule may not be excepted"),
        (
            {"clause": "RoE 3.4"},
            "territory: RoE 3.4 may be excepted for account only (playbook 2026.2)",
        ),
        ({"until": "2026-12-07"}, "until: 2026-12-07 is not after today (2026-12-07)"),
        (
            {"until": "2027-12-08"},
            "until: an exception lasts at most 365 days under playbook 2026.2: until 2027-12-07 "
            "at the latest",
        ),
        ({"partner_id": "nobody"}, "partner_id: 'nobody' is not an active partner"),
        ({"partner_id": "direct"}, "partner_id: the vendor's direct sales is bound by the rules"),
        ({"territory": "MARS"}, "territory: no territory 'MARS' in the channel data"),
        ({"territory": None, "account": "NOPE"}, "account: no account 'NOPE' in the channel data"),
        (
            {"territory": "OPEN-1"},
            "territory: RoE 4.2 protects no other partner at territory OPEN-1: there is nothing "
            "to except",
        ),
        (
            {"partner_id": "contoso"},
            "territory: RoE 4.2 protects no other partner at territory DACH",
        ),
        (
            {"clause": "RoE 3.4", "territory": None, "account": "ACC-8"},
            "account: RoE 3.4 protects no other partner at account ACC-8",
        ),
    ],
)
def test_a_request_outside_the_playbook_s_rules_is_refused_with_the_rule(
    channel: SessionFactory, overrides: dict[str, Any], said: str
) -> None:
    assert refusal(channel, ask(**overrides)).startswith(said)
    with channel.read() as session:
        assert session.exec(select(ChannelException)).first() is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"reason": "Because."}, "reason"),
        ({"reason": "NUL \x00 in the reason of the request"}, "reason"),
        ({"reason": "x" * 5001}, "reason"),
        ({"clause": "RoE\x00 4.2"}, "clause"),
        ({"account": "ACC-7"}, "name one account or one territory"),
        ({"territory": None}, "name one account or one territory"),
        ({"until": "someday"}, "until"),
        ({"partner_id": "p" * 65}, "partner_id"),
        ({"extra": "field"}, "extra"),
    ],
)
def test_malformed_requests_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ask(**overrides)
    assert field in str(caught.value)


def test_the_same_request_twice_is_refused_while_the_first_is_open_or_in_force(
    channel: SessionFactory,
) -> None:
    with channel.begin() as session:
        first = exceptions.prepare(session, playbook(), ask(), requested_by="x", now=NOW).row
        session.add(first)
    assert refusal(channel, ask()) == (
        f"territory: requested exception EXC-{first.id} already covers RoE 4.2 at territory "
        "DACH for northwind"
    )
    with channel.begin() as session:
        row = session.get(ChannelException, first.id)
        assert row is not None
        row.state = ExceptionState.APPROVED
    assert "approved exception" in refusal(channel, ask())
    # Once it has expired (its date passed), the same exception may be asked for again.
    later = datetime(2027, 2, 2, 12, 0, tzinfo=UTC)
    with channel.read() as session:
        again = exceptions.prepare(
            session, playbook(), ask(until="2027-03-01"), requested_by="x", now=later
        )
    assert again.row.until == date(2027, 3, 1)


def test_a_step_is_recorded_once_however_often_it_is_tried(channel: SessionFactory) -> None:
    with channel.begin() as session:
        row = exceptions.prepare(session, playbook(), ask(), requested_by="x", now=NOW).row
        session.add(row)
    assert row.id is not None
    step = ExceptionStep(
        exception_id=row.id,
        step=1,
        at=NOW,
        actor="nora@n.example",
        action="requested",
        summary="requested",
        detail={"reason": "NUL-free text é 中文"},
        state=ExceptionState.REQUESTED,
        objections_close_at=NOW + timedelta(days=7),
    )
    for _ in range(2):
        with channel.begin() as session:
            exceptions.record(session, step)
    with channel.read() as session:
        (event,) = session.exec(select(ExceptionEvent)).all()
        stored = session.get(ChannelException, row.id)
    assert event.detail == {"reason": "NUL-free text é 中文"}
    assert stored is not None and stored.objections_close_at == NOW + timedelta(days=7)


def test_end_of_a_day_is_the_next_midnight_on_the_board_calendar() -> None:
    assert end_of(date(2027, 7, 4), "America/New_York") == datetime(2027, 7, 5, 4, 0, tzinfo=UTC)


def test_a_playbook_that_lets_the_board_except_a_clause_it_has_no_table_for_is_refused(
    tmp_path: Any,
) -> None:
    text = (REPO_ROOT / "playbooks" / "2026.2.yaml").read_text()
    broken = text.replace(
        '{clause: "RoE 3.4", scopes: [account]}', '{clause: "RoE 9.9", scopes: [account]}'
    )
    assert broken != text
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert str(caught.value).endswith(
        "engagement: Value error, exceptions.clauses[1].clause: RoE 9.9 is not a clause of the "
        "decision tables"
    )
    nowhere = text.replace("scopes: [account]}", "scopes: [planet]}")
    path.write_text(nowhere)
    with pytest.raises(PlaybookError, match="scopes"):
        load_playbook(path)
