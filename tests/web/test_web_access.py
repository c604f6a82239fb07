"""Every page and API route, tried as every role: each sees exactly what SPEC section 1 allows,
and nothing of another party's dispute leaks through pages, API, exports, attachments or
search. On SQLite and on PostgreSQL: the scopes are SQL."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from models.enums import NoteVisibility
from models.payloads import AddNote
from tests.conftest import Stack
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_dispute_paths import in_mediation
from workflows.dispute import DisputeWorkflow

CLAIMANT = "nora@northwind.example"
RESPONDENT = "carl@contoso.example"
OUTSIDER = "fay@fabrikam.example"
BOARD = "b.sales@vendor.example"
COMPLIANCE = "carol.compliance@vendor.example"
ADMIN = "ada.admin@vendor.example"
MEDIATOR_EMAILS = {
    "maria.lopez": "maria.lopez@vendor.example",
    "kenji.sato": "kenji.sato@vendor.example",
    "greta.hoffmann": "greta.hoffmann@vendor.example",
    "sam.okafor": "sam.okafor@vendor.example",
}
CAUCUS_TEXT = "Private to Northwind: the caucus offer floor is 55 percent"
SUMMARY = "Contoso registered our Acme deal after we did"
EXCEPTION_REASON = "Contoso's New York office serves this customer under its master agreement."


class Scenario:
    """One dispute in mediation, with a caucus note and evidence of each visibility."""

    def __init__(self, stack: Stack, app: FastAPI) -> None:
        self.stack = stack
        self.app = app
        self.number = ""
        self.mediator = ""
        self.evidence: dict[str, str] = {}
        self.channel_import: int | None = None
        self.alert: int | None = None
        self.exception: int | None = None

    async def build(self) -> None:
        filed = await self.stack.file()
        self.number = filed.number
        self.mediator = MEDIATOR_EMAILS[await in_mediation(self.stack, self.number)]
        await self.stack.handle(self.number).execute_update(
            DisputeWorkflow.add_note,
            AddNote(
                actor=self.stack.actor(self.mediator),
                text=CAUCUS_TEXT,
                visibility=NoteVisibility.CAUCUS,
                caucus_partner_id="northwind",
            ),
        )
        uploads = (
            (CLAIMANT, "shared-registration.txt", "parties"),
            (CLAIMANT, "northwind-margins.txt", "neutrals"),
            (RESPONDENT, "contoso-pipeline.txt", "side"),
        )
        for login, filename, visibility in uploads:
            browser = await signed_in(self.app, login)
            response = await browser.post(
                f"/disputes/{self.number}/evidence",
                {"visibility": visibility, "description": filename},
                files={"files": (filename, f"contents of {filename}".encode(), "text/plain")},
            )
            assert response.status_code == 303, response.text
            await browser.close()
        for _ in range(3):
            await self.stack.wait_for_event(self.number, "evidence_added", 3)
        from sqlmodel import select

        from models.tables import Evidence

        with self.stack.sessions.read() as session:
            for item in session.exec(select(Evidence)).all():
                self.evidence[item.filename] = item.id
        from accord.channel.imports import import_file
        from models.enums import ChannelKind, ImportFormat

        self.channel_import = import_file(
            self.stack.sessions,
            kind=ChannelKind.ACCOUNT,
            fmt=ImportFormat.CSV,
            file_name="accounts.csv",
            data=b"external_id,name,partner_id,modified_at\nACC-9,Secret Account,contoso,2026-11-02\n",
            started_by="ada.admin",
        ).id
        import_file(
            self.stack.sessions,
            kind=ChannelKind.REGISTRATION,
            fmt=ImportFormat.CSV,
            file_name="registrations.csv",
            data=(
                b"external_id,partner_id,customer_name,status,registered_at,modified_at\n"
                b"DR-1,contoso,Secret Account Inc,approved,2026-11-01,2026-11-01\n"
                b"DR-2,northwind,Secret Account Corp,approved,2026-11-02,2026-11-02\n"
            ),
            started_by="ada.admin",
        )
        with self.stack.sessions.read() as session:
            from models.tables import ConflictAlert

            self.alert = session.exec(select(ConflictAlert)).one().id
        # An exception contoso (the respondent) asks for, affecting northwind (the claimant).
        from datetime import date, timedelta

        from accord.application import build_exceptions
        from accord.channel.exceptions import ExceptionRequest

        asked = await build_exceptions(self.stack.services, self.stack.client).request(
            ExceptionRequest(
                partner_id="contoso",
                clause="RoE 4.2",
                territory="US-NY-METRO",
                until=date.today() + timedelta(days=30),
                reason=EXCEPTION_REASON,
            ),
            self.stack.actor(RESPONDENT),
        )
        self.exception = asked.id

    def other_mediator(self) -> str:
        return next(e for e in MEDIATOR_EMAILS.values() if e != self.mediator)


@pytest.fixture
async def scenario(stack_on_both: Stack) -> Scenario:
    built = Scenario(stack_on_both, make_app(stack_on_both))
    await built.build()
    return built


# Who may read the exception contoso asked for (it affects northwind).
EXCEPTION_READERS = {"claimant", "respondent", "board", "compliance", "admin"}
# Who may see the dispute at all.
SEES_DISPUTE = {"claimant", "respondent", "mediator", "compliance", "admin"}
ROLES = (
    "claimant",
    "respondent",
    "outsider",
    "mediator",
    "other_mediator",
    "board",
    "compliance",
    "admin",
)


def login_of(scenario: Scenario, role: str) -> str:
    return {
        "claimant": CLAIMANT,
        "respondent": RESPONDENT,
        "outsider": OUTSIDER,
        "mediator": scenario.mediator,
        "other_mediator": scenario.other_mediator(),
        "board": BOARD,
        "compliance": COMPLIANCE,
        "admin": ADMIN,
    }[role]


def expected(route: str, role: str) -> int:
    """The status each role gets from each GET route (pages and API alike)."""
    sees = role in SEES_DISPUTE
    partner = role in ("claimant", "respondent", "outsider")
    match route:
        case "dispute" | "timeline" | "evidence:shared-registration.txt":
            return 200 if sees else 404
        case "evidence:northwind-margins.txt":
            return 200 if role in ("claimant", "mediator", "compliance", "admin") else 404
        case "evidence:contoso-pipeline.txt":
            return 200 if role in ("respondent", "mediator", "compliance", "admin") else 404
        case (
            "audit"
            | "audit-export"
            | "export"
            | "export-precedents"
            | "export-audit"
            | "report"
            | "report-export"
            | "channel-health"
            | "channel-health-export"
        ):
            return 200 if role in ("compliance", "admin") else 403
        case "review":
            return 200 if role == "board" else 403
        case (
            "directory"
            | "playbook"
            | "people"
            | "partners"
            | "intake"
            | "lockouts"
            | "channel-imports"
            | "channel-import"
            | "channel-alerts"
            | "channel-alert"
            | "alert-queue"
        ):
            return 200 if role == "admin" else 403
        case "new":
            return 200 if partner else 403
        case "exceptions":
            return 403 if role in ("mediator", "other_mediator") else 200
        case "exception":
            if role in ("mediator", "other_mediator"):
                return 403
            return 200 if role in EXCEPTION_READERS else 404
        case _:
            return 200


def page_routes(s: Scenario) -> dict[str, str]:
    n = s.number
    return {
        "dispute": f"/disputes/{n}",
        "timeline": f"/disputes/{n}/timeline",
        "audit": f"/disputes/{n}/audit",
        "audit-export": f"/disputes/{n}/audit.csv",
        "export": "/exports/disputes.csv",
        "export-precedents": "/exports/precedents.csv?from=2020-01-01",
        "export-audit": "/exports/audit.json",
        "list": "/disputes",
        "inbox": "/inbox",
        "review": "/review",
        "search": "/search?q=Contoso",
        "directory": "/admin/directory",
        "intake": "/admin/intake",
        "alert-queue": "/admin/alerts?state=open",
        "playbook": "/admin/playbook",
        "account": "/account",
        "new": "/disputes/new",
        "precedent-search": "/search?q=Acme",
        "precedent-library": "/precedents?q=Acme&sla=met",
        "report": "/reports/sla?from=2020-01-01",
        "report-export": "/reports/sla.csv",
        "channel-health": "/reports/channel-health?from=2020-01-01",
        "channel-health-export": "/reports/channel-health.json",
        "exceptions": "/exceptions",
        "exception": f"/exceptions/{s.exception}",
        **{f"evidence:{name}": f"/disputes/{n}/evidence/{eid}" for name, eid in s.evidence.items()},
    }


def api_routes(s: Scenario) -> dict[str, str]:
    n = s.number
    return {
        "me": "/api/me",
        "list": "/api/disputes",
        "dispute": f"/api/disputes/{n}",
        "timeline": f"/api/disputes/{n}/timeline",
        "audit": f"/api/disputes/{n}/audit",
        "audit-export": f"/api/disputes/{n}/audit/export?format=csv",
        "export": "/api/exports/disputes?format=json",
        "export-precedents": "/api/exports/precedents?format=csv",
        "export-audit": "/api/exports/audit?format=json&from=2020-01-01",
        "tasks": "/api/tasks",
        "search": "/api/disputes?q=Contoso",
        "precedents": "/api/precedents?q=Acme",
        "report": "/api/reports/sla?format=csv",
        "channel-health": "/api/reports/channel-health?format=csv",
        "partners": "/api/directory/partners",
        "people": "/api/directory/people",
        "playbook": "/api/playbooks",
        "tokens": "/api/tokens",
        "lockouts": "/api/accounts/lockouts",
        "sign-ins": "/api/account/sign-ins",
        "channel-imports": "/api/channel/imports",
        "channel-import": f"/api/channel/imports/{s.channel_import}",
        "channel-alerts": "/api/channel/alerts",
        "channel-alert": f"/api/channel/alerts/{s.alert}",
        "exceptions": "/api/exceptions",
        "exception": f"/api/exceptions/{s.exception}",
        **{
            f"evidence:{name}": f"/api/disputes/{n}/evidence/{eid}"
            for name, eid in s.evidence.items()
        },
    }


def leaks(scenario: Scenario, role: str, route: str, body: str) -> list[str]:
    """What must not appear in a response this role gets."""
    found = []
    secrets: list[str] = []
    if role not in SEES_DISPUTE:
        secrets += [scenario.number, SUMMARY, "shared-registration.txt"]
    if role not in ("claimant", "mediator", "compliance", "admin"):
        secrets += [CAUCUS_TEXT, "northwind-margins.txt", "contents of northwind-margins"]
    if role not in ("respondent", "mediator", "compliance", "admin"):
        secrets += ["contoso-pipeline.txt", "contents of contoso-pipeline"]
    if role not in EXCEPTION_READERS:
        secrets += [EXCEPTION_REASON, "Contoso&#39;s New York office", "US-NY-METRO"]
    if role != "admin":
        secrets += ["accounts.csv", "ada.admin", "Secret Account"]  # channel data and alerts
    for secret in secrets:
        if secret in body:
            found.append(f"{role} {route}: {secret!r} leaked")
    return found


async def test_every_page_as_every_role(scenario: Scenario) -> None:
    problems: list[str] = []
    for role in ROLES:
        browser = await signed_in(scenario.app, login_of(scenario, role))
        for route, path in page_routes(scenario).items():
            response = await browser.get(path)
            want = expected(route, role)
            if response.status_code != want:
                problems.append(f"{role} GET {path}: {response.status_code}, expected {want}")
            problems += leaks(scenario, role, route, response.text)
        await browser.close()
    assert not problems, "\n".join(problems)


async def test_every_api_route_as_every_role(scenario: Scenario) -> None:
    problems: list[str] = []
    for role in ROLES:
        async with api(scenario.app, token_for(scenario.stack, login_of(scenario, role))) as client:
            for route, path in api_routes(scenario).items():
                response = await client.get(path)
                want = expected(route, role)
                if response.status_code != want:
                    problems.append(f"{role} GET {path}: {response.status_code}, expected {want}")
                if response.status_code >= 400:
                    assert response.headers["content-type"].startswith(
                        "application/problem+json"
                    ), path
                problems += leaks(scenario, role, route, response.text)
    assert not problems, "\n".join(problems)


async def test_the_matrix_covers_every_get_route(scenario: Scenario) -> None:
    """A new route cannot skip the access tests: every GET route is in one of the tables."""
    tried = {
        path.split("?")[0]
        for path in [*page_routes(scenario).values(), *api_routes(scenario).values()]
    }
    tried_templates = {_template(p, scenario) for p in tried}
    exempt = {
        "/",
        "/login",
        "/login/oidc",
        "/auth/oidc",
        "/api/docs",
        "/api/openapi.json",
        "/precedents/{precedent_id}",  # precedents are shown to every signed-in role
        "/disputes/{number}/audit.{fmt}",
        "/admin/intake/{inbound_id}/original",  # admins only: tested in test_intake
        "/exports/disputes.{fmt}",
        "/exports/precedents.{fmt}",  # tried above as .csv
        "/exports/audit.{fmt}",  # tried above as .json
        "/reports/sla.{fmt}",  # tried above as .csv
        "/reports/channel-health.{fmt}",  # tried above as .json
        "/health",  # no sign-in, no data: tested in test_observability
        "/ready",
        "/gate/temporal-ui",  # the proxy's question: test_reverse_proxy, every role
    }
    missing = []
    # FastAPI keeps included routers whole in app.routes: every route is listed through its
    # context (app.routes alone held none of the app's pages, and this check saw nothing).
    for route in iter_route_contexts(scenario.app.routes):
        methods = getattr(route.original_route, "methods", set()) or set()
        path = route.path or ""
        if "GET" in methods and path not in exempt and path not in tried_templates:
            missing.append(path)
    assert not missing, f"GET routes without an access check: {missing}"


def _template(path: str, scenario: Scenario) -> str:
    templated = path.replace(scenario.number, "{number}")
    templated = templated.replace(f"imports/{scenario.channel_import}", "imports/{import_id}")
    templated = templated.replace(f"alerts/{scenario.alert}", "alerts/{alert_id}")
    templated = templated.replace(f"exceptions/{scenario.exception}", "exceptions/{exception_id}")
    for eid in scenario.evidence.values():
        templated = templated.replace(eid, "{evidence_id}")
    return templated


async def test_acting_on_a_dispute_that_is_not_yours_changes_nothing(scenario: Scenario) -> None:
    number = scenario.number
    before = len(scenario.stack.events(number))
    outsider = await signed_in(scenario.app, OUTSIDER)
    response = await outsider.post(
        f"/disputes/{number}/actions/withdraw", {"reason": "not my dispute at all"}
    )
    assert response.status_code == 404
    assert SUMMARY not in response.text
    response = await outsider.post(
        f"/disputes/{number}/evidence",
        {"visibility": "parties"},
        files={"files": ("x.txt", b"sneaky", "text/plain")},
    )
    assert response.status_code == 404
    async with api(scenario.app, token_for(scenario.stack, OUTSIDER)) as client:
        response = await client.post(
            f"/api/disputes/{number}/withdraw", json={"reason": "not my dispute"}
        )
        assert response.status_code == 404
        assert response.json()["type"] == "urn:accord:problem:not-found"
    async with api(scenario.app, token_for(scenario.stack, COMPLIANCE)) as client:
        response = await client.post(
            f"/api/disputes/{number}/add-note", json={"text": "compliance may not act"}
        )
        assert response.status_code == 403
    # A party acting outside its role is refused by the workflow's rule, which says why.
    async with api(scenario.app, token_for(scenario.stack, RESPONDENT)) as client:
        response = await client.post(
            f"/api/disputes/{number}/declare-impasse", json={"reason": "we want a ruling"}
        )
        assert response.status_code == 409
        assert "is for mediator, not partner" in response.json()["detail"]
    assert len(scenario.stack.events(number)) == before
    await outsider.close()


async def test_a_partner_lists_and_searches_only_its_own_disputes(scenario: Scenario) -> None:
    other = await scenario.stack.file(
        claimant_id="fabrikam",
        respondent_ids=["tailspin"],
        contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0777"}],
        summary="Tailspin sold into the Fabrikam Acme account",
        filed_by="fay@fabrikam.example",
    )
    async with api(scenario.app, token_for(scenario.stack, CLAIMANT)) as client:
        listed = (await client.get("/api/disputes")).json()
        assert [d["number"] for d in listed["items"]] == [scenario.number]
        found = (await client.get("/api/disputes", params={"q": other.number})).json()
        assert found["total"] == 0
    async with api(scenario.app, token_for(scenario.stack, COMPLIANCE)) as client:
        listed = (await client.get("/api/disputes")).json()
        assert {d["number"] for d in listed["items"]} == {scenario.number, other.number}


async def test_the_other_side_reads_no_restricted_evidence_in_the_dispute_response(
    scenario: Scenario,
) -> None:
    async with api(scenario.app, token_for(scenario.stack, RESPONDENT)) as client:
        detail = (await client.get(f"/api/disputes/{scenario.number}")).json()
    names = {e["filename"] for e in detail["evidence"]}
    assert names == {"shared-registration.txt", "contoso-pipeline.txt"}
    assert all(n["visibility"] == "shared" for n in detail["state"]["notes"])
    assert detail["state"]["history"] == []


async def test_no_email_carries_a_caucus_note_or_restricted_evidence(scenario: Scenario) -> None:
    await scenario.stack.mail_settled()
    bodies = " ".join(
        str(part.get_content())
        for message in scenario.stack.mail.messages
        for part in message.walk()
        if part.get_content_maintype() == "text"
    )
    assert scenario.stack.mail.messages, "the scenario sent notifications"
    for secret in (CAUCUS_TEXT, "northwind-margins", "contoso-pipeline"):
        assert secret not in bodies


async def test_partners_find_precedents_only_through_the_anonymised_view(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    from tests.workflows.test_dispute_paths import settled

    app = make_app(stack)
    number = await settled(stack)
    outsider = await signed_in(app, OUTSIDER)
    by_name = await outsider.get("/search", params={"q": "Contoso"})
    assert "Precedents <small>(0)" in by_name.text
    by_fact = await outsider.get("/search", params={"q": "registered"})
    assert "Precedents <small>(1)" in by_fact.text
    for page in (by_fact.text, (await outsider.get("/precedents/1")).text):
        for name in ("Contoso", "Northwind", "northwind", "contoso", number):
            assert name not in page, name
    async with api(app, token_for(stack, OUTSIDER)) as client:
        found = (await client.get("/api/precedents", params={"q": "registered"})).json()
        assert found["total"] == 1 and len(found["hits"]) == 1
        assert "Northwind" not in str(found) and number not in str(found)
        assert "<mark>registered</mark>" in found["hits"][0]["snippet_html"]
        by_name = (await client.get("/api/precedents", params={"q": "Contoso"})).json()
        assert by_name["total"] == 0 and by_name["hits"] == []
    library = await outsider.get("/precedents", params={"q": "registered", "sla": "met"})
    assert "1 match" in library.text and "<mark>registered</mark>" in library.text
    for name in ("Contoso", "Northwind", "northwind", "contoso", number):
        assert name not in library.text, name
    assert "0 matches" in (await outsider.get("/precedents", params={"q": "Contoso"})).text
    compliance = await signed_in(app, COMPLIANCE)
    assert number in (await compliance.get("/search", params={"q": "Contoso"})).text
    assert number in (await compliance.get("/precedents", params={"q": "Contoso"})).text
