"""The alerts and the dashboard compose's monitoring profile loads (issue 19, item 7): rules and
Prometheus' config valid by promtool (Debian's, `make test` installs it), each rule's behaviour
checked by promtool's own rule tests, and every metric an expression names one the stack
exports: Accord's (read off its collectors), the Temporal SDK's (scraped from a real worker in
this test), the server's, the prober's."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from accord.platform.observability import COUNTED_ACTIONS, GAUGES
from accord.platform.settings import REPO_ROOT
from tests.conftest import debian_tool
from tests.processes import free_port

DEPLOY = REPO_ROOT / "deploy"
RULES = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "accord.json").read_text())
FUNCTIONS = {
    "sum", "max", "min", "rate", "increase", "histogram_quantile", "by", "time", "up",
    "le", "on", "count", "avg", "without",
}  # fmt: skip
SERVER_AND_PROBER = {"up", "probe_ssl_earliest_cert_expiry"}


def promtool() -> str:
    return debian_tool("promtool", "prometheus")


def expressions() -> list[str]:
    found = [rule["expr"] for group in RULES["groups"] for rule in group["rules"]]
    found += [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]
    return found


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", without_strings)
    names = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_labels))
    by_clauses = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", without_labels)
    labels = {label.strip() for clause in by_clauses for label in clause.split(",")}
    return names - FUNCTIONS - labels


@activity.defn
async def refuses() -> None:
    raise RuntimeError("refused")


@workflow.defn(sandboxed=False)
class Probe:
    @workflow.run
    async def run(self) -> None:
        # A failed activity and a workflow task: the SDK's counters a rule names appear.
        try:
            await workflow.execute_activity(
                refuses,
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except Exception:
            pass


@workflow.defn(sandboxed=False)
class Stuck:
    """A dispute whose workflow task keeps failing (what AccordWorkflowTaskFailing watches)."""

    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("a bug in workflow code: the task fails, and is tried again")


def sdk_metric_names() -> set[str]:
    """The metrics a real worker's SDK exports, scraped from it."""

    async def scrape() -> str:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            dev_server_extra_args=["--log-level", "error"],
        )
        address = f"127.0.0.1:{free_port()}"
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(address)))
        try:
            client = await Client.connect(
                env.client.service_client.config.target_host, runtime=runtime
            )
            async with Worker(
                client,
                task_queue="probe",
                workflows=[Probe, Stuck],
                activities=[refuses],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                await client.execute_workflow(Probe.run, id="probe", task_queue="probe")
                stuck = await client.start_workflow(Stuck.run, id="stuck", task_queue="probe")
                for _ in range(100):  # its first task's failure is counted within moments
                    text = read(address)
                    if "temporal_workflow_task_execution_failed" in text:
                        break
                    await asyncio.sleep(0.1)
                await stuck.terminate()
                return text
        finally:
            await env.shutdown()

    text = asyncio.run(scrape())
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}


def read(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def accord_metric_names() -> set[str]:
    names = {gauge.name for gauge in GAUGES} | {"accord_events_total"}
    for suffix in ("bucket", "count", "sum"):
        names.add(f"accord_http_request_duration_seconds_{suffix}")
    return names


def test_the_rules_and_the_config_are_valid_for_promtool(tmp_path: Path) -> None:
    tool = promtool()
    rules = subprocess.run(
        [tool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The config names the rules where the container mounts them: checked from a copy laid
    # out the same way, with the prober's target file the container writes at start.
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "alerts.yml").write_text((DEPLOY / "prometheus" / "alerts.yml").read_text())
    (tmp_path / "base_url.yml").write_text('- targets: ["https://disputes.example.net"]\n')
    config = config.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    config = config.replace("/prometheus/base_url.yml", str(tmp_path / "base_url.yml"))
    (tmp_path / "prometheus.yml").write_text(config)
    checked = subprocess.run(
        [tool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alerts_fire_on_what_they_watch(tmp_path: Path) -> None:
    """promtool's rule tests: series fed in, the alerts expected out (and none on a quiet
    stack)."""
    tool = promtool()
    (tmp_path / "alerts.yml").write_text((DEPLOY / "prometheus" / "alerts.yml").read_text())
    cases: dict[str, Any] = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'accord_outbox_messages{state="pending"}', "values": "500x60"},
                    {"series": 'accord_outbox_messages{state="failed"}', "values": "0x10 1x50"},
                    {
                        "series": 'accord_events_total{action="remedy_failed"}',
                        "values": "0x10 1x50",
                    },
                    {"series": 'accord_intake_messages{state="failed"}', "values": "0x60"},
                    {
                        "series": 'temporal_workflow_task_execution_failed{task_queue="q"}',
                        "values": "0+1x60",
                    },
                    {"series": 'up{job="accord-worker",instance="w1"}', "values": "1x60"},
                ],
                "alert_rule_test": [
                    {"eval_time": "45m", "alertname": "AccordOutboxBacklog",
                     "exp_alerts": [{"exp_labels": {"severity": "page"},
                                     "exp_annotations": alert_annotations("AccordOutboxBacklog")}]},
                    {"eval_time": "20m", "alertname": "AccordOutboxFailed",
                     "exp_alerts": [{"exp_labels": {"severity": "ticket"},
                                     "exp_annotations": alert_annotations("AccordOutboxFailed")}]},
                    {"eval_time": "20m", "alertname": "AccordRemedyFailed",
                     "exp_alerts": [{"exp_labels": {"severity": "ticket"},
                                     "exp_annotations": alert_annotations("AccordRemedyFailed")}]},
                    {"eval_time": "40m", "alertname": "AccordWorkflowTaskFailing",
                     "exp_alerts": [{"exp_labels": {"severity": "page"},
                                     "exp_annotations": alert_annotations("AccordWorkflowTaskFailing")}]},
                    {"eval_time": "40m", "alertname": "AccordIntakeFailed", "exp_alerts": []},
                    {"eval_time": "40m", "alertname": "AccordWorkerDown", "exp_alerts": []},
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(cases))
    done = subprocess.run(
        [tool, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def alert_annotations(name: str) -> dict[str, str]:
    [rule] = [r for g in RULES["groups"] for r in g["rules"] if r.get("alert") == name]
    return dict(rule["annotations"])


def test_every_metric_named_is_one_the_stack_exports() -> None:
    exported = accord_metric_names() | sdk_metric_names() | SERVER_AND_PROBER
    named = {name for expr in expressions() for name in metric_names(expr)}
    assert named - exported == set(), sorted(named - exported)
    # The SLA and remedy alerts count actions Accord counts.
    counted = set()
    for expr in expressions():
        for values in re.findall(r'action=~?"([^"]+)"', expr):
            counted |= set(values.split("|"))
    assert counted <= set(COUNTED_ACTIONS), counted - set(COUNTED_ACTIONS)


def test_every_alert_says_what_to_do_and_the_dashboard_reads_the_provisioned_source() -> None:
    guide = (REPO_ROOT / "docs" / "operations.md").read_text()
    for group in RULES["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
            runbook = rule["annotations"]["runbook"]
            if runbook.startswith("docs/operations.md, "):
                heading = runbook.removeprefix("docs/operations.md, ").split(" (")[0]
                assert re.search(rf"^#+ {re.escape(heading)}", guide, re.M), runbook
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
