"""Per-key request limit: a fixed one-minute window counted in Redis, one round trip a request."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.redis_client import Redis
from scheduler import keys

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


class RateLimiter:
    def __init__(self, redis: Redis, per_minute: int) -> None:
        self.redis = redis
        self.per_minute = per_minute

    async def hit(self, subject: str) -> Allowance:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = keys.rate_limit(subject, window)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 1)
            count, _ = await pipe.execute()
        reset_in = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
        return Allowance(limit=self.per_minute, remaining=self.per_minute - int(count), reset_in=reset_in)
