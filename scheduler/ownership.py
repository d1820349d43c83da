"""Which worker owns which instance. A worker is alive while its heartbeat is fresh; an instance
is owned by one live worker, and every change of owner bumps the instance's epoch (fencing token)."""

from __future__ import annotations

import time

from gateway.redis_client import Redis
from scheduler import keys

# A worker that has not heartbeated for this long has lost its instances (DESIGN.md, Ownership).
LEASE_TIMEOUT_MS = 15_000


def now_ms() -> int:
    return int(time.time() * 1000)


async def live_workers(redis: Redis) -> list[str]:
    return list(await redis.zrangebyscore(keys.WORKERS, now_ms() - LEASE_TIMEOUT_MS, "+inf"))


async def is_alive(redis: Redis, worker_id: str) -> bool:
    beat = await redis.zscore(keys.WORKERS, worker_id)
    return beat is not None and beat >= now_ms() - LEASE_TIMEOUT_MS


async def claim(redis: Redis, name: str, worker_id: str) -> int:
    """Make `worker_id` the owner of `name`; returns the new epoch."""
    previous = await redis.hget(keys.instance(name), "owner")
    async with redis.pipeline(transaction=True) as pipe:
        if previous and previous != worker_id:
            pipe.srem(keys.worker_instances(previous), name)
        pipe.hset(keys.instance(name), "owner", worker_id)
        pipe.hincrby(keys.instance(name), "epoch", 1)
        pipe.sadd(keys.worker_instances(worker_id), name)
        results = await pipe.execute()
    return int(results[-2])


async def least_loaded(redis: Redis) -> str | None:
    workers = await live_workers(redis)
    if not workers:
        return None
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in workers:
            pipe.scard(keys.worker_instances(worker_id))
        loads = await pipe.execute()
    return min(zip(loads, workers, strict=True))[1]


async def live_owner(redis: Redis, name: str) -> str | None:
    """The instance's owner if it is alive; otherwise assign the least-loaded live worker."""
    owner = await redis.hget(keys.instance(name), "owner")
    if owner and await is_alive(redis, owner):
        return str(owner)
    chosen = await least_loaded(redis)
    if chosen is not None:
        await claim(redis, name, chosen)
    return chosen


async def release(redis: Redis, name: str, worker_id: str) -> None:
    await redis.srem(keys.worker_instances(worker_id), name)
