"""Probe of issue 15's web and mail defences, as an adversary would: a forged sender that SPF
is tricked into vouching for, hostile JSON, CSRF through every kind of body, sessions that
ended, and the headers on every kind of answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models.enums import InboundState
from tests.conftest import Stack
from tests.dns_stub import DnsStub, dns_stub
from tests.intake.test_intake_authentication import (
    INCOMPLETE,
    processed,
    send_raw,
    verifying_ourselves,
)
from tests.intake_harness import CLAIMANT, Intake, mail


@pytest.fixture
def dns() -> Iterator[DnsStub]:
    with dns_stub() as stub:
        yield stub


# --- mail trust ---------------------------------------------------------------------------------


def test_an_envelope_without_at_sign_is_not_credited_to_the_helo_domain(dns: DnsStub) -> None:
    """MAIL FROM:<attacker.example> (no local part) makes pyspf check attacker.example, whose
    owner allows any address; the result must not be labelled with the HELO name, which the
    sender chooses freely (here the victim's domain, aligned with the forged From)."""
    from intake.authentication import SelfVerifier, judge

    dns.txt("attacker.example", "v=spf1 ip4:127.0.0.0/8 -all")
    dns.txt("northwind.example", "v=spf1 ip4:192.0.2.1 -all")
    dns.txt("_dmarc.northwind.example", "v=DMARC1; p=reject")
    raw = mail(CLAIMANT, "Contoso took our deal", INCOMPLETE).as_bytes()
    evidence = SelfVerifier([dns.address], 0.5).verify(
        raw,
        sender=CLAIMANT,
        peer_ip="127.0.0.1",
        helo="northwind.example",
        mail_from="attacker.example",
    )
    [spf_result] = evidence.of("spf")
    assert spf_result.domain != "northwind.example", spf_result
    assert not judge(evidence, CLAIMANT).trusted


async def test_a_forged_sender_over_smtp_with_a_bare_domain_envelope_is_held(
    intake: Intake,
    dns: DnsStub,
) -> None:
    verifying_ourselves(intake.stack, dns)
    dns.txt("attacker.example", "v=spf1 ip4:127.0.0.0/8 -all")
    dns.txt("northwind.example", "v=spf1 ip4:192.0.2.1 -all")
    dns.txt("_dmarc.northwind.example", "v=DMARC1; p=reject")
    raw = mail(CLAIMANT, "Contoso took our deal", INCOMPLETE).as_bytes()
    row = await processed(
        intake,
        await send_raw(intake, raw, mail_from="attacker.example", helo="northwind.example"),
    )
    assert row.state is InboundState.QUARANTINED, (row.state, row.reason, row.authentication)


# --- hostile JSON -------------------------------------------------------------------------------


HOSTILE_JSON = {
    # Python refuses to turn more than 4,300 digits into an int: a ValueError, not a JSON error.
    "a number of 5,000 digits": (b'{"amount_at_stake": ' + b"1" * 5000 + b"}", "amount_at_stake"),
    "NaN": (b'{"amount_at_stake": NaN}', "amount_at_stake"),
    "Infinity": (b'{"amount_at_stake": -Infinity}', "amount_at_stake"),
    "1e999999": (b'{"amount_at_stake": 1e999999}', "amount_at_stake"),
}


@pytest.mark.parametrize("what", list(HOSTILE_JSON))
async def test_hostile_json_numbers_are_refused_naming_the_field(stack: Stack, what: str) -> None:
    from tests.web.test_web_limits import PROBLEM_CEILING, dispute_count
    from tests.web_harness import api, make_app, token_for

    body, field = HOSTILE_JSON[what]
    app = make_app(stack)
    async with api(app, token_for(stack, CLAIMANT)) as client:
        response = await client.post(
            "/api/disputes", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, (what, response.status_code, response.text[:300])
    assert len(response.content) < PROBLEM_CEILING
    problem = response.json()
    assert any(e["field"] == field for e in problem["errors"]), (what, problem)
    assert dispute_count(stack) == 0


def test_an_internationalised_from_domain_aligns_with_its_ascii_form() -> None:
    """A DKIM d= and an SMTP envelope are always in ASCII (A-labels); a From of an
    internationalised address (SMTPUTF8) names the same domain in Unicode. DMARC compares
    them as the same domain; a look-alike stays another domain."""
    from intake.authentication import aligned

    assert aligned("xn--nrthwind-n4a.example", "nörthwind.example")
    assert aligned("mail.xn--nrthwind-n4a.example", "NÖRTHWIND.example")
    assert aligned("nörthwind.example", "xn--nrthwind-n4a.example", strict=True)
    # A Cyrillic i (U+0456) in place of the Latin one: another domain, never aligned.
    assert not aligned("northwind.example", "northw\u0456nd.example")
    assert not aligned("northwind.example", "xn--northwnd-bsg.example")


@pytest.mark.xfail(
    strict=True,
    reason="our MTA's headers are told from a sender's only by the authserv-id; an MTA that "
    "does not strip incoming ones (README: the operator's duty) lets a forged pass through",
)
def test_a_forged_result_under_our_authserv_id_contradicting_our_mta_is_not_trusted() -> None:
    """Our MTA (which forgot to strip incoming Authentication-Results) says no DKIM signature
    and an SPF fail; below it, the sender's own header under the same authserv-id says DKIM
    passed for the From domain. Two contradicting words of 'our MTA' on one message are no
    pass."""
    from intake.authentication import from_mta, judge

    ours = "mx.accord.localhost; spf=fail smtp.mailfrom=attacker.example; dkim=none"
    forged = "mx.accord.localhost; dkim=pass header.d=northwind.example"
    evidence = from_mta([ours, forged], "mx.accord.localhost")
    assert not judge(evidence, CLAIMANT).trusted


# --- CSRF on every state-changing route ------------------------------------------------------

ADMIN = "ada.admin@vendor.example"
BOUNDARY = "probe-boundary"


def _multipart(*parts: tuple[str, str, str | None]) -> bytes:
    """A multipart body of (name, value, filename) parts, in this order."""
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n".encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


def _forgeries(token: str) -> dict[str, dict[str, object]]:
    multipart = f"multipart/form-data; boundary={BOUNDARY}"
    return {
        "multipart, no token": {
            "content": _multipart(("x", "y", None)),
            "headers": {"content-type": multipart},
        },
        "multipart, the right token after a file": {
            "content": _multipart(("f", "data", "a.txt"), ("csrftoken", token, None)),
            "headers": {"content-type": multipart},
        },
        "multipart, a forged token before the right one": {
            "content": _multipart(("csrftoken", "forged", None), ("csrftoken", token, None)),
            "headers": {"content-type": multipart},
        },
        "multipart, a token of 100,000 characters": {
            "content": _multipart(("csrftoken", token + "x" * 100_000, None)),
            "headers": {"content-type": multipart},
        },
        "multipart without a boundary": {
            "content": _multipart(("csrftoken", token, None)),
            "headers": {"content-type": "multipart/form-data"},
        },
        "multipart, upper case type": {
            "content": _multipart(("x", "y", None)),
            "headers": {"content-type": f"Multipart/Form-Data; boundary={BOUNDARY}"},
        },
        "urlencoded, no token": {
            "content": b"x=y",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        "text/plain": {
            "content": f"csrftoken={token}".encode(),
            "headers": {"content-type": "text/plain"},
        },
        "json with cookies": {"content": b"{}", "headers": {"content-type": "application/json"}},
        "no body, no type": {},
        "a token in the query": {"params": {"csrftoken": token}},
    }


async def test_every_unsafe_route_refuses_a_forged_request_of_every_kind(stack: Stack) -> None:
    import re

    from fastapi.routing import iter_route_contexts

    from tests.web_harness import make_app, signed_in

    app = make_app(stack)
    browser = await signed_in(app, ADMIN)
    unsafe = sorted(
        {
            (method, re.sub(r"\{[^}]+\}", "1", route.path or ""))
            # FastAPI 0.165 keeps included routers whole in app.routes: their routes are
            # listed through their contexts.
            for route in iter_route_contexts(app.routes)
            for method in (getattr(route.original_route, "methods", None) or ())
            if method in ("POST", "PUT", "PATCH", "DELETE")
            # The codec is read-only and held by its Origin check (web.codec).
            and not (route.path or "").startswith("/codec")
        }
    )
    assert len(unsafe) > 20, unsafe
    passed = []
    for method, path in unsafe:
        for what, kwargs in _forgeries(browser.csrf).items():
            response = await browser.http.request(method, path, **kwargs)  # type: ignore[arg-type]
            if response.status_code != 403 or "could not be verified" not in response.text:
                passed.append((method, path, what, response.status_code))
    assert passed == []
    # Nothing happened: still signed in.
    assert (await browser.get("/disputes")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"payloads": [], "n": ' + b"1" * 5000 + b"}", "body"),
        (b'{"payloads": [{"data": ' + b"9" * 5000 + b"}]}", "body"),
    ],
)
async def test_the_codec_endpoint_names_a_number_too_long_to_read(
    stack: Stack, body: bytes, field: str
) -> None:
    from tests.web_harness import api, make_app, token_for

    app = make_app(stack)
    async with api(app, token_for(stack, ADMIN)) as client:
        response = await client.post(
            "/codec/decode", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400, response.text[:300]
    problem = response.json()
    assert any(e["field"] == field for e in problem["errors"]), problem


# --- sessions -----------------------------------------------------------------------------------


async def test_a_session_copied_before_an_account_was_disabled_stays_dead_when_re_enabled(
    stack_on_both: Stack,
) -> None:
    """An admin disables someone whose cookie was stolen, then enables them again (a password
    reset, a mistake put right): the stolen cookie, unused meanwhile, must not come back."""
    from sqlmodel import select

    from models.tables import Person
    from tests.web_harness import Browser, api, make_app, signed_in, token_for

    stack = stack_on_both
    app = make_app(stack)
    victim = await signed_in(app, "kenji.sato@vendor.example")
    thief = Browser(app)
    for name, value in victim.http.cookies.items():
        thief.http.cookies.set(name, value)
    assert (await thief.get("/inbox")).status_code == 200
    with stack.sessions.read() as session:
        person_id = session.exec(
            select(Person.id).where(Person.email == "kenji.sato@vendor.example")
        ).one()
    async with api(app, token_for(stack, ADMIN)) as admin:
        for active in (False, True):
            response = await admin.patch(
                f"/api/directory/people/{person_id}", json={"active": active}
            )
            assert response.status_code == 200, response.text
    response = await thief.get("/inbox")
    assert response.status_code == 303, "the stolen cookie works again after re-enabling"
    # The owner signs in again as usual.
    assert (await signed_in(app, "kenji.sato@vendor.example")).csrf


async def test_a_session_ends_when_a_directory_import_changes_the_role_and_back(
    stack: Stack,
) -> None:
    from sqlmodel import select

    from accord.directory.records import Directory, PersonRecord, import_directory
    from models.enums import Role
    from models.tables import Person
    from tests.web_harness import make_app, signed_in

    app = make_app(stack)
    mediator = await signed_in(app, "kenji.sato@vendor.example")
    with stack.sessions.read() as session:
        person = session.exec(
            select(Person).where(Person.email == "kenji.sato@vendor.example")
        ).one()
        fields = person.model_dump(
            include={"id", "name", "email", "role", "calendar", "organisation", "case_limit"}
        )
    for role in (Role.COMPLIANCE, Role(fields["role"])):
        with stack.sessions.begin() as session:
            import_directory(session, Directory(people=[PersonRecord(**{**fields, "role": role})]))
    assert (await mediator.get("/inbox")).status_code == 303


# --- sign-in throttling -------------------------------------------------------------------------


async def test_spellings_of_one_login_share_its_count(stack: Stack) -> None:
    """Upper case, mixed case, surrounding spaces (and a no-break space): one account, one
    count. The fourth wrong password (the lockout here), whichever spelling, locks it; a
    look-alike login in full-width letters is nobody's and signs no one in."""
    from sqlmodel import col, select

    from models.tables import AccountEvent
    from tests.web.test_web_hardening import WRONG_WORDS, _from, _throttled_app
    from tests.web_harness import PASSWORD

    stack.settings.sign_in_free_failures = 4
    stack.settings.sign_in_lockout_failures = 4
    app, _clock = _throttled_app(stack)
    spellings = [CLAIMANT.upper(), " Nora@Northwind.Example ", f"\u00a0{CLAIMANT}\t", CLAIMANT]
    for n, spelling in enumerate(spellings):
        response = await _from(app, f"198.51.100.{n}").sign_in(spelling, "wrong")
        assert response.status_code == 401, (spelling, response.status_code)
    response = await _from(app, "203.0.113.20").sign_in(CLAIMANT.upper(), PASSWORD)
    assert response.status_code == 429 and WRONG_WORDS in response.text
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in CLAIMANT)
    response = await _from(app, "203.0.113.21").sign_in(fullwidth, PASSWORD)
    assert response.status_code == 401
    with stack.sessions.read() as session:
        actions = session.exec(
            select(AccountEvent.action)
            .where(AccountEvent.login == CLAIMANT)
            .order_by(col(AccountEvent.id))
        ).all()
    assert actions.count("sign_in_failed") == 4 and actions.count("locked_out") == 1, actions


# --- security headers -----------------------------------------------------------------------------


async def test_the_headers_are_on_every_kind_of_refusal_and_failure(stack: Stack) -> None:
    from tests.web.test_web_hardening import _from, _throttled_app
    from tests.web_harness import api, token_for

    stack.settings.sign_in_lockout_failures = 1
    stack.settings.sign_in_free_failures = 0
    app, _clock = _throttled_app(stack)
    browser = _from(app, "198.51.100.7")
    answers = {"wrong password": await browser.sign_in(CLAIMANT, "wrong")}
    answers["locked out"] = await browser.sign_in(CLAIMANT, "wrong")
    answers["method not allowed"] = await browser.get("/logout")
    answers["metrics on the web port"] = await browser.get("/metrics")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    app.state.web.accounts.tokens = boom
    async with api(app, token_for(stack, ADMIN)) as client:
        answers["internal error"] = await client.get("/api/tokens")
        answers["json shape"] = await client.post(
            "/api/disputes",
            content=b"[" * 100 + b"]" * 100,
            headers={"content-type": "application/json"},
        )
        answers["codec refusal"] = await client.post(
            "/codec/decode", content=b"{}", headers={"content-type": "text/plain"}
        )
        answers["head"] = await client.head("/api/me")
    async with api(app) as anonymous:
        answers["api sign-in required"] = await anonymous.get("/api/me")
    expected = {
        "wrong password": 401,
        "locked out": 429,
        "method not allowed": 405,
        "metrics on the web port": 404,
        "internal error": 500,
        "json shape": 422,
        "codec refusal": 400,
        "api sign-in required": 401,
    }
    for what, response in answers.items():
        if what in expected:
            assert response.status_code == expected[what], (what, response.status_code)
        assert "a bug" not in response.text, what
        csp = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp, what
        assert response.headers.get("x-content-type-options") == "nosniff", what
        assert response.headers.get("referrer-policy") == "same-origin", what
        assert response.headers.get("cache-control") == "no-store", what


# --- the multipart CSRF check's own reading -----------------------------------------------------


class _FieldBeforeToken:
    """A multipart body whose first part is a text field of `size` bytes, streamed in 64 KiB
    chunks, the right CSRF token after it; it counts the chunks the server asked for."""

    def __init__(self, size: int, token: str) -> None:
        self.size, self.token, self.sent = size, token, 0

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        self.sent += 1
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="x"\r\n\r\n'.encode()
        left = self.size
        while left > 0:
            self.sent += 1
            yield b"a" * min(64 * 1024, left)
            left -= 64 * 1024
        self.sent += 1
        yield (
            f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrftoken"\r\n\r\n'
            f"{self.token}\r\n--{BOUNDARY}--\r\n"
        ).encode()


async def test_the_csrf_check_does_not_buffer_a_huge_field_before_the_token(stack: Stack) -> None:
    """Anyone gets a valid CSRF cookie from /login. A multipart post may then be as large as an
    upload (100 MB here); the check kept every byte before the token in memory, unauthenticated,
    before any route decided who asked. Forms put the token first: past the size of a form,
    no token is coming."""
    from tests.web_harness import Browser, make_app

    app = make_app(stack)
    stranger = Browser(app)
    await stranger.get("/login")
    body = _FieldBeforeToken(20 * 1024 * 1024, stranger.csrf)
    response = await stranger.http.post(
        "/disputes/DSP-2026-000001/evidence",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status_code == 403, response.status_code
    read = body.sent * 64 * 1024
    assert read <= stack.settings.form_max_bytes + 2 * 64 * 1024, f"{read:,} bytes read"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/tokens", {"authorization": "Bearer acc_not-a-token"}),
        ("/api/directory/people/p1", {}),
        ("/login", {}),
    ],
)
async def test_a_route_that_takes_no_upload_does_not_read_an_upload_s_worth(
    stack: Stack, path: str, headers: dict[str, str]
) -> None:
    """A JSON route's body is read by FastAPI before its dependencies decide who asked: sent as
    multipart, it was allowed an upload's ceiling (101 MB), buffered whole for a stranger."""
    from tests.web_harness import Browser, make_app

    app = make_app(stack)
    stranger = Browser(app)  # no cookie at all: no CSRF check applies
    body = _FieldBeforeToken(20 * 1024 * 1024, "")
    response = await stranger.http.request(
        "PATCH" if "people" in path else "POST",
        path,
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}", **headers},
    )
    assert response.status_code in (401, 403, 413), response.status_code
    read = body.sent * 64 * 1024
    assert read <= stack.settings.form_max_bytes + 2 * 64 * 1024, f"{read:,} bytes read"


async def test_a_token_split_over_many_small_chunks_is_still_found() -> None:
    """Chunked, a byte at a time: the token is found whole, and what was read is handed on."""
    from web.csrf import _token_field

    body = _multipart(("csrftoken", "t" * 100, None), ("f", "data", "a.txt"))
    messages = [
        {"type": "http.request", "body": body[i : i + 1], "more_body": i + 1 < len(body)}
        for i in range(len(body))
    ]
    queue = list(messages)

    async def receive() -> dict[str, object]:
        return queue.pop(0)

    token, read = await _token_field(BOUNDARY.encode(), receive, 1024 * 1024)  # type: ignore[arg-type]
    assert token == b"t" * 100
    assert b"".join(m["body"] for m in read) + b"".join(m["body"] for m in queue) == body
