"""Customer names and web domains as matching compares them. Pure functions, no I/O.

A CRM holds one customer under many spellings: "ACME Corp.", "Acme Corporation", "acme, inc",
"Acmé", "Акме". The key of a name is what is left when the legal form (cleanco, in every
language it knows), case, accents, transliteration (anyascii), punctuation and a leading
"the" are gone; two registrations of one customer usually share it, and fuzzy scoring compares
keys, not raw names."""

from __future__ import annotations

import re
import unicodedata

from anyascii import anyascii
from cleanco import basename  # type: ignore[import-untyped]

_NOT_WORD = re.compile(r"[^0-9a-z]+")
_LEADING_ARTICLE = re.compile(r"^(?:the|les?|la|die|der|das|el|il) ")
_AMPERSAND = re.compile(r"\s*&\s*")


def customer_key(name: str) -> str:
    """`name` reduced to lower-case ASCII words: legal form, accents and punctuation gone."""
    text = unicodedata.normalize("NFKC", name).strip()
    # cleanco reads the legal form off the name as written ("GmbH & Co. KG", "S.A."), so it
    # goes first, twice for stacked forms ("Acme Holdings Ltd Inc").
    text = basename(basename(text)) or text
    ascii_text = anyascii(text).lower()
    ascii_text = _AMPERSAND.sub(" and ", ascii_text)
    words = _NOT_WORD.sub(" ", ascii_text).strip()
    words = _LEADING_ARTICLE.sub("", words)
    # A legal form cleanco left because punctuation hid it ("acme-gmbh"): once more on words.
    return (basename(words) or words)[:200]


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def domain(value: str | None) -> str | None:
    """The registrable host of a web address or an email address, lower case, without `www.`
    or a port: "https://www.Acme.com/about" and "jo@acme.com" are both "acme.com". None for an
    empty value."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    if "@" in text and "/" not in text:
        text = text.rsplit("@", 1)[1]
    text = _SCHEME.sub("", text)
    host = re.split(r"[/?#:]", text, maxsplit=1)[0].strip(".")
    if host.startswith("www."):
        host = host[4:]
    return host or None
