"""Live events for GET /events: every event published to the outbox also goes on two capped Redis
streams (core/lua/webhook_publish.lua), the tenant's and the whole gateway's. A stream entry's id
is the cursor a client hands back (`?since=`) to get what it missed while it was away, however
many API processes came and went meanwhile."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from core import keys
from core.redis_client import Redis

CURSOR = re.compile(r"^\d{1,20}(-\d{1,20})?$")
LATEST = "$"  # only what is published from now on


@dataclass(frozen=True)
class LiveEvent:
    cursor: str
    instance_name: str
    delivery_id: str
    envelope: str  # the webhook body, as signed

    def message(self) -> dict[str, Any]:
        """The webhook envelope, with the cursor to resume after it and the delivery id (the
        webhooks' `x-gateway-delivery`), to tell the same event apart on both channels."""
        return {**json.loads(self.envelope), "cursor": self.cursor, "deliveryId": self.delivery_id}


def stream_of(tenant_id: str | None) -> str:
    """One tenant's stream, or every tenant's (None: the admin's)."""
    return keys.EVENTS if tenant_id is None else keys.tenant_events(tenant_id)


async def read_after(redis: Redis, stream: str, cursor: str, block_ms: int, count: int = 100) -> list[LiveEvent]:
    """The events after `cursor`, oldest first, waiting up to `block_ms` for one to come."""
    found = await redis.xread({stream: cursor}, count=count, block=block_ms)
    events = []
    for _, entries in found:
        for entry_id, fields in entries:
            events.append(LiveEvent(entry_id, fields["instance"], fields["delivery"], fields["envelope"]))
    return events


async def last_cursor(redis: Redis, stream: str) -> str:
    """The id of the newest event on the stream ("0" when it has none)."""
    newest = await redis.xrevrange(stream, count=1)
    return str(newest[0][0]) if newest else "0"
