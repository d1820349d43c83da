"""The worker's side of instances: it hosts the WhatsApp sessions it owns, carries out commands
from the API, and turns driver events into instance state and webhook events. The parts, each a
module: the session registry (`session_registry`), taking instances over (`takeover`), the
commands (`host_commands`), linking (`linking`), ban timers (`ban_timers`) and the events
(`session_events`)."""

from __future__ import annotations

import asyncio

import structlog

from scheduler.ban_timers import BanTimers
from scheduler.commands import Commands
from scheduler.conversation_log import ConversationLog
from scheduler.drivers.base import Driver, DriverEvent, Session
from scheduler.host_commands import HostCommands
from scheduler.inbound import InboundEvents
from scheduler.lanes import Owner
from scheduler.linking import Linking
from scheduler.per_number import PerNumber
from scheduler.services import Services
from scheduler.session_events import SessionEvents
from scheduler.session_registry import SessionRegistry
from scheduler.takeover import Takeover

log = structlog.get_logger(__name__)


class SessionHost:
    """The parts put together; what the pump needs of them (`SessionSource`) and the worker's
    shutdown are here."""

    def __init__(self, worker_id: str, services: Services, driver: Driver) -> None:
        per_number = PerNumber(services.instances, services.outbox, services.lanes, services.settings.action_timeout)
        self.registry = SessionRegistry(worker_id, services.redis, driver, per_number, self.on_event)
        self.conversations = ConversationLog(services.conversations)
        self.bans = BanTimers(
            self.registry, services.instances, services.lanes, services.outbox, services.settings.throttle.after_ban
        )
        linking = Linking(services.redis, services.instances, self.registry)
        self.events = SessionEvents(services, self.registry, linking, self.bans, self.conversations)
        self.takeover = Takeover(services, self.registry, self.forget)
        self.commands = HostCommands(services, self.registry, self.takeover, linking)

    @property
    def sessions(self) -> dict[str, Session]:
        return self.registry.sessions

    @property
    def inbound(self) -> InboundEvents:
        return self.events.inbound

    def connected_session(self, name: str) -> Session | None:
        return self.registry.connected_session(name)

    async def still_owns(self, name: str, owner: Owner) -> bool:
        return await self.registry.still_owns(name, owner)

    async def on_event(self, name: str, event: DriverEvent) -> None:
        await self.events.on_event(name, event)

    async def forget(self, name: str) -> None:
        self.bans.cancel(name)
        session = self.registry.drop(name)
        await self.events.forget(name)
        if session is not None:
            try:
                await session.close()
            except Exception:
                log.exception("session.close_failed", instance=name)

    async def hand_over(self, commands: Commands) -> None:
        """Graceful shutdown: close our sessions, then give each instance to another live worker at
        once rather than after the lease timeout."""
        await self.close()
        await self.takeover.hand_over(commands)

    async def close(self) -> None:
        # All at once: each session's host gets its own grace to say goodbye, not the sum of them.
        await asyncio.gather(*(self.forget(name) for name in list(self.sessions)))
