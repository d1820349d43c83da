"""Tenants and their API keys. Keys are stored as SHA-256 digests; the plain key is shown once."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from core import keys
from core.clock import now_iso
from core.errors import AlreadyExists, ForbiddenTenant, NotFound
from core.redis_client import Redis
from core.scripts import Scripts

KEY_PREFIX = "wag"
# A key's scopes, written into its id (the id is bound to the whole key by the stored digest, so
# they cannot be forged): the middleware knows what a key may do before any round trip. Ids of
# full keys are hex; a read key's id starts with "r", a metrics key's with "m".
Scope = Literal["all", "read", "metrics"]
_SCOPE_MARK: dict[Scope, str] = {"all": "", "read": "r", "metrics": "m"}
# The tenant field of a metrics key's record: no tenant id can be spelled so.
NO_TENANT = "*"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin, or one tenant through one of its keys."""

    key_id: str
    tenant_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None

    @property
    def scope(self) -> Scope:
        return scope_of(self.key_id)

    def require(self, tenant_id: str | None, what: str) -> None:
        """The one tenant check: the admin may touch anything, a tenant key only its own tenant's `what`."""
        if not self.is_admin and self.tenant_id != tenant_id:
            raise ForbiddenTenant(f"{what} does not belong to tenant {self.tenant_id!r}")


ADMIN = Principal(key_id="admin", tenant_id=None)


@dataclass(frozen=True)
class KeyCheck:
    """What core/lua/authorize.lua needs to check a presented API key and count it against its
    per-minute limit, from inside any script (gateway/ratelimit.py builds it)."""

    keys: list[str]  # the key's record, its counter, the caller address's counter
    presented: str  # the key's digest: '' for the admin key, '-' for a key of no known form
    ttl: int  # the counters' lifetime (s)
    limit: int  # requests a minute
    admin: bool
    key_id: str | None
    reset_in: int  # seconds until the window starts again


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    api_key: str


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: str
    key_ids: list[str]


@functools.lru_cache(maxsize=1024)  # the keys in use, hashed once each rather than at every request
def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_id_of(api_key: str) -> str | None:
    """The key id inside a key of the form wag_<keyId>_<secret>, or None."""
    parts = api_key.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def scope_of(key_id: str) -> Scope:
    """What a key may do, read from its id: "read" (GET routes and /events), "metrics" (GET
    /metrics alone) or "all"."""
    for scope, mark in _SCOPE_MARK.items():
        if mark and key_id.startswith(mark):
            return scope
    return "all"


def _new_key(scope: Scope = "all") -> IssuedKey:
    key_id = _SCOPE_MARK[scope] + secrets.token_hex(8)
    return IssuedKey(key_id=key_id, api_key=f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32).replace('_', '-')}")


class Tenants:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._create = Scripts.of(redis)["create_tenant"]

    async def create(self, tenant_id: str, name: str | None) -> tuple[Tenant, IssuedKey]:
        created_at, issued = now_iso(), _new_key()
        created = await self._create(
            keys=[keys.tenant(tenant_id), keys.TENANTS, keys.api_key(issued.key_id), keys.tenant_keys(tenant_id)],
            args=[tenant_id, name or tenant_id, created_at, issued.key_id, digest(issued.api_key)],
        )
        if not created:
            raise AlreadyExists(f"tenant {tenant_id!r} already exists")
        return Tenant(tenant_id, name or tenant_id, created_at, [issued.key_id]), issued

    async def exists(self, tenant_id: str) -> bool:
        return bool(await self.redis.exists(keys.tenant(tenant_id)))

    async def issue_key(self, tenant_id: str, scope: Scope = "all") -> IssuedKey:
        """A new key of the tenant (or, for NO_TENANT, a metrics key of the whole gateway)."""
        if tenant_id != NO_TENANT and not await self.exists(tenant_id):
            raise NotFound(f"no tenant {tenant_id!r}")
        issued = _new_key(scope)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.api_key(issued.key_id),
                mapping={"tenantId": tenant_id, "hash": digest(issued.api_key), "createdAt": now_iso()},
            )
            pipe.sadd(keys.tenant_keys(tenant_id), issued.key_id)
            await pipe.execute()
        return issued

    async def revoke_key(self, key_id: str) -> None:
        tenant_id = await self.redis.hget(keys.api_key(key_id), "tenantId")  # type: ignore[misc]
        if tenant_id is None:
            raise NotFound(f"no key {key_id!r}")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.api_key(key_id))
            pipe.srem(keys.tenant_keys(tenant_id), key_id)
            await pipe.execute()

    async def list(self) -> list[Tenant]:
        ids = sorted(await self.redis.smembers(keys.TENANTS))  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
        tenants = []
        for tenant_id in ids:
            record = await self.redis.hgetall(keys.tenant(tenant_id))  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
            key_ids = sorted(await self.redis.smembers(keys.tenant_keys(tenant_id)))  # type: ignore[misc]
            tenants.append(
                Tenant(
                    tenant_id=tenant_id,
                    name=record.get("name", tenant_id),
                    created_at=record.get("createdAt", ""),
                    key_ids=key_ids,
                )
            )
        return tenants
