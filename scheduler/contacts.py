"""What an inbound message tells the send rules: its sender is no longer a first contact of the
instance, and a message that is exactly an opt-out keyword puts the sender on the tenant's
opt-out list (`contact.opted_out`)."""

from __future__ import annotations

import structlog

from core import keys
from core.instances import InstanceName
from core.redis_client import Redis
from core.suppressions import Suppressions
from scheduler.drivers.base import LID_SUFFIX, Account
from scheduler.event_data import ContactOptedOutData
from scheduler.numbers import USER_SERVER, NumberCache
from webhooks.outbox import Outbox

log = structlog.get_logger(__name__)


class Contacts:
    def __init__(
        self,
        redis: Redis,
        suppressions: Suppressions,
        outbox: Outbox,
        opt_out_keywords: tuple[str, ...],
        numbers: NumberCache,
    ):
        self.redis = redis
        self.numbers = numbers
        self.suppressions = suppressions
        self.outbox = outbox
        self.keywords = frozenset(word.upper() for word in opt_out_keywords)

    async def received(self, name: str, sender: str | None, lid: str | None, text: str | None) -> None:
        """A person wrote directly: by number, by LID (`lid` digits), or both. They are no longer a
        first contact under either, and a keyword opts out both: the send rules match a recipient's
        number and LID (core/lua/common.lua `identities`)."""
        identities = [i for i in (sender, f"{lid}{LID_SUFFIX}" if lid else None) if i]
        await self.redis.sadd(keys.contacts(name), *identities)  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
        if sender and lid:  # WhatsApp named the account both ways: the send rules learn the pair
            await self.numbers.remember(name, {sender: Account(sender, lid, f"{sender}{USER_SERVER}")})
        keyword = (text or "").strip().upper()
        if keyword not in self.keywords:
            return
        tenant_id = InstanceName.parse(name).tenant_id
        if await self.suppressions.add(tenant_id, identities, f"replied {keyword}", "keyword"):
            log.info("contact.opted_out", instance=name, keyword=keyword)
            opted_out = ContactOptedOutData(number=sender, lid=lid, keyword=keyword)
            await self.outbox.publish(name, "contact.opted_out", opted_out)
