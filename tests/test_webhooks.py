"""Webhooks end to end: a real gateway (API + in-process worker + sandbox WhatsApp) posting to a
real local receiver (tests/receiver.py) over loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from benchmarks.roundtrips import NOT_COUNTED, RoundTrips
from config import Settings, SettingsError, load_settings
from core import keys
from core.clock import redis_now_ms
from core.crypto import SecretBox
from core.instances import InstanceName, Instances
from core.redis_client import connect
from gateway.app import create_app
from scheduler.drivers.base import Connected, MessageReceived
from scheduler.worker import GatewayWorker, worker_context
from tests.conftest import ADMIN, eventually, instance_body, make_settings
from tests.receiver import Receiver
from webhooks import delivery as delivering
from webhooks import verify_signature
from webhooks.outbox import STAT_FIELDS, Attempt, Limits, LockLost, Outbox, Settled, Take

NAME = "acme__shop1__sales"
SECRET = str(instance_body()["webhookSecret"])
DELAYS = (0.05, 0.1, 0.2)
PUBLIC_URL = "https://93.184.216.34/hook"  # a literal public address: no DNS needed to admit it


@pytest.fixture
def settings(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Settings:
    """Fast retries; a test changes any setting with `@pytest.mark.parametrize("settings", [{...}], indirect=True)`."""
    overrides = getattr(request, "param", {})
    return make_settings(
        redis_url, tmp_path / "data", **{"webhook_retry_delays": DELAYS, "webhook_timeout": 2.0, **overrides}
    )


async def started(app_settings: Settings, worker_settings: Settings | None = None) -> TestClient:
    """A gateway (API + worker) on a real port; the caller closes it, which stops the worker too."""
    app = create_app(app_settings)
    app.cleanup_ctx.append(worker_context(worker_settings or app_settings))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def new_tenant(client: TestClient, tenant_id: str = "acme") -> dict[str, str]:
    response = await client.post("/admin/tenants", json={"tenantId": tenant_id}, headers=ADMIN)
    assert response.status == 201
    return {"apikey": (await response.json())["apiKey"]}


async def send_test(client: TestClient, headers: dict[str, str], name: str = NAME) -> str:
    response = await client.post(f"/instance/{name}/webhooks/test", headers=headers)
    assert response.status == 202, await response.text()
    body = await response.json()
    assert body["event"] == "webhook.test" and body["status"] == "pending"
    return str(body["deliveryId"])


async def delivery(client: TestClient, headers: dict[str, str], delivery_id: str) -> dict[str, Any]:
    page = await (await client.get(f"/instance/{NAME}/webhooks/deliveries?limit=100", headers=headers)).json()
    [found] = [d for d in page["deliveries"] if d["id"] == delivery_id]
    return dict(found)


async def settled(client: TestClient, headers: dict[str, str], delivery_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        found = await delivery(client, headers, delivery_id)
        return found if found["status"] == status else None

    return dict(await eventually(reached, timeout=5))


async def stats(redis_url: str) -> dict[str, str]:
    """The delivery counters (the hash also holds the latency histogram that /metrics shows)."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        counts = await redis.hgetall(keys.WEBHOOK_STATS)
        return {field: count for field, count in counts.items() if field in STAT_FIELDS}
    finally:
        await redis.aclose()


def test_verify_signature_accepts_only_the_right_secret_and_body() -> None:
    body = b'{"event":"webhook.test"}'
    good = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert verify_signature(body, good, SECRET)
    assert verify_signature(body, good.upper(), SECRET)
    assert not verify_signature(body, good, "another-secret-0123456789")
    assert not verify_signature(body + b" ", good, SECRET)
    assert not verify_signature(body, "6f0c1a2b", SECRET)
    assert not verify_signature(body, "é" * 64, SECRET)


async def test_webhook_is_the_envelope_posted_as_json_and_signed_with_the_instance_secret(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    [request] = receiver.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["x-gateway-event"] == "instance.connected"
    assert request.headers["x-gateway-delivery"].startswith("evt_")
    assert abs(int(request.headers["x-gateway-timestamp"]) - time.time()) < 10
    assert verify_signature(request.body, request.headers["x-gateway-signature"], SECRET)
    assert not verify_signature(request.body, request.headers["x-gateway-signature"], "another-secret-0123456789")
    assert not verify_signature(request.body.replace(b"5491100000000", b"5491100000001"),
                                request.headers["x-gateway-signature"], SECRET)  # fmt: skip
    envelope = request.json()
    assert set(envelope) == {"event", "instanceName", "data", "timestamp"}
    assert envelope["event"] == "instance.connected"
    assert envelope["instanceName"] == NAME
    assert envelope["data"] == {"phoneNumber": "5491100000000"}
    assert abs(datetime.fromisoformat(envelope["timestamp"]) - datetime.now(UTC)).total_seconds() < 10


async def test_standard_webhooks_library_verifies_each_delivery_as_a_receiver_would(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    inbound = {"from": "5491155554444", "pushName": "Ana", "messageType": "conversation", "text": "hola"}
    assert (await gateway.post(f"/sandbox/instance/{NAME}/inbound", json=inbound, headers=acme)).status == 201
    # The library takes the secret base64-encoded; we sign with its raw bytes.
    verifier = standardwebhooks.Webhook(base64.b64encode(SECRET.encode()).decode())
    for request in await receiver.wait_for(2):
        headers = dict(request.headers)
        assert headers["webhook-id"] == headers["x-gateway-delivery"]
        assert headers["webhook-timestamp"] == headers["x-gateway-timestamp"]
        assert verifier.verify(request.body, headers) == request.json()
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            verifier.verify(request.body.replace(b"acme", b"acne"), headers)
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            other = standardwebhooks.Webhook(base64.b64encode(b"another-secret-0123456789").decode())
            other.verify(request.body, headers)
        # A replay: the same delivery presented ten minutes later is refused on its timestamp.
        stale = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 600)}
        with pytest.raises(standardwebhooks.WebhookVerificationError, match="too old"):
            verifier.verify(request.body, stale)


async def test_link_and_unlink_fire_instance_connected_then_disconnected(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    assert (await gateway.post(f"/sandbox/instance/{NAME}/unlink", headers=acme)).status == 200
    connected, disconnected = await receiver.wait_for(2)
    assert connected.json()["data"] == {"phoneNumber": "5491100000000"}
    assert disconnected.headers["x-gateway-event"] == "instance.disconnected"
    assert disconnected.json()["data"] == {"reason": "logged_out", "detail": "logged_out", "loggedOut": True}


async def test_text_beyond_ascii_arrives_as_sent_in_utf8_and_signed_over_those_bytes(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    text = 'مرحبا 😀 "quoted" \\ back\\slash </script> \u2028 ñ'
    inbound = {"from": "5491155554444", "pushName": "Añá 🙂", "messageType": "conversation", "text": text}
    assert (await gateway.post(f"/sandbox/instance/{NAME}/inbound", json=inbound, headers=acme)).status == 201
    _, request = await receiver.wait_for(2)
    assert text.encode()[:10] in request.body  # UTF-8 as it is, not \u escapes
    assert verify_signature(request.body, request.headers["x-gateway-signature"], SECRET)
    verifier = standardwebhooks.Webhook(base64.b64encode(SECRET.encode()).decode())
    assert verifier.verify(request.body, dict(request.headers))["data"]["text"] == text
    assert (request.json()["data"]["text"], request.json()["data"]["pushName"]) == (text, "Añá 🙂")


@pytest.mark.parametrize(
    "message_type", ["conversation", "imageMessage", "documentMessage", "audioMessage", "videoMessage"]
)
async def test_message_received_carries_every_field_and_null_text_for_media(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, message_type: str
) -> None:
    inbound = {"from": "5491155554444", "pushName": "Ana", "messageType": message_type, "text": "hola"}
    response = await gateway.post(f"/sandbox/instance/{NAME}/inbound", json=inbound, headers=acme)
    assert response.status == 201
    message_id = (await response.json())["messageId"]
    _, request = await receiver.wait_for(2)
    envelope = request.json()
    assert envelope["event"] == "message.received" and envelope["instanceName"] == NAME
    data = envelope["data"]
    assert {"from", "pushName", "messageType", "text", "messageId", "timestamp"} <= set(data)  # API.md's fixed part
    assert data["from"] == "5491155554444"
    assert data["pushName"] == "Ana"
    assert data["messageType"] == message_type
    assert data["text"] == ("hola" if message_type == "conversation" else None)
    assert data["messageId"] == message_id
    assert abs(datetime.fromisoformat(data["timestamp"]) - datetime.now(UTC)).total_seconds() < 10


@pytest.mark.parametrize("settings", [{"webhook_hold": 0.001}], indirect=True, ids=["hold=1ms"])
async def test_failed_delivery_is_retried_on_the_schedule_then_dead_lettered_once_disabled(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, redis_url: str
) -> None:
    receiver.fail_next(5, status=500)
    delivery_id = await send_test(gateway, acme)
    dead = await settled(gateway, acme, delivery_id, "dead")

    # The seed's schedule, then the endpoint is down; its first probe comes when the hold ends.
    tries = receiver.of("webhook.test")
    assert [r.delivery_id for r in tries] == [delivery_id] * 5
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(tries)]
    for gap, delay in zip(gaps, DELAYS, strict=False):
        assert delay <= gap < delay + 0.5, (gaps, DELAYS)
    assert len({r.body for r in tries}) == 1  # serialized once, sent as is every time

    assert dead["event"] == "webhook.test" and dead["tries"] == 5
    assert dead["deliveredAt"] is None and dead["nextAttemptAt"] is None
    assert [a["statusCode"] for a in dead["attempts"]] == [500] * 5
    assert dead["lastStatusCode"] == 500
    assert all(a["durationMs"] >= 0 and a["at"] for a in dead["attempts"])
    assert "body" not in dead
    assert await stats(redis_url) == {"delivered": "1", "failed": "5", "deadLettered": "1"}
    status = await (await gateway.get(f"/instance/{NAME}/status", headers=acme)).json()
    assert status["webhook"]["state"] == "disabled"


@pytest.mark.parametrize("settings", [{"webhook_hold": 0.001}], indirect=True, ids=["hold=1ms"])
async def test_replaying_a_dead_letter_delivers_it_with_the_same_delivery_id(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    receiver.fail_next(5)
    delivery_id = await send_test(gateway, acme)
    await settled(gateway, acme, delivery_id, "dead")
    assert (await gateway.patch(f"/instance/{NAME}/webhook", json={"enabled": True}, headers=acme)).status == 200

    response = await gateway.post(f"/instance/{NAME}/webhooks/deliveries/{delivery_id}/replay", headers=acme)
    assert response.status == 202
    assert await response.json() == {"deliveryId": delivery_id, "event": "webhook.test", "status": "pending"}
    delivered = await settled(gateway, acme, delivery_id, "delivered")
    assert [a["statusCode"] for a in delivered["attempts"]] == [500, 500, 500, 500, 500, 204]
    assert delivered["tries"] == 1 and delivered["deliveredAt"] == delivered["attempts"][-1]["at"]
    assert [r.delivery_id for r in receiver.of("webhook.test")] == [delivery_id] * 6


async def test_replay_is_refused_while_queued_and_unknown_ids_are_404(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    receiver.hang_next(1)
    delivery_id = await send_test(gateway, acme)
    await receiver.wait_for(2)
    queued = await gateway.post(f"/instance/{NAME}/webhooks/deliveries/{delivery_id}/replay", headers=acme)
    assert queued.status == 409
    assert (await queued.json())["error"]["code"] == "invalid_state"
    unknown = await gateway.post(f"/instance/{NAME}/webhooks/deliveries/evt_nothing/replay", headers=acme)
    assert unknown.status == 404


async def test_events_of_an_instance_arrive_in_order_while_the_receiver_fails_then_recovers(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    receiver.fail_next(2, status=503)
    sent = []
    for text in ("first", "second", "third"):
        response = await gateway.post(
            f"/sandbox/instance/{NAME}/inbound", json={"from": "5491155554444", "text": text}, headers=acme
        )
        sent.append((await response.json())["messageId"])
    await receiver.wait_for(1 + 5)
    arrived = receiver.of("message.received")
    assert [r.json()["data"]["text"] for r in arrived] == ["first", "first", "first", "second", "third"]
    assert [r.json()["data"]["messageId"] for r in arrived[2:]] == sent


@pytest.mark.parametrize("settings", [{"webhook_timeout": 0.3}], indirect=True, ids=["timeout=0.3s"])
async def test_hanging_receiver_is_cut_off_by_the_timeout_and_retried(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    receiver.hang_next(1)
    delivery_id = await send_test(gateway, acme)
    delivered = await settled(gateway, acme, delivery_id, "delivered")
    cut, answered = delivered["attempts"]
    assert cut["statusCode"] is None and cut["error"] == "no answer within 0.3 s"
    assert 300 <= cut["durationMs"] < 1500
    assert answered["statusCode"] == 204
    assert [r.delivery_id for r in receiver.of("webhook.test")] == [delivery_id] * 2


async def test_pending_retry_is_delivered_after_a_full_gateway_restart(
    redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    settings = make_settings(redis_url, tmp_path / "data", webhook_retry_delays=(1.0,))
    first = await started(settings)
    try:
        acme = await new_tenant(first)
        created = await first.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
        assert created.status == 201
        receiver.fail_next(1)
        delivery_id = await send_test(first, acme)
        await settled(first, acme, delivery_id, "retrying")
    finally:
        await first.close()
    restarted_at = time.monotonic()
    assert len(receiver.requests) == 1

    second = await started(settings)
    try:
        _, retry = await receiver.wait_for(2)
        assert retry.delivery_id == delivery_id and retry.at > restarted_at
        delivered = await settled(second, acme, delivery_id, "delivered")
        assert [a["statusCode"] for a in delivered["attempts"]] == [500, 204]
    finally:
        await second.close()


async def test_message_redelivered_by_whatsapp_fires_one_webhook_and_own_messages_none(
    client: TestClient, tenant_key: str, worker: GatewayWorker, receiver: Receiver
) -> None:
    acme = {"apikey": tenant_key}
    created = await client.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
    assert created.status == 201
    message = MessageReceived(
        message_id="3AREDELIVERED0001", sender="5491155554444", push_name="Ana", message_type="conversation",
        text="hola", timestamp=datetime.now(UTC),
    )  # fmt: skip
    own = MessageReceived(
        message_id="3AOWNMESSAGE00001", sender="5491100000000", push_name=None, message_type="conversation",
        text="sent from the phone", timestamp=datetime.now(UTC), from_me=True,
    )  # fmt: skip
    for event in (Connected(phone_number="5491100000000"), message, own, message):
        await worker.host.on_event(NAME, event)
    marker = await send_test(client, acme)  # events arrive in order: once it is in, so is the rest

    await eventually(lambda: any(r.delivery_id == marker for r in receiver.requests))
    [received] = receiver.of("message.received")
    assert received.json()["data"]["messageId"] == "3AREDELIVERED0001"


@pytest.mark.parametrize("settings", [{"allow_private_urls": False}], indirect=True, ids=["guard on"])
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "http://localhost:8080/hook", "http://10.1.2.3/hook", "http://169.254.169.254/x",
     "http://[::1]/hook", "http://192.168.0.10/hook"],
)  # fmt: skip
async def test_private_webhook_url_is_refused_at_create_with_the_guard_on(
    gateway: TestClient, acme: dict[str, str], url: str
) -> None:
    response = await gateway.post("/instance/create", json=instance_body(webhookUrl=url), headers=acme)
    assert response.status == 400
    [issue] = (await response.json())["error"]["issues"]
    assert issue["path"] == ["webhookUrl"] and issue["message"].startswith("not allowed:")
    assert (await gateway.get(f"/instance/{NAME}/status", headers=acme)).status == 404


@pytest.mark.parametrize("settings", [{"allow_private_urls": False}], indirect=True, ids=["guard on"])
async def test_patch_to_a_private_webhook_url_is_refused_with_the_guard_on(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    created = await gateway.post("/instance/create", json=instance_body(webhookUrl=PUBLIC_URL), headers=acme)
    assert created.status == 201
    response = await gateway.patch(f"/instance/{NAME}/webhook", json={"webhookUrl": "http://127.0.0.1/x"}, headers=acme)
    assert response.status == 400
    [issue] = (await response.json())["error"]["issues"]
    assert issue["path"] == ["webhookUrl"]
    status = await (await gateway.get(f"/instance/{NAME}/status", headers=acme)).json()
    assert status["webhookUrl"] == PUBLIC_URL


async def test_delivery_to_a_private_address_is_refused_when_the_guard_is_on_by_then(
    redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    allowed = make_settings(redis_url, tmp_path / "data", webhook_retry_delays=DELAYS)
    guarded = make_settings(redis_url, tmp_path / "data", webhook_retry_delays=DELAYS, allow_private_urls=False)
    gateway = await started(allowed, worker_settings=guarded)  # the URL is admitted, its delivery is not
    try:
        acme = await new_tenant(gateway)
        created = await gateway.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
        assert created.status == 201
        delivery_id = await send_test(gateway, acme)
        dead = await settled(gateway, acme, delivery_id, "dead")
        [attempt] = dead["attempts"]  # retrying cannot help: dead-lettered at once
        assert attempt["statusCode"] is None
        assert attempt["error"] == "refused by the private-address guard: 127.0.0.1 is a private or reserved address"
        assert receiver.requests == []
    finally:
        await gateway.close()


async def test_patch_rotates_the_secret_and_moves_the_url_for_the_next_delivery(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    new_secret = "a-brand-new-secret-0123456789"
    patch = {"webhookUrl": receiver.url("/moved"), "webhookSecret": new_secret}
    response = await gateway.patch(f"/instance/{NAME}/webhook", json=patch, headers=acme)
    assert response.status == 200
    answer = await response.json()
    assert answer["webhook"]["state"] == "ok" and answer["events"] == ["*"]
    assert {k: answer[k] for k in ("instanceName", "webhookUrl", "secretRotated")} == {
        "instanceName": NAME, "webhookUrl": receiver.url("/moved"), "secretRotated": True}  # fmt: skip

    delivery_id = await send_test(gateway, acme)
    _, request = await receiver.wait_for(2)
    assert request.delivery_id == delivery_id and request.path == "/moved"
    assert verify_signature(request.body, request.headers["x-gateway-signature"], new_secret)
    assert not verify_signature(request.body, request.headers["x-gateway-signature"], SECRET)
    # During the rotation overlap the Standard Webhooks header signs with both, the new one first.
    new_signature, old_signature = request.headers["webhook-signature"].split(" ")
    for secret, signature in ((new_secret, new_signature), (SECRET, old_signature)):
        verifier = standardwebhooks.Webhook(base64.b64encode(secret.encode()).decode())
        headers = {**dict(request.headers), "webhook-signature": signature}
        assert verifier.verify(request.body, headers) == request.json()


@pytest.mark.parametrize("settings", [{"webhook_rotation_overlap": 3.0}], indirect=True, ids=["overlap=3s"])
async def test_the_old_secret_stops_signing_once_the_overlap_ends(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, redis_url: str
) -> None:
    new_secret = "a-brand-new-secret-0123456789"
    assert (await gateway.patch(f"/instance/{NAME}/webhook", json={"webhookSecret": new_secret}, headers=acme)).ok
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        sealed = await redis.hget(keys.webhook_endpoint(NAME), "previousSecret")
        assert sealed and SECRET not in sealed  # sealed at rest like the current one
    finally:
        await redis.aclose()
    await send_test(gateway, acme)
    _, during = await receiver.wait_for(2)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    until = time.monotonic() + 3.1
    await eventually(lambda: time.monotonic() > until, timeout=5)
    await send_test(gateway, acme)
    *_, after = await receiver.wait_for(3)
    assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_patch_body_is_validated(gateway: TestClient, acme: dict[str, str], hooked: str) -> None:
    for body, path in (
        ({}, []),
        ({"webhookSecret": "short"}, ["webhookSecret"]),
        ({"webhookUrl": "ftp://x"}, ["webhookUrl"]),
    ):
        response = await gateway.patch(f"/instance/{NAME}/webhook", json=body, headers=acme)
        assert response.status == 400, body
        assert [i["path"] for i in (await response.json())["error"]["issues"]] == [path]


async def test_deliveries_are_listed_newest_first_page_by_page(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    sent = [await send_test(gateway, acme) for _ in range(4)]
    await receiver.wait_for(5)
    connected = receiver.requests[0].delivery_id
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=2" if cursor is None else f"?limit=2&cursor={cursor}"
        response = await gateway.get(f"/instance/{NAME}/webhooks/deliveries{query}", headers=acme)
        assert response.status == 200
        page = await response.json()
        seen += [d["id"] for d in page["deliveries"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [*reversed(sent), connected]
    assert pages == 3


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=many", "cursor=nope", "offset=3"])
async def test_bad_deliveries_query_is_a_400_naming_the_parameter(
    gateway: TestClient, acme: dict[str, str], hooked: str, query: str
) -> None:
    response = await gateway.get(f"/instance/{NAME}/webhooks/deliveries?{query}", headers=acme)
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == "validation_error"
    assert [i["path"] for i in body["error"]["issues"]] == [[query.split("=")[0]]]


async def test_webhook_routes_are_closed_to_other_tenants_and_404_for_unknown_instances(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    globex = await new_tenant(gateway, "globex")
    delivery_id = receiver.requests[0].delivery_id
    calls = [
        ("GET", "/instance/{name}/webhooks/deliveries", None),
        ("POST", f"/instance/{{name}}/webhooks/deliveries/{delivery_id}/replay", None),
        ("POST", "/instance/{name}/webhooks/test", None),
        ("PATCH", "/instance/{name}/webhook", {"webhookSecret": "stolen-secret-0123456789"}),
    ]
    for method, path, body in calls:
        forbidden = await gateway.request(method, path.format(name=NAME), json=body, headers=globex)
        assert forbidden.status == 403, path
        assert (await forbidden.json())["error"]["code"] == "forbidden_tenant"
        unknown = await gateway.request(method, path.format(name="acme__shop1__nope"), json=body, headers=acme)
        assert unknown.status == 404, path
    assert len(receiver.requests) == 1  # nothing was sent or replayed for globex


async def test_deleting_an_instance_drops_its_pending_deliveries(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, redis_url: str
) -> None:
    receiver.fail_next(100)
    await send_test(gateway, acme)
    await receiver.wait_for(2)
    assert (await gateway.delete(f"/instance/{NAME}", headers=acme)).status == 204
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        assert [key async for key in redis.scan_iter(match=keys.webhook_delivery(NAME, "*"))] == []
        assert not await redis.exists(keys.outbox(NAME), keys.webhook_log(NAME))
    finally:
        await redis.aclose()


def test_retry_delays_come_from_the_environment_as_a_list() -> None:
    assert load_settings({"GATEWAY_WEBHOOK_RETRY_DELAYS": "1,5,30"}).webhook_retry_delays == (1, 5, 30)
    assert load_settings({"GATEWAY_WEBHOOK_RETRY_DELAYS": "[0.5, 2]"}).webhook_retry_delays == (0.5, 2)
    assert load_settings({}).webhook_retry_delays == (1, 5, 30)
    with pytest.raises(SettingsError, match="GATEWAY_WEBHOOK_RETRY_DELAYS"):
        load_settings({"GATEWAY_WEBHOOK_RETRY_DELAYS": "1,-5"})


async def test_only_the_latest_settled_deliveries_are_kept(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webhooks.outbox.HISTORY", 3)
    sent = [await send_test(gateway, acme) for _ in range(4)]
    await receiver.wait_for(5)
    await settled(gateway, acme, sent[-1], "delivered")
    page = await (await gateway.get(f"/instance/{NAME}/webhooks/deliveries", headers=acme)).json()
    assert [d["id"] for d in page["deliveries"]] == sent[:0:-1]
    assert page["nextCursor"] is None


async def test_a_burst_of_events_arrives_once_each_in_publication_order(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    sent = await asyncio.gather(*(send_test(gateway, acme) for _ in range(30)))
    await receiver.wait_for(1 + len(sent))
    page = await (await gateway.get(f"/instance/{NAME}/webhooks/deliveries?limit=100", headers=acme)).json()
    published = [d["id"] for d in reversed(page["deliveries"]) if d["id"] in sent]
    assert [r.delivery_id for r in receiver.of("webhook.test")] == published
    assert sorted(published) == sorted(sent)


@pytest.fixture
async def outbox(settings: Settings) -> AsyncIterator[Outbox]:
    """The outbox of an instance `NAME`, with no worker running any job it queues."""
    assert settings.redis_url is not None and settings.secret_key is not None
    store = connect(settings.redis_url)
    instances = Instances(store, SecretBox(settings.secret_key.get_secret_value()))
    await instances.create(InstanceName.parse(NAME), "http://127.0.0.1:9/hook", SECRET, "open")
    yield Outbox(store, Limits.of(settings))
    await store.aclose()


async def due(outbox: Outbox) -> list[tuple[str, float]]:
    return list(await outbox.redis.zrange(keys.WEBHOOK_DUE, 0, -1, withscores=True))


async def test_publishing_makes_the_instance_due_once_and_one_take_gets_it(outbox: Outbox) -> None:
    first = await outbox.publish(NAME, "webhook.test", {})
    await outbox.publish(NAME, "webhook.test", {})
    [(name, at)] = await due(outbox)
    assert name == NAME and at <= time.time() * 1000
    assert await outbox.redis.llen(keys.WEBHOOK_BELL) == 1  # type: ignore[misc]  # a sleeping delivery loop looks now
    take = await outbox.take_due(10, "holder", 5)
    assert take.taken == 1 and take.next_due_ms is None and list(take.heads) == [NAME]
    head = take.heads[NAME]
    assert head.delivery.id == first and head.following == ()  # a take hands out the head alone
    assert await outbox.redis.get(keys.webhook_lock(NAME)) == "holder"  # taken with the instance
    assert await outbox.take_due(10, "other", 5) == Take({}, 0, None)  # taken once: no other loop gets it

    await outbox.publish(NAME, "webhook.test", {})  # due again: a loop that takes it finds the lock held
    assert await outbox.take_due(10, "late", 5) == Take({}, 1, None)  # taken from the set, left to its holder
    assert await outbox.redis.get(keys.webhook_lock(NAME)) == "holder"


async def test_a_take_that_waits_for_the_bell_is_one_round_trip_and_wakes_on_a_publication(
    outbox: Outbox, settings: Settings
) -> None:
    await outbox.take_due(10, "holder", 5, wait=0.01)  # nothing due, the bell cleared, a connection open for it
    assert settings.redis_url is not None
    publisher = Redis.from_url(settings.redis_url, decode_responses=True, client_name=NOT_COUNTED)
    trips = RoundTrips()
    with trips.counting() as counted:
        taking = asyncio.ensure_future(outbox.take_due(10, "holder", 5, wait=5.0))
        await asyncio.sleep(0.1)
        assert not taking.done()  # asleep on the bell: nothing is due
        started = time.monotonic()
        await Outbox(publisher, Limits.of(settings)).publish(NAME, "webhook.test", {})
        assert list((await taking).heads) == [NAME]
        woke_after = time.monotonic() - started
    await publisher.aclose()
    assert woke_after < 1.0  # the publication rang the bell: the 5 s were not waited out
    assert counted() == 1 and trips.by_command["BLPOP"] == 1  # the wait and the take: one pipeline


async def test_one_take_locks_and_hands_out_the_heads_of_many_instances_in_one_round_trip(
    outbox: Outbox, settings: Settings
) -> None:
    assert settings.secret_key is not None
    instances = Instances(outbox.redis, SecretBox(settings.secret_key.get_secret_value()))
    names = [f"acme__shop1__n{i}" for i in range(20)]
    published = {}
    for name in names:
        await instances.create(InstanceName.parse(name), "http://127.0.0.1:9/hook", SECRET, "open")
        published[name] = await outbox.publish(name, "webhook.test", {})
    gone = names[0]  # its only event's record expired before the take: nothing is left to send
    await outbox.redis.delete(keys.webhook_delivery(gone, published[gone]))
    trips = RoundTrips()
    with trips.counting() as counted:
        take = await outbox.take_due(64, "holder", 5)
    assert counted() == 1 and take.taken == 20
    assert {name: head.delivery.id for name, head in take.heads.items()} == {n: published[n] for n in names[1:]}
    assert await outbox.redis.mget([keys.webhook_lock(n) for n in names]) == [None] + ["holder"] * 19
    assert await outbox.redis.llen(keys.outbox(gone)) == 0  # type: ignore[misc]


async def test_the_sweep_makes_due_every_instance_with_events_nobody_delivers_a_chunk_at_a_time(
    outbox: Outbox, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.secret_key is not None
    monkeypatch.setattr(delivering, "SWEEP_CHUNK", 2)
    instances = Instances(outbox.redis, SecretBox(settings.secret_key.get_secret_value()))
    names = [NAME, *(f"acme__shop1__n{i}" for i in range(4))]
    for name in names[1:]:
        await instances.create(InstanceName.parse(name), "http://127.0.0.1:9/hook", SECRET, "open")
    for name in names:
        await outbox.publish(name, "webhook.test", {})
    await outbox.redis.delete(keys.WEBHOOK_DUE)  # a restart lost who was due
    await outbox.redis.set(keys.webhook_lock(names[-1]), "holder")  # its holder delivers it
    chunks: list[int] = []
    pipeline = outbox.redis.pipeline

    def counted(transaction: bool = True) -> Any:
        pipe = pipeline(transaction=transaction)
        execute = pipe.execute

        async def execute_counted(raise_on_error: bool = True) -> Any:
            chunks.append(len(pipe.command_stack) // 2)
            return await execute(raise_on_error)

        pipe.execute = execute_counted  # type: ignore[method-assign]
        return pipe

    monkeypatch.setattr(outbox.redis, "pipeline", counted)
    deliverer = delivering.Deliverer(settings, outbox.redis, outbox, instances)
    await deliverer.sweep()
    assert sorted(name for name, _ in await due(outbox)) == sorted(names[:-1])
    assert sorted(chunks) == [1, 2, 2]  # five instances, two a pipeline


async def test_the_holder_hands_over_for_its_heads_retry_and_a_kick_does_not_jump_it(outbox: Outbox) -> None:
    await outbox.publish(NAME, "webhook.test", {})
    assert NAME in (await outbox.take_due(10, "holder", 5)).heads
    retry_at = await redis_now_ms(outbox.redis) + 30_000
    await outbox.kick(NAME, at_ms=retry_at, token="holder")  # the holder saw the head not due yet

    assert not await outbox.redis.exists(keys.webhook_lock(NAME))
    [(_, at)] = await due(outbox)
    assert at == retry_at
    await outbox.kick(NAME)  # a sweep, or a replay: the head's retry still goes first
    assert await due(outbox) == [(NAME, at)]
    assert await outbox.take_due(10, "other", 5) == Take({}, 0, int(at))


async def test_the_holder_lets_go_once_the_fifo_is_empty(outbox: Outbox) -> None:
    await outbox.publish(NAME, "webhook.test", {})
    head = (await outbox.take_due(10, "holder", 5)).heads[NAME]
    assert head.url == "http://127.0.0.1:9/hook"
    attempt = Attempt(at=head.delivery.created_at, duration_ms=1, status_code=204)
    assert (
        await outbox.next(
            NAME, "holder", 5, attempted=[Settled(head.delivery.attempted(attempt, None).delivered(attempt.at))]
        )
        is None
    )

    assert not await outbox.redis.exists(keys.webhook_lock(NAME), keys.outbox(NAME))
    assert await outbox.stats() == {"delivered": 1, "failed": 0, "deadLettered": 0}
    with pytest.raises(LockLost):
        await outbox.next(NAME, "holder", 5)


async def test_sent_then_delivered_then_read_arrive_in_order_and_move_the_message(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    body = {"instanceName": NAME, "to": "5491112345678", "text": "hello"}
    message_id = (await (await gateway.post("/message/text", json=body, headers=acme)).json())["id"]
    await receiver.wait_for(2)  # instance.connected, message.sent
    wa_id = (await (await gateway.get(f"/message/{message_id}", headers=acme)).json())["waMessageId"]
    for status in ("delivered", "read", "delivered"):  # a late "delivered" must not undo "read"
        receipt = {"messageIds": [wa_id], "status": status}
        assert (await gateway.post(f"/sandbox/instance/{NAME}/receipt", json=receipt, headers=acme)).status == 200
    events = await receiver.wait_for(4)
    assert [e.headers["x-gateway-event"] for e in events] == [
        "instance.connected", "message.sent", "message.delivered", "message.read",
    ]  # fmt: skip
    assert events[3].json()["data"]["messageId"] == message_id
    assert events[3].json()["data"]["waMessageId"] == wa_id
    assert (await (await gateway.get(f"/message/{message_id}", headers=acme)).json())["status"] == "read"
    assert len(receiver.requests) == 4
