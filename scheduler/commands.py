"""Calls from the API to the worker that owns an instance's WhatsApp session, as arq jobs on
that worker's own queue (arq's worker runs them: scheduler/worker.py): a typed command
(`scheduler/instance_commands.py`) goes as its `op` and its `args`. Results are plain JSON:
`{"ok": ...}` or `{"error": {code, message}}`."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.jobs import Job

from core import keys
from core.errors import Unavailable, from_wire
from core.jobs import dumps, loads
from core.records import Command
from scheduler.instance_commands import Adopt, encode
from scheduler.ownership import Ownership

COMMAND_JOB = "instance_command"
# How long an answer nobody took stays (a caller that gave up): about as long as arq keeps results.
REPLY_SECONDS = 60


async def answer(redis: ArqRedis, job_id: str, result: dict[str, Any]) -> None:
    """Push a command's answer for the caller waiting in Commands.call."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(keys.command_reply(job_id), dumps(result))
        pipe.expire(keys.command_reply(job_id), REPLY_SECONDS)
        await pipe.execute()


class Commands:
    # Longer than any wait inside a command (a QR code may take linking.QR_WAIT_SECONDS to come),
    # so the worker's own, clearer answer arrives before this gives up.
    def __init__(self, ownership: Ownership, arq: ArqRedis, timeout: float = 30.0) -> None:
        self.ownership = ownership
        self.arq = arq
        self.timeout = timeout

    async def send(self, name: str, command: Command) -> str | None:
        """Hand `command` to the instance's live owner without waiting; returns the owner, or None
        if no worker is alive."""
        owner = await self._owner(name)
        if owner is not None:
            await self.enqueue(owner, name, command)
        return owner

    async def _owner(self, name: str) -> str | None:
        owner, taken_from_dead = await self.ownership.live_owner(name)
        if owner is not None and taken_from_dead:
            await self.enqueue(owner, name, Adopt())  # before the command: the in-flight message, the session
        return owner

    async def enqueue(self, worker_id: str, name: str, command: Command, reply: bool = False) -> Job:
        """Queue `command` for the worker; with `reply`, it pushes its answer to keys.command_reply."""
        queue = keys.worker_queue(worker_id)
        op, args = encode(command)
        job = await self.arq.enqueue_job(COMMAND_JOB, name, op, args, reply=reply, _queue_name=queue)
        assert job is not None  # a fresh random job id is never a duplicate
        return job

    async def call(self, name: str, command: Command, *, timeout: float | None = None) -> dict[str, Any]:
        """Run `command` on the instance's owner and wait for its answer, `timeout` seconds at most
        (default: the channel's own), which the worker pushes to a list of the job's own
        (`reply`): one blocking pop, where polling arq's result many times a second would load
        Redis with every call waiting."""
        timeout = self.timeout if timeout is None else timeout
        owner = await self._owner(name)
        if owner is None:
            raise Unavailable("no worker is running to host this instance: start `wa-gateway worker`")
        job = await self.enqueue(owner, name, command, reply=True)
        # Redis takes a fractional timeout (6.0 on); redis-py types it as an int.
        found = await self.arq.blpop([keys.command_reply(job.job_id)], timeout=timeout)  # type: ignore[arg-type, misc]
        if found is None:
            raise Unavailable(f"worker {owner} did not answer within {timeout:g} s; retry shortly")
        result = loads(found[1])
        if "error" in result:
            raise from_wire(result["error"])
        return dict(result.get("ok") or {})
