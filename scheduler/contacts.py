"""What an inbound message tells the send rules: its sender is no longer a first contact of the
instance, and a message that is exactly an opt-out keyword puts the sender on the tenant's
opt-out list (`contact.opted_out`)."""

from __future__ import annotations

import structlog

from core import keys
from core.instances import InstanceName
from core.redis_client import Redis
from core.suppressions import Suppressions
from webhooks.outbox import Outbox

log = structlog.get_logger(__name__)


class Contacts:
    def __init__(self, redis: Redis, suppressions: Suppressions, outbox: Outbox, opt_out_keywords: tuple[str, ...]):
        self.redis = redis
        self.suppressions = suppressions
        self.outbox = outbox
        self.keywords = frozenset(word.upper() for word in opt_out_keywords)

    async def received(self, name: str, sender: str, text: str | None) -> None:
        await self.redis.sadd(keys.contacts(name), sender)  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
        keyword = (text or "").strip().upper()
        if keyword not in self.keywords:
            return
        tenant_id = InstanceName.parse(name).tenant_id
        if await self.suppressions.add(tenant_id, [sender], f"replied {keyword}", "keyword"):
            log.info("contact.opted_out", instance=name, keyword=keyword)
            await self.outbox.publish(name, "contact.opted_out", {"number": sender, "keyword": keyword})
