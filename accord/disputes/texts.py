"""Texts said in a dispute, stored before the workflow hears of them.

A note, an email, an information request or its answer is stored here by the adapter that
received it (web, API, CLI, email intake); the workflow update carries only the stored text's
id, hash and size (`TextRef`), and so do its history and its audit entry. Temporal ends a
workflow whose history passes 50 MB: with bodies inline, about 500 email replies of 49 KB did.

Per dispute and per sender, the number of texts is limited (`VolumeLimits`): a sender over the
limit is told which limit and why, and nothing is stored or recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from accord.platform.db import SessionFactory
from accord.platform.settings import Settings
from models.payloads import (
    ActionPayload,
    AddMessage,
    AddNote,
    AnswerInformation,
    CastVote,
    DisputeState,
    IssueRuling,
    ProposeSettlement,
    RequestInformation,
    TextRef,
)
from models.tables import Dispute, DisputeText, RefusedText

MAX_CHARS: Mapping[str, int] = {
    "note": 20_000,
    "questions": 20_000,
    "answer": 20_000,
    "message": 50_000,
    "terms": 20_000,
    "reasons": 20_000,
    "rationale": 20_000,
}
"""The longest text of each kind, in characters (the same as the payloads' own limits)."""

MIN_CHARS: Mapping[str, int] = {"reasons": 20, "rationale": 20}
"""A vote's reasons and a ruling's rationale say at least a sentence (the payloads' `Reasons`
rule, which a stored text's reference cannot carry: `check` applies it again)."""

FIELDS: Mapping[str, str] = {
    "note": "text",
    "message": "text",
    "questions": "questions",
    "answer": "answer",
    "terms": "terms",
    "reasons": "reasons",
    "rationale": "rationale",
}
"""The payload field each kind of text travels in."""

KINDS: Mapping[type[ActionPayload], str] = {
    AddNote: "note",
    RequestInformation: "questions",
    AnswerInformation: "answer",
    ProposeSettlement: "terms",
    CastVote: "reasons",
    IssueRuling: "rationale",
}
"""The kind of text each action carries inline in its `FIELDS[kind]` field (an email reply,
`AddMessage`, carries its text one level down, in its message)."""

COUNTED_KINDS = ("note", "message", "questions", "answer")
"""The kinds that count against the volume limits: what a person can send again and again."""


@dataclass(frozen=True)
class VolumeLimits:
    """How many texts one dispute holds, and how many one sender may add to it."""

    per_dispute: int
    per_sender: int


def limits_of(settings: Settings) -> VolumeLimits:
    return VolumeLimits(settings.texts_per_dispute, settings.texts_per_sender)


class TextProblem(ValueError):
    """A text cannot be stored; `field` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TooManyTexts(TextProblem):
    """A volume limit is reached: nothing was stored."""


def sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def text_id(number: str, kind: str, author: str, body: str) -> str:
    """The same text from the same author in the same dispute is the same row: a request sent
    again (a retry, a double submit) stores nothing new and counts once."""
    key = "\x00".join((number, kind, author, body)).encode("utf-8")
    return "tx-" + hashlib.sha256(key).hexdigest()[:32]


def _ref(row: DisputeText) -> TextRef:
    return TextRef(id=row.id, sha256=row.sha256, size=row.size)


def store(
    sessions: SessionFactory,
    number: str,
    kind: str,
    author: str,
    body: str,
    *,
    field: str,
    limits: VolumeLimits | None,
    taken: list[TextRef] | None = None,
) -> TextRef:
    """Store one text (or find it stored) and return its reference; raise TextProblem, naming
    `field`, when it is too long or a volume limit is reached. A text this call takes a place
    for (stored now, or stored before by an action the dispute refused) is added to `taken`:
    if the dispute refuses this action too, `set_aside` gives the place back."""
    _check_body(kind, body, field)
    ident = text_id(number, kind, author, body)
    try:
        # Immediate: the count and the insert hold together, so two texts sent at once cannot
        # both take the last place (on PostgreSQL the dispute's row is locked for the count).
        with sessions.begin(immediate=True) as session:
            found = session.get(DisputeText, ident)
            if found is not None:
                refusal = session.get(RefusedText, ident)
                if refusal is not None:
                    # Refused before and sent again: it takes a place again, if one is free.
                    if limits is not None and kind in COUNTED_KINDS:
                        _check_volume(session, number, author, limits, field)
                    session.delete(refusal)
                    if taken is not None:
                        taken.append(_ref(found))
                return _ref(found)
            if limits is not None and kind in COUNTED_KINDS:
                _check_volume(session, number, author, limits, field)
            row = DisputeText(
                id=ident,
                dispute_number=number,
                kind=kind,
                body=body,
                sha256=sha256(body),
                size=len(body),
                author=author,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            if taken is not None:
                taken.append(_ref(row))
            return _ref(row)
    except IntegrityError:
        # The same text stored at the same moment by a second request: that row is it.
        with sessions.read() as session:
            won = session.get(DisputeText, ident)
            if won is None:
                raise
            return _ref(won)


def _check_body(kind: str, body: str, field: str) -> None:
    limit = MAX_CHARS[kind]
    if len(body) > limit:
        raise TextProblem(field, f"at most {limit:,} characters (this one has {len(body):,})")
    if "\x00" in body:
        raise TextProblem(field, "contains a NUL character")
    shortest = MIN_CHARS.get(kind, 0)
    if len(body.strip()) < shortest:
        raise TextProblem(field, f"at least {shortest} characters: a sentence saying why")


def _check_volume(
    session: Session, number: str, author: str, limits: VolumeLimits, field: str
) -> None:
    if session.connection().dialect.name == "postgresql":
        session.exec(select(Dispute.number).where(Dispute.number == number).with_for_update())
    counted = select(func.count()).where(
        DisputeText.dispute_number == number,
        col(DisputeText.kind).in_(COUNTED_KINDS),
        col(DisputeText.id).not_in(select(RefusedText.text_id)),
    )
    in_dispute = session.exec(counted).one()
    if in_dispute >= limits.per_dispute:
        raise TooManyTexts(
            field,
            f"{number} already holds {in_dispute:,} notes, messages, questions and answers, "
            f"the most one dispute takes ({limits.per_dispute:,}); nothing was recorded. "
            "Ask the mediator or an admin to take the dispute forward another way",
        )
    mine = session.exec(counted.where(DisputeText.author == author)).one()
    if mine >= limits.per_sender:
        raise TooManyTexts(
            field,
            f"you have already sent {mine:,} notes, messages, questions or answers on {number}, "
            f"the most one person may send in one dispute ({limits.per_sender:,}); nothing was "
            "recorded",
        )


def set_aside(sessions: SessionFactory, refs: Iterable[TextRef]) -> None:
    """The dispute refused the action these texts were stored for: they were not said, and
    their places under the limits are free again (the rows stay: `dispute_text` is append-only,
    and the same text sent again finds its row)."""
    for ref in refs:
        try:
            with sessions.begin() as session:
                if session.get(RefusedText, ref.id) is None:
                    session.add(RefusedText(text_id=ref.id, refused_at=datetime.now(UTC)))
        except IntegrityError:
            continue  # set aside at the same moment by a second refusal: done


def externalise(
    sessions: SessionFactory,
    number: str,
    payload: ActionPayload,
    limits: VolumeLimits | None,
    taken: list[TextRef] | None = None,
) -> ActionPayload:
    """The payload with each inline text stored and replaced by its reference; payloads with no
    text field are returned as they are. The texts it takes places for go to `taken` (`store`)."""
    author = payload.actor.id
    if isinstance(payload, AddMessage):
        message = payload.message
        if message.text is None:
            return payload
        ref = store(
            sessions,
            number,
            "message",
            author,
            message.text,
            field="text",
            limits=limits,
            taken=taken,
        )
        stored = message.model_copy(update={"text": None, "text_ref": ref})
        return payload.model_copy(update={"message": stored})
    kind = KINDS.get(type(payload))
    if kind is None:
        return payload
    field = FIELDS[kind]
    body = getattr(payload, field)
    if not isinstance(body, str):
        return payload  # sent by reference already
    ref = store(sessions, number, kind, author, body, field=field, limits=limits, taken=taken)
    return payload.model_copy(update={field: None, f"{field}_ref": ref})


def check(session: Session, number: str, refs: Iterable[TextRef]) -> None:
    """Raise TextProblem unless each reference is a text of this dispute whose stored body
    still has the hash the reference names."""
    for ref in refs:
        row = session.get(DisputeText, ref.id)
        if row is None or row.dispute_number != number:
            raise TextProblem(ref.id, f"is not a text of {number}")
        if row.sha256 != ref.sha256 or sha256(row.body) != ref.sha256:
            raise TextProblem(ref.id, "its stored body does not have the hash it was sent with")
        _check_body(row.kind, row.body, f"{FIELDS.get(row.kind, row.kind)} ({ref.id})")


def bodies(session: Session, ids: Iterable[str]) -> dict[str, str]:
    """The stored bodies of these texts, by id (unknown ids are left out)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    # The two columns only: a busy dispute's page reads hundreds, and ORM rows cost.
    rows = session.exec(
        select(DisputeText.id, DisputeText.body).where(col(DisputeText.id).in_(wanted))
    ).all()
    return dict(rows)


def referenced(content: Mapping[str, object]) -> list[str]:
    """Ids of the stored texts an audit entry's content refers to (`*_ref` entries)."""
    ids: list[str] = []
    for name, value in content.items():
        if name.endswith("_ref") and isinstance(value, Mapping) and "id" in value:
            ids.append(str(value["id"]))
    return ids


def unmatched(session: Session, events: Iterable[Any]) -> list[str]:
    """Each stored text an audit entry names whose body is missing, or no longer has the hash
    the entry holds (the chain covers the hash; this covers the body): 'entry N: why'."""
    problems: list[str] = []
    for event in events:
        for name, value in event.content.items():
            if not (name.endswith("_ref") and isinstance(value, Mapping) and "id" in value):
                continue
            row = session.get(DisputeText, str(value["id"]))
            if row is None or row.dispute_number != event.dispute_number:
                problems.append(f"entry {event.seq}: text {value['id']} is missing")
            elif sha256(row.body) != value.get("sha256"):
                problems.append(f"entry {event.seq}: text {value['id']} does not match its hash")
    return problems


def resolve_state(
    sessions: SessionFactory, state: DisputeState, known: Mapping[str, str] | None = None
) -> DisputeState:
    """The workflow's state with each stored text's body read in where the view shows it
    (`known`: bodies read already, by id, such as the timeline's)."""
    review = state.review
    refs = [n.text_ref for n in state.notes]
    refs += [ref for r in state.information_requests for ref in (r.questions_ref, r.answer_ref)]
    refs += [o.terms_ref for o in state.offers] + [r.rationale_ref for r in state.rulings]
    refs += [v.reasons_ref for v in review.votes] if review else []
    ids = [ref.id for ref in refs if ref is not None]
    if not ids:
        return state
    found = dict(known or {})
    missing = [i for i in ids if i not in found]
    if missing:
        with sessions.read() as session:
            found.update(bodies(session, missing))

    def read(ref: TextRef | None, name: str) -> dict[str, str]:
        return {name: found.get(ref.id, "")} if ref is not None else {}

    if review is not None:
        votes = tuple(v.model_copy(update=read(v.reasons_ref, "reasons")) for v in review.votes)
        review = review.model_copy(update={"votes": votes})
    return state.model_copy(
        update={
            "notes": tuple(n.model_copy(update=read(n.text_ref, "text")) for n in state.notes),
            "information_requests": tuple(
                r.model_copy(
                    update={**read(r.questions_ref, "questions"), **read(r.answer_ref, "answer")}
                )
                for r in state.information_requests
            ),
            "offers": tuple(o.model_copy(update=read(o.terms_ref, "terms")) for o in state.offers),
            "rulings": tuple(
                r.model_copy(update=read(r.rationale_ref, "rationale")) for r in state.rulings
            ),
            "review": review,
        }
    )


def resolve_context(sessions: SessionFactory, context: Mapping[str, object]) -> dict[str, object]:
    """An email's context with each `<name>_ref` (a stored text) read in as `<name>`."""
    refs = referenced(context)
    if not refs:
        return dict(context)
    with sessions.read() as session:
        found = bodies(session, refs)
    resolved: dict[str, object] = {}
    for name, value in context.items():
        if name.endswith("_ref") and isinstance(value, Mapping) and "id" in value:
            resolved[name.removesuffix("_ref")] = found.get(str(value["id"]), "")
        else:
            resolved[name] = value
    return resolved
