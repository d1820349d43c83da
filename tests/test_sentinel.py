"""Redis Sentinel: a gateway on `redis+sentinel://` keeps every message it accepted through a
failover of the master under a steady send load, and sends again within seconds, without a restart.

Real processes throughout: one master, one replica and three Sentinels (tests/sentinel_cluster.py),
and `wa-gateway serve` (API + worker, sandbox WhatsApp). The master is killed (SIGKILL) mid-load;
once the Sentinels have promoted the replica, the dead master's server comes back empty as the new
master's replica, as a restarted box would be set up. Until a replica is back, accepting answers
503 (GATEWAY_REDIS_REPLICA_ACKS is 1 with Sentinel): nothing is answered 202 that one dead server
could take away.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import load_settings
from gateway.app import create_app
from scheduler.worker import worker_context
from tests.conftest import ADMIN, ADMIN_KEY, eventually, instance_body, make_settings
from tests.sentinel_cluster import SentinelCluster
from tests.serve_process import ServeProcess, wait_for

NAME = "acme__shop1__sales"
FAST = {lane: {"gap": [0.01, 0.02], "perHour": 100_000, "perDay": 100_000} for lane in ("urgent", "normal", "bulk")}
PACE_SECONDS = 0.03  # one send request at a time, this far apart
LOAD_AFTER_REJOIN = 20  # messages accepted once the old master is a replica again, before the load stops


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    found = SentinelCluster(tmp_path / "redis")
    try:
        found.start()
        yield found
    finally:
        found.stop()


@pytest.fixture
def gateway(tmp_path: Path, cluster: SentinelCluster) -> Iterator[ServeProcess]:
    process = ServeProcess(
        tmp_path / "data",
        "serve",
        GATEWAY_REDIS_URL=cluster.url,
        GATEWAY_ADMIN_KEY=ADMIN_KEY,
        GATEWAY_SECRET_KEY="s" * 32,
        GATEWAY_LANES=json.dumps(FAST),
    )
    process.start()
    yield process
    if process.process is not None:
        process.stop()


def test_sentinel_urls_are_checked_at_start_up() -> None:
    url = "redis+sentinel://127.0.0.1:26379,[::1]:26380,sentinel-3/mymaster/2"
    assert load_settings({"GATEWAY_REDIS_URL": url}).replica_acks() == 1
    assert load_settings({"GATEWAY_REDIS_URL": url, "GATEWAY_REDIS_REPLICA_ACKS": "0"}).replica_acks() == 0
    assert load_settings({"GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0"}).replica_acks() == 0
    for bad, problem in [
        ("redis+sentinel://127.0.0.1:26379", "master service name"),
        ("redis+sentinel://127.0.0.1:port/mymaster", "not host:port"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/zero", "not a number"),
        ("http://127.0.0.1:6379", "must start with"),
    ]:
        with pytest.raises(Exception, match=problem) as refused:
            load_settings({"GATEWAY_REDIS_URL": bad})
        assert "GATEWAY_REDIS_URL" in str(refused.value)


async def test_a_send_that_no_replica_confirmed_answers_503_and_is_not_queued(
    aiohttp_client: Any, redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(redis_url, tmp_path / "data", redis_replica_acks=1)  # the test Redis has no replica
    app = create_app(settings)
    app.cleanup_ctx.append(worker_context(settings))
    client = await aiohttp_client(app)
    created = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    acme = {"apikey": (await created.json())["apiKey"]}
    # Created, not linked: its messages wait, as they do behind a lane's gap.
    created = await client.post("/instance/create", json=instance_body(NAME), headers=acme)
    assert created.status == 201
    send = {"instanceName": NAME, "to": "5491112345678", "text": "hi"}
    response = await client.post("/message/text", json=send, headers=acme)
    assert response.status == 503
    message = (await response.json())["error"]["message"]
    assert "not confirmed by 1 Redis replica(s) within 1000 ms, so it was not queued; send it again" in message
    queue = await client.get(f"/instance/{NAME}/queue", headers=acme)
    assert (await queue.json())["total"] == 0
    stats = await client.get("/admin/stats", headers=ADMIN)
    assert (await stats.json())["messages"]["cancelled"] == 1
    linked = await client.post(f"/sandbox/instance/{NAME}/link", json={}, headers=acme)
    assert linked.status == 200
    # Open, the pump picks a new message during the wait: it is on its way, so the answer is 202.
    second = await client.post("/message/text", json={**send, "text": "second"}, headers=acme)
    assert second.status == 202, await second.text()

    async def sent() -> list[dict[str, str]]:
        return list(await (await client.get(f"/sandbox/instance/{NAME}/sent", headers=acme)).json())

    [only] = await eventually(sent)
    assert only["text"] == "second"  # the first one, taken back, never went out


def test_a_master_failover_under_load_loses_no_accepted_message_and_sending_resumes_by_itself(
    cluster: SentinelCluster, gateway: ServeProcess
) -> None:
    key = gateway.request("POST", "/admin/tenants", {"tenantId": "acme"}, key=ADMIN_KEY)[1]["apiKey"]
    body = {"instanceName": NAME, "webhookUrl": "https://hooks.invalid/wa", "webhookSecret": "s" * 16}
    assert gateway.request("POST", "/instance/create", body, key=key)[0] == 201
    assert gateway.request("POST", f"/sandbox/instance/{NAME}/link", {}, key=key)[0] == 200

    old_master = cluster.master_port
    accepted: dict[str, str] = {}  # message id -> its text
    answers: Counter[int] = Counter()
    started = time.monotonic()
    killed_at = rejoined_at = first_accept_after_kill = None
    after_rejoin = 0
    while after_rejoin < LOAD_AFTER_REJOIN:
        now = time.monotonic()
        assert now - started < 60, f"the failover did not complete: answers so far {dict(answers)}"
        if killed_at is None and len(accepted) >= 30:
            cluster.kill(old_master)
            killed_at, killed_wall = now, time.time()
        elif killed_at is not None and rejoined_at is None and old_master not in cluster.processes:
            new_master = cluster.master()
            if new_master != old_master:  # promoted: the old server comes back as its replica
                cluster.start_server(old_master, "--replicaof", "127.0.0.1", str(new_master))
        elif rejoined_at is None and killed_at is not None and cluster.role(old_master) == "slave":
            rejoined_at = now
        text = f"load {len(answers)}"
        send = {"instanceName": NAME, "to": "5491112345678", "text": text, "lane": "urgent"}
        status, answer = gateway.request("POST", "/message/text", send, key=key)
        answers[status] += 1
        assert status in (202, 503), answer  # refused while Redis fails over, never a 500
        if status == 202:
            accepted[answer["id"]] = text
            if killed_at is not None and first_accept_after_kill is None:
                first_accept_after_kill = time.monotonic() - killed_at
            after_rejoin += rejoined_at is not None
        time.sleep(PACE_SECONDS)

    def settled() -> dict[str, dict] | None:
        records = {i: gateway.request("GET", f"/message/{i}", key=key)[1] for i in accepted}
        return records if all(r and r["status"] in ("sent", "failed") for r in records.values()) else None

    records = wait_for(settled, 60, "every accepted message sent")
    assert [i for i, r in records.items() if r["status"] != "sent"] == []
    delivered = Counter(item["text"] for item in gateway.request("GET", f"/sandbox/instance/{NAME}/sent", key=key)[1])
    assert [text for text in accepted.values() if text not in delivered] == []  # none lost
    sent_after_kill = sorted(
        datetime.fromisoformat(r["sentAt"]).timestamp() - killed_wall
        for r in records.values()
        if datetime.fromisoformat(r["sentAt"]).timestamp() > killed_wall
    )
    assert sent_after_kill and sent_after_kill[0] < 15, sent_after_kill[:3]
    assert first_accept_after_kill is not None and first_accept_after_kill < 20
    # The running gateway's metrics, read after the failover from the new master.
    request = urllib.request.Request(f"{gateway.base}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    [alive] = families["wa_workers_alive"].samples
    assert alive.value == 1
    assert all(sample.value == 0 for sample in families["wa_messages_waiting"].samples)
    print(
        f"\nsentinel failover: {len(accepted)} accepted, answers {dict(answers)}; first send after the kill "
        f"{sent_after_kill[0]:.1f} s, first accept {first_accept_after_kill:.1f} s; "
        f"sent twice (possibly duplicated): {sum(1 for n in delivered.values() if n > 1)}"
    )
