"""The JSON API: every action over HTTP with a personal token, problem bodies naming the field or
the rule, evidence up and down, and schemathesis over the OpenAPI document."""

from __future__ import annotations

import asyncio
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from accord.disputes.operations import OPERATIONS
from models.enums import DisputeStage
from tests.conftest import Stack
from tests.web_harness import api, make_app, served, token_for
from tests.workflows.test_formal_review import PANEL, REASONS

CLAIMANT = "nora@northwind.example"
RESPONDENT = "carl@contoso.example"


def filing(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "respondent_ids": ["contoso"],
        "category": "deal_registration",
        "contested_objects": [{"kind": "deal_registration", "ref": "DR-2026-0042"}],
        "summary": "Contoso registered our Acme deal after we did",
        "facts": "We registered DR-2026-0042 for Acme on 2 November; Contoso a week later.",
        "desired_remedy": "Registration confirmed to Northwind",
        "amount_at_stake": "125000.00",
        "occurred_on": (date.today() - timedelta(days=10)).isoformat(),
        "submission_id": "erp-7781",
    }
    body.update(overrides)
    return body


async def test_filing_over_the_api_is_idempotent_and_errors_name_the_field(stack: Stack) -> None:
    app = make_app(stack)
    async with api(app, token_for(stack, CLAIMANT)) as client:
        first = await client.post("/api/disputes", json=filing())
        assert first.status_code == 201, first.text
        again = await client.post("/api/disputes", json=filing())
        assert again.json()["number"] == first.json()["number"]
        assert again.json()["duplicate"] is True
        bad = await client.post(
            "/api/disputes",
            json=filing(submission_id="x2", amount_at_stake="-1", claimant_id="contoso"),
        )
        assert bad.status_code == 422
        problem = bad.json()
        assert problem["type"] == "urn:accord:problem:validation"
        assert {e["field"] for e in problem["errors"]} == {"amount_at_stake", "claimant_id"}
        unknown = await client.post(
            "/api/disputes", json=filing(submission_id="x3", respondent_ids=["nobody"])
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"].startswith("respondent_ids")
    async with api(app, token_for(stack, "maria.lopez@vendor.example")) as client:
        response = await client.post("/api/disputes", json=filing(submission_id="x4"))
        assert response.status_code == 403


async def test_a_dispute_settles_entirely_over_the_api(stack: Stack) -> None:
    app = make_app(stack)
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        number = (await nora.post("/api/disputes", json=filing())).json()["number"]
        upload = await nora.post(
            f"/api/disputes/{number}/evidence",
            files={
                "files": ("registration.csv", b"deal,date\nDR-2026-0042,2026-11-02\n", "text/csv")
            },
            data={"visibility": "parties", "description": "CRM export"},
        )
        assert upload.status_code == 201, upload.text
        evidence_id = upload.json()["evidence_ids"][0]
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    mediator = f"{state.candidate_mediator_id}@vendor.example"
    async with api(app, token_for(stack, mediator)) as med:
        tasks = (await med.get("/api/tasks")).json()
        assert [(t["dispute_number"], t["kind"], t["sla"]) for t in tasks] == [
            (number, "accept_assignment", "on_time")
        ]
        accepted = await med.post(
            f"/api/disputes/{number}/accept-assignment",
            json={"impartiality_declaration": "No ties to either party or to the outcome."},
        )
        assert accepted.status_code == 200, accepted.text
        bad_offer = await med.post(
            f"/api/disputes/{number}/propose-settlement",
            json={
                "terms": "Split",
                "remedies": [
                    {
                        "kind": "commission_split",
                        "deal_ref": "DR-2026-0042",
                        "shares": {"northwind": 70, "contoso": 20},
                    }
                ],
            },
        )
        assert bad_offer.status_code == 422
        assert "add up to 100" in bad_offer.json()["errors"][0]["message"]
        offer = await med.post(
            f"/api/disputes/{number}/propose-settlement",
            json={
                "terms": "Northwind keeps it; Contoso gets 30%.",
                "remedies": [
                    {
                        "kind": "commission_split",
                        "deal_ref": "DR-2026-0042",
                        "shares": {"northwind": 70, "contoso": 30},
                    }
                ],
            },
        )
        assert offer.status_code == 200, offer.text
        offer_id = offer.json()["reference"]
        downloaded = await med.get(f"/api/disputes/{number}/evidence/{evidence_id}")
        assert downloaded.content.startswith(b"deal,date")
    for login in (CLAIMANT, RESPONDENT):
        async with api(app, token_for(stack, login)) as party:
            detail = (await party.get(f"/api/disputes/{number}")).json()
            assert "respond-to-offer" in detail["actions"]
            answer = await party.post(
                f"/api/disputes/{number}/respond-to-offer",
                json={"offer_id": offer_id, "accept": True},
            )
            assert answer.status_code == 200, answer.text
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.CLOSED)
    async with api(app, token_for(stack, "carol.compliance@vendor.example")) as compliance:
        trail = (await compliance.get(f"/api/disputes/{number}/audit")).json()
        assert trail["intact"] is True
        assert "evidence_added" in [e["action"] for e in trail["entries"]]
        exported = await compliance.get("/api/exports/disputes", params={"format": "csv"})
        assert exported.text.splitlines()[1].startswith(f"{number},deal_registration,closed")


async def test_the_board_votes_and_the_chair_rules_over_the_api(stack: Stack) -> None:
    from tests.workflows.test_formal_review import in_review

    app = make_app(stack)
    number = await in_review(stack)
    await stack.wait_for_event(number, "panel_drawn")
    split = {
        "kind": "commission_split",
        "deal_ref": "DR-2026-0042",
        "shares": {"northwind": 80, "contoso": 20},
    }
    for member in PANEL[:3]:
        email = {
            "board.sales": "b.sales@vendor.example",
            "board.marketing": "m.marketing@vendor.example",
            "board.product": "p.product@vendor.example",
        }[member]
        async with api(app, token_for(stack, email)) as client:
            queue = [t["kind"] for t in (await client.get("/api/tasks")).json()]
            assert "cast_vote" in queue
            voted = await client.post(
                f"/api/disputes/{number}/cast-vote",
                json={"outcome": "uphold", "remedies": [split], "reasons": REASONS},
            )
            assert voted.status_code == 200, voted.text
            # The ballot stays sealed from the other panelists.
            review = (await client.get(f"/api/disputes/{number}")).json()["state"]["review"]
            assert all(v["outcome"] is None for v in review["votes"])
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        refused = await nora.post(
            f"/api/disputes/{number}/issue-ruling",
            json={
                "outcome": "uphold",
                "rationale": "A partner cannot rule on its own dispute, whatever it writes.",
                "votes_relied_on": ["board.sales"],
                "clauses_applied": ["RoE 3.1"],
            },
        )
        assert refused.status_code == 409
    async with api(app, token_for(stack, "c.chair@vendor.example")) as chair:
        ruling = {
            "outcome": "uphold",
            "remedies": [split],
            "rationale": "The first valid registration wins under RoE 3.1; Contoso keeps a share.",
            "votes_relied_on": ["board.sales", "board.marketing"],
            "clauses_applied": ["RoE 3.1"],
        }
        sealed = await chair.post(f"/api/disputes/{number}/issue-ruling", json=ruling)
        assert sealed.status_code == 409
        assert "the ballot is sealed (3 of 5 votes cast)" in sealed.json()["detail"]
        assert "uphold" not in sealed.json()["detail"]
        opened = await chair.post(
            f"/api/disputes/{number}/unseal-ballot", json={"reason": "A quorum has voted."}
        )
        assert opened.status_code == 200, opened.text
        review = (await chair.get(f"/api/disputes/{number}")).json()["state"]["review"]
        assert [v["outcome"] for v in review["votes"]] == ["uphold"] * 3
        ruled = await chair.post(f"/api/disputes/{number}/issue-ruling", json=ruling)
        assert ruled.status_code == 200, ruled.text
        assert ruled.json()["stage"] == "appeal_window"


def test_the_openapi_document_lists_every_action_with_its_problem_body(stack: Stack) -> None:
    app = make_app(stack)
    document = app.openapi()
    paths = document["paths"]
    for op in OPERATIONS.values():
        route = paths[f"/api/disputes/{{number}}/{op.slug}"]["post"]
        assert set(route["responses"]) >= {"200", "401", "403", "404", "409", "422"}
    assert "Problem" in document["components"]["schemas"]


# Each run generates some 3,000 requests (its coverage phase tries every parameter's edges);
# the two run side by side, and get more than the suite's default two minutes on a slow machine.
@pytest.mark.timeout(360)
async def test_schemathesis_finds_no_server_error(stack: Stack, tmp_path: Path) -> None:
    app = make_app(stack)
    number = (await stack.file()).number
    await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.number" = "{number}"\n')
    schemathesis = Path(sys.executable).parent / "schemathesis"

    async def run_as(login: str, base: str) -> str:
        folder = tmp_path / login.split("@")[0]
        folder.mkdir()
        process = await asyncio.create_subprocess_exec(
            str(schemathesis),
            "--config-file",
            str(config),
            "run",
            f"{base}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {token_for(stack, login)}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "8",
            "--phases",
            "coverage,fuzzing",
            "--workers",
            "1",
            "--seed",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=folder,  # its crash cache lands here, not in the repository
        )
        output, _ = await process.communicate()
        text = output.decode()
        assert process.returncode == 0, f"{login}: {text[-4000:]}"
        return text

    async with served(app) as base:
        outputs = await asyncio.gather(
            *(run_as(login, base) for login in ("ada.admin@vendor.example", CLAIMANT))
        )
    for text in outputs:
        assert "passed" in text


async def test_a_party_appeals_from_the_page_citing_evidence_it_uploaded(stack: Stack) -> None:
    from tests.web_harness import messages, signed_in
    from tests.workflows.test_formal_review import in_review, open_ballot, ruling, vote
    from workflows.dispute import DisputeWorkflow

    app = make_app(stack)
    number = await in_review(stack)
    await stack.wait_for_event(number, "panel_drawn")
    for member in PANEL[:3]:
        await vote(stack, number, member)
    await open_ballot(stack, number)
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    carl = await signed_in(app, RESPONDENT)
    uploaded = await carl.post(
        f"/disputes/{number}/evidence",
        {"visibility": "parties", "description": "Acme's email choosing Contoso"},
        files={"files": ("acme-email.txt", b"We chose Contoso on 1 November.", "text/plain")},
    )
    assert uploaded.status_code == 303, uploaded.text
    evidence_id = (await stack.wait_for_event(number, "evidence_added")).content["evidence_id"]
    too_short = await carl.post(
        f"/disputes/{number}/actions/appeal", {"grounds": "Unfair.", "new_evidence": evidence_id}
    )
    assert too_short.status_code == 422
    assert any("at least 20 characters" in m for m in messages(too_short.text))
    assert "Unfair." in too_short.text  # what was typed is kept
    appealed = await carl.post(
        f"/disputes/{number}/actions/appeal",
        {
            "grounds": "Acme chose Contoso before Northwind registered, as the new email shows.",
            "new_evidence": evidence_id,
            "new_evidence-other": "CRM-991 | Contoso's CRM log of the first meeting",
        },
    )
    assert appealed.status_code == 303, appealed.text
    entry = await stack.wait_for_event(number, "appeal_filed")
    cited = {e["ref"] for e in entry.content["new_evidence"]}
    assert cited == {evidence_id, "CRM-991"}


async def test_compliance_exports_precedents_and_audit_entries_for_a_period(stack: Stack) -> None:
    import csv
    import io
    import json
    from datetime import date, timedelta

    from tests.workflows.test_dispute_paths import settled

    app = make_app(stack)
    number = await settled(
        stack, summary='=HYPERLINK("http://evil") summary', facts="=cmd|' /C calc'!A0 facts here"
    )
    today = date.today()
    async with api(app, token_for(stack, "carol.compliance@vendor.example")) as client:
        response = await client.get(
            "/api/exports/precedents", params={"format": "csv", "from": today.isoformat()}
        )
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["dispute_number"] for r in rows] == [number]
        assert rows[0]["facts"].startswith("'=cmd")  # a formula is neutralised for spreadsheets
        tomorrow = (today + timedelta(days=1)).isoformat()
        none = await client.get("/api/exports/precedents", params={"from": tomorrow})
        assert json.loads(none.text) == []
        trail = json.loads(
            (await client.get("/api/exports/audit", params={"to": today.isoformat()})).text
        )
        assert {e["dispute_number"] for e in trail} == {number}
        assert [e["seq"] for e in trail] == list(range(1, len(trail) + 1))
        assert all(len(e["hash"]) == 64 for e in trail)
        bad = await client.get("/api/exports/audit", params={"from": "yesterday"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "from"
    async with api(app, token_for(stack, CLAIMANT)) as partner:
        assert (await partner.get("/api/exports/precedents")).status_code == 403
        assert (await partner.get("/api/exports/audit")).status_code == 403


async def test_an_app_a_test_built_is_freed_once_the_test_ends(stack: Stack) -> None:
    """The suite's processes must not keep every app their tests build (forget_built_apps)."""
    import gc
    import weakref

    from tests.conftest import forget_built_apps

    app = make_app(stack)
    async with api(app, token_for(stack, "carol.compliance@vendor.example")) as client:
        assert (await client.get("/api/disputes")).status_code == 200
    built = weakref.ref(app)
    del app, client
    forget_built_apps()
    gc.collect()
    assert built() is None, [type(r).__name__ for r in gc.get_referrers(built())]
