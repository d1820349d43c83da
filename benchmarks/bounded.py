"""`make bench`, bounded work: a backlog of 100,000 messages never holds Redis in one call.

100,000 messages are queued on one unlinked instance (in accept calls of 1,000, as a batch of
1,000 arrives) and as many on another; the first is then linked after their longest wait has
passed, so the claim loop expires all of them (in chunks, re-woken through the due-set), and the
second is flushed with DELETE /admin/queue (flush.lua, in chunks). Redis's slowest commands in
each phase come from its SLOWLOG (every command of 1 ms or more is logged); the goal is <= 10 ms.
The gateway (API and worker, sandbox driver) runs in this process on a private embedded Redis;
webhooks go to a local receiver answering 204.

Options: `python -m benchmarks.bounded --messages 100000`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from config import load_settings
from core import keys
from core.logs import configure_logging
from core.redis_client import Redis, connect
from core.redis_server import EmbeddedRedis
from core.scripts import SCRIPTS, Scripts
from scheduler.lanes import Accepting, Lanes
from scheduler.messages import Message, new_message_id
from tests.http_live import live_gateway

ADMIN = "bench-admin-key-0123456789"
BATCH = 1000
MAX_WAIT = 5  # s: the messages' longest wait, so the linked instance finds them all expired


async def receiver() -> tuple[web.AppRunner, str]:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"


async def queue(lanes: Lanes, name: str, count: int) -> None:
    for start in range(0, count, BATCH):
        made = [
            Message.new(new_message_id(), name, "bulk", f"549{start + i:010d}", "text", text="hello")
            for i in range(min(BATCH, count - start))
        ]
        await lanes.accept(name, [Accepting(m) for m in made])


def script_names(redis: Redis, lanes: Lanes) -> dict[str, str]:
    """Every script by SHA (computed here, nothing sent), to name an EVALSHA in the SLOWLOG; a lane
    script (core/lua/common.lua's) as `lanes` run it, under their rules."""
    scripts = Scripts.of(redis)
    return {(lanes.script(name) if "common" in parts else scripts[name]).sha: name for name, parts in SCRIPTS.items()}


async def slowest(redis: Redis, names: dict[str, str]) -> tuple[float, str, int]:
    """The slowest command logged since the last reset (ms, its name (a script's for an EVALSHA),
    how many took >= 1 ms)."""
    entries = await redis.slowlog_get(100_000)
    await redis.slowlog_reset()
    if not entries:
        return 0.0, "-", 0
    top = max(entries, key=lambda entry: entry["duration"])
    command = top["command"]
    words = (command.decode() if isinstance(command, bytes) else str(command)).split(" ")
    name = words[0] if words[0].upper() != "EVALSHA" else f"EVALSHA {names.get(words[1], words[1][:8])}"
    return top["duration"] / 1000, name, len(entries)


async def run(count: int) -> list[tuple[str, float, tuple[float, str, int]]]:
    phases: list[tuple[str, float, tuple[float, str, int]]] = []
    with tempfile.TemporaryDirectory(prefix="wa-bench-") as directory:
        embedded = EmbeddedRedis(Path(directory) / "redis")
        await embedded.start()
        hooks, hook_url = await receiver()
        redis = connect(embedded.url)
        try:
            await redis.config_set("slowlog-log-slower-than", 1000)
            await redis.config_set("slowlog-max-len", 100_000)
            settings = load_settings(
                {},
                redis_url=embedded.url,
                admin_key=ADMIN,
                secret_key="bench-secret-key-0123456789",
                data_dir=Path(directory) / "data",
                driver="sandbox",
                allow_private_urls=True,
                message_max_wait=MAX_WAIT,
                worker_id="bench-bounded",
                log_level="error",
            )
            configure_logging(settings)
            lanes = Lanes.from_settings(redis, settings)
            scripts = script_names(redis, lanes)
            async with live_gateway(settings) as served, aiohttp.ClientSession(served.base) as http:
                admin = {"apikey": ADMIN}
                async with http.post("/admin/tenants", json={"tenantId": "bench"}, headers=admin) as created:
                    key = {"apikey": (await created.json())["apiKey"]}
                names = ("bench__c1__expiring", "bench__c1__flushed")
                for name in names:
                    body = {"instanceName": name, "webhookUrl": hook_url, "webhookSecret": "s" * 16}
                    async with http.post("/instance/create", json=body, headers=key) as response:
                        assert response.status == 201, await response.text()
                await redis.slowlog_reset()
                started = time.perf_counter()
                for name in names:
                    await queue(lanes, name, count)
                phases.append((f"queue 2 x {count:,} (accept, {BATCH:,} a call)", time.perf_counter() - started,
                               await slowest(redis, scripts)))  # fmt: skip
                await asyncio.sleep(MAX_WAIT + 1)  # every message is past its longest wait now

                started = time.perf_counter()
                link = {"phoneNumber": "5491100000000"}
                async with http.post(f"/sandbox/instance/{names[0]}/link", json=link, headers=key) as response:
                    assert response.status == 200, await response.text()
                while await redis.hget(keys.STATS, "failed") != str(count) or await _waiting(redis, names[0]):  # type: ignore[misc]
                    await asyncio.sleep(0.2)
                phases.append((f"link, {count:,} expire", time.perf_counter() - started, await slowest(redis, scripts)))

                started = time.perf_counter()
                async with http.delete(f"/admin/queue/{names[1]}", headers=admin) as response:
                    flushed = (await response.json())["flushed"]
                assert flushed == count, flushed
                phases.append((f"flush {count:,}", time.perf_counter() - started, await slowest(redis, scripts)))
        finally:
            await redis.aclose()
            await hooks.cleanup()
            await embedded.stop()
    return phases


async def _waiting(redis: Redis, name: str) -> int:
    return sum([await redis.llen(keys.lane(name, lane)) for lane in ("urgent", "normal", "bulk")])  # type: ignore[misc]


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bounded", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args(argv)
    phases = asyncio.run(run(args.messages))
    print("6. bounded work: Redis's slowest command (SLOWLOG, >= 1 ms logged; goal <= 10 ms)")
    for label, seconds, (ms, command, logged) in phases:
        print(f"   {label:<40} {seconds:7.1f} s   slowest {ms:6.2f} ms ({command})   {logged} commands >= 1 ms")


if __name__ == "__main__":
    main()
