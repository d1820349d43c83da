"""The edge cases of the send path's three scripts, accept.lua, claim_due.lua and finish.lua, run
directly against the real Redis through the script registry (core/scripts.py) and decoded by name,
with a clock the test moves (scheduler/lanes.py Lanes takes it): no HTTP, no worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from config.settings import LaneConfig, LaneName, ThrottleConfig
from core import keys
from core.clock import now_ms
from core.conversations import ChatRow
from core.redis_client import Redis
from core.scripts import Scripts, record
from core.tenants import Tenants
from gateway.ratelimit import Gatekeeper
from scheduler.lanes import Accepting, Lanes, Owner
from scheduler.messages import FIELDS, Message, MessageUpdate, new_message_id
from webhooks.outbox import Limits, Outbox

NAME = "acme__shop__one"
WORKER = "w1"
ADMIN_KEY = "admin-key-0123456789"
GAP_S = 5.0  # every lane's gap after a send
HOUR_MS = 3600 * 1000


class Clock:
    """The lane scripts' now (ms): the test moves it."""

    def __init__(self) -> None:
        self.ms = now_ms()

    def __call__(self) -> int:
        return self.ms


def lane_configs(per_hour: int = 100) -> dict[LaneName, LaneConfig]:
    config = LaneConfig.model_validate({"gap": (GAP_S, GAP_S), "perHour": per_hour, "perDay": 10 * per_hour})
    return {"urgent": config, "normal": config, "bulk": config}


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lanes_of(
    redis: Redis, clock: Clock, per_hour: int = 100, queue_limit: int = 100, max_wait_ms: int = HOUR_MS
) -> Lanes:
    return Lanes(redis, lane_configs(per_hour), 3600, max_wait_ms, clock=clock, queue_limit=queue_limit)


async def take_over(redis: Redis, worker: str, previous: str = "", name: str = NAME) -> int:
    """`worker` becomes the instance's owner, through claim.lua as adoption does: its epoch."""
    return int(
        await Scripts.of(redis)["claim"](
            keys=[
                keys.instance(name),
                keys.worker_instances(previous),
                keys.worker_instances(worker),
                keys.due(previous),
                keys.worker(worker),
            ],
            args=[previous, worker, name],
        )
    )


async def open_instance(redis: Redis, name: str = NAME) -> Owner:
    await redis.hset(keys.instance(name), mapping={"createdAt": "2026-01-01T00:00:00Z", "state": "open"})  # type: ignore[misc]
    return WORKER, await take_over(redis, WORKER, name=name)


def message(lane: LaneName = "normal", to: str = "5491100000001", created_ms: int | None = None) -> Message:
    found = Message.new(new_message_id(), NAME, lane, to, "text", text="hi")
    if created_ms is None:
        return found
    return Message(**{**found.__dict__, "created_ms": created_ms})


async def accept(lanes: Lanes, *found: Message) -> list[str]:
    acceptance = await lanes.accept(NAME, [Accepting(item) for item in found])
    assert acceptance.earlier == [None] * len(found)
    return [item.id for item in found]


async def status(redis: Redis, message_id: str) -> str | None:
    return await redis.hget(keys.message(message_id), FIELDS["status"])  # type: ignore[misc]


async def waiting_ids(redis: Redis, lane: LaneName = "normal") -> list[str]:
    return await redis.lrange(keys.lane(NAME, lane), 0, -1)  # type: ignore[misc]


def sent_fields() -> dict[str, Any]:
    return MessageUpdate(status="sent", wa_message_id=f"wa-{new_message_id()}").hash_fields()


# accept.lua


async def test_accept_with_a_revoked_key_records_nothing_and_names_no_tenant(redis: Redis, clock: Clock) -> None:
    await open_instance(redis)
    _, issued = await Tenants(redis).create("acme", None)
    await Tenants(redis).revoke_key(issued.key_id)
    check = Gatekeeper(redis, ADMIN_KEY, per_minute=10).key_check(issued.api_key, "127.0.0.1")
    found = await lanes_of(redis, clock).accept(NAME, [Accepting(message())], check)
    assert (found.earlier, found.tenant, found.count, found.full) == (None, "", 1, False)
    assert await waiting_ids(redis) == []


async def test_accept_with_another_tenants_key_records_nothing(redis: Redis, clock: Clock) -> None:
    await open_instance(redis)
    _, issued = await Tenants(redis).create("other", None)
    check = Gatekeeper(redis, ADMIN_KEY, per_minute=10).key_check(issued.api_key, "127.0.0.1")
    found = await lanes_of(redis, clock).accept(NAME, [Accepting(message())], check)
    assert (found.earlier, found.tenant, found.count) == (None, "other", 1)
    assert await waiting_ids(redis) == []


async def test_accept_with_the_tenants_key_counts_it_and_stops_past_its_limit(redis: Redis, clock: Clock) -> None:
    await open_instance(redis)
    _, issued = await Tenants(redis).create("acme", None)
    gatekeeper, lanes = Gatekeeper(redis, ADMIN_KEY, per_minute=1), lanes_of(redis, clock)
    first, second = message(), message()
    allowed = await lanes.accept(NAME, [Accepting(first)], gatekeeper.key_check(issued.api_key, "127.0.0.1"))
    assert (allowed.earlier, allowed.tenant, allowed.count) == ([None], "acme", 1)
    over = await lanes.accept(NAME, [Accepting(second)], gatekeeper.key_check(issued.api_key, "127.0.0.1"))
    assert (over.earlier, over.tenant, over.count) == (None, "acme", 2)
    assert await waiting_ids(redis) == [first.id]


async def test_accept_again_with_the_same_client_reference_answers_the_first_message(
    redis: Redis, clock: Clock
) -> None:
    await open_instance(redis)
    lanes = lanes_of(redis, clock)
    first, repeat, fresh = message(), message(), message()
    assert (await lanes.accept(NAME, [Accepting(first, "ref-1")])).earlier == [None]
    found = await lanes.accept(NAME, [Accepting(repeat, "ref-1"), Accepting(fresh, "ref-2")])
    assert found.earlier == [first.id, None]
    assert await waiting_ids(redis) == [first.id, fresh.id]
    assert not await redis.exists(keys.message(repeat.id))


async def test_accept_past_the_queue_limit_records_none_of_the_batch(redis: Redis, clock: Clock) -> None:
    await open_instance(redis)
    lanes = lanes_of(redis, clock, queue_limit=3)
    await accept(lanes, message(), message())
    batch = [message(), message()]
    found = await lanes.accept(NAME, [Accepting(item) for item in batch])
    assert (found.earlier, found.full) == (None, True)
    assert len(await waiting_ids(redis)) == 2
    assert not any([await redis.exists(keys.message(item.id)) for item in batch])


async def test_accept_for_an_instance_that_is_gone_records_nothing(redis: Redis, clock: Clock) -> None:
    found = await lanes_of(redis, clock).accept(NAME, [Accepting(message())])
    assert (found.earlier, found.full) == (None, False)
    assert await waiting_ids(redis) == []


# claim_due.lua


async def test_claim_waits_for_the_gap_after_a_send_then_takes_the_next(redis: Redis, clock: Clock) -> None:
    owner = await open_instance(redis)
    lanes = lanes_of(redis, clock)
    first, second = await accept(lanes, message(), message())
    [taken] = (await lanes.claim_due(WORKER, 10, {}, {})).taken
    assert taken.message is not None and taken.message.id == first
    assert await lanes.finish(NAME, owner, first, "sent", sent_fields()) == (True, None)
    gap_ends = clock.ms + int(GAP_S * 1000)
    clock.ms = gap_ends - 1
    early = await lanes.claim_due(WORKER, 10, {}, {})
    assert (early.taken, early.next_due_ms) == ([], gap_ends)
    clock.ms += 1
    [then] = (await lanes.claim_due(WORKER, 10, {}, {})).taken
    assert then.message is not None and then.message.id == second


async def test_claim_with_the_hourly_quota_spent_waits_for_the_oldest_send_to_leave_the_hour(
    redis: Redis, clock: Clock
) -> None:
    owner = await open_instance(redis)
    lanes = lanes_of(redis, clock, per_hour=1)
    first, second = await accept(lanes, message(), message())
    sent_at = clock.ms
    await lanes.claim_due(WORKER, 10, {}, {})
    await lanes.finish(NAME, owner, first, "sent", sent_fields())
    clock.ms += int(GAP_S * 1000)
    held = await lanes.claim_due(WORKER, 10, {}, {})
    assert (held.taken, held.next_due_ms) == ([], sent_at + HOUR_MS)
    assert (await lanes.waiting(NAME))["normal"][1].reason == "hourly_quota"
    clock.ms = sent_at + HOUR_MS
    [taken] = (await lanes.claim_due(WORKER, 10, {}, {})).taken
    assert taken.message is not None and taken.message.id == second


async def test_claim_takes_urgent_before_normal_before_bulk(redis: Redis, clock: Clock) -> None:
    owner = await open_instance(redis)
    lanes = lanes_of(redis, clock)
    bulk, normal, urgent = message("bulk"), message("normal"), message("urgent")
    await accept(lanes, bulk, normal, urgent)
    order = []
    for _ in range(3):
        [taken] = (await lanes.claim_due(WORKER, 10, {}, {})).taken
        assert taken.message is not None
        order.append(taken.message.lane)
        await lanes.finish(NAME, owner, taken.message.id, "sent", sent_fields())
        clock.ms += int(GAP_S * 1000)
    assert order == ["urgent", "normal", "bulk"]


async def test_claim_drops_an_instance_another_worker_owns_now(redis: Redis, clock: Clock) -> None:
    await open_instance(redis)
    lanes = lanes_of(redis, clock)
    [queued] = await accept(lanes, message())
    assert await redis.zscore(keys.due(WORKER), NAME) is not None
    await redis.hset(keys.instance(NAME), "owner", "w2")  # type: ignore[misc]  # taken over meanwhile
    assert (await lanes.claim_due(WORKER, 10, {}, {})).taken == []
    assert await redis.zscore(keys.due(WORKER), NAME) is None
    assert (await waiting_ids(redis), await status(redis, queued)) == ([queued], "pending")


async def test_claim_ends_stale_messages_a_bounded_chunk_at_a_time(redis: Redis, clock: Clock) -> None:
    await open_instance(redis)
    lanes = lanes_of(redis, clock, queue_limit=1000, max_wait_ms=1000)
    stale = [message(created_ms=clock.ms - 2000) for _ in range(150)]
    for chunk in (stale[:100], stale[100:]):
        await accept(lanes, *chunk)
    expired = MessageUpdate(status="failed", error="expired", error_code="expired").hash_fields()
    [first] = (await lanes.claim_due(WORKER, 10, expired, {})).taken
    assert (first.message, list(first.ended)) == (None, [item.id for item in stale[:100]])
    assert await redis.zscore(keys.due(WORKER), NAME) is None  # the rest once the pump reported these
    await lanes.kick(NAME)
    [rest] = (await lanes.claim_due(WORKER, 10, expired, {})).taken
    assert list(rest.ended) == [item.id for item in stale[100:]]
    assert {await status(redis, item.id) for item in stale} == {"failed"}


# finish.lua


async def test_finish_by_a_fenced_off_owner_records_nothing(redis: Redis, clock: Clock) -> None:
    owner = await open_instance(redis)
    lanes = lanes_of(redis, clock)
    [queued] = await accept(lanes, message())
    await lanes.claim_due(WORKER, 10, {}, {})
    await take_over(redis, "w2", previous=WORKER)  # the lease was lost: epoch 2
    assert await lanes.finish(NAME, owner, queued, "sent", sent_fields()) == (False, None)
    assert await status(redis, queued) == "sending"
    assert await lanes.finish(NAME, ("w2", owner[1]), queued, "sent", sent_fields()) == (False, None)
    assert await lanes.kick(NAME, reset=True) == queued  # the new owner takes it back
    assert (await waiting_ids(redis), await status(redis, queued)) == ([queued], "pending")


async def test_finish_twice_records_once(redis: Redis, clock: Clock) -> None:
    owner = await open_instance(redis)
    lanes = lanes_of(redis, clock)
    [queued] = await accept(lanes, message())
    await lanes.claim_due(WORKER, 10, {}, {})
    fields = sent_fields()
    assert await lanes.finish(NAME, owner, queued, "sent", fields) == (True, None)
    assert await lanes.finish(NAME, owner, queued, "sent", fields) == (False, None)
    assert await redis.hget(keys.STATS, "sent") == "1"  # type: ignore[misc]


async def test_finish_with_a_retry_requeues_at_the_head_and_gives_the_quota_back(redis: Redis, clock: Clock) -> None:
    owner = await open_instance(redis)
    lanes = lanes_of(redis, clock, per_hour=1)
    first, second = await accept(lanes, message(), message())
    await lanes.claim_due(WORKER, 10, {}, {})
    retry_at = clock.ms + 2000
    done = await lanes.finish(
        NAME, owner, first, "requeue", MessageUpdate(status="pending").hash_fields(), retry_after_ms=2000
    )
    assert done == (True, None)
    assert (await waiting_ids(redis), await status(redis, first)) == ([first, second], "pending")
    assert await redis.zcard(keys.sent_times(NAME, "normal")) == 0
    held = await lanes.claim_due(WORKER, 10, {}, {})
    assert (held.taken, held.next_due_ms) == ([], retry_at)
    assert (await lanes.waiting(NAME))["normal"][1].reason == "retry"
    clock.ms = retry_at
    [taken] = (await lanes.claim_due(WORKER, 10, {}, {})).taken
    assert taken.message is not None and taken.message.id == first


async def test_finish_with_a_failure_ends_the_message_and_counts_it(redis: Redis, clock: Clock) -> None:
    owner = await open_instance(redis)
    lanes = lanes_of(redis, clock)
    [queued] = await accept(lanes, message())
    await lanes.claim_due(WORKER, 10, {}, {})
    failed = MessageUpdate(status="failed", error="no", error_code="not_on_whatsapp").hash_fields()
    assert await lanes.finish(NAME, owner, queued, "failed", failed, signal="n") == (True, None)
    assert await status(redis, queued) == "failed"
    assert await redis.ttl(keys.message(queued)) > 0
    stats = await redis.hgetall(keys.STATS)  # type: ignore[misc]
    assert (stats["failed"], stats["unsent:not_on_whatsapp"], stats["sends:normal:failed"]) == ("1", "1", "1")
    assert await redis.lrange(keys.outcomes(NAME), 0, -1) == ["n"]  # type: ignore[misc]
    assert await redis.zcard(keys.sent_times(NAME, "normal")) == 1  # it may have gone out: it counts


async def test_finish_publishes_its_event_and_hands_over_the_head_under_the_lock(redis: Redis, clock: Clock) -> None:
    owner = await open_instance(redis)
    await redis.hset(keys.instance(NAME), "webhookUrl", "http://127.0.0.1:9/hook")  # type: ignore[misc]
    lanes, outbox = lanes_of(redis, clock), Outbox(redis, Limits(retention=60, hold=60, backlog=10))
    [queued] = await accept(lanes, message())
    await lanes.claim_due(WORKER, 10, {}, {})
    event = outbox.event(NAME, "message.sent", {"messageId": queued})
    head, throttle = await lanes.finish(
        NAME, owner, queued, "sent", sent_fields(), event=event, webhook_lock=("token", 30_000)
    )
    assert throttle is None and not isinstance(head, bool)
    assert (head.delivery.id, head.url) == (event.delivery_id, "http://127.0.0.1:9/hook")
    assert await redis.get(keys.webhook_lock(NAME)) == "token"
    assert await redis.lrange(keys.outbox(NAME), 0, -1) == [event.delivery_id]  # type: ignore[misc]


async def test_finish_pauses_the_bulk_lane_when_the_last_outcomes_went_bad(redis: Redis, clock: Clock) -> None:
    owner = await open_instance(redis)
    lanes = lanes_of(redis, clock)
    for _ in range(ThrottleConfig().window):
        [queued] = await accept(lanes, message())
        await lanes.claim_due(WORKER, 10, {}, {})
        failed = MessageUpdate(status="failed", error="no", error_code="not_on_whatsapp").hash_fields()
        _, throttle = await lanes.finish(NAME, owner, queued, "failed", failed, signal="n")
        clock.ms += int(GAP_S * 1000)
    assert throttle is not None and throttle.reason == "not_on_whatsapp" and throttle.until_ms > clock.ms


# The decoder the scripts' answers go through.


@dataclass(frozen=True)
class Pair:
    name: str
    count: int


def test_record_decodes_by_name_and_refuses_a_missing_or_unknown_one() -> None:
    assert record(Pair, ["count", "3", "name", "x"]) == Pair("x", 3)
    with pytest.raises(ValueError, match="count"):
        record(Pair, ["name", "x"])
    with pytest.raises(ValueError, match="extra"):
        record(Pair, ["name", "x", "count", 1, "extra", 2])


# conversation_add.lua: what a finished send writes to the conversations (scheduler/conversation_log.py).


async def test_conversation_add_stores_a_message_once_and_the_chat_page_names_it(redis: Redis) -> None:
    scripts, chat = Scripts.of(redis), "5491100000001@s.whatsapp.net"
    chat_keys = [
        keys.conversation_chats(NAME),
        keys.conversation_chat(NAME, chat),
        keys.conversation_order(NAME, chat),
        keys.conversation_records(NAME, chat),
    ]
    member, stored = f"{now_ms():013d}:WA1", '{"id": "WA1"}'
    args: list[str | int] = [member, stored, chat, "Ana", 0, "in", 100, f"{0:013d}", 3600]
    assert await scripts["conversation_add"](keys=chat_keys, args=args) == 1
    assert await scripts["conversation_add"](keys=chat_keys, args=args) == 0  # a redelivery
    following, *rows = await scripts["conversation_chats"](keys=chat_keys[:1], args=[NAME, "+", 10])
    [row] = [record(ChatRow, row) for row in rows]
    assert (following, row) == (None, ChatRow(chat, "Ana", "0", 1, stored))
