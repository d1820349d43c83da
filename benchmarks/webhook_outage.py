"""A receiver's outage, measured: one instance's webhook receiver answers 503 while `--events`
message.received events are produced (the driver's events into the worker's session host), for
`--down` seconds with the probe delays compressed to `--probe` seconds; then it answers 204 again.
Figures: how long until every held event is delivered (from the receiver's return, and from its
first 2xx), Redis memory while they are held, and how many were lost, duplicated or out of order.
One process: the API, one worker, the sandbox driver, an embedded Redis.

`python -m benchmarks.webhook_outage --events 5000 --down 10 --probe 1`
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.__main__ import ADMIN, _caller, gateway_and_receiver, sandbox_settings
from config import load_settings
from core import keys
from core.logs import configure_logging
from core.redis_server import EmbeddedRedis
from scheduler.drivers.base import MessageReceived
from tests.serve_process import free_port

NAME = "bench__c__outage"
POLL_SECONDS = 0.05


class Receiver:
    """Answers 503 while down; keeps the texts of the message.received it accepted, in order."""

    def __init__(self) -> None:
        self.down = False
        self.texts: list[str] = []
        self.refused = 0
        self.first_ok: float | None = None

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.down:
            self.refused += 1
            return web.Response(status=503, text="deploying")
        if body["event"] == "message.received":
            self.first_ok = self.first_ok or time.perf_counter()
            self.texts.append(body["data"]["text"])
        return web.Response(status=204)


async def until(check: Any, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the gateway did not get there in time")
        await asyncio.sleep(POLL_SECONDS)


async def run(events: int, down_seconds: float, probe: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        await redis_server.start()
        port = free_port()
        settings = sandbox_settings(
            Path(tmp),
            redis_server.url,
            log_level="error",
            webhook_retry_delays="0.05,0.1,0.2",
            webhook_probe_delays=str(probe),
        )
        receiver = Receiver()
        try:
            async with (
                gateway_and_receiver(settings, port, receiver.hook) as served,
                aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http,
            ):
                worker = served.worker
                redis = worker.services.redis
                call = _caller(http)
                key = (await call("POST", "/admin/tenants", {"tenantId": "bench"}, ADMIN))["apiKey"]
                body = {"instanceName": NAME, "webhookUrl": served.hook_url}
                await call("POST", "/instance/create", {**body, "webhookSecret": "x" * 16}, key)
                await call("POST", f"/sandbox/instance/{NAME}/link", {}, key)

                async def webhook() -> dict[str, Any]:
                    return dict((await call("GET", f"/instance/{NAME}/status", None, key))["webhook"])

                async def settled() -> bool:
                    return (await webhook())["pending"] == 0

                await until(settled, 30)
                memory_before = int((await redis.info("memory"))["used_memory"])
                receiver.down = True
                outage_started = time.perf_counter()
                sent = [f"event {i}" for i in range(events)]
                for text in sent:
                    event = MessageReceived(
                        message_id=f"3A{uuid.uuid4().hex.upper()}", sender="5491155554444",
                        message_type="conversation", text=text, media=None, timestamp=datetime.now(UTC),
                    )  # fmt: skip
                    await worker.host.on_event(NAME, event)

                async def all_held() -> bool:
                    found = await webhook()
                    return found["state"] == "down" and found["pending"] == events

                await until(all_held, 120)
                held_memory = int((await redis.info("memory"))["used_memory"]) - memory_before
                await asyncio.sleep(max(0.0, down_seconds - (time.perf_counter() - outage_started)))
                state_while_down = (await webhook())["state"]
                tries_while_down = receiver.refused
                receiver.down = False
                back = time.perf_counter()
                await until(settled, 600)
                drained = time.perf_counter()
                stats = await redis.hgetall(keys.WEBHOOK_STATS)  # type: ignore[misc]
        finally:
            await redis_server.stop()
    first_ok = receiver.first_ok or drained
    in_order = receiver.texts == sent
    return {
        "down": drained - outage_started,
        "state_down": float(state_while_down == "down"),
        "tries_while_down": tries_while_down,
        "to_first": first_ok - back,
        "drain": drained - first_ok,
        "total": drained - back,
        "rate": events / max(drained - first_ok, 1e-9),
        "held_memory": held_memory,
        "lost": len(set(sent) - set(receiver.texts)),
        "duplicated": len(receiver.texts) - len(set(receiver.texts)),
        "in_order": float(in_order),
        "dead_lettered": int(stats.get("deadLettered", 0)),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--down", type=float, default=10.0, help="seconds the receiver stays down (at least)")
    parser.add_argument("--probe", type=float, default=1.0, help="GATEWAY_WEBHOOK_PROBE_DELAYS, compressed")
    args = parser.parse_args()
    configure_logging(load_settings({}, log_level="error"))
    f = await run(args.events, args.down, args.probe)
    print(f"webhook outage, one instance, {args.events} events produced while the receiver answers 503:")
    print(
        f"1. endpoint state while down: {'down' if f['state_down'] else 'NOT down'}; "
        f"attempts the receiver saw meanwhile: {f['tries_while_down']:.0f} (retries, then the head's probes)"
    )
    print(
        f"2. Redis memory while {args.events} deliveries are held: {f['held_memory'] / 1e6:.1f} MB "
        f"({f['held_memory'] / args.events:.0f} B each)"
    )
    print(f"3. receiver back -> first 2xx (the next probe, every {args.probe:g} s): {f['to_first']:.2f} s")
    print(
        f"4. first 2xx -> all {args.events} delivered: {f['drain']:.2f} s ({f['rate']:.0f} /s); "
        f"receiver back -> all delivered: {f['total']:.2f} s (goal <= 30 s)"
    )
    print(f"5. lost {f['lost']:.0f}, duplicated {f['duplicated']:.0f}, in order: {bool(f['in_order'])}, "
          f"dead-lettered {f['dead_lettered']:.0f}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
