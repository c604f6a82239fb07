"""Configuration comes from settings alone and is checked at start: outside development, every
missing or placeholder secret is named, all at once, and nothing starts."""

from __future__ import annotations

import pytest

from accord.platform.settings import ConfigurationError, Settings
from tests.conftest import PRODUCTION_SETTINGS
from tests.processes import deployed_environment, run_accord

GOOD = PRODUCTION_SETTINGS


def settings(**values: object) -> Settings:
    return Settings.model_validate({**GOOD, **values})


def test_development_needs_nothing() -> None:
    assert Settings(environment="development").problems() == []


def test_a_complete_production_configuration_passes() -> None:
    assert settings().problems() == []
    settings().check()


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"secret_key": "development-only-secret-change-me"}, "ACCORD_SECRET_KEY: set a random"),
        ({"secret_key": "change-me"}, "ACCORD_SECRET_KEY: still the placeholder 'change-me'"),
        ({"secret_key": "short-but-real-9f"}, "ACCORD_SECRET_KEY: too short"),
        ({"database_url": ""}, "DATABASE_URL: not set"),
        ({"database_url": "postgresql://accord:change-me@db/accord"}, "DATABASE_URL: still a"),
        ({"smtp_username": "relay"}, "ACCORD_SMTP_PASSWORD: not set"),
        ({"smtp_username": "relay", "smtp_password": "<password>"}, "ACCORD_SMTP_PASSWORD: still"),
        (
            {"remedy_webhooks": {"mdf_credit": "https://crm.example/x"}},
            "ACCORD_REMEDY_WEBHOOK_SECRET: not set",
        ),
        ({"intake_imap_host": "imap.example.com"}, "ACCORD_INTAKE_IMAP_PASSWORD: not set"),
        ({"oidc_client_id": "accord"}, "ACCORD_OIDC_CLIENT_SECRET: not set"),
        ({"base_url": ""}, "ACCORD_BASE_URL: not set"),
        ({"base_url": "https://disputes.example.com"}, "ACCORD_BASE_URL: still the example"),
        # Mail sent from, answered at and announced to an address nobody reads.
        ({"mail_from": "Accord <disputes@accord.localhost>"}, "ACCORD_MAIL_FROM: still the"),
        ({"mail_from": "disputes@mail.example.org"}, "ACCORD_MAIL_FROM: still the"),
        ({"mail_from": "not an address"}, "ACCORD_MAIL_FROM: not an email address"),
        ({"mail_domain": "accord.localhost"}, "ACCORD_MAIL_DOMAIN: still the"),
        ({"mail_domain": "change-me.invalid"}, "ACCORD_MAIL_DOMAIN: still the"),
        ({"admin_email": "channel-admins@accord.localhost"}, "ACCORD_ADMIN_EMAIL: still the"),
        ({"admin_email": "admins@vendor.test"}, "ACCORD_ADMIN_EMAIL: still the"),
        # Cookies a browser would send over plain HTTP while people reach the app over HTTPS.
        ({"secure_cookies": False}, "ACCORD_SECURE_COOKIES: false while ACCORD_BASE_URL is https"),
    ],
)
def test_each_problem_is_named(values: dict[str, object], problem: str) -> None:
    found = settings(**values).problems()
    assert len(found) == 1 and found[0].startswith(problem), found
    with pytest.raises(ConfigurationError) as raised:
        settings(**values).check()
    assert problem in str(raised.value)


def test_every_problem_at_once_and_nothing_starts() -> None:
    env = deployed_environment(ACCORD_ENVIRONMENT="production", ACCORD_SECRET_KEY="change-me")
    for command in ("worker", "web", "intake"):
        done = run_accord(command, env=env)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert lines[0] == "error: the configuration is not ready for production:"
        assert "  - ACCORD_SECRET_KEY: still the placeholder 'change-me'" in lines
        assert "  - DATABASE_URL: not set (the SQLite file is for one machine only)" in lines
        assert any(line.startswith("  - ACCORD_BASE_URL: not set") for line in lines)
        assert any(line.startswith("  - ACCORD_PAYLOAD_KEYS: not set") for line in lines)


def test_the_intake_address_is_checked_where_mail_is_read() -> None:
    """Partners are told to write to the intake address (replies, incomplete filings): the
    intake refuses to start while it is the example one; other processes do not use it."""
    placeholder = settings(
        intake_address="disputes@accord.localhost",
        intake_verify="self",
        intake_require_authentication=True,
    )
    assert placeholder.problems() == []
    [problem] = placeholder.problems(intake=True)
    assert problem.startswith("ACCORD_INTAKE_ADDRESS: still the example address"), problem


def test_secure_cookies_are_not_asked_for_where_the_app_is_served_over_http() -> None:
    """An http base URL (a private network, the app behind nothing) keeps cookies as they are:
    a browser would not send Secure ones back over HTTP, and nobody could sign in."""
    assert settings(base_url="http://disputes.internal:8000", secure_cookies=False).problems() == []


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        # A base URL the check could not read raised instead of naming the setting.
        ({"base_url": "https://[::1"}, "ACCORD_BASE_URL: not an http(s) address"),
        ({"base_url": "javascript:alert(1)"}, "ACCORD_BASE_URL: not an http(s) address"),
        ({"base_url": "accord.acme.io"}, "ACCORD_BASE_URL: not an http(s) address"),
        ({"base_url": "https:///x"}, "ACCORD_BASE_URL: not an http(s) address"),
        # The fully qualified form of an example domain is still one.
        ({"mail_from": "a@accord.localhost."}, "ACCORD_MAIL_FROM: still the example"),
        ({"mail_domain": "example.com."}, "ACCORD_MAIL_DOMAIN: still the example"),
        # What would make every email fail to build, or go elsewhere.
        ({"mail_from": "a@acme.io\nBcc: x@evil.io"}, "ACCORD_MAIL_FROM: holds a line break or NUL"),
        ({"mail_domain": "acme.io\n"}, "ACCORD_MAIL_DOMAIN: holds a line break or NUL"),
        ({"mail_domain": "a b.com"}, "ACCORD_MAIL_DOMAIN: not a domain"),
        ({"mail_domain": "x@acme.io"}, "ACCORD_MAIL_DOMAIN: not a domain"),
        ({"admin_email": "@acme.io"}, "ACCORD_ADMIN_EMAIL: not an email address"),
        ({"admin_email": "a@acme.io, b@example.com"}, "ACCORD_ADMIN_EMAIL: more than one"),
        ({"admin_email": "a@acme.io\x00"}, "ACCORD_ADMIN_EMAIL: holds a line break or NUL"),
    ],
)
def test_hostile_addresses_are_named_never_raised(values: dict[str, object], problem: str) -> None:
    found = settings(**values).problems()
    assert any(p.startswith(problem) for p in found), found
    assert all("\n" not in p for p in found), found
