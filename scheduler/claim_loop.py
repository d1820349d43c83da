"""The claim loop: each worker's one source of wake-ups. Accepting a message, recording a send and
adopting an instance put the instance in its owner's due-set (a sorted set of instance names by
next wake-up, core/lua/common.lua `wake`) in the same atomic step as its lanes. This loop, inside
the worker process, takes every due instance in one script call (core/lua/claim_due.lua, under
the owner/epoch fencing), runs the sends it picked, a bounded number at once and never two for
one number, and sleeps until the next wake-up or until its bell rings for an earlier one: that
sleep (a blocking pop) and the claim after it go to Redis as one pipeline, one round trip.

Nothing else schedules sends, so there is no second state machine to agree with. The sweep only
repairs what a cut connection can leave behind (a claim whose answer was lost), and it runs while
the loop is held, so it never mistakes a claim under way for a lost one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from redis.exceptions import RedisError

from core.clock import now_ms
from scheduler.lanes import Claimed, Lanes
from scheduler.ownership import Ownership
from scheduler.pump import EXPIRED, OPTED_OUT, Pump

log = structlog.get_logger(__name__)

# The longest the loop sleeps without looking: a bell lost with a Redis restart costs this much.
IDLE_SECONDS = 1.0
# After a Redis error, wait this long before trying again (then sweep: a claim may have been cut).
RETRY_SECONDS = 0.2
# Instances one claim takes at most: a claim of 256 due instances held Redis 10.8 ms on two cores
# (SLOWLOG, make bench's burst); the loop claims again at once while more are due.
CLAIM_AT_MOST = 64
# Instances one sweep step looks at: over 100,000 owned instances one step held Redis 420 ms, every
# sweep interval (the lateness tail at 100,000); 500 a step, about 2 ms each.
SWEEP_CHUNK = 500


class ClaimLoop:
    def __init__(
        self,
        worker_id: str,
        lanes: Lanes,
        ownership: Ownership,
        pump: Pump,
        max_in_flight: int,
        sweep_seconds: float,
    ) -> None:
        self.worker_id = worker_id
        self.sweep_seconds = sweep_seconds
        self.lanes = lanes
        self.ownership = ownership
        self.pump = pump
        self.max_in_flight = max_in_flight
        self.running: dict[str, asyncio.Task[None]] = {}  # instance -> its send under way
        self._held = asyncio.Lock()  # held by a claim and by a sweep: never both at once
        self._room = asyncio.Event()
        self._sweep_due = True  # a sweep first
        self._sweeping: AsyncIterator[list[str]] | None = None  # the sweep under way: its chunks left
        self._claiming = True

    async def run(self) -> None:
        """Claim and send until cancelled; a Redis outage only pauses it. A sweep goes a chunk
        between two claims, which do not wait for their wake-up meanwhile: sends go on while a
        worker of 100,000 instances sweeps."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep_seconds
        wait = 0.0
        while True:
            try:
                if self._sweeping is None and (self._sweep_due or loop.time() > next_sweep):
                    self._sweep_due = False
                    self._sweeping = self.ownership.owned_chunks(self.worker_id, SWEEP_CHUNK)
                    next_sweep = loop.time() + self.sweep_seconds
                if self._sweeping is not None:
                    await self._sweep_step(self._sweeping)
                    wait = 0.0
                wait = await self._wait(await self._claim(wait))
            except (RedisError, OSError) as exc:
                log.warning("claims.redis_error", worker_id=self.worker_id, error=str(exc))
                self._sweep_again()
                wait = 0.0
                await asyncio.sleep(RETRY_SECONDS)
            except Exception:  # a bug must not stop this worker's sends for good
                log.exception("claims.failed", worker_id=self.worker_id)
                self._sweep_again()
                wait = 0.0
                await asyncio.sleep(RETRY_SECONDS)

    def _sweep_again(self) -> None:
        """Sweep from the start at the next turn (a sweep cut off by an error is dropped)."""
        self._sweeping = None
        self._sweep_due = True

    async def _sweep_step(self, sweeping: AsyncIterator[list[str]]) -> None:
        """Put back what a lost claim answer left marked in flight, and wake any of our instances
        whose waiting messages have no wake-up (see core/lua/sweep.lua), for the next SWEEP_CHUNK
        instances of the sweep under way, with no claim under way and the sends running now."""
        try:
            owned = await anext(sweeping)
        except StopAsyncIteration:
            self._sweeping = None
            return
        async with self._held:
            fixed = await self.lanes.sweep(self.worker_id, owned, set(self.running))
        for name in fixed:
            log.info("claims.swept", instance=name)

    async def _claim(self, wait: float) -> int | None:
        """Sleep up to `wait` s (until the bell rings), then start the sends of every due instance
        there is room for, in the same round trip; the next wake-up left (ms), `now` when more are
        due, None when the loop is full or nothing is scheduled."""
        async with self._held:
            room = min(self.max_in_flight - len(self.running), CLAIM_AT_MOST)
            if room <= 0 or not self._claiming:
                return None
            claim = await self.lanes.claim_due(
                self.worker_id,
                room,
                EXPIRED.hash_fields(),
                OPTED_OUT.hash_fields(),
                wait,
            )
            for claimed in claim.taken:
                self._start(claimed)
        if len(claim.taken) == room:
            return now_ms()  # there may be more due: look again at once
        return claim.next_due_ms

    async def _wait(self, next_due_ms: int | None) -> float:
        """Wait here while the loop is full; else how long the next claim should wait first (s)."""
        if len(self.running) >= self.max_in_flight or not self._claiming:
            self._room.clear()
            await self._room.wait()
            return 0.0
        wait = IDLE_SECONDS if next_due_ms is None else min(IDLE_SECONDS, (next_due_ms - now_ms()) / 1000)
        return wait if wait > 0.001 else 0.0

    def _start(self, claimed: Claimed) -> None:
        previous = self.running.get(claimed.name)
        task = asyncio.create_task(self._send(claimed, previous))
        self.running[claimed.name] = task
        task.add_done_callback(lambda done: self._done(claimed.name, done))

    async def _send(self, claimed: Claimed, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:  # never two sends at once on one number, whatever Redis says
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await self.pump.run(claimed)
        except RedisError as exc:
            log.warning("pump.redis_error", instance=claimed.name, error=str(exc))
            self._sweep_due = True  # the send did not start: the (next) sweep puts its message back
        except Exception:
            log.exception("pump.failed", instance=claimed.name)
            self._sweep_due = True

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        if self.running.get(name) is task:
            del self.running[name]
        self._room.set()

    async def drain(self, timeout: float) -> None:
        """Stop claiming (once a claim under way is done, so the loop can then be cancelled
        without cutting one off) and let the sends under way finish, up to `timeout` s; then
        cancel the rest (their messages are re-queued by the next owner, possibly duplicated)."""
        # No claim starts from now on (each looks at this once it holds the loop), so the ring
        # below cannot be taken by a claim that then waits its whole wake-up out.
        self._claiming = False
        with contextlib.suppress(RedisError):
            await self.lanes.ring(self.worker_id)  # a claim waiting for its wake-up ends now
        async with self._held:  # the claim under way, if any, is done
            pass
        self._room.set()
        tasks = list(self.running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*late, return_exceptions=True)
