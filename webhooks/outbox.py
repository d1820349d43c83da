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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import to_json
from redis.exceptions import WatchError

from config import Settings
from core import keys
from core.clock import RedisClock, iso_from_ms, now_ms
from core.errors import InvalidState, NotFound
from core.ids import random_hex
from core.instances import tenant_of
from core.records import ApiModel, Timestamp
from core.redis_client import Pipeline, Redis
from core.scripts import Scripts, record
from webhooks.endpoint import Endpoint

HISTORY = 1000  # settled deliveries listed per instance (dead letters stay replayable beyond it)
REPLAY_STEP = 1000  # dead letters one replay step queues at most
ANSWER_KEPT = 1024  # bytes of the receiver's last answer kept on the delivery
ATTEMPTS_KEPT = 20  # a delivery replayed again and again keeps only its latest attempts
STAT_FIELDS = ("delivered", "failed", "deadLettered")

Status = Literal["pending", "retrying", "delivered", "dead"]
SETTLED: tuple[Status, ...] = ("delivered", "dead")


def _new_id() -> str:
    return f"evt_{now_ms():012x}{random_hex(6)}"


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
    last_status_code: int | None = Field(default=None, description="the receiver's status at the last attempt")
    last_response: str | None = Field(
        default=None, description=f"the first {ANSWER_KEPT} bytes of the receiver's last answer"
    )
    # The envelope, serialized once and signed as is; stored, never shown in the API.
    body: SkipJsonSchema[str] = Field(exclude=True, repr=False)

    @field_validator("attempts", mode="before")
    @classmethod
    def _empty_list(cls, value: object) -> object:
        return [] if value == {} else value  # Lua's cjson writes an empty list as {}

    def due_ms(self) -> int | None:
        """When its retry or probe is due (ms, Redis's clock); None: now."""
        return round(datetime.fromisoformat(self.next_attempt_at).timestamp() * 1000) if self.next_attempt_at else None

    def attempted(self, attempt: Attempt, answer: str | None) -> Delivery:
        """Once `attempt` is made (`answer`: the start of what the receiver said), before it settles."""
        return self.model_copy(
            update={
                "tries": self.tries + 1,
                "attempts": [*self.attempts, attempt][-ATTEMPTS_KEPT:],
                "last_status_code": attempt.status_code,
                "last_response": answer,
            }
        )

    def delivered(self, at: str) -> Delivery:
        return self.model_copy(update={"status": "delivered", "next_attempt_at": None, "delivered_at": at})

    def dead(self) -> Delivery:
        return self.model_copy(update={"status": "dead", "next_attempt_at": None, "delivered_at": None})

    def due(self, at_ms: int) -> Delivery:
        return self.model_copy(update={"status": "retrying", "next_attempt_at": iso_from_ms(at_ms)})


def _dump(delivery: Delivery) -> str:
    """The stored record: the delivery with its body, which the API never shows. JSON by pydantic's
    compiled serialiser (compact, UTF-8 as it is), as every record and body the outbox writes."""
    return to_json({**delivery.model_dump(mode="json", by_alias=True), "body": delivery.body}).decode()


def _load(raw: str) -> Delivery:
    return Delivery.model_validate_json(raw)


def _latency_ms(delivery: Delivery, now_ms: int) -> int:
    """From the event's publication to `now_ms`, when its delivery has just succeeded."""
    return now_ms - round(datetime.fromisoformat(delivery.created_at).timestamp() * 1000)


@dataclass(frozen=True)
class Head:
    """The delivery to attempt next, where it goes, and the instance's sealed webhook secret."""

    delivery: Delivery
    url: str
    sealed_secret: str
    endpoint: Endpoint
    following: tuple[Delivery, ...] = ()  # the deliveries after it, to go in the same batch
    redis_ms: int = 0  # Redis's time when the step handed it out (the deliverer's clock)
    received: float = field(default_factory=time.monotonic)  # and when its answer arrived here

    def batch(self) -> tuple[Delivery, ...]:
        return (self.delivery, *self.following)


@dataclass(frozen=True)
class HeadRow:
    """The head as a script answers it (head_with in core/lua/outbox_add.lua), by name."""

    record: str
    url: str
    sealed_secret: str
    state: str
    since: str
    probes: str
    previous_secret: str
    previous_until: str
    following: list[str]  # the records of the deliveries after it
    now_ms: int  # Redis's time: the clock the deliverer schedules and judges by


def head_of(found: list[Any]) -> Head:
    """The head a script returned (head_with in core/lua/outbox_add.lua), with Redis's time."""
    row = record(HeadRow, found)
    endpoint = Endpoint.of([row.state, row.since, row.probes, row.previous_secret, row.previous_until])
    following = tuple(_load(r) for r in row.following)
    return Head(_load(row.record), row.url, row.sealed_secret, endpoint, following, int(row.now_ms))


@dataclass(frozen=True)
class Settled:
    """A delivery as one step of the deliverer left it: attempted, or dead-lettered untried."""

    delivery: Delivery
    tried: bool = True


@dataclass(frozen=True)
class Limits:
    """How long delivery records live and how many an instance holds (the GATEWAY_WEBHOOK_* settings)."""

    retention: float
    hold: float
    backlog: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.webhook_retention, settings.webhook_hold, settings.webhook_backlog)

    @property
    def pending(self) -> int:
        """Seconds a held record lives: past the hold, and then the retention of the dead letter
        it may become."""
        return math.ceil(self.hold + self.retention)

    def script(self) -> dict[str, int]:
        """As the scripts take them (core/lua/outbox_add.lua)."""
        return {"pending": self.pending, "retention": math.ceil(self.retention), "backlog": self.backlog}


@dataclass(frozen=True)
class Event:
    """An event to publish: its delivery id, what core/lua/outbox_add.lua takes to record it (the
    record, the event's name and body, the limits), and the outbox keys the scripts write."""

    delivery_id: str
    record: str
    keys: list[str]


@dataclass(frozen=True)
class Take:
    """What a delivery loop's take got: the instances whose lock it took, with the head each has to
    deliver; how many it took from the due-set (an instance with nothing left to send, or whose
    lock another deliverer holds, is left out of `heads`); the next due time left (ms, Redis's clock)."""

    heads: dict[str, Head]
    taken: int
    next_due_ms: int | None


class LockLost(Exception):
    """The delivery lock expired under its holder: another worker may be delivering by now."""


class Outbox:
    def __init__(self, redis: Redis, limits: Limits) -> None:
        self.redis = redis
        self.limits = limits
        self.clock = RedisClock()  # learnt from the scripts' answers: what stamps and judges deliveries
        self._limits = limits.script()
        self._limits_json = json.dumps(self._limits)  # what every delivery step passes, made once
        scripts = Scripts.of(redis)
        self._publish = scripts["webhook_publish"]
        self._hand_over = scripts["webhook_hand_over"]
        self._take_due = scripts["webhook_take_due"]
        self._next = scripts["webhook_next"]
        self._replay = scripts["webhook_replay"]

    def event(self, instance_name: str, event: str, data: ApiModel | dict[str, Any]) -> Event:
        """A new event, ready to publish here or inside another step (see core/lua/outbox_add.lua).
        `data` is the record scheduler/events.py names for `event` (or, still, its wire form)."""
        created_at = iso_from_ms(self.clock.now_ms())
        envelope = {"event": event, "instanceName": instance_name, "data": data, "timestamp": created_at}
        # The body, the record and the publication each in one step of pydantic's serialiser (`data`,
        # a model, by its aliases): json.dumps and model_dump took 40 us an event, a tenth of a send.
        body = to_json(envelope, by_alias=True).decode()
        delivery = Delivery(id=_new_id(), event=event, status="pending", created_at=created_at, body=body)
        script_keys = [
            keys.webhook_delivery(instance_name, delivery.id),
            keys.outbox(instance_name),
            keys.webhook_log(instance_name),
            keys.webhook_seq(instance_name),
            keys.WEBHOOK_DUE,
            keys.WEBHOOK_BELL,
            keys.instance(instance_name),
            keys.webhook_lock(instance_name),
            keys.tenant_events(tenant_of(instance_name)),
            keys.EVENTS,
            keys.webhook_endpoint(instance_name),
            keys.webhook_dead(instance_name),
            keys.WEBHOOK_STATS,
        ]
        publication = {"record": _dump(delivery), "event": event, "envelope": body, "limits": self._limits}
        return Event(delivery.id, to_json(publication).decode(), script_keys)

    async def publish(self, instance_name: str, event: str, data: ApiModel | dict[str, Any]) -> str:
        """Record `event` for `instance_name`'s webhook and make the instance due, in one step;
        returns the delivery id (the `x-gateway-delivery` header). An event of an instance that
        is gone, or going, is dropped."""
        ready = self.event(instance_name, event, data)
        await self._publish(keys=ready.keys, args=[ready.delivery_id, ready.record, instance_name])
        return ready.delivery_id

    async def kick(self, instance_name: str, at_ms: int | None = None, token: str = "", *, jump: bool = False) -> None:
        """Make the instance due now by Redis's clock (unless it is due earlier already, or
        `jump`ing that), or at `at_ms` (Redis's clock). The lock holder passes its `token` to let
        go of the lock in the same step (core/lua/webhook_hand_over.lua)."""
        await self._hand_over(
            keys=[keys.webhook_lock(instance_name), keys.WEBHOOK_DUE, keys.WEBHOOK_BELL],
            args=[token, instance_name, "" if at_ms is None else at_ms, int(at_ms is None and not jump)],
        )

    async def take_due(self, room: int, token: str, lock_seconds: float, wait: float = 0.0) -> Take:
        """Up to `room` instances whose events are due, each to this caller only, with the delivery
        lock of each taken under `token` and its head to deliver (core/lua/webhook_take_due.lua).
        With a `wait` (s), first sleep that long at most, or until an instance is made due (its bell
        rings): the wait and the take after it are one pipeline, one round trip."""
        script_keys, args = [keys.WEBHOOK_DUE, keys.WEBHOOK_BELL], [room, token, math.ceil(lock_seconds * 1000)]
        found = await self._take_due.after_wait(keys.WEBHOOK_BELL, wait, script_keys, args) if wait > 0 else None
        if found is None:
            found = await self._take_due(keys=script_keys, args=args)
        self.clock.learn(int(found[0]), time.monotonic())
        heads = {found[i]: head_of(found[i + 1]) for i in range(3, len(found), 2)}
        return Take(heads, int(found[2]), int(found[1]) if found[1] else None)

    async def next(
        self,
        instance_name: str,
        token: str,
        lock_seconds: float,
        *,
        attempted: Sequence[Settled] = (),
        endpoint: Endpoint | None = None,
        batch: int = 1,
    ) -> Head | None:
        """One step of the delivering worker (core/lua/webhook_next.lua): store the `attempted`
        deliveries and the `endpoint` state they led to, then the head to attempt next (with up to
        `batch` - 1 deliveries after it), the lock renewed for it; None once the FIFO is empty (the
        lock is let go then). Raises LockLost."""
        records: list[Any] = []
        for done in attempted:
            delivery = done.delivery
            settled = delivery.status if delivery.status in SETTLED else ""
            latency = _latency_ms(delivery, self.clock.now_ms()) if delivery.status == "delivered" else ""
            failed = done.tried and not delivery.attempts[-1].ok
            counted = (failed, delivery.status == "delivered", delivery.status == "dead")
            records += [delivery.id, _dump(delivery), settled, latency, *(int(yes) for yes in counted)]
        state: list[Any] = ["", "", ""]
        if endpoint is not None:
            state = [endpoint.state, endpoint.since or "", endpoint.probes]
        found = await self._next(
            keys=[
                keys.webhook_lock(instance_name),
                keys.outbox(instance_name),
                keys.webhook_log(instance_name),
                keys.WEBHOOK_STATS,
                keys.instance(instance_name),
                keys.webhook_endpoint(instance_name),
                keys.webhook_dead(instance_name),
            ],
            args=[
                token,
                math.ceil(lock_seconds * 1000),
                keys.webhook_delivery(instance_name, ""),
                HISTORY,
                self._limits_json,
                *state,
                batch,
                *records,
            ],
        )
        if found == "lost":
            raise LockLost(instance_name)
        return head_of(found) if found is not None else None

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
            pipe.set(key, _dump(queued), ex=self.limits.pending)
            pipe.rpush(keys.outbox(instance_name), delivery_id)
            pipe.zrem(keys.webhook_dead(instance_name), delivery_id)
            try:
                await pipe.execute()
            except WatchError:
                raise InvalidState(f"delivery {delivery_id!r} is being replayed already") from None
        await self.kick(instance_name)
        return queued

    async def replay_dead(self, instance_name: str, since: str | None, until: str | None) -> int:
        """Queue every dead letter created within [since, until] again, in publication order,
        behind the held deliveries; how many. Bounded steps (core/lua/webhook_replay.lua)."""
        replayed, after = 0, "-inf"
        while after:
            found = await self._replay(
                keys=[keys.webhook_dead(instance_name), keys.outbox(instance_name), keys.instance(instance_name)],
                args=[after, since or "", until or "", keys.webhook_delivery(instance_name, ""), REPLAY_STEP,
                      self.limits.pending],
            )  # fmt: skip
            replayed += int(found[0])
            after = found[1]
        if replayed:
            await self.kick(instance_name)
        return replayed

    async def delivery_ids(self, instance_name: str) -> list[str]:
        logged = await self.redis.zrange(keys.webhook_log(instance_name), 0, -1)
        dead = await self.redis.zrange(keys.webhook_dead(instance_name), 0, -1)
        return list({*logged, *dead})

    def forget(self, pipe: Pipeline, instance_name: str, delivery_ids: list[str]) -> None:
        """Queue the deletion of a deleted instance's outbox and deliveries (`delivery_ids`)."""
        name = instance_name
        pipe.delete(keys.outbox(name), keys.webhook_log(name), keys.webhook_seq(name))
        pipe.delete(keys.webhook_endpoint(name), keys.webhook_dead(name))
        if delivery_ids:
            pipe.delete(*(keys.webhook_delivery(name, d) for d in delivery_ids))

    async def stats(self) -> dict[str, int]:
        """Gateway-wide counters: deliveries delivered, attempts failed, deliveries dead-lettered."""
        counts = await self.redis.hgetall(keys.WEBHOOK_STATS)  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
        return {field: int(counts.get(field, 0)) for field in STAT_FIELDS}
