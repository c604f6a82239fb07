"""One validation at the boundary: every entry point (API, forms, search, CLI, directory,
email) refuses, or for email cleans, the text a database or a page cannot hold, names the
field and why, and writes nothing. On SQLite and PostgreSQL (a NUL only fails on the latter)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import make_msgid
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlmodel import func, select

from accord.application import build_services
from accord.directory.records import UnknownActor, resolve_actor
from accord.disputes import texts
from accord.disputes.filing import submission_of
from intake.processor import IntakeProcessor
from models.converter import data_converter
from models.enums import DisputeCategory, DisputeStage, InboundState
from models.payloads import SYSTEM, AddNote
from models.tables import Dispute, Evidence, InboundMessage
from models.text import clean
from tests.conftest import Stack, cli_env, make_settings, seed
from tests.web_harness import (
    Browser,
    api,
    filing_form,
    make_app,
    messages,
    seed_accounts,
    signed_in,
    token_for,
)
from web.auth import Accounts

CLAIMANT = "nora@northwind.example"
ADMIN = "alex.admin@vendor.example"

NASTY: dict[str, tuple[str, str]] = {
    # name: (the character, words the refusal must contain)
    "NUL": ("\x00", "NUL character"),
    "lone surrogate": ("\ud800", "holds an unpaired surrogate"),
    "C1 control": ("\x85", "U+0085"),
    "C0 control": ("\x1b", "U+001B"),
}
LINE_BREAK = ("\n", "line break")
"""Refused in one-line fields only (they reach email headers)."""


def filing_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "respondent_ids": ["contoso"],
        "category": "deal_registration",
        "contested_objects": [{"kind": "deal_registration", "ref": "DR-2026-0042"}],
        "summary": "Contoso registered our Acme deal after we did",
        "facts": "We registered DR-2026-0042 for Acme on 2 November; Contoso a week later.",
        "desired_remedy": "Registration confirmed to Northwind",
        "amount_at_stake": "125000.00",
        "occurred_on": "2026-11-20",
    }
    body.update(overrides)
    return body


async def post_json(client: httpx.AsyncClient, path: str, body: object) -> httpx.Response:
    """`body` as JSON with every non-ASCII character escaped, as most clients send it: the
    only way a lone surrogate reaches a server (it has no UTF-8)."""
    return await client.post(
        path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


def disputes(stack: Stack) -> int:
    with stack.sessions.read() as session:
        return int(session.exec(select(func.count()).select_from(Dispute)).one())


def assert_refused(response: httpx.Response, field: str, words: str, case: str) -> None:
    """A 422 problem body naming `field` and saying why in plain words."""
    assert response.status_code == 422, f"{case}: {response.status_code} {response.text[:300]}"
    problem = response.json()
    assert problem["type"] == "urn:accord:problem:validation", case
    named = [e for e in problem["errors"] if e["field"].split(".")[0] == field.split(".")[0]]
    assert named, f"{case}: {field} not named in {problem['errors']}"
    assert any(words in e["message"] for e in named), f"{case}: {named}"
    for error in problem["errors"]:
        assert "psycopg" not in error["message"] and "Traceback" not in error["message"], case


# --- the JSON API -------------------------------------------------------------------------------

FILING_FIELDS: dict[str, Callable[[str], dict[str, object]]] = {
    "summary": lambda v: {"summary": f"Contoso took {v} our deal"},
    "facts": lambda v: {"facts": f"We registered the deal first {v} and Contoso a week later."},
    "desired_remedy": lambda v: {"desired_remedy": f"Registration {v} confirmed"},
    "contested_objects": lambda v: {
        "contested_objects": [{"kind": "deal_registration", "ref": f"DR-{v}-1"}]
    },
    "submission_id": lambda v: {"submission_id": f"erp-{v}"},
    "respondent_ids": lambda v: {"respondent_ids": [f"cont{v}oso"]},
}
ONE_LINE = {"summary", "contested_objects", "submission_id", "respondent_ids"}


@pytest.mark.parametrize("field", FILING_FIELDS)
async def test_a_filing_over_the_api_refuses_unstorable_text_naming_the_field(
    stack_on_both: Stack, field: str
) -> None:
    stack = stack_on_both
    cases = dict(NASTY)
    if field in ONE_LINE:
        cases["line break"] = LINE_BREAK
    async with api(make_app(stack), token_for(stack, CLAIMANT)) as client:
        for case, (char, words) in cases.items():
            body = filing_body(**FILING_FIELDS[field](char))
            response = await post_json(client, "/api/disputes", body)
            assert_refused(response, field, words, f"{field} with {case}")
    assert disputes(stack) == 0


async def test_the_api_refuses_unknown_huge_and_deeply_nested_bodies_naming_the_field(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    async with api(make_app(stack), token_for(stack, CLAIMANT)) as client:
        unknown = await client.post("/api/disputes", json=filing_body(urgency="high"))
        assert_refused(unknown, "urgency", "Extra inputs are not permitted", "unknown field")
        huge = await client.post("/api/disputes", json=filing_body(facts="x" * 1_000_000))
        # Refused by the body's shape check (web.limits) before pydantic sees it, still naming
        # the field.
        assert_refused(huge, "facts", "longer than 100,000 characters", "1 MB of facts")
        deep = '{"summary": ' + "[" * 100_000 + "]" * 100_000 + "}"
        nested = await client.post(
            "/api/disputes", content=deep, headers={"Content-Type": "application/json"}
        )
        # Refused before any field is looked at (the JSON reader gives up on the depth): a
        # problem body saying so, never a crash.
        assert_refused(nested, "body", "nests deeper than 32 levels", "100,000 levels")
        shallow = '{"summary": ' + "[" * 40 + "]" * 40 + "}"
        nested = await client.post(
            "/api/disputes", content=shallow, headers={"Content-Type": "application/json"}
        )
        assert_refused(nested, "summary", "nests deeper than 32 levels", "40 levels")
        number = (await stack.file()).number
        extra = await client.post(
            f"/api/disputes/{number}/withdraw", json={"reason": "We settled it", "force": True}
        )
        assert_refused(extra, "force", "Extra inputs are not permitted", "unknown action field")
    assert disputes(stack) == 1


ACTIONS: dict[str, tuple[str, Callable[[str], dict[str, object]]]] = {
    "withdraw": ("reason", lambda v: {"reason": f"We settled {v} it ourselves"}),
    "add-note": ("text", lambda v: {"text": f"Note {v} for the file"}),
    "propose-settlement": (
        "remedies",
        lambda v: {
            "terms": "Contoso gets co-selling help.",
            "remedies": [
                {
                    "kind": "co_selling_resources",
                    "partner_id": "contoso",
                    "resource": f"Solution {v} engineer",
                    "hours": 10,
                }
            ],
        },
    ),
}


@pytest.mark.parametrize("slug", ACTIONS)
async def test_an_action_over_the_api_refuses_unstorable_text_and_changes_nothing(
    stack_on_both: Stack, slug: str
) -> None:
    stack = stack_on_both
    number = (await stack.file()).number
    field, body = ACTIONS[slug]
    async with api(make_app(stack), token_for(stack, CLAIMANT)) as client:
        for case, (char, words) in NASTY.items():
            response = await post_json(client, f"/api/disputes/{number}/{slug}", body(char))
            assert_refused(response, field, words, f"{slug} {field} with {case}")
    await stack.recorded(number)
    done = {"withdrawn", "note_added", "settlement_proposed"} & set(stack.actions(number))
    assert not done, done
    assert (await stack.state(number)).stage.value != "withdrawn"


QUERIES = [
    ("/api/disputes", "q"),
    ("/api/disputes", "party"),
    ("/api/precedents", "q"),
    ("/api/precedents", "region"),
    ("/api/precedents", "clause"),
    ("/api/precedents", "outcome"),
]


@pytest.mark.parametrize(("path", "param"), QUERIES)
async def test_a_search_refuses_unstorable_words_naming_the_parameter(
    stack_on_both: Stack, path: str, param: str
) -> None:
    stack = stack_on_both
    async with api(make_app(stack), token_for(stack, ADMIN)) as client:
        for case, (char, words) in NASTY.items():
            if case == "lone surrogate":
                continue  # a URL cannot carry one: percent-decoding makes it U+FFFD
            response = await client.get(path, params={param: f"ac{char}me"})
            assert_refused(response, param, words, f"{path}?{param} with {case}")


async def test_evidence_and_admin_bodies_refuse_unstorable_text(stack_on_both: Stack) -> None:
    stack = stack_on_both
    number = (await stack.file()).number
    app = make_app(stack)
    async with api(app, token_for(stack, CLAIMANT)) as client:
        # A file's name comes from the sender's disk, not typed into a field: it is cleaned
        # (accord.disputes.evidence.clean_filename: path and every control or format character dropped).
        for case, (char, _words) in {**NASTY, "line break": LINE_BREAK}.items():
            if case == "lone surrogate":
                continue  # multipart carries bytes; undecodable ones arrive as U+FFFD
            # Written by hand: httpx would percent-encode the name's control characters.
            boundary = "b0undary"
            body = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files";'
                f' filename="reg{char}.csv"\r\nContent-Type: text/csv\r\n\r\n'
                f"deal {case}\n\r\n--{boundary}--\r\n"
            ).encode()
            upload = await client.post(
                f"/api/disputes/{number}/evidence",
                content=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            assert upload.status_code == 201, f"evidence file name with {case}: {upload.text}"
        with stack.sessions.read() as session:
            names = {e.filename for e in session.exec(select(Evidence)).all()}
        assert names == {"reg.csv"}, names
        for case, (char, words) in NASTY.items():
            token = await post_json(client, "/api/tokens", {"name": f"e{char}rp"})
            assert_refused(token, "name", words, f"token name with {case}")
            if case == "lone surrogate":
                continue  # multipart carries bytes: see above
            described = await client.post(
                f"/api/disputes/{number}/evidence",
                files={"files": ("reg.csv", b"deal\n", "text/csv")},
                data={"description": f"CRM {char} export"},
            )
            assert_refused(described, "description", words, f"description with {case}")
    with stack.sessions.read() as session:
        assert session.exec(select(func.count()).select_from(Evidence)).one() == 4
    async with api(app, token_for(stack, ADMIN)) as client:
        for case, (char, words) in NASTY.items():
            person = await client.patch(
                "/api/directory/people/maria",
                content=json.dumps({"declared_conflicts": [f"cont{char}oso"]}),
                headers={"Content-Type": "application/json"},
            )
            assert_refused(person, "declared_conflicts", words, f"conflict with {case}")


# --- the web forms ---------------------------------------------------------------------------


async def test_the_web_forms_refuse_unstorable_text_naming_the_field(stack_on_both: Stack) -> None:
    stack = stack_on_both
    number = (await stack.file()).number
    browser = await signed_in(make_app(stack), CLAIMANT)
    try:
        for case, (char, words) in {**NASTY, "line break": LINE_BREAK}.items():
            if case == "lone surrogate":
                continue  # a form cannot carry one: the URL decoding makes it U+FFFD
            filed = await browser.post(
                "/disputes/new", filing_form(summary=f"Contoso took {char} our deal")
            )
            assert filed.status_code == 422, f"filing form, {case}: {filed.status_code}"
            assert words in filed.text, case
            if case == "line break":
                continue
            withdrawn = await browser.post(
                f"/disputes/{number}/actions/withdraw", {"reason": f"We settled {char} it"}
            )
            assert withdrawn.status_code == 422, f"withdraw form, {case}: {withdrawn.status_code}"
            assert words in withdrawn.text, (case, messages(withdrawn.text))
            for page in ("/search", "/precedents", "/disputes"):
                found = await browser.get(page, params={"q": f"ac{char}me"})
                assert found.status_code == 422, f"{page}, {case}: {found.status_code}"
                assert words in found.text, case
        huge = await browser.post(
            "/disputes/new", filing_form(submission_id="form-huge", facts="x" * 1_000_000)
        )
        assert huge.status_code == 422 and "at most 20000 characters" in huge.text
        # A form ignores fields it does not have (a browser sends its buttons' names), as
        # every form on the web does; the API, written by programs, refuses them.
        extra = await browser.post(
            "/disputes/new", filing_form(submission_id="form-extra", urgency="high")
        )
        assert extra.status_code == 303, extra.text[:300]  # taken (linked to the open one)
    finally:
        await browser.close()
    assert disputes(stack) == 1
    await stack.recorded(number)
    assert "withdrawn" not in stack.actions(number)


# --- the CLI ---------------------------------------------------------------------------------


async def test_the_cli_refuses_unstorable_arguments_naming_the_option(stack_on_both: Stack) -> None:
    stack = stack_on_both
    env = cli_env(stack)
    base = [
        sys.executable,
        "-m",
        "accord.cli",
        "file",
        "--as",
        CLAIMANT,
        "--claimant",
        "northwind",
        "--respondent",
        "contoso",
        "--category",
        "deal_registration",
        "--object",
        "deal_registration:DR-2026-0042",
        "--facts",
        "We registered DR-2026-0042 for Acme on 2 November; Contoso a week later.",
        "--remedy",
        "Registration confirmed to Northwind",
        "--amount",
        "125000",
        "--summary",
    ]
    # argv cannot carry a NUL; it can carry control characters and bytes that are not UTF-8
    # (Python makes those lone surrogates).
    for case, arg, words in (
        ("C1 control", "Contoso took \x85 our deal".encode(), "U+0085"),
        ("not UTF-8", b"Contoso took \xff our deal", "unpaired surrogate"),
        # As much as one argument may carry (Linux: 128 KiB).
        ("100 KB", b"x" * 100_000, "at most 300 characters"),
    ):
        done = subprocess.run(
            [*(a.encode() for a in base), arg],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode == 2, f"{case}: {err}"
        assert "summary" in err and words in err, f"{case}: {err}"
    assert disputes(stack) == 0
    # Looked up before any payload is built: a login, a dispute number.
    for args, where in (
        ([b"show", b"DSP-2026-\xff"], "argument 2"),
        ([b"tasks", b"--for", b"nora\xff@northwind.example"], "--for"),
    ):
        looked = subprocess.run(
            [sys.executable.encode(), b"-m", b"accord.cli", *args],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        err = looked.stderr.decode("utf-8", "replace")
        assert looked.returncode == 2, err
        assert f"{where}: holds an unpaired surrogate" in err and "Traceback" not in err, err
    seed_accounts(stack.sessions)
    named = subprocess.run(
        [sys.executable, "-m", "accord.cli", "token", "--for", CLAIMANT, "--name", "e\x85rp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert named.returncode == 2 and "--name" in named.stderr and "U+0085" in named.stderr, (
        named.stderr
    )


# --- email -------------------------------------------------------------------------------------


def _raw_mail(subject: bytes, body: bytes, in_reply_to: str = "") -> bytes:
    headers = [
        b"From: " + CLAIMANT.encode(),
        b"To: disputes@accord.localhost",
        b"Subject: " + subject,
        b"Message-ID: " + make_msgid(domain="sender.example").encode(),
        b"Content-Type: text/plain; charset=utf-8",
    ]
    if in_reply_to:
        headers.append(b"In-Reply-To: " + in_reply_to.encode())
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


EMAILS: dict[str, tuple[bytes, bytes]] = {
    "NUL in the subject": (b"=?utf-8?q?Contoso_took_=00_our_deal?=", b"Respondent: Contoso\n"),
    "NUL in the body": (b"Contoso took our deal", b"Respondent: Contoso\x00\nThey took it.\n"),
    "wrong encoding": (b"Contoso took our \xe9 deal", b"Respondent: Contoso \xff\xfe\nTook it.\n"),
    "C1 in the subject": (b"=?utf-8?b?" + b"Q29udG9zbyDChSB0b29r" + b"?=", b"Respondent: x\n"),
}


@pytest.mark.parametrize("case", EMAILS)
async def test_hostile_mail_is_cleaned_processed_and_the_sender_told(
    stack_on_both: Stack, case: str
) -> None:
    stack = stack_on_both
    processor = IntakeProcessor(stack.services, stack.client)
    subject, body = EMAILS[case]
    inbound_id, _ = processor.store(_raw_mail(subject, body), source="test")
    await processor.process_pending()
    with stack.sessions.read() as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        # Processed, never left waiting to be retried forever.
        assert row.state is not InboundState.RECEIVED, row.reason
        assert "\x00" not in (row.subject or "") and "\x00" not in row.reason
    reply = await stack.mail.wait_for(CLAIMANT, "Re: ")
    text = reply.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "replaced" in text, text


async def test_a_reply_with_a_nul_becomes_a_cleaned_message_on_the_dispute(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    number = (await stack.file()).number
    processor = IntakeProcessor(stack.services, stack.client)
    raw = _raw_mail(
        f"Re: {number} =?utf-8?q?more_=00_facts?=".encode(),
        b"We called Acme first\x00, on 28 October.\n",
    )
    inbound_id, _ = processor.store(raw, source="test")
    await processor.process_pending()
    with stack.sessions.read() as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None and row.state is InboundState.THREADED, row and row.reason
    entry = await stack.wait_for_event(number, "message_received")
    # The entry names the stored text (accord.disputes.texts); the stored body is the cleaned one.
    ref = entry.content["text_ref"]
    assert isinstance(ref, dict)
    with stack.sessions.read() as session:
        body = texts.bodies(session, [ref["id"]])[ref["id"]]
    assert body == "We called Acme first\ufffd, on 28 October."
    reply = await stack.mail.wait_for(CLAIMANT, "Re: ")
    text = reply.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "NUL" in text and "replaced" in text, text


# --- the shared rule itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "multiline", "expected", "note"),
    [
        ("plain text", False, "plain text", None),
        ("two\nlines\ttab\r", True, "two\nlines\ttab\r", None),
        ("folded\r\n subject", False, "folded   subject", None),
        ("a\x00b", True, "a\ufffdb", "1 NUL character replaced by \ufffd"),
        ("a\ud800\udfffb", False, "a\ufffd\ufffdb", "2 undecodable characters replaced by \ufffd"),
        ("\x85\x00", False, "\ufffd\ufffd", "1 control character and 1 NUL character replaced"),
    ],
)
def test_cleaning_replaces_only_what_cannot_be_stored_and_says_what(
    value: str, multiline: bool, expected: str, note: str | None
) -> None:
    cleaned, told = clean(value, multiline=multiline)
    assert cleaned == expected
    assert told == note or (note is not None and told is not None and told.startswith(note))


# --- what was taken in before stays readable ----------------------------------------------------


def test_a_history_holding_text_the_rule_now_refuses_still_reads_back() -> None:
    """A running dispute's history may hold a note taken in under the older rule (only NUL was
    refused then): the worker's converter reads it back; only new input is refused."""
    old = AddNote.model_construct(actor=SYSTEM, text="Page 1\x0cPage \x85 2", visibility="shared")
    payload = data_converter.payload_converter.to_payloads([old])[0]
    [read] = data_converter.payload_converter.from_payloads([payload], [AddNote])
    assert read.text == "Page 1\x0cPage \x85 2"
    with pytest.raises(ValidationError, match="U\\+000C"):
        AddNote.model_validate_json(payload.data)


def test_a_stranded_filing_taken_in_under_the_older_rule_can_still_be_started() -> None:
    row = Dispute(
        number="DSP-2026-000001",
        claimant_id="northwind",
        respondent_ids=["contoso"],
        category=DisputeCategory.DEAL_REGISTRATION,
        contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0042"}],
        summary="Contoso\ttook our deal",
        facts="We registered it first.\x0cContoso a week later.",
        desired_remedy="Registration confirmed",
        amount_at_stake=Decimal("10.00"),
        currency="USD",
        occurred_on=date(2026, 11, 2),
        filed_by=CLAIMANT,
        filed_at=datetime(2026, 11, 20, tzinfo=UTC),
        playbook_version="2026.1",
        stage=DisputeStage.FILED,
        party_key="contoso|northwind",
        updated_at=datetime(2026, 11, 20, tzinfo=UTC),
    )
    assert submission_of(row).summary == "Contoso\ttook our deal"


# --- paths and sign-in: looked up, never stored, and still never a database error ----------------

PATHS = [
    "/disputes/DSP-2026-00000%00",
    "/disputes/DSP%C2%85/timeline",
    "/disputes/DSP-2026-000001/evidence/ev-%00",
    "/precedents/1%00",
    "/admin/intake/1%00/release",
    "/admin/intake/replies/1%00/resend",
    "/api/disputes/DSP-2026-00000%00",
    "/api/directory/people/ma%00ria",
]


async def test_a_nul_in_a_path_or_a_sign_in_is_a_plain_refusal_never_a_500(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    await stack.file()
    app = make_app(stack)
    browser = await signed_in(app, ADMIN)
    try:
        for path in PATHS:
            if path.startswith("/api/directory"):
                continue  # PATCH only: below, with a token
            response = await browser.get(path)
            if path.startswith("/admin/intake"):
                response = await browser.post(path, {})
            assert response.status_code == 422, f"{path}: {response.status_code}"
    finally:
        await browser.close()
    async with api(app, token_for(stack, ADMIN)) as client:
        for path in PATHS:
            if path.startswith("/api/"):
                response = await client.request(
                    "PATCH" if "directory" in path else "GET", path, json={}
                )
                assert response.status_code == 422, f"{path}: {response.status_code}"
                assert "holds" in response.json()["errors"][0]["message"], response.text
    for login in ("nora\x00@northwind.example", "nora\x85@northwind.example"):
        stranger = Browser(app)
        try:
            answer = await stranger.sign_in(login)
            # Nobody's login: answered like a wrong password, never looked up.
            assert answer.status_code == 401, f"{login!r}: {answer.status_code}"
        finally:
            await stranger.close()


async def test_a_nul_in_the_envelope_or_an_attachment_name_is_stored_cleaned(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    number = (await stack.file()).number
    processor = IntakeProcessor(stack.services, stack.client)
    boundary = "sep"
    raw = (
        _raw_mail(f"Re: {number}".encode(), b"")
        .replace(
            b"Content-Type: text/plain; charset=utf-8",
            f'Content-Type: multipart/mixed; boundary="{boundary}"'.encode(),
        )
        .removesuffix(b"\r\n\r\n")
        + (
            f"\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nSee the attached tool.\r\n"
            f"--{boundary}\r\nContent-Type: application/x-msdownload\r\n"
            'Content-Disposition: attachment; filename="tool\x00.exe"\r\n\r\nMZ\r\n'
            f"--{boundary}--\r\n"
        ).encode()
    )
    inbound_id, new = processor.store(
        raw, source="test", envelope_from="nora\x00@northwind.example", envelope_to=("x\x00@y",)
    )
    assert new
    await processor.process_pending()
    with stack.sessions.read() as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None and row.state is InboundState.THREADED, row and row.reason
        assert row.envelope_from == "nora\ufffd@northwind.example"
        assert "attachment name: 1 NUL character replaced" in row.reason
    reply = await stack.mail.wait_for(CLAIMANT, "Re: ")
    text = reply.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "tool\ufffd.exe" in text and "attachment name" in text, text


@pytest.mark.parametrize("login", ["nora\x00@northwind.example", "nora\ud800@northwind.example"])
def test_a_login_no_one_can_have_is_unknown_never_a_database_error(
    database_url: str, tmp_path: Path, login: str
) -> None:
    """Logins come from sign-in, OpenID claims, CLI options and mail senders: looked up, they
    are nobody's, whatever the backend."""
    services = build_services(make_settings(database_url, 2525, tmp_path))
    seed(services.sessions)
    with services.sessions.read() as session, pytest.raises(UnknownActor, match="holds"):
        resolve_actor(session, login)
    accounts = Accounts(services.sessions, session_max_age=timedelta(hours=1))
    assert accounts.viewer_for(login) is None
    assert accounts.authenticate(login, "demo-password-for-tests") is None
