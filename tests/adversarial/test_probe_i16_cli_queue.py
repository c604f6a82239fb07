"""Probes of issue 16 (items 3, 5, 6, 7) from outside, as a hostile verifier: the work queue's
query strings as a client may send them (raw, badly encoded, repeated, huge), `accord partners`
and `accord people` over a directory holding hostile names, and how `accord run` stops."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import Stack
from tests.test_cli_reference import invoke
from tests.web_harness import api, make_app, signed_in, token_for

# Raw query strings, sent as written (not encoded again by the client), and the parameter each
# must be refused naming.
HOSTILE_QUERIES = (
    ("sort=%ff", "sort"),
    ("sort=%C0%80", "sort"),
    ("sort=due%00", "sort"),
    ("sort=%F0%9D%94%A1ue", "sort"),
    ("sort=DUE", "sort"),
    ("sort=due%27%3B%20DROP%20TABLE%20task%3B--", "sort"),
    ("sort=" + "a" * 60_000, "sort"),
    ("order=-1", "order"),
    ("order=DESC", "order"),
    ("order=desc&order=desc", "order"),
    ("category=99999999999999999999999", "category"),
    ("category=-1", "category"),
    ("category=pricing%20OR%201%3D1", "category"),
    ("stage=%E2%80%AEtriage", "stage"),
    ("sla=1e309", "sla"),
    ("kind=mediate%0Aaccept_assignment", "kind"),
    ("category=" + "&category=".join(["nope"] * 1_000), "category"),
)


async def test_hostile_query_strings_are_a_400_naming_the_parameter_never_a_500(
    stack: Stack,
) -> None:
    app = make_app(stack)
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    await stack.wait_for_event(number, "mediator_offered")
    mediator = f"{state.candidate_mediator_id}@vendor.example"
    browser = await signed_in(app, mediator)
    try:
        for query, name in HOSTILE_QUERIES:
            page = await browser.get(f"/inbox?{query}")
            assert page.status_code == 400, (query[:80], page.status_code)
            assert f"<strong>{name}</strong>" in page.text or f"{name}:" in page.text, query[:80]
            assert "a" * 1000 not in page.text
    finally:
        await browser.close()
    async with api(app, token_for(stack, mediator)) as client:
        for query, name in HOSTILE_QUERIES:
            answer = await client.get(f"/api/tasks?{query}")
            assert answer.status_code == 400, (query[:80], answer.status_code, answer.text[:300])
            assert [e["field"] for e in answer.json()["errors"]] == [name], query[:80]
            assert len(answer.text) < 5_000
        # Parameters the queue does not know (numbers included) are ignored, as documented.
        for query in ("limit=-1", "page=99999999999999999999", "%00=x", "=due", "sort"):
            answer = await client.get(f"/api/tasks?{query}")
            assert answer.status_code == 200, (query, answer.status_code, answer.text[:300])
            assert [t["dispute_number"] for t in answer.json()] == [number]


pytestmark = pytest.mark.timeout(300)


# --- accord partners / accord people over hostile names -----------------------------------------

LONG_NAME = ("Very Long Partner Name Incorporated " * 6).strip()[:200]
HOSTILE_PARTNERS = [
    # A name as long as the directory takes (200), and a contact's as long.
    ("longco", LONG_NAME, "L" * 200),
    # A right-to-left override: everything after it on the line is shown reversed.
    ("rlo", "Evil \u202eCorp\u202c Ltd", "Rita \u202eOL"),
    # Line and paragraph separators: a second line forged inside one row.
    ("sep", "Line\u2028gold     NA-East  99\u2029forged", "Sep \u2028Arator"),
    # Characters two columns wide, and zero-width ones: the columns must still line up.
    ("wide", "株式会社テスト商事株式会社テスト商事株式会社", "山田太郎"),
    ("zw", "Zero\u200bWidth\u200b\u200b\u200b\u200b\u200b\u200b\u2066Isolate\u2069", "Z"),
    ("comb", "Co\u0301\u0301\u0301mbining Marks", "C"),
]
HOSTILE_PEOPLE = [
    ("p.rlo", "Mallory \u202eroiR\u202c", "vendor"),
    ("p.long", "X" * 200, "longco"),
    ("p.wide", "山田花子山田花子山田花子山田花子山田花子山田花子山田花子", "wide"),
]
UNSEEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def columns(line: str) -> int:
    """How many terminal columns a line takes (wide characters two, combining marks none)."""
    import unicodedata

    width = 0
    for char in line:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


@pytest.fixture
def hostile_directory(tmp_path: Path) -> str:
    from accord.db import SessionFactory, make_engine
    from accord.directory import import_directory, parse_directory
    from accord.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'accord.db'}"
    upgrade(url)
    directory = {
        "partners": [
            {
                "id": pid,
                "name": name,
                "tier": "gold",
                "regions": ["NA-East", "EU\u2028West"],
                "calendar": "US-NY",
                "contacts": [{"name": contact, "email": f"c@{pid}.example"}],
            }
            for pid, name, contact in HOSTILE_PARTNERS
        ],
        "people": [
            {
                "id": pid,
                "name": name,
                "email": f"{pid}@vendor.example",
                "role": "mediator",
                "calendar": "US-NY",
                "organisation": organisation,
            }
            for pid, name, organisation in HOSTILE_PEOPLE
        ],
    }
    sessions = SessionFactory(make_engine(url))
    with sessions.begin() as session:
        import_directory(session, parse_directory(json.dumps(directory)))
    return url


def readable(out: str, ids: list[str]) -> None:
    lines = out.split("\n")
    wide = [line for line in lines if columns(line) > 80]
    assert wide == [], f"{len(wide)} lines wider than 80 columns, e.g. {wide[0]!r}"
    unseen = sorted(
        {f"U+{ord(c):04X}" for c in out if unicodedata.category(c) in UNSEEN} - {"U+000A"}
    )
    assert unseen == [], f"invisible or line-moving characters printed as they are: {unseen}"
    # Every id starts a line of its own, once: no name pushed a row's start elsewhere.
    for pid in ids:
        assert len([line for line in lines if line.startswith(f"{pid} ")]) == 1, (pid, out)


def test_hostile_names_keep_the_partners_and_people_tables_readable(
    hostile_directory: str,
) -> None:
    """A 200-character name made every row of `accord partners` 200 columns wide (the last
    column wrapped alone, far to the right); a right-to-left override, a line separator or a
    zero-width character in a name went to the terminal as it was."""
    out = invoke("partners", DATABASE_URL=hostile_directory)
    readable(out, [pid for pid, _, _ in HOSTILE_PARTNERS])
    out = invoke("partners", "--contacts", DATABASE_URL=hostile_directory)
    readable(out.split("Contacts (they act with")[0], [pid for pid, _, _ in HOSTILE_PARTNERS])
    readable(out, [])
    out = invoke("people", DATABASE_URL=hostile_directory)
    readable(out, [pid for pid, _, _ in HOSTILE_PEOPLE])
    # What was hidden is shown, so that an admin sees it and can mend the directory.
    assert "\\u202e" in out
    # The names are all there, wrapped within their column, not cut.
    assert out.count("X") == 200
    # --json keeps them exactly as stored.
    rows = json.loads(invoke("people", "--json", DATABASE_URL=hostile_directory))
    assert {r["id"]: r["name"] for r in rows}["p.rlo"] == "Mallory \u202eroiR\u202c"
