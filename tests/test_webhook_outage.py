"""Webhooks that ride out a receiver's outage (API.md, "Webhooks that ride out an outage"): a real
gateway (API + in-process worker + sandbox WhatsApp) posting to a real local receiver
(tests/receiver.py) that goes down and comes back, with short configured delays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from config import Settings
from core import keys
from scheduler.events import EVENT_NAMES
from tests.conftest import eventually, instance_body, make_settings
from tests.receiver import Receiver
from tests.test_metrics import scrape, value
from tests.test_webhooks import NAME, new_tenant, send_test, started, stats

FAST = {"webhook_retry_delays": (0.05, 0.1, 0.2), "webhook_probe_delays": (0.3, 0.5), "webhook_timeout": 2.0}


@pytest.fixture
def settings(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Settings:
    """Short retries and probes; a test changes any setting with indirect parametrization."""
    return make_settings(redis_url, tmp_path / "data", **{**FAST, **getattr(request, "param", {})})


async def produce(gateway: TestClient, headers: dict[str, str], texts: list[str]) -> None:
    """Inbound messages from a contact, each one a message.received for the webhook."""
    for text in texts:
        inbound = {"from": "5491155554444", "text": text}
        response = await gateway.post(f"/sandbox/instance/{NAME}/inbound", json=inbound, headers=headers)
        assert response.status == 201, await response.text()


def received_texts(receiver: Receiver) -> list[str]:
    """The texts of the message.received deliveries the receiver accepted, in arrival order."""
    return [r.json()["data"]["text"] for r in receiver.accepted if r.headers["x-gateway-event"] == "message.received"]


async def webhook_status(gateway: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await gateway.get(f"/instance/{NAME}/status", headers=headers)
    assert response.status == 200
    return dict((await response.json())["webhook"])


async def reaches(gateway: TestClient, headers: dict[str, str], state: str, timeout: float = 20) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        found = await webhook_status(gateway, headers)
        return found if found["state"] == state else None

    return dict(await eventually(reached, timeout=timeout))


@pytest.mark.parametrize("settings", [{"rate_limit": 10_000}], indirect=True, ids=["fast"])
async def test_an_outage_longer_than_the_retries_loses_nothing_and_the_backlog_arrives_in_order(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, redis_url: str
) -> None:
    assert (await webhook_status(gateway, acme))["state"] == "ok"
    receiver.go_down(503, "x" * 2000)
    texts = [f"event {i}" for i in range(300)]
    await produce(gateway, acme, texts[:1])
    down = await reaches(gateway, acme, "down")  # the first one spent its retries
    await produce(gateway, acme, texts[1:])

    async def all_held() -> dict[str, Any] | None:
        found = await webhook_status(gateway, acme)
        return found if found["pending"] == 300 else None

    held = await eventually(all_held, timeout=30)
    assert held["state"] == "down" and held["since"] == down["since"]
    assert held["oldestPendingAt"] is not None
    # Only the head is tried while down: the others wait untouched.
    tried = {r.delivery_id for r in receiver.requests if r.headers["x-gateway-event"] == "message.received"}
    assert len(tried) == 1
    page = await (await gateway.get(f"/instance/{NAME}/webhooks/deliveries?limit=1", headers=acme)).json()
    [newest] = page["deliveries"]
    assert newest["status"] == "pending"
    assert (await stats(redis_url)).get("deadLettered", "0") == "0"
    metrics = await scrape(gateway)
    assert value(metrics, "wa_webhook_endpoints", state="down") == 1
    assert value(metrics, "wa_webhook_endpoints", state="ok") == 0
    assert value(metrics, "wa_webhook_oldest_pending_seconds") > 0

    receiver.come_back()
    await eventually(lambda: len(received_texts(receiver)) >= 300, timeout=60)
    assert received_texts(receiver) == texts  # each once, in order
    back = await reaches(gateway, acme, "ok")
    assert back["pending"] == 0 and back["oldestPendingAt"] is None
    metrics = await scrape(gateway)
    assert value(metrics, "wa_webhook_endpoints", state="ok") == 1
    assert value(metrics, "wa_webhook_oldest_pending_seconds") == 0
    assert (await stats(redis_url)).get("deadLettered", "0") == "0"

    head = receiver.accepted[1].delivery_id
    page = await (await gateway.get(f"/instance/{NAME}/webhooks/deliveries?limit=100", headers=acme)).json()
    [first] = [d for d in page["deliveries"] if d["id"] == head] or [None]
    if first is not None:  # still among the latest listed: it kept the receiver's answers
        assert first["lastStatusCode"] == 204 and first["attempts"][0]["statusCode"] == 503


@pytest.mark.parametrize("settings", [{"webhook_hold": 1.0}], indirect=True, ids=["hold=1s"])
async def test_down_past_the_hold_is_disabled_then_enabled_and_one_replay_brings_every_dead_letter(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, redis_url: str
) -> None:
    receiver.go_down(500, "y" * 2000)
    texts = [f"event {i}" for i in range(20)]
    await produce(gateway, acme, texts[:15])
    await reaches(gateway, acme, "disabled")

    async def dead_lettered(count: int) -> bool:
        return (await stats(redis_url)).get("deadLettered") == str(count)

    await eventually(lambda: dead_lettered(15), timeout=20)
    await produce(gateway, acme, texts[15:])  # disabled: dead-lettered at once, not tried
    await eventually(lambda: dead_lettered(20), timeout=20)
    assert (await webhook_status(gateway, acme))["pending"] == 0
    assert received_texts(receiver) == []
    page = await (await gateway.get(f"/instance/{NAME}/webhooks/deliveries?limit=100", headers=acme)).json()
    tried = [d for d in page["deliveries"] if d["attempts"] and d["event"] == "message.received"]
    assert tried and all(d["lastStatusCode"] == 500 and d["lastResponse"] == "y" * 1024 for d in tried)

    receiver.come_back()
    enabled = await gateway.patch(f"/instance/{NAME}/webhook", json={"enabled": True}, headers=acme)
    assert enabled.status == 200 and (await enabled.json())["webhook"]["state"] == "ok"
    replay = await gateway.post(f"/instance/{NAME}/webhooks/replay", json={"status": "dead_lettered"}, headers=acme)
    assert replay.status == 202 and await replay.json() == {"replayed": 20}
    await eventually(lambda: len(received_texts(receiver)) >= 20, timeout=30)
    assert received_texts(receiver) == texts
    again = await gateway.post(f"/instance/{NAME}/webhooks/replay", json={"status": "dead_lettered"}, headers=acme)
    assert await again.json() == {"replayed": 0}


async def test_replay_takes_only_the_dead_letters_of_its_time_range(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    assert (await gateway.patch(f"/instance/{NAME}/webhook", json={"enabled": False}, headers=acme)).status == 200
    await produce(gateway, acme, ["before"])
    page = await (await gateway.get(f"/instance/{NAME}/webhooks/deliveries?limit=1", headers=acme)).json()
    [before] = page["deliveries"]
    assert before["status"] == "dead" and before["attempts"] == []
    await produce(gateway, acme, ["after"])
    assert (await gateway.patch(f"/instance/{NAME}/webhook", json={"enabled": True}, headers=acme)).status == 200

    body = {"status": "dead_lettered", "since": before["createdAt"], "until": before["createdAt"]}
    replay = await gateway.post(f"/instance/{NAME}/webhooks/replay", json=body, headers=acme)
    assert await replay.json() == {"replayed": 1}
    await eventually(lambda: received_texts(receiver) == ["before"])
    bad = await gateway.post(f"/instance/{NAME}/webhooks/replay", json={"status": "delivered"}, headers=acme)
    assert bad.status == 400 and (await bad.json())["error"]["issues"][0]["path"] == ["status"]


async def test_the_events_filter_drops_what_it_should_and_refuses_unknown_names(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    only = await gateway.patch(f"/instance/{NAME}/webhook", json={"events": ["message.received"]}, headers=acme)
    assert only.status == 200 and (await only.json())["events"] == ["message.received"]
    assert (await gateway.post(f"/instance/{NAME}/webhooks/test", headers=acme)).status == 202
    await produce(gateway, acme, ["wanted"])
    await eventually(lambda: received_texts(receiver) == ["wanted"])
    assert receiver.of("webhook.test") == []

    every = await gateway.patch(f"/instance/{NAME}/webhook", json={"events": ["*"]}, headers=acme)
    assert (await every.json())["events"] == ["*"]
    assert (await gateway.post(f"/instance/{NAME}/webhooks/test", headers=acme)).status == 202
    await eventually(lambda: len(receiver.of("webhook.test")) == 1)

    bad = await gateway.patch(f"/instance/{NAME}/webhook", json={"events": ["message.recieved"]}, headers=acme)
    assert bad.status == 400
    [issue] = (await bad.json())["error"]["issues"]
    assert issue["path"] == ["events"] and "message.recieved" in issue["message"]


# No probe during the test (one in flight would make the second-oldest the one to go): the
# PATCH below tries the head at once instead.
@pytest.mark.parametrize(
    "settings", [{"webhook_backlog": 5, "webhook_probe_delays": (60,)}], indirect=True, ids=["backlog=5"]
)
async def test_past_the_backlog_bound_the_oldest_held_delivery_is_dead_lettered(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, redis_url: str
) -> None:
    receiver.go_down()
    await produce(gateway, acme, ["event 0"])
    await reaches(gateway, acme, "down")
    await produce(gateway, acme, [f"event {i}" for i in range(1, 8)])

    async def bounded() -> bool:  # the sandbox's events reach the outbox in the worker, just after the 201
        held = await webhook_status(gateway, acme)
        return held["pending"] == 5 and (await stats(redis_url)).get("deadLettered") == "3"

    await eventually(bounded, timeout=20)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        for delivery_id in await redis.lrange(keys.outbox(NAME), 0, -1):
            assert await redis.ttl(keys.webhook_delivery(NAME, delivery_id)) > 0  # every record expires
    finally:
        await redis.aclose()
    receiver.come_back()
    assert (await gateway.patch(f"/instance/{NAME}/webhook", json={"enabled": True}, headers=acme)).status == 200
    await eventually(lambda: received_texts(receiver) == [f"event {i}" for i in range(3, 8)], timeout=20)


async def test_a_restart_in_the_middle_of_an_outage_keeps_what_is_held_and_the_state(
    redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    settings = make_settings(redis_url, tmp_path / "data", **FAST)
    receiver.go_down()
    first = await started(settings)
    try:
        acme = await new_tenant(first)
        created = await first.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
        assert created.status == 201
        sent = [await send_test(first, acme) for _ in range(10)]
        down = await reaches(first, acme, "down")

        async def all_held() -> bool:
            return (await webhook_status(first, acme))["pending"] == 10

        await eventually(all_held, timeout=20)
    finally:
        await first.close()

    second = await started(settings)
    try:
        held = await webhook_status(second, acme)
        assert held["state"] == "down" and held["since"] == down["since"] and held["pending"] == 10
        receiver.come_back()
        await eventually(lambda: len(receiver.accepted) >= 10, timeout=30)
        assert [r.delivery_id for r in receiver.accepted] == sent
        assert (await reaches(second, acme, "ok"))["pending"] == 0
    finally:
        await second.close()


def disconnections(receiver: Receiver) -> list[dict[str, Any]]:
    return [
        dict(r.json()["data"]) for r in receiver.accepted if r.headers["x-gateway-event"] == "instance.disconnected"
    ]


async def test_a_ban_fires_instance_disconnected_once_however_many_times_it_is_refused_meanwhile(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    assert (await gateway.post(f"/sandbox/instance/{NAME}/ban", json={"seconds": 60}, headers=acme)).status == 200
    await eventually(lambda: len(receiver.of("instance.banned")) == 1)
    assert disconnections(receiver) == [
        {"reason": "banned", "detail": disconnections(receiver)[0]["detail"], "loggedOut": False}
    ]
    events = [r.headers["x-gateway-event"] for r in receiver.accepted]
    assert events.index("instance.disconnected") < events.index("instance.banned")
    # Banned again while closed (a login refused with the same ban): no second disconnection.
    assert (await gateway.post(f"/sandbox/instance/{NAME}/ban", json={"seconds": 90}, headers=acme)).status == 200
    await eventually(lambda: len(receiver.of("instance.banned")) == 2)
    assert len(disconnections(receiver)) == 1
    assert (await gateway.post(f"/sandbox/instance/{NAME}/unlink", headers=acme)).status == 200
    assert (await gateway.post(f"/instance/{NAME}/webhooks/test", headers=acme)).status == 202
    await eventually(lambda: len(receiver.of("webhook.test")) == 1)
    assert len(disconnections(receiver)) == 1  # logging out a closed instance: it was not open


async def test_deleting_an_open_instance_publishes_instance_disconnected_with_reason_deleted(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, redis_url: str
) -> None:
    assert (await gateway.delete(f"/instance/{NAME}", headers=acme)).status == 204
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = await redis.xrange(keys.tenant_events("acme"))
    finally:
        await redis.aclose()
    envelopes = [json.loads(fields["envelope"]) for _, fields in entries]
    [gone] = [e for e in envelopes if e["event"] == "instance.disconnected"]
    assert gone["data"]["reason"] == "deleted"


async def test_the_events_filter_takes_exactly_the_documented_events(client: TestClient) -> None:
    documented = set((await (await client.get("/openapi.json")).json())["webhooks"])
    assert documented == set(EVENT_NAMES)
