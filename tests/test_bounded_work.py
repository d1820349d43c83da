"""No Redis script does unbounded work in one call, and no instance queues without bound (issue
23): stale messages expire in chunks, a flush cancels in chunks, and past GATEWAY_QUEUE_LIMIT a
send answers 429 `queue_full` (a batch then queues nothing)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from core import keys
from core.redis_client import Redis
from scheduler.lanes import FLUSH_CHUNK, Accepting, Lanes
from scheduler.messages import Message, new_message_id
from tests.conftest import ADMIN, instance_body, make_settings

NAME = "acme__shop1__sales"
OTHER = "acme__shop1__support"
WORKER = "w-bounded"
EXPIRED = {"status": "failed", "error": "expired"}
OPTED_OUT = {"status": "failed", "error": "opted out"}


def messages(count: int, age_ms: int = 0) -> list[Accepting]:
    made = []
    for i in range(count):
        message = Message.new(new_message_id(), NAME, "normal", f"54911{i:08d}", "text", text="hi")
        made.append(Accepting(dataclasses.replace(message, created_ms=message.created_ms - age_ms)))
    return made


async def an_open_instance(redis: Redis) -> None:
    record = {"createdAt": "2026-12-01T00:00:00Z", "owner": WORKER, "epoch": "1", "state": "open"}
    await redis.hset(keys.instance(NAME), mapping=record)  # type: ignore[misc]


async def test_a_backlog_of_stale_messages_expires_in_chunks_each_rewoken_at_once(redis: Redis) -> None:
    lanes = Lanes(redis, Settings().lanes, 3600, max_wait_ms=60_000)
    await an_open_instance(redis)
    for _ in range(3):
        await lanes.accept(NAME, messages(150, age_ms=120_000))
    ended: list[int] = []
    while sum(ended) < 450:
        claim = await lanes.claim_due(WORKER, 10, EXPIRED, OPTED_OUT)
        [taken] = claim.taken
        assert taken.message is None
        ended.append(len(taken.ended))
        if sum(ended) < 450:  # the rest waits until the pump has reported this chunk, then it wakes it
            assert claim.next_due_ms is None
            await lanes.kick(NAME)
            assert await redis.zscore(keys.due(WORKER), NAME) <= time.time() * 1000 + 1000
    assert ended == [100, 100, 100, 100, 50]
    assert await redis.llen(keys.lane(NAME, "normal")) == 0  # type: ignore[misc]


async def test_a_flush_cancels_in_chunks_and_the_admin_call_takes_them_all(redis: Redis) -> None:
    lanes = Lanes(redis, Settings().lanes, 3600, max_wait_ms=60_000)
    await redis.hset(keys.instance(NAME), mapping={"createdAt": "2026-12-01T00:00:00Z"})  # type: ignore[misc]  # not linked
    for _ in range(3):
        await lanes.accept(NAME, messages(400))
    fields = {"status": "cancelled"}
    left, *ids = await lanes._run("flush", NAME, 3600, '{"status": "cancelled"}', "0", "", FLUSH_CHUNK)
    assert (len(ids), left) == (FLUSH_CHUNK, 1200 - FLUSH_CHUNK)  # one call: one chunk
    assert len(await lanes.flush(NAME, fields)) == 1200 - FLUSH_CHUNK
    assert await redis.llen(keys.lane(NAME, "normal")) == 0  # type: ignore[misc]


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", queue_limit=3)


async def test_past_the_queue_limit_a_send_is_429_queue_full_and_a_batch_queues_nothing(
    client: TestClient, tenant_key: str
) -> None:
    acme = {"apikey": tenant_key}
    for name in (NAME, OTHER):
        assert (await client.post("/instance/create", json=instance_body(name), headers=acme)).status == 201
    text = {"instanceName": NAME, "to": "5491155554444", "text": "hi"}
    for _ in range(3):
        assert (await client.post("/message/text", json=text, headers=acme)).status == 202
    refused = await client.post("/message/text", json=text, headers=acme)
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "queue_full"
    assert "Retry-After" in refused.headers

    batch = {"messages": [{**text, "instanceName": OTHER, "type": "text"}, {**text, "type": "text"}]}
    refused = await client.post("/message/batch", json=batch, headers=acme)
    assert refused.status == 429, await refused.text()
    assert (await refused.json())["error"]["code"] == "queue_full"
    queue = await client.get(f"/instance/{OTHER}/queue", headers=acme)
    assert (await queue.json())["total"] == 0  # the other instance's message was not queued either
    flushed = await client.delete(f"/admin/queue/{NAME}", headers=ADMIN)
    assert (await flushed.json())["flushed"] == 3
    assert (await client.post("/message/text", json=text, headers=acme)).status == 202


async def test_a_claim_is_timed_from_before_it_was_sent(redis: Redis) -> None:
    """A pause between asking for a claim and its answer (here the claim's own wait; a frozen
    worker alike) counts against the lease: the pump rechecks ownership before sending once a
    third of the lease has gone by since `at`, so `at` must not be taken after the answer."""
    lanes = Lanes(redis, Settings().lanes, 3600, max_wait_ms=60_000)
    await an_open_instance(redis)
    await lanes.accept(NAME, messages(1))
    await redis.delete(keys.due_bell(WORKER))  # nothing cuts the wait short
    asked = asyncio.get_running_loop().time()
    claim = await lanes.claim_due(WORKER, 10, EXPIRED, OPTED_OUT, wait=0.5)
    [taken] = claim.taken
    assert taken.message is not None
    assert taken.at - asked < 0.25  # not after the half-second wait
