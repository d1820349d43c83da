"""A webhook endpoint's state, per instance (API.md, "Webhooks that ride out an outage").

ok: deliveries go as they come. retrying: the head failed and is retried on the seed's schedule
(`GATEWAY_WEBHOOK_RETRY_DELAYS`). down: a head spent its retries; nothing is dead-lettered, every
delivery is held behind the head, and only the head is tried again, at
`GATEWAY_WEBHOOK_PROBE_DELAYS` (the last repeating): its next time is the instance's place in the
existing due-set, so an outage costs nothing per held event. The first 2xx makes it ok and the
deliverer drains the backlog in order. disabled: down for `GATEWAY_WEBHOOK_HOLD`, or switched off
by PATCH; held and new deliveries are dead-lettered until PATCH enables it again.

The state lives in a Redis hash beside the outbox (`keys.webhook_endpoint`), written by the
delivery step that caused it (core/lua/webhook_next.lua), so a restart or a killed worker keeps it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import Field

from core import keys
from core.clock import iso_from_ms, redis_now_ms
from core.records import ApiModel, Timestamp
from core.redis_client import Redis

State = Literal["ok", "retrying", "down", "disabled"]
STATES: tuple[State, ...] = ("ok", "retrying", "down", "disabled")


@dataclass(frozen=True)
class Endpoint:
    state: State = "ok"
    since: int | None = None  # ms: when it entered `state` (None: ok since the instance was created)
    probes: int = 0  # failed tries of the head since the endpoint went down
    previous_secret: str = ""  # sealed: the secret before the last change, while it still signs
    previous_until: int = 0  # ms: until then

    @classmethod
    def of(cls, fields: list[str]) -> Endpoint:
        """From webhook_next.lua's answer: state, since, probes, previousSecret, previousUntil."""
        state, since, probes, previous_secret, previous_until = fields
        return cls(
            state=state if state in STATES else "ok",
            since=int(since) if since else None,
            probes=int(probes or 0),
            previous_secret=previous_secret,
            previous_until=int(previous_until or 0),
        )

    def moved(self, state: State, now_ms: int) -> Endpoint:
        """In `state` from now on (or still, since when it entered it)."""
        return self if state == self.state else replace(self, state=state, since=now_ms, probes=0)

    def since_iso(self) -> str | None:
        return iso_from_ms(self.since) if self.since is not None else None

    def signing_previous(self, now_ms: int) -> str:
        """The sealed previous secret while it still signs beside the current one, else ''."""
        return self.previous_secret if now_ms < self.previous_until else ""


class WebhookStatus(ApiModel):
    """The webhook's part of GET /instance/{name}/status."""

    state: State
    since: Timestamp | None = Field(description="when it entered this state; null: ok since the instance was created")
    pending: int = Field(description="deliveries held or waiting, in order")
    oldest_pending_at: Timestamp | None = Field(description="when the oldest of them was published")


# In an `events` filter: every event (scheduler/events.py names them).
ALL = "*"


def events_field(events: list[str]) -> str | None:
    """The filter as the endpoint hash keeps it for core/lua/outbox_add.lua (None: every event)."""
    return None if ALL in events else f",{','.join(events)},"


class Endpoints:
    """Reads and changes the endpoint's state from the API side."""

    def __init__(self, redis: Redis, rotation_overlap: float) -> None:
        self.redis = redis
        self.rotation_overlap_ms = round(rotation_overlap * 1000)

    async def status(self, name: str) -> WebhookStatus:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.webhook_endpoint(name), ["state", "since"])
            pipe.llen(keys.outbox(name))
            pipe.lindex(keys.outbox(name), 0)
            (state, since), pending, head = await pipe.execute()
        oldest = None
        if head is not None:
            raw = await self.redis.get(keys.webhook_delivery(name, head))
            oldest = json.loads(raw)["createdAt"] if raw else None
        return WebhookStatus(
            state=state if state in STATES else "ok",
            since=iso_from_ms(int(since)) if since else None,
            pending=pending,
            oldest_pending_at=oldest,
        )

    async def events(self, name: str) -> list[str]:
        """The events delivered to the webhook; ["*"]: all of them."""
        wanted = await self.redis.hget(keys.webhook_endpoint(name), "events")  # type: ignore[misc]
        return wanted.strip(",").split(",") if wanted else [ALL]

    async def configure(
        self, name: str, *, events: list[str] | None, enabled: bool | None, moved: bool, previous_secret: str | None
    ) -> bool:
        """Apply a PATCH of the webhook: the `events` filter, `enabled`, a new URL (`moved`: a
        down or disabled endpoint is given a fresh start there), the sealed `previous_secret`
        that keeps signing for the rotation overlap. True when the instance's deliveries should
        be looked at now (re-enabled, moved or disabled)."""
        key, now = keys.webhook_endpoint(name), await redis_now_ms(self.redis)  # the deliverer judges by it
        changes: dict[str, str | int] = {}
        if events is not None:
            wanted = events_field(events)
            if wanted is None:
                await self.redis.hdel(key, "events")  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
            else:
                changes["events"] = wanted
        if enabled is False:
            changes.update(state="disabled", since=now, probes=0)
        elif enabled or moved:
            state = await self.redis.hget(key, "state")  # type: ignore[misc]
            if state not in (None, "ok"):
                changes.update(state="ok", since=now, probes=0)
        if previous_secret is not None:
            changes.update(previousSecret=previous_secret, previousUntil=now + self.rotation_overlap_ms)
        if changes:
            await self.redis.hset(key, mapping=changes)  # type: ignore[misc]
        return "state" in changes
