"""The application: the handles one process shares (`Services`: settings, database, playbooks,
outbox) and the filing service built on them. Web, intake, the CLI and the worker are given
these; the composition roots in `accord/runtime/` build them from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client

from accord.disputes.filing import FilingService
from accord.governance.exceptions import ExceptionService
from accord.platform.db import SessionFactory, make_engine
from accord.platform.settings import Settings, revealed
from accord.playbooks.library import PlaybookLibrary
from notifications.mailer import Mailer, SmtpMailer
from notifications.outbox import Outbox, RelayPolicy
from notifications.render import TemplateCatalog


@dataclass
class Services:
    settings: Settings
    sessions: SessionFactory
    playbooks: PlaybookLibrary
    outbox: Outbox


def build_services(settings: Settings, mailer: Mailer | None = None) -> Services:
    sessions = SessionFactory(
        make_engine(
            settings.resolved_database_url(),
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
    )
    mailer = mailer or SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=revealed(settings.smtp_password),
        starttls=settings.smtp_starttls,
    )
    outbox = Outbox(
        sessions,
        mailer,
        TemplateCatalog(),
        sender=settings.mail_from,
        domain=settings.mail_domain,
        base_url=settings.resolved_base_url(),
        policy=RelayPolicy(
            lease=timedelta(seconds=settings.outbox_claim_lease_seconds),
            retry_base=timedelta(seconds=settings.outbox_retry_base_seconds),
            retry_max=timedelta(seconds=settings.outbox_retry_max_seconds),
            concurrency=settings.outbox_relay_concurrency,
            coalesce=timedelta(seconds=settings.outbox_coalesce_seconds),
            outcome_hold=timedelta(seconds=settings.outbox_outcome_hold_seconds),
        ),
    )
    return Services(settings, sessions, PlaybookLibrary.from_dir(settings.playbook_dir), outbox)


def build_filing(services: Services, client: Client) -> FilingService:
    return FilingService(
        services.sessions,
        services.playbooks,
        client,
        task_queue=services.settings.task_queue,
        admin_email=services.settings.admin_email,
        task_timeout=timedelta(seconds=services.settings.workflow_task_seconds),
    )


def build_exceptions(services: Services, client: Client) -> ExceptionService:
    return ExceptionService(
        services.sessions, services.playbooks, client, task_queue=services.settings.task_queue
    )
