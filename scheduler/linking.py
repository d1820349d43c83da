"""Linking a number: a QR code or a pairing code asked for through the API, answered once the
session shows its first code (or connects, or fails)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from core import keys
from core.errors import InvalidState, WhatsAppError
from core.instances import Instances
from core.redis_client import Redis
from scheduler.drivers.base import Session
from scheduler.session_registry import SessionRegistry

QR_WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class QrShown:
    code: str
    expires_at: str | None


@dataclass(frozen=True)
class Opened:
    """The session connected with the link it had: no code is needed."""


@dataclass(frozen=True)
class LinkFailed:
    reason: str


LinkingOutcome = QrShown | Opened | LinkFailed


class Linking:
    def __init__(self, redis: Redis, instances: Instances, registry: SessionRegistry) -> None:
        self.redis = redis
        self.instances = instances
        self.registry = registry
        self._waiting: dict[str, asyncio.Future[LinkingOutcome]] = {}

    async def qr(self, name: str) -> QrShown:
        return await self._started(name, self.registry.session(name))

    async def pairing_code(self, name: str, phone_number: str) -> str:
        session = self.registry.session(name)
        await self._started(name, session)
        return await session.pair_phone(phone_number)

    def resolve(self, name: str, outcome: LinkingOutcome) -> None:
        """The session showed a code, connected or failed: whoever waits for it learns it."""
        waiter = self._waiting.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    async def _started(self, name: str, session: Session) -> QrShown:
        """Start a QR cycle if none runs and wait for its first code."""
        if (until := await ban_in_force(self.redis, name)) is not None:
            raise InvalidState(f"WhatsApp banned this number {until}; ask for a QR code once the ban is over")
        # Wait before reading: a code stored after the read but before the wait would resolve
        # nobody and leave this call waiting for the next one. A waiter left unused is harmless.
        waiter = self._waiting.setdefault(name, asyncio.get_running_loop().create_future())
        instance = await self.instances.get(name)
        if instance.state == "open":
            raise InvalidState("instance is already open; it needs no QR code")
        if instance.state == "connecting" and instance.qr:
            return QrShown(instance.qr, instance.qr_expires_at)
        await self.registry.connect(name, session)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(waiter), QR_WAIT_SECONDS)
        except TimeoutError:
            raise WhatsAppError(f"WhatsApp sent no QR code within {QR_WAIT_SECONDS:g} s") from None
        match outcome:
            case Opened():
                raise InvalidState("instance is linked and reconnected; it needs no QR code")
            case LinkFailed(reason=reason):
                raise WhatsAppError(f"could not reach WhatsApp to get a QR code: {reason}")
        return outcome


async def ban_in_force(redis: Redis, name: str) -> str | None:
    """How long the number stays banned ("until <time>" or "for good"), None when it is not."""
    until = await redis.hget(keys.instance(name), "bannedUntil")  # type: ignore[misc]
    if not until:
        return None
    if until == "permanent":
        return "for good"
    return f"until {until}" if datetime.fromisoformat(until) > datetime.now(UTC) else None
