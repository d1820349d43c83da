"""Audit events: an API key issued or revoked, an instance deleted, a queue flushed.

Each is a log line (`audit.<action>`, JSON with the rest) and an event on the gateway-wide stream
GET /events serves the admin key (never a tenant's own stream: tenants do not see each other's
operators). The event has the webhook envelope's shape, `deliveryId` empty: it is never delivered
to a webhook. `by` is the key id that asked (`admin`, a tenant's key id, or `cli`), never a key.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from core import keys
from core.clock import now_iso
from core.redis_client import Redis

log = structlog.get_logger("audit")

# As many as the gateway-wide stream keeps of webhook events (core/lua/outbox_add.lua's EVENTS_KEPT).
EVENTS_KEPT = 100_000


async def record(redis: Redis, action: str, by: str, instance: str | None = None, **data: Any) -> None:
    event = f"audit.{action}"
    log.info(event, by=by, instance=instance, **data)
    envelope = {"event": event, "instanceName": instance, "data": {"by": by, **data}, "timestamp": now_iso()}
    fields = {"instance": instance or "", "delivery": "", "envelope": json.dumps(envelope)}
    await redis.xadd(keys.EVENTS, fields, maxlen=EVENTS_KEPT, approximate=True)  # type: ignore[arg-type]
