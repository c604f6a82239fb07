"""Set-ups the adversarial tests share (the race harness itself is tests/races.py and the
`gates` and `race` fixtures of tests/conftest.py)."""

from __future__ import annotations

from tests.conftest import Stack
from tests.workflows.test_formal_review import PANEL, in_review, open_ballot, vote


async def ballot_open(stack: Stack) -> str:
    """A dispute in review whose chair opened the ballot once three of five had voted."""
    number = await in_review(stack)
    for who in PANEL[:3]:
        await vote(stack, number, who)
    await open_ballot(stack, number)
    return number
