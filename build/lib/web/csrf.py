"""The CSRF check for multipart forms.

asgi-csrf protects every other unsafe request, but its multipart parsing calls
python-multipart with an argument current releases no longer accept (`FileClass`), so
multipart bodies are skipped there and checked here instead, once the form is parsed: the
same double-submit rule (the form's token equals the signed cookie), with the same signer.
"""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature
from itsdangerous.url_safe import URLSafeSerializer
from starlette.requests import Request
from starlette.types import Scope

COOKIE = "csrftoken"
NAMESPACE = "csrftoken"


class CsrfFailed(Exception):
    pass


def is_multipart(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    content_type: bytes = headers.get(b"content-type", b"")
    return content_type.split(b";", 1)[0].strip().lower() == b"multipart/form-data"


def check(request: Request, secret: str, submitted: str | None) -> None:
    """Raise CsrfFailed unless `submitted` is this browser's valid token."""
    if request.headers.get("authorization", "")[:7].lower() == "bearer ":
        return  # a token-authenticated API call carries no ambient credential to forge
    cookie = request.cookies.get(COOKIE, "")
    token = submitted or request.headers.get("x-csrftoken", "")
    try:
        URLSafeSerializer(secret).loads(cookie, NAMESPACE)
    except BadSignature:
        raise CsrfFailed("missing or invalid security cookie") from None
    if not token or not secrets.compare_digest(token, cookie):
        raise CsrfFailed("the form's security token does not match")
