"""Probes of the admin entry points issue 14 added, with ids no row can have: the intake's
held and failed messages (page, original, CLI). An id is a number the user typed; one no
column could hold is simply unknown (404, or the CLI's plain "no such message"), never a
database error on either backend."""

from __future__ import annotations

from tests.cli.test_cli import accord
from tests.conftest import Stack
from tests.web_harness import make_app, signed_in

ADMIN = "alex.admin@vendor.example"
HOSTILE_IDS = (str(2**64), str(2**63), "-1", "0")


async def test_an_intake_id_no_column_could_hold_is_unknown_on_every_admin_path(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    browser = await signed_in(make_app(stack), ADMIN)
    try:
        for ident in HOSTILE_IDS:
            for decision in ("retry", "discard"):
                answer = await browser.post(f"/admin/intake/{ident}/{decision}", {})
                assert answer.status_code == 404, f"{ident} {decision}: {answer.status_code}"
            original = await browser.get(f"/admin/intake/{ident}/original")
            assert original.status_code == 404, f"{ident} original: {original.status_code}"
        # Not a number at all: the path says which part is wrong.
        answer = await browser.post("/admin/intake/abc/retry", {})
        assert answer.status_code == 422
    finally:
        await browser.close()


async def test_the_intake_retry_command_calls_an_impossible_id_unknown(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    # "-1" is read as an option by the command line itself: a usage error, also code 2.
    for ident in (str(2**64), str(2**63), "0", "999999"):
        code, out = await accord(stack, "inbound-retry", ident, "--as", ADMIN)
        assert code == 2, f"{ident}: {code} {out}"
        assert f"no message {ident}" in out and "Traceback" not in out, out
