"""Instance records in Redis: what the API reads and the owning worker keeps up to date."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict, Unpack

from config.settings import LANES
from core import keys
from core.clock import iso
from core.crypto import SecretBox
from core.errors import AlreadyExists, NotFound
from core.instance_settings import InstanceSettings
from core.redis_client import Pipeline, Redis, set_chunks
from core.scripts import Scripts


class InstanceUpdate(TypedDict, total=False):
    """The fields of an instance record that change after creation (None clears one)."""

    state: str | None
    qr: str | None
    qrExpiresAt: str | None
    bannedUntil: str | None
    phoneNumber: str | None
    connectedAt: str | None
    linked: str | None
    webhookUrl: str | None
    webhookSecret: str | None
    warmup: str | None  # an admin's warm-up factor, replacing the lanes' schedule
    settings: str | None  # InstanceSettings.sealed (core/instance_settings.py)


NAME_PART = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
MAX_NAME_LENGTH = 100


def tenant_of(name: str) -> str:
    """The tenant part of an instance name (valid or not: access is checked before validity)."""
    return name.split("__")[0]


@dataclass(frozen=True)
class InstanceName:
    tenant_id: str
    client_id: str
    label: str

    @classmethod
    def parse(cls, name: str) -> InstanceName:
        """The parts of a valid name; ValueError saying what a valid one looks like otherwise."""
        parts = name.split("__")
        if len(parts) != 3 or not all(NAME_PART.fullmatch(part) for part in parts):
            raise ValueError(
                "must be {tenantId}__{clientId}__{label}: lowercase letters, digits and single underscores "
                "inside each part, parts joined by a double underscore (e.g. acme__shop1__sales)"
            )
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.tenant_id}__{self.client_id}__{self.label}"


@dataclass(frozen=True)
class Instance:
    name: str
    tenant_id: str
    client_id: str
    state: str
    phone_number: str | None
    connected_at: str | None
    created_at: str
    webhook_url: str
    qr: str | None
    qr_expires_at: str | None
    owner: str | None
    linked: bool
    first_linked_ms: int | None  # warm-up days count from here
    warmup: float | None  # an admin's warm-up factor, replacing the schedule

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Instance:
        return cls(
            name=data["name"],
            tenant_id=data["tenantId"],
            client_id=data["clientId"],
            state=data.get("state", "close"),
            phone_number=data.get("phoneNumber") or None,
            connected_at=data.get("connectedAt") or None,
            created_at=data["createdAt"],
            webhook_url=data["webhookUrl"],
            qr=data.get("qr") or None,
            qr_expires_at=data.get("qrExpiresAt") or None,
            owner=data.get("owner") or None,
            linked=data.get("linked") == "1",
            first_linked_ms=int(data["firstLinkedMs"]) if data.get("firstLinkedMs") else None,
            warmup=float(data["warmup"]) if data.get("warmup") else None,
        )

    def qr_is_fresh(self, now: datetime) -> bool:
        return bool(self.qr and self.qr_expires_at and datetime.fromisoformat(self.qr_expires_at) > now)


class Instances:
    def __init__(self, redis: Redis, box: SecretBox) -> None:
        self.redis = redis
        self.box = box
        scripts = Scripts.of(redis)
        self._update = scripts["update_instance"]
        self._first_link = scripts["first_link"]
        self._create = scripts["create_instance"]
        self._exist, self._queued_totals = scripts["instances_exist"], scripts["queued_totals"]

    async def create(
        self,
        name: InstanceName,
        webhook_url: str,
        webhook_secret: str,
        state: str,
        settings: InstanceSettings | None = None,
    ) -> Instance:
        now = datetime.now(UTC)
        fields = {
            "tenantId": name.tenant_id,
            "clientId": name.client_id,
            "label": name.label,
            "webhookUrl": webhook_url,
            "webhookSecret": self.box.seal(webhook_secret),
            "state": state,
            "createdAt": iso(now),
            "epoch": "0",
            "settings": (settings or InstanceSettings()).sealed(self.box),
        }
        created = await self._create(
            keys=[keys.instance(str(name)), keys.tenant_instances(name.tenant_id), keys.INSTANCES],
            args=[str(name), now.timestamp(), json.dumps(fields)],
        )
        if not created:
            raise AlreadyExists(f"instance {str(name)!r} already exists")
        return Instance.from_hash({"name": str(name), **fields})

    async def find(self, name: str) -> Instance | None:
        data = await self.redis.hgetall(keys.instance(name))  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
        return Instance.from_hash(data) if data.get("createdAt") else None

    async def exist(self, names: list[str]) -> list[bool]:
        """Whether each instance exists, in one step (core/lua/instances_exist.lua)."""
        if not names:
            return []
        return [bool(found) for found in await self._exist(keys=[keys.instance(name) for name in names])]

    async def get(self, name: str) -> Instance:
        found = await self.find(name)
        if found is None:
            raise NotFound(f"no instance {name!r}")
        return found

    async def names(self) -> list[str]:
        return sorted(await self.redis.smembers(keys.INSTANCES))  # type: ignore[misc]  # redis-py types it Awaitable[T] | T

    def name_chunks(self, size: int) -> AsyncIterator[list[str]]:
        """Every instance's name, `size` at a time at most (core/redis_client.py set_chunks)."""
        return set_chunks(self.redis, keys.INSTANCES, size)

    async def list_for(self, tenant_id: str, client_id: str | None = None) -> list[Instance]:
        names = await self.redis.zrange(keys.tenant_instances(tenant_id), 0, -1)
        if client_id is not None:
            names = [n for n in names if InstanceName.parse(n).client_id == client_id]
        return await self.records(names)

    async def records(self, names: list[str]) -> list[Instance]:
        """Those of `names` that exist, in order, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(keys.instance(name))
            records = await pipe.execute()
        return [Instance.from_hash(data) for data in records if data.get("createdAt")]

    async def page(
        self, tenant_id: str | None, state: str | None, limit: int, after: str | None
    ) -> tuple[list[Instance], str | None]:
        """Up to `limit` instances by name, after the name `after` (of one tenant, in one state),
        and where the next page starts (None: none is left)."""
        if tenant_id is None:
            names = await self.names()
        else:
            names = sorted(await self.redis.zrange(keys.tenant_instances(tenant_id), 0, -1))
        names = [name for name in names if after is None or name > after]
        found: list[Instance] = []
        for start in range(0, len(names), limit):
            for instance in await self.records(names[start : start + limit]):
                if state is None or instance.state == state:
                    found.append(instance)
                if len(found) == limit:
                    return found, (instance.name if instance.name != names[-1] else None)
        return found, None

    async def queued_totals(self, names: list[str]) -> dict[str, int]:
        """Messages waiting in all lanes, for each of `names`, in one step (core/lua/queued_totals.lua)."""
        if not names:
            return {}
        lists = [keys.lane(name, lane) for name in names for lane in LANES]
        return dict(zip(names, await self._queued_totals(keys=lists, args=[len(LANES)]), strict=True))

    async def _lanes(self, names: list[str]) -> list[dict[str, int]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                for lane in LANES:
                    pipe.llen(keys.lane(name, lane))
            lengths = await pipe.execute()
        return [dict(zip(LANES, lengths[i * len(LANES) :], strict=False)) for i in range(len(names))]

    async def next_open(self, tenant_id: str, client_id: str) -> str | None:
        """One of the client's open instances, round-robin; None when none is open."""
        candidates = sorted(i.name for i in await self.list_for(tenant_id, client_id) if i.state == "open")
        if not candidates:
            return None
        turn: int = await self.redis.incr(keys.round_robin(tenant_id, client_id))
        return candidates[(turn - 1) % len(candidates)]

    async def count_connection_event(self, event: str) -> None:
        """One more `event` (disconnected, logged_out, banned, qr_expired) for the metrics."""
        await self.redis.hincrby(keys.STATS, f"connection:{event}", 1)  # type: ignore[misc]

    async def update(self, name: str, **fields: Unpack[InstanceUpdate]) -> None:
        """Set (or, for None, clear) fields of an existing instance; a deleted one stays deleted."""
        unknown = fields.keys() - InstanceUpdate.__annotations__.keys()
        if unknown:
            raise TypeError(f"not fields of an instance record: {sorted(unknown)}")
        await self._update(keys=[keys.instance(name)], args=[json.dumps(fields)])

    async def linked(self, name: str, phone_number: str) -> None:
        """The instance is linked to `phone_number` and open: its warm-up counts days from that
        phone's first link (by Redis's clock)."""
        await self._first_link(keys=[keys.instance(name), keys.phone(phone_number)])

    async def set_webhook(self, name: str, url: str | None, secret: str | None) -> None:
        """Point the webhook elsewhere and/or rotate its secret; the next delivery attempt uses them."""
        fields: InstanceUpdate = {}  # a None would clear the field
        if url is not None:
            fields["webhookUrl"] = url
        if secret is not None:
            fields["webhookSecret"] = self.box.seal(secret)
        await self.update(name, **fields)

    async def settings(self, name: str) -> InstanceSettings:
        """The instance's settings, its proxy URL unsealed."""
        stored, created = await self.redis.hmget(keys.instance(name), ["settings", "createdAt"])  # type: ignore[misc]
        if created is None:
            raise NotFound(f"no instance {name!r}")
        return InstanceSettings.unsealed(stored, self.box)

    async def set_settings(self, name: str, settings: InstanceSettings) -> None:
        await self.update(name, settings=settings.sealed(self.box))

    async def webhook_secret(self, name: str) -> str:
        sealed = await self.redis.hget(keys.instance(name), "webhookSecret")  # type: ignore[misc]
        if sealed is None:
            raise NotFound(f"no instance {name!r}")
        return self.box.open(sealed)

    async def census(self) -> tuple[dict[str, int], dict[str, int]]:
        """Instances by state and waiting messages by lane, over the whole gateway, in one pipeline."""
        names = await self.names()
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(keys.instance(name), ["state", "createdAt"])
                for lane in LANES:
                    pipe.llen(keys.lane(name, lane))
            answers = await pipe.execute()
        by_state = {"open": 0, "connecting": 0, "close": 0}
        waiting: dict[str, int] = dict.fromkeys(LANES, 0)
        per = 1 + len(LANES)  # the record's fields, then one length per lane
        for index in range(len(names)):
            (state, created_at), *lengths = answers[index * per : (index + 1) * per]
            if created_at is None:
                continue  # being deleted
            by_state[state or "close"] = by_state.get(state or "close", 0) + 1
            for lane, length in zip(LANES, lengths, strict=True):
                waiting[lane] += length
        return by_state, waiting

    async def queue_counts(self, name: str) -> dict[str, int]:
        [counts] = await self._lanes([name])
        return {**counts, "total": sum(counts.values())}

    @staticmethod
    def forget(pipe: Pipeline, instance: Instance) -> None:
        """Queue the deletion of the instance's own records (the sandbox's record of sends with them)."""
        name = instance.name
        pipe.delete(keys.instance(name), *keys.sandbox_keys(name))
        pipe.zrem(keys.tenant_instances(instance.tenant_id), name)
        pipe.srem(keys.INSTANCES, name)
        if instance.owner:
            pipe.srem(keys.worker_instances(instance.owner), name)
