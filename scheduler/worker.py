"""The worker: heartbeats, owns WhatsApp sessions and runs arq jobs from its own queue."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from arq.connections import ArqRedis
from arq.worker import Worker, func
from redis.asyncio import ConnectionPool

from config import Settings
from gateway.commands import COMMAND_JOB
from gateway.crypto import SecretBox
from gateway.drivers import make_driver
from gateway.drivers.neonize import NeonizeDriver
from gateway.instances import Instances
from gateway.keyfiles import read_or_create
from gateway.redis_client import connect
from gateway.sessions import SessionHost
from scheduler import keys
from webhooks.outbox import Outbox

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 2.0
WORKER_ID_FILE = "worker.id"


def resolve_worker_id(settings: Settings) -> str:
    if settings.worker_id:
        return settings.worker_id
    generated = f"{socket.gethostname().split('.')[0]}-{os.urandom(3).hex()}"
    worker_id, _ = read_or_create(settings.data_dir / WORKER_ID_FILE, generated)
    return worker_id


def dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def loads(raw: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(raw)
    return result


def arq_pool(settings: Settings) -> ArqRedis:
    assert settings.redis_url is not None
    pool = ConnectionPool.from_url(settings.redis_url, socket_connect_timeout=2)
    return ArqRedis(pool, job_serializer=dumps, job_deserializer=loads)


async def instance_command(ctx: dict[str, Any], name: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    worker: GatewayWorker = ctx["gateway"]
    return await worker.host.command(name, op, args)


class GatewayWorker:
    """One worker process's runtime: membership heartbeat, the sessions it hosts, and the arq
    worker on its own queue."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url is not None and settings.secret_key is not None
        self.settings = settings
        self.worker_id = resolve_worker_id(settings)
        self.redis = arq_pool(settings)
        self.store = connect(settings.redis_url)
        self.driver = make_driver(settings, self.store)
        self.host = SessionHost(
            self.worker_id,
            self.store,
            self.driver,
            Instances(self.store, SecretBox(settings.secret_key.get_secret_value())),
            Outbox(self.store),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._arq = Worker(
            functions=[func(instance_command, name=COMMAND_JOB)],
            queue_name=keys.worker_queue(self.worker_id),
            redis_pool=self.redis,
            handle_signals=False,
            poll_delay=settings.worker_poll_delay,
            keep_result=60,
            job_serializer=dumps,
            job_deserializer=loads,
            ctx={"gateway": self},
        )

    async def start(self) -> None:
        if isinstance(self.driver, NeonizeDriver):
            self.driver.install_executor(asyncio.get_running_loop())
        await self._heartbeat_once()
        await self.redis.hset(
            keys.worker(self.worker_id),
            mapping={
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "capacity": self.settings.max_sessions,
                "startedAt": int(time.time() * 1000),
            },
        )
        await self.host.adopt()
        self._tasks = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._arq.main())]
        log.info("worker.started", worker_id=self.worker_id, instances=len(self.host.sessions))

    async def stop(self) -> None:
        await self._arq.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.host.close()
        await self.redis.zrem(keys.WORKERS, self.worker_id)
        await self.redis.aclose(close_connection_pool=True)
        await self.store.aclose()
        log.info("worker.stopped", worker_id=self.worker_id)

    async def _heartbeat_once(self) -> None:
        await self.redis.zadd(keys.WORKERS, {self.worker_id: int(time.time() * 1000)})

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._heartbeat_once()
            except Exception:
                log.exception("worker.heartbeat_failed", worker_id=self.worker_id)


def worker_context(settings: Settings) -> Callable[[Any], AsyncIterator[None]]:
    """An aiohttp cleanup_ctx running one worker inside the API process."""

    async def context(app: Any) -> AsyncIterator[None]:
        worker = GatewayWorker(settings)
        await worker.start()
        yield
        await worker.stop()

    return context
