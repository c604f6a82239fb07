"""The channel tests' database: three partners (one the vendor's direct sales, two with CRM
ids) and the DACH territory, exclusive to contoso."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accord.platform.db import SessionFactory, make_engine
from models.enums import PartnerTier
from models.tables import Partner, Territory


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    factory = SessionFactory(make_engine(database_url))
    with factory.begin() as session:
        for pid, name, crm, direct in (
            ("northwind", "Northwind Traders", "0015g00000NWxyzAAA", False),
            ("contoso", "Contoso Partners", "0015g00000COxyzAAA", False),
            ("direct", "Vendor direct sales", None, True),
        ):
            session.add(
                Partner(
                    id=pid,
                    name=name,
                    tier=PartnerTier.GOLD,
                    regions=["emea"],
                    calendar="us",
                    crm_id=crm,
                    is_direct_sales=direct,
                )
            )
        session.add(
            Territory(
                code="DACH",
                name="Germany, Austria, Switzerland",
                partner_id="contoso",
                exclusive=True,
                countries=["DE", "AT", "CH"],
            )
        )
    yield factory
    factory.engine.dispose()
