"""`accord verify`: each dispute's hash chain, its gaps, and its head held outside the database.

A chain that verifies proves nothing about entries cut from its end, or about a trail deleted
whole: every dispute workflow publishes the seq and hash of the last entry it got back
(`AccordAuditHead`), and the database must reach that entry with that hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from accord.rules.audit import GAP_ACTION, describe_gap, first_broken_link
from models import search_attributes

TEMPORAL_SILENT = "Temporal did not answer"
NO_WORKFLOW = "no workflow in Temporal (never started, or removed after the retention period)"
NO_HEAD = "its workflow publishes no chain head (it began before heads were published)"
DISPUTE_WORKFLOW = "DisputeWorkflow"
"""The workflow type every dispute runs as (its class name)."""
LOOKUPS = 16
"""Workflows described at once."""


@dataclass(frozen=True)
class Head:
    """What a workflow last got back from the record activity."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, published: str) -> Head:
        seq, _, digest = published.partition(":")
        return cls(seq=int(seq), hash=digest)


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    """Tampering or loss: a broken chain, entries missing against the head."""
    gaps: list[str] = field(default_factory=list)
    """Steps recorded as missing by a gap entry: the chain holds, the trail has a hole."""
    uncompared: dict[str, list[str]] = field(default_factory=dict)
    """Reason -> disputes whose trail could not be compared with a head."""
    compared: int = 0
    unlisted: str | None = None
    """Why workflows of disputes gone from the database could not be listed, if so."""


def check_trail(
    number: str, events: Sequence[Any], head: Head | str | None, findings: Findings
) -> None:
    """Check one dispute's trail (DisputeEvent rows in seq order); `head` is its workflow's
    chain head, or why there is none to compare with."""
    broken = first_broken_link(events)
    if broken is not None:
        findings.problems.append(f"{number}: audit trail broken at entry {broken}")
    for entry in events:
        if entry.action == GAP_ACTION:
            gap = describe_gap(entry.content)
            findings.gaps.append(f"{number}: gap at entry {entry.seq}: {gap}")
    if isinstance(head, str):
        if not (head == NO_WORKFLOW and not events):  # filed, its workflow not started yet
            findings.uncompared.setdefault(head, []).append(number)
        return
    if head is None and events:
        # Begun before heads were published (or its very first entry is being answered now).
        findings.uncompared.setdefault(NO_HEAD, []).append(number)
        return
    findings.compared += 1
    missing = against_head(events, head)
    if missing:
        findings.problems.append(f"{number}: {missing}")


def check_gone(number: str, head: Head, findings: Findings) -> None:
    """A dispute its workflow recorded entries for, absent from the database altogether."""
    findings.compared += 1
    findings.problems.append(
        f"{number}: every entry missing, and the dispute itself: its workflow recorded entry "
        f"{head.seq} (hash {head.hash[:16]})"
    )


def against_head(events: Sequence[Any], head: Head | None) -> str | None:
    """What the database lacks of what the workflow recorded; None if it has it all (it may
    hold more: an entry is written before its workflow hears back)."""
    if head is None:
        return None
    recorded = f"its workflow recorded entry {head.seq} (hash {head.hash[:16]})"
    if not events:
        return f"every entry missing: {recorded}, the database has none"
    last = events[-1].seq
    if last < head.seq:
        lost = f"entry {head.seq}" if last + 1 == head.seq else f"entries {last + 1}-{head.seq}"
        return (
            f"{lost} missing: {recorded}, the database ends at entry {last} (deleted, or the "
            "database was restored from an older backup)"
        )
    entry = next((e for e in events if e.seq == head.seq), None)
    if entry is None or entry.hash != head.hash:
        found = entry.hash[:16] if entry is not None else "no such entry"
        return f"entry {head.seq} is not the one {recorded}: the database has {found}"
    return None


async def chain_heads(
    client: Client | None, numbers: Iterable[str]
) -> dict[str, Head | str | None]:
    """Each dispute's published chain head; None if its workflow publishes none; a string says
    why it could not be looked up."""
    wanted = list(numbers)
    if client is None:
        return dict.fromkeys(wanted, TEMPORAL_SILENT)
    limit = asyncio.Semaphore(LOOKUPS)

    async def one(number: str) -> Head | str | None:
        async with limit:
            try:
                published = await published_head(client, number)
            except RPCError as error:
                if error.status is RPCStatusCode.NOT_FOUND:
                    return NO_WORKFLOW
                if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                    return TEMPORAL_SILENT
                return f"Temporal turned the lookup down ({error.status.name.lower()})"
        if published is None:
            return None
        try:
            return Head.parse(published)
        except ValueError:
            return f"its published chain head is not <seq>:<hash> ({published[:40]!r})"

    found = await asyncio.gather(*(one(n) for n in wanted))
    return dict(zip(wanted, found, strict=True))


async def workflows_without_dispute(
    client: Client | None, known: set[str]
) -> tuple[dict[str, Head], str | None]:
    """Dispute workflows that published a chain head for a dispute the database does not have
    (its row deleted with its whole trail); and why they could not be looked for, if so."""
    if client is None:
        return {}, TEMPORAL_SILENT
    found: dict[str, Head] = {}
    try:
        async for execution in client.list_workflows(f"WorkflowType = '{DISPUTE_WORKFLOW}'"):
            fields = execution.raw_info.search_attributes.indexed_fields
            if execution.id in known or execution.id in found:
                continue
            if search_attributes.AUDIT_HEAD.name in fields:
                value = json.loads(fields[search_attributes.AUDIT_HEAD.name].data or b"null")
                with contextlib.suppress(ValueError):  # not a head: nothing to compare with
                    found[execution.id] = Head.parse(str(value))
    except RPCError as error:
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return found, TEMPORAL_SILENT
        return found, f"this Temporal cannot list workflows ({error.status.name.lower()})"
    return found, None


async def published_head(client: Client, number: str) -> str | None:
    """The dispute workflow's AccordAuditHead, read alone: decoding every attribute fails on the
    test server while a datetime attribute is unset, and only this one is needed."""
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=number)
        )
    )
    fields = described.workflow_execution_info.search_attributes.indexed_fields
    if search_attributes.AUDIT_HEAD.name not in fields:
        return None
    value = json.loads(fields[search_attributes.AUDIT_HEAD.name].data or b"null")
    return value if isinstance(value, str) else None


async def connect_quietly(connect: Any, seconds: float = 10) -> Client | None:
    """A client, or None if Temporal does not answer (the chains are still checked)."""
    try:
        client: Client = await asyncio.wait_for(connect(), seconds)
    except (RuntimeError, RPCError, TimeoutError, OSError):
        return None
    return client
