"""The partner directory and people: typed records and an idempotent import."""

from __future__ import annotations

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, or_, select

from models.enums import PartnerTier, Role
from models.payloads import Actor
from models.tables import Account, Partner, PartnerContact, Person, Territory


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactRecord(_Record):
    name: str
    email: str


class PartnerRecord(_Record):
    id: str
    name: str
    tier: PartnerTier
    regions: list[str]
    calendar: str
    email_domains: list[str] = Field(default_factory=list)
    contacts: list[ContactRecord] = Field(default_factory=list)
    is_direct_sales: bool = False


class PersonRecord(_Record):
    id: str
    name: str
    email: str
    role: Role
    calendar: str
    organisation: str = "vendor"
    function: str | None = None
    declared_conflicts: list[str] = Field(default_factory=list)
    case_limit: int = 10
    active: bool = True


class TerritoryRecord(_Record):
    code: str
    name: str
    partner_id: str | None = None
    exclusive: bool = False
    owner_person_id: str | None = None


class AccountRecord(_Record):
    code: str
    name: str
    partner_id: str | None = None
    owner_person_id: str | None = None


class Directory(_Record):
    partners: list[PartnerRecord] = Field(default_factory=list)
    people: list[PersonRecord] = Field(default_factory=list)
    territories: list[TerritoryRecord] = Field(default_factory=list)
    accounts: list[AccountRecord] = Field(default_factory=list)


def import_directory(session: Session, directory: Directory) -> None:
    """Insert or update every record; running it twice changes nothing."""
    for p in directory.partners:
        session.merge(
            Partner(
                id=p.id,
                name=p.name,
                tier=p.tier,
                regions=p.regions,
                calendar=p.calendar,
                email_domains=p.email_domains,
                is_direct_sales=p.is_direct_sales,
            )
        )
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
        session.merge(
            Person(
                **person.model_dump(),
                last_assigned_at=current.last_assigned_at if current else None,
            )
        )
    session.flush()
    for t in directory.territories:
        session.merge(Territory(**t.model_dump()))
    for a in directory.accounts:
        session.merge(Account(**a.model_dump()))


class DirectoryError(ValueError):
    """A directory file that cannot be imported; `problems` name the path and the reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_directory(text: str) -> Directory:
    """A directory from YAML (or JSON, which is YAML), checked for shape."""
    from accord.playbook import _format_location

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
            [f"{_format_location(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        ) from None


def check_references(session: Session, directory: Directory) -> None:
    """Every partner and person a record points at exists, in the file or already."""
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
        if person.organisation != "vendor" and person.organisation not in partners:
            problems.append(f"people[{i}].organisation: no partner {person.organisation!r}")
    for p in directory.partners:
        for c in p.contacts:
            owner = session.exec(
                select(PartnerContact.partner_id).where(PartnerContact.email == c.email.lower())
            ).first()
            if owner is not None and owner != p.id:
                problems.append(f"partners[{p.id}].contacts: {c.email} is a contact of {owner}")
    if problems:
        raise DirectoryError(problems)


class UnknownActor(LookupError):
    pass


def resolve_actor(session: Session, login: str) -> Actor:
    """A person id or email, or a partner contact's email, as the Actor the workflow checks."""
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
