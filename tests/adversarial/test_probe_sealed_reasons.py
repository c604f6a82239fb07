"""Probe: a panelist's sealed vote, cast through the API (its reasons stored as a text and
carried by reference), is read by nobody before the ballot opens, on any page, API response or
timeline; once opened, by the board, admins and compliance only, never by the parties."""

from __future__ import annotations

from tests.conftest import Stack
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_formal_review import in_review, open_ballot, vote

SEALED = "Sealed reasons of board sales: Contoso's paper trail is thin and backdated"
SPLIT = {
    "kind": "commission_split",
    "deal_ref": "DR-2026-0042",
    "shares": {"northwind": 80, "contoso": 20},
}
PARTIES = ("nora@northwind.example", "carl@contoso.example")
OTHER_PANELIST = "m.marketing@vendor.example"


async def readers(stack: Stack, number: str, logins: tuple[str, ...]) -> list[str]:
    """Who of `logins` finds the sealed reasons anywhere they may look."""
    app = make_app(stack)
    found = []
    for login in logins:
        browser = await signed_in(app, login)
        async with api(app, token_for(stack, login)) as client:
            bodies = [
                (await client.get(f"/api/disputes/{number}")).text,
                (await client.get(f"/api/disputes/{number}/timeline")).text,
                (await browser.get(f"/disputes/{number}")).text,
                (await browser.get(f"/disputes/{number}/timeline")).text,
            ]
        await browser.close()
        if any(SEALED in body for body in bodies):
            found.append(login)
    return found


async def test_sealed_reasons_stored_by_reference_stay_sealed(stack_on_both: Stack) -> None:
    stack = stack_on_both
    number = await in_review(stack)
    app = make_app(stack)
    async with api(app, token_for(stack, "b.sales@vendor.example")) as client:
        cast = await client.post(
            f"/api/disputes/{number}/cast-vote",
            json={"outcome": "uphold", "remedies": [SPLIT], "reasons": SEALED},
        )
        assert cast.status_code == 200, cast.text
    everyone = (*PARTIES, OTHER_PANELIST, "b.sales@vendor.example", "ada.admin@vendor.example")
    assert await readers(stack, number, everyone) == []
    for who in ("board.marketing", "board.product"):
        await vote(stack, number, who)
    await open_ballot(stack, number)
    assert await readers(stack, number, (*PARTIES, OTHER_PANELIST)) == [OTHER_PANELIST]
