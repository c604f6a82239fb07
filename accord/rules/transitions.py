"""The one table of legal (stage, action, role) combinations.

Workflow validators consult it before anything is recorded; the CLI, web and API ask it
which actions to offer. Who *within* a role may act (the assigned mediator, a party's
contact, the claimant) is checked by the validators against the dispute itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from models.enums import Action, DisputeStage, Role

S = DisputeStage
A = Action
R = Role

TRANSITIONS: Mapping[tuple[DisputeStage, Action], frozenset[Role]] = MappingProxyType(
    {
        # filed: evidence uploaded with the filing form arrives while the workflow starts
        (S.FILED, A.ADD_EVIDENCE): frozenset({R.PARTNER}),
        (S.FILED, A.ADD_MESSAGE): frozenset({R.PARTNER}),
        # triage: a mediator is offered the dispute
        (S.TRIAGE, A.ACCEPT_ASSIGNMENT): frozenset({R.MEDIATOR}),
        (S.TRIAGE, A.RECUSE): frozenset({R.MEDIATOR}),
        (S.TRIAGE, A.ASSIGN_MEDIATOR): frozenset({R.ADMIN}),
        (S.TRIAGE, A.EXTEND_DEADLINE): frozenset({R.ADMIN}),
        (S.TRIAGE, A.WITHDRAW): frozenset({R.PARTNER}),
        (S.TRIAGE, A.LINK_FILING): frozenset({R.SYSTEM}),
        (S.TRIAGE, A.ADD_EVIDENCE): frozenset({R.PARTNER}),
        (S.TRIAGE, A.ADD_MESSAGE): frozenset({R.PARTNER}),
        # mediation
        (S.MEDIATION, A.RECUSE): frozenset({R.MEDIATOR}),
        (S.MEDIATION, A.ADD_NOTE): frozenset({R.MEDIATOR}),
        (S.MEDIATION, A.REQUEST_INFORMATION): frozenset({R.MEDIATOR}),
        (S.MEDIATION, A.PROPOSE_SETTLEMENT): frozenset({R.MEDIATOR}),
        (S.MEDIATION, A.RESPOND_TO_OFFER): frozenset({R.PARTNER}),
        (S.MEDIATION, A.DECLARE_IMPASSE): frozenset({R.MEDIATOR}),
        (S.MEDIATION, A.DISMISS): frozenset({R.MEDIATOR}),
        (S.MEDIATION, A.WITHDRAW): frozenset({R.PARTNER}),
        (S.MEDIATION, A.EXTEND_DEADLINE): frozenset({R.ADMIN}),
        (S.MEDIATION, A.ASSIGN_MEDIATOR): frozenset({R.ADMIN}),
        (S.MEDIATION, A.LINK_FILING): frozenset({R.SYSTEM}),
        (S.MEDIATION, A.ADD_EVIDENCE): frozenset({R.PARTNER, R.MEDIATOR}),
        (S.MEDIATION, A.ADD_MESSAGE): frozenset({R.PARTNER, R.MEDIATOR}),
        # a party owes information: the mediation clock is paused
        (S.AWAITING_PARTY, A.ADD_NOTE): frozenset({R.MEDIATOR}),
        (S.AWAITING_PARTY, A.ANSWER_INFORMATION): frozenset({R.PARTNER}),
        (S.AWAITING_PARTY, A.RESPOND_TO_OFFER): frozenset({R.PARTNER}),
        (S.AWAITING_PARTY, A.DECLARE_IMPASSE): frozenset({R.MEDIATOR}),
        (S.AWAITING_PARTY, A.DISMISS): frozenset({R.MEDIATOR}),
        (S.AWAITING_PARTY, A.WITHDRAW): frozenset({R.PARTNER}),
        (S.AWAITING_PARTY, A.EXTEND_DEADLINE): frozenset({R.ADMIN}),
        (S.AWAITING_PARTY, A.LINK_FILING): frozenset({R.SYSTEM}),
        (S.AWAITING_PARTY, A.ADD_EVIDENCE): frozenset({R.PARTNER, R.MEDIATOR}),
        (S.AWAITING_PARTY, A.ADD_MESSAGE): frozenset({R.PARTNER, R.MEDIATOR}),
        # remedies of a settlement are applied; one that keeps failing waits for an admin
        (S.REMEDY, A.RETRY_REMEDY): frozenset({R.ADMIN}),
        (S.REMEDY, A.WAIVE_REMEDY): frozenset({R.ADMIN}),
        (S.REMEDY, A.LINK_FILING): frozenset({R.SYSTEM}),
        (S.REMEDY, A.ADD_MESSAGE): frozenset({R.PARTNER}),
        # formal review by a board panel: sealed votes, then the chair's ruling
        (S.FORMAL_REVIEW, A.CAST_VOTE): frozenset({R.BOARD}),
        (S.FORMAL_REVIEW, A.RECUSE): frozenset({R.BOARD}),
        (S.FORMAL_REVIEW, A.UNSEAL_BALLOT): frozenset({R.BOARD}),
        (S.FORMAL_REVIEW, A.ISSUE_RULING): frozenset({R.BOARD}),
        (S.FORMAL_REVIEW, A.DISMISS): frozenset({R.BOARD}),
        (S.FORMAL_REVIEW, A.REDRAW_PANEL): frozenset({R.ADMIN}),
        (S.FORMAL_REVIEW, A.WITHDRAW): frozenset({R.PARTNER}),
        (S.FORMAL_REVIEW, A.LINK_FILING): frozenset({R.SYSTEM}),
        (S.FORMAL_REVIEW, A.ADD_EVIDENCE): frozenset({R.PARTNER}),
        (S.FORMAL_REVIEW, A.ADD_MESSAGE): frozenset({R.PARTNER}),
        # ruled: either party may appeal once within the window
        (S.APPEAL_WINDOW, A.APPEAL): frozenset({R.PARTNER}),
        (S.APPEAL_WINDOW, A.LINK_FILING): frozenset({R.SYSTEM}),
        # new evidence for an appeal is added before the appeal cites it
        (S.APPEAL_WINDOW, A.ADD_EVIDENCE): frozenset({R.PARTNER}),
        (S.APPEAL_WINDOW, A.ADD_MESSAGE): frozenset({R.PARTNER}),
    }
)


def allowed_roles(stage: DisputeStage, action: Action) -> frozenset[Role]:
    return TRANSITIONS.get((stage, action), frozenset())


def allowed_actions(stage: DisputeStage, role: Role) -> tuple[Action, ...]:
    return tuple(a for (s, a), roles in TRANSITIONS.items() if s is stage and role in roles)


def why_not(stage: DisputeStage, action: Action, role: Role) -> str | None:
    """None when the table allows it; otherwise the rule, in words a user can act on."""
    roles = allowed_roles(stage, action)
    if role in roles:
        return None
    if not roles:
        stages = sorted({s.value for (s, a) in TRANSITIONS if a is action})
        return (
            f"{action.value} is not possible while the dispute is {stage.value}"
            f" (possible in: {', '.join(stages) or 'no stage'})"
        )
    return (
        f"{action.value} in stage {stage.value} is for "
        f"{' or '.join(sorted(r.value for r in roles))}, not {role.value}"
    )
