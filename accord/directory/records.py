"""The partner directory and people: typed records and an idempotent import."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from sqlmodel import Session, col, delete, func, or_, select

from accord.platform.db import SessionFactory, lock_people_writers
from accord.platform.wording import Names
from accord.playbooks.library import Playbook, _format_location
from accord.rules.eligibility import VENDOR
from models.enums import ObjectKind, PartnerTier, Role
from models.payloads import Actor
from models.tables import Account, Partner, PartnerContact, Person, Territory, WebSession
from models.text import StoredLine, plain_error, problem

_CODE = re.compile(r"[A-Za-z0-9._-]+")


def _code(value: str) -> str:
    # ASCII only, so 'c\u043entoso' (a Cyrillic o) cannot pass for 'contoso'.
    bad = next((c for c in value if not _CODE.fullmatch(c)), None)
    if bad is not None:
        raise ValueError(f"only letters, digits, '.', '-' and '_' (not {bad!r}, U+{ord(bad):04X})")
    return value


def _country(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValueError(f"{value[:40]!r} is not a two-letter country code (ISO 3166, e.g. DE)")
    return value


# As long as the columns they are stored in, and holding only what a column can (models.text):
# too long or unstorable is named here, never a database error.
Text = Annotated[str, StoredLine]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_code)]
"""A partner or person id, a territory or account code, or a reference to one."""
Calendar = Annotated[str, StringConstraints(min_length=1, max_length=64), StoredLine]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), StoredLine]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=320),
    StoredLine,
]
"""Stored lower-case, as sign-in compares them."""
Function = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64),
    StoredLine,
]
"""Stored trimmed and lower-case, as screening and the panel draw compare them."""
Conflict = Annotated[str, StringConstraints(max_length=200), StoredLine]
"""A partner id, account:<code> or territory:<code>; unknown_conflicts says which exist."""
CaseLimit = Annotated[int, Field(ge=0, le=500)]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactRecord(_Record):
    name: Name
    email: Email


class PartnerRecord(_Record):
    id: Id
    name: Name
    tier: PartnerTier
    regions: list[Text]
    calendar: Calendar
    email_domains: list[Text] = Field(default_factory=list)
    contacts: list[ContactRecord] = Field(default_factory=list)
    is_direct_sales: bool = False
    crm_id: Id | None = None
    """The partner's account id in the vendor's CRM, which a Salesforce export names it by."""


class PersonRecord(_Record):
    id: Id
    name: Name
    email: Email
    role: Role
    calendar: Calendar
    organisation: Id = VENDOR
    function: Function | None = None
    declared_conflicts: list[Conflict] = Field(default_factory=list)
    case_limit: CaseLimit = 10
    active: bool = True


class TerritoryRecord(_Record):
    code: Id
    name: Name
    partner_id: Id | None = None
    exclusive: bool = False
    owner_person_id: Id | None = None
    countries: list[Annotated[str, AfterValidator(_country)]] = Field(
        default_factory=list, max_length=300
    )
    """ISO 3166 alpha-2 codes it covers (a channel import may set them instead)."""


class AccountRecord(_Record):
    code: Id
    name: Name
    partner_id: Id | None = None
    owner_person_id: Id | None = None


class Directory(_Record):
    partners: list[PartnerRecord] = Field(default_factory=list)
    people: list[PersonRecord] = Field(default_factory=list)
    territories: list[TerritoryRecord] = Field(default_factory=list)
    accounts: list[AccountRecord] = Field(default_factory=list)


def _given(record: _Record, *optional: str, leave: set[str] | None = None) -> dict[str, Any]:
    """The record's fields, but the `optional` ones only when the file gave them: the channel
    import (accord.channel) writes those too, and a directory file without them keeps them."""
    values = record.model_dump(exclude=leave)
    for name in optional:
        if name not in record.model_fields_set:
            values.pop(name, None)
    return values


def _upsert(session: Session, model: Any, key: str, values: dict[str, Any]) -> None:
    """Insert the row, or set these fields of the stored one and leave its others as they are
    (what the channel import wrote: an account's domain and address, a territory's countries,
    a partner's CRM id; a partner an admin deactivated stays so)."""
    current = session.get(model, key)
    if current is None:
        session.add(model(**values))
        return
    for name, value in values.items():
        setattr(current, name, value)


def import_directory(session: Session, directory: Directory) -> None:
    """Insert or update every record; running it twice changes nothing."""
    lock_people_writers(session)  # before any row: seat reservations lock people in id order
    for p in directory.partners:
        _upsert(session, Partner, p.id, _given(p, "crm_id", leave={"contacts"}))
    session.flush()
    for p in directory.partners:
        for c in p.contacts:
            existing = session.exec(
                select(PartnerContact).where(PartnerContact.email == c.email.lower())
            ).first()
            if existing is None:
                session.add(PartnerContact(partner_id=p.id, name=c.name, email=c.email.lower()))
    for person in directory.people:
        current = session.get(Person, person.id)
        if current is not None and (
            (current.active and not person.active) or current.role != person.role
        ):
            end_sessions(session, current.email)
        session.merge(
            Person(
                **person.model_dump(),
                last_assigned_at=current.last_assigned_at if current else None,
            )
        )
    session.flush()
    for t in directory.territories:
        _upsert(session, Territory, t.code, _given(t, "countries"))
    for a in directory.accounts:
        _upsert(session, Account, a.code, a.model_dump())


def end_sessions(session: Session, email: str) -> None:
    """End the signed-in sessions of someone disabled or given another role, at once: a copy of
    their cookie, unused meanwhile, must not come back if they are enabled again (or given
    their old role back)."""
    session.exec(delete(WebSession).where(col(WebSession.login) == email.lower()))


class DirectoryError(ValueError):
    """A directory file that cannot be imported; `problems` name the path and the reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_directory(text: str) -> Directory:
    """A directory from YAML (or JSON, which is YAML), checked for shape."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DirectoryError([f"not valid YAML: {exc}".splitlines()[0]]) from None
    if not isinstance(data, dict):
        raise DirectoryError(["the file must hold partners, people, territories and accounts"])
    try:
        return Directory.model_validate(data)
    except ValidationError as exc:
        raise DirectoryError(
            [f"{_format_location(tuple(e['loc']))}: {plain_error(e)}" for e in exc.errors()]
        ) from None


def check_references(session: Session, directory: Directory, playbook: Playbook) -> None:
    """Every partner, person, account, territory and calendar a record points at exists, in
    the file, already in the directory, or (calendars) in the playbook."""
    partners = {p.id for p in directory.partners} | set(session.exec(select(Partner.id)).all())
    people = {p.id for p in directory.people} | set(session.exec(select(Person.id)).all())
    problems: list[str] = []
    owned: list[tuple[str, TerritoryRecord | AccountRecord]] = [
        *((f"territories[{i}]", t) for i, t in enumerate(directory.territories)),
        *((f"accounts[{i}]", a) for i, a in enumerate(directory.accounts)),
    ]
    for where, record in owned:
        if record.partner_id and record.partner_id not in partners:
            problems.append(f"{where}.partner_id: no partner {record.partner_id!r}")
        if record.owner_person_id and record.owner_person_id not in people:
            problems.append(f"{where}.owner_person_id: no person {record.owner_person_id!r}")
    for i, person in enumerate(directory.people):
        if person.organisation != VENDOR and person.organisation not in partners:
            problems.append(f"people[{i}].organisation: no partner {person.organisation!r}")
    calendars = ", ".join(playbook.calendars)
    for where, calendar in [
        *((f"partners[{p.id}]", p.calendar) for p in directory.partners),
        *((f"people[{p.id}]", p.calendar) for p in directory.people),
    ]:
        if calendar not in playbook.calendars:
            problems.append(
                f"{where}.calendar: {calendar!r} is not a calendar of playbook"
                f" {playbook.version} ({calendars})"
            )
    for person in directory.people:
        problems.extend(
            f"people[{person.id}].declared_conflicts: {why}"
            for why in unknown_conflicts(session, person.declared_conflicts, directory)
        )
    for p in directory.partners:
        for c in p.contacts:
            owner = session.exec(
                select(PartnerContact.partner_id).where(PartnerContact.email == c.email.lower())
            ).first()
            if owner is not None and owner != p.id:
                problems.append(f"partners[{p.id}].contacts: {c.email} is a contact of {owner}")
    problems.extend(_clashes(session, directory))
    if problems:
        raise DirectoryError(problems)


def _clashes(session: Session, directory: Directory) -> list[str]:
    """An email held by two people, a contact under two partners, a code differing only in
    case from another: within the file, or between the file and the directory."""
    problems: list[str] = []
    emails: dict[str, str] = {}
    for p in directory.people:
        first = emails.setdefault(p.email, p.id)
        if first != p.id:
            problems.append(f"people[{p.id}].email: {p.email} is also the email of {first}")
    stored = session.exec(
        select(Person.id, func.lower(Person.email)).where(
            func.lower(Person.email).in_(list(emails))
        )
    ).all()
    problems.extend(
        f"people[{p.id}].email: {email} is the email of {holder}"
        for holder, email in stored
        for p in directory.people
        if p.email == email and p.id != holder
    )
    contacts: dict[str, str] = {}
    for partner in directory.partners:
        for c in partner.contacts:
            first = contacts.setdefault(c.email, partner.id)
            if first != partner.id:
                problems.append(
                    f"partners[{partner.id}].contacts: {c.email} is also a contact of {first}"
                )
    crm_ids: dict[str, str] = {}
    for partner in directory.partners:
        if partner.crm_id is not None:
            first = crm_ids.setdefault(partner.crm_id, partner.id)
            if first != partner.id:
                problems.append(
                    f"partners[{partner.id}].crm_id: {partner.crm_id} is also the CRM id of {first}"
                )
    problems.extend(
        f"partners[{p.id}].crm_id: {crm} is the CRM id of {holder}"
        for holder, crm in session.exec(
            select(Partner.id, Partner.crm_id).where(col(Partner.crm_id).in_(list(crm_ids)))
        ).all()
        for p in directory.partners
        if p.crm_id == crm and p.id != holder
    )
    territories = [t.code for t in directory.territories]
    accounts = [a.code for a in directory.accounts]
    lowered = [c.lower() for c in territories + accounts]
    problems += _differing_in_case(
        "territories",
        "territory",
        territories,
        session.exec(select(Territory.code).where(func.lower(Territory.code).in_(lowered))).all(),
    )
    problems += _differing_in_case(
        "accounts",
        "account",
        accounts,
        session.exec(select(Account.code).where(func.lower(Account.code).in_(lowered))).all(),
    )
    return list(dict.fromkeys(problems))


def _differing_in_case(
    where: str, kind: str, codes: Iterable[str], stored: Iterable[str]
) -> list[str]:
    # Screening compares codes exactly: 'de-by' beside 'DE-BY' would hide the exclusive holder.
    first = {code.lower(): code for code in stored}
    problems = []
    for code in codes:
        seen = first.setdefault(code.lower(), code)
        if seen != code:
            problems.append(f"{where}[{code}].code: differs only in case from {kind} {seen}")
    return problems


def unknown_conflicts(
    session: Session, conflicts: Iterable[str], directory: Directory | None = None
) -> list[str]:
    """Why each declared conflict that names no partner, account or territory (in `directory`
    or already stored) is refused, in order. A conflict is a partner id, `account:<code>` or
    `territory:<code>`: what screening compares with a dispute's parties and contested objects.
    """
    wanted = list(dict.fromkeys(conflicts))
    named = {
        kind: {v.partition(":")[2] for v in wanted if v.startswith(f"{kind}:")}
        for kind in (ObjectKind.ACCOUNT.value, ObjectKind.TERRITORY.value)
    }
    partners = set(session.exec(select(Partner.id).where(col(Partner.id).in_(wanted))).all())
    known = {
        ObjectKind.ACCOUNT.value: set(
            session.exec(select(Account.code).where(col(Account.code).in_(named["account"]))).all()
        ),
        ObjectKind.TERRITORY.value: set(
            session.exec(
                select(Territory.code).where(col(Territory.code).in_(named["territory"]))
            ).all()
        ),
    }
    if directory is not None:
        partners |= {p.id for p in directory.partners}
        known[ObjectKind.ACCOUNT.value] |= {a.code for a in directory.accounts}
        known[ObjectKind.TERRITORY.value] |= {t.code for t in directory.territories}
    problems: list[str] = []
    for value in wanted:
        kind, colon, ref = value.partition(":")
        if value in partners:
            continue
        if not colon:
            problems.append(f"no partner {value!r}")
        elif kind not in known:
            problems.append(f"{value!r} is not a partner id, account:<code> or territory:<code>")
        elif ref not in known[kind]:
            problems.append(f"no {kind} {ref!r}")
    return problems


class UnknownActor(LookupError):
    pass


def resolve_actor(session: Session, login: str) -> Actor:
    """A person id or email, or a partner contact's email, as the Actor the workflow checks."""
    why = problem(login, multiline=False)
    if why is not None:
        # No one's: every id and email was checked on the way in (models.text), and
        # PostgreSQL would refuse the query itself.
        raise UnknownActor(f"no person or contact is called that: it holds {why}")
    person = session.exec(
        select(Person).where(or_(Person.id == login, Person.email == login.lower()))
    ).first()
    if person is not None:
        if not person.active:
            raise UnknownActor(f"{login} is not active")
        return Actor(id=person.id, role=person.role, name=person.name)
    contact = session.exec(
        select(PartnerContact).where(PartnerContact.email == login.lower())
    ).first()
    if contact is not None and contact.active:
        return Actor(
            id=contact.email, role=Role.PARTNER, name=contact.name, partner_id=contact.partner_id
        )
    raise UnknownActor(f"{login} is neither a person nor an active partner contact")


def names(session: Session) -> Names:
    """Every partner's, person's and territory's display name, for accord.platform.wording (small:
    one query each)."""
    # Columns, not rows: every email enqueued reads these, and building the ORM objects was a
    # third of what enqueueing one cost.
    partners = dict(session.exec(select(Partner.id, Partner.name)).all())
    people = dict(session.exec(select(Person.id, Person.name)).all())
    # A partner's contact acts under their email (filing, accepting an offer, appealing): they
    # are named as people know them, with the partner they speak for.
    contacts = select(PartnerContact.partner_id, PartnerContact.email, PartnerContact.name)
    for partner_id, email, name in session.exec(contacts).all():
        company = partners.get(partner_id, partner_id)
        people.setdefault(email, f"{name} ({company})")
    territories = dict(session.exec(select(Territory.code, Territory.name)).all())
    return Names(partners=partners, people=people, territories=territories)


class DirectoryNames:
    """`names` for the pages' filters, read from the directory again at most every `ttl`
    seconds: one page calls it for every partner and person it names."""

    def __init__(self, sessions: SessionFactory, ttl: float = 30.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._names: Names | None = None
        self._at = 0.0

    def __call__(self) -> Names:
        now = time.monotonic()
        if self._names is None or now - self._at > self._ttl:
            with self._sessions.read() as session:
                self._names = names(session)
            self._at = now
        return self._names
