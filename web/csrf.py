"""The CSRF check for multipart bodies, which asgi-csrf leaves to this module.

asgi-csrf protects every other unsafe request (urlencoded forms by their `csrftoken` field;
any other body, or none, only by the `x-csrftoken` header), but its multipart parsing calls
python-multipart with an argument current releases no longer accept (`FileClass`), so it is
told to skip multipart bodies and `MultipartCsrf`, just inside it, checks them instead, before
any route runs: the same double-submit rule (the form's `csrftoken` field, or the header,
equals the signed cookie), with the same signer. Checking in a route (when it reads its form)
left every route that reads no form open to a multipart post: sign-out, token revocation, any
DELETE of the API.

Exempt, as in asgi-csrf: safe methods; requests carrying no cookie at all (no session to ride
on; sign-in itself is always checked, against login CSRF); and API calls with
`Authorization: Bearer`, since a cross-site page cannot make a browser send that header (it
would need a CORS preflight this app never grants) and the token is no ambient credential.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from itsdangerous import BadSignature
from itsdangerous.url_safe import URLSafeSerializer
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "csrftoken"
NAMESPACE = "csrftoken"
FIELD = b"csrftoken"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_TOKEN_MAX = 1024
"""A genuine token is about 100 characters; a longer field is not one, and is not kept."""


class CsrfFailed(Exception):
    pass


def is_multipart(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    content_type: bytes = headers.get(b"content-type", b"")
    return content_type.split(b";", 1)[0].strip().lower() == b"multipart/form-data"


SendFailed = Callable[[Scope, Send, Any], Awaitable[None]]


class MultipartCsrf:
    """Checks a multipart body's `csrftoken` field before the app sees the body.

    The body is read only as far as that field (forms put it first) and what was read is then
    handed on unchanged, so an upload is neither buffered whole nor parsed twice. A file part
    before the token is refused: the token must come first, as every form here sends it.
    """

    def __init__(
        self,
        app: ASGIApp,
        signing_secret: str,
        always_protect: Collection[str],
        send_failed: SendFailed,
        max_before_token: int,
    ) -> None:
        self.app = app
        self.signer = URLSafeSerializer(signing_secret)
        self.always_protect = frozenset(always_protect)
        self.send_failed = send_failed
        self.max_before_token = max_before_token
        """The most bytes read looking for the token (a form's size): anyone may hold a valid
        cookie (GET /login gives one), and what is read is kept until the token is found, so
        a body that keeps the token for last must not be buffered whole before any route
        decides who asked."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or not is_multipart(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        headers = request.headers
        if headers.get("authorization", "")[:7].lower() == "bearer ":
            await self.app(scope, receive, send)
            return
        if "cookie" not in headers and scope["path"] not in self.always_protect:
            await self.app(scope, receive, send)
            return
        cookie = request.cookies.get(COOKIE, "")
        try:
            self.signer.loads(cookie, NAMESPACE)
        except BadSignature:
            await self.send_failed(scope, send, "missing or invalid security cookie")
            return
        header = headers.get("x-csrftoken", "")
        if header and secrets.compare_digest(header, cookie):
            await self.app(scope, receive, send)
            return
        boundary = parse_options_header(headers.get("content-type", ""))[1].get(b"boundary")
        if not boundary:
            await self.send_failed(scope, send, "multipart body without a boundary")
            return
        token, read = await _token_field(boundary, receive, self.max_before_token)
        if token is None or not secrets.compare_digest(token, cookie.encode()):
            await self.send_failed(scope, send, "the form's security token does not match")
            return

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)


class _Found(Exception):
    pass


async def _token_field(
    boundary: bytes, receive: Receive, limit: int
) -> tuple[bytes | None, list[Message]]:
    """The `csrftoken` field's value (None when a file, the end, garbage, or more than `limit`
    bytes come first) and the messages read to find it."""
    read: list[Message] = []
    size = 0
    header_field = bytearray()
    header_value = bytearray()
    disposition = b""
    value = bytearray()
    state: dict[str, Any] = {"name": None, "file": False, "stop": False}

    def on_part_begin() -> None:
        nonlocal disposition
        disposition = b""
        value.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        nonlocal disposition
        if bytes(header_field).strip().lower() == b"content-disposition":
            disposition = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(disposition)
        state["name"] = options.get(b"name")
        if b"filename" in options:
            state["stop"] = True  # a file before the token
            raise _Found

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["name"] == FIELD:
            value.extend(data[start:end])
            if len(value) > _TOKEN_MAX:
                state["stop"] = True
                raise _Found

    def on_part_end() -> None:
        if state["name"] == FIELD:
            raise _Found

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                return None, read
            parser.write(message.get("body", b""))
            size += len(message.get("body", b""))
            if size > limit:  # and no token yet: a form puts it first, none is coming
                return None, read
            if not message.get("more_body", False):
                return None, read
    except _Found:
        return (None if state["stop"] else bytes(value)), read
    except Exception:  # python-multipart's parse errors: a body no form sends
        return None, read
