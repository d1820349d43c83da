"""arq, as every process uses it: one pool factory and one JSON job codec (never arq's pickle,
which runs whatever is in Redis)."""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis

from config import Settings
from core.redis_client import connection_pool


def dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def loads(raw: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(raw)
    return result


def arq_pool(settings: Settings) -> ArqRedis:
    assert settings.redis_url is not None
    pool = connection_pool(settings.redis_url, socket_connect_timeout=2)
    return ArqRedis(pool, job_serializer=dumps, job_deserializer=loads)
