"""What docker-compose.yml sets up, checked without a container engine: healthchecks and waits,
ports on 127.0.0.1 only, and monitoring that reads what the gateway really serves (the Grafana
dashboard's and the alert rules' queries, PromQL checked by promtool)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN, eventually
from tests.test_metrics import scrape

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "wa-gateway.json").read_text())
ALERTS = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]


def alert_queries() -> list[str]:
    return [rule["expr"] for group in ALERTS["groups"] for rule in group["rules"]]


def test_every_service_is_healthchecked_and_waited_for() -> None:
    services = COMPOSE["services"]
    assert all("healthcheck" in service for service in services.values())
    for name, service in services.items():
        for needed, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, needed)
    assert services["gateway"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert services["gateway"]["environment"]["GATEWAY_PUBLIC_URL"].startswith("${GATEWAY_PUBLIC_URL")


def test_ports_are_published_on_the_loopback_only() -> None:
    published = [port for service in COMPOSE["services"].values() for port in service.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published)


def test_compose_mounts_what_prometheus_and_grafana_read() -> None:
    services = COMPOSE["services"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    for volume in services["grafana"]["volumes"]:
        source = volume.split(":")[0]
        assert not source.startswith("./") or (ROOT / source).is_dir(), volume
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/wa-gateway.yml").read_text())
    assert (
        "./deploy/grafana/dashboards:" + provider["providers"][0]["options"]["path"] + ":ro"
        in (services["grafana"]["volumes"])
    )


async def test_the_dashboard_and_the_alerts_ask_only_for_what_the_gateway_serves(gateway: TestClient) -> None:
    assert (await gateway.get("/health")).status == 200  # so wa_http_requests_total has a sample
    await eventually(lambda: _worker_seen(gateway))
    served = {sample.name for family in (await scrape(gateway, ADMIN)).values() for sample in family.samples}
    served |= {"up"}  # Prometheus' own, per scrape target
    queries = dashboard_queries() + alert_queries()
    asked = {name for query in queries for name in re.findall(r"\b[a-z]+_[a-z_]+\b(?=[{\[ )])", query)}
    metrics = {name for name in asked if name.startswith("wa_") or name == "up"}
    assert metrics and metrics <= served, metrics - served
    assert {"wa_send_lateness_seconds_bucket", "wa_connection_events_total", "wa_http_requests_total"} <= metrics


async def _worker_seen(gateway: TestClient) -> bool:
    return bool((await scrape(gateway, ADMIN))["wa_worker_up"].samples)


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool (Debian's prometheus package, which make install installs) is not on PATH")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": query} for i, query in enumerate(dashboard_queries())
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
