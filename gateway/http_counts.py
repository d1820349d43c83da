"""HTTP requests by method, route and status, for `wa_http_requests_total`.

Counted in memory and added to Redis (`keys.HTTP_STATS`) by `flush`: every few seconds, at
shutdown, and before /metrics reads them (gateway/access.py). So counting costs a request no round
trip, and several API processes add up in the one figure Prometheus reads.
"""

from __future__ import annotations

from collections import Counter

import redis.exceptions

from core import keys
from core.redis_client import Redis


class HttpCounts:
    """Requests by (method, route, status), in memory until flushed to `keys.HTTP_STATS`."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pending: Counter[tuple[str, str, int]] = Counter()

    def count(self, method: str, route: str, status: int) -> None:
        self.pending[method, route, status] += 1

    async def flush(self) -> None:
        pending, self.pending = self.pending, Counter()
        if not pending:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for (method, route, status), count in pending.items():
                    pipe.hincrby(keys.HTTP_STATS, field(method, route, status), count)
                await pipe.execute()
        except (redis.exceptions.RedisError, OSError):
            self.pending.update(pending)  # kept for the next flush: Redis may be back by then
            raise


def field(method: str, route: str, status: int) -> str:
    """The hash field of one count: routes hold no spaces, so it splits back in three."""
    return f"{method} {status} {route}"


def parse_field(name: str) -> tuple[str, str, str]:
    method, status, route = name.split(" ", 2)
    return method, route, status
