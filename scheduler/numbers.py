"""Whether numbers are on WhatsApp, asked of WhatsApp once and then remembered in Redis.

WhatsApp watches how often a number looks others up, so a send does not look its recipient up
each time: `contacts/check` and the pump share the answers. They are kept per tenant, not per
instance: whether a number has an account is a fact about that number, the same seen from any of
the tenant's numbers, so one lookup serves all of them; they are not shared between tenants, whose
contact lists are their own. A "no" is kept for less time than a "yes": people sign up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from core import keys
from core.instances import tenant_of
from core.redis_client import Redis

Lookup = Callable[[Sequence[str]], Awaitable[dict[str, str | None]]]


class NumberCache:
    def __init__(self, redis: Redis, hit_ttl: int, miss_ttl: int) -> None:
        self.redis = redis
        self.hit_ttl = hit_ttl
        self.miss_ttl = miss_ttl

    async def check(self, name: str, numbers: Sequence[str], lookup: Lookup) -> dict[str, str | None]:
        """Each of `numbers` (distinct) with its account's JID, or None when it has none: from the
        cache where it can, the rest from `lookup` (one call), which are then remembered."""
        tenant_id = tenant_of(name)
        cached = await self.redis.mget([keys.on_whatsapp(tenant_id, number) for number in numbers])
        known = {number: jid or None for number, jid in zip(numbers, cached, strict=True) if jid is not None}
        missing = [number for number in numbers if number not in known]
        if missing:
            answers = await lookup(missing)
            async with self.redis.pipeline(transaction=False) as pipe:
                for number in missing:
                    jid = answers.get(number)
                    pipe.set(keys.on_whatsapp(tenant_id, number), jid or "", ex=self.hit_ttl if jid else self.miss_ttl)
                await pipe.execute()
            known.update({number: answers.get(number) for number in missing})
        return {number: known[number] for number in numbers}

    async def on_whatsapp(self, name: str, number: str, lookup: Lookup) -> bool:
        return (await self.check(name, [number], lookup))[number] is not None
