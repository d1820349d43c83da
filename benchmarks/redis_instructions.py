"""Instructions Redis runs per message sent, counted by valgrind's callgrind: the figure that caps
every worker of a gateway together (they share one Redis), and one that holds whatever else the
machine does, where Redis's CPU time per message drifts with the machine's speed.

    python -m benchmarks.redis_instructions [--instances 200] [--burst 3]

The burst of `python -m benchmarks` (deliverer apart) on fewer instances, with its embedded
redis-server run under callgrind (a `redis-server` first on PATH that starts the real one so),
counting on for the burst alone: each message's accept (POST /message/batch), claim, send, finish,
conversation entry and webhook delivery, until the deliveries stop. Needs valgrind (Debian's
package).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from benchmarks.__main__ import paced_run, run_as_deployed
from benchmarks.instructions import callgrind, count_off, count_on
from benchmarks.roundtrips import NOT_COUNTED, RoundTrips
from core import keys
from core.redis_server import EmbeddedRedis

QUIET_SECONDS = 3.0  # no webhook delivered for this long: the burst's deliveries are over


def callgrind_redis(folder: Path, out: Path) -> None:
    """A `redis-server` in `folder` that runs the real one under callgrind, counting off."""
    real = shutil.which("redis-server")
    if real is None:
        raise SystemExit("redis-server not found (Debian's package redis-server)")
    wrapper = folder / "redis-server"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(callgrind(out))} {real} "$@"\n')
    wrapper.chmod(0o755)


async def until_delivered(url: str) -> None:
    """Until no webhook has been delivered for QUIET_SECONDS."""
    redis = Redis.from_url(url, decode_responses=True, client_name=NOT_COUNTED)
    try:
        last, quiet = None, 0.0
        while quiet < QUIET_SECONDS:
            delivered = await redis.hget(keys.WEBHOOK_STATS, "delivered")
            quiet = quiet + 0.5 if delivered == last else 0.0
            last = delivered
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()


def counting(out: Path, found: list[int]) -> Callable[[EmbeddedRedis], AbstractAsyncContextManager[None]]:
    """What paced_run enters around the burst: counting on for it, then the count into `found`."""

    @asynccontextmanager
    async def around(redis: EmbeddedRedis) -> AsyncIterator[None]:
        assert redis.pid is not None
        count_on(redis.pid)
        yield
        await until_delivered(redis.url)
        found.append(await count_off(redis.pid, out))

    return around


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--burst", type=int, default=3, help="messages per instance")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (Debian's package valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "redis.out"
        callgrind_redis(folder, out)
        os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ['PATH']}"
        found: list[int] = []
        run = await paced_run(args.instances, 10, 1, args.burst, RoundTrips(), True, counting(out, found))
    messages = args.instances * args.burst
    print(
        f"Redis instructions per message sent: {found[0] / messages / 1000:.0f}k   ({messages} messages on "
        f"{args.instances} instances, deliverer apart: accept, claim, send, finish, conversation, webhook; "
        f"callgrind, {run['sent']} steady sends before it not counted)"
    )


if __name__ == "__main__":
    run_as_deployed(main())
