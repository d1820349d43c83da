"""The event outbox: every event is written to Redis before any delivery is tried.

Each instance has a FIFO of delivery ids (`keys.outbox`). Its head is delivered, retries
included, before the next one goes, so a receiver sees an instance's events in the order they
happened. A delivery is one JSON record holding the exact body that gets signed, its status and
its attempts; a log of ids keeps recent deliveries listable and replayable after they settle.

Publishing, each delivery step and handing over are one Lua script each (core/lua/webhook_*.lua),
one round trip apiece and never half-done. An instance whose events are due is in one sorted set
that every worker's delivery loop takes from (`keys.WEBHOOK_DUE`, webhooks/delivery.py).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from redis.exceptions import WatchError

from core import keys
from core.clock import iso, now_iso, now_ms
from core.errors import InvalidState, NotFound
from core.instances import tenant_of
from core.records import ApiModel, Timestamp
from core.redis_client import Pipeline, Redis
from core.scripts import lua

HISTORY = 1000  # settled deliveries kept per instance, for the listing and for replays
ATTEMPTS_KEPT = 20  # a delivery replayed again and again keeps only its latest attempts
STAT_FIELDS = ("delivered", "failed", "deadLettered")
# Events kept for GET /events?since= (about: Redis trims streams by whole blocks): how far back a
# client that was away can catch up.
TENANT_EVENTS_KEPT = 10_000
EVENTS_KEPT = 100_000

Status = Literal["pending", "retrying", "delivered", "dead"]
SETTLED: tuple[Status, ...] = ("delivered", "dead")


def _new_id() -> str:
    return f"evt_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


class Attempt(ApiModel):
    at: Timestamp
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
    created_at: Timestamp
    next_attempt_at: Timestamp | None = None
    delivered_at: Timestamp | None = None
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


def _latency_ms(delivery: Delivery) -> int:
    """From the event's publication to now, when its delivery has just succeeded."""
    return round((datetime.now(UTC) - datetime.fromisoformat(delivery.created_at)).total_seconds() * 1000)


@dataclass(frozen=True)
class Head:
    """The delivery to attempt next, where it goes, and the instance's sealed webhook secret."""

    delivery: Delivery
    url: str
    sealed_secret: str


class LockLost(Exception):
    """The delivery lock expired under its holder: another worker may be delivering by now."""


class Outbox:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._publish = redis.register_script(lua("webhook_publish"))
        self._hand_over = redis.register_script(lua("webhook_hand_over"))
        self._take_due = redis.register_script(lua("webhook_take_due"))
        self._next = redis.register_script(lua("metrics", "webhook_next"))

    async def publish(self, instance_name: str, event: str, data: dict[str, Any]) -> str:
        """Record `event` for `instance_name`'s webhook and make the instance due, in one step;
        returns the delivery id (the `x-gateway-delivery` header). An event of an instance that
        is gone, or going, is dropped."""
        created_at = now_iso()
        envelope = {"event": event, "instanceName": instance_name, "data": data, "timestamp": created_at}
        delivery = Delivery(
            id=_new_id(), event=event, status="pending", created_at=created_at, body=json.dumps(envelope)
        )
        await self._publish(
            keys=[
                keys.webhook_delivery(instance_name, delivery.id),
                keys.outbox(instance_name),
                keys.webhook_log(instance_name),
                keys.webhook_seq(instance_name),
                keys.WEBHOOK_DUE,
                keys.WEBHOOK_BELL,
                keys.instance(instance_name),
                keys.tenant_events(tenant_of(instance_name)),
                keys.EVENTS,
            ],
            args=[
                delivery.id,
                _dump(delivery),
                now_ms(),
                instance_name,
                delivery.body,
                TENANT_EVENTS_KEPT,
                EVENTS_KEPT,
            ],
        )
        return delivery.id

    async def kick(self, instance_name: str, at: datetime | None = None, token: str = "") -> None:
        """Make the instance due now (unless it is due already), or at `at`. The lock holder
        passes its `token` to let go of the lock in the same step (core/lua/webhook_hand_over.lua)."""
        due = now_ms() if at is None else math.ceil(at.timestamp() * 1000)
        await self._hand_over(
            keys=[keys.webhook_lock(instance_name), keys.WEBHOOK_DUE, keys.WEBHOOK_BELL],
            args=[token, instance_name, due, int(at is None)],
        )

    async def take_due(self, room: int) -> tuple[list[str], int | None]:
        """Up to `room` instances whose events are due, each to this caller only, and the next
        due time left (ms)."""
        found = await self._take_due(keys=[keys.WEBHOOK_DUE, keys.WEBHOOK_BELL], args=[now_ms(), room])
        return list(found[1:]), int(found[0]) if found[0] else None

    async def wait_bell(self, timeout: float) -> None:
        """Sleep up to `timeout` s, or until an instance is made due."""
        await self.redis.blpop([keys.WEBHOOK_BELL], timeout=timeout)  # type: ignore[arg-type]  # fractional

    async def next(
        self,
        instance_name: str,
        token: str,
        lock_seconds: float,
        *,
        claim: bool = False,
        attempted: Delivery | None = None,
    ) -> Head | None:
        """One step of the delivering worker (core/lua/webhook_next.lua): store the `attempted` delivery, then
        the head to attempt next, the lock renewed for it; None once the FIFO is empty (the lock
        is let go then), or when `claim`ing a lock another worker holds (it delivers what
        is queued meanwhile). Raises LockLost."""
        record: list[Any] = []
        if attempted is not None:
            counted = {
                "failed": not attempted.attempts[-1].ok,
                "delivered": attempted.status == "delivered",
                "deadLettered": attempted.status == "dead",
            }
            settled = int(attempted.status in SETTLED)
            latency = _latency_ms(attempted) if attempted.status == "delivered" else ""
            counts = (field for field, yes in counted.items() if yes)
            record = [attempted.id, _dump(attempted), settled, latency, *counts]
        found = await self._next(
            keys=[
                keys.webhook_lock(instance_name),
                keys.outbox(instance_name),
                keys.webhook_log(instance_name),
                keys.WEBHOOK_STATS,
                keys.instance(instance_name),
            ],
            args=[
                token,
                math.ceil(lock_seconds * 1000),
                int(claim),
                keys.webhook_delivery(instance_name, ""),
                HISTORY,
                *record,
            ],
        )
        if found == "lost":
            raise LockLost(instance_name)
        if found is None:
            return None
        raw, url, sealed_secret = found
        return Head(_load(raw), url, sealed_secret)

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

    async def delivery_ids(self, instance_name: str) -> list[str]:
        return list(await self.redis.zrange(keys.webhook_log(instance_name), 0, -1))

    def forget(self, pipe: Pipeline, instance_name: str, delivery_ids: list[str]) -> None:
        """Queue the deletion of a deleted instance's outbox and deliveries (`delivery_ids`)."""
        name = instance_name
        pipe.delete(keys.outbox(name), keys.webhook_log(name), keys.webhook_seq(name))
        if delivery_ids:
            pipe.delete(*(keys.webhook_delivery(name, d) for d in delivery_ids))

    async def stats(self) -> dict[str, int]:
        """Gateway-wide counters: deliveries delivered, attempts failed, deliveries dead-lettered."""
        counts = await self.redis.hgetall(keys.WEBHOOK_STATS)
        return {field: int(counts.get(field, 0)) for field in STAT_FIELDS}
