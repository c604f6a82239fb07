"""What every benchmark sets up the same way: a work folder, an SMTP sink for outgoing mail,
Settings over a SQLite file (or a given URL), the demo directory with room for every case,
and a Temporal dev server from the wheel."""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from accord.demo import DEMO
from accord.directory import import_directory
from accord.migrate import upgrade
from accord.runtime import Services, build_services, data_converter_for
from accord.settings import REPO_ROOT, Settings
from models import search_attributes
from models.tables import Person


class Sink:
    """Accepts every outgoing message and keeps none."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class BenchStack:
    def __init__(self, name: str, database_url: str = "", task_queue: str | None = None) -> None:
        self.work = Path(tempfile.mkdtemp(prefix=f"accord-{name}-bench-"))
        self.smtp_port = 20000 + uuid.uuid4().int % 20000
        self.sink = Controller(Sink(), hostname="127.0.0.1", port=self.smtp_port)
        self.sink.start()
        self.settings = Settings(
            database_url=database_url or f"sqlite:///{self.work / 'accord.db'}",
            state_dir=self.work,
            playbook_dir=REPO_ROOT / "playbooks",
            smtp_port=self.smtp_port,
            task_queue=task_queue or f"accord-{name}-bench",
        )
        upgrade(self.settings.resolved_database_url())
        self.services: Services | None = None

    def seed(self, case_limit: int) -> Services:
        """The demo directory, every person able to take `case_limit` cases."""
        services = build_services(self.settings)
        with services.sessions.begin() as session:
            import_directory(session, DEMO)
            for person in session.exec(select(Person)).all():
                person.case_limit = case_limit
                session.add(person)
        self.services = services
        return services

    async def temporal(self, *extra: str) -> WorkflowEnvironment:
        return await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            data_converter=data_converter_for(self.settings),
            dev_server_extra_args=[
                "--db-filename",
                str(self.work / "temporal.db"),
                "--log-level",
                "error",
                *search_attributes.DEV_SERVER_FLAGS,
                *extra,
            ],
        )

    def stop(self) -> None:
        self.sink.stop()
