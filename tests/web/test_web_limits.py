"""Request limits: bodies and JSON complexity are bounded before FastAPI and pydantic see them,
unknown fields are refused quickly, and no problem body grows with the input it refuses."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlmodel import func, select

from models.tables import Dispute
from tests.conftest import Stack
from tests.web_harness import api, make_app, served, token_for

CLAIMANT = "nora@northwind.example"
PROBLEM_CEILING = 16 * 1024
"""No problem body is larger than this, whatever it refuses."""


def many_keys(count: int, prefix: str = "unknown_field_") -> bytes:
    return json.dumps({f"{prefix}{i}": 0 for i in range(count)}).encode()


def dispute_count(stack: Stack) -> int:
    with stack.sessions.read() as session:
        return session.exec(select(func.count()).select_from(Dispute)).one()


def assert_problem(response: httpx.Response, status: int, field: str, words: str) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert len(response.content) < PROBLEM_CEILING, len(response.content)
    problem = response.json()
    assert any(e["field"] == field and words in e["message"] for e in problem["errors"]), problem


async def test_a_hostile_json_body_is_refused_before_it_is_parsed(stack: Stack) -> None:
    app = make_app(stack)
    token = token_for(stack, CLAIMANT)
    async with api(app, token) as client:
        # The body: 2.3 MB, 200,000 unknown keys. Refused by its size, not read.
        huge = many_keys(200_000)
        assert len(huge) > 2_000_000
        response = await client.post(
            "/api/disputes", content=huge, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413, response.text[:500]
        assert len(response.content) < PROBLEM_CEILING
        assert response.json()["type"] == "urn:accord:problem:too-large"

        # Under the size limit but too many members: refused before pydantic lists them all.
        members = many_keys(60_000, "k")
        assert len(members) < 1024 * 1024
        response = await client.post(
            "/api/disputes", content=members, headers={"content-type": "application/json"}
        )
        assert_problem(response, 422, "body", "members")

        # Nested deeper than any payload: refused naming the depth (the parser never recurses).
        deep = b"[" * 100_000 + b"]" * 100_000
        response = await client.post(
            "/api/disputes", content=deep, headers={"content-type": "application/json"}
        )
        assert_problem(response, 422, "body", "deep")

        # One string longer than any field takes.
        long = json.dumps({"summary": "x" * 300_000}).encode()
        response = await client.post(
            "/api/disputes", content=long, headers={"content-type": "application/json"}
        )
        assert_problem(response, 422, "summary", "longer than 100,000 characters")

        # Not JSON at all: said so, briefly.
        response = await client.post(
            "/api/disputes",
            content=b'{"summary": "\xff\xfe' + b"a" * 1000,
            headers={"content-type": "application/json"},
        )
        assert response.status_code in (400, 422), response.text[:500]
        assert len(response.content) < PROBLEM_CEILING

        # Unknown fields within the limits: refused, each named, the list capped.
        response = await client.post(
            "/api/disputes",
            content=many_keys(5_000),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422
        assert len(response.content) < PROBLEM_CEILING, len(response.content)
        problem = response.json()
        assert len(problem["errors"]) <= 21
        assert any(e["field"].startswith("unknown_field_") for e in problem["errors"])
        assert "more" in problem["errors"][-1]["message"]
        assert len(problem["detail"]) < 4_000
    assert dispute_count(stack) == 0


async def test_health_answers_while_hostile_bodies_are_refused(stack: Stack) -> None:
    """Served by uvicorn on a port, as in production: /health is answered while several
    hostile bodies are sent at once, and each of those is refused."""
    app = make_app(stack)
    token = token_for(stack, CLAIMANT)
    bodies = [many_keys(200_000), many_keys(60_000, "k"), b"[" * 500_000 + b"]" * 500_000] * 2
    async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=120) as client:
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        hostile = [
            asyncio.create_task(client.post("/api/disputes", content=body, headers=headers))
            for body in bodies
        ]
        await asyncio.sleep(0)
        health = await client.get("/health")
        refused = await asyncio.gather(*hostile)
    assert health.json() == {"status": "ok"}
    assert all(r.status_code in (413, 422) for r in refused), [r.status_code for r in refused]
    assert all(len(r.content) < PROBLEM_CEILING for r in refused)
    assert dispute_count(stack) == 0
