"""The parts every payload shares: the text and money types, `Payload` (frozen), the actor,
a contested object."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from models.enums import (
    ObjectKind,
    Role,
)
from models.text import StoredLine, StoredProse

# Every text field refuses what cannot be stored or shown (models.text): multi-line ones
# (StoredProse) keep tab and line breaks, one-line ones (StoredLine) do not.
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000), StoredProse
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=5_000), StoredProse
]
Ref = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), StoredLine
]
PartnerId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), StoredLine
]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5_000), StoredProse]
Clause = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1_000), StoredLine
]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Actor(Payload):
    """Who performs an action; resolved from the directory by the caller (CLI, web, API)."""

    id: str
    """Person id, or a partner contact's email."""
    role: Role
    name: str = ""
    partner_id: str | None = None
    """For partner users: the organisation they act for."""


SYSTEM = Actor(id="accord", role=Role.SYSTEM, name="Accord")


class ContestedObject(Payload):
    kind: ObjectKind
    ref: Ref

    def label(self) -> str:
        return f"{self.kind.value}:{self.ref}"
