"""Each tenant's opt-out list: numbers its instances must not write to (core/lua/claim_due.lua
ends such a message `failed` with `opted_out` before any WhatsApp call)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from core import keys
from core.clock import now_iso
from core.redis_client import Redis

Source = Literal["api", "keyword"]


@dataclass(frozen=True)
class Suppression:
    number: str
    reason: str | None
    source: Source
    added_at: str


class Suppressions:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def listing(self, tenant_id: str) -> list[Suppression]:
        found = await self.redis.hgetall(keys.suppressions(tenant_id))  # type: ignore[misc]
        return [_suppression(number, found[number]) for number in sorted(found)]

    async def add(self, tenant_id: str, numbers: list[str], reason: str | None, source: Source) -> list[str]:
        """Suppress the numbers; returns those that were not suppressed before (the others keep
        their first entry)."""
        entry = json.dumps({"reason": reason, "source": source, "addedAt": now_iso()})
        async with self.redis.pipeline(transaction=True) as pipe:
            for number in numbers:
                pipe.hsetnx(keys.suppressions(tenant_id), number, entry)
            added = await pipe.execute()
        return [number for number, new in zip(numbers, added, strict=True) if new]

    async def remove(self, tenant_id: str, number: str) -> bool:
        return bool(await self.redis.hdel(keys.suppressions(tenant_id), number))  # type: ignore[misc]


def _suppression(number: str, raw: str) -> Suppression:
    entry = json.loads(raw)
    return Suppression(number=number, reason=entry["reason"], source=entry["source"], added_at=entry["addedAt"])
