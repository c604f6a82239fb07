"""Probes of issue 16's work queue (web.queue) from outside, as a hostile verifier: the API's
task list and the inbox page over the same hostile query strings must answer alike; one value
given twice where one is meant is refused naming the parameter, on both."""

from __future__ import annotations

import asyncio

from tests.cli.test_cli import accord
from tests.conftest import Stack
from tests.web.test_web_queue import offered_to_a_mediator
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_dispute_paths import contoso_asked

REPEATED = (
    ("sort=due&sort=amount", "sort"),
    ("order=asc&order=desc", "order"),
    ("sort=amount&order=desc&order=asc", "order"),
)


async def test_a_parameter_given_twice_is_refused_by_the_api_as_by_the_page(
    stack: Stack,
) -> None:
    """The page refused `sort=due&sort=amount` (400 "give one way to sort"); the API took one of
    the two silently and answered 200 sorted by whichever FastAPI kept."""
    app = make_app(stack)
    _number, mediator = await offered_to_a_mediator(stack)
    browser = await signed_in(app, mediator)
    try:
        for query, _ in REPEATED:
            page = await browser.get(f"/inbox?{query}")
            assert page.status_code == 400, (query, page.status_code)
    finally:
        await browser.close()
    async with api(app, token_for(stack, mediator)) as client:
        for query, name in REPEATED:
            answer = await client.get(f"/api/tasks?{query}")
            assert answer.status_code == 400, (query, answer.status_code, answer.text[:200])
            assert [e["field"] for e in answer.json()["errors"]] == [name], answer.text
        # One value each, as before: still answered.
        assert (await client.get("/api/tasks?sort=amount&order=asc")).status_code == 200


def test_a_refused_mail_task_names_the_email_in_words_not_its_template_id() -> None:
    """The outbox titles the admins' task 'mail refused: <template> to <recipient>'; the
    template is a file name ('final_ruling', 'offer_rejected'), which the admin's queue and
    `accord tasks` printed as it is."""
    from accord.platform import wording
    from models.enums import Role, TaskKind, TaskState
    from models.tables import Task
    from web.queue import QueueItem, Sla

    task = Task(
        key="DSP-2026-000001:mail-3",
        dispute_number="DSP-2026-000001",
        kind=TaskKind.RESOLVE_MAIL,
        title="mail refused: final_ruling to nora@northwind.example",
        assignee_id=None,
        assignee_role=Role.ADMIN,
        state=TaskState.OPEN,
    )
    item = QueueItem(
        task=task,
        due_at=None,
        sla=Sla.NONE,
        category=None,
        stage=None,
        amount=None,
        currency=None,
        claimant=None,
        respondents=(),
    )
    assert (
        item.label
        == "Resolve undelivered mail: mail refused: final ruling to nora@northwind.example"
    )
    assert wording.task(task) == (
        "resolve undelivered mail: mail refused: final ruling to nora@northwind.example"
    )


def test_a_queue_sorted_other_than_by_default_offers_to_clear_it() -> None:
    """The form's "Clear" link showed for a filter or another sort key, not for the default
    key reversed (`sort=due&order=desc`: latest deadline first), which then had no way back
    but editing the form."""
    from jinja2 import StrictUndefined

    from accord.disputes.access import Viewer
    from models.enums import Role
    from models.payloads import Actor
    from web.pages.disputes import queue_context
    from web.queue import read_queue_query
    from web.templating import make_templates

    env = make_templates().env
    env.undefined = StrictUndefined
    viewer = Viewer(Actor(id="sam.okafor", role=Role.MEDIATOR, name="Sam Okafor"), "s@v.example")
    base = {"viewer": viewer, "csrf": "t", "flash": None, "home": "/", "oidc": False}
    base |= {"oidc_label": ""}

    def clear_link(*params: tuple[str, str]) -> bool:
        context = queue_context([], "Task inbox", "/inbox", read_queue_query(params))
        html = env.get_template("inbox.html").render(**base, **context)
        return '<a href="/inbox">Clear</a>' in html

    assert not clear_link()
    assert clear_link(("sort", "amount")) and clear_link(("sla", "overdue"))
    assert clear_link(("order", "desc"))
    assert clear_link(("sort", "amount"), ("order", "asc"))


async def test_a_paused_mediation_clock_counts_down_to_nothing_in_the_queue(stack: Stack) -> None:
    """While a party owes information the mediation clock is paused (SPEC: the deadline moves
    by the time paused). The mediator's task kept the deadline it opened with: the queue counted
    down to it, "on time", and would call the task overdue while nothing runs."""
    app = make_app(stack)
    number, mediator = await contoso_asked(stack, "Send the form.")
    await stack.wait_for(number, lambda s: s.clock_paused)
    async with api(app, token_for(stack, f"{mediator}@vendor.example")) as client:
        for _ in range(100):  # the read model follows the workflow a moment later
            (task,) = (await client.get("/api/tasks")).json()
            if task["stage"] == "awaiting_party":
                break
            await asyncio.sleep(0.1)
        assert (task["kind"], task["stage"]) == ("mediate", "awaiting_party")
        assert (task["due_at"], task["sla"]) == (None, "none"), task
        assert task["awaiting"] == "answer to information request from Contoso Systems"
        paused = (await client.get("/api/tasks", params={"sla": "none"})).json()
        assert [t["kind"] for t in paused] == ["mediate"]

        # `accord tasks` says the same of it: no countdown to a deadline that stands still.
        code, out = await accord(stack, "tasks", "--for", mediator)
        assert code == 0, out
        (line,) = [line for line in out.splitlines() if "mediate" in line]
        assert line.rstrip().endswith("no deadline"), line
