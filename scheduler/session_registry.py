"""The sessions a worker hosts, by instance: which of them are connected, and the epoch of
ownership that fences every change the worker makes to each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core import keys
from core.redis_client import Redis
from scheduler.drivers.base import Driver, DriverEvent, Session
from scheduler.lanes import Owner
from scheduler.per_number import PerNumber

EventHandler = Callable[[str, DriverEvent], Awaitable[None]]


class SessionRegistry:
    def __init__(
        self, worker_id: str, redis: Redis, driver: Driver, per_number: PerNumber, on_event: EventHandler
    ) -> None:
        self.worker_id = worker_id
        self.redis = redis
        self.driver = driver
        self.per_number = per_number
        self.on_event = on_event
        self.sessions: dict[str, Session] = {}
        self.connected: set[str] = set()
        self.epochs: dict[str, int] = {}

    def session(self, name: str) -> Session:
        """The instance's session, opened on first use; its events go to `on_event`."""
        if name not in self.sessions:

            async def sink(event: DriverEvent) -> None:
                await self.on_event(name, event)

            self.sessions[name] = self.driver.session(name, sink)
        return self.sessions[name]

    def connected_session(self, name: str) -> Session | None:
        return self.sessions.get(name) if name in self.connected else None

    def drop(self, name: str) -> Session | None:
        """Stop tracking the instance; returns its session (for the caller to close), if any."""
        self.connected.discard(name)
        self.epochs.pop(name, None)
        return self.sessions.pop(name, None)

    async def connect(self, name: str, session: Session) -> None:
        await self.per_number.connecting(name, session)
        await session.connect()

    async def epoch(self, name: str) -> int | None:
        if name not in self.epochs:
            owner, epoch = await self.redis.hmget(keys.instance(name), ["owner", "epoch"])  # type: ignore[misc]
            if owner != self.worker_id or epoch is None:
                return None
            self.epochs[name] = int(epoch)  # learnt on first use: it fences every change after
        return self.epochs[name]

    async def still_owns(self, name: str, owner: Owner) -> bool:
        current = await self.redis.hmget(keys.instance(name), ["owner", "epoch"])  # type: ignore[misc]
        return bool(current == [owner[0], str(owner[1])])
