"""Probe: an admin whose account was deactivated, still signed in (a session cookie) and still
named on the command line, tries the admin decisions issue 14 added: send refused mail again,
dismiss it, process an intake message again. Nothing changes; each is refused."""

from __future__ import annotations

from models.enums import OutboxState
from tests.cli.test_cli import accord
from tests.conftest import Stack
from tests.notifications.test_notifications import outbox_rows, wait_for_row
from tests.web_harness import api, make_app, signed_in, token_for

FORMER = "ada.admin@vendor.example"
STILL = "alex.admin@vendor.example"


async def test_a_deactivated_admin_resends_dismisses_and_retries_nothing(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    stack.mail.gone.add("nora@northwind.example")
    number = (await stack.file()).number
    refused = await wait_for_row(stack, number, lambda m: m.state is OutboxState.FAILED)
    app = make_app(stack)
    former = await signed_in(app, FORMER)
    try:
        async with api(app, token_for(stack, STILL)) as admin:
            off = await admin.patch("/api/directory/people/ada.admin", json={"active": False})
            assert off.status_code == 200, off.text
        for decision in ("resend", "dismiss"):
            answer = await former.post(f"/disputes/{number}/mail/{refused.id}/{decision}", {})
            assert answer.status_code in (401, 403) or (
                answer.status_code == 303 and "/login" in answer.headers["location"]
            ), f"{decision}: {answer.status_code} {answer.headers.get('location')}"
        answer = await former.post("/admin/intake/1/retry", {})
        assert answer.status_code in (401, 403) or (
            answer.status_code == 303 and "/login" in answer.headers["location"]
        ), answer.status_code
    finally:
        await former.close()
    for args in (
        ("outbox", "resend", str(refused.id)),
        ("outbox", "dismiss", str(refused.id)),
        ("inbound-retry", "1"),
    ):
        code, out = await accord(stack, *args, "--as", FORMER)
        assert code == 2 and "Traceback" not in out, f"{args}: {code} {out}"
    (row,) = [r for r in outbox_rows(stack, number) if r.id == refused.id]
    assert row.state is OutboxState.FAILED and row.attempts == refused.attempts
