"""Request limits, enforced before FastAPI and pydantic see a body.

Each kind of body has its own ceiling (a JSON action, a directory import, a page's form, an
upload), refused with 413 by its declared length before a byte is read, or by counting when it
is chunked. A JSON body within its size is then checked for shape in a worker thread (so the
event loop, and /health, keep answering): nesting depth, the number of members (object keys
and array items together) and the length of each string. Without this, a 2 MB object of
200,000 unknown keys cost pydantic 200,000 errors and the client a 20 MB answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.platform.settings import Settings
from web.problems import problem_response


@dataclass(frozen=True)
class JsonLimits:
    max_bytes: int
    max_depth: int
    max_members: int
    max_string: int


DEPTH = 32
"""Deeper than any payload nests (a filing's objects, a directory's records: 4 or 5)."""
STRING = 100_000
"""Characters in one JSON string; the longest field anywhere takes 50,000."""


def json_limits(settings: Settings, path: str) -> JsonLimits:
    """The limits of a JSON body sent to `path`: a directory import may be large, everything
    else is one action or one filing."""
    if path.rstrip("/") == "/api/directory":
        return JsonLimits(settings.directory_json_max_bytes, DEPTH, 200_000, STRING)
    return JsonLimits(settings.json_max_bytes, DEPTH, 10_000, STRING)


def is_json(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type").split(b";", 1)[0].strip().lower()
    return content_type == b"application/json" or (
        content_type.startswith(b"application/") and content_type.endswith(b"+json")
    )


UPLOADS = re.compile(r"^(?:/api)?/disputes/(?:new|[^/]+/evidence)/?$|^/admin/directory/import/?$")
"""The routes that take files. Any other route's multipart body is held to a form's size: a
JSON route's body is read by FastAPI before its dependencies decide who asked, so an upload's
ceiling there let a stranger make the server buffer 100 MB."""


CHANNEL_FILES = "/api/channel/imports"
"""The channel-data file import (web.channel): its body is the file, read by the route only
once the caller is known to be an admin."""


def body_limit(settings: Settings, scope: Scope) -> int:
    """The largest body a request of this kind may carry."""
    if str(scope.get("path", "")).rstrip("/") == CHANNEL_FILES and scope.get("method") == "POST":
        return settings.channel_import_max_bytes
    content_type = _header(scope, b"content-type").split(b";", 1)[0].strip().lower()
    if content_type == b"multipart/form-data" and UPLOADS.match(str(scope.get("path", ""))):
        # Everything an upload may legitimately carry, plus room for the form's other fields.
        return settings.upload_max_bytes * settings.upload_max_files + 1024 * 1024
    if is_json(scope):
        return json_limits(settings, str(scope.get("path", ""))).max_bytes
    return settings.form_max_bytes


def bounds_itself(scope: Scope) -> bool:
    """The codec endpoint reads its body itself, within ACCORD_CODEC_MAX_BYTES and its own
    shape rules (web.codec): one event's payloads, each a base64 string up to Temporal's 2 MB,
    are no form, and its refusals speak the codec-server protocol's terms."""
    path = str(scope.get("path", ""))
    return path == "/codec" or path.startswith("/codec/")


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value)
    return b""


class BodySizeLimit:
    """Refuse a request body over its kind's limit with 413 before it is parsed or spooled: by
    its Content-Length when it declares one, and by counting when it is chunked."""

    def __init__(self, app: ASGIApp, limit: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or bounds_itself(scope):
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(scope, send, limit)
            return
        received = 0
        started = refused = False

        async def counting_receive() -> Any:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not started:
                    # Answer now and let the app see the client go away: whatever it would
                    # have said about a half-read body is not sent.
                    refused = True
                    await _too_large(scope, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise
            # The app tripped over the disconnect we gave it; the client has its answer.


class JsonShapeGuard:
    """Inside BodySizeLimit (so the body is already bounded): a JSON body is read whole, checked
    against its route's JsonLimits in a worker thread, and handed on only if it passes; the
    app then reads the same bytes."""

    def __init__(self, app: ASGIApp, limits: Callable[[str], JsonLimits]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_json(scope) or bounds_itself(scope):
            await self.app(scope, receive, send)
            return
        if str(scope.get("path", "")).rstrip("/") == CHANNEL_FILES:
            # A Salesforce export of up to 100,000 records, read by its importer (which names a
            # record's problem by its position), within the size limit above.
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away (or the size limit answered): nothing to do
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        found = await anyio.to_thread.run_sync(shape_problem, body, self.limits(scope["path"]))
        if found is not None:
            field, why = found
            response = problem_response(
                422, "Invalid input", f"{field}: {why}", kind="validation", errors=[found]
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: a disconnect, when it comes

        await self.app(scope, replay, send)


def shape_problem(body: bytes, limits: JsonLimits) -> tuple[str, str] | None:
    """What is wrong with the JSON body's shape, as (field, message), or None. The field is the
    member at fault (`facts`, `contested_objects.0.ref`) where one is, else `body`. An empty body
    is left to the route (which says the body is required)."""
    if not body.strip():
        return None
    try:
        document = json.loads(body, parse_int=_integer)
    except RecursionError:
        return "body", f"nests deeper than {limits.max_depth} levels"
    except UnicodeDecodeError:
        return "body", "is not UTF-8 text"
    except json.JSONDecodeError as exc:
        # The parser's own words name the fault and its position, never the input.
        return "body", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    members = 0
    stack: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list):
            if len(path) >= limits.max_depth:
                return _field(path), f"nests deeper than {limits.max_depth} levels"
            members += len(value)
            if members > limits.max_members:
                return "body", f"has more than {limits.max_members:,} members (keys and items)"
            if isinstance(value, dict):
                for key in value:
                    if len(key) > limits.max_string:
                        why = f"has a key longer than {limits.max_string:,} characters"
                        return _field(path), why
                stack.extend((item, (*path, key)) for key, item in value.items())
            else:
                stack.extend((item, (*path, str(i))) for i, item in enumerate(value))
        elif isinstance(value, str) and len(value) > limits.max_string:
            return _field(path), f"is longer than {limits.max_string:,} characters"
        elif isinstance(value, _LongInteger):
            return _field(path), f"is a number of more than {_INT_DIGITS:,} digits"
    return None


_INT_DIGITS = 4300
"""Python's own ceiling on turning digits into an int (sys.get_int_max_str_digits)."""


class _LongInteger:
    """An integer literal with more digits than Python converts: found and named by the walk
    (json.loads would stop at it with a bare ValueError, naming no member)."""


def _integer(digits: str) -> int | _LongInteger:
    return _LongInteger() if len(digits.lstrip("-")) > _INT_DIGITS else int(digits)


def _field(path: tuple[str, ...]) -> str:
    """A member's place, as the validation errors name it, cut short: it is the client's text."""
    return (".".join(path) or "body")[:200]


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    detail = f"The request is larger than this server accepts ({limit:,} bytes); nothing was done."
    if str(scope.get("path", "")).startswith("/api") or is_json(scope):
        content_type = b"application/problem+json"
        body = json.dumps(
            {
                "type": "urn:accord:problem:too-large",
                "title": "Request too large",
                "status": 413,
                "detail": detail,
                "errors": [],
            }
        ).encode()
    else:
        content_type = b"text/html; charset=utf-8"
        body = (
            '<!doctype html><html lang="en"><meta charset="utf-8"><title>Request too large'
            '</title><link rel="stylesheet" href="/static/style.css"><main><h1>Request too '
            f'large</h1><p class="error-detail">{detail}</p><p><a href="/">Home</a></p></main>'
        ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})
