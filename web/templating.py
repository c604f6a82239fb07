"""Jinja2 for the pages: autoescaped (anything a user typed is inert), with a few filters."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from web.operations import new_key

HERE = Path(__file__).parent


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def countdown(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "no deadline"
    now = now or datetime.now(UTC)
    seconds = int((value - now).total_seconds())
    late = seconds < 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d {hours}h" if days else f"{hours}h {minutes}m"
    return f"overdue by {text}" if late else f"{text} left"


def label(value: Any) -> str:
    text = value.value if isinstance(value, Enum) else str(value)
    return text.replace("_", " ")


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(when=when, countdown=countdown, label=label)
    # new_key: a fresh idempotency key for each action form rendered.
    templates.env.globals.update(now=lambda: datetime.now(UTC), new_key=new_key)
    return templates
