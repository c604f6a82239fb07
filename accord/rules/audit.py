"""The audit trail's hash chain: each entry's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def event_hash(
    *,
    prev_hash: str,
    number: str,
    seq: int,
    at: datetime,
    actor_id: str,
    actor_role: str,
    action: str,
    content: dict[str, Any],
) -> str:
    body = json.dumps(
        {
            "number": number,
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(),
            "actor_id": actor_id,
            "actor_role": actor_role,
            "action": action,
            "content": content,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def first_broken_link(events: Iterable[Any]) -> int | None:
    """Seq of the first entry whose hash or link does not hold, or None if the chain is intact.

    `events` are DisputeEvent rows of one dispute in seq order.
    """
    prev = GENESIS
    expected_seq = 1
    for event in events:
        if event.seq != expected_seq or event.prev_hash != prev:
            return int(event.seq)
        recomputed = event_hash(
            prev_hash=prev,
            number=event.dispute_number,
            seq=event.seq,
            at=event.at,
            actor_id=event.actor_id,
            actor_role=str(event.actor_role),
            action=event.action,
            content=event.content,
        )
        if recomputed != event.hash:
            return int(event.seq)
        prev = event.hash
        expected_seq += 1
    return None


ITEMISED = 20
"""The most refused steps a gap entry itemises (the workflow keeps no more)."""

GAP_ACTION = "audit_gap"
"""The action of an entry standing for workflow steps that have no entry of their own."""


def gap_content(first: int, last: int, refused: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What a gap entry holds: the missing steps (first and last, inclusive), those refused for
    good with the reason, and a summary saying so for the timeline."""
    content: dict[str, Any] = {"missing_steps": [first, last], "refused": list(refused)}
    return {"summary": describe_gap(content), **content}


def describe_gap(content: dict[str, Any]) -> str:
    first, last = content["missing_steps"]
    refused = content["refused"]
    steps = f"step {first}" if first == last else f"steps {first}-{last}"
    why = [f"{r['action']} refused: {r['reason']}" for r in refused]
    lost = last - first + 1 - len(refused)
    if lost and len(refused) >= ITEMISED:
        why.append(f"{lost} more not itemised: refused too, or lost after being recorded")
    elif lost:
        count = last - first + 1
        which = f"{lost} of them are" if lost < count else ("it is" if count == 1 else "they are")
        why.append(
            f"{which} not in the database: lost after being recorded, e.g. by a restore from a "
            "backup older than the dispute's workflow"
        )
    return f"{steps} not recorded ({'; '.join(why)})"
