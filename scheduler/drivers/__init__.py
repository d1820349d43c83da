from __future__ import annotations

import logging

from config import Settings
from core.redis_client import Redis
from scheduler.drivers.base import Driver


def make_driver(settings: Settings, redis: Redis, worker_id: str) -> Driver:
    sessions_dir = settings.data_dir / "sessions"
    sessions_dir.mkdir(parents=True, exist_ok=True)
    if settings.driver == "sandbox":
        from scheduler.drivers.sandbox import SandboxDriver

        return SandboxDriver(
            sessions_dir,
            redis,
            worker_id,
            allow_private=settings.allow_private_urls,
            max_media_bytes=settings.media_max_bytes,
        )
    from scheduler.drivers.neonize import NeonizeDriver

    return NeonizeDriver(
        sessions_dir,
        settings.max_sessions,
        database_url=settings.session_database_url,
        proxy=settings.whatsapp_proxy,
        host_timeout=settings.session_host_timeout,
        whatsmeow_log_level=getattr(logging, settings.whatsmeow_log_level.upper()),
        max_media_bytes=settings.media_max_bytes,
    )
