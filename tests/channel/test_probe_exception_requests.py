"""Adversarial probes of exception requests below the workflow (on SQLite and PostgreSQL):
hostile text stored as given, clause strings near the real ones, dates on the board calendar's
DST edges, ids out of range, and two requests racing through the duplicate check.

Each probe that found a defect was a strict xfail naming it, seen failing, until the defect was
mended; now all guard the behaviour they checked."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import select

from accord.channel import exceptions
from accord.channel.exceptions import ExceptionRefused, ExceptionRequest
from accord.governance.exceptions import ExceptionNotFound, ExceptionService
from accord.platform.db import SessionFactory
from accord.platform.settings import REPO_ROOT
from accord.playbooks.library import Playbook, PlaybookLibrary
from models.enums import ExceptionState, Role
from models.payloads import Actor, ExceptionStep
from models.tables import Account, ChannelException, ExceptionEvent, PartnerContact, Territory

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
REASON = "The customer's head office buys only through Northwind under its master agreement."
NORA = Actor(id="nora@n.example", role=Role.PARTNER, partner_id="northwind")


def library() -> PlaybookLibrary:
    return PlaybookLibrary.from_dir(REPO_ROOT / "playbooks")


def playbook() -> Playbook:
    return library().get("2026.2")


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
        # The requester: the directory is asked whether she still acts for northwind.
        session.add(PartnerContact(partner_id="northwind", name="Nora", email="nora@n.example"))
    return sessions


def is_postgres(sessions: SessionFactory) -> bool:
    return sessions.engine.dialect.name == "postgresql"


# --- hostile text ------------------------------------------------------------------------


HOSTILE_REASONS = [
    "x" * 4_980 + " the end of it",  # 4994 characters
    "\u202eRTL override: ti kcor sevah\u202c and Arabic \u0645\u0631\u062d\u0628\u0627 text",
    "Emoji \U0001f600\U0001f469\u200d\U0001f469\u200d\U0001f467 and combining e\u0301 here",
    "Line one of the reason\r\nBcc: attacker@evil.example\r\n\r\nbody injected",
    "Tabs\tand quotes ' \" ; DROP TABLE channel_exception; --",
]


@pytest.mark.parametrize("reason", HOSTILE_REASONS, ids=["long", "rtl", "emoji", "crlf", "sql"])
def test_hostile_reasons_are_stored_exactly_as_given(channel: SessionFactory, reason: str) -> None:
    with channel.begin() as session:
        row = exceptions.prepare(
            session, playbook(), ask(reason=reason), requested_by="nora@n.example", now=NOW
        ).row
        session.add(row)
    with channel.read() as session:
        stored = session.get(ChannelException, row.id)
    assert stored is not None and stored.reason == reason.strip()


@pytest.mark.parametrize(
    ("reason", "field"),
    [
        ("x" * 5_001, "reason"),
        ("y" * 20_000, "reason"),
        ("A long enough reason with a NUL \x00 inside", "reason"),
        ("A long enough reason with a lone surrogate \ud800 inside", "reason"),
        ("   " + "\u200b" * 3 + "   ", "reason"),
    ],
    ids=["5001", "20k", "nul", "surrogate", "blank"],
)
def test_unstorable_reasons_are_refused_naming_the_field(reason: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ask(reason=reason)
    assert field in str(caught.value)


def test_a_reason_of_exactly_5000_characters_is_kept_whole(channel: SessionFactory) -> None:
    reason = "é" * 4_992 + "中文 end!!"
    assert len(reason) == 5_000
    with channel.begin() as session:
        row = exceptions.prepare(
            session, playbook(), ask(reason=reason), requested_by="x", now=NOW
        ).row
        session.add(row)
    with channel.read() as session:
        stored = session.get(ChannelException, row.id)
    assert stored is not None and stored.reason == reason


def test_hostile_audit_detail_round_trips_on_both_databases(channel: SessionFactory) -> None:
    with channel.begin() as session:
        row = exceptions.prepare(session, playbook(), ask(), requested_by="x", now=NOW).row
        session.add(row)
    assert row.id is not None
    detail = {"reason": "\u202e\U0001f600 é 中文\r\nBcc: x@evil.example", "n": 2**53}
    with channel.begin() as session:
        exceptions.record(
            session,
            ExceptionStep(
                exception_id=row.id,
                step=1,
                at=NOW,
                actor="nora@n.example",
                action="objected",
                summary="northwind objected",
                detail=detail,
            ),
        )
    with channel.read() as session:
        (event,) = session.exec(select(ExceptionEvent)).all()
    assert event.detail == detail


# --- clause strings near the real ones ---------------------------------------------------


@pytest.mark.parametrize(
    "clause", ["RoE 4.20", "RoE 4.2.1", "RoE 4", "RoE 42", "XoE 4.2", "4.2", "RoE 14.2"]
)
def test_clauses_that_only_look_like_an_exceptable_one_are_refused(
    channel: SessionFactory, clause: str
) -> None:
    with channel.read() as session, pytest.raises(ExceptionRefused) as caught:
        exceptions.prepare(session, playbook(), ask(clause=clause), requested_by="x", now=NOW)
    assert caught.value.field == "clause"


@pytest.mark.parametrize(
    "clause", ["roe 4.2", " RoE 4.2 ", "ROE 4.2", "RoE4.2", "RoE 4.2 extra words"]
)
def test_spellings_of_the_clause_are_stored_as_the_playbook_words_it(
    channel: SessionFactory, clause: str
) -> None:
    with channel.read() as session:
        row = exceptions.prepare(
            session, playbook(), ask(clause=clause), requested_by="x", now=NOW
        ).row
    assert row.clause == "RoE 4.2 Exclusive territories are served only by their holder"


def test_a_clause_spelled_differently_is_still_a_duplicate(channel: SessionFactory) -> None:
    with channel.begin() as session:
        first = exceptions.prepare(session, playbook(), ask(), requested_by="x", now=NOW).row
        session.add(first)
    with channel.read() as session, pytest.raises(ExceptionRefused, match="already covers"):
        exceptions.prepare(
            session, playbook(), ask(clause=" roe 4.2 whatever "), requested_by="x", now=NOW
        )


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("until", "expires"),
    [
        # The day before DST starts in New York, and the day it starts.
        (date(2027, 3, 13), datetime(2027, 3, 14, 5, 0, tzinfo=UTC)),
        (date(2027, 3, 14), datetime(2027, 3, 15, 4, 0, tzinfo=UTC)),
        # The day before DST ends, and the day it ends.
        (date(2027, 11, 6), datetime(2027, 11, 7, 4, 0, tzinfo=UTC)),
        (date(2027, 11, 7), datetime(2027, 11, 8, 5, 0, tzinfo=UTC)),
    ],
)
def test_an_exception_ends_at_the_board_calendar_s_midnight_across_dst(
    channel: SessionFactory, until: date, expires: datetime
) -> None:
    with channel.read() as session:
        row = exceptions.prepare(
            session, playbook(), ask(until=until.isoformat()), requested_by="x", now=NOW
        ).row
    assert row.expires_at == expires


@pytest.mark.parametrize("until", ["0001-01-01", "1970-01-01", "9999-12-31", "2026-12-06"])
def test_dates_far_away_are_refused_with_the_rule(channel: SessionFactory, until: str) -> None:
    with channel.read() as session, pytest.raises(ExceptionRefused) as caught:
        exceptions.prepare(session, playbook(), ask(until=until), requested_by="x", now=NOW)
    assert caught.value.field == "until"


def test_late_in_the_utc_day_today_is_the_board_calendar_s_today(channel: SessionFactory) -> None:
    # 02:00 UTC on the 8th is still the 7th in New York: the 8th is after today there.
    late = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
    with channel.read() as session:
        row = exceptions.prepare(
            session, playbook(), ask(until="2026-12-08"), requested_by="x", now=late
        ).row
    assert row.until == date(2026, 12, 8)


# --- ids out of range ---------------------------------------------------------------------


@pytest.mark.parametrize("exception_id", [2**63, 2**31], ids=["int64+1", "int32+1"])
async def test_an_id_out_of_range_is_not_found(channel: SessionFactory, exception_id: int) -> None:
    if exception_id == 2**31 and not is_postgres(channel):
        # SQLite's integers are 64-bit: 2**31 is simply not there (as it should be).
        exception_id = 2**63
    svc = ExceptionService(channel, library(), None, task_queue="unused")  # type: ignore[arg-type]
    with pytest.raises(ExceptionNotFound):
        await svc.act(exception_id, "object", NORA, {"reason": "We object to this."})


async def test_an_id_in_range_that_does_not_exist_is_not_found(channel: SessionFactory) -> None:
    svc = ExceptionService(channel, library(), None, task_queue="unused")  # type: ignore[arg-type]
    for missing in (0, -1, 2**31 - 1):
        with pytest.raises(ExceptionNotFound):
            await svc.act(missing, "object", NORA, {"reason": "We object to this."})


# --- two requests at the same moment ------------------------------------------------------


def test_two_identical_requests_racing_through_prepare_store_one(
    channel: SessionFactory, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Both requests run the duplicate check before either stores its row (held on a barrier).
    SQLite's BEGIN IMMEDIATE makes the second wait for the first to commit; PostgreSQL's
    transaction neither locks anything nor has a unique key to refuse the second row."""
    barrier = threading.Barrier(2, timeout=3)
    real = exceptions.prepare

    def held(*args: Any, **kwargs: Any) -> Any:
        prepared = real(*args, **kwargs)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # SQLite: the other request waits for this one's transaction
        return prepared

    monkeypatch.setattr(exceptions, "prepare", held)
    svc = ExceptionService(channel, library(), None, task_queue="unused")  # type: ignore[arg-type]
    outcomes: list[Any] = []

    def one() -> None:
        try:
            outcomes.append(svc._store(ask(), NORA, NOW)[0].id)
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with channel.read() as session:
        stored = session.exec(
            select(ChannelException).where(ChannelException.state == ExceptionState.REQUESTED)
        ).all()
    assert len(stored) == 1, outcomes
    assert sum(isinstance(o, ExceptionRefused) for o in outcomes) == 1, outcomes
