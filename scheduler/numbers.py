"""Which WhatsApp account each number (and LID) is, asked of WhatsApp once and then remembered in
Redis.

WhatsApp watches how often a number looks others up, so a send does not look its recipient up
each time: `contacts/check` and the pump share the answers. They are kept per tenant, not per
instance: which account a number is, is a fact about that number, the same seen from any of the
tenant's numbers, so one lookup serves all of them; they are not shared between tenants, whose
contact lists are their own. A "no" is kept for less time than a "yes": people sign up.

An answer is the account (`Account`: its number, LID and JID) as JSON, kept under each spelling
that was asked and under the account's LID chat (`<lid>@lid`): the claim script
(core/lua/common.lua `identities`) reads it to apply opt-outs, spacing and first contacts to the
person, whatever spelling a send used.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from core import keys
from core.instances import tenant_of
from core.redis_client import Redis
from scheduler.drivers.base import LID_SUFFIX, Account

Lookup = Callable[[Sequence[str]], Awaitable[dict[str, Account | None]]]
LidLookup = Callable[[str], Awaitable[str | None]]
USER_SERVER = "@s.whatsapp.net"


def encode(account: Account | None) -> str:
    if account is None:
        return ""
    return json.dumps({"number": account.number, "lid": account.lid, "jid": account.jid})


def decode(raw: str) -> Account | None:
    """An answer as the cache keeps it ("" for no account; a bare JID as older versions kept it)."""
    if not raw:
        return None
    if not raw.startswith("{"):
        return Account(number=raw.partition("@")[0], lid=None, jid=raw)
    found = json.loads(raw)
    return Account(number=found["number"], lid=found["lid"], jid=found["jid"])


def lid_account(lid: str, number: str | None) -> Account:
    """A LID chat's account: a reply to it goes to the LID chat, whether or not its number is known."""
    return Account(number=number, lid=lid, jid=f"{lid}{LID_SUFFIX}")


class NumberCache:
    def __init__(self, redis: Redis, hit_ttl: int, miss_ttl: int) -> None:
        self.redis = redis
        self.hit_ttl = hit_ttl
        self.miss_ttl = miss_ttl

    async def check(self, name: str, numbers: Sequence[str], lookup: Lookup) -> dict[str, Account | None]:
        """Each of `numbers` (distinct) with its account, or None when it has none: from the cache
        where it can, the rest from `lookup` (one call), which are then remembered."""
        tenant_id = tenant_of(name)
        cached = await self.redis.mget([keys.on_whatsapp(tenant_id, number) for number in numbers])
        known = {number: decode(raw) for number, raw in zip(numbers, cached, strict=True) if raw is not None}
        missing = [number for number in numbers if number not in known]
        if missing:
            answers = await lookup(missing)
            await self.remember(name, {number: answers.get(number) for number in missing})
            known.update({number: answers.get(number) for number in missing})
        return {number: known[number] for number in numbers}

    async def lid(self, name: str, lid: str, lookup: LidLookup) -> Account:
        """The account of a LID chat, with its number when the cache or `lookup` knows it (a number
        is remembered; an unknown one is asked again next time)."""
        raw = await self.redis.get(keys.on_whatsapp(tenant_of(name), f"{lid}{LID_SUFFIX}"))
        known = decode(raw) if raw else None
        if known is not None and known.number:
            return lid_account(lid, known.number)
        number = await lookup(lid)
        account = lid_account(lid, number)
        if number:
            await self.remember(name, {number: Account(number, lid, f"{number}{USER_SERVER}")})
        return account

    async def remember(self, name: str, answers: dict[str, Account | None]) -> None:
        """Keep answers: each under the spelling asked, and a known account under its LID chat too."""
        tenant_id = tenant_of(name)
        async with self.redis.pipeline(transaction=False) as pipe:
            for spelling, account in answers.items():
                ttl = self.hit_ttl if account else self.miss_ttl
                pipe.set(keys.on_whatsapp(tenant_id, spelling), encode(account), ex=ttl)
                if account is not None and account.lid:
                    pipe.set(keys.on_whatsapp(tenant_id, f"{account.lid}{LID_SUFFIX}"), encode(account), ex=ttl)
            await pipe.execute()

    async def on_whatsapp(self, name: str, number: str, lookup: Lookup) -> bool:
        return (await self.check(name, [number], lookup))[number] is not None
