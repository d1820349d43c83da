"""Time as the gateway writes it: milliseconds since the epoch, and ISO 8601 UTC with milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


async def redis_now_ms(redis: Any) -> int:
    """Redis's clock: the one clock every process shares, for what one process stamps and another
    judges (heartbeats and leases), whatever each machine's own clock says."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def iso_from_ms(ms: int) -> str:
    return iso(datetime.fromtimestamp(ms / 1000, UTC))
