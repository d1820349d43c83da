"""Choosing an instance's owner never lands on a worker that is stopping, even when it begins to
stop between being chosen and being made the owner (the claim itself checks, atomically)."""

from __future__ import annotations

from core import keys
from core.clock import now_ms
from core.redis_client import connect
from scheduler.ownership import Ownership


async def test_a_worker_that_began_stopping_is_never_made_an_owner(redis_url: str) -> None:
    redis = connect(redis_url)
    try:
        ownership = Ownership(redis, lease_timeout_ms=5000)
        await redis.zadd(keys.WORKERS, {"w-stopping": now_ms(), "w-staying": now_ms()})
        await redis.hset(keys.worker("w-staying"), mapping={"capacity": "10"})  # type: ignore[misc]
        await redis.hset(keys.instance("shop"), mapping={"createdAt": "2026-11-30T00:00:00Z"})  # type: ignore[misc]
        # w-stopping has fewer instances: it is the one chosen, until it says it is stopping.
        await redis.sadd(keys.worker_instances("w-staying"), "other")  # type: ignore[misc]
        assert await ownership.least_loaded() == "w-stopping"
        await redis.hset(keys.worker("w-stopping"), "stopping", "1")  # type: ignore[misc]  # as if right after being chosen

        assert await ownership.claim("shop", "w-stopping", None) is None
        assert await redis.hget(keys.instance("shop"), "owner") is None  # type: ignore[misc]
        assert await ownership.live_owner("shop") == ("w-staying", False)
        assert await redis.hget(keys.instance("shop"), "owner") == "w-staying"  # type: ignore[misc]
    finally:
        await redis.aclose()
