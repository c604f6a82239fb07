"""Jinja2 for the pages: autoescaped (anything a user typed is inert), with the filters of
accord.platform.wording (the same words mail and the CLI use)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates

from accord.disputes.operations import new_key
from accord.platform import wording

HERE = Path(__file__).parent


def make_templates(names: wording.NamesProvider | None = None) -> Jinja2Templates:
    """`names` gives partners' and people's names to pages that do not pass their own."""
    templates = Jinja2Templates(directory=HERE / "templates")
    wording.install(templates.env, names)
    # new_key: a fresh idempotency key for each action form rendered.
    templates.env.globals.update(now=lambda: datetime.now(UTC), new_key=new_key)
    return templates
