"""The event outbox: every event is written to Redis before any delivery is tried."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from gateway.redis_client import Redis
from scheduler import keys


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Outbox:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def publish(self, instance_name: str, event: str, data: dict[str, Any]) -> str:
        """Record `event` for `instance_name`'s webhook; returns the delivery id."""
        delivery_id = f"evt_{int(time.time() * 1000):x}{secrets.token_hex(6)}"
        envelope = {"event": event, "instanceName": instance_name, "data": data, "timestamp": now_iso()}
        record = json.dumps({"id": delivery_id, "envelope": envelope})
        await self.redis.rpush(keys.outbox(instance_name), record)
        return delivery_id

    async def pending(self, instance_name: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in await self.redis.lrange(keys.outbox(instance_name), 0, -1)]
