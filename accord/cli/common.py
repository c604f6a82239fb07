"""What every audience's commands share: the options they have in common (`--as`, a dispute's
number, `--reason`, `--update-id`), `_run` (each expected failure said in one line, exit 2),
the settings, services and Temporal client a command builds, and `_act`, which performs a
dispute action through the workflow once per key.

It serves the audience modules (operators, records, partners, neutrals, admins), not a person:
it holds no command. It imports none of them, and nothing of `app`: the package's imports run
one way, from `app` down through the audiences to this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from accord.application import Services
from accord.directory import records as directory
from accord.directory.records import UnknownActor, resolve_actor
from accord.disputes import texts
from accord.disputes.filing import FilingRejected
from accord.disputes.operations import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_RULE,
    OPERATIONS,
    DisputeGone,
    Refused,
    StillApplying,
    new_key,
)
from accord.platform import wording
from accord.platform.settings import ConfigurationError, Settings
from models.codec import PayloadDecryptionError
from models.enums import Action
from models.payloads import Actor
from models.text import plain_error, relevant
from web.idempotency import KeyReused, perform_once

log = logging.getLogger("accord.cli")

As = Annotated[
    str,
    typer.Option(
        "--as",
        help="who acts: a person id or email, or a partner contact's email (`accord people` "
        "and `accord partners --contacts` list them)",
    ),
]
Number = Annotated[str, typer.Argument(help="dispute number, e.g. DSP-2026-000001")]
Reason = Annotated[str, typer.Option(help="why (recorded in the audit trail)")]
UpdateId = Annotated[
    str | None,
    typer.Option(
        "--update-id",
        help="a key of yours for this action: run again with the same key, it is applied once "
        "and answers as the first time (default: a new key, shown if the action is still being "
        "applied when the wait ends)",
    ),
]


def _one_of(values: tuple[str, ...]) -> Callable[[str], str]:
    """A parser for an option with a fixed set of values that says, when the value is none of
    them, which ones it may be (typer's own says pydantic's "Value error, ..." first)."""

    def parse(value: str) -> str:
        if value not in values:
            raise typer.BadParameter(f"'{value[:60]}' is not one of: {', '.join(values)}")
        return value

    return parse


# The option a person typed for each payload field a message may name first
# ('caucus_partner_id: ghost is not a party' is said '--caucus: ghost is not a party').
OPTIONS: dict[str, str] = {
    "claimant_id": "--claimant",
    "respondent_ids": "--respondent",
    "category": "--category",
    "contested_objects": "--object",
    "summary": "--summary",
    "facts": "--facts",
    "desired_remedy": "--remedy",
    "amount_at_stake": "--amount",
    "currency": "--currency",
    "occurred_on": "--occurred-on",
    "filed_by": "--as",
    "submission_id": "--submission-id",
    "impartiality_declaration": "--declaration",
    "reason": "--reason",
    "text": "--text",
    "caucus_partner_id": "--caucus",
    "party_id": "--party",
    "questions": "--questions",
    "request_id": "--request",
    "answer": "--answer",
    "terms": "--terms",
    "remedies": "--remedy",
    "divergence_acknowledgement": "--divergence-reason",
    "departure_reason": "--departure-reason",
    "offer_id": "--offer",
    "comment": "--comment",
    "business_days": "--days",
    "deadline": "--deadline",
    "person_id": "--person",
    "outcome": "--outcome",
    "reasons": "--reasons",
    "rationale": "--rationale",
    "votes_relied_on": "--relied-on",
    "clauses_applied": "--clause",
    "precedents_cited": "--precedent",
    "against_majority_reason": "--against-majority-reason",
    "grounds": "--grounds",
    "new_evidence": "--evidence",
    "position": "--position",
}
_FIELD_FIRST = re.compile(r"^([a-z_]+)(?:\[(\d+)\])?: ")


def as_typed(text: str) -> str:
    """A message that starts with a payload field, started with the option typed for it."""
    found = _FIELD_FIRST.match(text)
    if found is None or found.group(1) not in OPTIONS:
        return text
    place = f" {int(found.group(2)) + 1}" if found.group(2) else ""
    return f"{OPTIONS[found.group(1)]}{place}: {text[found.end() :]}"


def _where_typed(loc: tuple[Any, ...]) -> str:
    """A validation error's place, its first step as the option typed when there is one."""
    if loc and isinstance(loc[0], str) and loc[0] in OPTIONS:
        rest = wording.where(loc[1:], kinds=True)
        return f"{OPTIONS[loc[0]]} {rest}".rstrip()
    return wording.where(loc, kinds=True)


class CliError(Exception):
    pass


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _refusal(reason: object) -> str:
    """A dispute's refusal with names for ids and words for enum values."""
    try:
        with _services().sessions.read() as session:
            names = directory.names(session)
    except Exception:  # the refusal is said even when the directory cannot be read
        names = wording.NO_NAMES
    return wording.summary(reason, names)


def _run(coro: Coroutine[Any, Any, Any]) -> None:
    """Run one command; every expected failure becomes a one-line error and exit code 2."""
    try:
        asyncio.run(coro)
    except FilingRejected as exc:
        for error in exc.errors:
            typer.secho(f"error: {as_typed(str(error))}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        for err in relevant(exc.errors()):
            where = _where_typed(tuple(err["loc"]))
            # A check of the whole payload names its field first ('respondent_ids: ...').
            said = f"{where}: {plain_error(err)}" if where else as_typed(plain_error(err))
            typer.secho(f"error: {said}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except WorkflowUpdateFailedError as exc:
        fail(f"refused: {as_typed(_refusal(getattr(exc.cause, 'message', exc.cause)))}")
    except Refused as exc:
        fail(f"refused: {as_typed(_refusal(exc))}")
    except DisputeGone as exc:
        fail(str(exc.known(_services().sessions)))
    except (UnknownActor, CliError) as exc:
        fail(str(exc))
    except ConfigurationError as exc:
        fail("; ".join(exc.problems))
    except PayloadDecryptionError as exc:
        fail(f"what Temporal returned cannot be opened: {exc}")
    except RPCError as exc:
        # The engine's own words are for the log; the person is told what it means for them.
        log.warning("Temporal answered %s: %s", exc.status, exc.message)
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            fail(
                "the dispute engine (Temporal) did not answer; is `make run` (or the worker's "
                "Temporal) running at ACCORD_TEMPORAL_ADDRESS? Nothing was changed"
            )
        fail(
            "the dispute engine (Temporal) turned the request down "
            f"({exc.status.name.lower() if exc.status else 'unknown'}); nothing was changed"
        )
    except BrokenPipeError:
        # The reader went away (`accord show ... | head`): nothing is left to say.
        return
    except ConnectionError as exc:
        log.warning("connection failed: %s", exc)
        fail(
            "the dispute engine (Temporal) did not answer; is `make run` (or the worker's "
            "Temporal) running at ACCORD_TEMPORAL_ADDRESS? Nothing was changed"
        )


def _settings() -> Settings:
    return Settings()


def _services() -> Services:
    from accord.application import build_services

    return build_services(_settings())


async def _client(settings: Settings) -> Client:
    from accord.platform.temporal import connect

    try:
        return await connect(settings)
    except RuntimeError as exc:
        raise CliError(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); is `make run` running?"
        ) from None


def _actor(services: Any, login: str) -> Actor:
    with services.sessions.read() as session:
        return resolve_actor(session, login)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


# --- actions: one command each, all workflow updates ---------------------------------------------


def _act(
    number: str, login: str, key: str | None, action: Action, build: Callable[[Actor], Any]
) -> None:
    """Perform the action once per key (the same key again answers as the first time), waiting
    at most ACCORD_ACTION_WAIT_SECONDS; past it, say how to pick it up."""
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        fail(f"--update-id: {IDEMPOTENCY_KEY_RULE}")
    chosen = key or new_key()

    async def go() -> None:
        settings = _settings()
        services = _services()
        actor = _actor(services, login)
        payload = build(actor)
        client = await _client(settings)
        try:
            result = await perform_once(
                client,
                services.sessions,
                number,
                OPERATIONS[action],
                payload,
                key=chosen,
                wait_seconds=settings.action_wait_seconds,
                limits=texts.limits_of(settings),
            )
        except texts.TextProblem as problem:
            fail(str(problem))
        except StillApplying as pending:
            typer.echo(
                f"{number}: {pending}; run the same command with --update-id {chosen} for its "
                "result"
            )
            return
        except KeyReused as reused:
            fail(f"--update-id {chosen}: {reused}")
        with services.sessions.read() as session:
            names = directory.names(session)
        said = wording.summary(result.message, names)
        typer.echo(f"{result.number}: {said} (stage: {wording.label(result.stage)})")

    _run(go())
