"""The event outbox: every event is written to Redis before any delivery is tried.

Each instance has a FIFO of delivery ids (`keys.outbox`). Its head is delivered, retries
included, before the next one goes, so a receiver sees an instance's events in the order they
happened. A delivery is one JSON record holding the exact body that gets signed, its status and
its attempts; a log of ids keeps recent deliveries listable and replayable after they settle.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from arq.connections import ArqRedis
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from redis.exceptions import WatchError

from gateway.errors import InvalidState, NotFound
from gateway.instances import iso
from gateway.redis_client import Redis
from gateway.validation import ApiModel
from scheduler import keys

DELIVER_JOB = "deliver_webhooks"
HISTORY = 1000  # settled deliveries kept per instance, for the listing and for replays
ATTEMPTS_KEPT = 20  # a delivery replayed again and again keeps only its latest attempts
STAT_FIELDS = ("delivered", "failed", "deadLettered")

Status = Literal["pending", "retrying", "delivered", "dead"]
SETTLED: tuple[Status, ...] = ("delivered", "dead")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def _new_id() -> str:
    return f"evt_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


class Attempt(ApiModel):
    at: str
    duration_ms: int
    status_code: int | None = None  # None: no answer (network error, timeout, refused URL)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Delivery(ApiModel):
    id: str
    event: str
    status: Status
    created_at: str
    next_attempt_at: str | None = None
    delivered_at: str | None = None
    tries: int = 0  # attempts since it was queued (or replayed): what the retry schedule counts
    attempts: list[Attempt] = Field(default_factory=list)
    # The envelope, serialized once and signed as is; stored, never shown in the API.
    body: SkipJsonSchema[str] = Field(exclude=True, repr=False)

    def due_at(self) -> datetime:
        return datetime.fromisoformat(self.next_attempt_at) if self.next_attempt_at else datetime.now(UTC)

    def after(self, attempt: Attempt, delays: tuple[float, ...], retryable: bool) -> Delivery:
        """This delivery once `attempt` is made: delivered, due again after the next delay of the
        schedule, or dead-lettered when the schedule is spent (or retrying cannot help)."""
        tries = self.tries + 1
        next_attempt_at = None
        if attempt.ok:
            status: Status = "delivered"
        elif retryable and tries <= len(delays):
            status = "retrying"
            next_attempt_at = iso(datetime.now(UTC) + timedelta(seconds=delays[tries - 1]))
        else:
            status = "dead"
        return self.model_copy(
            update={
                "status": status,
                "tries": tries,
                "attempts": [*self.attempts, attempt][-ATTEMPTS_KEPT:],
                "next_attempt_at": next_attempt_at,
                "delivered_at": attempt.at if attempt.ok else None,
            }
        )


def _dump(delivery: Delivery) -> str:
    return json.dumps({**delivery.model_dump(mode="json", by_alias=True), "body": delivery.body})


def _load(raw: str) -> Delivery:
    return Delivery.model_validate_json(raw)


class Outbox:
    def __init__(self, redis: Redis, arq: ArqRedis) -> None:
        self.redis = redis
        self.arq = arq

    async def publish(self, instance_name: str, event: str, data: dict[str, Any]) -> str:
        """Record `event` for `instance_name`'s webhook, then wake a delivery job; returns the
        delivery id (the `x-gateway-delivery` header)."""
        created_at = now_iso()
        envelope = {"event": event, "instanceName": instance_name, "data": data, "timestamp": created_at}
        delivery = Delivery(
            id=_new_id(), event=event, status="pending", created_at=created_at, body=json.dumps(envelope)
        )
        number = await self.redis.incr(keys.webhook_seq(instance_name))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.webhook_delivery(instance_name, delivery.id), _dump(delivery))
            pipe.rpush(keys.outbox(instance_name), delivery.id)
            pipe.zadd(keys.webhook_log(instance_name), {delivery.id: number})
            await pipe.execute()
        await self.kick(instance_name)
        return delivery.id

    async def kick(self, instance_name: str) -> None:
        """Have some worker look at the instance's deliveries now."""
        await self.arq.enqueue_job(DELIVER_JOB, instance_name, _queue_name=keys.OUTBOX_QUEUE)

    async def kick_at(self, instance_name: str, when: datetime) -> None:
        # One job per due time: scheduling the same retry again (after a sweep, say) adds nothing.
        job_id = f"webhooks:{instance_name}:{int(when.timestamp() * 1000)}"
        await self.arq.enqueue_job(
            DELIVER_JOB, instance_name, _queue_name=keys.OUTBOX_QUEUE, _job_id=job_id, _defer_until=when
        )

    async def get(self, instance_name: str, delivery_id: str) -> Delivery | None:
        raw = await self.redis.get(keys.webhook_delivery(instance_name, delivery_id))
        return _load(raw) if raw is not None else None

    async def head(self, instance_name: str) -> Delivery | None:
        """The instance's oldest unsettled delivery: the only one that may be attempted."""
        while (delivery_id := await self.redis.lindex(keys.outbox(instance_name), 0)) is not None:
            found = await self.get(instance_name, delivery_id)
            if found is not None:
                return found
            # Its record was trimmed while a replay queued it again: nothing is left to send.
            await self.redis.lrem(keys.outbox(instance_name), 1, delivery_id)
        return None

    async def record(self, instance_name: str, delivery: Delivery) -> None:
        """Store `delivery` after an attempt; once settled it leaves the FIFO. Counts the attempt."""
        last = delivery.attempts[-1]
        async with self.redis.pipeline(transaction=True) as pipe:
            # xx: the instance may have been deleted during the attempt; its deliveries stay deleted.
            pipe.set(keys.webhook_delivery(instance_name, delivery.id), _dump(delivery), xx=True)
            if delivery.status in SETTLED:
                pipe.lrem(keys.outbox(instance_name), 1, delivery.id)
            if not last.ok:
                pipe.hincrby(keys.WEBHOOK_STATS, "failed", 1)
            if delivery.status == "delivered":
                pipe.hincrby(keys.WEBHOOK_STATS, "delivered", 1)
            elif delivery.status == "dead":
                pipe.hincrby(keys.WEBHOOK_STATS, "deadLettered", 1)
            await pipe.execute()
        if delivery.status in SETTLED:
            await self._trim(instance_name)

    async def _trim(self, instance_name: str) -> None:
        log = keys.webhook_log(instance_name)
        excess = await self.redis.zcard(log) - HISTORY
        if excess <= 0:
            return
        oldest = await self.redis.zrange(log, 0, excess - 1)
        records = await self.redis.mget([keys.webhook_delivery(instance_name, i) for i in oldest])
        gone = [i for i, raw in zip(oldest, records, strict=True) if raw is None or _load(raw).status in SETTLED]
        if gone:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(log, *gone)
                pipe.delete(*(keys.webhook_delivery(instance_name, i) for i in gone))
                await pipe.execute()

    async def page(self, instance_name: str, limit: int, cursor: int | None) -> tuple[list[Delivery], int | None]:
        """Recent deliveries, newest first: up to `limit` published before `cursor`, and the
        cursor of the next page (None on the last one)."""
        upper = f"({cursor}" if cursor is not None else "+inf"
        found = await self.redis.zrevrangebyscore(
            keys.webhook_log(instance_name), upper, "-inf", start=0, num=limit + 1, withscores=True
        )
        shown = found[:limit]
        ids = [delivery_id for delivery_id, _ in shown]
        records = await self.redis.mget([keys.webhook_delivery(instance_name, i) for i in ids]) if ids else []
        deliveries = [_load(raw) for raw in records if raw is not None]
        return deliveries, int(shown[-1][1]) if len(found) > limit else None

    async def replay(self, instance_name: str, delivery_id: str) -> Delivery:
        """Queue a delivered or dead-lettered event again, behind the instance's waiting ones, with
        a fresh retry schedule and the same delivery id."""
        key = keys.webhook_delivery(instance_name, delivery_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            raw = await pipe.get(key)
            if raw is None:
                raise NotFound(f"no delivery {delivery_id!r} for instance {instance_name!r}")
            delivery = _load(raw)
            if delivery.status not in SETTLED:
                raise InvalidState(f"delivery {delivery_id!r} is {delivery.status}: it is queued already")
            queued = delivery.model_copy(
                update={"status": "pending", "tries": 0, "next_attempt_at": None, "delivered_at": None}
            )
            pipe.multi()
            pipe.set(key, _dump(queued))
            pipe.rpush(keys.outbox(instance_name), delivery_id)
            try:
                await pipe.execute()
            except WatchError:
                raise InvalidState(f"delivery {delivery_id!r} is being replayed already") from None
        await self.kick(instance_name)
        return queued

    async def stats(self) -> dict[str, int]:
        """Gateway-wide counters: deliveries delivered, attempts failed, deliveries dead-lettered."""
        counts = await self.redis.hgetall(keys.WEBHOOK_STATS)
        return {field: int(counts.get(field, 0)) for field in STAT_FIELDS}
