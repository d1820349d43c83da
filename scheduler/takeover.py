"""Taking instances over: at start, from dead workers, from a worker that hands them over; and
letting go of those another worker fenced us off from."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from core import keys
from scheduler.commands import Commands
from scheduler.drivers.base import DriverError
from scheduler.instance_commands import Adopt
from scheduler.services import Services
from scheduler.session_registry import SessionRegistry

log = structlog.get_logger(__name__)

LOOK_CHUNK = 1000  # sessions whose owner one pipeline reads


class Takeover:
    def __init__(self, services: Services, registry: SessionRegistry, forget: Callable[[str], Awaitable[None]]) -> None:
        self.registry = registry
        self.forget = forget
        self.worker_id = registry.worker_id
        self.redis = services.redis
        self.instances = services.instances
        self.lanes = services.lanes
        self.ownership = services.ownership
        self.adopt_concurrency = services.settings.adopt_concurrency

    async def adopt(self) -> None:
        """At start: take over every instance without a live owner, and our own from a previous run,
        `adopt_concurrency` at a time: each waits on Redis and on its session host's start, not on
        the others (500 one after the other took ~25 s of start-up)."""
        gate = asyncio.Semaphore(self.adopt_concurrency)

        async def adopt(name: str) -> None:
            async with gate:
                owner = await self.redis.hget(keys.instance(name), "owner")  # type: ignore[misc]
                if owner == self.worker_id or not owner or not await self.ownership.is_alive(owner):
                    await self.adopt_one(name, owner)

        names = await self.instances.names()
        results = await asyncio.gather(*(adopt(name) for name in names), return_exceptions=True)
        failed = [(name, error) for name, error in zip(names, results, strict=True) if error is not None]
        for name, error in failed:
            log.error("instance.adopt_failed", instance=name, error=f"{type(error).__name__}: {error}")
        if failed:
            raise failed[0][1]  # as before: a worker that cannot adopt does not start half-way

    async def adopt_orphans(self, capacity: int) -> int:
        """Take a fair share of the instances of workers whose lease ran out; returns how many."""
        adopted = 0
        live = max(1, len(await self.ownership.live_workers()))
        for dead in await self.ownership.dead_workers():
            orphans = await self.ownership.owned_by(dead)
            share = -(-len(orphans) // live)  # ceil: the live workers split them, racing on each claim
            for name in orphans[:share]:
                if len(self.registry.sessions) >= capacity:
                    return adopted
                adopted += await self.adopt_one(name, dead)
            if not await self.ownership.owned_by(dead):
                await self.ownership.forget_worker(dead)
        return adopted

    async def adopt_one(self, name: str, expected_owner: str | None) -> bool:
        epoch = await self.ownership.claim(name, self.worker_id, expected_owner)
        if epoch is None:
            return False  # another worker adopted it first, or it was deleted
        self.registry.epochs[name] = epoch
        log.info("instance.adopted", instance=name, previous_owner=expected_owner, epoch=epoch)
        await self.take_over(name)
        return True

    async def take_over(self, name: str) -> None:
        """Start hosting an instance we now own: take back the message a dead owner had in flight
        and reconnect a linked session from the shared store."""
        requeued = await self.lanes.kick(name, reset=True)
        if requeued:
            log.warning("message.requeued_after_crash", instance=name, message_id=requeued)
        try:
            session = self.registry.session(name)
            # A store read (sqlite, or PostgreSQL): off the event loop.
            if await asyncio.to_thread(lambda: session.linked):
                await self.instances.update(name, state="connecting")
                await self.registry.connect(name, session)
                return
        except DriverError as exc:  # one unusable session store must not stop the others
            log.error("session.reconnect_failed", instance=name, error=str(exc))
        await self.instances.update(name, state="close", qr=None, qrExpiresAt=None)

    async def adopted(self, name: str) -> None:
        """Take over an instance handed to us, once per epoch: a command that comes late (queued
        before a restart in which we adopted the instance ourselves, or for an instance that moved
        on since) changes nothing, so no session connects twice and no send is taken back."""
        owner, epoch = await self.redis.hmget(keys.instance(name), ["owner", "epoch"])  # type: ignore[misc]
        if owner != self.worker_id or epoch is None or self.registry.epochs.get(name) == int(epoch):
            log.info("instance.adopt_skipped", instance=name, owner=owner, epoch=epoch)
            return
        self.registry.epochs[name] = int(epoch)
        await self.take_over(name)

    async def drop_lost(self) -> list[str]:
        """Close the sessions of instances another worker owns now (we were fenced off); their
        owners are read LOOK_CHUNK a pipeline (every heartbeat: over 100,000 sessions one pipeline
        took the worker's loop for most of a second)."""
        names = list(self.registry.sessions)
        lost: list[tuple[str, str | None]] = []
        for start in range(0, len(names), LOOK_CHUNK):
            chunk = names[start : start + LOOK_CHUNK]
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in chunk:
                    pipe.hget(keys.instance(name), "owner")
                owners = await pipe.execute()
            lost += [(name, owner) for name, owner in zip(chunk, owners, strict=True) if owner != self.worker_id]
        for name, owner in lost:
            log.warning("instance.lost", instance=name, owner=owner)
            await self.forget(name)
        return [name for name, _ in lost]

    async def hand_over(self, commands: Commands) -> None:
        """Graceful shutdown (once our sessions are closed): give each instance to another live
        worker at once rather than after the lease timeout."""
        for name in await self.ownership.owned_by(self.worker_id):
            target = await self.ownership.least_loaded(exclude=self.worker_id)
            if target is None:
                return  # nobody to hand to: whoever starts next adopts them
            if await self.ownership.claim(name, target, self.worker_id) is not None:
                await commands.enqueue(target, name, Adopt())
                log.info("instance.handed_over", instance=name, to=target)
