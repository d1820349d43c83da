import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from config import Settings
from core import keys
from gateway.app import create_app
from scheduler import claim_loop
from scheduler.lanes import Lanes
from scheduler.services import CANCELLED_BY_DELETE, INFLIGHT_AT_DELETE
from scheduler.worker import worker_context
from tests.conftest import ADMIN, eventually, instance_body, make_settings, open_instance

NAME = "acme__shop1__sales"
PHONE = "5491100000000"  # the number open_instance links


async def send(client: TestClient, headers: dict[str, str], text: str = "hello", **extra: object) -> dict:
    body = {"instanceName": NAME, "to": "5491112345678", "text": text, **extra}
    response = await client.post("/message/text", json=body, headers=headers)
    assert response.status == 202, await response.text()
    return await response.json()


async def message(client: TestClient, headers: dict[str, str], message_id: str) -> dict:
    response = await client.get(f"/message/{message_id}", headers=headers)
    assert response.status == 200
    return await response.json()


async def sent(client: TestClient, headers: dict[str, str], name: str = NAME) -> list[dict]:
    return await (await client.get(f"/sandbox/instance/{name}/sent", headers=headers)).json()


async def finished(client: TestClient, headers: dict[str, str], message_id: str) -> dict:
    async def check() -> dict | None:
        found = await message(client, headers, message_id)
        return found if found["status"] in ("sent", "failed", "cancelled") else None

    return await eventually(check)


async def gateway_with(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, **overrides: object
) -> TestClient:
    settings = make_settings(redis_url, tmp_path / "data", **overrides)
    app = create_app(settings)
    app.cleanup_ctx.append(worker_context(settings))
    client = await aiohttp_client(app)
    created = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    client.acme = {"apikey": (await created.json())["apiKey"]}  # type: ignore[attr-defined]
    return client


async def test_send_answers_202_with_the_queued_shape(gateway: TestClient, acme: dict[str, str]) -> None:
    await open_instance(gateway, acme)
    body = await send(gateway, acme, lane="urgent")
    assert set(body) == {"id", "status", "lane", "queuedAt", "instanceName"}
    assert body["status"] == "pending" and body["lane"] == "urgent" and body["instanceName"] == NAME
    datetime.fromisoformat(body["queuedAt"])


async def test_message_is_sent_with_its_spintax_resolved(gateway: TestClient, acme: dict[str, str]) -> None:
    await open_instance(gateway, acme)
    queued = await send(gateway, acme, text="{Hi|Hello} {there|{dear|good} friend}, {name}")
    done = await finished(gateway, acme, queued["id"])
    assert done["status"] == "sent"
    assert done["sentAt"] and done["waMessageId"] and done["error"] is None
    [delivered] = await sent(gateway, acme)
    assert delivered["text"] == done["text"]
    greeting, rest = done["text"].split(" ", 1)
    assert greeting in ("Hi", "Hello")
    assert rest in ("there, {name}", "dear friend, {name}", "good friend, {name}")
    assert delivered["messageId"] == done["waMessageId"] and delivered["to"] == "5491112345678"


async def test_unbalanced_spintax_is_sent_as_written(gateway: TestClient, acme: dict[str, str]) -> None:
    await open_instance(gateway, acme)
    done = await finished(gateway, acme, (await send(gateway, acme, text="{Hi|Hello"))["id"])
    assert done["status"] == "sent" and done["text"] == "{Hi|Hello"


async def test_text_beyond_ascii_is_stored_and_sent_as_written(gateway: TestClient, acme: dict[str, str]) -> None:
    # The record goes to Redis as UTF-8 JSON (scheduler/lanes.py): accents, an emoji beyond the
    # BMP, a right-to-left script, quotes and a backslash come back and go out unchanged.
    await open_instance(gateway, acme)
    text = 'Ol\u00e1 \U0001f600 \u0645\u0631\u062d\u0628\u0627 "q" \\ \u00fcber\nline'
    queued = await send(gateway, acme, text=text, metadata={"note": "\u00e9t\u00e9 \U0001f389"})
    assert (await message(gateway, acme, queued["id"]))["metadata"] == {"note": "\u00e9t\u00e9 \U0001f389"}
    done = await finished(gateway, acme, queued["id"])
    assert done["status"] == "sent" and done["text"] == text
    [delivered] = await sent(gateway, acme)
    assert delivered["text"] == text


async def test_urgent_goes_before_normal_before_bulk_whatever_the_arrival_order(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)  # not linked yet: all wait
    order = ["bulk", "normal", "urgent", "bulk", "urgent", "normal", "bulk", "urgent"]
    for i, lane in enumerate(order):
        await send(gateway, acme, text=f"{lane}-{i}", lane=lane)
    await gateway.post(f"/sandbox/instance/{NAME}/link", json={}, headers=acme)
    delivered = await eventually(lambda: _all_sent(gateway, acme, len(order)))
    assert [m["text"] for m in delivered] == [
        "urgent-2", "urgent-4", "urgent-7", "normal-1", "normal-5", "bulk-0", "bulk-3", "bulk-6",
    ]  # fmt: skip


async def _all_sent(client: TestClient, headers: dict[str, str], count: int) -> list[dict] | None:
    found = await sent(client, headers)
    return found if len(found) == count else None


async def test_every_gap_is_within_the_range_of_the_lane_sent(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    lanes = {"urgent": (0.05, 0.1), "normal": (0.1, 0.15), "bulk": (0.15, 0.2)}
    gateway = await gateway_with(
        aiohttp_client, redis_url, tmp_path, lanes=json.dumps({k: {"gap": v} for k, v in lanes.items()})
    )
    await open_instance(gateway, gateway.acme)  # type: ignore[attr-defined]
    order = ["bulk", "urgent", "normal", "bulk", "urgent", "normal", "normal", "bulk", "urgent"]
    for i, lane in enumerate(order):
        await send(gateway, gateway.acme, text=f"{lane}-{i}", lane=lane)  # type: ignore[attr-defined]
    delivered = await eventually(lambda: _all_sent(gateway, gateway.acme, len(order)))  # type: ignore[attr-defined]
    times = [datetime.fromisoformat(m["sentAt"]).timestamp() for m in delivered]
    for previous, current, record in zip(times, times[1:], delivered[1:], strict=False):
        low, high = lanes[record["text"].split("-")[0]]
        gap = current - previous
        assert low - 0.002 <= gap <= high + 0.25, (record["text"], gap)  # late is possible, early never


async def test_quota_is_never_exceeded_under_200_concurrent_sends_and_the_rest_wait(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    limits = {"urgent": {"gap": [0, 0], "perHour": 7, "perDay": 12}, "bulk": {"gap": [0, 0], "perHour": 3}}
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=json.dumps(limits))
    await open_instance(gateway, gateway.acme)  # type: ignore[attr-defined]

    bodies = [{"instanceName": NAME, "to": "5491112345678", "text": f"m{i}", "lane": "urgent"} for i in range(200)]
    answers = await asyncio.gather(*(gateway.post("/message/text", json=b, headers=gateway.acme) for b in bodies))  # type: ignore[attr-defined]
    assert [a.status for a in answers] == [202] * 200
    bulk = await send(gateway, gateway.acme, text="bulk", lane="bulk")  # type: ignore[attr-defined]

    await eventually(lambda: _all_sent(gateway, gateway.acme, 8))  # type: ignore[attr-defined]  # 7 urgent + the bulk one
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pump = await store.hgetall(keys.pump(NAME))
    wake_in = int(pump["due"]) / 1000 - datetime.now().timestamp()
    assert 3500 < wake_in <= 3600  # next urgent send waits for the hour to roll
    queue = await (await gateway.get(f"/instance/{NAME}/queue", headers=gateway.acme)).json()  # type: ignore[attr-defined]
    assert {lane: queue[lane] for lane in ("urgent", "normal", "bulk", "total")} == {
        "urgent": 193, "normal": 0, "bulk": 0, "total": 193
    }  # fmt: skip
    assert (await message(gateway, gateway.acme, bulk["id"]))["status"] == "sent"  # type: ignore[attr-defined]  # urgent's quota did not block bulk

    # Let the hour roll: age every recorded urgent send by an hour, then wake the instance.
    sends = await store.zrange(keys.phone_sent(PHONE, "urgent"), 0, -1, withscores=True)
    await store.zadd(keys.phone_sent(PHONE, "urgent"), {member: score - 3_600_000 for member, score in sends})
    await store.hdel(keys.pump(NAME), "due")
    await gateway.post(f"/sandbox/instance/{NAME}/unlink", headers=gateway.acme)  # type: ignore[attr-defined]
    await gateway.post(f"/sandbox/instance/{NAME}/link", json={"phoneNumber": PHONE}, headers=gateway.acme)  # type: ignore[attr-defined]
    # 12 a day: 7 already went, so only 5 more may go in this day, whatever the hour allows
    await eventually(lambda: _all_sent(gateway, gateway.acme, 13))  # type: ignore[attr-defined]
    queue = await (await gateway.get(f"/instance/{NAME}/queue", headers=gateway.acme)).json()  # type: ignore[attr-defined]
    assert queue["urgent"] == 188
    assert len(await sent(gateway, gateway.acme)) == 13  # type: ignore[attr-defined]
    await store.aclose()


async def test_queue_counts_and_status_count_waiting_messages(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    for lane in ("urgent", "urgent", "bulk"):
        await send(gateway, acme, lane=lane)
    queue = await (await gateway.get(f"/instance/{NAME}/queue", headers=acme)).json()
    assert {lane: queue[lane] for lane in ("urgent", "normal", "bulk", "total")} == {
        "urgent": 2, "normal": 0, "bulk": 1, "total": 3
    }  # fmt: skip
    assert queue["throttled"] is None and queue["warmup"]["firstLinkedAt"] is None  # never linked
    status = await (await gateway.get(f"/instance/{NAME}/status", headers=acme)).json()
    assert status["messagesQueuedCount"] == 3


async def test_flush_cancels_waiting_messages_and_says_how_many(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    ids = [(await send(gateway, acme, lane=lane))["id"] for lane in ("urgent", "normal", "bulk")]
    response = await gateway.delete(f"/admin/queue/{NAME}", headers=ADMIN)
    assert await response.json() == {"instanceName": NAME, "flushed": 3}
    for message_id in ids:
        assert (await message(gateway, acme, message_id))["status"] == "cancelled"
    queue = await (await gateway.get(f"/instance/{NAME}/queue", headers=acme)).json()
    assert queue["total"] == 0
    await gateway.post(f"/sandbox/instance/{NAME}/link", json={}, headers=acme)
    assert (await gateway.delete(f"/admin/queue/{NAME}", headers=acme)).status == 403  # admin only


async def test_deleting_an_instance_cancels_its_waiting_messages(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    queued = await send(gateway, acme)
    assert (await gateway.delete(f"/instance/{NAME}", headers=acme)).status == 204
    assert (await message(gateway, acme, queued["id"]))["status"] == "cancelled"


async def test_message_to_a_closed_instance_waits_until_it_opens(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    queued = await send(gateway, acme)
    assert (await message(gateway, acme, queued["id"]))["status"] == "pending"
    assert await sent(gateway, acme) == []
    await gateway.post(f"/sandbox/instance/{NAME}/link", json={}, headers=acme)
    assert (await finished(gateway, acme, queued["id"]))["status"] == "sent"


async def test_message_that_waited_too_long_ends_failed_expired(
    gateway: TestClient, acme: dict[str, str], redis_url: str
) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    old, fresh = await send(gateway, acme, text="old"), await send(gateway, acme, text="fresh")
    store = aioredis.Redis.from_url(redis_url)
    day_and_a_bit = 25 * 3600 * 1000
    created = int(await store.hget(keys.message(old["id"]), "createdMs"))
    await store.hset(keys.message(old["id"]), "createdMs", created - day_and_a_bit)
    await store.aclose()
    await gateway.post(f"/sandbox/instance/{NAME}/link", json={}, headers=acme)
    expired = await finished(gateway, acme, old["id"])
    assert expired["status"] == "failed" and expired["error"].startswith("expired")
    assert (await finished(gateway, acme, fresh["id"]))["status"] == "sent"


async def test_number_not_on_whatsapp_ends_failed_without_sending(gateway: TestClient, acme: dict[str, str]) -> None:
    await open_instance(gateway, acme)
    body = {"instanceName": NAME, "to": "9995551234", "text": "hi"}
    queued = await (await gateway.post("/message/text", json=body, headers=acme)).json()
    done = await finished(gateway, acme, queued["id"])
    assert (done["status"], done["error"]) == ("failed", "not_on_whatsapp")
    assert await sent(gateway, acme) == []


async def test_whatsapp_refusal_fails_that_message_and_the_next_one_goes(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await open_instance(gateway, acme)
    await gateway.post(f"/sandbox/instance/{NAME}/fail-next", json={"error": "recipient blocked"}, headers=acme)
    first, second = await send(gateway, acme, text="one"), await send(gateway, acme, text="two")
    failed = await finished(gateway, acme, first["id"])
    assert (failed["status"], failed["error"]) == ("failed", "recipient blocked")
    assert (await finished(gateway, acme, second["id"]))["status"] == "sent"
    assert [m["text"] for m in await sent(gateway, acme)] == ["two"]


async def test_same_idempotency_key_replays_the_send_without_queueing_twice(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    headers = {**acme, "Idempotency-Key": "order-42"}
    body = {"instanceName": NAME, "to": "5491112345678", "text": "your order shipped"}
    first = await gateway.post("/message/text", json=body, headers=headers)
    again = await gateway.post("/message/text", json=body, headers=headers)
    assert first.status == again.status == 202
    assert (await first.json())["id"] == (await again.json())["id"]
    queue = await (await gateway.get(f"/instance/{NAME}/queue", headers=acme)).json()
    assert queue["total"] == 1


async def test_route_spreads_over_the_clients_open_instances_only(gateway: TestClient, acme: dict[str, str]) -> None:
    names = ["acme__shop1__a", "acme__shop1__b"]
    for name in names:
        await open_instance(gateway, acme, name)
    await gateway.post("/instance/create", json=instance_body("acme__shop1__closed"), headers=acme)
    await open_instance(gateway, acme, "acme__shop2__other")
    chosen = []
    for i in range(6):
        body = {"tenantId": "acme", "clientId": "shop1", "to": "5491112345678", "type": "text", "text": f"r{i}"}
        response = await gateway.post("/message/route", json=body, headers=acme)
        assert response.status == 202, await response.text()
        chosen.append((await response.json())["instanceName"])
    assert sorted(set(chosen)) == names
    assert chosen.count(names[0]) == chosen.count(names[1]) == 3


async def test_route_without_an_open_instance_is_409_and_queues_nothing(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    body = {"tenantId": "acme", "clientId": "shop1", "to": "5491112345678", "type": "text", "text": "hi"}
    response = await gateway.post("/message/route", json=body, headers=acme)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "invalid_state"
    assert (await (await gateway.get(f"/instance/{NAME}/queue", headers=acme)).json())["total"] == 0


async def test_route_validates_the_fields_of_its_type(gateway: TestClient, acme: dict[str, str]) -> None:
    body = {"tenantId": "acme", "clientId": "shop1", "to": "5491112345678", "type": "image"}
    response = await gateway.post("/message/route", json=body, headers=acme)
    assert response.status == 400
    assert [i["path"] for i in (await response.json())["error"]["issues"]] == [["imageUrl"]]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/message/text", {"to": "+54 9 11 1234-5678", "text": "x"}, {("to",)}),
        ("/message/text", {"to": "5491112345678", "text": "x", "lane": "vip"}, {("lane",)}),
        ("/message/text", {"to": "5491112345678"}, {("text",)}),
        ("/message/image", {"to": "5491112345678"}, {("imageUrl",)}),
        ("/message/image", {"to": "5491112345678", "imageUrl": "file:///etc/passwd"}, {("imageUrl",)}),
        ("/message/document", {"to": "5491112345678", "documentUrl": "https://x.test/a.pdf"}, {("fileName",)}),
        (
            "/message/audio",
            {"to": "5491112345678", "audioUrl": "https://x.test/a.ogg", "caption": "no"},
            {("caption",)},
        ),
        ("/message/video", {"videoUrl": "https://x.test/a.mp4"}, {("to",)}),
    ],
)
async def test_send_validation_names_every_bad_field(
    gateway: TestClient, acme: dict[str, str], path: str, body: dict, expected: set
) -> None:
    response = await gateway.post(path, json={"instanceName": NAME, **body}, headers=acme)
    assert response.status == 400
    assert {tuple(i["path"]) for i in (await response.json())["error"]["issues"]} == expected


async def test_phone_with_plus_gets_an_issue_saying_what_to_send(gateway: TestClient, acme: dict[str, str]) -> None:
    body = {"instanceName": NAME, "to": "+54 9 11 1234-5678", "text": "x"}
    [issue] = (await (await gateway.post("/message/text", json=body, headers=acme)).json())["error"]["issues"]
    assert "send '5491112345678'" in issue["message"]


async def test_sends_and_messages_are_isolated_between_tenants(gateway: TestClient, acme: dict[str, str]) -> None:
    await open_instance(gateway, acme)
    queued = await send(gateway, acme)
    created = await gateway.post("/admin/tenants", json={"tenantId": "globex"}, headers=ADMIN)
    globex = {"apikey": (await created.json())["apiKey"]}
    body = {"instanceName": NAME, "to": "5491112345678", "text": "x"}
    assert (await gateway.post("/message/text", json=body, headers=globex)).status == 403
    assert (await gateway.get(f"/message/{queued['id']}", headers=globex)).status == 403
    route = {"tenantId": "acme", "clientId": "shop1", "to": "5491112345678", "type": "text", "text": "x"}
    assert (await gateway.post("/message/route", json=route, headers=globex)).status == 403


async def test_send_to_an_unknown_instance_is_404(gateway: TestClient, acme: dict[str, str]) -> None:
    body = {"instanceName": "acme__nope__x", "to": "5491112345678", "text": "x"}
    response = await gateway.post("/message/text", json=body, headers=acme)
    assert response.status == 404


async def test_admin_stats_count_instances_waiting_and_sent(gateway: TestClient, acme: dict[str, str]) -> None:
    await open_instance(gateway, acme)
    await gateway.post("/instance/create", json=instance_body("acme__shop1__waiting"), headers=acme)
    done = await send(gateway, acme)
    body = {"instanceName": "acme__shop1__waiting", "to": "5491112345678", "text": "x", "lane": "bulk"}
    await gateway.post("/message/text", json=body, headers=acme)
    await finished(gateway, acme, done["id"])
    stats = await (await gateway.get("/admin/stats", headers=ADMIN)).json()
    assert stats["instances"] == {"open": 1, "connecting": 1, "close": 0}
    assert stats["waiting"] == {"urgent": 0, "normal": 0, "bulk": 1}
    assert stats["messages"]["sent"] == 1 and stats["messages"]["accepted"] == 2
    assert stats["workersAlive"] == 1
    assert (await gateway.get("/admin/stats", headers=acme)).status == 403


async def test_passing_failure_is_retried_and_the_sent_message_carries_no_error(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await open_instance(gateway, acme)
    fail = {"error": "network blip", "transient": True}
    await gateway.post(f"/sandbox/instance/{NAME}/fail-next", json=fail, headers=acme)
    queued = await send(gateway, acme)
    waiting = await eventually(lambda: _retrying(gateway, acme, queued["id"]))
    assert (waiting["status"], waiting["error"]) == ("pending", "network blip")
    done = await finished(gateway, acme, queued["id"])
    assert (done["status"], done["error"], done["attempts"]) == ("sent", None, 2)


async def _retrying(client: TestClient, headers: dict[str, str], message_id: str) -> dict | None:
    found = await message(client, headers, message_id)
    return found if found["attempts"] == 1 else None


async def test_deletion_refuses_new_sends_at_once_and_fails_the_one_in_flight(
    gateway: TestClient, acme: dict[str, str], redis_url: str, settings: Settings
) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    waiting, in_flight = await send(gateway, acme, text="waiting"), await send(gateway, acme, text="in flight")
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    # as if a pump had picked the second message and were sending it right now
    await store.lrem(keys.lane(NAME, "normal"), 0, in_flight["id"])
    await store.hset(keys.pump(NAME), mapping={"inflight": in_flight["id"], "inflightLane": "normal", "due": 0})
    await store.hset(keys.message(in_flight["id"]), "status", "sending")

    lanes = Lanes.from_settings(store, settings)
    assert await lanes.retire(NAME, CANCELLED_BY_DELETE.hash_fields(), INFLIGHT_AT_DELETE) == [waiting["id"]]
    late = {"instanceName": NAME, "to": "5491112345678", "text": "too late"}
    assert (await gateway.post("/message/text", json=late, headers=acme)).status == 404
    assert (await message(gateway, acme, waiting["id"]))["status"] == "cancelled"
    failed = await message(gateway, acme, in_flight["id"])
    assert (failed["status"], failed["error"]) == ("failed", INFLIGHT_AT_DELETE)
    assert await store.ttl(keys.message(in_flight["id"])) > 0
    await store.aclose()


async def test_temporarily_banned_number_sends_nothing_until_the_ban_is_over(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await open_instance(gateway, acme)
    assert (await gateway.post(f"/sandbox/instance/{NAME}/ban", json={"seconds": 0.5}, headers=acme)).status == 200
    status = await (await gateway.get(f"/instance/{NAME}/status", headers=acme)).json()
    assert status["state"] == "close"
    queued = await send(gateway, acme, text="after the ban")
    assert (await message(gateway, acme, queued["id"]))["status"] == "pending"
    assert await sent(gateway, acme) == []
    done = await finished(gateway, acme, queued["id"])
    assert done["status"] == "sent"
    assert (await (await gateway.get(f"/instance/{NAME}/status", headers=acme)).json())["state"] == "open"


async def test_a_receipt_moves_a_message_forward_only_and_never_recreates_an_expired_record(redis_url: str) -> None:
    from core import keys
    from core.redis_client import connect
    from scheduler.messages import Message, Messages

    redis = connect(redis_url)
    messages = Messages(redis, retention_seconds=60)
    name = "acme__shop1__receipts"
    fields = Message.new("msg_live", name, "normal", "5491112345678", "text", text="hi").stored_fields()
    await redis.hset(keys.message("msg_live"), items=[*fields, "status", "sent"])  # type: ignore[misc]
    await redis.set(keys.whatsapp_id(name, "WA1"), "msg_live")
    await redis.set(keys.whatsapp_id(name, "WA2"), "msg_expired")  # its record is gone already
    try:
        moved = await messages.apply_receipt(name, ("WA1", "WA2", "WA-unknown"), "read")
        assert [m.id for m in moved] == ["msg_live"]
        assert await redis.hget(keys.message("msg_live"), "status") == "read"  # type: ignore[misc]
        assert not await redis.exists(keys.message("msg_expired"))
        assert await messages.apply_receipt(name, ("WA1",), "delivered") == []  # never backwards
        assert await redis.hget(keys.message("msg_live"), "status") == "read"  # type: ignore[misc]
    finally:
        await redis.delete(keys.message("msg_live"), keys.whatsapp_id(name, "WA1"), keys.whatsapp_id(name, "WA2"))
        await redis.aclose()


async def test_a_claim_whose_answer_was_lost_is_put_back_by_the_sweep_and_sent_once(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    client = await gateway_with(aiohttp_client, redis_url, tmp_path, sweep_interval=0.2)
    acme = client.acme  # type: ignore[attr-defined]
    await client.post("/instance/create", json=instance_body(), headers=acme)
    queued = await send(client, acme, text="claimed, answer lost")
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    # What claim_due.lua leaves when its answer never reaches the worker: marked in flight, due 0.
    await store.lrem(keys.lane(NAME, "normal"), 0, queued["id"])
    await store.hset(keys.pump(NAME), mapping={"inflight": queued["id"], "inflightLane": "normal", "due": 0})
    await store.hset(keys.message(queued["id"]), "status", "sending")
    await open_instance_link(client, acme)

    done = await finished(client, acme, queued["id"])
    assert done["status"] == "sent" and not done["possiblyDuplicated"]  # it had not gone out
    assert [item["text"] for item in await sent(client, acme)] == ["claimed, answer lost"]
    await store.aclose()


async def test_the_sweep_goes_a_chunk_at_a_time_and_repairs_every_instance(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over 100,000 instances one sweep step held Redis 420 ms: it now looks at SWEEP_CHUNK a step."""
    monkeypatch.setattr(claim_loop, "SWEEP_CHUNK", 2)
    steps: list[int] = []
    sweep = Lanes.sweep

    async def counted(self: Lanes, worker_id: str, owned: list[str], running: set[str]) -> list[str]:
        steps.append(len(owned))
        return await sweep(self, worker_id, owned, running)

    monkeypatch.setattr(Lanes, "sweep", counted)
    client = await gateway_with(aiohttp_client, redis_url, tmp_path, sweep_interval=0.2)
    acme = client.acme  # type: ignore[attr-defined]
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    names = [f"acme__shop1__n{i}" for i in range(5)]
    queued = {}
    for name in names:
        await client.post("/instance/create", json=instance_body(name), headers=acme)
        body = {"instanceName": name, "to": "5491112345678", "text": f"to {name}"}
        queued[name] = (await (await client.post("/message/text", json=body, headers=acme)).json())["id"]
        # What claim_due.lua leaves when its answer never reaches the worker: marked in flight, due 0.
        await store.lrem(keys.lane(name, "normal"), 0, queued[name])
        await store.hset(keys.pump(name), mapping={"inflight": queued[name], "inflightLane": "normal", "due": 0})
        await store.hset(keys.message(queued[name]), "status", "sending")
        linked = await client.post(f"/sandbox/instance/{name}/link", json={}, headers=acme)
        assert linked.status == 200, await linked.text()

    for name in names:
        assert (await finished(client, acme, queued[name]))["status"] == "sent"
        assert [item["text"] for item in await sent(client, acme, name)] == [f"to {name}"]  # once
    assert steps and max(steps) <= 2 < sum(steps)  # every step a chunk, and more than one a sweep
    await store.aclose()


async def open_instance_link(client: TestClient, headers: dict[str, str]) -> None:
    linked = await client.post(f"/sandbox/instance/{NAME}/link", json={}, headers=headers)
    assert linked.status == 200, await linked.text()
