"""Uploads are authorised before they are read: who may add evidence to this dispute now, and
each file's type and size as its part arrives. A refused upload leaves no row, no stored
bytes and no temporary file, also when the client goes away halfway."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import func, select

from models.enums import DisputeStage
from models.tables import Dispute, Evidence, EvidenceBlob
from tests.conftest import Stack
from tests.web_harness import api, filing_form, make_app, messages, served, signed_in, token_for

CLAIMANT = "nora@northwind.example"
OUTSIDER = "fay@fabrikam.example"
COMPLIANCE = "carol.compliance@vendor.example"
ADMIN = "ada.admin@vendor.example"
BOUNDARY = "accord-test-boundary"
CHUNK = 64 * 1024


class CountingBody:
    """A multipart body of one file, streamed in chunks (no Content-Length): it counts how much
    of it the server asked for."""

    def __init__(self, size: int, content_type: str = "text/plain", first: bytes = b"") -> None:
        self.head = (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="files"; filename="big.txt"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode() + first
        self.size = size
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.chunks = 1 + -(-size // CHUNK) + 1
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.sent += 1
        yield self.head
        left = self.size
        while left > 0:
            self.sent += 1
            yield b"a" * min(CHUNK, left)
            left -= CHUNK
        self.sent += 1
        yield self.tail

    @property
    def headers(self) -> dict[str, str]:
        return {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def rows(stack: Stack) -> tuple[int, int]:
    with stack.sessions.read() as session:
        return (
            session.exec(select(func.count()).select_from(Evidence)).one(),
            session.exec(select(func.count()).select_from(EvidenceBlob)).one(),
        )


def temporary_files() -> set[str]:
    """Files this process holds open that are temporary: unlinked (a spooled upload), or named
    in the temp folder itself. Not the files in folders below it: the test's SQLite database
    lives in one, and a connection the pool opens meanwhile holds its `-shm` open (in CI that
    was taken for a spooled upload left behind)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if os.path.dirname(target) == tempfile.gettempdir() or target.endswith("(deleted)"):
            found.add(target)
    return found


def state_files(stack: Stack) -> set[Path]:
    return {p for p in Path(stack.settings.state_dir).rglob("*") if "-journal" not in p.name}


async def test_an_upload_is_refused_before_its_bytes_are_read(stack_on_both: Stack) -> None:
    stack = stack_on_both
    app = make_app(stack)
    number = (await stack.file()).number
    closed = (await stack.file(submission_id="to-withdraw", respondent_ids=["fabrikam"])).number
    await stack.wait_for(closed, lambda s: s.stage is DisputeStage.TRIAGE)
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        withdrawn = await nora.post(
            f"/api/disputes/{closed}/withdraw", json={"reason": "We settled it ourselves"}
        )
        assert withdrawn.status_code == 200, withdrawn.text
    for _ in range(100):  # the read model follows the workflow
        with stack.sessions.read() as session:
            if session.get(Dispute, closed).stage is DisputeStage.WITHDRAWN:  # type: ignore[union-attr]
                break
        await asyncio.sleep(0.1)
    before_rows, before_files, before_temp = rows(stack), state_files(stack), temporary_files()
    five_mb = 5 * 1024 * 1024

    async def refused(client: httpx.AsyncClient, url: str, status: int, words: str) -> None:
        body = CountingBody(five_mb)
        response = await client.post(url, content=body, headers=body.headers)
        assert response.status_code == status, response.text[:500]
        assert words in response.text, response.text[:500]
        # Not read past its first chunk: refused on who asked, before the body.
        assert body.sent <= 1, f"{url}: {body.sent} of {body.chunks} chunks read"

    async with api(app) as anonymous:
        await refused(anonymous, f"/api/disputes/{number}/evidence", 401, "Sign-in required")
    for login, url, status, words in (
        (OUTSIDER, f"/api/disputes/{number}/evidence", 404, "does not exist"),
        (COMPLIANCE, f"/api/disputes/{number}/evidence", 403, "compliance"),
        (ADMIN, f"/api/disputes/{number}/evidence", 409, "add evidence in stage"),
        (CLAIMANT, f"/api/disputes/{closed}/evidence", 409, "withdrawn"),
    ):
        async with api(app, token_for(stack, login)) as client:
            await refused(client, url, status, words)
    # The page's form, by a browser signed in as someone who may not add evidence here (with
    # its CSRF token: without it the post is refused even earlier, as a forged one).
    outsider = await signed_in(app, OUTSIDER)
    try:
        body = CountingBody(five_mb)
        response = await outsider.http.post(
            f"/disputes/{number}/evidence",
            content=body,
            headers={**body.headers, "x-csrftoken": outsider.csrf},
        )
        assert response.status_code == 404, response.text[:300]
        assert body.sent <= 1
    finally:
        await outsider.close()
    assert rows(stack) == before_rows
    assert state_files(stack) == before_files
    assert temporary_files() <= before_temp


@pytest.mark.parametrize(
    ("content_type", "size", "words"),
    [
        ("application/x-msdownload", 5 * 1024 * 1024, "type application/x-msdownload"),
        ("text/plain", 5 * 1024 * 1024, "the limit is 1,048,576"),
    ],
)
async def test_a_file_of_a_refused_type_or_size_is_refused_as_it_arrives(
    stack: Stack, content_type: str, size: int, words: str
) -> None:
    stack.settings.upload_max_bytes = 1024 * 1024
    app = make_app(stack)
    number = (await stack.file()).number
    before_rows, before_temp = rows(stack), temporary_files()
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        body = CountingBody(size, content_type)
        response = await nora.post(
            f"/api/disputes/{number}/evidence", content=body, headers=body.headers
        )
    assert response.status_code == 422, response.text[:500]
    problem = response.json()
    assert problem["errors"][0]["field"] == "files[0]"
    assert words in problem["errors"][0]["message"]
    # Refused while the file arrived: the rest was never asked for.
    assert body.sent < body.chunks // 2, f"{body.sent} of {body.chunks} chunks read"
    assert rows(stack) == before_rows
    assert temporary_files() <= before_temp


async def test_a_client_gone_halfway_through_an_upload_leaves_nothing(stack: Stack) -> None:
    """Over a real socket: the client sends the headers and half the file, then closes."""
    app = make_app(stack)
    number = (await stack.file()).number
    token = token_for(stack, CLAIMANT)
    before_rows, before_files = rows(stack), state_files(stack)
    async with served(app) as base:
        before_temp = temporary_files()
        host, port = base.removeprefix("http://").split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        body = CountingBody(4 * 1024 * 1024)
        head = (
            f"POST /api/disputes/{number}/evidence HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body.head) + body.size + len(body.tail)}\r\n\r\n"
        ).encode()
        writer.write(head + body.head + b"a" * (body.size // 2))
        await writer.drain()
        await asyncio.sleep(0.5)  # the server is reading the part
        writer.close()
        await writer.wait_closed()
        # The server is still well, and what it had read is gone.
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(50):
                if temporary_files() <= before_temp:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/health")).status_code == 200
        assert temporary_files() <= before_temp
    assert rows(stack) == before_rows
    assert state_files(stack) == before_files


async def test_more_files_than_allowed_are_refused_naming_the_field(stack: Stack) -> None:
    stack.settings.upload_max_files = 2
    app = make_app(stack)
    number = (await stack.file()).number
    files = [("files", (f"note-{i}.txt", f"note {i}".encode(), "text/plain")) for i in range(3)]
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        response = await nora.post(f"/api/disputes/{number}/evidence", files=files)
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {"field": "files", "message": "more than 2 files; at most 2 at a time"}
        ]
        # Not a readable multipart body at all: said so, on the form.
        garbled = await nora.post(
            f"/api/disputes/{number}/evidence",
            content=b"--x\r\nno headers here",
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
        assert garbled.status_code == 422, garbled.text
        assert garbled.json()["errors"][0]["field"] in ("form", "files")
    assert rows(stack) == (0, 0)


async def test_the_filing_page_names_a_refused_file_and_keeps_what_was_typed(
    stack: Stack,
) -> None:
    stack.settings.upload_max_bytes = 1024 * 1024
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    try:
        response = await browser.post(
            "/disputes/new",
            filing_form(summary="Contoso registered our Acme deal after we did"),
            files=[
                ("files", ("tool.exe", b"MZ" + b"\0" * 3_000_000, "application/x-msdownload")),
                ("files", ("huge.txt", b"x" * 2_000_000, "text/plain")),
            ],
        )
        assert response.status_code == 422, response.text[:500]
        shown = messages(response.text)
        assert any("type application/x-msdownload" in m for m in shown), shown
        assert any("huge.txt is 2,000,000 bytes; the limit is 1,048,576" in m for m in shown), shown
        assert "Contoso registered our Acme deal after we did" in response.text
    finally:
        await browser.close()
    assert rows(stack) == (0, 0)
    with stack.sessions.read() as session:
        assert session.exec(select(func.count()).select_from(Dispute)).one() == 0
