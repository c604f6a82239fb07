"""Precedents: the full record, and a partner's anonymised view that names nobody."""

from __future__ import annotations

import json

from sqlmodel import select

from accord.precedents.anonymity import load_population
from accord.precedents.library import anonymised
from models.tables import Precedent
from tests.conftest import Stack
from tests.workflows.test_remedy_stage import settle


async def test_precedent_records_the_timeline_and_an_anonymised_view_names_no_party(
    stack: Stack,
) -> None:
    number = await settle(stack)
    await stack.handle(number).result()
    with stack.sessions.read() as session:
        precedent = session.exec(select(Precedent).where(Precedent.dispute_number == number)).one()
        population = load_population(session, k=2)
    stages = [e["stage"] for e in precedent.timeline if "stage" in e]
    assert stages[:4] == ["filed", "triage", "mediation", "settled"]
    assert {"deadline": "mediation", "result": "met"} in precedent.timeline
    assert [p["partner_id"] for p in precedent.parties] == ["northwind", "contoso"]

    # Two partners of the demo are in NA-East, one platinum, one gold, and Tailspin is alone
    # in NA-West once Fabrikam is shown with Lamna: with k = 2 the three are "in NA".
    view = anonymised(precedent, population)
    text = json.dumps(view).lower()
    for secret in ("northwind", "contoso", "nora@", "carl@"):
        assert secret not in text, secret
    assert view["claimant"] == "a partner in NA"
    assert view["respondents"] == ["a partner in NA"]
    assert "a partner in NA registered the same opportunity" in view["facts"]
