"""What every page module shares: rendering, redirects with a message, reading forms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from accord.disputes.access import Viewer
from accord.disputes.evidence import Upload
from web import csrf, service
from web.context import HOME, web
from web.deps import current_viewer
from web.evidence import uploads_in
from web.forms import field_errors
from web.problems import BadInput

ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def render(
    request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    ctx = web(request)
    flash = request.session.pop("flash", None) if "session" in request.scope else None
    token = request.scope["csrftoken"]() if "csrftoken" in request.scope else ""
    return ctx.templates.TemplateResponse(
        request,
        name,
        {
            "viewer": viewer,
            "csrf": token,
            "flash": flash,
            "home": HOME.get(viewer.role, "/") if viewer else "/login",
            "oidc": ctx.settings.oidc_enabled,
            "oidc_label": ctx.settings.oidc_label,
            **context,
        },
        status_code=status,
    )


def back(request: Request, url: str, message: str) -> RedirectResponse:
    request.session["flash"] = message
    return RedirectResponse(url, status_code=303)


async def read_form(
    request: Request, upload_problems: list[tuple[str, str]] | None = None
) -> FormData:
    """The form (its CSRF token was checked before the route ran). Files are checked as they
    arrive and kept in memory only (web.evidence): the first fault is BadInput, or, given
    `upload_problems`, every fault is added there and the rest of the form still read (for a
    page that shows it again)."""
    ctx = web(request)
    if csrf.is_multipart(request.scope):
        form = await service.read_upload_form(ctx, request, problems=upload_problems)
    else:
        try:
            form = await request.form()
        except Exception as exc:  # python-multipart's errors have no common base worth naming
            raise BadInput([("form", f"the form could not be read: {exc}")]) from None
    # Its CSRF token, multipart or not, was checked before the route ran (web.csrf).
    return form


async def read_uploads(form: FormData, name: str = "files") -> list[Upload]:
    return await uploads_in(form, name)


_M = TypeVar("_M", bound=BaseModel)


def validated(model: type[_M], fields: Mapping[str, object]) -> _M:
    """Form fields as the model, or the model's errors on the fields they concern."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise BadInput(field_errors(exc)) from None


def query_form(request: Request, model: type[_M], ignore: tuple[str, ...] = ()) -> _M:
    """A GET form's fields as the model; a field left empty (a select at "any", a blank date)
    means no value rather than an invalid one."""
    raw = {k: v for k, v in request.query_params.items() if v.strip() and k not in ignore}
    return validated(model, raw)
