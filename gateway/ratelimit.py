"""Who is calling, and whether they may: API-key authentication and the per-key request limit
(a fixed one-minute window) checked together in one Redis round trip."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from core import keys
from core.redis_client import Redis
from core.scripts import Scripts
from core.tenants import ADMIN, KeyCheck, Principal, digest, key_id_of

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Allowance:
    limit: int
    remaining: int
    reset_in: int  # seconds until the window starts again

    @property
    def allowed(self) -> bool:
        return self.remaining >= 0

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(self.reset_in),
        }


class Gatekeeper:
    def __init__(self, redis: Redis, admin_key: str, per_minute: int) -> None:
        self.per_minute = per_minute
        self._admin_digest = digest(admin_key)
        self._script = Scripts.of(redis)["check_key"]

    def key_check(self, api_key: str, remote: str) -> KeyCheck:
        """What checking `api_key` from `remote` takes, here or inside another script (the send
        routes check it in their accept step: core/lua/accept.lua)."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        presented = digest(api_key) if api_key else ""
        is_admin = bool(api_key) and hmac.compare_digest(presented, self._admin_digest)
        key_id = ADMIN.key_id if is_admin else key_id_of(api_key)
        return KeyCheck(
            keys=[
                keys.api_key(key_id or "-"),
                keys.rate_limit(key_id or "-", window),
                keys.rate_limit(f"ip:{remote}", window),
            ],
            presented="" if is_admin else (presented if key_id else "-"),
            ttl=WINDOW_SECONDS + 1,
            limit=self.per_minute,
            admin=is_admin,
            key_id=key_id,
            reset_in=max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999)),
        )

    def verdict(self, check: KeyCheck, tenant: str, count: int) -> tuple[Principal | None, Allowance]:
        """The caller behind the checked key (None if unknown) and its allowance, from what
        authorize.lua found."""
        key_id = check.key_id
        caller = ADMIN if check.admin else (Principal(key_id=key_id, tenant_id=tenant) if key_id and tenant else None)
        return caller, Allowance(limit=self.per_minute, remaining=self.per_minute - int(count), reset_in=check.reset_in)

    async def check(self, api_key: str, remote: str) -> tuple[Principal | None, Allowance]:
        """The caller behind `api_key` (None if unknown) and its allowance after this request."""
        check = self.key_check(api_key, remote)
        return self.verdict(check, *await self.count(check))

    async def count(self, check: KeyCheck) -> tuple[str, int]:
        """Count a request against the key's limit: the key's tenant ('' if unknown) and the count."""
        tenant, count = await self._script(keys=check.keys, args=[check.presented, check.ttl])
        return tenant, count
