"""Which worker owns which instance. A worker is alive while its heartbeat is fresh; an instance
is owned by one live worker, and every change of owner bumps the instance's epoch (fencing token),
so a worker that lost an instance can tell, and stops sending for it."""

from __future__ import annotations

import time
from importlib import resources

from gateway.redis_client import Redis
from scheduler import keys

# A worker that has not heartbeated for this long has lost its instances (DESIGN.md, Ownership).
LEASE_TIMEOUT_MS = 15_000

_CLAIM = (resources.files("scheduler") / "lua" / "claim.lua").read_text()


def now_ms() -> int:
    return int(time.time() * 1000)


async def live_workers(redis: Redis, lease_timeout_ms: int = LEASE_TIMEOUT_MS) -> list[str]:
    return list(await redis.zrangebyscore(keys.WORKERS, now_ms() - lease_timeout_ms, "+inf"))


async def dead_workers(redis: Redis, lease_timeout_ms: int = LEASE_TIMEOUT_MS) -> list[str]:
    return list(await redis.zrangebyscore(keys.WORKERS, "-inf", f"({now_ms() - lease_timeout_ms}"))


async def is_alive(redis: Redis, worker_id: str, lease_timeout_ms: int = LEASE_TIMEOUT_MS) -> bool:
    beat = await redis.zscore(keys.WORKERS, worker_id)
    return beat is not None and beat >= now_ms() - lease_timeout_ms


async def claim(redis: Redis, name: str, worker_id: str, expected: str | None) -> int | None:
    """Make `worker_id` the owner of `name` if its owner is still `expected`; the new epoch, or None."""
    previous = expected or ""
    epoch = await redis.eval(
        _CLAIM,
        3,
        keys.instance(name),
        keys.worker_instances(previous),
        keys.worker_instances(worker_id),
        previous,
        worker_id,
        name,
    )
    return int(epoch) if epoch else None


async def least_loaded(redis: Redis) -> str | None:
    workers = await live_workers(redis)
    if not workers:
        return None
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in workers:
            pipe.scard(keys.worker_instances(worker_id))
            pipe.hget(keys.worker(worker_id), "capacity")
        answers = await pipe.execute()
    room = []
    for worker_id, load, capacity in zip(workers, answers[::2], answers[1::2], strict=True):
        if capacity is None or load < int(capacity):
            room.append((load, worker_id))
    return min(room)[1] if room else None


async def live_owner(redis: Redis, name: str) -> str | None:
    """The instance's owner if it is alive; otherwise hand it to the least-loaded live worker."""
    owner = await redis.hget(keys.instance(name), "owner")
    if owner and await is_alive(redis, owner):
        return str(owner)
    chosen = await least_loaded(redis)
    if chosen is None:
        return None
    if await claim(redis, name, chosen, owner) is None:
        return await redis.hget(keys.instance(name), "owner")  # someone else just claimed it
    return chosen


async def release(redis: Redis, name: str, worker_id: str) -> None:
    await redis.srem(keys.worker_instances(worker_id), name)
