"""The codec endpoint of the Temporal UI: POST /codec/decode opens sealed payloads (models.codec)
for a signed-in admin or compliance user, in Temporal's codec-server protocol
({"payloads": [{"metadata": {name: base64}, "data": base64}]}, the protobuf JSON of Payloads).

The UI calls it from its own origin with the browser's cookies (TEMPORAL_CODEC_ENDPOINT and
TEMPORAL_CODEC_INCLUDE_CREDENTIALS): the Accord session decides who may read. Served on the same
site as the web app (another port or subdomain), the session cookie (SameSite=Lax) goes along.
Cross-origin reading is allowed to the configured UI origins only (CORS, here alone: the rest of
the app stays same-origin). The form token of the pages cannot come from the UI, so CSRF is held
off otherwise: only a JSON body is read (a cross-origin JSON POST needs a CORS preflight, which
other origins fail), and a request whose Origin is neither this app nor a UI origin is refused.
Decoding changes nothing, and its answer is readable only by an allowed origin.

There is no /encode: the UI does not call it, and nothing here should mint payloads a worker
would take as sealed by Accord.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from accord.disputes.access import Viewer
from models.codec import EncryptionCodec, PayloadDecryptionError
from models.enums import Role
from web.context import web
from web.deps import require
from web.problems import BadInput, Forbidden, problem_response

log = logging.getLogger("accord.web.codec")
PREFIX = "/codec"
MAX_PAYLOADS = 1_000
"""The most payloads one request may carry (an event has a handful; a batch of events, more)."""

router = APIRouter(prefix=PREFIX, include_in_schema=False)
StaffReader = Annotated[Viewer, Depends(require(Role.ADMIN, Role.COMPLIANCE))]
"""Who may read engine payloads: the roles that see every dispute (never a party or a neutral,
whose view of a dispute is limited)."""


class Malformed(BadInput):
    """A request that is not Temporal's codec protocol: 400, naming the part at fault."""


class TooLarge(Exception):
    """The body is over ACCORD_CODEC_MAX_BYTES: 413."""


class Undecodable(Exception):
    """A sealed payload this app cannot open (unknown key id, altered): 422."""


def install_error_handlers(app: FastAPI) -> None:
    """Problem bodies for the codec's own refusals (sign-in and roles are the app's)."""

    async def malformed(request: Request, exc: Exception) -> Response:
        errors = exc.errors if isinstance(exc, Malformed) else []
        return problem_response(
            400,
            "Bad request",
            "; ".join(f"{f}: {m}" for f, m in errors),
            kind="bad-request",
            errors=errors,
        )

    async def too_large(request: Request, exc: Exception) -> Response:
        limit = web(request).settings.codec_max_bytes
        return problem_response(
            413,
            "Request too large",
            f"The codec endpoint reads at most {limit:,} bytes (ACCORD_CODEC_MAX_BYTES).",
            kind="too-large",
        )

    async def undecodable(request: Request, exc: Exception) -> Response:
        return problem_response(422, "Payload not opened", str(exc), kind="undecodable")

    app.add_exception_handler(Malformed, malformed)
    app.add_exception_handler(TooLarge, too_large)
    app.add_exception_handler(Undecodable, undecodable)


def is_codec(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    return path == PREFIX or path.startswith(PREFIX + "/")


class CodecCors:
    """Starlette's CORSMiddleware for the codec endpoint only, admitting the Temporal UI's
    origins with credentials; every other path passes by untouched."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["POST"],
            allow_headers=["content-type", "x-namespace"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_codec(scope):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _check_origin(request: Request) -> None:
    """Before the viewer is looked at: a browser on a foreign origin learns nothing."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser's cross-origin call (a script with a token, curl)
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin.rstrip("/") not in {own, *web(request).settings.codec_origins()}:
        raise Forbidden(
            f"the codec endpoint answers the Temporal UI's origins only, not {origin[:200]!r}"
            " (ACCORD_CODEC_CORS_ORIGINS)"
        )


def _content_type_is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json"


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _base64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise Malformed([(where, "must be a base64 string")])
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed([(where, "is not base64")]) from None


def parse_payloads(body: bytes) -> list[Payload]:
    """The request's payloads, or Malformed naming the first part at fault."""
    try:
        document = json.loads(body.decode("utf-8"))  # json.loads would guess UTF-16 or 32
    except UnicodeDecodeError:
        raise Malformed([("body", "is not UTF-8")]) from None
    except json.JSONDecodeError as exc:
        raise Malformed(
            [("body", f"is not JSON (line {exc.lineno}, column {exc.colno})")]
        ) from None
    except RecursionError:
        raise Malformed([("body", "is nested too deeply")]) from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise Malformed([("body", "holds a number too long to read")]) from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads"), list):
        raise Malformed([("payloads", 'expected {"payloads": [...]}')])
    extra = sorted(set(document) - {"payloads"})
    if extra:
        raise Malformed([(extra[0][:100], "unknown field")])
    items: list[Any] = document["payloads"]
    if len(items) > MAX_PAYLOADS:
        raise Malformed([("payloads", f"at most {MAX_PAYLOADS} in one request")])
    payloads = []
    for n, item in enumerate(items):
        where = f"payloads[{n}]"
        if not isinstance(item, dict):
            raise Malformed([(where, "must be an object with metadata and data")])
        unknown = sorted(set(item) - {"metadata", "data", "externalPayloads"})
        if unknown:
            raise Malformed([(f"{where}.{unknown[0][:100]}", "unknown field")])
        metadata = item.get("metadata", {})
        if not isinstance(metadata, dict):
            raise Malformed([(f"{where}.metadata", "must be an object of base64 strings")])
        fields = {}
        for name, value in metadata.items():
            if not isinstance(name, str) or not name or len(name) > 200 or "\x00" in name:
                raise Malformed([(f"{where}.metadata", "holds a name no payload can have")])
            fields[name] = _base64(value, f"{where}.metadata.{name}")
        payloads.append(
            Payload(metadata=fields, data=_base64(item.get("data", ""), where + ".data"))
        )
    return payloads


@router.post("/decode", dependencies=[Depends(_check_origin)])
async def decode(request: Request, viewer: StaffReader) -> JSONResponse:
    """Open the sealed payloads of a Temporal history for the Temporal UI."""
    settings = web(request).settings
    if not _content_type_is_json(request):
        raise Malformed([("content-type", "must be application/json")])
    namespace = request.headers.get("x-namespace")
    if namespace is not None and namespace != settings.temporal_namespace:
        raise Malformed(
            [("X-Namespace", f"this codec serves the namespace {settings.temporal_namespace!r}")]
        )
    payloads = parse_payloads(await _body(request, settings.codec_max_bytes))
    codec: EncryptionCodec = request.app.state.codec
    try:
        opened = await codec.decode(payloads)
    except PayloadDecryptionError as exc:
        raise Undecodable(str(exc)) from None
    # Who read engine payloads is worth knowing; what they read is not for the log.
    log.info("codec: %s opened %d payloads", viewer.actor.id, len(payloads))
    body = json_format.MessageToDict(Payloads(payloads=opened))
    return JSONResponse({"payloads": body.get("payloads", [])})
