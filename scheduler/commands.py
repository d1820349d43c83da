"""Calls from the API to the worker that owns an instance's WhatsApp session, as arq jobs on
that worker's own queue. Results are plain JSON: `{"ok": ...}` or `{"error": {code, message}}`."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis

from core import keys
from core.errors import Unavailable, from_wire
from scheduler.ownership import Ownership

COMMAND_JOB = "instance_command"


class Commands:
    # Longer than any wait inside a command (a QR code may take sessions.QR_WAIT_SECONDS to come),
    # so the worker's own, clearer answer arrives before this gives up.
    def __init__(self, ownership: Ownership, arq: ArqRedis, timeout: float = 30.0) -> None:
        self.ownership = ownership
        self.arq = arq
        self.timeout = timeout

    async def send(self, name: str, op: str, args: dict[str, Any] | None = None) -> str | None:
        """Hand `op` to the instance's live owner without waiting; returns the owner, or None if no
        worker is alive."""
        owner = await self._owner(name)
        if owner is not None:
            await self.enqueue(owner, name, op, args)
        return owner

    async def _owner(self, name: str) -> str | None:
        owner, taken_from_dead = await self.ownership.live_owner(name)
        if owner is not None and taken_from_dead:
            await self.enqueue(owner, name, "adopt")  # before the command: the in-flight message, the session
        return owner

    async def enqueue(self, worker_id: str, name: str, op: str, args: dict[str, Any] | None = None) -> None:
        await self.arq.enqueue_job(COMMAND_JOB, name, op, args or {}, _queue_name=keys.worker_queue(worker_id))

    async def call(
        self, name: str, op: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Run `op` on the instance's owner and wait for its answer, `timeout` seconds at most
        (default: the channel's own)."""
        timeout = self.timeout if timeout is None else timeout
        owner = await self._owner(name)
        if owner is None:
            raise Unavailable("no worker is running to host this instance: start `wa-gateway worker`")
        job = await self.arq.enqueue_job(COMMAND_JOB, name, op, args or {}, _queue_name=keys.worker_queue(owner))
        assert job is not None  # a fresh random job id is never a duplicate
        try:
            result: dict[str, Any] = await job.result(timeout=timeout, poll_delay=0.02)
        except TimeoutError:
            raise Unavailable(f"worker {owner} did not answer within {timeout:g} s; retry shortly") from None
        if "error" in result:
            raise from_wire(result["error"])
        return dict(result.get("ok") or {})
