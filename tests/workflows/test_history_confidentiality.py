"""Neither the engine's history nor its UI shows a sealed vote, a caucus note or a partner's
personal data in clear (SPEC 6; issue 15, item 2): read as Temporal stores it, by a client
without the payload keys, the history holds none of them, and with the keys all of it."""

from __future__ import annotations

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client

from models.converter import data_converter
from models.enums import NoteVisibility, VoteOutcome
from models.payloads import AddNote, CastVote, DeclareImpasse
from tests.conftest import Stack
from tests.web_harness import api, make_app, token_for
from tests.workflows.test_dispute_paths import in_mediation
from tests.workflows.test_formal_review import SPLIT
from workflows.dispute import DisputeWorkflow

CLAIMANT = "nora@northwind.example"
VOTE_REASON = "VOTE-REASON-k41: Northwind's registration predates Contoso's by a full week."
CAUCUS_NOTE = "CAUCUS-NOTE-q93: Northwind would accept 70/30 but will not say so openly."
EVIDENCE_FILE = "EVIDENCE-FILE-z28 Acme pricing sheet.csv"
FACTS = "FACTS-m57: we registered DR-2026-0042 for Acme on 2 November; Contoso a week later."
PERSONAL = (CLAIMANT, "Nora Quinn", "carl@contoso.example")
PROBES = (VOTE_REASON, CAUCUS_NOTE, EVIDENCE_FILE, FACTS, *PERSONAL)


def payloads_of(message: Message) -> list[Payload]:
    """Every Payload anywhere in a protobuf message (event attributes, failures, memos)."""
    found: list[Payload] = []
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            values = list(value.values())
        elif descriptor.is_repeated:
            values = list(value)
        else:
            values = [value]
        for each in values:
            if isinstance(each, Payload):
                found.append(each)
            elif isinstance(each, Message):
                found += payloads_of(each)
    return found


async def test_a_sealed_vote_a_caucus_note_evidence_and_personal_data_are_not_in_the_history(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    number = (await stack.file(facts=FACTS)).number
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        upload = await nora.post(
            f"/api/disputes/{number}/evidence",
            files={"files": (EVIDENCE_FILE, b"deal,date\nDR-2026-0042,2026-11-02\n", "text/csv")},
            data={"visibility": "parties", "description": "CRM export"},
        )
        assert upload.status_code == 201, upload.text
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    # Sent inline, as the workflow still accepts them (older adapters, a replayed update).
    await handle.execute_update(
        DisputeWorkflow.add_note,
        AddNote(
            actor=stack.actor(mediator),
            text=CAUCUS_NOTE,
            visibility=NoteVisibility.CAUCUS,
            caucus_partner_id="northwind",
        ),
    )
    await handle.execute_update(
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=stack.actor(mediator), reason="Neither side will move."),
    )
    await stack.wait_for(number, lambda s: s.review is not None and bool(s.review.panel))
    await handle.execute_update(
        DisputeWorkflow.cast_vote,
        CastVote(
            actor=stack.actor("board.sales"),
            outcome=VoteOutcome.UPHOLD,
            remedies=(SPLIT,),
            reasons=VOTE_REASON,
        ),
    )
    await stack.recorded(number)

    # As Temporal stores it and its UI shows it without the codec endpoint: a client with no
    # payload keys (the plain converter) fetching the history.
    plain = await Client.connect(
        stack.client.service_client.config.target_host, data_converter=data_converter
    )
    history = await plain.get_workflow_handle(number).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    as_json = history.to_json()
    for probe in PROBES:
        assert probe.encode() not in raw, f"{probe!r} is in the raw history"
        assert probe not in as_json, f"{probe!r} is in the history's JSON"
    assert stack.settings.task_queue.encode() in raw  # the search finds what is in clear

    # With the keys, all of it is there: the probes were sent, and are sealed, not lost.
    codec = stack.client.data_converter.payload_codec
    assert codec is not None
    proto = History(events=history.events)
    opened = b"".join(p.SerializeToString() for p in await codec.decode(payloads_of(proto)))
    for probe in PROBES:
        assert probe.encode() in opened, f"{probe!r} was never in the history"
