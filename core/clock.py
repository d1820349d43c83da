"""Time as the gateway writes it: milliseconds since the epoch, and ISO 8601 UTC with milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def iso_from_ms(ms: int) -> str:
    return iso(datetime.fromtimestamp(ms / 1000, UTC))
