"""GET /metrics on a running gateway (API + worker + sandbox WhatsApp), read with prometheus_client's
own text parser, against what the test made happen."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from tests.conftest import ADMIN, ADMIN_KEY, eventually, make_settings, open_instance
from tests.receiver import Receiver

NAME = "acme__shop1__sales"
LANES = {
    "urgent": {"gap": [0.01, 0.02]},
    "normal": {"gap": [0.01, 0.02], "perHour": 2},  # two sends spend the normal lane's hourly quota
    "bulk": {"gap": [0.01, 0.02]},
}
FAMILIES = {
    "wa_instances": "gauge",
    "wa_messages_waiting": "gauge",
    "wa_messages_accepted": "counter",
    "wa_sends": "counter",
    "wa_send_lateness_seconds": "histogram",
    "wa_send_accept_to_sent_seconds": "histogram",
    "wa_send_typing_seconds": "histogram",
    "wa_messages_unsent": "counter",
    "wa_lane_quota_saturated_instances": "gauge",
    "wa_lane_quota_usage_max_ratio": "gauge",
    "wa_webhook_deliveries": "counter",
    "wa_webhook_attempts_failed": "counter",
    "wa_webhook_delivery_seconds": "histogram",
    "wa_webhook_outbox_depth": "gauge",
    "wa_webhook_endpoints": "gauge",
    "wa_webhook_oldest_pending_seconds": "gauge",
    "wa_worker_up": "gauge",
    "wa_worker_heartbeat_age_seconds": "gauge",
    "wa_worker_sessions": "gauge",
    "wa_workers_alive": "gauge",
    "wa_connection_events": "counter",
    "wa_http_requests": "counter",
    "wa_build_info": "gauge",
}


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", lanes=json.dumps(LANES))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    await found.close()


async def scrape(client: TestClient, headers: dict[str, str] | None = None) -> dict[str, Metric]:
    response = await client.get("/metrics", headers=headers or {"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(await response.text())}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    family = next(f for f in families.values() if sample.startswith(f.name))
    [found] = [s.value for s in family.samples if s.name == sample and s.labels == labels]
    return found


async def test_metrics_count_what_happened_across_the_gateway(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver
) -> None:
    await open_instance(gateway, acme, NAME, webhookUrl=receiver.url())
    failing = await gateway.post(f"/sandbox/instance/{NAME}/fail-next", json={"error": "blocked"}, headers=acme)
    assert failing.status == 200
    ids = []
    for lane in ("urgent", "urgent", "urgent", "normal", "normal"):
        body = {"instanceName": NAME, "to": "5491112345678", "text": "hi", "lane": lane}
        response = await gateway.post("/message/text", json=body, headers=acme)
        assert response.status == 202
        ids.append((await response.json())["id"])

    async def settled() -> bool:
        statuses = [(await (await gateway.get(f"/message/{i}", headers=acme)).json())["status"] for i in ids]
        return all(status in ("sent", "failed") for status in statuses)

    await eventually(settled)
    # instance.connected and one message.sent / message.failed per message, all delivered.
    families = await eventually(lambda: _delivered(gateway, 6))

    assert {name: family.type for name, family in families.items()} == FAMILIES
    assert value(families, "wa_instances", state="open") == 1
    assert value(families, "wa_instances", state="connecting") == 0
    assert all(value(families, "wa_messages_waiting", lane=lane) == 0 for lane in ("urgent", "normal", "bulk"))
    assert value(families, "wa_messages_accepted_total") == 5
    # The first send (urgent goes first) failed as the sandbox was told to; the others went out.
    assert value(families, "wa_sends_total", lane="urgent", outcome="failed") == 1
    assert value(families, "wa_sends_total", lane="urgent", outcome="sent") == 2
    assert value(families, "wa_sends_total", lane="normal", outcome="sent") == 2
    assert value(families, "wa_sends_total", lane="bulk", outcome="sent") == 0
    for histogram in ("wa_send_lateness_seconds", "wa_send_accept_to_sent_seconds"):
        assert value(families, f"{histogram}_count", lane="urgent") == 2
        assert value(families, f"{histogram}_bucket", lane="urgent", le="+Inf") == 2
        assert value(families, f"{histogram}_bucket", lane="urgent", le="0.001") <= 2
        assert value(families, f"{histogram}_count", lane="bulk") == 0
    # Sent within seconds of being accepted, in a test whose gaps are tens of milliseconds.
    assert value(families, "wa_send_accept_to_sent_seconds_bucket", lane="normal", le="8.192") == 2
    assert 0 < value(families, "wa_send_accept_to_sent_seconds_sum", lane="normal") < 10
    # The failed send gave its quota back: two urgent sends of 150 an hour; normal is spent.
    assert value(families, "wa_lane_quota_usage_max_ratio", lane="urgent", window="hour") == pytest.approx(2 / 150)
    assert value(families, "wa_lane_quota_usage_max_ratio", lane="normal", window="hour") == 1
    assert value(families, "wa_lane_quota_saturated_instances", lane="normal", window="hour") == 1
    assert value(families, "wa_lane_quota_saturated_instances", lane="urgent", window="day") == 0
    assert value(families, "wa_webhook_deliveries_total", outcome="dead_lettered") == 0
    assert value(families, "wa_webhook_attempts_failed_total") == 0
    assert value(families, "wa_webhook_delivery_seconds_count") == 6
    assert value(families, "wa_webhook_outbox_depth") == 0
    assert value(families, "wa_worker_up", worker="test-worker") == 1
    assert value(families, "wa_worker_sessions", worker="test-worker") == 1
    assert value(families, "wa_worker_heartbeat_age_seconds", worker="test-worker") < 10
    assert value(families, "wa_workers_alive") == 1


async def _delivered(gateway: TestClient, count: int) -> dict[str, Metric] | None:
    families = await scrape(gateway)
    return families if value(families, "wa_webhook_deliveries_total", outcome="delivered") == count else None


async def test_metrics_take_the_admin_key_as_a_header_or_a_bearer_token_and_nothing_else(
    client: TestClient, tenant_key: str
) -> None:
    assert (await client.get("/metrics", headers=ADMIN)).status == 200
    assert (await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})).status == 200
    missing = await client.get("/metrics")
    assert missing.status == 401
    assert "Bearer" in (await missing.json())["error"]["message"]
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong-key-0123456789"})).status == 401
    assert (await client.get(f"/metrics?apikey={ADMIN_KEY}")).status == 401  # keys in URLs only for /events
    forbidden = await client.get("/metrics", headers={"apikey": tenant_key})
    assert forbidden.status == 403
    assert "/metrics" in (await forbidden.json())["error"]["message"]
