"""The Redis client used across the gateway: strings in, strings out, from one URL
(config/redis_url.py).

With a Sentinel URL, each new connection asks the sentinels for the master's address, so the API,
the workers and their arq pools follow a failover without a restart; a command cut off by it
fails once with a ConnectionError, like any other outage, and the next one reaches the new master.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import hiredis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import DataError
from redis.typing import EncodableT

from config.redis_url import is_sentinel_url, parse_sentinel_url
from core.speedups import packs_with_hiredis, parser_class

__all__ = ["Pipeline", "Redis", "connect", "connection_pool", "set_chunks"]

# How long one sentinel may take to answer "who is the master?" before the next one is asked.
SENTINEL_TIMEOUT_SECONDS = 1.0


class _SentinelPool(SentinelConnectionPool):
    """Closes its connections to the sentinels with its own, so nothing is left open."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            await sentinel.connection_pool.disconnect()


def _packed(args: tuple[EncodableT, ...]) -> bytes:
    """One command in Redis's protocol, by hiredis's packer: the bytes redis-py's own packer
    writes, as its synchronous client already packs them ("CLIENT SETNAME" is two words)."""
    name = args[0]
    if (isinstance(name, str) and " " in name) or (isinstance(name, bytes) and b" " in name):
        args = (*name.split(), *args[1:])
    try:
        packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub takes 1-tuples
    except TypeError as exc:  # None, a bool: what redis-py's encoder refuses too
        raise DataError(str(exc)) from exc
    return packed


class HiredisPacking(AbstractConnection):
    """Packs commands in C: redis-py's asyncio connection packs every argument in Python (about
    24 µs for a script call of 30 arguments, against 2.4 µs), a tenth of a worker's CPU."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        return [_packed(args)]

    def pack_commands(self, commands: Iterable[Iterable[EncodableT]]) -> list[bytes]:
        return [b"".join(_packed(tuple(command)) for command in commands)]


_PACKED_CLASSES: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def hiredis_packing(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """`base` (TCP, Unix socket, TLS or a sentinel's master) with commands packed by hiredis."""
    found = _PACKED_CLASSES.get(base)
    if found is None:
        found = _PACKED_CLASSES[base] = cast(type[AbstractConnection], type(base.__name__, (HiredisPacking, base), {}))
    return found


def connection_pool(url: str, **options: Any) -> ConnectionPool:
    """A pool of connections to the server `url` names: for a Sentinel URL, to its current master.
    With hiredis switched on (GATEWAY_SPEEDUPS), it parses the replies and packs the commands."""
    options = {"parser_class": parser_class(), **options}
    if not is_sentinel_url(url):
        pool = ConnectionPool.from_url(url, **options)
    else:
        address = parse_sentinel_url(url)
        timeouts = {"socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS, "socket_timeout": SENTINEL_TIMEOUT_SECONDS}
        manager = Sentinel(address.sentinels, sentinel_kwargs=timeouts)
        pool = _SentinelPool(address.service, manager, db=address.db, password=address.password, **options)
    if packs_with_hiredis():
        pool.connection_class = hiredis_packing(pool.connection_class)
    return pool


def connect(url: str) -> Redis:
    pool = connection_pool(url, decode_responses=True, health_check_interval=10, socket_connect_timeout=2)
    return Redis.from_pool(pool)


async def set_chunks(redis: Redis, key: str, size: int) -> AsyncIterator[list[str]]:
    """The members of the set `key`, `size` at a time at most (SSCAN): a sweep over 100,000
    instances then costs Redis, and the process, no more than a chunk's work at once. A member
    there throughout comes at least once; one added or removed meanwhile may or may not."""
    cursor = 0
    while True:
        cursor, found = await redis.sscan(key, cursor, count=size)
        members = list(found)  # a small set answers whole, whatever the count
        for start in range(0, len(members), size):
            yield members[start : start + size]
        if cursor == 0:
            return
