"""Delivery of the outbox: for each instance, one worker at a time POSTs the head event, signed,
and settles it (delivered, due again later, or dead-lettered) before the next one goes.

A job (`DELIVER_JOB` on the shared `keys.OUTBOX_QUEUE`) only says "look at this instance": all
state is in the outbox, so any worker may run any job and duplicate jobs are harmless. Who
delivers is decided by a short per-instance lock; its holder delivers head after head until the
FIFO is empty, so a burst of events costs one job, and publishing queues a job only when none is
pending (core/lua/webhook_next.lua tells how no wake-up is lost). Each event costs one round trip to
Redis besides the POST: storing the attempt and fetching the next head are one script. Retries
are deferred jobs, and the due time of the next attempt is in the record, so a sweep at start-up
(and now and then) re-creates any job lost with a worker.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from config import Settings
from core import keys
from core.clock import now_iso
from core.instances import Instances
from core.netguard import BlockedUrl, PublicOnlyResolver, check_url, guarded_request, guarded_session
from core.redis_client import Redis
from webhooks.outbox import Attempt, Delivery, Head, LockLost, Outbox
from webhooks.signing import signed_headers

log = structlog.get_logger(__name__)

DRAIN_SECONDS = 30.0  # one job delivers for this long at most, then hands over to a fresh job
LOCK_MARGIN_SECONDS = 5.0  # the lock outlives one attempt by this much; it is renewed per attempt
SWEEP_SECONDS = 15.0  # how often each worker looks for waiting events that no job will pick up


async def deliver_webhooks(ctx: dict[str, Any], instance_name: str) -> None:
    deliverer: Deliverer = ctx["deliverer"]
    await deliverer.run(instance_name)


def job_timeout(settings: Settings) -> float:
    return DRAIN_SECONDS + settings.webhook_timeout + LOCK_MARGIN_SECONDS


async def check_webhook_url(url: str, allow_private: bool) -> None:
    """Raise BlockedUrl now for a URL that delivery would refuse. A name that does not resolve
    passes: delivery checks the address again, after resolving it, every time."""
    check_url(url, allow_private)
    host = urlsplit(url).hostname
    if allow_private or host is None:
        return
    resolver = PublicOnlyResolver()
    try:
        await resolver.resolve(host, 0, socket.AF_UNSPEC)
    except UnicodeError as exc:
        raise BlockedUrl(f"{host!r} is not a valid host name") from exc
    except OSError:
        return
    finally:
        await resolver.close()


class Deliverer:
    def __init__(self, settings: Settings, redis: Redis, outbox: Outbox, instances: Instances) -> None:
        self.redis = redis
        self.outbox = outbox
        self.instances = instances
        self.delays = settings.webhook_retry_delays
        self.timeout = settings.webhook_timeout
        self.allow_private = settings.allow_private_urls
        self.lock_seconds = settings.webhook_timeout + LOCK_MARGIN_SECONDS
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self, instance_name: str) -> None:
        """Deliver the instance's due events in order, unless another worker is at it already."""
        token = secrets.token_hex(8)
        try:
            head = await self.outbox.next(instance_name, token, self.lock_seconds, claim=True)
            await self._drain(instance_name, token, head)
        except LockLost:
            log.warning("webhook.lock_expired", instance=instance_name)

    async def _drain(self, instance_name: str, token: str, head: Head | None) -> None:
        """Settle head after head while they are due; hand over to a job for the head's due time,
        or to a fresh one once this job has delivered for DRAIN_SECONDS. `head` is None once the
        lock is let go."""
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while head is not None:
                delivery = head.delivery
                due = delivery.due_at()
                if due.timestamp() > time.time():
                    await self.outbox.kick(instance_name, at=due, token=token)  # its retry goes then
                    return
                if time.monotonic() > deadline:
                    await self.outbox.kick(instance_name, token=token)  # a fresh job carries on
                    return
                secret = self.instances.box.open(head.sealed_secret)
                attempt, retryable = await self._attempt(delivery, head.url, secret)
                settled = delivery.after(attempt, self.delays, retryable)
                (log.info if attempt.ok else log.warning)(
                    f"webhook.{settled.status}", instance=instance_name, delivery_id=delivery.id,
                    webhook_event=delivery.event, attempt=settled.tries, status_code=attempt.status_code,
                    error=attempt.error, next_attempt_at=settled.next_attempt_at,
                )  # fmt: skip
                head = await self.outbox.next(instance_name, token, self.lock_seconds, attempted=settled)
        except BaseException:
            if head is not None:
                await self.outbox.release(instance_name, token)
            raise

    async def _attempt(self, delivery: Delivery, url: str, secret: str) -> tuple[Attempt, bool]:
        """One signed POST; the attempt, and whether trying again could help."""
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(body, secret, delivery.event, delivery.id, int(time.time())),
        }
        at, started = now_iso(), time.monotonic()

        def attempt(status_code: int | None = None, error: str | None = None) -> Attempt:
            duration_ms = round((time.monotonic() - started) * 1000)
            return Attempt(at=at, duration_ms=duration_ms, status_code=status_code, error=error)

        try:
            # One deadline for the whole attempt, however many redirects it follows.
            async with asyncio.timeout(self.timeout):
                response = await guarded_request(
                    self._client(), "POST", url, self.allow_private, data=body, headers=headers
                )
                response.release()
        except BlockedUrl as exc:
            return attempt(error=f"refused by the private-address guard: {exc}"), False
        except ValueError as exc:  # a URL no client can use (a host name that fails IDNA): retrying cannot help
            return attempt(error=f"unusable webhook URL: {exc}"), False
        except TimeoutError:
            return attempt(error=f"no answer within {self.timeout:g} s"), True
        except aiohttp.ClientError as exc:
            return attempt(error=f"{type(exc).__name__}: {exc}"), True
        return attempt(status_code=response.status), True

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = guarded_session(self.allow_private, aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def sweep(self) -> None:
        """Kick every instance with unsettled events and nobody delivering them: after a restart of
        the whole gateway, or when a worker died holding an instance's lock."""
        names = await self.instances.names()
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(keys.outbox(name))
                pipe.exists(keys.webhook_lock(name))
            found = await pipe.execute()
        for name, waiting, locked in zip(names, found[::2], found[1::2], strict=True):
            if waiting and not locked:
                await self.outbox.kick(name)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.exception("webhook.sweep_failed")
