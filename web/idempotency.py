"""One idempotency key, one request: the key's first request is recorded before the workflow
is asked, and the same key with another request is refused instead of answered as the first.

Temporal applies an update id once per dispute, but it cannot tell a retry from a different
request sent under the same key: that is what the record is for. The request's fingerprint is
also part of the update id, so a request the dispute refused frees its key (the record is
removed) without the refusal being handed to the next, different, request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from temporalio.client import Client

from accord.disputes import texts
from accord.disputes.live import shows
from accord.disputes.operations import DisputeGone, Operation, Refused, perform, update_id
from accord.platform.db import SessionFactory
from models.enums import Action
from models.payloads import ActionPayload, ActionResult, Actor, TextRef
from models.tables import Dispute, IdempotencyRecord

KEY_REUSED = "already sent with other content; nothing was done (a new request needs a new key)"


class KeyReused(Exception):
    """The idempotency key was first sent with another request; nothing was done."""

    def __str__(self) -> str:
        return KEY_REUSED


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def key_scope(action: Action, actor: Actor, key: str) -> str:
    """Whose key this is, and for what: two people's keys, or one key for two actions, never
    share a record."""
    return _digest([action.value, actor.id, key])


def fingerprint(number: str, request: Any) -> str:
    """The request as sent to one dispute: its payload as JSON, or its files' names, types
    and hashes."""
    return _digest({"number": number, "request": request})


def claim(sessions: SessionFactory, scope: str, fingerprint: str) -> ActionResult | None:
    """Record the key's request, or check it is the one recorded (raises KeyReused) and return
    the dispute's answer to it when it has one. Of two requests sent at once, the one whose
    record commits first wins; the other then reads it."""
    for _ in range(3):
        try:
            with sessions.begin() as session:
                found = session.get(IdempotencyRecord, scope)
                if found is not None:
                    if found.fingerprint != fingerprint:
                        raise KeyReused()
                    if found.result is None:
                        return None
                    return ActionResult.model_validate(found.result)
                session.add(
                    IdempotencyRecord(
                        scope=scope, fingerprint=fingerprint, created_at=datetime.now(UTC)
                    )
                )
            return None
        except IntegrityError:
            # A concurrent request recorded the key first (or released it just after, when the
            # dispute refused it): read what is there now.
            continue
    raise RuntimeError(f"the idempotency record {scope} kept changing")


def answered(
    sessions: SessionFactory, scope: str, fingerprint: str, result: ActionResult
) -> ActionResult:
    """Keep the dispute's answer with the key's record: the same key again gets it, even once
    the dispute has continued as new (where Temporal no longer knows the update id)."""
    with sessions.begin() as session:
        session.execute(
            update(IdempotencyRecord)
            .where(
                col(IdempotencyRecord.scope) == scope,
                col(IdempotencyRecord.fingerprint) == fingerprint,
            )
            .values(result=result.model_dump(mode="json"))
        )
    return result


def release(sessions: SessionFactory, scope: str, fingerprint: str) -> None:
    """Free the key of a request that recorded nothing (the dispute refused it, or it has no
    workflow): the same key may then carry another request."""
    with sessions.begin() as session:
        session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.scope) == scope,
                col(IdempotencyRecord.fingerprint) == fingerprint,
            )
        )


SHOWN_WAIT_SECONDS = 10.0
"""How long an action without a wait of its own waits for the read model to show it."""


async def perform_once(
    client: Client,
    sessions: SessionFactory,
    number: str,
    op: Operation,
    payload: ActionPayload,
    *,
    key: str,
    wait_seconds: float | None,
    limits: texts.VolumeLimits | None = None,
) -> ActionResult:
    """Perform the action once per key and request (see perform); the same key with another
    request raises KeyReused. A text the action carries is stored first and the workflow gets
    its reference (`accord.disputes.texts`); over `limits`, TooManyTexts and nothing is done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (wait_seconds or SHOWN_WAIT_SECONDS)
    request = fingerprint(number, payload.model_dump(mode="json", exclude={"actor"}))
    scope = key_scope(op.action, payload.actor, key)
    # The database steps are synchronous (a blocking driver, SQLite's one writer): they run on
    # a thread, so the event loop (which the worker may share) goes on meanwhile.
    taken: list[TextRef] = []
    prepared = await asyncio.to_thread(
        _prepare, sessions, number, payload, scope, request, limits, taken
    )
    if isinstance(prepared, ActionResult):
        # Applied under this key before: answered as then, nothing asked again.
        return await _shown(sessions, prepared, deadline)
    try:
        result = await perform(
            client,
            number,
            prepared,
            op.update,
            update_id=update_id(op.action, payload.actor, key, fingerprint=request),
            wait_seconds=wait_seconds,
        )
    except (Refused, DisputeGone):
        await asyncio.to_thread(_unsaid, sessions, scope, request, taken)
        raise
    return await _shown(
        sessions, await asyncio.to_thread(answered, sessions, scope, request, result), deadline
    )


async def _shown(sessions: SessionFactory, result: ActionResult, deadline: float) -> ActionResult:
    """The answer once the read model shows what it reflected, or, past the action's wait, with
    a word that it may not show yet. The workflow answers once it has decided and may still be
    recording the consequences (the stage an acceptance starts); the page, `accord show` or the
    API read that follows reads the read model, and must show them."""
    step = result.step
    if step is None:
        return result  # answered before answers carried their step

    def shown() -> bool:
        with sessions.read() as session:
            return shows(session, result.number, step, result.stage, result.live_version)

    loop = asyncio.get_running_loop()
    pause = 0.01
    while not await asyncio.to_thread(shown):
        if loop.time() + pause > deadline:
            return result.model_copy(
                update={"message": f"{result.message} (it may take a moment to show)"}
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)
    return result


def _prepare(
    sessions: SessionFactory,
    number: str,
    payload: ActionPayload,
    scope: str,
    request: str,
    limits: texts.VolumeLimits | None,
    taken: list[TextRef],
) -> ActionPayload | ActionResult:
    """Claim the key and store the texts: the payload to send, or the answer given before."""
    # A dispute is on record before its workflow starts (accord.disputes.filing): a number
    # that is not names no dispute, said so before a text is stored against it (which its
    # foreign key would refuse) or a key is claimed for it.
    with sessions.read() as session:
        if session.get(Dispute, number) is None:
            raise DisputeGone(number)
    earlier = claim(sessions, scope, request)
    if earlier is not None:
        return earlier
    try:
        return texts.externalise(sessions, number, payload, limits, taken)
    except texts.TextProblem:
        release(sessions, scope, request)
        raise


def _unsaid(sessions: SessionFactory, scope: str, request: str, taken: list[TextRef]) -> None:
    # Nothing was said: the texts stored for it take no place under the limits.
    texts.set_aside(sessions, taken)
    release(sessions, scope, request)
