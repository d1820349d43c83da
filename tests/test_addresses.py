"""Addresses as WhatsApp sees them: LID chats answered, one set of rules per person whatever spelling
of their number (or their LID) a send or a STOP used, and one pace per linked phone."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from config import Settings
from core import keys
from core.clock import now_ms
from gateway.state import SERVICES
from scheduler.lanes import Accepting, Lanes
from scheduler.messages import Message, MessageUpdate
from scheduler.references import References
from tests.conftest import eventually, instance_body, make_settings
from tests.receiver import Receiver
from tests.test_deliverability import gateway_with, lanes, open_hooked, records, sent_at
from tests.test_sending import finished

NAME = "acme__shop1__sales"
LID = "123456789012345"
# Mexico: +52 1 55... and +52 55... are one account, 52 55... (WhatsApp's answer).
ACCOUNT, OLD_SPELLING = "525512345678", "5215512345678"
OTHER = "5491187654321"


async def post(client: TestClient, path: str, body: dict[str, Any], status: int = 202) -> Any:
    response = await client.post(path, json=body, headers=client.acme)  # type: ignore[attr-defined]
    assert response.status == status, await response.text()
    return await response.json()


async def get(client: TestClient, path: str) -> Any:
    response = await client.get(path, headers=client.acme)  # type: ignore[attr-defined]
    assert response.status == 200, await response.text()
    return await response.json()


async def text(client: TestClient, to: str, **extra: Any) -> str:
    queued = await post(client, "/message/text", {"instanceName": NAME, "to": to, "text": "hi", **extra})
    return str(queued["id"])


async def declare(client: TestClient, numbers: list[str], lid: str | None = LID) -> None:
    await post(client, f"/sandbox/instance/{NAME}/accounts", {"accounts": [{"numbers": numbers, "lid": lid}]}, 200)


async def sandbox_sent(client: TestClient) -> list[dict[str, Any]]:
    return list(await get(client, f"/sandbox/instance/{NAME}/sent"))


async def hooked_gateway(
    aiohttp_client: AiohttpClient,
    redis_url: str,
    tmp_path: Path,
    receiver: Receiver,
    deliverability: str = "standard",
    **settings: Any,
) -> TestClient:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, **settings)
    await open_hooked(gateway, receiver, deliverability)
    return gateway


# -- LID chats ------------------------------------------------------------------------------------


async def test_a_sender_known_only_by_lid_is_answered_at_its_lid_chat(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked_gateway(aiohttp_client, redis_url, tmp_path, receiver)
    await post(gateway, f"/sandbox/instance/{NAME}/inbound", {"fromLid": LID, "text": "hola"}, 201)
    [received] = await eventually(lambda: receiver.of("message.received"))
    data = received.json()["data"]
    assert (data["from"], data["fromLid"], data["chatId"]) == (None, LID, f"{LID}@lid")

    reply = await text(gateway, data["chatId"])
    done = await finished(gateway, gateway.acme, reply)  # type: ignore[attr-defined]
    assert done["status"] == "sent"
    assert done["recipient"] == {"number": None, "lid": LID, "jid": f"{LID}@lid"}
    [went] = await sandbox_sent(gateway)
    assert (went["to"], went["jid"]) == (f"{LID}@lid", f"{LID}@lid")
    [event] = await eventually(lambda: receiver.of("message.sent"))
    assert event.json()["data"]["recipient"] == done["recipient"]


async def test_to_takes_a_lid_chat_and_still_refuses_other_jids(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked_gateway(aiohttp_client, redis_url, tmp_path, receiver)
    for bad in (f"{ACCOUNT}@s.whatsapp.net", "12ab@lid", "123@lid"):
        error = (await post(gateway, "/message/text", {"instanceName": NAME, "to": bad, "text": "x"}, 400))["error"]
        [issue] = error["issues"]
        assert issue["path"] == ["to"] and "<digits>@lid" in issue["message"], issue
    read = await gateway.post(
        f"/instance/{NAME}/chats/{LID}@lid/read",
        json={"messageIds": ["3A0001"]},
        headers=gateway.acme,  # type: ignore[attr-defined]
    )
    assert read.status == 204, await read.text()


# -- One account, many spellings -------------------------------------------------------------------


async def test_declared_spellings_resolve_in_checks_lid_lookups_and_sends(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked_gateway(aiohttp_client, redis_url, tmp_path, receiver)
    await declare(gateway, [ACCOUNT, OLD_SPELLING])
    checked = await post(gateway, f"/instance/{NAME}/contacts/check", {"numbers": [OLD_SPELLING, OTHER]}, 200)
    assert checked == [
        {"number": OLD_SPELLING, "onWhatsApp": True, "jid": f"{ACCOUNT}@s.whatsapp.net", "lid": LID},
        {"number": OTHER, "onWhatsApp": True, "jid": f"{OTHER}@s.whatsapp.net", "lid": None},
    ]
    assert await get(gateway, f"/instance/{NAME}/contacts/lid/{LID}") == {"lid": LID, "number": ACCOUNT}
    assert await get(gateway, f"/instance/{NAME}/contacts/lid/99999") == {"lid": "99999", "number": None}
    bad = await gateway.get(f"/instance/{NAME}/contacts/lid/12x", headers=gateway.acme)  # type: ignore[attr-defined]
    assert bad.status == 400 and (await bad.json())["error"]["issues"][0]["path"] == ["path", "lid"]

    done = await finished(gateway, gateway.acme, await text(gateway, OLD_SPELLING))  # type: ignore[attr-defined]
    assert done["recipient"] == {"number": ACCOUNT, "lid": LID, "jid": f"{ACCOUNT}@s.whatsapp.net"}
    [went] = await sandbox_sent(gateway)
    assert (went["to"], went["jid"]) == (OLD_SPELLING, f"{ACCOUNT}@s.whatsapp.net")


@pytest.mark.parametrize(
    ("stop", "opted_out"),
    [
        ({"fromLid": LID}, {"number": None, "lid": LID, "keyword": "STOP"}),
        # WhatsApp names the sender by its account, whatever spelling the test declares it with.
        ({"from": OLD_SPELLING}, {"number": ACCOUNT, "lid": None, "keyword": "STOP"}),
    ],
    ids=["by-lid", "by-number"],
)
async def test_a_stop_blocks_a_send_to_every_spelling_of_that_account_and_its_lid(
    aiohttp_client: AiohttpClient,
    redis_url: str,
    tmp_path: Path,
    receiver: Receiver,
    stop: dict[str, str],
    opted_out: dict[str, Any],
) -> None:
    gateway = await hooked_gateway(aiohttp_client, redis_url, tmp_path, receiver)
    await declare(gateway, [ACCOUNT, OLD_SPELLING])
    await post(gateway, f"/sandbox/instance/{NAME}/inbound", {**stop, "text": "stop"}, 201)
    [event] = await eventually(lambda: receiver.of("contact.opted_out"))
    assert event.json()["data"] == opted_out

    # No spelling was looked up before: the claim learns the person behind each from the lookup.
    ids = [await text(gateway, to) for to in (ACCOUNT, OLD_SPELLING, f"{LID}@lid", OTHER)]
    done = [await finished(gateway, gateway.acme, i) for i in ids]  # type: ignore[attr-defined]
    assert [(r["status"], r["error"]) for r in done] == [("failed", "opted_out")] * 3 + [("sent", None)]
    assert [m["to"] for m in await sandbox_sent(gateway)] == [OTHER]
    # Now the cache knows every spelling: the claim refuses them without asking WhatsApp again.
    lookups = await get(gateway, f"/sandbox/instance/{NAME}/actions")
    again = [await text(gateway, to, lane=lane) for to in (ACCOUNT, OLD_SPELLING) for lane in ("bulk", "urgent")]
    assert {(await finished(gateway, gateway.acme, i))["error"] for i in again} == {"opted_out"}  # type: ignore[attr-defined]
    assert await get(gateway, f"/sandbox/instance/{NAME}/actions") == lookups


async def test_spacing_holds_for_the_person_across_spellings(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked_gateway(
        aiohttp_client, redis_url, tmp_path, receiver, deliverability="cautious", lanes=lanes(spacing=1)
    )
    await declare(gateway, [ACCOUNT, OLD_SPELLING], lid=None)
    ids = [await text(gateway, to, lane="bulk") for to in (ACCOUNT, OLD_SPELLING, ACCOUNT)]
    done = [await finished(gateway, gateway.acme, i) for i in ids]  # type: ignore[attr-defined]
    assert {r["status"] for r in done} == {"sent"}
    times = sorted(sent_at(r) for r in done)
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(times)), times


# -- One phone, one pace ---------------------------------------------------------------------------

PHONE = "5491100000000"
GAP = (0.2, 0.25)
FAILED = MessageUpdate(status="failed")


async def _on_one_phone(store: aioredis.Redis, owners: dict[str, str]) -> None:
    """Instances linked to PHONE, each owned by its worker, as adoption and a link leave them."""
    for name, worker in owners.items():
        record = {"name": name, "createdAt": "2026-01-01T00:00:00Z", "state": "open", "owner": worker, "epoch": "1"}
        await store.hset(keys.instance(name), mapping={**record, "phoneNumber": PHONE})  # type: ignore[misc]


async def _drain(lanes: Lanes, worker: str, clock_log: list[int], sends: list[tuple[int, int]], total: int) -> None:
    """One worker's claim loop and pump: each send takes 30 ms; (picked, finished) in Redis time."""
    while len(sends) < total:
        claim = await lanes.claim_due(worker, 10, FAILED.hash_fields(), FAILED.hash_fields())
        picked = clock_log[-1]
        for taken in claim.taken:
            if taken.message is None:
                continue
            await asyncio.sleep(0.03)
            done = MessageUpdate(status="sent", wa_message_id=f"WA{taken.message.id}").hash_fields()
            recorded, _ = await lanes.finish(taken.name, (worker, 1), taken.message.id, "sent", done)
            assert recorded
            sends.append((picked, clock_log[-1]))
        await asyncio.sleep(0.005)


async def test_two_instances_on_one_phone_owned_by_different_workers_never_send_closer_than_the_gap(
    redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(redis_url, tmp_path, lanes=json.dumps({"urgent": {"gap": list(GAP)}}))
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    owners = {"acme__c1__one": "worker-a", "acme__c2__two": "worker-b"}
    await _on_one_phone(store, owners)
    logs: dict[str, list[int]] = {worker: [] for worker in owners.values()}
    workers = {worker: _lanes(store, settings, logs[worker]) for worker in owners.values()}
    for name, worker in owners.items():
        for i in range(4):
            message = Message.new(f"msg_{name}_{i}", name, "urgent", OTHER, "text", text="hi")
            await workers[worker].accept(name, [Accepting(message)])
    sends: list[tuple[int, int]] = []
    await asyncio.wait_for(
        asyncio.gather(*(_drain(lanes, worker, logs[worker], sends, 8) for worker, lanes in workers.items())), 30
    )
    sends.sort()
    for (_, finished_at), (picked_at, _) in itertools.pairwise(sends):
        assert picked_at - finished_at >= GAP[0] * 1000, sends
    # Both instances took their turns: the phone's pace was shared, not one instance's alone.
    senders = await asyncio.gather(*(store.hget(keys.message(f"msg_{n}_3"), "status") for n in owners))
    assert senders == ["sent", "sent"]
    await store.aclose()


def _lanes(store: aioredis.Redis, settings: Settings, log: list[int]) -> Lanes:
    def clock() -> int:
        log.append(now_ms())
        return log[-1]

    return Lanes(store, settings.lanes, settings.message_retention, 3_600_000, clock=clock)


async def test_a_deleted_and_recreated_instance_keeps_its_phones_quota_windows_and_warmup_day(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked_gateway(aiohttp_client, redis_url, tmp_path, receiver, lanes=lanes(perDay=2, perHour=2))
    before = await get(gateway, f"/instance/{NAME}/queue")
    ids = [await text(gateway, f"54911000001{i}", lane="bulk") for i in range(2)]
    assert [(await finished(gateway, gateway.acme, i))["status"] for i in ids] == ["sent", "sent"]  # type: ignore[attr-defined]
    deleted = await gateway.delete(f"/instance/{NAME}", headers=gateway.acme)  # type: ignore[attr-defined]
    assert deleted.status == 204

    await post(gateway, "/instance/create", instance_body(NAME, webhookUrl=receiver.url()), 201)
    await post(gateway, f"/sandbox/instance/{NAME}/link", {"phoneNumber": PHONE}, 200)
    after = await get(gateway, f"/instance/{NAME}/queue")
    assert after["warmup"]["firstLinkedAt"] == before["warmup"]["firstLinkedAt"]
    bulk = await text(gateway, "5491100000020", lane="bulk")
    urgent = await text(gateway, "5491100000021", lane="urgent")
    assert (await finished(gateway, gateway.acme, urgent))["status"] == "sent"  # type: ignore[attr-defined]
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)

    async def waits_for_the_hour() -> bool:
        due = await store.hget(keys.pump(NAME), "due")
        return due is not None and int(due) > time.time() * 1000 + 3_000_000

    await eventually(waits_for_the_hour)  # the phone's two bulk sends of this hour count
    assert [r["status"] for r in await records(gateway, [bulk])] == ["pending"]
    await store.aclose()


# -- What a reaction or a quote points at ----------------------------------------------------------


async def test_a_reference_keeps_an_unknown_sender_apart_from_us(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked_gateway(aiohttp_client, redis_url, tmp_path, receiver)
    svc = gateway.app[SERVICES]
    group = "120363025246125486@g.us"
    theirs = await post(
        gateway, f"/sandbox/instance/{NAME}/inbound", {"fromLid": LID, "chatId": group, "text": "hi all"}, 201
    )
    await eventually(lambda: receiver.of("message.received"))
    ours = await finished(gateway, gateway.acme, await text(gateway, OTHER))  # type: ignore[attr-defined]
    references = References(svc.redis, svc.messages)
    found = await references.resolve(NAME, theirs["messageId"], "messageId")
    assert (found.chat, found.sender, found.from_me) == (group, f"{LID}@lid", False)
    mine = await references.resolve(NAME, ours["id"], "messageId")
    assert (mine.chat, mine.from_me) == (OTHER, True)

    reacted = await post(
        gateway, "/message/reaction", {"instanceName": NAME, "messageId": theirs["messageId"], "emoji": "👍"}
    )
    assert (await finished(gateway, gateway.acme, reacted["id"]))["target"]["fromMe"] is False  # type: ignore[attr-defined]


async def test_a_message_naming_both_number_and_lid_teaches_the_rules_the_pair(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked_gateway(aiohttp_client, redis_url, tmp_path, receiver)
    await post(gateway, f"/sandbox/instance/{NAME}/inbound", {"from": OTHER, "fromLid": LID, "text": "hi"}, 201)
    await eventually(lambda: receiver.of("message.received"))
    await post(gateway, "/tenant/acme/suppressions", {"numbers": [OTHER]}, 200)
    done = await finished(gateway, gateway.acme, await text(gateway, f"{LID}@lid"))  # type: ignore[attr-defined]
    assert (done["status"], done["error"]) == ("failed", "opted_out")
    assert await get(gateway, f"/sandbox/instance/{NAME}/actions") == []  # the claim knew: no lookup
