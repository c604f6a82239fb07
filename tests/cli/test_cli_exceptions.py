"""`accord exceptions` as a real process against the stack: a request refused naming the
option, then asked, objected to, voted sealed and decided, each refusal one line and exit 2."""

from __future__ import annotations

from datetime import date, timedelta

from tests.cli.test_cli import accord
from tests.conftest import Stack
from tests.workflows.test_exception import REASON, WHY, event, panel_of, row

UNTIL = (date.today() + timedelta(days=60)).isoformat()


def asking(*extra: str) -> tuple[str, ...]:
    return (
        "exceptions",
        "request",
        "--as",
        "carl@contoso.example",
        "--partner",
        "contoso",
        "--territory",
        "US-NY-METRO",
        "--until",
        UNTIL,
        "--reason",
        REASON,
        *extra,
    )


async def test_an_exception_is_asked_for_objected_to_voted_and_decided_from_the_command_line(
    stack: Stack,
) -> None:
    code, out = await accord(stack, *asking("--clause", "RoE 9.9"))
    assert code == 2 and "--clause:" in out and "may not be excepted" in out, out
    code, out = await accord(stack, *asking("--clause", "RoE 4.2", "--account", "ACME-001"))
    assert code == 2 and "name one account or one territory" in out, out
    code, out = await accord(
        stack, *asking("--clause", "RoE 4.2")[:-2], "--reason", "too short", "--clause", "RoE 4.2"
    )
    assert code == 2 and "--reason:" in out, out
    code, out = await accord(
        stack, *[a if a != "contoso" else "northwind" for a in asking("--clause", "RoE 4.2")]
    )
    assert code == 2 and "not allowed" in out, out

    code, out = await accord(stack, *asking("--clause", "RoE 4.2"))
    assert code == 0, out
    exception_id = int(out.split()[0].removeprefix("EXC-"))
    await event(stack, exception_id, "requested")
    code, out = await accord(stack, "exceptions", "list", "--partner", "northwind")
    assert code == 0 and f"EXC-{exception_id}" in out, out
    code, out = await accord(stack, "exceptions", "show", str(exception_id))
    assert code == 0 and "requested" in out, out
    code, out = await accord(stack, "exceptions", "show", "99999999999")
    assert code == 2 and "no exception" in out, out

    nora = ("--as", "nora@northwind.example")
    objecting = ("exceptions", "object", str(exception_id), *nora)
    code, out = await accord(stack, *objecting, "--reason", "We serve Acme in New York.")
    assert code == 0, out
    code, out = await accord(stack, *objecting, "--reason", "And again we object.")
    assert code == 2 and "refused: northwind has objected already" in out, out
    code, out = await accord(
        stack,
        "exceptions",
        "object",
        str(exception_id),
        "--as",
        "fay@fabrikam.example",
        "--reason",
        "We object as well.",
    )
    assert code == 2 and f"no exception EXC-{exception_id}" in out, out

    await stack.env.sleep(timedelta(days=8))
    await event(stack, exception_id, "panel_drawn")
    members, chair = panel_of(stack, exception_id)
    for member in members:
        code, out = await accord(
            stack,
            "exceptions",
            "vote",
            str(exception_id),
            "--as",
            member,
            "--choice",
            "approve",
            "--reasons",
            WHY,
        )
        assert code == 0, out
    await event(stack, exception_id, "ballot_opened")
    code, out = await accord(
        stack,
        "exceptions",
        "decide",
        str(exception_id),
        "--as",
        chair,
        "--choice",
        "maybe",
        "--reason",
        WHY,
    )
    assert code == 2 and "--choice" in out, out
    code, out = await accord(
        stack,
        "exceptions",
        "decide",
        str(exception_id),
        "--as",
        chair,
        "--choice",
        "approve",
        "--reason",
        WHY,
    )
    assert code == 0 and "approved" in out.lower(), out
    assert row(stack, exception_id).state.value == "approved"
    code, out = await accord(
        stack,
        "exceptions",
        "withdraw",
        str(exception_id),
        "--as",
        "carl@contoso.example",
        "--reason",
        "We no longer need it.",
    )
    assert code == 2 and "cannot be withdrawn" in out, out
