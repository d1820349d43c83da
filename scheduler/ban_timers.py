"""What follows a temporary ban: bulk stays paused for a while after it, and the number connects
again once it is over (one timer per instance: the latest ban decides)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from core.clock import iso_from_ms
from core.instances import Instances
from scheduler.event_data import InstanceThrottledData
from scheduler.lanes import Lanes
from scheduler.session_registry import SessionRegistry
from webhooks.outbox import Outbox

log = structlog.get_logger(__name__)


class BanTimers:
    def __init__(
        self, registry: SessionRegistry, instances: Instances, lanes: Lanes, outbox: Outbox, after_ban_seconds: float
    ) -> None:
        self.registry = registry
        self.instances = instances
        self.lanes = lanes
        self.outbox = outbox
        self.after_ban_seconds = after_ban_seconds
        self._waiting: dict[str, asyncio.Task[None]] = {}

    def cancel(self, name: str) -> None:
        if (waiting := self._waiting.pop(name, None)) is not None:
            waiting.cancel()

    async def banned_until(self, name: str, expires_at: datetime) -> None:
        """A temporary ban: connect again when it ends, and pause bulk for a while after."""
        self._waiting[name] = asyncio.create_task(self._reconnect_at(name, expires_at))
        await self._throttle_after_ban(name, expires_at)

    async def _throttle_after_ban(self, name: str, expires_at: datetime) -> None:
        """A temporary ban is a warning: bulk stays paused for a while after it ends."""
        until_ms = int((expires_at.timestamp() + self.after_ban_seconds) * 1000)
        await self.lanes.throttle(name, "banned", until_ms)
        paused = InstanceThrottledData(reason="banned", until=iso_from_ms(until_ms))
        await self.outbox.publish(name, "instance.throttled", paused)

    async def _reconnect_at(self, name: str, when: datetime) -> None:
        """A temporary ban is over: connect again (the messages waiting go once it is open)."""
        await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))
        self._waiting.pop(name, None)
        session = self.registry.sessions.get(name)
        if session is not None and await self.registry.epoch(name) is not None:
            log.info("session.ban_over", instance=name)
            await self.instances.update(name, state="connecting", bannedUntil=None)
            await self.registry.connect(name, session)
