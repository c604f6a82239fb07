"""For the partners' contacts, the parties to a dispute: file one (`file`), answer a mediator's
request for information, accept or reject a settlement offer, withdraw (the claimant), and
appeal a first ruling.

Filing starts the dispute's workflow; each later action is a workflow update performed as
the contact named by `--as` (`accord.cli.common._act`): the workflow's validators decide, as
they do for the web and API.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from pydantic import ValidationError

from accord.application import build_filing
from accord.cli.common import (
    As,
    CliError,
    Number,
    Reason,
    UpdateId,
    _act,
    _client,
    _run,
    _services,
    _settings,
    fail,
)
from accord.platform import wording
from models.enums import Action, DisputeCategory, ObjectKind
from models.payloads import (
    AnswerInformation,
    Appeal,
    ContestedObject,
    EvidenceRef,
    FilingSubmission,
    RespondToOffer,
    Withdraw,
)
from models.text import plain_error

commands = typer.Typer()


def _parse_object(text: str) -> ContestedObject:
    kind, sep, ref = text.partition(":")
    if not sep:
        raise CliError(f"--object {text!r}: write it as kind:reference, e.g. account:ACME-001")
    try:
        return ContestedObject.model_validate({"kind": kind, "ref": ref})
    except ValidationError as exc:
        said = "; ".join(
            f"{wording.where(e['loc'])}: {plain_error(e)}" if e["loc"] else plain_error(e)
            for e in exc.errors()
        )
        raise CliError(f"--object {text[:100]}: {said}") from None


@commands.command("file")
def file_dispute(
    actor: As,
    claimant: Annotated[
        str, typer.Option(metavar="<partner>", help="claimant partner id (`accord partners`)")
    ],
    respondent: Annotated[
        list[str],
        typer.Option(
            metavar="<partner>", help="respondent partner id (repeatable; `accord partners`)"
        ),
    ],
    category: Annotated[
        str,
        typer.Option(
            metavar="<category>",
            help=", ".join(c.value for c in DisputeCategory)
            + " (`accord playbook` gives each one's clause and remedies)",
        ),
    ],
    obj: Annotated[
        list[str],
        typer.Option(
            "--object",
            metavar="<kind:ref>",
            help="contested object, e.g. deal_registration:DR-7 (repeatable); kinds: "
            + ", ".join(k.value for k in ObjectKind),
        ),
    ],
    summary: Annotated[str, typer.Option()],
    facts: Annotated[str, typer.Option()],
    remedy: Annotated[str, typer.Option(help="the remedy you want, in words")],
    amount: Annotated[str, typer.Option(help="amount at stake")],
    currency: Annotated[str, typer.Option()] = "USD",
    occurred_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD; default today")] = None,
    submission_id: Annotated[str | None, typer.Option(help="your idempotency key")] = None,
) -> None:
    """File a dispute on behalf of a partner contact."""

    async def go() -> None:
        settings = _settings()
        services = _services()
        submission = FilingSubmission.model_validate(
            {
                "claimant_id": claimant,
                "respondent_ids": respondent,
                "category": category,
                "contested_objects": [_parse_object(o) for o in obj],
                "summary": summary,
                "facts": facts,
                "desired_remedy": remedy,
                "amount_at_stake": amount,
                "currency": currency,
                "occurred_on": occurred_on or date.today().isoformat(),
                "filed_by": actor,
                "submission_id": submission_id,
            }
        )
        client = await _client(settings)
        service = build_filing(services, client)
        result = await service.file(submission)
        typer.echo(f"{result.number}: {result.message}")

    _run(go())


@commands.command()
def answer(
    number: Number,
    actor: As,
    request: Annotated[str, typer.Option(help="e.g. info-1")],
    text: Annotated[str, typer.Option("--answer")],
    key: UpdateId = None,
) -> None:
    """Partner: answer an information request."""
    _act(
        number,
        actor,
        key,
        Action.ANSWER_INFORMATION,
        lambda a: AnswerInformation(actor=a, request_id=request, answer=text),
    )


@commands.command("accept-offer")
def accept_offer(
    number: Number,
    actor: As,
    offer: Annotated[str, typer.Option(help="e.g. offer-1")],
    comment: Annotated[str, typer.Option()] = "",
    key: UpdateId = None,
) -> None:
    """Partner: accept a settlement offer for your side."""
    _act(
        number,
        actor,
        key,
        Action.RESPOND_TO_OFFER,
        lambda a: RespondToOffer(actor=a, offer_id=offer, accept=True, comment=comment),
    )


@commands.command("reject-offer")
def reject_offer(
    number: Number,
    actor: As,
    offer: Annotated[str, typer.Option(help="e.g. offer-1")],
    comment: Annotated[str, typer.Option()] = "",
    key: UpdateId = None,
) -> None:
    """Partner: reject a settlement offer."""
    _act(
        number,
        actor,
        key,
        Action.RESPOND_TO_OFFER,
        lambda a: RespondToOffer(actor=a, offer_id=offer, accept=False, comment=comment),
    )


@commands.command()
def withdraw(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Claimant: withdraw the dispute."""
    _act(number, actor, key, Action.WITHDRAW, lambda a: Withdraw(actor=a, reason=reason))


@commands.command("appeal")
def appeal_ruling(
    number: Number,
    actor: As,
    grounds: Annotated[str, typer.Option()],
    evidence: Annotated[
        list[str], typer.Option(metavar="<ref:description>", help="new evidence (repeatable)")
    ],
    key: UpdateId = None,
) -> None:
    """Party: appeal a first ruling once, with grounds and new evidence."""
    refs = []
    for item in evidence:
        ref, sep, description = item.partition(":")
        if not sep:
            fail(f"--evidence {item!r}: write it as reference:description")
        refs.append(EvidenceRef(ref=ref, description=description))
    _act(
        number,
        actor,
        key,
        Action.APPEAL,
        lambda a: Appeal(actor=a, grounds=grounds, new_evidence=tuple(refs)),
    )
