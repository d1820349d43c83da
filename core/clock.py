"""Time as the gateway writes it: milliseconds since the epoch, and ISO 8601 UTC with milliseconds."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


async def redis_now_ms(redis: Any) -> int:
    """Redis's clock: the one clock every process shares, for what one process stamps and another
    judges (heartbeats and leases), whatever each machine's own clock says."""
    return from_time(await redis.time())


class RedisClock:
    """Redis's clock without a round trip of its own: learnt from the answers of steps that read
    it anyway (the webhook outbox's scripts return Redis's TIME), carried on by this process's
    monotonic clock between answers; the process clock until the first answer."""

    def __init__(self) -> None:
        self._learnt: tuple[int, float] | None = None  # Redis's ms, and time.monotonic() then

    def learn(self, redis_ms: int, received: float) -> None:
        """Redis said `redis_ms` in an answer received at `received` (time.monotonic())."""
        self._learnt = (redis_ms, received)

    def now_ms(self) -> int:
        if self._learnt is None:
            return now_ms()
        redis_ms, received = self._learnt
        return redis_ms + int((time.monotonic() - received) * 1000)


def from_time(time_: Any) -> int:
    """Milliseconds from Redis's TIME answer [seconds, microseconds] (in Lua: `redis_ms()`)."""
    seconds, micros = time_
    return int(seconds) * 1000 + int(micros) // 1000


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso_from_ms(now_ms())


def iso_from_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)  # exact, where ms / 1000 rounds
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=64)  # times stamped now mostly fall in the same few seconds
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
