"""Which worker owns which instance. A worker is alive while its heartbeat is fresh (its lease);
an instance is owned by one live worker, and every change of owner bumps the instance's epoch (the
fencing token), so a worker that lost an instance can tell, and stops sending for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from core import keys
from core.clock import redis_now_ms
from core.redis_client import Redis, set_chunks
from core.scripts import Scripts

# Choosing an owner races other choosers and workers that begin to stop: this many looks at most.
CHOOSE_ATTEMPTS = 3


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    alive: bool
    last_heartbeat_ms: int
    details: dict[str, str]
    instances: list[str]


class Ownership:
    def __init__(self, redis: Redis, lease_timeout_ms: int) -> None:
        self.redis = redis
        self.lease_timeout_ms = lease_timeout_ms
        self._claim = Scripts.of(redis)["claim"]

    async def live_workers(self) -> list[str]:
        now = await redis_now_ms(self.redis)
        return list(await self.redis.zrangebyscore(keys.WORKERS, now - self.lease_timeout_ms, "+inf"))

    async def dead_workers(self) -> list[str]:
        now = await redis_now_ms(self.redis)
        return list(await self.redis.zrangebyscore(keys.WORKERS, "-inf", f"({now - self.lease_timeout_ms}"))

    async def is_alive(self, worker_id: str) -> bool:
        beat = await self.redis.zscore(keys.WORKERS, worker_id)
        return beat is not None and beat >= await redis_now_ms(self.redis) - self.lease_timeout_ms

    async def owned_by(self, worker_id: str) -> list[str]:
        return sorted(await self.redis.smembers(keys.worker_instances(worker_id)))  # type: ignore[misc]

    def owned_chunks(self, worker_id: str, size: int) -> AsyncIterator[list[str]]:
        """The instances `worker_id` owns, about `size` at a time (core/redis_client.py set_chunks)."""
        return set_chunks(self.redis, keys.worker_instances(worker_id), size)

    async def claim(self, name: str, worker_id: str, expected: str | None) -> int | None:
        """Make `worker_id` the owner of `name` if its owner is still `expected`; the new epoch, or None."""
        previous = expected or ""
        epoch = await self._claim(
            keys=[
                keys.instance(name),
                keys.worker_instances(previous),
                keys.worker_instances(worker_id),
                keys.due(previous),
                keys.worker(worker_id),
            ],
            args=[previous, worker_id, name],
        )
        return int(epoch) if epoch else None

    async def least_loaded(self, exclude: str | None = None) -> str | None:
        """The live worker with the fewest instances and room for one more; never one that is
        stopping (it would hand them on, or leave them to a stale adoption after its restart)."""
        workers = [w for w in await self.live_workers() if w != exclude]
        if not workers:
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                pipe.scard(keys.worker_instances(worker_id))
                pipe.hmget(keys.worker(worker_id), ["capacity", "stopping"])
            answers = await pipe.execute()
        room = [
            (load, worker_id)
            for worker_id, load, (capacity, stopping) in zip(workers, answers[::2], answers[1::2], strict=True)
            if not stopping and (capacity is None or load < int(capacity))
        ]
        return min(room)[1] if room else None

    async def live_owner(self, name: str) -> tuple[str | None, bool]:
        """The instance's owner if it is alive; otherwise hand it to the least-loaded live worker.
        Also says whether it was just taken from a dead owner (the new one must take it over)."""
        for _ in range(CHOOSE_ATTEMPTS):
            owner = await self.redis.hget(keys.instance(name), "owner")  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
            if owner and await self.is_alive(owner):
                return str(owner), False
            chosen = await self.least_loaded()
            if chosen is None:
                return None, False
            if await self.claim(name, chosen, owner) is not None:
                return chosen, bool(owner)
            # Another caller claimed it first, or the chosen worker began stopping: look again.
        return None, False

    async def release(self, name: str, worker_id: str) -> None:
        await self.redis.srem(keys.worker_instances(worker_id), name)  # type: ignore[misc]  # redis-py types it Awaitable[T] | T

    async def forget_worker(self, worker_id: str) -> None:
        """Drop a dead worker's membership once none of its instances is left to adopt."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.WORKERS, worker_id)
            pipe.delete(keys.worker(worker_id), keys.worker_instances(worker_id))
            await pipe.execute()

    async def workers(self) -> list[WorkerInfo]:
        beats = await self.redis.zrange(keys.WORKERS, 0, -1, withscores=True)
        now = await redis_now_ms(self.redis)
        found = []
        for worker_id, beat in beats:
            found.append(
                WorkerInfo(
                    worker_id=worker_id,
                    alive=beat >= now - self.lease_timeout_ms,
                    last_heartbeat_ms=int(beat),
                    details=await self.redis.hgetall(keys.worker(worker_id)),  # type: ignore[misc]
                    instances=await self.owned_by(worker_id),
                )
            )
        return found
