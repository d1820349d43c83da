"""Scale-out figures with real processes: sends per second and lateness with 1, 2 and 4 workers,
and the time to adopt 1,000 instances after their worker dies.

`python -m benchmarks.scale_out --instances 200 --messages 10 --adopt 1000`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from config import load_settings
from core import keys
from core.logs import configure_logging
from core.redis_client import connect
from core.redis_server import EmbeddedRedis
from tests.conftest import UNTYPED
from tests.serve_process import ServeProcess

ADMIN = "bench-admin-key-0123456789"
LANES = {
    lane: {"gap": [0.02, 0.05], "perHour": 100000, "perDay": 100000, **UNTYPED} for lane in ("urgent", "normal", "bulk")
}
LEASE = 5.0


class Gateway:
    """`serve --no-worker` and N `worker` processes on one Redis, driven over HTTP."""

    def __init__(self, tmp: Path, redis_url: str, workers: int) -> None:
        env = {
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_ADMIN_KEY": ADMIN,
            "GATEWAY_SECRET_KEY": "bench-secret-key-0123456789",
            "GATEWAY_LANES": json.dumps(LANES),
            "GATEWAY_RATE_LIMIT": "100000000",
            "GATEWAY_LEASE_TIMEOUT": str(LEASE),
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_MAX_SESSIONS": "5000",
        }
        self.api = ServeProcess(tmp / "data", "serve", **env)
        self.workers = [ServeProcess(tmp / "data", "worker", GATEWAY_WORKER_ID=f"w{i}", **env) for i in range(workers)]
        self.http: aiohttp.ClientSession | None = None
        self.key = ""

    async def __aenter__(self) -> Gateway:
        for worker in self.workers:
            worker.start(wait_healthy=False)
        self.api.start(extra_args=("--no-worker",))
        self.http = aiohttp.ClientSession(base_url=self.api.base, connector=aiohttp.TCPConnector(limit=50))
        while len([w for w in await self.call("GET", "/admin/workers") if w["alive"]]) < len(self.workers):
            await asyncio.sleep(0.1)
        self.key = (await self.call("POST", "/admin/tenants", {"tenantId": "bench"}))["apiKey"]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.http is not None
        await self.http.close()
        for process in [self.api, *self.workers]:
            if process.process is not None:
                process.stop(signal.SIGKILL)

    async def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        assert self.http is not None
        async with self.http.request(method, path, json=body, headers={"apikey": key or ADMIN}) as response:
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
            return await response.json() if response.status != 204 else None

    async def open_instances(self, count: int) -> list[str]:
        names = [f"bench__c{i % 10}__n{i}" for i in range(count)]
        hook = "https://hooks.invalid/wa"

        async def one(name: str) -> None:
            body = {"instanceName": name, "webhookUrl": hook, "webhookSecret": "s" * 16}
            await self.call("POST", "/instance/create", body, self.key)
            await self.call("POST", f"/sandbox/instance/{name}/link", {}, self.key)

        for start in range(0, count, 50):
            await asyncio.gather(*(one(name) for name in names[start : start + 50]))
        return names

    async def states(self, names: list[str]) -> list[str]:
        return [(await self.call("GET", f"/instance/{n}/status", key=self.key))["state"] for n in names]


async def throughput(workers: int, instances: int, messages: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp) / "redis")
        await redis.start()
        try:
            async with Gateway(Path(tmp), redis.url, workers) as gateway:
                names = await gateway.open_instances(instances)
                total = instances * messages
                started = time.perf_counter()
                ids: list[str] = []
                for i in range(messages):
                    batch = [
                        gateway.call("POST", "/message/text", {"instanceName": n, "to": "5491112345678",
                                                               "text": f"m{i}"}, gateway.key)
                        for n in names
                    ]  # fmt: skip
                    ids += [answer["id"] for answer in await asyncio.gather(*batch)]
                store = connect(redis.url)
                try:
                    while int(await store.hget(keys.STATS, "sent") or 0) < total:  # type: ignore[misc]
                        await asyncio.sleep(0.05)
                    elapsed = time.perf_counter() - started
                    late = []
                    for message_id in ids:
                        sent_at, eligible = await store.hmget(keys.message(message_id), ["sentAt", "eligibleMs"])  # type: ignore[misc]
                        late.append(datetime.fromisoformat(sent_at).timestamp() * 1000 - int(eligible))
                finally:
                    await store.aclose()
        finally:
            await redis.stop()
    late.sort()
    return {
        "rate": total / elapsed,
        "p50": late[len(late) // 2],
        "p99": late[int(len(late) * 0.99)],
        "max": late[-1],
        "mean": statistics.fmean(late),
    }


async def adoption(instances: int) -> dict[str, float]:
    """One worker hosts `instances`; a second starts; the first is killed. How long until the
    second owns them all, and until they are all open again?"""
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp) / "redis")
        await redis.start()
        try:
            async with Gateway(Path(tmp), redis.url, 1) as gateway:
                names = await gateway.open_instances(instances)
                second = ServeProcess(
                    gateway.api.data_dir, "worker", **{**gateway.workers[0].env, "GATEWAY_WORKER_ID": "w-new"}
                )
                second.start(wait_healthy=False)
                gateway.workers.append(second)
                while "w-new" not in [w["workerId"] for w in await gateway.call("GET", "/admin/workers") if w["alive"]]:
                    await asyncio.sleep(0.1)
                gateway.workers[0].stop(signal.SIGKILL)
                killed = time.perf_counter()
                while True:
                    owned = {w["workerId"]: len(w["instances"]) for w in await gateway.call("GET", "/admin/workers")}
                    if owned.get("w-new") == instances:
                        break
                    await asyncio.sleep(0.05)
                adopted = time.perf_counter() - killed
                while (await gateway.states(names)).count("open") < instances:
                    await asyncio.sleep(0.2)
                reopened = time.perf_counter() - killed
        finally:
            await redis.stop()
    return {"adopted": adopted, "reopened": reopened}


async def main() -> None:
    configure_logging(load_settings({}, log_level="error"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10, help="per instance")
    parser.add_argument("--adopt", type=int, default=1000)
    args = parser.parse_args()
    for workers in (1, 2, 4):
        figures = await throughput(workers, args.instances, args.messages)
        print(f"5. {workers} worker(s): {figures['rate']:7.0f} sends/s   lateness p50 {figures['p50']:6.0f} ms   "
              f"p99 {figures['p99']:6.0f} ms   max {figures['max']:6.0f} ms   "
              f"({args.instances} instances x {args.messages} messages, gaps 20-50 ms)")  # fmt: skip
    adopted = await adoption(args.adopt)
    print(f"6. adopting {args.adopt} instances after their worker died (lease {LEASE:g} s): owned by the "
          f"survivor after {adopted['adopted']:.1f} s, all open again after {adopted['reopened']:.1f} s")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
