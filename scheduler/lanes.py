"""The per-instance lanes in Redis and each worker's due-set of wake-ups: accept, claim, finish,
flush, kick and sweep, each one Lua script (core/lua/), so concurrent senders, claim loops and
flushes can never see each other half-done."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import msgpack
from pydantic_core import to_json

from config import LaneConfig, Settings
from config.settings import LaneName, ThrottleConfig
from core import keys
from core.clock import now_ms
from core.errors import Unavailable
from core.redis_client import Pipeline, Redis
from core.scripts import Script, Scripts, lua_literal, record
from core.tenants import KeyCheck
from scheduler.drivers.base import Account
from scheduler.messages import FIELDS, RECENT_KEPT, Message
from scheduler.numbers import decode
from webhooks.outbox import Event, Head, head_of

# How long accepting a message waits for the replicas to confirm it (see Lanes.accept).
REPLICA_WAIT_MS = 1000

Outcome = Literal["sent", "failed", "failed_uncounted", "requeue"]
# What an outcome says about the number's standing with WhatsApp (core/lua/finish.lua judges the
# last few): sent, not on WhatsApp, failed by WhatsApp, or nothing (a retry, a bad media URL).
Signal = Literal["s", "n", "f", ""]
Owner = tuple[str, int]  # (worker id, epoch): who may send for an instance, checked in the scripts


# How long a batch item's clientRef keeps it from being queued twice.
CLIENT_REF_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Accepting:
    """A message to accept, and the client's reference for it, if any."""

    message: Message
    client_ref: str | None = None


@dataclass(frozen=True)
class Acceptance:
    """What accepting found: per message None (queued now) or the id its client reference queued
    before; `earlier` is None when nothing was recorded. With a key check, the key's tenant ('' for
    the admin or an unknown key) and its count this minute, as core/lua/authorize.lua found them."""

    earlier: list[str | None] | None
    tenant: str = ""
    count: int = 0
    full: bool = False  # nothing recorded: the instance's lanes hold the queue limit already


DEFAULT_QUEUE_LIMIT = 100_000  # messages waiting per instance (API.md: GATEWAY_QUEUE_LIMIT)

# Messages flush.lua cancels in one call: enough to be quick, few enough never to hold Redis long.
FLUSH_CHUNK = 200

# claim_due.lua's answer for a recipient the number cache does not know.
UNKNOWN = "?"


@dataclass(frozen=True)
class Claimed:
    """An instance the claim loop took: the message to send (already `sending`), if any, picked
    under `epoch`, messages ended unsent on the way (expired, or to an opted-out recipient), and
    the reason of a bulk-lane pause that ended now, if one did."""

    name: str
    epoch: int
    message: Message | None
    ended: tuple[str, ...]
    unthrottled: str | None = None
    # Whether the message's recipient is on WhatsApp, as the number cache knew it when the message
    # was picked (scheduler/numbers.py); None when the cache did not know. With a yes, its account.
    on_whatsapp: bool | None = None
    account: Account | None = None
    at: float = field(default_factory=time.monotonic)  # when the claim was asked (monotonic: counts pauses too)


@dataclass(frozen=True)
class Taken:
    """One instance claim_due.lua took, as it answers it (by name)."""

    name: str
    epoch: int
    ended: str  # JSON list of the ids ended unsent
    message: str  # JSON fields of the message picked, '' for none
    resumed: str  # the reason of a bulk pause that ended now, ''
    known: str  # the number cache's account of the recipient, '' not on WhatsApp, UNKNOWN

    def claimed(self, asked: float) -> Claimed:
        return Claimed(
            name=self.name,
            epoch=self.epoch,
            message=Message.from_hash(json.loads(self.message)) if self.message else None,
            ended=tuple(json.loads(self.ended)),
            unthrottled=self.resumed or None,
            on_whatsapp=None if self.known == UNKNOWN else bool(self.known),
            account=None if self.known == UNKNOWN else decode(self.known),
            at=asked,
        )


@dataclass(frozen=True)
class Accepted:
    """accept.lua's answer (by name): see Acceptance for what it means."""

    recorded: int  # 1, 0 (not allowed, or no instance), -1 (queue full)
    tenant: str
    count: int
    earlier: list[str]


@dataclass(frozen=True)
class Finished:
    """finish.lua's answer when it recorded the outcome (by name)."""

    published: Any  # 1, or the webhook head (a list) to deliver under the lock
    paused: str  # the reason of a bulk pause that started now, ''
    paused_until: int


@dataclass(frozen=True)
class LaneHead:
    """waiting.lua's answer for one lane (by name)."""

    lane: str
    head: str
    reason: str
    until_ms: str  # '' when it depends on something else


@dataclass(frozen=True)
class Quota:
    per_hour: int
    per_day: int
    warmup: float  # the factor applied to the lane's configured quotas
    first_contact_per_day: int | None


def rules(
    lanes: dict[LaneName, LaneConfig], day_ms: int, throttle: ThrottleConfig, queue_limit: int = DEFAULT_QUEUE_LIMIT
) -> dict[str, Any]:
    """What the lane scripts enforce (ARGV 3 of core/lua/common.lua); -1 is "no limit"."""
    return {
        "lanes": {
            name: {
                "perHour": c.per_hour,
                "perDay": c.per_day,
                "warmup": list(c.warmup),
                "firstContactPerDay": -1 if c.first_contact_per_day is None else c.first_contact_per_day,
                "spacing": int(c.spacing * 1000),
            }
            for name, c in lanes.items()
        },
        "day": day_ms,
        "throttle": {
            "window": throttle.window,
            "notOnWhatsapp": throttle.not_on_whatsapp,
            "failures": throttle.failures,
            "pause": int(throttle.pause * 1000),
        },
        "queueLimit": queue_limit,
    }


@dataclass(frozen=True)
class Throttle:
    """The bulk lane's pause after WhatsApp signalled trouble: why, and until when (ms)."""

    reason: str
    until_ms: int


# Why a pending message waits (API.md, "Every waiting message says why"); core/lua/waiting.lua.
WaitReason = Literal[
    "queued",
    "gap",
    "hourly_quota",
    "daily_quota",
    "warmup",
    "first_contact",
    "spacing",
    "throttled",
    "not_connected",
    "retry",
]


@dataclass(frozen=True)
class Waiting:
    """Why a lane's head message waits, and the earliest time (ms) it can go (None when that
    depends on something else: the number linking, the messages ahead of it)."""

    reason: WaitReason
    until_ms: int | None


# What a message behind its lane's head waits for.
BEHIND = Waiting("queued", None)


@dataclass(frozen=True)
class Claim:
    taken: list[Claimed]
    next_due_ms: int | None  # the earliest wake-up left in the worker's due-set


def fields_stream(fields: list[str | int]) -> bytes:
    """A record for accept.lua: its fields and values (Message.stored_fields) one after the other,
    each a msgpack object, which `cmsgpack.unpack` hands to HSET in C. Decoding the record's JSON
    into them in Lua cost Redis about 95k instructions a message, this about 29k (callgrind,
    2026-12-07). It is msgpack's array of them without the array's header: one byte up to 15
    items, three up to 65,535 (a record has 26 fields at most)."""
    packed: bytes = msgpack.packb(fields)
    return packed[1 if len(fields) < 16 else 3 :]


class Lanes:
    def __init__(
        self,
        redis: Redis,
        lanes: dict[LaneName, LaneConfig],
        retention_seconds: int,
        max_wait_ms: int,
        clock: Callable[[], int] | None = None,
        replica_acks: int = 0,
        day_ms: int = 24 * 3600 * 1000,
        throttle: ThrottleConfig | None = None,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        self.redis = redis
        self.replica_acks = replica_acks
        self.clock = clock
        self.lanes = lanes
        self.retention = retention_seconds
        self.max_wait_ms = max_wait_ms
        self.day_ms = day_ms
        # In every lane script's source (core/lua/common.lua RULES), not its arguments.
        self._rules = f"local RULES = {lua_literal(rules(lanes, day_ms, throttle or ThrottleConfig(), queue_limit))}"
        self._scripts = Scripts.of(redis)

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> Lanes:
        return cls(
            redis,
            settings.lanes,
            settings.message_retention,
            settings.message_max_wait * 1000,
            replica_acks=settings.replica_acks(),
            day_ms=settings.day_length * 1000,
            throttle=settings.throttle,
            queue_limit=settings.queue_limit,
        )

    def script(self, name: str) -> Script:
        """Lane script `name` (core/scripts.py SCRIPTS) under these lanes' rules."""
        return self._scripts.with_constants(name, self._rules)

    def _run(
        self, script: str, name: str, *args: Any, script_keys: list[str] | None = None, client: Any = None
    ) -> Awaitable[Any]:
        """The lane script's answer, to await (asked for as the call is made)."""
        return self.script(script)(keys=script_keys or [], args=[*self._common(name), *args], client=client)

    def _common(self, name: str) -> list[Any]:
        """ARGV 1 and 2 of every lane script (core/lua/common.lua): now_ms, instance."""
        # '' : Redis's own clock (core/lua/common.lua), shared by every worker for gaps, quotas,
        # claims and expiry; a clock given here (tests) replaces it.
        now = "" if self.clock is None else self.clock()
        return [now, name]

    async def accept(self, name: str, messages: list[Accepting], key_check: KeyCheck | None = None) -> Acceptance:
        """Record the messages, queue them and wake the instance: one atomic step. For each
        message, None when it was queued now, or the id of the message its client reference
        queued before (then it is not queued again). Nothing is recorded when the instance does
        not exist, or, with a `key_check`, when the API key may not send on it (unknown, over its
        limit, another tenant's): the key is checked and counted in the same step.

        With `replica_acks`, the same round trip waits for that many replicas to hold them (Redis
        WAIT), so a failover to one of them cannot lose a message the API answered 202 for; when
        they do not confirm in time, what still waits is taken back and Unavailable raised."""
        check = key_check.presented if key_check else ""
        args: list[Any] = [
            CLIENT_REF_SECONDS,
            RECENT_KEPT,
            check,
            key_check.ttl if key_check else "",
            key_check.limit if key_check else "",
        ]
        for item in messages:
            ref_key = keys.client_ref(name, item.client_ref) if item.client_ref else ""
            args += [item.message.id, item.message.lane, fields_stream(item.message.stored_fields()), ref_key]
        script_keys = key_check.keys if key_check else None
        if not self.replica_acks:
            found = record(Accepted, await self._run("accept", name, *args, script_keys=script_keys))
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._run("accept", name, *args, script_keys=script_keys, client=pipe)
                pipe.wait(self.replica_acks, REPLICA_WAIT_MS)
                answered, acked = await pipe.execute()
            found = record(Accepted, answered)
            if found.recorded == 1 and acked < self.replica_acks:
                queued = [item.message.id for item, known in zip(messages, found.earlier, strict=True) if not known]
                await self._withdraw(name, queued)
        earlier = [known or None for known in found.earlier] if found.recorded == 1 else None
        return Acceptance(earlier, found.tenant, found.count, full=found.recorded == -1)

    async def _withdraw(self, name: str, message_ids: list[str]) -> None:
        unconfirmed = f"not confirmed by {self.replica_acks} Redis replica(s) within {REPLICA_WAIT_MS} ms"
        # Still waiting: taken back, so the 503 means "not queued". Picked meanwhile: it is on its
        # way to WhatsApp already, and the 202 would have said so; the 503 names what to check.
        taken_back = await self._run("withdraw", name, self.retention, f"cancelled: {unconfirmed}", *message_ids)
        if taken_back == 1:
            raise Unavailable(f"the message was {unconfirmed}, so it was not queued; send it again")
        if taken_back:
            raise Unavailable(f"{taken_back} messages were {unconfirmed}, so they were not queued; send them again")

    async def cancel(self, name: str, message_id: str, error: str) -> bool:
        """End a waiting message `cancelled`, taking it out of its lane in one step: False when it
        was not waiting (a claim picked it first, or it ended)."""
        return bool(await self._run("withdraw", name, self.retention, error, message_id))

    async def claim_due(
        self,
        worker_id: str,
        room: int,
        expired_fields: dict[str, Any],
        opted_out_fields: dict[str, Any],
        wait: float = 0.0,
    ) -> Claim:
        """Take up to `room` of the worker's due instances and pick what each sends now. With a
        `wait` (s), first sleep that long at most, or until a wake-up earlier than the worker's
        others is added (its bell rings): the wait and the claim after it are one round trip, as
        Redis runs a pipeline's commands in order, the claim once the wait is over."""
        args: list[Any] = [
            worker_id,
            room,
            self.max_wait_ms,
            self.retention,
            json.dumps(expired_fields),
            json.dumps(opted_out_fields),
        ]
        # The claim's time is taken before it is sent: a pause before its answer (a frozen process)
        # then counts against the lease, and the pump checks it still owns the instance before
        # sending (scheduler/pump.py recheck_after). Taken after, such a pause went unseen.
        asked = time.monotonic()
        found = None
        if wait > 0:  # its time is Redis's when the wait ends: ours now would be stale by then
            claim_due = self.script("claim_due")
            found = await claim_due.after_wait(keys.due_bell(worker_id), wait, args=["", *self._common("")[1:], *args])
        if found is None:
            found = await self._run("claim_due", "", *args)
        next_due, *rows = found
        taken = [record(Taken, row).claimed(asked) for row in rows]
        return Claim(taken, int(next_due) if next_due else None)

    async def ring(self, worker_id: str) -> None:
        """Cut short the worker's wait for its next claim."""
        await self.redis.rpush(keys.due_bell(worker_id), 1)  # type: ignore[misc]

    async def finish(
        self,
        name: str,
        owner: Owner,
        message_id: str,
        outcome: Outcome,
        fields: dict[str, Any],
        retry_after_ms: int = 0,
        event: Event | None = None,
        webhook_lock: tuple[str, int] = ("", 0),
        signal: Signal = "",
    ) -> tuple[Head | bool, Throttle | None]:
        """Record the outcome of the message in flight and schedule the instance's next wake-up,
        publishing `event` (how it ended) in the same step; a requeued message waits `retry_after_ms`
        from now by Redis's clock (the one the claim judges it by). With a `webhook_lock` (token, ms),
        when the event can be delivered at once, the lock is taken and its head returned.
        False when it was not ours to record: fenced off, or recorded already. Beside it, the
        bulk lane's pause when this outcome started one (core/lua/finish.lua judges the last few)."""
        gaps = {lane: int(random.uniform(*config.gap) * 1000) for lane, config in self.lanes.items()}
        wa_key = keys.whatsapp_id(name, fields[FIELDS["wa_message_id"]]) if outcome == "sent" else ""
        args = [
            message_id,
            outcome,
            to_json(fields).decode(),  # pydantic's compiled serialiser: a third of json.dumps' time
            to_json(gaps).decode(),
            retry_after_ms,
            self.retention,
            wa_key,
            *owner,
            event.delivery_id if event else "",
            event.record if event else "",
            *webhook_lock,
            signal,
        ]
        found = await self._run("finish", name, *args, script_keys=event.keys if event else None)
        if not found:
            return False, None
        done = record(Finished, found)
        throttle = Throttle(done.paused, done.paused_until) if done.paused else None
        return (head_of(done.published) if isinstance(done.published, list) else bool(done.published)), throttle

    async def waiting(self, name: str) -> dict[LaneName, tuple[str, Waiting]]:
        """Per lane with messages, its head message's id and why it waits; computed on read."""
        heads = [record(LaneHead, row) for row in await self._run("waiting", name)]
        return {
            cast(LaneName, head.lane): (
                head.head,
                Waiting(cast(WaitReason, head.reason), int(head.until_ms) if head.until_ms else None),
            )
            for head in heads
        }

    async def throttle(self, name: str, reason: str, until_ms: int) -> None:
        """Pause the instance's bulk lane until `until_ms` (a longer pause already set stays)."""
        await self._run("throttle", name, until_ms, reason)

    async def unthrottle(self, name: str) -> str | None:
        """Lift the bulk lane's pause now; the reason it had, or None when it had none."""
        return await self._run("throttle", name, "", "") or None

    async def standing(self, name: str) -> Throttle | None:
        """The bulk lane's pause, while it lasts."""
        until, reason = await self.redis.hmget(keys.pump(name), ["throttledUntil", "throttleReason"])  # type: ignore[misc]
        if until is None or int(until) <= self._now():
            return None
        return Throttle(reason or "unknown", int(until))

    def quotas_today(
        self, first_linked_ms: int | None, override: float | None, cautious: bool
    ) -> dict[LaneName, Quota]:
        """Each lane's quotas today, scaled by its warm-up factor as core/lua/common.lua `warmup`:
        an admin's override, else the schedule for a cautious instance, else none."""
        day = self.warmup_day(first_linked_ms)
        found: dict[LaneName, Quota] = {}
        for lane, config in self.lanes.items():
            factor = 1.0
            if override is not None:
                factor = override
            elif cautious:
                factor = config.warmup[min(day, len(config.warmup) - 1)]
            found[lane] = Quota(
                per_hour=max(1, int(config.per_hour * factor)),
                per_day=max(1, int(config.per_day * factor)),
                warmup=factor,
                first_contact_per_day=config.first_contact_per_day if cautious else None,
            )
        return found

    def warmup_day(self, first_linked_ms: int | None) -> int:
        """Days since the first link (0 on that day and before any link)."""
        return max(0, (self._now() - first_linked_ms) // self.day_ms) if first_linked_ms else 0

    def _now(self) -> int:
        return now_ms() if self.clock is None else self.clock()

    async def flush(self, name: str, fields: dict[str, Any]) -> list[str]:
        """Cancel what waits in the instance's lanes; returns the cancelled ids."""
        return await self._flush(name, fields, "0", "")

    async def retire(self, name: str, fields: dict[str, Any], inflight_error: str) -> list[str]:
        """Flush for a deleted instance: it accepts nothing more, and a message in flight ends failed."""
        return await self._flush(name, fields, "1", inflight_error)

    async def _flush(self, name: str, fields: dict[str, Any], retiring: str, inflight_error: str) -> list[str]:
        """flush.lua, FLUSH_CHUNK messages a call, until none waits. Messages queued meanwhile go
        too, but only as many calls as the backlog first needed (and one more) are made."""
        cancelled: list[str] = []
        calls, budget = 0, 1
        while calls < budget:
            left, *ids = await self._run(
                "flush", name, self.retention, json.dumps(fields), retiring, inflight_error, FLUSH_CHUNK
            )
            cancelled += ids
            if calls == 0:
                budget = int(left) // FLUSH_CHUNK + 2
            calls += 1
            if not int(left):
                break
        return cancelled

    def forget(self, pipe: Pipeline, name: str) -> None:
        """Queue the deletion of a deleted instance's lanes, wake-up, own quota counts (a linked
        phone's pace and quota windows stay with the phone), recent-messages index and the keys of
        its deliverability rules."""
        pipe.delete(*(keys.lane(name, lane) for lane in self.lanes), keys.pump(name), keys.recent_messages(name))
        pipe.delete(*(keys.sent_times(name, lane) for lane in self.lanes), *keys.deliverability_keys(name))

    async def kick(self, name: str, reset: bool = False) -> str | None:
        """Wake the instance now if it has work; with `reset`, first take back a previous owner's
        in-flight message."""
        requeued = await self._run("kick", name, "1" if reset else "0")
        return requeued or None

    async def sweep(self, worker_id: str, owned: list[str], running: set[str]) -> list[str]:
        """Repair the worker's instances whose wake-up was lost (see core/lua/sweep.lua); only call
        it while no claim is under way. Returns the instances it had to act on."""
        return list(await self._run("sweep", "", worker_id, json.dumps(owned), json.dumps(sorted(running))))
