"""Channel-data imports (issue 20, item 1) on SQLite and PostgreSQL: CSV and Salesforce exports,
all or nothing with each problem named by row and field, incremental by external id and
modification time, and imports of one kind taking turns."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import func, select

from accord.channel import imports
from accord.channel.imports import ImportRefused, import_file
from accord.platform.db import SessionFactory
from models.enums import ChannelKind, ImportFormat, ImportState, PartnerTier, RegistrationStatus
from models.tables import (
    Account,
    ChannelImport,
    DealRegistration,
    Lead,
    Opportunity,
    Partner,
    Territory,
)

HEADER = "external_id,partner_id,customer_name,customer_domain,country,territory_code,amount,currency,status,registered_at,modified_at"


def _import(
    sessions: SessionFactory,
    kind: ChannelKind,
    fmt: ImportFormat,
    data: str | bytes,
    name: str = "file",
) -> ChannelImport:
    raw = data.encode() if isinstance(data, str) else data
    return import_file(sessions, kind=kind, fmt=fmt, file_name=name, data=raw, started_by="ada")


def _csv(*lines: str) -> str:
    return "\n".join((HEADER, *lines)) + "\n"


ROW_1 = "DR-1,northwind,ACME Corp.,https://www.acme.com,DE,DACH,125000.00,EUR,approved,2026-11-02T10:00:00Z,2026-11-02T10:00:00Z"
ROW_2 = "DR-2,contoso,Acme Corporation,acme.com,DE,,99.5,EUR,submitted,2026-11-03,2026-11-03T09:00:00+01:00"


def _count(sessions: SessionFactory, model: Any) -> int:
    with sessions.read() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_a_csv_of_registrations_is_imported_with_its_values_and_customer_key(
    sessions: SessionFactory,
) -> None:
    done = _import(
        sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, _csv(ROW_1, ROW_2), "regs.csv"
    )
    assert (done.state, done.created, done.updated, done.unchanged) == (ImportState.DONE, 2, 0, 0)
    with sessions.read() as session:
        first, second = session.exec(
            select(DealRegistration).order_by(DealRegistration.external_id)
        ).all()
    assert (first.partner_id, first.customer_name, first.customer_domain, first.amount) == (
        "northwind",
        "ACME Corp.",
        "acme.com",
        Decimal("125000.00"),
    )
    assert first.customer_key == second.customer_key == "acme"
    assert first.status is RegistrationStatus.APPROVED and first.territory_code == "DACH"
    assert second.registered_at == datetime(2026, 11, 3, tzinfo=UTC)
    assert second.modified_at == datetime(2026, 11, 3, 8, tzinfo=UTC)
    assert second.import_id == done.id


def test_a_second_import_writes_only_what_changed_since_the_first(sessions: SessionFactory) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, _csv(ROW_1, ROW_2))
    same = _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, _csv(ROW_1, ROW_2))
    assert (same.created, same.updated, same.unchanged) == (0, 0, 2)
    changed = ROW_2.replace("submitted", "approved").replace(
        "2026-11-03T09:00:00+01:00", "2026-11-05T09:00:00Z"
    )
    older = ROW_1.replace("125000.00", "1.00").replace(
        "2026-11-02T10:00:00Z,2026-11-02T10:00:00Z", "2026-11-02T10:00:00Z,2026-11-01T10:00:00Z"
    )
    new = "DR-3,direct,Globex,globex.com,,,,,submitted,2026-11-06,2026-11-06"
    third = _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, _csv(older, changed, new))
    assert (third.created, third.updated, third.unchanged) == (1, 1, 1)
    with sessions.read() as session:
        rows = {r.external_id: r for r in session.exec(select(DealRegistration))}
    assert rows["DR-1"].amount == Decimal("125000.00")  # an older modification is not taken
    assert rows["DR-2"].status is RegistrationStatus.APPROVED
    assert rows["DR-3"].partner_id == "direct"


BAD = [
    (
        "DR-9,northwind,Acme,acme.com,Germany,,1,EUR,approved,2026-11-02,2026-11-02",
        "country",
        "two-letter country code",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,,12.345,EUR,approved,2026-11-02,2026-11-02",
        "amount",
        "2 decimal places",
    ),
    ("DR-9,northwind,Acme,acme.com,DE,,1e999,EUR,approved,2026-11-02,2026-11-02", "amount", ""),
    (
        "DR-9,northwind,Acme,acme.com,DE,,-5,EUR,approved,2026-11-02,2026-11-02",
        "amount",
        "greater than or equal to 0",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,,1,euro,approved,2026-11-02,2026-11-02",
        "currency",
        "three-letter currency code",
    ),
    ("DR-9,northwind,Acme,acme.com,DE,,1,EUR,maybe,2026-11-02,2026-11-02", "status", "'approved'"),
    (
        "DR-9,northwind,Acme,acme.com,DE,,1,EUR,approved,2026-11-02 10:00,2026-11-02",
        "registered_at",
        "offset",
    ),
    (
        "DR-9,northwind,,acme.com,DE,,1,EUR,approved,2026-11-02,2026-11-02",
        "customer_name",
        "required",
    ),
    (
        "DR-9,northwind,Ac\x00me,acme.com,DE,,1,EUR,approved,2026-11-02,2026-11-02",
        "customer_name",
        "NUL",
    ),
    (
        "DR-9,northwind," + "A" * 201 + ",acme.com,DE,,1,EUR,approved,2026-11-02,2026-11-02",
        "customer_name",
        "200",
    ),
    (
        "DR 9,northwind,Acme,acme.com,DE,,1,EUR,approved,2026-11-02,2026-11-02",
        "external_id",
        "only letters",
    ),
    (
        "DR-9,nobody,Acme,acme.com,DE,,1,EUR,approved,2026-11-02,2026-11-02",
        "partner_id",
        "no partner",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,NOWHERE,1,EUR,approved,2026-11-02,2026-11-02",
        "territory_code",
        "no territory",
    ),
    (
        "DR-9,northwind,Acme,not a domain,DE,,1,EUR,approved,2026-11-02,2026-11-02",
        "customer_domain",
        "web or email address",
    ),
    ("DR-9,northwind,Acme,acme.com,DE,,1,EUR,approved,2026-11-02", None, "12 cells"[:0] + "cells"),
    # From an adversarial probe: each was a crash (500, traceback) or a silent misreading.
    (
        "DR-9,northwind,Acme,acme.com,DE,,1,EUR,approved,2026-11-02,9999-12-31T23:59:59-23:59",
        "modified_at",
        "between 1900 and 2200",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,,1,EUR,approved,0001-01-01T00:00:00+14:00,2026-11-02",
        "registered_at",
        "between 1900 and 2200",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,,1,EUR,approved,2026-11-02,1700000000",
        "modified_at",
        "not a date and time",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,,1e5,EUR,approved,2026-11-02,2026-11-02",
        "amount",
        "125000.00",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,,٣٤٥,EUR,approved,2026-11-02,2026-11-02",
        "amount",
        "125000.00",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,,1_000,EUR,approved,2026-11-02,2026-11-02",
        "amount",
        "125000.00",
    ),
    (
        "DR-9,northwind,Acme,acme.com,DE,,99999999999999.99,EUR,approved,2026-11-02,2026-11-02",
        "amount",
        "15 digits",
    ),
    (
        "DR-9,northwind,​,acme.com,DE,,1,EUR,approved,2026-11-02,2026-11-02",
        "customer_name",
        "no letter or digit",
    ),
    (
        "DR-9,northwind,-,acme.com,DE,,1,EUR,approved,2026-11-02,2026-11-02",
        "customer_name",
        "no letter or digit",
    ),
]


@pytest.mark.parametrize(
    ("line", "field", "said"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)]
)
def test_one_bad_row_refuses_the_whole_file_naming_row_and_field(
    sessions: SessionFactory, line: str, field: str | None, said: str
) -> None:
    with pytest.raises(ImportRefused) as refused:
        _import(
            sessions,
            ChannelKind.REGISTRATION,
            ImportFormat.CSV,
            _csv(ROW_1, ROW_2, line),
            "regs.csv",
        )
    (problem,) = refused.value.problems
    assert (problem.row, problem.field) == (4, field), problem
    assert said in problem.problem, problem
    text = problem.said("regs.csv", ImportFormat.CSV)
    assert text.startswith(f"regs.csv, row 4{', field ' + field if field else ''}: "), text
    assert _count(sessions, DealRegistration) == 0
    with sessions.read() as session:
        record = session.exec(select(ChannelImport)).one()
    assert record.state is ImportState.REFUSED and record.problem_count == 1
    assert record.problems == [problem.as_dict()]


def test_every_problem_of_a_file_is_named_not_only_the_first(sessions: SessionFactory) -> None:
    lines = [
        ROW_1.replace("DR-1", f"DR-{n}").replace("DE,DACH", "Germany,DACH") for n in range(500)
    ]
    lines.append(ROW_1.replace("DR-1", "DR-7"))
    with pytest.raises(ImportRefused) as refused:
        _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, _csv(*lines))
    problems = refused.value.problems
    assert len(problems) == 501  # 500 bad countries, and DR-7 twice
    assert problems[-1].problem == "'DR-7' is also in row 9"
    with sessions.read() as session:
        record = session.exec(select(ChannelImport)).one()
    assert record.problem_count == 501 and len(record.problems) == imports.SHOWN_PROBLEMS


@pytest.mark.parametrize(
    ("data", "row", "field", "said"),
    [
        (b"", None, None, "is empty"),
        (HEADER.encode() + b"\n", None, None, "holds no registrations"),
        (b"external_id,partner,customer_name\n", 1, "partner", "not a column"),
        ((HEADER + ",status\n").encode(), 1, "status", "appears twice"),
        (b"external_id,modified_at\n", 1, "partner_id", "required column"),
        (
            (HEADER + "\n" + ROW_1.replace("ACME", "Acm\xe9")).encode("latin-1"),
            2,
            None,
            "not UTF-8",
        ),
        ((HEADER + '\n"unclosed,' + ROW_1).encode(), 2, None, "not readable CSV"),
    ],
    ids=[
        "empty",
        "header only",
        "unknown column",
        "twice",
        "missing column",
        "latin-1",
        "broken quote",
    ],
)
def test_a_malformed_file_is_refused_saying_what_is_wrong(
    sessions: SessionFactory, data: bytes, row: int | None, field: str | None, said: str
) -> None:
    with pytest.raises(ImportRefused) as refused:
        _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, data)
    first = refused.value.problems[0]
    assert (first.row, first.field) == (row, field) and said in first.problem, first
    assert _count(sessions, DealRegistration) == 0


def test_a_csv_with_a_byte_order_mark_and_crlf_lines_is_read(sessions: SessionFactory) -> None:
    data = "\ufeff" + _csv(ROW_1, ROW_2).replace("\n", "\r\n") + "\r\n,,,,,,,,,,\r\n"
    done = _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, data)
    assert done.created == 2


def _salesforce(type_: str, *records: dict[str, Any]) -> str:
    return json.dumps(
        {
            "totalSize": len(records),
            "done": True,
            "records": [
                {
                    "attributes": {
                        "type": type_,
                        "url": f"/services/data/v60.0/sobjects/{type_}/x",
                    },
                    **r,
                }
                for r in records
            ],
        }
    )


def test_a_salesforce_export_of_accounts_opportunities_and_leads_is_imported(
    sessions: SessionFactory,
) -> None:
    accounts = _salesforce(
        "Account",
        {
            "Id": "0015g00000ACMEAAA1",
            "Name": "ACME Corp.",
            "Website": "www.acme.com",
            "BillingStreet": "1 Main St",
            "BillingCity": "Berlin",
            "BillingCountryCode": "DE",
            "Territory__c": "DACH",
            "Named_Partner__c": "0015g00000COxyzAAA",
            "LastModifiedDate": "2026-11-02T10:00:00.000+0000",
        },
    )
    assert _import(sessions, ChannelKind.ACCOUNT, ImportFormat.SALESFORCE, accounts).created == 1
    opportunities = _salesforce(
        "Opportunity",
        {
            "Id": "0065g00000OPPAAA1",
            "Name": "ACME renewal",
            "AccountId": "0015g00000ACMEAAA1",
            "Account": {
                "attributes": {"type": "Account"},
                "Name": "ACME Corp.",
                "Website": "https://acme.com",
            },
            "PartnerAccountId": "0015g00000NWxyzAAA",
            "StageName": "Prospecting",
            "Amount": 125000.1,
            "CurrencyIsoCode": "EUR",
            "CloseDate": "2027-01-31",
            "LastModifiedDate": "2026-11-02T10:00:00.000+0000",
            "SomethingElse__c": {"ignored": True},
        },
    )
    assert (
        _import(sessions, ChannelKind.OPPORTUNITY, ImportFormat.SALESFORCE, opportunities).created
        == 1
    )
    leads = _salesforce(
        "Lead",
        {
            "Id": "00Q5g00000LEADAA1",
            "Company": "Acme GmbH",
            "Email": "Jo@Acme.com",
            "CountryCode": "DE",
            "Status": "Open - Not Contacted",
            "PartnerAccountId": None,
            "LastModifiedDate": "2026-11-02T10:00:00.000+0000",
        },
    )
    assert _import(sessions, ChannelKind.LEAD, ImportFormat.SALESFORCE, leads).created == 1
    with sessions.read() as session:
        account = session.get(Account, "0015g00000ACMEAAA1")
        opportunity = session.exec(select(Opportunity)).one()
        lead = session.exec(select(Lead)).one()
    assert account is not None and (account.partner_id, account.domain, account.address) == (
        "contoso",
        "acme.com",
        "1 Main St, Berlin",
    )
    assert (opportunity.partner_id, opportunity.customer_name, opportunity.amount) == (
        "northwind",
        "ACME Corp.",
        Decimal("125000.10"),
    )
    assert (
        opportunity.expected_close is not None
        and opportunity.expected_close.isoformat() == "2027-01-31"
    )
    assert (lead.partner_id, lead.customer_domain, lead.email, lead.customer_key) == (
        None,
        "acme.com",
        "jo@acme.com",
        "acme",
    )


@pytest.mark.parametrize(
    ("document", "row", "field", "said"),
    [
        ("{not json", None, None, "is not JSON"),
        ('{"records": [{"Amount": ' + "9" * 5000 + "}]}", None, None, "over 4,300 digits"),
        ('{"records": [{"Id": "006A", "Id": "006B"}]}', None, None, "names 'Id' twice"),
        ("[" * 100_000 + "]" * 100_000, None, None, "deeper"),
        ('{"records": 5}', None, None, "not a Salesforce export"),
        ('{"records": [5]}', 1, None, "not a record"),
        (
            json.dumps({"records": [{"attributes": {"type": "Lead"}, "Id": "00Q1"}]}),
            1,
            "attributes.type",
            "holds Opportunity records only",
        ),
        (
            _salesforce(
                "Opportunity",
                {
                    "Id": "006X",
                    "Name": "x",
                    "Account": {"Name": {"deep": 1}},
                    "PartnerAccountId": "0015g00000NWxyzAAA",
                    "StageName": "Won",
                    "LastModifiedDate": "2026-11-02T10:00:00Z",
                },
            ),
            1,
            "Account.Name",
            "valid string",
        ),
        (
            _salesforce(
                "Opportunity",
                {
                    "Id": "006X",
                    "Name": "x",
                    "Account": {"Name": "Acme"},
                    "PartnerAccountId": "0015g00000ZZZZZAAA",
                    "StageName": "Won",
                    "LastModifiedDate": "2026-11-02T10:00:00Z",
                },
            ),
            1,
            "PartnerAccountId",
            "CRM id of no partner",
        ),
        (
            _salesforce(
                "Opportunity",
                {
                    "Id": "006X",
                    "Name": "x",
                    "Account": {"Name": "Acme"},
                    "AccountId": "001NOPE",
                    "PartnerAccountId": "0015g00000NWxyzAAA",
                    "StageName": "Won",
                    "LastModifiedDate": "2026-11-02T10:00:00Z",
                },
            ),
            1,
            "AccountId",
            "no account",
        ),
    ],
    ids=[
        "not json",
        "a number of 5,000 digits",
        "a key twice",
        "deep",
        "records not a list",
        "record not object",
        "wrong type",
        "nested object",
        "unknown partner",
        "unknown account",
    ],
)
def test_a_bad_salesforce_export_is_refused_naming_record_and_field(
    sessions: SessionFactory, document: str, row: int | None, field: str | None, said: str
) -> None:
    with pytest.raises(ImportRefused) as refused:
        _import(sessions, ChannelKind.OPPORTUNITY, ImportFormat.SALESFORCE, document, "export.json")
    first = refused.value.problems[0]
    assert (first.row, first.field) == (row, field) and said in first.problem, first
    assert first.said("export.json", ImportFormat.SALESFORCE).startswith(
        "export.json" + (f", record {row}" if row else "")
    )
    assert _count(sessions, Opportunity) == 0


def test_territories_from_csv_update_the_directory_s_and_keep_its_owner(
    sessions: SessionFactory,
) -> None:
    data = "external_id,name,partner_id,exclusive,countries,modified_at\nDACH,DACH region,northwind,no,DE;AT,2026-11-02\nNORDICS,Nordics,,yes,SE NO DK FI,2026-11-02\n"
    done = _import(sessions, ChannelKind.TERRITORY, ImportFormat.CSV, data)
    assert (done.created, done.updated) == (1, 1)
    with sessions.read() as session:
        dach = session.get(Territory, "DACH")
        nordics = session.get(Territory, "NORDICS")
    assert dach is not None and (dach.partner_id, dach.exclusive, dach.countries) == (
        "northwind",
        False,
        ["DE", "AT"],
    )
    assert (
        nordics is not None and nordics.exclusive and nordics.countries == ["SE", "NO", "DK", "FI"]
    )


def test_two_imports_of_the_same_new_rows_at_once_create_each_row_once(
    sessions: SessionFactory,
) -> None:
    """Both read and check their file, then write in turn: the second finds the first's rows
    (unchanged), instead of failing on the external id's unique key."""
    lines = [ROW_1.replace("DR-1", f"DR-{n}") for n in range(300)]
    data = _csv(*lines).encode()
    outcomes: list[Any] = []
    start = threading.Barrier(2)

    def one() -> None:
        start.wait()
        try:
            outcomes.append(
                import_file(
                    sessions,
                    kind=ChannelKind.REGISTRATION,
                    fmt=ImportFormat.CSV,
                    file_name="f",
                    data=data,
                    started_by="ada",
                )
            )
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(o, ChannelImport) for o in outcomes), outcomes
    assert sorted((o.created, o.unchanged) for o in outcomes) == [(0, 300), (300, 0)]
    assert _count(sessions, DealRegistration) == 300


def test_importing_the_directory_again_keeps_what_the_crm_import_wrote(
    sessions: SessionFactory,
) -> None:
    """The directory file and the CRM share the partner, territory and account rows: a
    directory import (seed-demo, import-directory) rewrote each row whole, wiping the
    territory's countries, the account's domain and address and the partner's CRM id."""
    from accord.directory.records import (
        AccountRecord,
        Directory,
        PartnerRecord,
        TerritoryRecord,
        import_directory,
    )

    accounts = (
        "external_id,name,partner_id,domain,address,country,territory_code,modified_at\n"
        "ACC-1,ACME Corp.,contoso,acme.com,1 Main St,DE,DACH,2026-11-02\n"
    )
    _import(sessions, ChannelKind.ACCOUNT, ImportFormat.CSV, accounts)
    directory = Directory(
        partners=[
            PartnerRecord(
                id="contoso",
                name="Contoso Partners",
                tier=PartnerTier.GOLD,
                regions=["emea"],
                calendar="us",
            )
        ],
        territories=[
            TerritoryRecord(code="DACH", name="DACH", partner_id="contoso", exclusive=True)
        ],
        accounts=[AccountRecord(code="ACC-1", name="ACME Corporation", partner_id="contoso")],
    )
    with sessions.begin() as session:
        import_directory(session, directory)
    with sessions.read() as session:
        partner = session.get(Partner, "contoso")
        territory = session.get(Territory, "DACH")
        account = session.get(Account, "ACC-1")
    assert partner is not None and partner.crm_id == "0015g00000COxyzAAA"
    assert territory is not None and territory.countries == ["DE", "AT", "CH"]
    assert account is not None and account.name == "ACME Corporation"  # the directory's own
    assert (account.domain, account.address, account.country, account.territory_code) == (
        "acme.com",
        "1 Main St",
        "DE",
        "DACH",
    )
    assert account.modified_at == datetime(2026, 11, 2, tzinfo=UTC)


def test_a_header_of_a_million_columns_is_one_problem(sessions: SessionFactory) -> None:
    """Adversarial probe: each unknown column was a problem quoting every valid column, 490 MB
    for a 2 MB header."""
    with pytest.raises(ImportRefused) as refused:
        _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, "x," * 1_000_000 + "y\n")
    (problem,) = refused.value.problems
    assert problem.problem.startswith("has 1,000,001 columns; a file of registrations has at most")


def test_a_salesforce_street_of_several_lines_is_one_address_line(sessions: SessionFactory) -> None:
    accounts = _salesforce(
        "Account",
        {
            "Id": "001A",
            "Name": "Acme",
            "BillingStreet": "1 Main St\nSuite 5",
            "BillingCity": "Berlin",
            "LastModifiedDate": "2026-11-02T10:00:00.000+0000",
        },
    )
    _import(sessions, ChannelKind.ACCOUNT, ImportFormat.SALESFORCE, accounts)
    with sessions.read() as session:
        account = session.get(Account, "001A")
    assert account is not None and account.address == "1 Main St, Suite 5, Berlin"


@pytest.mark.parametrize("value", [5, True, ["acme.com"], {"a": 1}])
def test_a_web_address_that_is_not_text_is_named_not_a_crash(
    sessions: SessionFactory, value: Any
) -> None:
    row = {
        "external_id": "DR-1",
        "partner_id": "northwind",
        "customer_name": "Acme",
        "customer_domain": value,
        "status": "approved",
        "registered_at": "2026-11-02",
        "modified_at": "2026-11-02",
    }
    with pytest.raises(ImportRefused) as refused:
        _import(sessions, ChannelKind.REGISTRATION, ImportFormat.API, json.dumps([row]))
    (problem,) = refused.value.problems
    assert (problem.row, problem.field) == (1, "customer_domain"), problem
