"""Text every entry point accepts: one check, at the bottom layer, for every payload.

What cannot be stored or shown is refused where it enters (forms, API, CLI, directory import,
search) with the field named, or, for email, which cannot be refused like a form, cleaned and
the cleaning told (`clean`). Refused or replaced:

- NUL (U+0000): PostgreSQL text cannot hold it;
- unpaired surrogates (U+D800 to U+DFFF): what a broken decoding leaves; they have no UTF-8,
  so no database driver can write them;
- the other C0 and C1 control characters (U+0001 to U+001F, U+007F to U+009F): invisible on a
  page, and in a field that reaches an email header (a summary, a subject) a line break would
  be a header of its own. Multi-line fields (`StoredProse`: facts, notes, reasons, message bodies)
  keep tab, line feed and carriage return; one-line fields (`StoredLine`: summaries, references,
  names, subjects, file names, search words) keep none.

Each field's length limit stays with the field (its StringConstraints), so too long is named
with the field too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import AfterValidator

_LINE_BREAKS = frozenset("\t\n\r")
REPLACEMENT = "\ufffd"


def _unfit(char: str, multiline: bool) -> str | None:
    """Why `char` cannot be kept, or None."""
    if char == "\x00":
        return "a NUL character (U+0000), which cannot be stored"
    category = unicodedata.category(char)
    if category == "Cs":
        return (
            f"an unpaired surrogate (U+{ord(char):04X}), left by text decoded with the wrong"
            " encoding"
        )
    if category == "Cc" and not (multiline and char in _LINE_BREAKS):
        if char in _LINE_BREAKS:
            return f"a line break or tab (U+{ord(char):04X}), which a one-line field cannot hold"
        return f"the control character U+{ord(char):04X}, which cannot be shown"
    return None


# Every character _unfit refuses (Cc: U+0000-001F and U+007F-009F; Cs: the surrogates), found
# by one search in C: a Python loop over each character cost 2 s of a 30,000-row import.
_UNFIT_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNFIT_IN_PROSE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def problem(value: str, *, multiline: bool) -> str | None:
    """Why `value` cannot be stored and shown (its first offending character), or None."""
    found = (_UNFIT_IN_PROSE if multiline else _UNFIT_IN_LINE).search(value)
    return None if found is None else _unfit(found.group(), multiline)


_RECORDED: ContextVar[bool] = ContextVar("accord_recorded_text", default=False)


@contextmanager
def recorded() -> Iterator[None]:
    """Read back what was already accepted (a workflow's history, a stored filing) without
    this module's check: it ran when the text came in. A text taken in before the rule grew
    (a tab in a summary, a form feed in a note) must not make a running dispute unreadable."""
    token = _RECORDED.set(True)
    try:
        yield
    finally:
        _RECORDED.reset(token)


def _check(value: str, multiline: bool) -> str:
    if _RECORDED.get():
        return value
    why = problem(value, multiline=multiline)
    if why is not None:
        raise ValueError(f"holds {why}")
    return value


def check_line(value: str) -> str:
    """`value`, if a one-line field may hold it (raises ValueError saying why not)."""
    return _check(value, multiline=False)


def check_prose(value: str) -> str:
    """`value`, if a multi-line field may hold it (raises ValueError saying why not)."""
    return _check(value, multiline=True)


StoredLine = AfterValidator(check_line)
"""For one-line fields: refuses NUL, unpaired surrogates and every control character."""
StoredProse = AfterValidator(check_prose)
"""For multi-line fields: as StoredLine, but tab, line feed and carriage return are kept."""


def clean(value: str, *, multiline: bool) -> tuple[str, str | None]:
    """`value` with every character a field cannot hold replaced by U+FFFD, and a note saying
    what was replaced (None when nothing was): for email, which cannot be refused like a form."""
    kinds: dict[str, int] = {}
    out: list[str] = []
    for char in value:
        if _unfit(char, multiline) is None:
            out.append(char)
            continue
        category = unicodedata.category(char)
        kind = (
            "NUL"
            if char == "\x00"
            else "undecodable"
            if category == "Cs"
            else "line break"
            if char in _LINE_BREAKS
            else "control"
        )
        kinds[kind] = kinds.get(kind, 0) + 1
        # A line break in a one-line field is a space there (a folded header), not damage.
        out.append(" " if kind == "line break" else REPLACEMENT)
    if not kinds:
        return value, None
    damage = {k: n for k, n in kinds.items() if k != "line break"}
    if not damage:
        return "".join(out), None
    told = " and ".join(f"{n} {k} character{'s' if n > 1 else ''}" for k, n in damage.items())
    return "".join(out), f"{told} replaced by \N{REPLACEMENT CHARACTER}"


def relevant(errors: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The errors a person acts on: pydantic also reports a list with a minimum length as too
    short ('Tuple should have at least 1 item after validation, not 0') when an item of it was
    refused; that one is left out when an error inside the same list is there."""
    every = list(errors)
    locs = [tuple(e.get("loc", ())) for e in every]

    def inside(loc: tuple[Any, ...]) -> bool:
        return any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)

    return [e for e, loc in zip(every, locs, strict=True) if not (_too_short(e) and inside(loc))]


def _too_short(error: Mapping[str, Any]) -> bool:
    return error.get("type") == "too_short" and (error.get("ctx") or {}).get("actual_length") == 0


def plain_error(error: Mapping[str, Any]) -> str:
    """A validation error's message in the words of this module: pydantic refuses an unpaired
    surrogate itself, before any validator runs, as 'unable to parse raw data as a unicode
    string'; said here like every other unstorable character."""
    kind = error.get("type")
    if kind == "string_unicode":
        return "holds an unpaired surrogate, left by text decoded with the wrong encoding"
    context = error.get("ctx") or {}
    # A tagged union (a remedy's "kind") names its tags as enum reprs and itself as a
    # "discriminator": say which field, what it holds and what it may hold, as one writes them.
    field = str(context.get("discriminator", "kind")).strip("'")
    if kind == "union_tag_invalid":
        tags = ", ".join(f"'{t}'" for t in _tags(context.get("expected_tags")))
        return f"{field}: {_given(error, field, context.get('tag'))} is not one of {tags}"
    if kind == "union_tag_not_found":
        return f"{field}: missing; it says which kind this is, one of the kinds the playbook lists"
    if kind in ("too_short", "too_long") and context.get("field_type") in _COLLECTIONS:
        return _how_many(kind, context)
    if kind == "dict_type" and error.get("loc", ())[-1:] == ("shares",):
        return "write each partner's share as partner=percent, e.g. northwind=60, contoso=40"
    if kind in _JSON_SHAPES:
        return f"Input should be {_JSON_SHAPES[kind]}"
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(str(context.get("pattern")), "is not written in the form it takes")
    if kind == "decimal_max_digits":
        return f"at most {context.get('max_digits')} digits"
    if kind == "decimal_max_places":
        return f"at most {context.get('decimal_places')} decimal places"
    if kind == "decimal_whole_digits":
        return f"at most {context.get('whole_digits')} digits before the decimal point"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


# Python's names for a shape ('a valid tuple', 'a valid dictionary or object to extract fields
# from'), as JSON, which every reader writes, names them.
_JSON_SHAPES: dict[str, str] = {
    "tuple_type": "a list",
    "list_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dataclass_type": "an object",
}

# A pattern a field must match, as its reader is told it (pydantic says the expression).
_PATTERNS: dict[str, str] = {
    r"^[A-Z]{3}$": "a currency code: three capital letters, e.g. USD",
    r"^DSP-\d{4}-\d{6}$": "a dispute number, e.g. DSP-2026-000001",
    r"^[!-~]+$": "letters, digits and punctuation only, no spaces",
    r"^[0-9a-f]{64}$": "a SHA-256 digest: 64 lower-case hexadecimal digits",
    r"^tx-[0-9a-f]{32}$": "a stored text's reference: tx- and 32 hexadecimal digits",
    r"^ev-[0-9a-f]{8,32}$": "an evidence reference: ev- and 8 to 32 hexadecimal digits",
    r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$": "a domain name, e.g. northwind.example",
    r"^[0-9A-Za-z.\-]+$": "letters, digits, dots and hyphens only",
}


def _given(error: Mapping[str, Any], field: str, tag: object) -> str:
    """What a tagged union's tag field held, as one writes it in JSON: a text in quotes, a
    number or true/false as itself, null, 'a list', 'an object'; never pydantic's Python text of
    it ("'None'", "'['x']'")."""
    given = error.get("input")
    value = given.get(field, tag) if isinstance(given, Mapping) else tag
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"'{str(value)[:60]}'"


_COLLECTIONS = ("Tuple", "List", "Set", "Dictionary")


def _how_many(kind: object, context: Mapping[str, Any]) -> str:
    """'at least 1 is needed, none was given', 'at most 20, 30 were given': pydantic says
    'Tuple should have at least 1 item after validation, not 0'."""
    given = context.get("actual_length")
    was = "none was given" if not given else f"{given} {'was' if given == 1 else 'were'} given"
    if kind == "too_short":
        least = context.get("min_length")
        return f"at least {least} {'is' if least == 1 else 'are'} needed, {was}"
    return f"at most {context.get('max_length')}, {was}"


_ENUM_REPR_VALUE = re.compile(r"<\w+\.\w+: '([^']*)'>")


def _tags(expected: object) -> list[str]:
    """The tags as the values one writes: pydantic gives them as a list, or as the text of
    their reprs ("<RemedyKind.MDF_CREDIT: 'mdf_credit'>, ...")."""
    if isinstance(expected, list | tuple):
        return [str(getattr(t, "value", t)) for t in expected]
    text = str(expected or "")
    return _ENUM_REPR_VALUE.findall(text) or [t.strip(" '") for t in text.split(",") if t.strip()]
