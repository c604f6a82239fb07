"""The SLA and channel-health report: how the escalation timelines were kept, where conflicts
come from, how they end, and where they recur.

Over a period of filing dates. Stage times and deadline results come from the precedents of
the disputes filed in the period that have been decided (their timelines record each stage's
duration and each deadline met or breached); disputes still open count as filed, and those
past their current deadline are listed as overdue now.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from accord.playbooks.library import Playbook
from accord.reports.backtest import Backtest, backtest
from models.tables import Dispute, DisputeObject, DisputeParty, Partner, Precedent

STAGES = (
    ("triage", "acceptance"),
    ("mediation", "mediation"),
    ("awaiting_party", "information"),
    ("formal_review", "review"),
    ("appeal_window", None),
    ("remedy", "remedy"),
)
"""The stages a dispute waits in, each with the deadline purpose that times it (if any)."""
REPEAT_AT = 2
"""A party in this many disputes of the period, or an object contested this often, recurs."""
LISTED = 15


class StageLine(BaseModel):
    model_config = ConfigDict(frozen=True)
    stage: str
    decided: int
    """Decided disputes that passed through the stage."""
    median_hours: float | None
    deadlines: int
    breaches: int

    @property
    def on_time_share(self) -> float | None:
        return None if not self.deadlines else (self.deadlines - self.breaches) / self.deadlines


class Group(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    filed: int
    open: int
    outcomes: dict[str, int]
    remedies: dict[str, int]


class Recurring(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    disputes: int
    detail: str


class SlaReport(BaseModel):
    model_config = ConfigDict(frozen=True)
    start: datetime | None
    end: datetime | None
    generated_at: datetime
    filed: int
    decided: int
    stages: list[StageLine]
    overdue_now: list[Recurring]
    categories: list[Group]
    regions: list[Group]
    repeat_parties: list[Recurring]
    hotspots: list[Recurring]
    backtest: Backtest | None = None
    """The rules of engagement in force, evaluated on the period's precedents."""

    def rows(self) -> list[dict[str, Any]]:
        """The report flattened for CSV: one (section, name, measure, value) row per figure."""
        out: list[dict[str, Any]] = [
            {"section": "period", "name": "filed", "measure": "disputes", "value": self.filed},
            {"section": "period", "name": "decided", "measure": "disputes", "value": self.decided},
        ]
        for s in self.stages:
            for measure, value in (
                ("decided", s.decided),
                ("median_hours", s.median_hours),
                ("deadlines", s.deadlines),
                ("breaches", s.breaches),
                ("on_time_share", s.on_time_share),
            ):
                out.append(
                    {"section": "stage", "name": s.stage, "measure": measure, "value": value}
                )
        for section, groups in (("category", self.categories), ("region", self.regions)):
            for g in groups:
                out.append(
                    {"section": section, "name": g.name, "measure": "filed", "value": g.filed}
                )
                out.append({"section": section, "name": g.name, "measure": "open", "value": g.open})
                for outcome, n in g.outcomes.items():
                    out.append(
                        {
                            "section": section,
                            "name": g.name,
                            "measure": f"outcome:{outcome}",
                            "value": n,
                        }
                    )
                for remedy, n in g.remedies.items():
                    out.append(
                        {
                            "section": section,
                            "name": g.name,
                            "measure": f"remedy:{remedy}",
                            "value": n,
                        }
                    )
        for section, items in (
            ("repeat_party", self.repeat_parties),
            ("hotspot", self.hotspots),
            ("overdue_now", self.overdue_now),
        ):
            for r in items:
                out.append(
                    {"section": section, "name": r.name, "measure": r.detail, "value": r.disputes}
                )
        if self.backtest is not None and self.backtest.playbook_version is not None:
            b = self.backtest
            name = f"playbook {b.playbook_version}"
            for measure, value in (
                ("precedents", b.precedents),
                ("recommended", b.recommended),
                ("agreed", b.agreed),
                ("agreement_rate", b.agreement_rate),
                ("on_recorded_facts", b.recorded_facts),
            ):
                out.append(
                    {"section": "backtest", "name": name, "measure": measure, "value": value}
                )
            for clause, (n, agreed) in b.by_clause.items():
                out.append(
                    {
                        "section": "backtest_clause",
                        "name": clause,
                        "measure": "recommended",
                        "value": n,
                    }
                )
                out.append(
                    {
                        "section": "backtest_clause",
                        "name": clause,
                        "measure": "agreed",
                        "value": agreed,
                    }
                )
        return out


def sla_report(
    session: Session,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    playbook: Playbook | None = None,
) -> SlaReport:
    """`playbook`: the one in force, whose decision tables are backtested on the period's
    precedents (none: no backtest)."""

    def in_period(query: Any) -> Any:
        if start is not None:
            query = query.where(Dispute.filed_at >= start)
        if end is not None:
            query = query.where(Dispute.filed_at <= end)
        return query

    disputes: list[Any] = list(
        session.execute(
            in_period(
                sa_select(
                    col(Dispute.number),
                    col(Dispute.category),
                    col(Dispute.claimant_id),
                    col(Dispute.closed_at),
                    col(Dispute.stage),
                    col(Dispute.stage_deadline),
                )
            )
        ).all()
    )
    regions = {p.id: (p.regions[0] if p.regions else "—") for p in session.exec(select(Partner))}
    names = {p.id: p.name for p in session.exec(select(Partner))}
    precedents: list[Any] = session.exec(
        in_period(
            select(
                Precedent.dispute_number,
                Precedent.outcome,
                Precedent.timeline,
                Precedent.remedies,
            ).join(Dispute, col(Dispute.number) == Precedent.dispute_number)
        )
    ).all()

    # Stages: time spent and deadlines met, from the decided disputes' timelines.
    hours: dict[str, list[float]] = defaultdict(list)
    deadlines: Counter[str] = Counter()
    breaches: Counter[str] = Counter()
    for p in precedents:
        for entry in p.timeline:
            if "stage" in entry and "seconds" in entry:
                hours[str(entry["stage"])].append(int(entry["seconds"]) / 3600)
            elif "deadline" in entry:
                purpose = str(entry["deadline"])
                deadlines[purpose] += 1
                breaches[purpose] += entry.get("result") == "breached"
    stages = [
        StageLine(
            stage=stage.replace("_", " "),
            decided=len(hours[stage]),
            median_hours=round(statistics.median(hours[stage]), 1) if hours[stage] else None,
            deadlines=deadlines[purpose or ""],
            breaches=breaches[purpose or ""],
        )
        for stage, purpose in STAGES
        if hours[stage] or deadlines[purpose or ""]
    ]

    # Where conflicts come from and how they end: per category and per claimant region.
    decided = {p.dispute_number: p for p in precedents}
    by_category: dict[str, list[Any]] = defaultdict(list)
    by_region: dict[str, list[Any]] = defaultdict(list)
    for d in disputes:
        by_category[str(d.category.value)].append(d)
        by_region[regions.get(d.claimant_id, "—")].append(d)

    def group(name: str, members: list[Any]) -> Group:
        outcomes: Counter[str] = Counter()
        remedies: Counter[str] = Counter()
        for d in members:
            p = decided.get(d.number)
            if p is not None:
                outcomes[p.outcome] += 1
                remedies.update(str(r.get("kind")) for r in p.remedies)
        return Group(
            name=name,
            filed=len(members),
            open=sum(1 for d in members if d.closed_at is None),
            outcomes=dict(outcomes.most_common()),
            remedies=dict(remedies.most_common()),
        )

    numbers = [d.number for d in disputes]
    party_counts = session.exec(
        in_period(
            select(DisputeParty.partner_id, DisputeParty.side, func.count())
            .join(Dispute, col(Dispute.number) == DisputeParty.dispute_number)
            .group_by(DisputeParty.partner_id, DisputeParty.side)
        )
    ).all()
    per_party: dict[str, Counter[str]] = defaultdict(Counter)
    for partner_id, side, n in party_counts:
        per_party[partner_id][side] += n
    repeat = sorted(
        (
            Recurring(
                name=names.get(pid, pid),
                disputes=sum(sides.values()),
                detail=", ".join(f"{n} as {side}" for side, n in sorted(sides.items())),
            )
            for pid, sides in per_party.items()
            if sum(sides.values()) >= REPEAT_AT
        ),
        key=lambda r: (-r.disputes, r.name),
    )[:LISTED]
    objects = session.exec(
        in_period(
            select(DisputeObject.kind, DisputeObject.ref, func.count())
            .join(Dispute, col(Dispute.number) == DisputeObject.dispute_number)
            .group_by(DisputeObject.kind, DisputeObject.ref)
            .having(func.count() >= REPEAT_AT)
            .order_by(func.count().desc())
            .limit(LISTED)
        )
    ).all()
    hotspots = [
        Recurring(name=f"{kind.value.replace('_', ' ')} {ref}", disputes=n, detail="contested")
        for kind, ref, n in objects
    ]
    late: list[tuple[datetime, Any]] = sorted(
        (
            (_aware(d.stage_deadline), d)
            for d in disputes
            if d.closed_at is None
            and d.stage_deadline is not None
            and _aware(d.stage_deadline) < now
        ),
        key=lambda item: item[0],
    )
    overdue = [
        Recurring(
            name=d.number,
            disputes=1,
            detail=f"{d.stage.value.replace('_', ' ')} deadline passed {_age(now - due)} ago",
        )
        for due, d in late[:LISTED]
    ]
    return SlaReport(
        start=start,
        end=end,
        generated_at=now,
        filed=len(numbers),
        decided=len(precedents),
        stages=stages,
        overdue_now=overdue,
        categories=sorted(
            (group(k, v) for k, v in by_category.items()), key=lambda g: (-g.filed, g.name)
        ),
        regions=sorted(
            (group(k, v) for k, v in by_region.items()), key=lambda g: (-g.filed, g.name)
        ),
        repeat_parties=repeat,
        hotspots=hotspots,
        backtest=None if playbook is None else backtest(session, playbook, start, end),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _age(delta: timedelta) -> str:
    days = delta.days
    return f"{days} days" if days >= 1 else f"{int(delta.total_seconds() // 3600)} hours"
