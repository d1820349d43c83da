"""The Redis client used across the gateway: strings in, strings out, from one URL
(config/redis_url.py).

With a Sentinel URL, each new connection asks the sentinels for the master's address, so the API,
the workers and their arq pools follow a failover without a restart; a command cut off by it
fails once with a ConnectionError, like any other outage, and the next one reaches the new master.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from config.redis_url import is_sentinel_url, parse_sentinel_url
from core.speedups import parser_class

__all__ = ["Pipeline", "Redis", "connect", "connection_pool"]

# How long one sentinel may take to answer "who is the master?" before the next one is asked.
SENTINEL_TIMEOUT_SECONDS = 1.0


class _SentinelPool(SentinelConnectionPool):
    """Closes its connections to the sentinels with its own, so nothing is left open."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            await sentinel.connection_pool.disconnect()


def connection_pool(url: str, **options: Any) -> ConnectionPool:
    """A pool of connections to the server `url` names: for a Sentinel URL, to its current master."""
    if not is_sentinel_url(url):
        return ConnectionPool.from_url(url, **options)
    address = parse_sentinel_url(url)
    timeouts = {"socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS, "socket_timeout": SENTINEL_TIMEOUT_SECONDS}
    manager = Sentinel(address.sentinels, sentinel_kwargs=timeouts)
    return _SentinelPool(address.service, manager, db=address.db, password=address.password, **options)


def connect(url: str) -> Redis:
    pool = connection_pool(
        url, decode_responses=True, health_check_interval=10, socket_connect_timeout=2, parser_class=parser_class()
    )
    return Redis.from_pool(pool)
