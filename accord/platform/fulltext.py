"""Full-text queries as people write them, read once for both backends.

The syntax is the one people know from web search: words (all must match), "quoted phrases",
and -exclusions. A query that cannot be searched as written (unbalanced quotes, operators alone,
very long) is read as best it can be, with notes saying how; `fts5_expression` and `websearch`
write it for SQLite's FTS5 and PostgreSQL's websearch_to_tsquery, every word a literal, never
syntax. Used by the precedent library (`accord.precedents.search`) and the dispute list
(`accord.disputes.search`)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

MAX_QUERY = 200


START, STOP = "\x02", "\x03"
"""Snippet highlight markers: control characters no text contains, replaced after escaping."""


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """How the query was read, when it was not searchable as written."""

    @property
    def empty(self) -> bool:
        return not (self.terms or self.phrases)


WORD = re.compile(r"[\w][\w'-]*", re.UNICODE)


def parse_query(raw: str) -> ParsedQuery:
    notes: list[str] = []
    if len(raw) > MAX_QUERY:
        raw = raw[:MAX_QUERY]
        notes.append(f"the query was cut to its first {MAX_QUERY} characters")
    if raw.count('"') % 2:
        raw += '"'
        notes.append("an unclosed quote was closed at the end")
    terms: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    for negative, quoted, bare in re.findall(r'(-?)(?:"([^"]*)"|(\S+))', raw):
        words = WORD.findall(quoted if quoted else bare)
        if not words:
            continue
        if negative:
            excluded.append(" ".join(words))
        elif quoted and len(words) > 1:
            phrases.append(" ".join(words))
        else:
            terms.extend(w for w in words if w.upper() not in ("AND", "OR", "NOT", "NEAR"))
    if not terms and not phrases and raw.strip():
        notes.append('there is nothing to search for: add a word or a "phrase"')
    return ParsedQuery(tuple(terms), tuple(phrases), tuple(excluded), tuple(notes))


def fts5_string(value: str) -> str:
    """An FTS5 string literal: the text is searched as words, never read as syntax."""
    return '"' + value.replace('"', '""') + '"'


def fts5_expression(query: ParsedQuery, column: str) -> str:
    positive = " AND ".join([*map(fts5_string, query.terms), *map(fts5_string, query.phrases)])
    negative = "".join(f" NOT {fts5_string(e)}" for e in query.excluded)
    return f"{column} : ({positive}{negative})"


def websearch(query: ParsedQuery) -> str:
    """The same query in the syntax PostgreSQL's websearch_to_tsquery reads."""
    parts = [*query.terms, *(f'"{p}"' for p in query.phrases)]
    parts += [f'-"{e}"' if " " in e else f"-{e}" for e in query.excluded]
    return " ".join(parts)


def highlight(snippet: str) -> str:
    return html.escape(snippet).replace(START, "<mark>").replace(STOP, "</mark>")
