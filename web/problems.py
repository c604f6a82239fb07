"""Problem bodies (RFC 9457) and the exceptions the routes raise to produce them."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class FieldProblem(BaseModel):
    field: str
    """The input at fault: a body field (`remedies`), a query parameter, or `form`."""
    message: str


class Problem(BaseModel):
    """What every error of the API returns, as `application/problem+json`."""

    type: str = Field(examples=["urn:accord:problem:validation"])
    """urn:accord:problem: followed by validation, refused, not-found, forbidden,
    unauthenticated, csrf, not-running, too-many, bad-request or internal."""
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] = Field(default_factory=list)


PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }
    for code, description in (
        (401, "No valid API token or session"),
        (403, "The role may not do this"),
        (404, "No such dispute or item, or not visible to you"),
        (409, "Refused by the dispute's rules (the workflow's validator says why)"),
        (422, "Invalid input; `errors` names each field"),
        (429, "A volume limit is reached (texts on a dispute, or from you); nothing was done"),
    )
}


LISTED_ERRORS = 20
"""A problem body lists at most this many field errors, then says how many more there were: an
input with 5,000 faults never gets a 5,000-line answer."""
TEXT_CAP = 500
"""Characters kept of a field name or message (both may quote the client's input)."""
DETAIL_CAP = 2_000


def _cut(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[: cap - 1] + "…"


def bounded(detail: str, errors: list[tuple[str, str]] | None) -> tuple[str, list[tuple[str, str]]]:
    """The detail and errors as a problem body or an error page shows them: capped in number and
    in length, whatever the input was."""
    errors = errors or []
    shown = [(_cut(f, TEXT_CAP), _cut(m, TEXT_CAP)) for f, m in errors[:LISTED_ERRORS]]
    if len(errors) > LISTED_ERRORS:
        shown.append(("…", f"and {len(errors) - LISTED_ERRORS:,} more problems not listed"))
    return _cut(detail, DETAIL_CAP), shown


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    errors: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    detail, shown = bounded(detail, errors)
    body = Problem(
        type=f"urn:accord:problem:{kind}",
        title=title,
        status=status,
        detail=detail,
        errors=[FieldProblem(field=f, message=m) for f, m in shown],
    )
    return JSONResponse(
        body.model_dump(),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


class SignInRequired(Exception):
    def __init__(self, reason: str, code: str = "signin") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        """signin (never signed in), expired (session too old or revoked)."""


class Forbidden(Exception):
    """The viewer's role may not use this page or route at all."""


class TooMany(Exception):
    """A volume limit is reached (too many texts on a dispute, or from one sender): 429."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.errors = [(field, message)]


class BadInput(Exception):
    # How the app answers it (web.app): one handler reads these, so a kind of bad input is a
    # subclass with its own answer, not another handler.
    status = 422
    title = "Invalid input"
    kind = "validation"

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors

    def summary(self) -> str:
        return "; ".join(f"{f}: {m}" for f, m in self.errors)


class AlertDecided(BadInput):
    """An alert acted on after someone decided it."""

    status = 409
    title = "Decided already"
    kind = "refused"

    def __init__(self, message: str) -> None:
        super().__init__([("alert", message)])


class BodyTooLarge(BadInput):
    """A body over its route's ceiling, found while the route reads it."""

    status = 413
    title = "Too large"
    kind = "too-large"


class ExportTooLarge(BadInput):
    """An export holding more records than one file carries (accord.reports.exports.EXPORT_LIMIT):
    refused whole, naming the filter that narrows it, rather than cut short as if it were
    complete."""

    title = "Export too large"
    kind = "export-too-large"


class BadQuery(BadInput):
    """A query parameter of a list (sort, order, a filter) with a value it cannot take: 400,
    naming the parameter."""

    status = 400
    title = "Bad request"
    kind = "bad-request"
