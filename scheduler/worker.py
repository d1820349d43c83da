"""The worker: heartbeats, owns WhatsApp sessions, sends through the claim loop and runs instance
commands (arq jobs) from its own queue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from arq.connections import ArqRedis
from arq.worker import Worker, func
from redis.exceptions import RedisError

from config import Settings
from core import keys
from core.clock import redis_now_ms
from core.jobs import arq_pool, dumps, loads
from core.keyfiles import read_or_create
from scheduler.claim_loop import ClaimLoop
from scheduler.commands import COMMAND_JOB, answer
from scheduler.drivers import make_driver
from scheduler.drivers.neonize import NeonizeDriver
from scheduler.media import MediaFetcher
from scheduler.outgoing import Outgoing
from scheduler.pump import Pump
from scheduler.services import Services
from scheduler.sessions import SessionHost
from webhooks.delivery import Deliverer, delivering

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 2.0  # at most; a short lease timeout beats faster
# Sends under way at once in one worker (each on its own number): media fetches take memory.
MAX_SENDS_IN_FLIGHT = 256
# Instance commands (connect, link, QR, ...) one worker carries out at once: most wait on I/O, and
# arq's default of 10 made linking many instances queue behind each other.
MAX_COMMANDS_AT_ONCE = 100
# A stopping worker lets its sends under way finish for this long before handing over.
DRAIN_SECONDS = 10.0
MEDIA_SWEEP_SECONDS = 600.0  # inbound media past its retention is deleted at about this pace
WORKER_ID_FILE = "worker.id"


def resolve_worker_id(settings: Settings) -> str:
    if settings.worker_id:
        return settings.worker_id
    generated = f"{socket.gethostname().split('.')[0]}-{os.urandom(3).hex()}"
    worker_id, _ = read_or_create(settings.data_dir / WORKER_ID_FILE, generated)
    return worker_id


async def close_arq(worker: Worker, pool: ArqRedis) -> None:
    """arq's own close(), once its poll loop is stopped: it cancels the jobs under way (arq runs
    them again later), then closes `pool`, the one it was given. A job it stopped before the job's
    own code ran passes its cancellation on out of close(), before the pool is closed: then the
    pool is closed here."""
    try:
        await worker.close()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # this stop itself was cancelled
        await pool.aclose(close_connection_pool=True)


async def instance_command(
    ctx: dict[str, Any], name: str, op: str, args: dict[str, Any], reply: bool = False
) -> dict[str, Any]:
    worker: GatewayWorker = ctx["gateway"]
    result = await worker.host.commands.run(name, op, args)
    if reply:  # the API waits for it (Commands.call)
        await answer(ctx["redis"], ctx["job_id"], result)
    return result


class GatewayWorker:
    """One worker process's runtime: membership heartbeat, the sessions it hosts, and the arq
    worker on its own queue."""

    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        """With `services`, share the API's (one process running both); otherwise open our own."""
        self.settings = settings
        self.worker_id = resolve_worker_id(settings)
        self.services = services or Services.open(settings)
        self._own_services = services is None
        svc = self.services
        self.driver = make_driver(settings, svc.redis, self.worker_id)
        self.host = SessionHost(self.worker_id, svc, self.driver)
        self.fetcher = MediaFetcher(allow_private=settings.allow_private_urls)
        self.heartbeat_seconds = min(HEARTBEAT_SECONDS, settings.lease_timeout / 4)
        self._tasks: list[asyncio.Task[None]] = []
        self._record: dict[str, str | int] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "capacity": settings.max_sessions,
            "startedAt": int(time.time() * 1000),
        }
        self._stopping = False
        # arq's worker as it is, polling the worker's own queue every `worker_poll_delay` s.
        self._arq_pool = arq_pool(settings)  # arq closes its pool when it stops: one of its own
        self._arq = Worker(
            functions=[func(instance_command, name=COMMAND_JOB)],
            queue_name=keys.worker_queue(self.worker_id),
            redis_pool=self._arq_pool,
            handle_signals=False,
            poll_delay=settings.worker_poll_delay,
            max_jobs=MAX_COMMANDS_AT_ONCE,
            keep_result=60,
            job_serializer=dumps,
            job_deserializer=loads,
            ctx={"gateway": self},
        )
        # Webhook deliveries: here, unless a deliverer process of their own does them (`serve` runs one).
        self.deliverer = (
            Deliverer(settings, svc.redis, svc.outbox, svc.instances) if settings.worker_delivers_webhooks else None
        )
        pump = Pump(
            self.worker_id,
            svc.lanes,
            svc.messages,
            self.host,
            Outgoing(self.fetcher),
            svc.outbox,
            self.deliverer,
            settings.lease_timeout,
            svc.numbers,
            settings.action_timeout,
            self.host.conversations,
            settings.send_retry_delays,
        )
        self.claims = ClaimLoop(
            self.worker_id, svc.lanes, svc.ownership, pump, MAX_SENDS_IN_FLIGHT, settings.sweep_interval
        )

    async def start(self) -> None:
        if isinstance(self.driver, NeonizeDriver):
            await self.driver.open()
        await self._heartbeat_once()
        await self.fetcher.open()
        await self.host.takeover.adopt()
        if self.deliverer is not None:
            await self.deliverer.sweep()  # deliveries left pending by the previous run resume now
        self._tasks = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._watch()),
            asyncio.create_task(self.claims.run()),
            asyncio.create_task(supervised(self._arq.main, "arq.instances")),
        ]
        if self.deliverer is not None:
            self._tasks += delivering(self.deliverer)
        log.info("worker.started", worker_id=self.worker_id, instances=len(self.host.sessions))

    async def stop(self) -> None:
        """Graceful shutdown: say we are stopping (nobody hands us instances from now on), stop
        claiming and let the sends under way finish, stop taking jobs, leave the membership and
        hand every instance to another live worker that is not stopping, at once."""
        self._stopping = True
        with contextlib.suppress(RedisError):
            await self._heartbeat_once()
        await self.claims.drain(DRAIN_SECONDS)
        for task in self._tasks:  # the claim loop and the arq workers' poll loops among them
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await close_arq(self._arq, self._arq_pool)
        # Our lease ends now (score 0): if the hand-over below is cut short, the others adopt
        # what is left as from any dead worker.
        with contextlib.suppress(RedisError):
            await self.services.redis.zadd(keys.WORKERS, {self.worker_id: 0})
        try:
            await self.host.hand_over(self.services.commands)
        except RedisError:
            log.warning("worker.hand_over_failed", worker_id=self.worker_id, exc_info=True)
            await self.host.close()  # the others adopt our instances when our lease runs out
        if isinstance(self.driver, NeonizeDriver):
            self.driver.close()
        await self.fetcher.close()
        if self.deliverer is not None:
            await self.deliverer.close()
        if self._own_services:
            await self.services.close()
        log.info("worker.stopped", worker_id=self.worker_id)

    async def _heartbeat_once(self) -> None:
        """Renew the lease with the whole worker record: a worker paused past its lease, whose
        record the others dropped, shows up again complete, never as a row of nulls. Stamped
        with Redis's clock, as the others judge it (a pause between the two steps only makes
        the stamp older: the lease then runs out sooner, never later)."""
        beat = await redis_now_ms(self.services.redis)
        async with self.services.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.worker(self.worker_id), mapping=self._record)
            if self._stopping:
                pipe.hset(keys.worker(self.worker_id), "stopping", "1")
            else:
                pipe.hdel(keys.worker(self.worker_id), "stopping")
            pipe.zadd(keys.WORKERS, {self.worker_id: beat})
            await pipe.execute()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self._heartbeat_once()
            except RedisError as exc:
                log.warning("worker.heartbeat_failed", worker_id=self.worker_id, error=str(exc))

    async def _watch(self) -> None:
        """Every heartbeat: drop what we lost, adopt what dead workers left; now and then, delete
        inbound media past its retention."""
        rounds, media_every = 0, max(1, round(MEDIA_SWEEP_SECONDS / self.heartbeat_seconds))
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.host.takeover.drop_lost()
                if not self._stopping:
                    await self.host.takeover.adopt_orphans(self.settings.max_sessions)
                if rounds % media_every == 0:
                    await self.services.media.sweep()
                rounds += 1
            except RedisError as exc:
                log.warning("worker.watch_failed", worker_id=self.worker_id, error=str(exc))
            except Exception:  # a bug here must not end adoption and sweeps for good
                log.exception("worker.watch_failed", worker_id=self.worker_id)


def worker_context(
    settings: Settings, shared: Callable[[Any], Services] | None = None
) -> Callable[[Any], AsyncIterator[None]]:
    """An aiohttp cleanup_ctx running one worker inside the API process; `shared(app)` gives the
    app's services for the worker to use too."""

    async def context(app: Any) -> AsyncIterator[None]:
        worker = GatewayWorker(settings, shared(app) if shared is not None else None)
        await worker.start()
        yield
        await worker.stop()

    return context


async def supervised(main: Callable[[], Awaitable[None]], what: str) -> None:
    """Run an arq poll loop, starting it again after a Redis outage instead of dying with it."""
    while True:
        try:
            await main()
            return
        except (RedisError, OSError) as exc:
            log.warning("worker.loop_restarting", loop=what, error=str(exc))
            await asyncio.sleep(1)
