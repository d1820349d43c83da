"""The Redis client used across the gateway: strings in, strings out."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

__all__ = ["Pipeline", "Redis", "connect"]


def connect(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=True, health_check_interval=10, socket_connect_timeout=2)
