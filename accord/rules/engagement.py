"""Departing from the rules of engagement: does a proposed settlement or a ruling do other than
what the decision tables recommended for the dispute (accord.playbooks.engagement)?

Pure, like the precedent consistency check (accord.rules.consistency) it stands beside: the
workflow's validators run it on the recommendation the dispute holds, and the web shows the same
answer before anything is submitted. A departure is allowed with a reason, and the reason goes
into the record.
"""

from __future__ import annotations

from collections.abc import Iterable

from accord.rules.consistency import clause_ref
from models.enums import RemedyKind, VoteOutcome
from models.payloads.engagement import Recommendation


def _words(value: str) -> str:
    return value.replace("_", " ")


def departures(
    recommendation: Recommendation | None, *, outcome: str | None, remedies: Iterable[RemedyKind]
) -> tuple[str, ...]:
    """How the decision departs from the recommendation, one sentence each (`remedies`: the
    kinds of remedy it gives).

    `outcome` is a ruling's; a settlement has none, and departs when it gives the claimant
    something the rules deny, or leaves out a remedy they recommend."""
    if recommendation is None or recommendation.outcome is None:
        return ()
    recommended = recommendation.outcome
    where = clause_ref(recommendation.clause or "")
    kinds = set(remedies)
    found: list[str] = []
    if outcome is not None and outcome != recommended.value:
        found.append(
            f"outcome: the rules of engagement recommend {_words(recommended.value)} ({where}),"
            f" this is {_words(outcome)}"
        )
    if outcome is None and recommended is VoteOutcome.DENY and kinds:
        found.append(
            f"remedies: the rules of engagement recommend deny ({where}), this settlement gives"
            f" {', '.join(sorted(_words(k.value) for k in kinds))}"
        )
    missing = [k for k in recommendation.remedies if k not in kinds]
    if missing and outcome != VoteOutcome.DENY.value:
        found.append(
            f"remedies: the rules of engagement recommend "
            f"{', '.join(_words(k.value) for k in recommendation.remedies)} ({where}), this "
            f"leaves out {', '.join(_words(k.value) for k in missing)}"
        )
    return tuple(found)
