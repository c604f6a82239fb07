"""How every process reaches Temporal (issue 19, item 6): TLS, mutual TLS or an API key, by
setting, for a secured cluster or Temporal Cloud; and the SDK core's own log lines forwarded to
the process's logging (JSON outside development), not printed by the core in its own format."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from accord.platform.settings import Settings
from accord.platform.temporal import client_tls, connect, telemetry
from tests.conftest import PRODUCTION_SETTINGS


def pem_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_plain_by_default_and_tls_by_setting(tmp_path: Path) -> None:
    assert client_tls(Settings()) is False
    assert client_tls(Settings(temporal_tls=True)) is True  # the system's roots
    ca, _ = pem_pair(tmp_path, "ca")
    cert, key = pem_pair(tmp_path, "accord-worker")
    tls = client_tls(
        Settings(
            temporal_tls_ca_file=ca,
            temporal_tls_cert_file=cert,
            temporal_tls_key_file=key,
            temporal_tls_server_name="temporal.internal",
        )
    )
    assert not isinstance(tls, bool)
    assert tls.server_root_ca_cert == ca.read_bytes()
    assert tls.client_cert == cert.read_bytes()
    assert tls.client_private_key == key.read_bytes()
    assert tls.domain == "temporal.internal"
    # An API key (Temporal Cloud) is sent over TLS only.
    assert client_tls(Settings(temporal_api_key="cloud-key-123")) is True


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"temporal_tls_cert_file": "CERT"}, "ACCORD_TEMPORAL_TLS_KEY_FILE: not set"),
        ({"temporal_tls_key_file": "KEY"}, "ACCORD_TEMPORAL_TLS_CERT_FILE: not set"),
        ({"temporal_tls_ca_file": "MISSING"}, "ACCORD_TEMPORAL_TLS_CA_FILE: cannot be read"),
        ({"temporal_tls_ca_file": "FOLDER"}, "ACCORD_TEMPORAL_TLS_CA_FILE: cannot be read"),
        ({"temporal_api_key": "change-me"}, "ACCORD_TEMPORAL_API_KEY: still the placeholder"),
    ],
)
def test_a_half_or_unreadable_tls_setting_is_named_and_nothing_starts(
    values: dict[str, str], problem: str, tmp_path: Path
) -> None:
    cert, key = pem_pair(tmp_path, "worker")
    given = {
        k: {
            "CERT": str(cert),
            "KEY": str(key),
            "MISSING": str(tmp_path / "none.pem"),
            "FOLDER": str(tmp_path),
        }.get(v, v)
        for k, v in values.items()
    }
    found = Settings.model_validate({**PRODUCTION_SETTINGS, **given}).problems()
    assert len(found) == 1 and found[0].startswith(problem), found
    # In development too: a process that cannot reach its cluster should say why at start.
    found = Settings.model_validate(given).problems()
    assert len(found) == 1 and found[0].startswith(problem), found


async def test_the_client_speaks_tls_when_told_to(dev_server: object) -> None:
    """The dev server speaks plain gRPC: a client told to use TLS fails its handshake there,
    which shows the setting reaches the connection (no TLS server runs here to succeed)."""
    address = dev_server.client.service_client.config.target_host  # type: ignore[attr-defined]
    plain = await connect(Settings(temporal_address=address))
    assert await plain.service_client.check_health()
    with pytest.raises(RuntimeError) as refused:
        await connect(Settings(temporal_address=address, temporal_tls=True), answers_within=10)
    assert "connect" in str(refused.value).lower()


def test_the_core_s_log_lines_go_through_the_process_logging() -> None:
    config = telemetry(None)
    assert config.logging is not None and config.logging.forwarding is not None
    assert config.logging.forwarding.logger is logging.getLogger("temporalio.core")
    assert config.metrics is None
    with_metrics = telemetry("127.0.0.1:9464")
    assert with_metrics.metrics is not None
    assert with_metrics.logging is not None and with_metrics.logging.forwarding is not None


@pytest.mark.parametrize(
    ("field", "content", "problem"),
    [
        ("temporal_tls_ca_file", b"", "ACCORD_TEMPORAL_TLS_CA_FILE: not a PEM certificate"),
        ("temporal_tls_ca_file", b"junk\n", "ACCORD_TEMPORAL_TLS_CA_FILE: not a PEM certificate"),
        ("temporal_tls_cert_file", b"\x00\x01", "ACCORD_TEMPORAL_TLS_CERT_FILE: not a PEM"),
        ("temporal_tls_key_file", b"not a pem\n", "ACCORD_TEMPORAL_TLS_KEY_FILE: not a PEM"),
    ],
)
def test_a_tls_file_that_is_no_pem_is_named_not_left_to_the_sdk(
    field: str, content: bytes, problem: str, tmp_path: Path
) -> None:
    """A junk key or certificate passed the readability check, then failed inside the SDK with
    its own words (PrivateKeyParseError) and could crash the process at exit."""
    cert, key = pem_pair(tmp_path, "worker")
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    values: dict[str, object] = {"temporal_tls_cert_file": cert, "temporal_tls_key_file": key}
    values[field] = bad
    found = Settings.model_validate(values).problems()
    assert len(found) == 1 and found[0].startswith(problem), found


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"temporal_api_key": "   "}, "ACCORD_TEMPORAL_API_KEY: empty"),
        ({"temporal_tls_server_name": "a b"}, "ACCORD_TEMPORAL_TLS_SERVER_NAME: not a host name"),
        ({"temporal_address": ""}, "ACCORD_TEMPORAL_ADDRESS: not host:port"),
        ({"temporal_address": "not an address"}, "ACCORD_TEMPORAL_ADDRESS: not host:port"),
    ],
)
def test_how_to_reach_temporal_is_checked_at_start(values: dict[str, str], problem: str) -> None:
    found = Settings.model_validate(values).problems()
    assert len(found) == 1 and found[0].startswith(problem), found
