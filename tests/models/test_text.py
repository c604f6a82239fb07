"""models.text: what a field may hold."""

from __future__ import annotations


def test_the_search_refuses_exactly_the_characters_the_rule_refuses() -> None:
    """problem() finds an unfit character with one regular expression (fast); _unfit says
    why. Both must agree on every code point, in one-line and multi-line fields."""
    from models import text

    for multiline, search in ((False, text._UNFIT_IN_LINE), (True, text._UNFIT_IN_PROSE)):
        for point in range(0x110000):
            char = chr(point)
            assert (text._unfit(char, multiline) is None) == (search.search(char) is None), (
                hex(point),
                multiline,
            )
