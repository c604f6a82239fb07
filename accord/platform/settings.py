"""Process configuration: one Settings object, built at start and passed down.

Workflows never read it; activities and entry points receive it explicitly.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
from decimal import Decimal
from email.utils import getaddresses
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from models.codec import PayloadKeyError, PayloadKeys
from models.enums import RemedyKind

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVELOPMENT_SECRET = "development-only-secret-change-me"  # noqa: S105 - refused in production
DEVELOPMENT_PAYLOAD_KEY_ID = "development"
DEVELOPMENT_PAYLOAD_KEYS = PayloadKeys(
    keys={
        DEVELOPMENT_PAYLOAD_KEY_ID: hashlib.sha256(
            b"accord: the development payload key, public and refused in production"
        ).digest()
    },
    active=DEVELOPMENT_PAYLOAD_KEY_ID,
)
"""What seals Temporal payloads while ACCORD_PAYLOAD_KEYS is unset in development: every
process of a development stack (worker, web, intake, CLI, tests) agrees on it without
configuration. Anyone can derive it; production refuses to start with it."""


PLACEHOLDER = re.compile(
    r"change[-_ ]?me|replace[-_ ]?me|^todo$|^x{3,}$|^<.*>$|^(secret|password)$", re.IGNORECASE
)
"""Values copied from an example file and never replaced (.env.example uses `change-me`)."""

EXAMPLE_HOST = re.compile(r"(^|\.)example\.(com|org|net)$", re.IGNORECASE)
"""The documentation domains (RFC 2606): never where people reach a real deployment."""

HOSTNAME = re.compile(r"(?=.{1,253}\.?$)([^\W_](?:[^\W_]|-){0,62}\.)*[^\W_](?:[^\W_]|-){0,62}\.?")
"""A domain: labels of letters (any script), digits and hyphens, a trailing dot allowed."""

RESERVED_MAIL_DOMAIN = re.compile(
    r"(^|\.)(example\.(com|org|net)|localhost|example|invalid|test)$", re.IGNORECASE
)
"""Domains no mail is delivered to (RFC 2606, RFC 6761): the defaults' accord.localhost, the
documentation's example.com. Mail from, to or threaded on one of them reaches nobody."""


def resolver_address(text: str) -> tuple[str, int] | None:
    """A DNS resolver as host, host:port or [v6]:port, the host an IP address; None if not."""
    text = text.strip()
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d{1,5}))?", text)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        return None
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        return None
    return address, int(port or 53)


_MAKE_PAYLOAD_KEY = "make one with `accord payload-key new` and keep it secret"
_NO_PAYLOAD_KEYS = (
    "ACCORD_PAYLOAD_KEYS: not set (Temporal's history and UI would show sealed votes, notes"
    " and partners' personal data in clear); " + _MAKE_PAYLOAD_KEY
)


def revealed(secret: SecretStr | None) -> str | None:
    """A secret setting's value, None when it is unset."""
    return None if secret is None else secret.get_secret_value()


def _placeholder(value: str) -> bool:
    return bool(PLACEHOLDER.search(value.strip()))


def _mail_problem(name: str, value: str, reaches: str) -> str | None:
    """Why `value` (an address, a "Name <address>" or, for mail_domain, a domain) is not a
    real one to send from or to; None when it is."""
    setting = f"ACCORD_{name.upper()}"
    if re.search(r"[\r\n\x00]", value):
        # It goes into a header (From, Message-ID): the email could not be built at all.
        return f"{setting}: holds a line break or NUL ({value!r})"
    if name == "mail_domain":
        domain = value.strip()
        if domain and not HOSTNAME.fullmatch(domain):
            return f"{setting}: not a domain ({value!r})"
    else:
        addresses = getaddresses([value])
        if len(addresses) > 1:
            return f"{setting}: more than one address ({value!r}); give one"
        address = addresses[0][1] if addresses else ""
        local, _, domain = address.rpartition("@")
        if not local or not HOSTNAME.fullmatch(domain):
            return f"{setting}: not an email address ({value!r})"
    if (
        not domain.strip(".")
        or _placeholder(domain)
        or RESERVED_MAIL_DOMAIN.search(domain.rstrip("."))
    ):
        return f"{setting}: still the example address {value!r} ({reaches})"
    return None


def _holds_pem(path: Path, kind: str) -> bool:
    """Whether the file holds a PEM block of `kind` (CERTIFICATE; PRIVATE KEY, whatever its
    algorithm): the SDK's own parser fails with its own words, and may take the process down."""
    try:
        text = path.read_bytes()[: 1 << 20].decode("ascii", errors="replace")
    except OSError:
        return False
    return bool(re.search(rf"-----BEGIN [A-Z ]*{kind}-----", text))


def _base_url_problem(base_url: str) -> str | None:
    """Why the base URL is not an address people can be sent to; None when it is."""
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
    except ValueError:
        host, parts = "", None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        return (
            f"ACCORD_BASE_URL: not an http(s) address with a host ({base_url!r}), e.g."
            " https://disputes.your-company.com"
        )
    if EXAMPLE_HOST.search(host):
        return (
            f"ACCORD_BASE_URL: still the example address {base_url!r} (links in email"
            " would lead nowhere)"
        )
    return None


class ConfigurationError(ValueError):
    """Settings that may not run outside development; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the configuration is not ready for production:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    state_dir: Path = REPO_ROOT / "state"
    database_url: str = Field(
        default="",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL; empty means a SQLite file in state_dir",
    )
    database_user: str = ""
    """The database role apart from DATABASE_URL, used when the URL names none (compose: the
    role deploy/postgres/init-roles.sh creates for Accord)."""
    database_password: SecretStr | None = None
    """The database password apart from DATABASE_URL, used when the URL carries none: any
    characters, none of them read as part of a URL (compose sets it in .env)."""
    database_pool_size: int = Field(default=10, ge=1, le=200)
    """Connections each process keeps open to PostgreSQL (the guide adds them up against the
    server's max_connections)."""
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    """Connections it may open beyond those under load, closed again after."""
    playbook_dir: Path = REPO_ROOT / "playbooks"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "accord-disputes"
    temporal_ui_port: int = 8233
    temporal_tls: bool = False
    """Reach Temporal over TLS, trusting the system's roots (on by itself when any setting
    below is set)."""
    temporal_tls_ca_file: Path | None = None
    """PEM roots to trust instead of the system's (a cluster's own certificate authority)."""
    temporal_tls_cert_file: Path | None = None
    """This process's PEM certificate, for mutual TLS (with ACCORD_TEMPORAL_TLS_KEY_FILE)."""
    temporal_tls_key_file: Path | None = None
    """Its PEM private key."""
    temporal_tls_server_name: str = ""
    """The name to check the server's certificate against, when the address differs."""
    temporal_api_key: SecretStr | None = None
    """An API key (Temporal Cloud), sent over TLS."""
    payload_keys: SecretStr | None = None
    """Keys sealing what Temporal stores (histories, the UI's view): `id:base64-of-32-bytes`,
    comma-separated, e.g. made by `accord payload-key new`. Every key listed opens what it
    sealed; rotate by adding a new one and making it active. Unset: the development key
    (refused in production)."""
    payload_key_id: str = ""
    """The id of the key that seals new payloads (empty: the first one listed)."""
    codec_cors_origins: str = ""
    """Origins of the Temporal UI allowed to call the codec endpoint (/codec/decode) with the
    signed-in user's session, comma-separated (compose: http://localhost:8080). Empty: the
    embedded dev server's UI (127.0.0.1 and localhost on ACCORD_TEMPORAL_UI_PORT)."""
    codec_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """The largest body the codec endpoint reads (the UI sends one event's payloads at a time;
    Temporal refuses payloads over 2 MB)."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "Accord <disputes@accord.localhost>"
    mail_domain: str = "accord.localhost"
    """Right-hand side of every Message-ID we generate; replies are threaded on it."""
    admin_email: str = "channel-admins@accord.localhost"
    """Where admin tasks (no eligible mediator, escalations) are announced."""
    base_url: str = ""
    """Where people reach the web app (links in email); empty means the web host and port."""

    remedy_webhooks: dict[RemedyKind, str] = Field(default_factory=dict)
    """Remedy kinds applied by POSTing to an external system (CRM, billing), as JSON:
    {"commission_split": "https://crm.example/accord/remedies"}. Others go to the ledger."""
    remedy_webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key for the X-Accord-Signature header; required when webhooks are set."""
    remedy_webhook_timeout_seconds: float = 10.0
    outbox_relay_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    """How often the relay looks for mail to send besides being woken by an enqueue in its own
    process (mail enqueued elsewhere, a backoff that ran out)."""
    outbox_claim_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    """How long a relay holds a message without renewing its claim (it renews every third of
    this while a send is slow); after that another relay may send it."""
    outbox_retry_base_seconds: float = Field(default=30.0, gt=0, le=86400)
    """The wait after a temporary SMTP failure; it doubles with each further failure..."""
    outbox_retry_max_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    """...up to this."""
    outbox_relay_concurrency: int = Field(default=4, ge=1, le=64)
    """Messages one relay sends at the same time."""
    outbox_coalesce_seconds: float = Field(default=1.0, ge=0, le=60)
    """A dispute's email waits this long, and goes out as one email with the others to the
    same person on the same dispute within this of it (settled, remedy applied and closed);
    0 sends each at once, on its own."""
    outbox_outcome_hold_seconds: float = Field(default=120.0, ge=0, le=3600)
    """An outcome's email (settled, final ruling, remedy applied) waits at most this long for
    the rest of the outcome while its dispute is still applying it, so that a busy worker's
    slow steps still reach each person as one email."""
    worker_recovery_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How often a worker looks for filings stored but never started."""
    worker_max_cached_workflows: int = Field(default=400, ge=0, le=1_000_000)
    """Disputes a worker keeps in memory between their workflow tasks (Temporal's sticky cache).
    Size it to the active set, the disputes being acted on or reaching a deadline at about the
    same time: a smaller cache replays a dispute's history on its next task (CPU), a larger one
    holds parked disputes in memory, about 0.2 MB each over a worker's 190 MB (bench/parked.py
    measures both; 0 turns the cache off). With 1,500 disputes parked a worker held under
    300 MB at 400, and 393 MB at 1,000: beyond the cache, parked disputes cost it nothing."""

    # --- email intake ----------------------------------------------------------------
    intake_address: str = "disputes@accord.localhost"
    """Where partners write to file; replies to notifications come back here too."""
    intake_smtp_host: str = "127.0.0.1"
    intake_smtp_port: int = 2525
    """The SMTP receiver `make run` starts (0 = do not start one)."""
    intake_max_bytes: int = 25 * 1024 * 1024
    """Largest message the receiver accepts (refused at the SMTP level above it)."""
    intake_parse_seconds: float = Field(default=10.0, gt=0, le=600)
    """Time budget for reading one message, in a separate process (killed past it): a header
    bomb costs that process this long, never the web app, the worker or the other messages."""
    intake_parse_memory_mb: int = Field(default=2048, ge=256)
    """Memory budget of that process (its address space); past it the attempt fails."""
    intake_parse_processes: int = Field(default=2, ge=1, le=64)
    """Messages read at the same time, each in its own process."""
    intake_parallel: int = Field(default=64, ge=1, le=256)
    """Messages processed at the same time by one intake (they wait on Temporal, not the CPU;
    at 8, 10 senders' replies queued behind disputes busy with their filing). Messages over
    1 MiB are taken a few at a time whatever this says (IntakeProcessor.LARGE_PARALLEL)."""
    intake_max_attempts: int = Field(default=5, ge=1, le=100)
    """Failed attempts before a message is marked failed for an admin instead of retried."""
    intake_retry_seconds: float = Field(default=30.0, ge=0)
    """Back-off after a failed attempt; doubled after each further failure (capped at 1 h)."""
    intake_claim_seconds: float = Field(default=60.0, gt=0)
    """A processor's claim on a message lasts this long and is renewed while it works, so the
    claim of a processor that died lapses within it."""
    intake_verify: Literal["mta", "self", "none"] = "mta"
    """Who says a message comes from its From domain. mta: the receiving MTA in front of
    Accord, through its Authentication-Results (ACCORD_INTAKE_AUTHSERV_ID names it); self:
    Accord checks DKIM, SPF (mail its own SMTP receiver took in) and DMARC itself, over DNS;
    none: nobody, the From is taken on its word."""
    intake_authserv_id: str | None = None
    """The authserv-id of the receiving MTA in front of Accord: only Authentication-Results
    headers stamped with it are trusted. Unset: no header is trusted."""
    intake_require_authentication: bool = False
    """Hold mail without a pass aligned with its From domain (DMARC's rule); mail that fails
    is held either way."""
    intake_trust_bare_from: bool = False
    """Outside development, the operator's acknowledgement that the intake acts on mail whose
    From nobody verified (anyone can write as any partner); without it such an intake does not
    start."""
    intake_dns_servers: list[str] = Field(default_factory=list)
    """Resolvers for ACCORD_INTAKE_VERIFY=self, as host or host:port ([v6]:port); empty: the
    system's (/etc/resolv.conf)."""
    intake_dns_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """How long one DNS question may take; past it the check is a temporary error and the
    message is retried (ACCORD_INTAKE_RETRY_SECONDS), never trusted."""
    intake_imap_host: str | None = None
    """A shared mailbox to poll instead of (or besides) the SMTP receiver; unset: no polling."""
    intake_imap_port: int = 993
    intake_imap_ssl: bool = True
    intake_imap_username: str | None = None
    intake_imap_password: SecretStr | None = None
    intake_imap_folder: str = "INBOX"
    intake_imap_processed_folder: str = "Accord/Processed"
    """Where a message is moved once it is stored (created when missing)."""
    intake_imap_interval_seconds: float = 30.0

    # --- web app and API ---------------------------------------------------------------
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    web_metrics_host: str = "127.0.0.1"
    web_metrics_port: int = Field(default=9108, ge=0, le=65535)
    """Where the web process serves its Prometheus /metrics, apart from the web port (which
    answers 404 for it): loopback by default, for a scraper on the same host or network
    namespace (0: not served)."""
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    """Signs session and CSRF cookies; must be set outside development."""
    session_max_age_seconds: int = 8 * 3600
    """A session ends this long after sign-in."""
    secure_cookies: bool = False
    """Mark cookies Secure (set it when the app is served over HTTPS)."""
    trusted_proxies: str = "127.0.0.1"
    """Addresses or networks (comma-separated, e.g. "127.0.0.1,10.0.0.0/8") of the proxies in
    front of the web app: only from them is X-Forwarded-For believed, and the client address
    sign-in throttling counts is the first one in it that is not theirs. Anyone else's header
    is ignored. "*" trusts everyone (only when nothing but the proxy can reach the app)."""

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: str) -> str:
        # uvicorn would take a mistyped entry for a literal host name and quietly trust nobody.
        for entry in (e.strip() for e in value.split(",")):
            if entry == "*" or not entry:
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    sign_in_free_failures: int = Field(default=5, ge=1)
    """Wrong passwords an account may have before each next attempt waits (1 s, doubling)."""
    sign_in_lockout_failures: int = Field(default=10, ge=1)
    """Wrong passwords after which an account is locked for `sign_in_lockout_seconds`."""
    sign_in_address_free_failures: int = Field(default=20, ge=1)
    """The same, for failures from one client address whatever the account (one office's
    people share an address behind its NAT, hence higher)."""
    sign_in_address_lockout_failures: int = Field(default=100, ge=1)
    sign_in_lockout_seconds: int = Field(default=15 * 60, ge=1)
    """How long a lockout lasts; failures older than this since the last one are forgotten."""
    action_wait_seconds: float = Field(default=10.0, gt=0, le=300)
    """How long the web, the API and the CLI wait for an action to be applied. Past it they
    answer that it is still being applied, with the dispute as it is now; the same
    idempotency key again picks the action up (it is never applied twice)."""
    workflow_task_seconds: float = Field(default=10.0, ge=1, le=60)
    """The workflow task timeout of each dispute started: how long the engine gives a worker to
    answer one workflow task. Records run inside the task (local activities): one held longer
    than 80 % of this is heartbeated, and actions sent meanwhile wait for that. Raise it only
    for disputes with very long histories, whose replay must fit in one task."""
    otel_endpoint: str = ""
    """OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces (empty: no tracing)."""
    log_format: Literal["auto", "json", "text"] = "auto"
    """auto: JSON lines outside development, readable text in it."""
    log_level: str = "INFO"
    worker_health_host: str = "127.0.0.1"
    worker_health_port: int = Field(default=0, ge=0, le=65535)
    """The worker's /health, /ready and /metrics (0: not served; compose serves them)."""
    temporal_metrics_address: str = ""
    """host:port where the worker exposes Temporal's SDK metrics for Prometheus (empty: none)."""
    public_amount_threshold: Decimal = Field(default=Decimal(10_000), ge=0)
    """Amounts above this are hidden from partners' anonymised view of precedents. After
    changing it, `accord reindex-precedents` rewrites the searchable anonymised text."""
    precedent_anonymity_k: int = Field(default=3, ge=1, le=1_000)
    """The anonymised view names a party only by a tier and region label at least this many
    partners of the directory share (k-anonymity); a rarer label is generalised (tier dropped,
    region widened). After changing it, `accord reindex-precedents`."""
    texts_per_dispute: int = Field(default=1_000, ge=1)
    """The most notes, email replies, information requests and answers one dispute takes; past
    it the sender is told so and nothing is recorded (a Temporal history holds at most 2,000
    actions)."""
    texts_per_sender: int = Field(default=250, ge=1)
    """The most of those one person (or email address) may add to one dispute."""
    json_max_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    """Largest JSON body an API route takes (an action, a filing, a token); past it: 413,
    refused by its declared length before it is read."""
    directory_json_max_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    """Largest JSON body of a directory import (POST /api/directory); larger directories are
    imported with `accord import-directory`."""
    channel_import_max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    """Largest file POST /api/channel/imports takes (100,000 registrations are some 18 MB of
    CSV); larger files are imported with `accord channel import`."""
    form_max_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    """Largest body of any other kind but multipart (a page's form); multipart bodies are
    bounded by the upload limits below."""
    upload_max_bytes: int = 10 * 1024 * 1024
    upload_max_files: int = 10
    upload_allowed_types: list[str] = Field(
        default_factory=lambda: [
            "application/pdf",
            "image/png",
            "image/jpeg",
            "text/plain",
            "text/csv",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "message/rfc822",
        ]
    )
    demo_password: str = "accord-demo"  # noqa: S105 - development only, listed in the README
    """Password of every demo account (development only)."""

    # Optional OpenID Connect sign-in: set all three to enable it.
    oidc_discovery_url: str | None = None
    """e.g. https://login.example.com/.well-known/openid-configuration"""
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_label: str = "single sign-on"

    @field_validator("intake_dns_servers")
    @classmethod
    def _resolvers(cls, servers: list[str]) -> list[str]:
        for server in servers:
            if resolver_address(server) is None:
                raise ValueError(
                    f"{server!r} is not a resolver's IP address with an optional port"
                    " (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)"
                )
        return servers

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_discovery_url and self.oidc_client_id and self.oidc_client_secret)

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (
            self.log_format == "auto" and self.environment != "development"
        )

    def payload_key_ring(self) -> PayloadKeys:
        """The keys sealing Temporal payloads (the development key when none are set in
        development); ConfigurationError naming what is wrong, never a key's value."""
        text = revealed(self.payload_keys) or ""
        if not text.strip() or _placeholder(text):
            # A copied .env.example runs `make run` as it is, like its other placeholders.
            if self.environment == "development":
                return DEVELOPMENT_PAYLOAD_KEYS
            raise ConfigurationError(self._payload_key_problems())
        try:
            return PayloadKeys.parse(text, self.payload_key_id or None)
        except PayloadKeyError as exc:
            raise ConfigurationError([f"ACCORD_PAYLOAD_KEYS: {exc}"]) from None

    def codec_origins(self) -> list[str]:
        """Where the Temporal UI calling the codec endpoint may be served from."""
        listed = [o.strip().rstrip("/") for o in self.codec_cors_origins.split(",") if o.strip()]
        if listed:
            return listed
        return [f"http://{h}:{self.temporal_ui_port}" for h in ("127.0.0.1", "localhost")]

    def problems(self, *, intake: bool = False) -> list[str]:
        """What must be fixed before this configuration may run outside development: each
        missing or placeholder secret, and settings that only make sense on one machine; for
        a process that reads mail (`intake`), also an intake that would trust a bare From."""
        if self.environment == "development":
            # Only what cannot run anywhere: a key list that is set but unreadable, a way to
            # reach Temporal that cannot work.
            keys = self._payload_key_problems() if self.payload_keys is not None else []
            return keys + self._connection_problems()
        found: list[str] = self._intake_problems() if intake else []
        found += self._connection_problems()

        def secret(name: str, value: SecretStr | str | None, needed: bool = True) -> None:
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if text is None or not text.strip():
                if needed:
                    found.append(f"ACCORD_{name.upper()}: not set")
            elif _placeholder(text):
                found.append(f"ACCORD_{name.upper()}: still the placeholder {text!r}")
            elif name == "secret_key" and len(text) < 32:
                found.append("ACCORD_SECRET_KEY: too short (at least 32 characters)")

        if self.secret_key.get_secret_value() == DEVELOPMENT_SECRET:
            found.append(
                "ACCORD_SECRET_KEY: set a random secret (e.g. `python -c 'import secrets;"
                " print(secrets.token_urlsafe(48))'`) outside development"
            )
        else:
            secret("secret_key", self.secret_key)
        if not self.database_url:
            found.append("DATABASE_URL: not set (the SQLite file is for one machine only)")
        elif _placeholder(self.database_url) or (
            self.database_password is not None
            and _placeholder(self.database_password.get_secret_value())
        ):
            found.append(
                "DATABASE_URL: still a placeholder password (under compose:"
                " ACCORD_DATABASE_PASSWORD in .env)"
            )
        secret("smtp_password", self.smtp_password, needed=bool(self.smtp_username))
        secret(
            "remedy_webhook_secret", self.remedy_webhook_secret, needed=bool(self.remedy_webhooks)
        )
        secret(
            "intake_imap_password", self.intake_imap_password, needed=bool(self.intake_imap_host)
        )
        secret("oidc_client_secret", self.oidc_client_secret, needed=bool(self.oidc_client_id))
        found += self._payload_key_problems()
        found += self._mail_problems()
        if self.base_url.lower().startswith("https:") and not self.secure_cookies:
            found.append(
                "ACCORD_SECURE_COOKIES: false while ACCORD_BASE_URL is https (a session cookie"
                " would also be sent over plain HTTP); set it to true"
            )
        if not self.base_url:
            found.append("ACCORD_BASE_URL: not set (links in email would point at the web host)")
        elif problem := _base_url_problem(self.base_url):
            found.append(problem)
        return found

    def _connection_problems(self) -> list[str]:
        """How this process reaches its services, where that cannot work: half a client
        certificate, a file that cannot be read or is no PEM, an empty or placeholder API key,
        an address or name no connection takes, control characters in the database's."""
        found = []
        password = revealed(self.database_password) or ""
        for setting, value in (
            ("DATABASE_URL", self.database_url),
            ("ACCORD_DATABASE_USER", self.database_user),
        ):
            if re.search(r"[\x00-\x1f\x7f]", value):
                found.append(f"{setting}: holds a control character, which no database takes")
        if "\x00" in password:  # any other character is a password's own business
            found.append("ACCORD_DATABASE_PASSWORD: holds a NUL character, which no database takes")
        if not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", self.temporal_address):
            found.append(
                f"ACCORD_TEMPORAL_ADDRESS: not host:port ({self.temporal_address!r}), e.g."
                " temporal.internal:7233"
            )
        name = self.temporal_tls_server_name
        if name and not HOSTNAME.fullmatch(name):
            found.append(f"ACCORD_TEMPORAL_TLS_SERVER_NAME: not a host name ({name!r})")
        cert, key = self.temporal_tls_cert_file, self.temporal_tls_key_file
        if cert and not key:
            found.append("ACCORD_TEMPORAL_TLS_KEY_FILE: not set (mutual TLS needs the key too)")
        if key and not cert:
            found.append(
                "ACCORD_TEMPORAL_TLS_CERT_FILE: not set (mutual TLS needs the certificate too)"
            )
        for field, path, pem in (
            ("temporal_tls_ca_file", self.temporal_tls_ca_file, "CERTIFICATE"),
            ("temporal_tls_cert_file", cert, "CERTIFICATE"),
            ("temporal_tls_key_file", key, "PRIVATE KEY"),
        ):
            if path is None:
                continue
            setting = f"ACCORD_{field.upper()}"
            if not (path.is_file() and os.access(path, os.R_OK)):
                found.append(f"{setting}: cannot be read ({path})")
            elif not _holds_pem(path, pem):
                found.append(f"{setting}: not a PEM {pem.lower()} ({path})")
        api_key = revealed(self.temporal_api_key)
        if api_key is not None and not api_key.strip():
            found.append("ACCORD_TEMPORAL_API_KEY: empty")
        elif api_key is not None and _placeholder(api_key):
            found.append("ACCORD_TEMPORAL_API_KEY: still the placeholder")
        return found

    def _mail_problems(self) -> list[str]:
        """The sender, the Message-ID domain and the admins' address: each a real one."""
        found = []
        for name, value, reaches in (
            ("mail_from", self.mail_from, "replies to Accord's email would reach nobody"),
            ("mail_domain", self.mail_domain, "replies could not be threaded on it"),
            ("admin_email", self.admin_email, "admin tasks would be announced to nobody"),
        ):
            problem = _mail_problem(name, value, reaches)
            if problem:
                found.append(problem)
        return found

    def _intake_problems(self) -> list[str]:
        address = _mail_problem(
            "intake_address", self.intake_address, "partners would be told to write nowhere"
        )
        return ([address] if address else []) + self._intake_trust_problems()

    def _intake_trust_problems(self) -> list[str]:
        verified = self.intake_verify == "self" or (
            self.intake_verify == "mta" and bool(self.intake_authserv_id)
        )
        if self.intake_require_authentication and not verified:
            return [
                "ACCORD_INTAKE_REQUIRE_AUTHENTICATION is true but nothing verifies senders"
                f" (ACCORD_INTAKE_VERIFY={self.intake_verify}"
                + (", ACCORD_INTAKE_AUTHSERV_ID not set" if self.intake_verify == "mta" else "")
                + "): every message would be held; name your MTA in ACCORD_INTAKE_AUTHSERV_ID"
                " or set ACCORD_INTAKE_VERIFY=self"
            ]
        if self.intake_require_authentication or self.intake_trust_bare_from:
            return []
        return [
            "ACCORD_INTAKE_REQUIRE_AUTHENTICATION is false: the intake would act on mail whose"
            " From nobody verified (anyone can write as any partner); set it to true with"
            " ACCORD_INTAKE_VERIFY=self or ACCORD_INTAKE_VERIFY=mta and ACCORD_INTAKE_AUTHSERV_ID"
            " (see the README, Production), or accept the risk with"
            " ACCORD_INTAKE_TRUST_BARE_FROM=true"
        ]

    def _payload_key_problems(self) -> list[str]:
        # Never quotes the value: even a malformed key list may hold a real key.
        text = revealed(self.payload_keys) or ""
        if not text.strip():
            return [] if self.environment == "development" else [_NO_PAYLOAD_KEYS]
        if _placeholder(text):
            if self.environment == "development":
                return []
            return ["ACCORD_PAYLOAD_KEYS: still the placeholder; " + _MAKE_PAYLOAD_KEY]
        try:
            ring = self.payload_key_ring()
        except ConfigurationError as exc:
            return exc.problems
        development_key = DEVELOPMENT_PAYLOAD_KEYS.keys[DEVELOPMENT_PAYLOAD_KEY_ID]
        if self.environment != "development" and development_key in ring.keys.values():
            return [
                "ACCORD_PAYLOAD_KEYS: holds the development key, which anyone can derive; "
                + _MAKE_PAYLOAD_KEY
            ]
        return []

    def secret_values(self) -> tuple[str, ...]:
        """Every secret this process holds, as text: what its logs must never show (each
        payload key on its own too, and the password a database URL may carry)."""
        values = [
            value.get_secret_value()
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr) and value.get_secret_value()
        ]
        if self.payload_keys is not None:
            for entry in self.payload_keys.get_secret_value().split(","):
                values.append(entry.split(":", 1)[-1].strip())
        with contextlib.suppress(Exception):  # a URL that does not parse holds no password
            password = make_url(self.database_url).password
            if password:
                values.append(str(password))
        return tuple(v for v in values if v)

    def check(self, *, intake: bool = False) -> None:
        """Refuse to start with anything `problems` names, listing all of it at once."""
        found = self.problems(intake=intake)
        if found:
            raise ConfigurationError(found)

    def resolved_base_url(self) -> str:
        return (self.base_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    def resolved_database_url(self) -> str:
        """The URL the engine connects with: DATABASE_URL, with ACCORD_DATABASE_PASSWORD put in
        (percent-encoded) when the URL has no password; a SQLite file in state_dir if unset."""
        if not self.database_url:
            return f"sqlite:///{self.state_dir / 'accord.db'}"
        if self.database_password is None and not self.database_user:
            return self.database_url
        if self.database_url.startswith("sqlite"):
            return self.database_url  # a file: no role to connect as
        url = make_url(self.database_url)
        if self.database_user and url.username is None:
            url = url.set(username=self.database_user)
        if self.database_password is not None and url.password is None:
            url = url.set(password=self.database_password.get_secret_value())
        return url.render_as_string(hide_password=False)

    def database_url_shown(self) -> str:
        """The database's URL to print or log: its password, if any, as ***."""
        url = make_url(self.resolved_database_url())
        hidden = {k: ("***" if k.lower() == "password" else v) for k, v in url.query.items()}
        return url.set(query=hidden).render_as_string(hide_password=True)
