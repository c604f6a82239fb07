"""The versioned rules of engagement: YAML files in `playbooks/`, validated on load.

Errors name the file, the path inside it and the problem, e.g.
`playbooks/2026.1.yaml: categories.pricing.allowed_remedies[1]: 'refund' is not one of ...`.
"""

from __future__ import annotations

import re
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import holidays as holiday_data
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from accord.rules.consistency import clause_key, clause_ref
from models.enums import DisputeCategory, PartnerTier, RemedyKind, VoteOutcome
from models.payloads import PlaybookTerms
from models.payloads.engagement import Side

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PlaybookError(ValueError):
    """A playbook file that cannot be used, with where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HolidaySource(_Strict):
    country: str
    subdivision: str | None = None
    extra: dict[date, str] = Field(default_factory=dict)
    """Company-specific closing days on top of the public holidays."""

    @model_validator(mode="after")
    def _known_country(self) -> HolidaySource:
        supported = holiday_data.list_supported_countries()
        if self.country not in supported:
            raise ValueError(f"unknown holiday country {self.country!r}")
        if self.subdivision is not None and self.subdivision not in supported[self.country]:
            raise ValueError(
                f"unknown subdivision {self.subdivision!r} of {self.country} "
                f"(known: {', '.join(supported[self.country][:12])}...)"
            )
        return self


class CalendarSpec(_Strict):
    time_zone: str
    working_days: Annotated[list[Weekday], Field(min_length=1)]
    working_hours: tuple[time, time]
    holidays: HolidaySource

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours_in_order(cls, value: tuple[time, time]) -> tuple[time, time]:
        if value[0] >= value[1]:
            raise ValueError("working hours must start before they end")
        return value


class StageRule(_Strict):
    business_days: Annotated[int, Field(ge=1, le=120)]
    calendar_of: Literal["mediator", "party", "board"]


class StageRules(_Strict):
    acceptance: StageRule
    mediation: StageRule
    information_request: StageRule
    formal_review: StageRule
    remedy: StageRule


class PanelRules(_Strict):
    functions: Annotated[list[str], Field(min_length=1)]
    """Board functions a review panel draws one member from; the chair comes on top."""


class CategoryRules(_Strict):
    clause: Annotated[str, Field(min_length=3)]
    allowed_remedies: Annotated[list[RemedyKind], Field(min_length=1)]


Sides = Side | Annotated[list[Side], Field(min_length=1)]


class Conditions(_Strict):
    """What one rule of a decision table asks of the facts (models.payloads.engagement): each
    named fact must have the value given (or one of the values listed); a fact left out may be
    anything. A fact the channel data does not establish meets no condition."""

    first_registrant: Sides | None = None
    within_protection: bool | None = None
    named_account: Sides | None = None
    exclusive_territory: Sides | None = None
    customer_choice: Sides | None = None
    price_in_band: bool | None = None
    lead_routed_by_rules: bool | None = None
    exception: Sides | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_empty_condition(cls, data: object) -> object:
        # `{exception: }` is YAML for null: read as "not asked", the rule would lose its only
        # condition and decide every dispute. A fact named must be given a value.
        if isinstance(data, dict):
            empty = [str(name) for name, value in data.items() if value is None]
            if empty:
                raise ValueError(
                    f"{', '.join(empty)}: no value given (name a value, or leave the fact out)"
                )
        return data

    def asked(self) -> dict[str, tuple[object, ...]]:
        """Fact name to the values that meet it, for the facts this rule names."""
        return {
            name: tuple(value) if isinstance(value, list) else (value,)
            for name, value in self.model_dump(exclude_none=True).items()
        }


class TableRule(_Strict):
    when: Conditions = Conditions()
    outcome: VoteOutcome
    remedies: list[RemedyKind] = Field(default_factory=list)
    because: Annotated[str, Field(min_length=3, max_length=500)]
    """The rule in words, shown in the explanation."""

    @model_validator(mode="after")
    def _remedies_fit_outcome(self) -> TableRule:
        if self.outcome is VoteOutcome.DENY and self.remedies:
            raise ValueError("remedies: a deny outcome carries no remedies")
        if self.outcome is not VoteOutcome.DENY and not self.remedies:
            raise ValueError(f"remedies: a {self.outcome.value} outcome names at least one remedy")
        return self


class DecisionTable(_Strict):
    """One clause of the rules of engagement as a decision table: its rules are tried in order
    and the first whose conditions the facts meet decides (DMN's 'first' hit policy)."""

    clause: Annotated[str, Field(min_length=3)]
    categories: Annotated[list[DisputeCategory], Field(min_length=1)]
    rules: Annotated[list[TableRule], Field(min_length=1)]


class PricingBand(_Strict):
    max_discount: Annotated[float, Field(ge=0, le=100)]
    """The largest discount off the list price, in percent, a partner of the tier may give."""


LeadRoute = Literal["named_account", "registered_partner", "exclusive_territory"]


ExceptionScope = Literal["account", "territory"]


class ExceptableClause(_Strict):
    clause: Annotated[str, Field(min_length=3, max_length=200)]
    """The clause, by its reference ("RoE 4.2") or in full: one of the decision tables'."""
    scopes: Annotated[list[ExceptionScope], Field(min_length=1)]
    """What an exception to it may cover: one named account, or a whole territory."""


class ExceptionRules(_Strict):
    """Which rules of engagement the board may grant an exception to, for how long, and its
    timeline (workflows/exception.py): the partners affected may object for `objection_days`,
    then the panel has `decision_days`, both business days on the board calendar."""

    clauses: Annotated[list[ExceptableClause], Field(min_length=1)]
    longest_days: Annotated[int, Field(ge=1, le=3650)]
    """The longest an exception may last, in calendar days from its request."""
    objection_days: Annotated[int, Field(ge=1, le=60)]
    decision_days: Annotated[int, Field(ge=1, le=60)]

    def allowed(self, clause: str) -> ExceptableClause | None:
        return next((c for c in self.clauses if clause_key(c.clause) == clause_key(clause)), None)


class Engagement(_Strict):
    """The rules of engagement as decision tables (accord.rules.engagement evaluates them)."""

    protection_days: Annotated[int, Field(ge=1, le=3650)]
    """Calendar days a registration protects its partner, unless it carries its own expiry."""
    pricing_bands: dict[PartnerTier, PricingBand]
    lead_routing: Annotated[list[LeadRoute], Field(min_length=1)]
    """Where a lead goes, in order: the partner the account is named to, the partner with a
    live registration of the customer, the exclusive holder of its territory; else the vendor."""
    tables: Annotated[list[DecisionTable], Field(min_length=1)]
    """In order of precedence: the first table with a rule that applies decides."""
    exceptions: ExceptionRules | None = None
    """What the board may except; without it no exception can be requested."""

    def band(self, tier: PartnerTier) -> Decimal:
        """The largest discount off list, in percent, a partner of `tier` may give."""
        return Decimal(str(self.pricing_bands[tier].max_discount))

    @model_validator(mode="after")
    def _consistent(self) -> Engagement:
        missing = set(PartnerTier) - set(self.pricing_bands)
        if missing:
            raise ValueError(f"pricing_bands: missing {', '.join(sorted(missing))}")
        if len(set(self.lead_routing)) != len(self.lead_routing):
            raise ValueError("lead_routing: a route is listed twice")
        seen: dict[str, int] = {}
        for position, table in enumerate(self.tables):
            reference = clause_key(table.clause)
            if reference in seen:
                raise ValueError(
                    f"tables[{position}].clause: {clause_ref(table.clause)} is also "
                    f"tables[{seen[reference]}]'s"
                )
            seen[reference] = position
        for position, excepted in enumerate(self.exceptions.clauses if self.exceptions else ()):
            if clause_key(excepted.clause) not in seen:
                raise ValueError(
                    f"exceptions.clauses[{position}].clause: {clause_ref(excepted.clause)} is "
                    "not a clause of the decision tables"
                )
        return self

    def table(self, clause: str) -> DecisionTable | None:
        return next((t for t in self.tables if clause_key(t.clause) == clause_key(clause)), None)


class Playbook(_Strict):
    version: Annotated[str, Field(pattern=r"^[0-9A-Za-z.\-]+$")]
    effective_from: date
    filing_window_days: Annotated[int, Field(ge=1, le=3650)]
    warnings: Annotated[list[Annotated[float, Field(gt=0, lt=1)]], Field(max_length=5)]
    stages: StageRules
    board_calendar: str
    panel: PanelRules
    appeal_window_days: Annotated[int, Field(ge=1, le=60)]
    calendars: dict[str, CalendarSpec]
    categories: dict[DisputeCategory, CategoryRules]
    engagement: Engagement | None = None
    """The decision tables; a playbook from before them has none (nothing is recommended)."""

    @model_validator(mode="after")
    def _consistent(self) -> Playbook:
        missing = set(DisputeCategory) - set(self.categories)
        if missing:
            raise ValueError(f"categories: missing {', '.join(sorted(missing))}")
        if self.board_calendar not in self.calendars:
            raise ValueError(f"board_calendar: {self.board_calendar!r} is not in calendars")
        if sorted(self.warnings) != self.warnings:
            raise ValueError("warnings: list the fractions in increasing order")
        for position, table in enumerate(self.engagement.tables if self.engagement else ()):
            for number, rule in enumerate(table.rules):
                for category in table.categories:
                    refused = [
                        r.value
                        for r in rule.remedies
                        if r not in self.categories[category].allowed_remedies
                    ]
                    if refused:
                        raise ValueError(
                            f"engagement.tables[{position}].rules[{number}].remedies: "
                            f"{', '.join(refused)} is not allowed for {category.value}"
                        )
        self._one_wording_per_clause()
        return self

    def _one_wording_per_clause(self) -> None:
        wording = {clause_key(r.clause): r.clause.strip() for r in self.categories.values()}
        for position, table in enumerate(self.engagement.tables if self.engagement else ()):
            said = wording.get(clause_key(table.clause))
            if said is not None and said != table.clause.strip():
                raise ValueError(
                    f"engagement.tables[{position}].clause: {clause_ref(table.clause)} is worded "
                    f"otherwise by a category ({said!r}): one clause, one wording"
                )

    def clauses(self) -> tuple[str, ...]:
        """Every clause the playbook words: the categories' and the decision tables'."""
        tables = self.engagement.tables if self.engagement else ()
        return tuple(
            dict.fromkeys(
                [rules.clause for rules in self.categories.values()]
                + [table.clause for table in tables]
            )
        )

    def terms_for(self, category: DisputeCategory) -> PlaybookTerms:
        rules = self.categories[category]
        return PlaybookTerms(
            version=self.version,
            acceptance_days=self.stages.acceptance.business_days,
            mediation_days=self.stages.mediation.business_days,
            information_days=self.stages.information_request.business_days,
            formal_review_days=self.stages.formal_review.business_days,
            remedy_days=self.stages.remedy.business_days,
            warning_fractions=tuple(self.warnings),
            allowed_remedies=tuple(rules.allowed_remedies),
            clauses=(rules.clause,),
            board_calendar=self.board_calendar,
            panel_functions=tuple(self.panel.functions),
            appeal_days=self.appeal_window_days,
        )


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not re.fullmatch(r"[A-Za-z_][\w\-]*", part):
            # pydantic's internal union/function tags, not a path a user wrote
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def load_playbook(path: Path) -> Playbook:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise PlaybookError(f"{path}: cannot be read: {exc.strerror}") from None
    if not isinstance(raw, dict):
        raise PlaybookError(f"{path}: (top level): expected a mapping of playbook fields")
    try:
        playbook = Playbook.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_format_location(err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PlaybookError(f"{path}: {problems}") from None
    if path.stem != playbook.version:
        raise PlaybookError(
            f"{path}: version: {playbook.version!r} does not match the file name {path.stem!r}"
        )
    return playbook


class PlaybookLibrary:
    """Every playbook version in a folder; the one in force on a date is the latest effective."""

    def __init__(self, playbooks: list[Playbook]) -> None:
        if not playbooks:
            raise PlaybookError("no playbook found")
        self._by_version = {p.version: p for p in playbooks}
        self._by_date = sorted(playbooks, key=lambda p: p.effective_from)

    @classmethod
    def from_dir(cls, folder: Path) -> PlaybookLibrary:
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise PlaybookError(f"{folder}: no playbook (*.yaml) in this folder")
        return cls([load_playbook(f) for f in files])

    def get(self, version: str) -> Playbook:
        try:
            return self._by_version[version]
        except KeyError:
            raise PlaybookError(f"playbook version {version!r} is not available") from None

    def all(self) -> list[Playbook]:
        """Every version, oldest first."""
        return list(self._by_date)

    def in_force(self, on: date) -> Playbook:
        current = [p for p in self._by_date if p.effective_from <= on]
        if not current:
            raise PlaybookError(f"no playbook is in force on {on.isoformat()}")
        return current[-1]
