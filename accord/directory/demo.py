"""Demo data: a dozen partners over tiers and regions, and every role of SPEC section 1, with a
board large enough for an appeal's fresh panel."""

from __future__ import annotations

from accord.directory.records import (
    AccountRecord,
    ContactRecord,
    Directory,
    PartnerRecord,
    PersonRecord,
    TerritoryRecord,
)
from models.enums import PartnerTier, Role

T = PartnerTier


def _partner(
    pid: str, name: str, tier: PartnerTier, region: str, calendar: str, domain: str, contact: str
) -> PartnerRecord:
    return PartnerRecord(
        id=pid,
        name=name,
        tier=tier,
        regions=[region],
        calendar=calendar,
        email_domains=[domain],
        contacts=[ContactRecord(name=contact, email=f"{contact.split()[0].lower()}@{domain}")],
    )


def _board(pid: str, name: str, email: str, function: str) -> PersonRecord:
    return PersonRecord(
        id=pid, name=name, email=email, role=Role.BOARD, calendar="US-NY", function=function
    )


BOARD = [
    _board("board.sales", "Beatrice Sales", "b.sales@vendor.example", "sales"),
    _board("board.marketing", "Marco Marketing", "m.marketing@vendor.example", "marketing"),
    _board("board.product", "Priya Product", "p.product@vendor.example", "product"),
    _board("board.finance", "Felix Finance", "f.finance@vendor.example", "finance"),
    _board("board.partners", "Paula Partners", "p.partners@vendor.example", "partner_management"),
    _board("board.chair", "Charles Chair", "c.chair@vendor.example", "chair"),
]
"""The governance board: one member per panel function (playbooks/*.yaml `panel`) and a chair."""

SECOND_BOARD = [
    _board("board.sales2", "Sergio Sales", "sergio.sales@vendor.example", "sales"),
    _board("board.marketing2", "Mira Marketing", "mira.marketing@vendor.example", "marketing"),
    _board("board.product2", "Pavel Product", "pavel.product@vendor.example", "product"),
    _board("board.finance2", "Fiona Finance", "fiona.finance@vendor.example", "finance"),
    _board(
        "board.partners2", "Pedro Partners", "pedro.partners@vendor.example", "partner_management"
    ),
    _board("board.chair2", "Chloe Chair", "chloe.chair@vendor.example", "chair"),
]
"""A second member per function and a second chair: an appeal goes to a fresh panel, which may
include nobody from the first (accord.rules.eligibility), so without them no appeal could be
heard."""


DEMO = Directory(
    partners=[
        _partner(
            "northwind",
            "Northwind Traders",
            T.PLATINUM,
            "NA-East",
            "US-NY",
            "northwind.example",
            "Nora Quinn",
        ),
        _partner(
            "contoso",
            "Contoso Systems",
            T.GOLD,
            "NA-East",
            "US-NY",
            "contoso.example",
            "Carl Mendez",
        ),
        _partner(
            "fabrikam",
            "Fabrikam Integration",
            T.SILVER,
            "NA-West",
            "US-CA",
            "fabrikam.example",
            "Fay Olsen",
        ),
        _partner(
            "tailspin",
            "Tailspin Networks",
            T.REGISTERED,
            "NA-West",
            "US-CA",
            "tailspin.example",
            "Tom Reyes",
        ),
        _partner("adatum", "Adatum GmbH", T.GOLD, "DACH", "DE-BY", "adatum.example", "Anja Keller"),
        _partner(
            "litware", "Litware AG", T.SILVER, "DACH", "DE-BY", "litware.example", "Lukas Brandt"
        ),
        _partner(
            "woodgrove",
            "Woodgrove Partners Ltd",
            T.PLATINUM,
            "UK-IE",
            "GB",
            "woodgrove.example",
            "Wendy Hale",
        ),
        _partner(
            "proseware",
            "Proseware SAS",
            T.REGISTERED,
            "FR-BENELUX",
            "FR",
            "proseware.example",
            "Paul Girard",
        ),
        _partner(
            "wingtip",
            "Wingtip Distribution FZ",
            T.GOLD,
            "MEA",
            "AE",
            "wingtip.example",
            "Omar Haddad",
        ),
        _partner(
            "relecloud", "Relecloud KK", T.SILVER, "APJ", "JP", "relecloud.example", "Rei Tanaka"
        ),
        _partner(
            "margie",
            "Margie's IT Services",
            T.REGISTERED,
            "ANZ",
            "AU-NSW",
            "margie.example",
            "Maggie Ryan",
        ),
        _partner(
            "lamna", "Lamna Tecnologia", T.SILVER, "LATAM", "BR-SP", "lamna.example", "Luiz Costa"
        ),
        PartnerRecord(
            id="direct-sales",
            name="Vendor Direct Sales",
            tier=T.PLATINUM,
            regions=["GLOBAL"],
            calendar="US-NY",
            email_domains=["vendor.example"],
            is_direct_sales=True,
            contacts=[ContactRecord(name="Dana Price", email="dana.price@vendor.example")],
        ),
    ],
    people=[
        PersonRecord(
            id="maria.lopez",
            name="Maria Lopez",
            email="maria.lopez@vendor.example",
            role=Role.MEDIATOR,
            calendar="US-NY",
            case_limit=8,
        ),
        PersonRecord(
            id="kenji.sato",
            name="Kenji Sato",
            email="kenji.sato@vendor.example",
            role=Role.MEDIATOR,
            calendar="JP",
            case_limit=6,
        ),
        PersonRecord(
            id="greta.hoffmann",
            name="Greta Hoffmann",
            email="greta.hoffmann@vendor.example",
            role=Role.MEDIATOR,
            calendar="DE-BY",
            case_limit=8,
            declared_conflicts=["adatum"],
        ),
        PersonRecord(
            id="sam.okafor",
            name="Sam Okafor",
            email="sam.okafor@vendor.example",
            role=Role.MEDIATOR,
            calendar="GB",
            case_limit=5,
        ),
        *BOARD,
        *SECOND_BOARD,
        PersonRecord(
            id="carol.compliance",
            name="Carol Compliance",
            email="carol.compliance@vendor.example",
            role=Role.COMPLIANCE,
            calendar="US-NY",
        ),
        PersonRecord(
            id="alex.admin",
            name="Alex Admin",
            email="alex.admin@vendor.example",
            role=Role.ADMIN,
            calendar="US-NY",
        ),
        PersonRecord(
            id="ada.admin",
            name="Ada Admin",
            email="ada.admin@vendor.example",
            role=Role.ADMIN,
            calendar="DE-BY",
        ),
        PersonRecord(
            id="eve.sponsor",
            name="Eve Sponsor",
            email="eve.sponsor@vendor.example",
            role=Role.ADMIN,
            calendar="US-NY",
            function="executive_sponsor",
        ),
        PersonRecord(
            id="tony.territory",
            name="Tony Territory",
            email="tony.territory@vendor.example",
            role=Role.ADMIN,
            calendar="US-NY",
        ),
    ],
    territories=[
        TerritoryRecord(
            code="US-NY-METRO",
            name="New York Metro",
            partner_id="northwind",
            exclusive=True,
            owner_person_id="tony.territory",
        ),
        TerritoryRecord(code="US-CA-NORTH", name="Northern California", partner_id="fabrikam"),
        TerritoryRecord(
            code="DE-BY",
            name="Bavaria",
            partner_id="adatum",
            exclusive=True,
            owner_person_id="greta.hoffmann",
        ),
        TerritoryRecord(
            code="GB-LON", name="Greater London", partner_id="woodgrove", exclusive=True
        ),
    ],
    accounts=[
        AccountRecord(
            code="ACME-001",
            name="Acme Corporation",
            partner_id="northwind",
            owner_person_id="maria.lopez",
        ),
        AccountRecord(code="GLOBEX-7", name="Globex Industries", partner_id="contoso"),
        AccountRecord(code="INITECH-3", name="Initech Europe", partner_id="adatum"),
        AccountRecord(code="UMBRELLA-9", name="Umbrella Health", partner_id="woodgrove"),
    ],
)
