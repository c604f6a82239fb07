"""One typed row per kind of channel object, and how each source names its fields.

A CSV file names its columns as the rows' fields do (`external_id`, `partner_id`, ...). A
Salesforce export is a REST query result (`{"records": [...]}`, each record with
`attributes.type`), with the standard objects' own field names and, for what Salesforce has no
standard field for, the custom fields docs/channel.md lists (`Territory__c`, the
`Deal_Registration__c` object). It names partners by their CRM account id (PartnerAccountId),
which the directory maps to a partner (`crm_id`).

Every field's problem is said with the name the file used, so the person fixing the file finds
it: "registrations.csv, row 7, field amount: ...", "export.json, record 12, field Amount: ...".
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from accord.channel.names import domain
from models.enums import ChannelKind, RegistrationStatus
from models.text import StoredLine

_CODE = re.compile(r"[A-Za-z0-9._:/-]+")


def _code(value: str) -> str:
    # ASCII only, as the directory's codes: 'c\u043entoso' (a Cyrillic o) is not 'contoso'.
    bad = next((c for c in value if not _CODE.fullmatch(c)), None)
    if bad is not None:
        raise ValueError(f"only letters, digits and . _ : / - (not {bad!r}, U+{ord(bad):04X})")
    return value


def _given(values: Any) -> Any:
    """An empty CSV cell, spaces, or a JSON null is a value not given: left out, so a required
    field says it is missing and an optional one is None."""
    if not isinstance(values, dict):
        return values
    return {
        name: value
        for name, value in values.items()
        if value is not None and not (isinstance(value, str) and not value.strip())
    }


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_AND_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _day_is_midnight_utc(value: Any) -> Any:
    """A date alone ("2026-11-02", as Salesforce writes a Date field) is that day at 00:00
    UTC; a date and time must say its offset ("Z", "+01:00", Salesforce's "+0000"). A number is
    no date: pydantic would read 1700000000 as seconds since 1970."""
    if isinstance(value, str) and _DAY.match(value.strip()):
        return f"{value.strip()}T00:00:00+00:00"
    written = isinstance(value, str) and _DATE_AND_TIME.match(value.strip())
    if not (written or isinstance(value, datetime)):
        raise ValueError(
            "is not a date and time with its offset (2026-11-02T10:00:00Z) nor a date (2026-11-02)"
        )
    return value


FIRST_YEAR, LAST_YEAR = 1900, 2200


def _in_years(value: datetime) -> datetime:
    """Within the years a CRM's dates fall in: 9999-12-31T23:59-23:59 has no UTC instant a
    column can hold (Python overflows converting it)."""
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not FIRST_YEAR <= instant.year <= LAST_YEAR:
        raise ValueError(f"is not a date between {FIRST_YEAR} and {LAST_YEAR}")
    return instant


def _in_years_day(value: date) -> date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"is not a date between {FIRST_YEAR} and {LAST_YEAR}")
    return value


_NUMBER = re.compile(r"^\s*-?[0-9]+(?:\.[0-9]+)?\s*$")


def _decimal(example: str) -> Callable[[Any], Any]:
    """A number as a CRM writes it: ASCII digits with a decimal point, or a JSON number; no
    exponent, no digit group marks, no other script's digits. Refused with `example` of what
    the field holds ("a number like 125000.00", "a percentage like 12.5")."""

    def read(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"is not {example}")
        if isinstance(value, float):
            # JSON numbers: read as written (125000.1, not 125000.100000000005...).
            return Decimal(repr(value))
        if isinstance(value, str) and not _NUMBER.match(value):
            raise ValueError(f"is not {example} ({value.strip()[:40]!r})")
        return value

    return read


def _has_a_word(value: str) -> str:
    if not any(unicodedata.category(c)[0] in "LN" for c in value):
        raise ValueError("has no letter or digit")
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"true", "yes", "y", "1"}:
            return True
        if word in {"false", "no", "n", "0", ""}:
            return False
    return value


def _codes(value: Any) -> Any:
    """A list cell: codes separated by spaces, commas or semicolons ("DE AT; CH")."""
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,;]+", value.strip()) if part]
    return value


Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_code),
]
"""An external id, or the code of a partner, account or territory."""
Line = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    StoredLine,
    AfterValidator(_has_a_word),
]
Address = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500),
    StoredLine,
]
Status = Annotated[str, StringConstraints(min_length=1, max_length=64), StoredLine]
Country = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2, as Salesforce's CountryCode fields hold it."""
Currency = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[
    Decimal,
    BeforeValidator(_decimal("a number like 125000.00")),
    # 15 digits: what SQLite, which keeps NUMERIC as a double, gives back exactly.
    Field(ge=0, max_digits=15, decimal_places=2, allow_inf_nan=False),
]
Percent = Annotated[
    Decimal,
    BeforeValidator(_decimal("a percentage like 12.5")),
    Field(ge=0, le=100, max_digits=5, decimal_places=2, allow_inf_nan=False),
]
"""A discount off the list price, in percent ("12.5")."""
Instant = Annotated[AwareDatetime, BeforeValidator(_day_is_midnight_utc), AfterValidator(_in_years)]
Day = Annotated[date, AfterValidator(_in_years_day)]
Web = Annotated[
    str,
    BeforeValidator(domain),
    StringConstraints(min_length=3, max_length=253, pattern=r"^[^\s@/]+\.[^\s@/]+$"),
    StoredLine,
]
"""A web or email address, kept as its domain (accord.channel.names.domain)."""
Email = Annotated[
    str,
    BeforeValidator(_lower),
    StringConstraints(min_length=3, max_length=320, pattern=r"^[^\s@]+@[^\s@]+$"),
    StoredLine,
]


class Row(BaseModel):
    """What every kind has: the source's id for the object, and when the source last changed it
    (an import skips a row not changed since the stored one)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    external_id: Code
    modified_at: Instant

    _given = model_validator(mode="before")(_given)


class RegistrationRow(Row):
    partner_id: Code
    customer_name: Line
    customer_domain: Web | None = None
    customer_address: Address | None = None
    country: Country | None = None
    territory_code: Code | None = None
    account_code: Code | None = None
    product: Line | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    status: Annotated[RegistrationStatus, BeforeValidator(_lower)]
    registered_at: Instant
    expires_at: Instant | None = None
    discount: Percent | None = None
    customer_chose_at: Instant | None = None
    """When the customer confirmed this partner in writing, if it did."""

    @field_validator("expires_at")
    @classmethod
    def _after_registration(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        registered = info.data.get("registered_at")
        if value is not None and registered is not None and value < registered:
            raise ValueError(f"is before the registration itself ({registered.date().isoformat()})")
        return value


class OpportunityRow(Row):
    partner_id: Code
    name: Line
    customer_name: Line
    customer_domain: Web | None = None
    account_code: Code | None = None
    territory_code: Code | None = None
    registration_id: Code | None = None
    stage: Status
    amount: Amount | None = None
    currency: Currency | None = None
    expected_close: Day | None = None
    discount: Percent | None = None


class LeadRow(Row):
    partner_id: Code | None = None
    customer_name: Line
    customer_domain: Web | None = None
    email: Email | None = None
    country: Country | None = None
    territory_code: Code | None = None
    status: Status
    routed_at: Instant | None = None


class AccountRow(Row):
    name: Line
    partner_id: Code | None = None
    domain: Web | None = None
    address: Address | None = None
    country: Country | None = None
    territory_code: Code | None = None


class TerritoryRow(Row):
    name: Line
    partner_id: Code | None = None
    exclusive: Annotated[bool, BeforeValidator(_flag)] = False
    countries: Annotated[list[Country], BeforeValidator(_codes)] = Field(
        default_factory=list, max_length=300
    )


ROWS: dict[ChannelKind, type[Row]] = {
    ChannelKind.REGISTRATION: RegistrationRow,
    ChannelKind.OPPORTUNITY: OpportunityRow,
    ChannelKind.LEAD: LeadRow,
    ChannelKind.ACCOUNT: AccountRow,
    ChannelKind.TERRITORY: TerritoryRow,
}

PLURALS = {
    ChannelKind.REGISTRATION: "registrations",
    ChannelKind.OPPORTUNITY: "opportunities",
    ChannelKind.LEAD: "leads",
    ChannelKind.ACCOUNT: "accounts",
    ChannelKind.TERRITORY: "territories",
}


def required(kind: ChannelKind) -> list[str]:
    return [name for name, f in ROWS[kind].model_fields.items() if f.is_required()]


# --- Salesforce ----------------------------------------------------------------------------------

Path = tuple[str, ...]

SALESFORCE_TYPES: dict[str, ChannelKind] = {
    "Deal_Registration__c": ChannelKind.REGISTRATION,
    "Opportunity": ChannelKind.OPPORTUNITY,
    "Lead": ChannelKind.LEAD,
    "Account": ChannelKind.ACCOUNT,
}
"""The record types a Salesforce export may hold (territories come from CSV)."""

SALESFORCE_FIELDS: dict[ChannelKind, dict[str, tuple[Path, ...]]] = {
    # Each of our fields, from the first of its Salesforce fields the record has.
    ChannelKind.REGISTRATION: {
        "external_id": (("Id",),),
        "modified_at": (("LastModifiedDate",),),
        "partner_id": (("Partner_Account__c",),),
        "customer_name": (("Customer_Name__c",),),
        "customer_domain": (("Customer_Website__c",), ("Customer_Email__c",)),
        "customer_address": (("Customer_Address__c",),),
        "country": (("Customer_Country__c",),),
        "territory_code": (("Territory__c",),),
        "account_code": (("Account__c",),),
        "product": (("Product__c",),),
        "amount": (("Amount__c",),),
        "currency": (("CurrencyIsoCode",),),
        "status": (("Status__c",),),
        "registered_at": (("Registered_Date__c",), ("CreatedDate",)),
        "expires_at": (("Expiration_Date__c",),),
        "discount": (("Discount__c",),),
        "customer_chose_at": (("Customer_Confirmation_Date__c",),),
    },
    ChannelKind.OPPORTUNITY: {
        "external_id": (("Id",),),
        "modified_at": (("LastModifiedDate",),),
        "partner_id": (("PartnerAccountId",),),
        "name": (("Name",),),
        "customer_name": (("Account", "Name"),),
        "customer_domain": (("Account", "Website"),),
        "account_code": (("AccountId",),),
        "territory_code": (("Territory__c",),),
        "registration_id": (("Deal_Registration__c",),),
        "stage": (("StageName",),),
        "amount": (("Amount",),),
        "currency": (("CurrencyIsoCode",),),
        "expected_close": (("CloseDate",),),
        "discount": (("Discount__c",),),
    },
    ChannelKind.LEAD: {
        "external_id": (("Id",),),
        "modified_at": (("LastModifiedDate",),),
        "partner_id": (("PartnerAccountId",),),
        "customer_name": (("Company",),),
        "customer_domain": (("Website",), ("Email",)),
        "email": (("Email",),),
        "country": (("CountryCode",),),
        "territory_code": (("Territory__c",),),
        "status": (("Status",),),
        "routed_at": (("Routed_Date__c",),),
    },
    ChannelKind.ACCOUNT: {
        "external_id": (("Id",),),
        "modified_at": (("LastModifiedDate",),),
        "name": (("Name",),),
        "partner_id": (("Named_Partner__c",),),
        "domain": (("Website",),),
        "address": (("BillingStreet",), ("BillingCity",)),
        "country": (("BillingCountryCode",),),
        "territory_code": (("Territory__c",),),
    },
}
"""The fields read of each record type; any other field of a record is ignored (an export
holds many). Partners are named by CRM account id in every Salesforce field above."""


def salesforce_values(
    kind: ChannelKind, record: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The record's values under our field names, and for each our name, the Salesforce name
    it was read from (for problems). A value that is not a plain JSON value (an object where a
    text belongs) is passed on as is: the row's validation names it."""
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    for ours, paths in SALESFORCE_FIELDS[kind].items():
        names[ours] = ".".join(paths[0])
        for path in paths:
            value: Any = record
            for step in path:
                value = value.get(step) if isinstance(value, dict) else None
            if value is not None and value != "":
                values[ours] = value
                names[ours] = ".".join(path)
                break
    if kind is ChannelKind.ACCOUNT:
        # One address line out of Salesforce's parts.
        parts = [record.get(f"Billing{p}") for p in ("Street", "City", "PostalCode", "State")]
        if all(isinstance(p, str | None) for p in parts):
            # A street of several lines ("1 Main St\nSuite 5") is one line here.
            lines = [line.strip() for p in parts if p for line in p.splitlines()]
            values["address"] = ", ".join(line for line in lines if line) or None
    return values, names


class _TwiceNamed(ValueError):
    pass


def _one_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it names a key twice (json.loads would keep the last one
    silently: which of two ids is the record's?)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _TwiceNamed(f"names {key[:64]!r} twice in one object")
        found[key] = value
    return found


def load_json(data: bytes) -> Any:
    """`data` as JSON, or ValueError saying why not, in words for the person who sent it."""
    try:
        return json.loads(data.decode("utf-8-sig"), object_pairs_hook=_one_each)
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 (byte at offset {exc.start}): export it again") from None
    except RecursionError:
        raise ValueError("nests deeper than any export does") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except _TwiceNamed as exc:
        raise ValueError(f"is not an export Accord reads: an object {exc}") from None
    except ValueError:
        # Python's own limit on a number's digits (4,300): no CRM writes such a number.
        raise ValueError(
            "is not an export Accord reads: it holds a number of over 4,300 digits"
        ) from None


def salesforce_kind(data: bytes) -> ChannelKind | None:
    """The kind of a Salesforce export, by its first record's type; None if it has none Accord
    reads. ValueError (why, in words) when it is no JSON Accord reads."""
    document = load_json(data)
    records = document.get("records") if isinstance(document, dict) else document
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        return None
    attributes = records[0].get("attributes")
    type_ = attributes.get("type") if isinstance(attributes, dict) else None
    return SALESFORCE_TYPES.get(type_) if isinstance(type_, str) else None
