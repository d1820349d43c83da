"""Delivery of the outbox: for each instance, one worker at a time POSTs the head event, signed,
and settles it (delivered, due again later, or dead-lettered) before the next one goes.

An instance with events to deliver is in one sorted set by due time (`keys.WEBHOOK_DUE`); every
worker's delivery loop takes due instances from it in one script call (each goes to one loop),
which also takes each one's short delivery lock and hands out its head. All state is in the
outbox, so any worker may deliver for any instance, and being taken twice is harmless: the lock
decides who delivers; its holder delivers head after head until the FIFO is empty, so a burst of
events costs one take. Each event costs one round trip to Redis besides the POST: storing the
attempt and fetching the next head are one script.
A head waiting for its retry goes back in the set for its due time; a sweep at start-up (and now
and then) makes due any instance whose holder died with the lock.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from redis.exceptions import RedisError

from config import Settings
from core import keys
from core.clock import iso_from_ms
from core.instances import Instances
from core.netguard import BlockedUrl, PublicOnlyResolver, check_url, guarded_request, guarded_session
from core.redis_client import Redis
from webhooks.endpoint import Endpoint
from webhooks.outbox import ANSWER_KEPT, Attempt, Delivery, Head, LockLost, Outbox, Settled
from webhooks.schedule import Schedule
from webhooks.signing import signed_headers

log = structlog.get_logger(__name__)

DRAIN_SECONDS = 30.0  # one deliverer delivers for an instance this long at most, then hands over
LOCK_MARGIN_SECONDS = 5.0  # the lock outlives one attempt by this much; it is renewed per attempt
SWEEP_SECONDS = 15.0  # how often each worker looks for waiting events that nobody will deliver
SWEEP_CHUNK = 1000  # instances one sweep pipeline looks at: 100,000 in one took 1.5 s of CPU in one go
IDLE_SECONDS = 1.0  # the longest the delivery loop sleeps without looking
MAX_IN_FLIGHT = 64  # instances one worker delivers for at once
RETRY_SECONDS = 0.2  # after a Redis error
SECRETS_KEPT = 10_000  # webhook secrets kept decrypted, at most
BATCH = 100  # deliveries one step hands a healthy endpoint's deliverer: one Redis round trip per batch


async def check_webhook_url(url: str, allow_private: bool) -> None:
    """Raise BlockedUrl now for a URL that delivery would refuse. A name that does not resolve,
    or resolves only to private addresses, passes alike (telling them apart would reveal which
    internal names exist): delivery checks the address after resolving it, every time."""
    check_url(url, allow_private)
    host = urlsplit(url).hostname
    if allow_private or host is None:
        return
    resolver = PublicOnlyResolver()
    try:
        await resolver.resolve(host, 0, socket.AF_UNSPEC)
    except UnicodeError as exc:
        raise BlockedUrl(f"{host!r} is not a valid host name") from exc
    except (OSError, BlockedUrl):
        return
    finally:
        await resolver.close()


class Deliverer:
    def __init__(self, settings: Settings, redis: Redis, outbox: Outbox, instances: Instances) -> None:
        self.redis = redis
        self.outbox = outbox
        self.instances = instances
        self.schedule = Schedule.of(settings)
        self.timeout = settings.webhook_timeout
        self.allow_private = settings.allow_private_urls
        self.lock_seconds = settings.webhook_timeout + LOCK_MARGIN_SECONDS
        self._session: aiohttp.ClientSession | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._secrets: dict[str, str] = {}  # sealed -> plain (a changed secret is sealed anew)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _drain(self, instance_name: str, token: str, head: Head | None) -> None:
        """Settle head after head while they are due; hand over to a job for the head's due time,
        or to a fresh one once this one has delivered for DRAIN_SECONDS. `head` is None once the
        lock is let go."""
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while head is not None:
                self.outbox.clock.learn(head.redis_ms, head.received)
                delivery = head.delivery
                due = delivery.due_ms()
                # An endpoint PATCHed back to ok (or disabled) does not wait for the head's probe.
                waits = head.endpoint.state in ("retrying", "down")
                if waits and due is not None and due > self.outbox.clock.now_ms():
                    await self.outbox.kick(instance_name, at_ms=due, token=token)  # its retry goes then
                    return
                if time.monotonic() > deadline:
                    await self.outbox.kick(instance_name, token=token)  # a fresh take carries on
                    return
                attempted, endpoint = await self._batch(instance_name, head)
                head = await self.outbox.next(
                    instance_name, token, self.lock_seconds, attempted=attempted, endpoint=endpoint, batch=BATCH
                )
        except BaseException:
            if head is not None:
                await self.outbox.kick(instance_name, token=token)  # another worker carries on
            raise

    async def _batch(self, instance_name: str, head: Head) -> tuple[list[Settled], Endpoint | None]:
        """Attempt the head and, while they are delivered (or dead-lettered untried, the endpoint
        disabled), the deliveries after it that came with it, one after the other; stop starting
        new ones once the lock's margin is spent, so the last one ends before the lock does.
        What they settled as, and the endpoint's state they led to (None: unchanged)."""
        started = time.monotonic()
        settled: list[Settled] = []
        changed = None
        for delivery in head.batch():
            if settled and time.monotonic() - started > LOCK_MARGIN_SECONDS:
                break
            done, endpoint = await self._settle(instance_name, head, delivery)
            settled.append(done)
            changed = endpoint or changed
            if endpoint is not None or done.delivery.status not in ("delivered", "dead"):
                break  # the state changed, or the receiver failed: the next step decides
        return settled, changed

    async def _settle(self, instance_name: str, head: Head, delivery: Delivery) -> tuple[Settled, Endpoint | None]:
        """`delivery` (of `head`'s batch) once attempted, or dead-lettered untried while the
        endpoint is disabled; the endpoint's state it led to (None: unchanged)."""
        endpoint = head.endpoint
        if endpoint.state == "disabled":
            log.warning("webhook.dead", instance=instance_name, delivery_id=delivery.id, webhook_event=delivery.event,
                        endpoint="disabled")  # fmt: skip
            return Settled(delivery.dead(), tried=False), None
        clock = self.outbox.clock
        previous = endpoint.signing_previous(clock.now_ms())
        secrets_ = [self._secret(head.sealed_secret), *([self._secret(previous)] if previous else [])]
        attempt, answer, retryable = await self._attempt(delivery, head.url, secrets_)
        settled, after = self.schedule.settle(delivery, attempt, answer, retryable, endpoint, clock.now_ms())
        (log.info if attempt.ok else log.warning)(
            f"webhook.{settled.status}", instance=instance_name, delivery_id=delivery.id,
            webhook_event=delivery.event, attempt=settled.tries, status_code=attempt.status_code,
            error=attempt.error, next_attempt_at=settled.next_attempt_at, endpoint=after.state,
        )  # fmt: skip
        if after.state != endpoint.state:
            log.warning("webhook.endpoint", instance=instance_name, state=after.state, was=endpoint.state)
        return Settled(settled), (after if after != endpoint else None)

    def _secret(self, sealed: str) -> str:
        """The webhook secret `sealed` holds: decrypting it for every event cost as much as signing."""
        secret = self._secrets.get(sealed)
        if secret is None:
            if len(self._secrets) >= SECRETS_KEPT:
                self._secrets.clear()
            secret = self._secrets[sealed] = self.instances.box.open(sealed)
        return secret

    async def _attempt(self, delivery: Delivery, url: str, secrets_: list[str]) -> tuple[Attempt, str | None, bool]:
        """One POST signed with `secrets_` (the current one first); the attempt, the start of the
        receiver's answer, and whether trying again could help."""
        body, now = delivery.body.encode(), self.outbox.clock.now_ms()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(body, secrets_, delivery.event, delivery.id, now // 1000),
        }
        at, started = iso_from_ms(now), time.monotonic()

        def attempt(status_code: int | None = None, error: str | None = None) -> Attempt:
            duration_ms = round((time.monotonic() - started) * 1000)
            return Attempt(at=at, duration_ms=duration_ms, status_code=status_code, error=error)

        try:
            # One deadline for the whole attempt, however many redirects it follows.
            async with asyncio.timeout(self.timeout):
                response = await guarded_request(
                    self._client(), "POST", url, self.allow_private, data=body, headers=headers
                )
                try:
                    answer = (await response.content.read(ANSWER_KEPT)).decode(errors="replace")
                finally:
                    response.release()
        except BlockedUrl as exc:
            return attempt(error=f"refused by the private-address guard: {exc}"), None, False
        except ValueError as exc:  # a URL no client can use (a host name that fails IDNA): retrying cannot help
            return attempt(error=f"unusable webhook URL: {exc}"), None, False
        except TimeoutError:
            return attempt(error=f"no answer within {self.timeout:g} s"), None, True
        except aiohttp.ClientError as exc:
            return attempt(error=f"{type(exc).__name__}: {exc}"), None, True
        return attempt(status_code=response.status), answer, True

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No timers of aiohttp's own: each attempt runs under one asyncio.timeout (`_attempt`),
            # redirects included; a second deadline per request was 1.6 % of the deliverer's samples (py-spy).
            self._session = guarded_session(self.allow_private, aiohttp.ClientTimeout())
        return self._session

    async def sweep(self) -> None:
        """Kick every instance with unsettled events and nobody delivering them: after a restart of
        the whole gateway, or when a worker died holding an instance's lock."""
        async for names in self.instances.name_chunks(SWEEP_CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.llen(keys.outbox(name))
                    pipe.exists(keys.webhook_lock(name))
                found = await pipe.execute()
            for name, waiting, locked in zip(names, found[::2], found[1::2], strict=True):
                if waiting and not locked:
                    await self.outbox.kick(name)

    async def run_forever(self) -> None:
        """The delivery loop: take the due instances there is room for, deliver for each in a
        task of its own, and sleep until the next due time or until an instance is made due."""
        wait = 0.0  # before the next take: its wait for the bell and the take are one round trip
        try:
            while True:
                try:
                    room = MAX_IN_FLIGHT - len(self._running)
                    if room <= 0:
                        self._room.clear()
                        await self._room.wait()
                        wait = 0.0
                        continue
                    token = secrets.token_hex(8)
                    take = await self.outbox.take_due(room, token, self.lock_seconds, wait)
                    for name, head in take.heads.items():
                        self.deliver_now(name, token, head)
                    next_due = take.next_due_ms
                    until = IDLE_SECONDS if next_due is None else (next_due - self.outbox.clock.now_ms()) / 1000
                    wait = min(until, IDLE_SECONDS) if take.taken < room else 0.0
                    wait = wait if wait > 0.001 else 0.0
                except RedisError as exc:
                    log.warning("webhook.loop_redis_error", error=str(exc))
                    wait = 0.0
                    await asyncio.sleep(RETRY_SECONDS)
                except Exception:  # a bug must not stop this worker's deliveries for good
                    log.exception("webhook.loop_failed")
                    wait = 0.0
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    def deliver_now(self, instance_name: str, token: str, head: Head) -> None:
        """Deliver from `head` on, under the lock `token` that a take, or a step publishing the
        event, took."""
        self._track(self._run_logged(instance_name, token, head))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._room.set()

    async def _run_logged(self, instance_name: str, token: str, head: Head) -> None:
        try:
            await self._drain(instance_name, token, head)
        except LockLost:
            log.warning("webhook.lock_expired", instance=instance_name)
        except RedisError as exc:  # the sweep makes the instance due again once Redis is back
            log.warning("webhook.redis_error", instance=instance_name, error=str(exc))
        except Exception:
            log.exception("webhook.delivery_failed", instance=instance_name)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.exception("webhook.sweep_failed")


def delivering(deliverer: Deliverer) -> list[asyncio.Task[None]]:
    """`deliverer`'s delivery loop and its sweep, running (in a worker, or a deliverer process)."""
    return [asyncio.create_task(deliverer.run_forever()), asyncio.create_task(deliverer.sweep_forever())]
