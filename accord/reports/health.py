"""The channel-health view (issue 20, item 6): where overlaps are found, how alerts end, how long
deciding them takes, and how many conflicts were caught before anyone filed a dispute.

Over a period: the conflict alerts detected in it (`detected_at`) and the disputes filed in it
(`filed_at`), both ends included. An alert's outcome is its state now (open, dismissed, made a
dispute), counted in the week, month or year it was detected. Computed from conflict_alert and
dispute as they are: no table of its own. The board's exceptions beside them
(accord.reports.exceptions): requested in the period, and in force now.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, computed_field
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from accord.reports.exceptions import ExceptionsHealth, exceptions_health
from models.enums import AlertKind, AlertState, DisputeCategory
from models.tables import ConflictAlert, Dispute, Partner

HOTSPOTS = 10
"""The accounts, territories and partner pairs listed: those with the most alerts."""
STALE_DAYS = 14
"""An alert open this many days is listed as waiting too long for a decision."""
LISTED = 15
WEEKS_UP_TO_DAYS = 92
"""Alerts detected over no more than this many days are counted per week, else per month."""
MONTHS_UP_TO = 36
"""Over more months than this, per year: a chart of a few dozen columns at most."""
DETECTABLE = frozenset(
    {
        DisputeCategory.DEAL_REGISTRATION,
        DisputeCategory.TERRITORY,
        DisputeCategory.CHANNEL_VS_DIRECT,
    }
)
"""The dispute categories of the overlaps detection looks for (one customer claimed by two
partners, a sale inside another partner's exclusive territory, direct sales on a registered
customer). A pricing, lead-routing or co-marketing dispute is none an alert could have caught,
so it does not count against the share caught before filing."""

Unit = Literal["week", "month", "year"]


class KindLine(BaseModel):
    """The alerts of one kind detected in the period, by their state now."""

    model_config = ConfigDict(frozen=True)
    kind: AlertKind
    detected: int
    open: int
    dismissed: int
    converted: int


class Interval(BaseModel):
    """One week, month or year of the period: the alerts detected in it, by kind and state."""

    model_config = ConfigDict(frozen=True)
    label: str
    """'2026-W11', '2026-03' or '2026'."""
    start: date
    counts: dict[AlertKind, dict[AlertState, int]]
    """Every kind and every state, zeros included."""

    @property
    def total(self) -> int:
        return sum(sum(states.values()) for states in self.counts.values())

    def by_state(self, state: AlertState) -> int:
        return sum(states[state] for states in self.counts.values())

    def by_kind(self, kind: AlertKind) -> int:
        return sum(self.counts[kind].values())


class Resolution(BaseModel):
    """How long the decided alerts (dismissed or made a dispute) waited for their decision."""

    model_config = ConfigDict(frozen=True)
    kind: AlertKind | None
    """None: every kind together."""
    decided: int
    median_hours: float | None
    p90_hours: float | None
    """Nearest rank: the shortest wait that at least 90% of the decided alerts did not exceed."""


class Caught(BaseModel):
    """Conflicts caught before a dispute was filed, against those a partner had to file.

    `converted`: the disputes that alerts detected in the period were made into (two alerts made
    into one dispute count once). `filed_without_alert`: the disputes filed in the period, of a
    category detection looks for (DETECTABLE), whose number no alert carries. Each conflict is
    counted when it surfaced: at its detection when an alert caught it, at the filing when none
    did; a dispute filed in the period from an alert detected before it counts in neither.
    `other_categories`: disputes filed in the period, of a category detection does not look
    for, that no alert led to: not counted in the share, shown so the reader sees them."""

    model_config = ConfigDict(frozen=True)
    converted: int
    filed_without_alert: int
    other_categories: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def share(self) -> float | None:
        """converted / (converted + filed_without_alert); None when both are zero."""
        total = self.converted + self.filed_without_alert
        return None if not total else self.converted / total


class Hotspot(BaseModel):
    """An account, a territory or a pair of partners, with the alerts that name it."""

    model_config = ConfigDict(frozen=True)
    key: str
    """The account or territory code, or the two partners' ids joined by '|'."""
    name: str
    """As people read it: the code, or the partners' names."""
    alerts: int
    open: int


class StaleAlert(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    kind: AlertKind
    partners: str
    detected_at: datetime
    days_open: int


class ChannelHealth(BaseModel):
    model_config = ConfigDict(frozen=True)
    start: datetime | None
    end: datetime | None
    generated_at: datetime
    detected: int
    """Alerts detected in the period."""
    kinds: list[KindLine]
    unit: Unit
    over_time: list[Interval]
    """From the first to the last interval holding a detection, empty ones included."""
    resolution: list[Resolution]
    """Every kind together first, then each kind with a decided alert."""
    caught: Caught
    accounts: list[Hotspot]
    territories: list[Hotspot]
    pairs: list[Hotspot]
    stale_after_days: int
    stale_total: int
    """Alerts detected in the period and open for stale_after_days or longer now."""
    stale: list[StaleAlert]
    """The oldest of them, up to LISTED."""
    exceptions: ExceptionsHealth
    """The board's exceptions: requested in the period, and in force now."""

    def rows(self) -> list[dict[str, Any]]:
        """The view flattened for CSV: one (section, name, measure, value) row per figure."""
        out: list[dict[str, Any]] = [_row("period", "alerts", "detected", self.detected)]
        for k in self.kinds:
            for measure, value in (
                ("detected", k.detected),
                ("open", k.open),
                ("dismissed", k.dismissed),
                ("converted", k.converted),
            ):
                out.append(_row("kind", k.kind.value, measure, value))
        for i in self.over_time:
            for kind, states in i.counts.items():
                for state, n in states.items():
                    out.append(_row(f"per_{self.unit}", i.label, f"{kind.value}:{state.value}", n))
        for r in self.resolution:
            name = "all" if r.kind is None else r.kind.value
            for measure, hours in (
                ("decided", r.decided),
                ("median_hours", r.median_hours),
                ("p90_hours", r.p90_hours),
            ):
                out.append(_row("resolution", name, measure, hours))
        c = self.caught
        for measure, figure in (
            ("converted", c.converted),
            ("filed_without_alert", c.filed_without_alert),
            ("other_categories", c.other_categories),
            ("share", c.share),
        ):
            out.append(_row("caught_before_filing", "disputes", measure, figure))
        for section, spots in (
            ("hotspot_account", self.accounts),
            ("hotspot_territory", self.territories),
            ("hotspot_pair", self.pairs),
        ):
            for h in spots:
                out.append(_row(section, h.name, "alerts", h.alerts))
                out.append(_row(section, h.name, "open", h.open))
        out.append(_row("stale_open", f"{self.stale_after_days} days", "alerts", self.stale_total))
        for s in self.stale:
            out.append(_row("stale_open", f"alert {s.id}", "days_open", s.days_open))
        return out + self.exceptions.rows()


def _row(section: str, name: str, measure: str, value: Any) -> dict[str, Any]:
    return {"section": section, "name": name, "measure": measure, "value": value}


def channel_health(
    session: Session, start: datetime | None, end: datetime | None, now: datetime
) -> ChannelHealth:
    """The channel-health view of the alerts detected and the disputes filed from `start` to
    `end` (either open), as of `now`."""

    def in_period(query: Any, moment: Any) -> Any:
        if start is not None:
            query = query.where(moment >= start)
        if end is not None:
            query = query.where(moment <= end)
        return query

    alerts: list[Any] = list(
        session.execute(
            in_period(
                sa_select(
                    col(ConflictAlert.id),
                    col(ConflictAlert.kind),
                    col(ConflictAlert.state),
                    col(ConflictAlert.partner_ids),
                    col(ConflictAlert.evidence),
                    col(ConflictAlert.detected_at),
                    col(ConflictAlert.decided_at),
                    col(ConflictAlert.dispute_number),
                ).order_by(col(ConflictAlert.detected_at), col(ConflictAlert.id)),
                ConflictAlert.detected_at,
            )
        ).all()
    )
    names = dict(session.exec(select(Partner.id, Partner.name)).all())
    unit, over_time = _over_time(alerts)
    stale = [
        a
        for a in alerts
        if a.state is AlertState.OPEN and a.detected_at <= now - timedelta(days=STALE_DAYS)
    ]
    return ChannelHealth(
        start=start,
        end=end,
        generated_at=now,
        detected=len(alerts),
        kinds=_kinds(alerts),
        unit=unit,
        over_time=over_time,
        resolution=_resolution(alerts),
        caught=_caught(session, alerts, in_period),
        accounts=_hotspots(alerts, lambda a: _codes(a.evidence, "account")),
        territories=_hotspots(alerts, lambda a: _codes(a.evidence, "territory")),
        pairs=_hotspots(alerts, _pair, names),
        stale_after_days=STALE_DAYS,
        stale_total=len(stale),
        stale=[
            StaleAlert(
                id=a.id,
                kind=a.kind,
                partners=_pair_name(a.partner_ids, names),
                detected_at=a.detected_at,
                days_open=(now - a.detected_at).days,
            )
            for a in stale[:LISTED]  # the oldest: the alerts are in detection order
        ],
        exceptions=exceptions_health(session, in_period, names, now),
    )


def _kinds(alerts: list[Any]) -> list[KindLine]:
    states: dict[AlertKind, Counter[AlertState]] = defaultdict(Counter)
    for a in alerts:
        states[a.kind][a.state] += 1
    return [
        KindLine(
            kind=kind,
            detected=sum(states[kind].values()),
            open=states[kind][AlertState.OPEN],
            dismissed=states[kind][AlertState.DISMISSED],
            converted=states[kind][AlertState.CONVERTED],
        )
        for kind in AlertKind
        if kind in states
    ]


def _over_time(alerts: list[Any]) -> tuple[Unit, list[Interval]]:
    if not alerts:
        return "month", []
    first, last = alerts[0].detected_at, alerts[-1].detected_at  # ordered by detection
    months = (last.year - first.year) * 12 + last.month - first.month
    unit: Unit = (
        "week"
        if last - first <= timedelta(days=WEEKS_UP_TO_DAYS)
        else "month"
        if months <= MONTHS_UP_TO
        else "year"
    )
    counts: dict[date, dict[AlertKind, Counter[AlertState]]] = defaultdict(
        lambda: defaultdict(Counter)
    )
    for a in alerts:
        counts[_interval(a.detected_at.date(), unit)][a.kind][a.state] += 1
    return unit, [
        Interval(
            label=_label(begins, unit),
            start=begins,
            counts={
                kind: {state: counts[begins][kind][state] for state in AlertState}
                for kind in AlertKind
            },
        )
        for begins in _intervals(_interval(first.date(), unit), _interval(last.date(), unit), unit)
    ]


def _interval(day: date, unit: Unit) -> date:
    """The first day of the week (Monday), month or year holding `day`."""
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if unit == "month" else day.replace(month=1, day=1)


def _intervals(first: date, last: date, unit: Unit) -> Iterator[date]:
    begins = first
    while True:
        yield begins
        # Stops before stepping past `last`: the step after 9999's last interval overflows.
        if begins >= last:
            return
        if unit == "week":
            begins += timedelta(days=7)
        elif unit == "month":
            begins = date(begins.year + begins.month // 12, begins.month % 12 + 1, 1)
        else:
            begins = begins.replace(year=begins.year + 1)


def _label(begins: date, unit: Unit) -> str:
    if unit == "week":
        year, week, _ = begins.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{begins:%Y-%m}" if unit == "month" else str(begins.year)


def _resolution(alerts: list[Any]) -> list[Resolution]:
    hours: dict[AlertKind, list[float]] = defaultdict(list)
    for a in alerts:
        if a.state is not AlertState.OPEN and a.decided_at is not None:
            hours[a.kind].append((a.decided_at - a.detected_at).total_seconds() / 3600)

    def line(kind: AlertKind | None, waits: list[float]) -> Resolution:
        ordered = sorted(waits)
        return Resolution(
            kind=kind,
            decided=len(ordered),
            median_hours=round(statistics.median(ordered), 1) if ordered else None,
            p90_hours=round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1) if ordered else None,
        )

    every = [h for waits in hours.values() for h in waits]
    return [line(None, every)] + [line(k, hours[k]) for k in AlertKind if hours[k]]


def _caught(session: Session, alerts: list[Any], in_period: Callable[[Any, Any], Any]) -> Caught:
    # Alerts made into one dispute are one conflict caught; one made into none (no number
    # recorded) is still a conflict caught.
    converted = {
        a.dispute_number or f"alert {a.id}" for a in alerts if a.state is AlertState.CONVERTED
    }
    # Any alert's number, whenever it was detected: a dispute an alert led to was not filed
    # without one, even when the alert is older than the period.
    led = set(
        session.exec(
            select(ConflictAlert.dispute_number)
            .where(col(ConflictAlert.dispute_number).is_not(None))
            .distinct()
        ).all()
    )
    filed: list[Any] = list(
        session.execute(
            in_period(sa_select(col(Dispute.number), col(Dispute.category)), Dispute.filed_at)
        ).all()
    )
    unled = [d.category for d in filed if d.number not in led]
    return Caught(
        converted=len(converted),
        filed_without_alert=sum(1 for c in unled if c in DETECTABLE),
        other_categories=sum(1 for c in unled if c not in DETECTABLE),
    )


def _codes(evidence: Any, field: str) -> set[str]:
    """The account or territory codes an alert's evidence names: its objects' snapshots, and a
    territory alert's territory. Read defensively: evidence is JSON as detection wrote it."""
    if not isinstance(evidence, dict):
        return set()
    objects = evidence.get("objects")
    found = (
        {o.get(field) for o in objects if isinstance(o, dict)}
        if isinstance(objects, list)
        else set()
    )
    territory = evidence.get("territory")
    if field == "territory" and isinstance(territory, dict):
        found.add(territory.get("code"))
    return {c for c in found if isinstance(c, str) and c.strip()}


def _pair(alert: Any) -> set[str]:
    return {"|".join(sorted(alert.partner_ids))} if alert.partner_ids else set()


def _hotspots(
    alerts: list[Any], keys: Callable[[Any], set[str]], names: dict[str, str] | None = None
) -> list[Hotspot]:
    """The keys named by the most alerts (each alert counted once per key), most first."""
    total: Counter[str] = Counter()
    still_open: Counter[str] = Counter()
    for a in alerts:
        for key in keys(a):
            total[key] += 1
            still_open[key] += a.state is AlertState.OPEN
    ranked = sorted(total.items(), key=lambda item: (-item[1], item[0]))[:HOTSPOTS]
    return [
        Hotspot(
            key=key,
            name=key if names is None else _pair_name(key.split("|"), names),
            alerts=n,
            open=still_open[key],
        )
        for key, n in ranked
    ]


def _pair_name(partner_ids: list[str], names: dict[str, str]) -> str:
    return " / ".join(names.get(p, p) for p in sorted(partner_ids))
