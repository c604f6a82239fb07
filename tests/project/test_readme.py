"""The README's walk-throughs, run as written against a stack with the demo data.

The commands are read from the README's code blocks, so the README cannot drift from what
works: each runs in one bash session (its variables carry on), in a directory whose
`.venv/bin/accord` is this checkout's CLI, and must succeed. A comment line of its own right
after a command is what that command prints (case and `_` aside; `...` between fragments that
come in that order). A reading command (`show`, `disputes`, ...) is run again until it prints
that, as a person would run it again: the workflow records what follows an action a moment
after answering it.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import col, select

from accord.directory.demo import DEMO, SECOND_BOARD
from accord.platform.settings import REPO_ROOT
from models.enums import DisputeStage
from models.tables import Dispute
from tests.conftest import Stack, cli_env, seed

README = REPO_ROOT / "README.md"
READING = re.compile(r"^\$A (show|disputes|tasks|mail|verify)\b")
"""Commands that only read: run again until they print what the README says they print."""


def code_block(heading: str) -> str:
    """The first ```sh block under the README's `## heading`."""
    text = README.read_text()
    start = text.index(f"\n## {heading}\n")
    body = text[start : text.find("\n## ", start + 1)]
    match = re.search(r"```sh\n(.*?)```", body, re.S)
    assert match, f"no sh code block under '## {heading}'"
    return match.group(1)


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def complete(command: str) -> bool:
    """Whether `command` is whole as shell syntax (no open quote, loop, brace or `\\`)."""
    check = subprocess.run(["bash", "-n"], input=command + "\n", capture_output=True, text=True)
    return check.returncode == 0 and not command.endswith("\\")


def steps(block: str) -> list[Step]:
    found: list[Step] = []
    pending: list[str] = []
    for line in block.splitlines():
        if pending:
            pending.append(line)
        elif line.startswith("#"):
            assert found, f"a comment before any command: {line}"
            found[-1].expected.append(line.lstrip("# ").strip())
            continue
        elif line.strip():
            pending = [line]
        else:
            continue
        command = "\n".join(pending)
        if complete(command):
            found.append(Step(command))
            pending = []
    assert not pending, f"an unfinished command at the end of the block: {pending}"
    return found


def normal(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


def shows(output: str, expected: str) -> bool:
    """`output` holds the fragments of `expected` (split at `...` or `…`) in that order."""
    at = 0
    text = normal(output)
    for fragment in re.split(r"\.\.\.|…", expected):
        fragment = normal(fragment)
        if not fragment:
            continue
        found = text.find(fragment, at)
        if found < 0:
            return False
        at = found + len(fragment)
    return True


class Shell:
    """One bash session: commands run in turn, each with its own output and exit status."""

    MARK = "@@readme-step-status="

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, cwd: Path, env: dict[str, str]) -> Shell:
        process = await asyncio.create_subprocess_exec(
            "bash",
            "--noprofile",
            "--norc",
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    async def run(self, command: str) -> tuple[int, str]:
        assert self.process.stdin and self.process.stdout
        # Braces, not a subshell: assignments, `set --` and functions stay for the next step.
        script = f'{{\n{command}\n}} </dev/null 2>&1\necho "{self.MARK}$?"\n'
        self.process.stdin.write(script.encode())
        await self.process.stdin.drain()
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout=180)
            assert raw, f"the shell ended during: {command}\n{''.join(lines)}"
            line = raw.decode()
            if line.startswith(self.MARK):
                return int(line[len(self.MARK) :]), "".join(lines)
            lines.append(line)

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def checkout(tmp_path: Path) -> Path:
    """A directory that looks like a clone after `make run`: `.venv/bin/accord` and python."""
    where = tmp_path / "clone"
    bin_dir = where / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, run in (("accord", f'"{sys.executable}" -m accord.cli'), ("python", sys.executable)):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {run} "$@"\n')
        script.chmod(0o755)
    return where


async def walk(stack: Stack, tmp_path: Path, block: str) -> list[tuple[Step, str]]:
    """Every step of `block`, in one shell against the stack: (step, what it printed)."""
    env = cli_env(stack, PYTHONPATH=str(REPO_ROOT))
    shell = await Shell.start(checkout(tmp_path), env)
    done: list[tuple[Step, str]] = []
    try:
        for step in steps(block):
            if step.command.startswith(".venv/bin/temporal "):
                continue  # the test server under the stack has no list filters to answer it
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while True:
                code, out = await shell.run(step.command)
                assert code == 0, f"failed ({code}): {step.command}\n{out}"
                assert "still being applied" not in out, f"{step.command}\n{out}"
                assert "Traceback" not in out, f"{step.command}\n{out}"
                missing = [e for e in step.expected if not shows(out, e)]
                if not missing:
                    break
                if not READING.match(step.command) or loop.time() > deadline:
                    raise AssertionError(f"{step.command}\nprinted:\n{out}\nnot: {missing}")
                await asyncio.sleep(0.2)
            done.append((step, out))
    finally:
        await shell.close()
    return done


def output_of(done: list[tuple[Step, str]], start: str, nth: int = 0) -> str:
    return [out for step, out in done if step.command.startswith(start)][nth]


def panel_line(show: str) -> str:
    (line,) = [line for line in show.splitlines() if line.lstrip().startswith("panel ")]
    return line


def test_the_walk_throughs_parse_into_commands_with_their_outputs() -> None:
    review = steps(code_block("Review and appeal, by hand"))
    assert any(s.command.startswith("who() {") and s.command.endswith("}") for s in review)
    assert [s.expected for s in review if s.command.startswith("$A appeal")] == [
        ["appeal received; a fresh panel will review the dispute"]
    ]
    by_hand = steps(code_block("Driving a dispute by hand"))
    assert by_hand[1].command.startswith("$A file") and by_hand[1].expected
    assert shows("DSP-2026-000001  closed  (x)", "DSP-2026-000001 ... closed")
    assert not shows("closed DSP-2026-000001", "DSP-2026-000001 ... closed")


async def numbers(stack: Stack) -> list[str]:
    with stack.sessions.read() as session:
        return list(session.exec(select(Dispute.number).order_by(col(Dispute.number))).all())


@pytest.mark.timeout(600)  # some forty `accord` processes, each a Python start-up: slow when loaded
async def test_the_walk_throughs_work_as_written_on_the_demo_data(
    stack: Stack, tmp_path: Path
) -> None:
    """ "Driving a dispute by hand", then "Review and appeal, by hand" after it (its mediator
    is then another one: the names are read, not assumed)."""
    seed(stack.sessions, DEMO)  # the whole demo directory, as `make run` loads it
    by_hand = code_block("Driving a dispute by hand")
    # Its numbers are those of the first dispute of the year.
    by_hand = by_hand.replace("DSP-2026-", f"DSP-{date.today().year}-")
    done = await walk(stack, tmp_path / "by-hand", by_hand)
    (settled,) = await numbers(stack)
    assert settled.endswith("-000001")
    assert (await stack.handle(settled).result()).stage is DisputeStage.CLOSED
    assert "audit trail intact" in output_of(done, "$A verify")

    done = await walk(stack, tmp_path / "review", code_block("Review and appeal, by hand"))
    (number,) = set(await numbers(stack)) - {settled}

    first = output_of(done, 'echo "panel:')
    round_1 = set(first.split("panel:")[1].replace("- chair:", " ").split())
    assert len(round_1) == 6, first  # a panelist per function, and a chair
    # `accord show` after the appeal: the fresh panel is the panel, as round 2's.
    line = panel_line(output_of(done, "$A show", 1))
    # It names people: the second board's, on fresh data, and nobody of round 1.
    board_names = {p.id: p.name for p in [*SECOND_BOARD, *DEMO.people] if p.id.startswith("board.")}
    named = {pid for pid, name in board_names.items() if name in line}
    assert "round 2" in line and named.isdisjoint(round_1), line
    assert named == {p.id for p in SECOND_BOARD}, line
    outcome = await stack.handle(number).result()
    assert outcome.stage is DisputeStage.CLOSED
    state = await stack.state(number)
    assert [(r.round, r.final, r.outcome.value) for r in state.rulings] == [
        (1, False, "uphold"),
        (2, True, "partly_uphold"),
    ]
    assert [r.state for r in state.remedies] == ["verified"]
    assert "audit trail intact" in output_of(done, "$A verify")
