"""Process configuration: one Settings object, built at start and passed down.

Workflows never read it; activities and entry points receive it explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.enums import RemedyKind

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    state_dir: Path = REPO_ROOT / "state"
    database_url: str = Field(
        default="",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL; empty means a SQLite file in state_dir",
    )
    playbook_dir: Path = REPO_ROOT / "playbooks"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "accord-disputes"
    temporal_ui_port: int = 8233

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "Accord <disputes@accord.localhost>"
    mail_domain: str = "accord.localhost"
    """Right-hand side of every Message-ID we generate; replies are threaded on it."""
    admin_email: str = "channel-admins@accord.localhost"
    """Where admin tasks (no eligible mediator, escalations) are announced."""
    base_url: str = "http://127.0.0.1:8000"

    remedy_webhooks: dict[RemedyKind, str] = Field(default_factory=dict)
    """Remedy kinds applied by POSTing to an external system (CRM, billing), as JSON:
    {"commission_split": "https://crm.example/accord/remedies"}. Others go to the ledger."""
    remedy_webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key for the X-Accord-Signature header; required when webhooks are set."""
    remedy_webhook_timeout_seconds: float = 10.0
    outbox_relay_interval_seconds: float = 30.0

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.state_dir / 'accord.db'}"
