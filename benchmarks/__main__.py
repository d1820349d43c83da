"""`make bench`: the send path's figures on this machine, printed as one report.

1. Accepted sends per second on POST /message/text (the real gateway in its own process, with
   its embedded Redis) beside a bare aiohttp handler measured the same way, and their ratio;
   and with two API processes sharing the port (`serve --api-processes 2`): the three measured in
   turn, three rounds, each comparison the median of the rounds' own.
2. With many linked sandbox instances on one worker and gaps compressed to tens of milliseconds,
   a steady stream of messages to random instances: lateness of each send (when it went out minus
   when its lanes first allowed it) at p50 / p99 / max. Then a burst on every instance at once:
   how many sends a second one worker does, and the lateness that queueing then adds.
   Then POST /message/batch: messages accepted a second in batches of 1,000.
3. Redis round trips per message in the steady phase (every command or pipeline the API and the
   worker in this process send: auth, accept, wake-ups and claims, the send, webhook delivery;
   with `--deliverer` webhooks go from a `wa-gateway deliverer` process, whose round trips are
   counted apart, benchmarks/counted.py).
4. Memory per idle sandbox instance: worker process RSS and Redis memory.
5. Lateness again at 10,000 instances (`--many`), steady phase only.

Options: `python -m benchmarks --instances 1000 --many 10000 --rate 100 --seconds 10 --burst 3 --accept-seconds 5
--json figures.json` (every figure also written as JSON, for a check to read) `--deliverer` (webhooks
from a deliverer process apart).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from benchmarks.roundtrips import NOT_COUNTED, RoundTrips, script_names
from benchmarks.wrk import wrk_rate
from config import Settings, load_settings
from core import keys, speedups
from core.logs import configure_logging
from core.redis_server import EmbeddedRedis
from gateway.app import create_app
from scheduler.worker import GatewayWorker, worker_context
from tests.conftest import UNTYPED
from tests.serve_process import ServeProcess, free_port

ADMIN = "bench-admin-key-0123456789"
WARM_UP_SECONDS = 1.0  # of load before each accept figure: every process up, the first requests' costs paid
COMPRESSED_LANES = {
    "urgent": {"gap": [0.01, 0.02], "perHour": 100000, "perDay": 100000, **UNTYPED},
    "normal": {"gap": [0.02, 0.04], "perHour": 100000, "perDay": 100000, **UNTYPED},
    "bulk": {"gap": [0.04, 0.06], "perHour": 100000, "perDay": 100000, **UNTYPED},
}


def sandbox_settings(tmp: Path, redis_url: str, **overrides: Any) -> Settings:
    """A benchmark's gateway: the sandbox driver on `redis_url`, no rate limit, private URLs allowed."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "admin_key": ADMIN,
        "secret_key": "bench-secret-key-0123456789",
        "data_dir": tmp / "data",
        "driver": "sandbox",
        "rate_limit": 100_000_000,
        "worker_id": "bench",
        "allow_private_urls": True,
    }
    return load_settings({}, **{**values, **overrides})


@dataclass(frozen=True)
class Served:
    worker: GatewayWorker
    hook_url: str  # where the receiver takes webhooks


@asynccontextmanager
async def gateway_and_receiver(
    settings: Settings, port: int, hook: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[Served]:
    """A benchmark's gateway on loopback `port` (the API, and its worker in this process), and a
    webhook receiver that hands each POST to `hook`."""
    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook)
    hook_runner = web.AppRunner(hook_app, access_log=None)
    await hook_runner.setup()
    hook_port = free_port()
    await web.TCPSite(hook_runner, "127.0.0.1", hook_port).start()
    worker = GatewayWorker(settings)
    await worker.start()
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield Served(worker, f"http://127.0.0.1:{hook_port}/hook")
    finally:
        await runner.cleanup()
        await worker.stop()
        await hook_runner.cleanup()


T = TypeVar("T")


def collector_variable() -> dict[str, str]:
    """GATEWAY_GC_THRESHOLD as this benchmark was run with, if at all: every process it starts gets
    it (`GATEWAY_GC_THRESHOLD=0 python -m benchmarks` measures CPython's own garbage collector);
    every other setting is the default."""
    return {k: v for k, v in os.environ.items() if k == "GATEWAY_GC_THRESHOLD"}


def run_as_deployed(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` as a gateway process runs by default (GATEWAY_SPEEDUPS' defaults, the event loop
    included, and the garbage collector's tuning), so the in-process worker, the load and the
    receivers all run as deployed."""
    defaults = load_settings(collector_variable())
    speedups.configure(defaults.speedups)
    speedups.tune_collector(defaults.gc_threshold)
    return speedups.run(coro)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


RECEIVER = """
import sys
from aiohttp import web
async def hook(request):
    await request.read()
    return web.Response(status=204)
app = web.Application()
app.router.add_route("*", "/{tail:.*}", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

BARE_SERVER = """
import sys
from aiohttp import web
from config import load_settings
loop = None
if "uvloop" in load_settings({}).speedups:  # the gateway's default event loop: measured the same way
    import uvloop
    loop = uvloop.new_event_loop()
async def handler(request):
    await request.json()
    return web.json_response({"id": "x", "status": "pending"}, status=202)
app = web.Application()
app.router.add_post("/message/text", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
"""


def listening_sockets(port: int) -> int:
    """Sockets listening on TCP `port` (one per API process: they share it with SO_REUSEPORT)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1:4:2]
            found += state == "0A" and int(local.rpartition(":")[2], 16) == port  # 0A: LISTEN
    return found


async def until_listening(port: int, processes: int) -> None:
    """Wait until every API process listens: the kernel spreads a connection only over the
    sockets listening when it arrives, so a load started sooner all goes to the first process
    (measured so: 2 processes at 0.84x one, while the second was still starting)."""
    for _ in range(600):
        if listening_sockets(port) >= processes:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{processes} API processes did not all listen on port {port} within 60 s")


async def wait_until_up(url: str, seconds: float = 10) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(round(seconds / 0.05)):
            try:
                async with session.get(url) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


# What `handler_server` runs for the bare aiohttp handler.
BARE = ("-c", BARE_SERVER)


@asynccontextmanager
async def handler_server(
    args: tuple[str, ...], prefix: tuple[str, ...] = (), seconds: float = 10
) -> AsyncIterator[tuple[str, int]]:
    """A handler of POST /message/text in a process of its own, `python <args> <port>` (BARE, or
    benchmarks/floor.py) run under `prefix`, such as valgrind, and up within `seconds`: the URL the
    accept load goes to, and the process's id."""
    port = free_port()
    quiet = subprocess.DEVNULL if prefix else None  # the prefix's own chatter (valgrind's banner)
    process = subprocess.Popen([*prefix, sys.executable, *args, str(port)], stderr=quiet)
    try:
        await wait_until_up(f"http://127.0.0.1:{port}/", seconds)
        yield f"http://127.0.0.1:{port}/message/text", process.pid
    finally:
        process.terminate()
        process.wait()


# The accept figures are measured in turn, this many rounds: the bare handler, the gateway with one
# API process, then with two, in each round, so each round's figures are seconds apart, where the
# machine's speed moves by ±15 % from one minute to the next (one run each, a minute apart, read a
# ratio of 0.22-0.40 on one commit, and two processes at 0.94-1.56x one). Each comparison is the
# median of the rounds' own.
ROUNDS = 3


# What every accept load POSTs to /message/text: a text to the one instance `bench_instance` opens.
ACCEPT_BODY = {"instanceName": "bench__c1__n1", "to": "5491112345678", "text": "{Hi|Hello} there"}


def accept_serve(data_dir: Path, **env: str) -> ServeProcess:
    """`serve` as the accept figures run it: the admin key known, no rate limit, warnings only."""
    return ServeProcess(
        data_dir,
        GATEWAY_ADMIN_KEY=ADMIN,
        GATEWAY_RATE_LIMIT="100000000",
        GATEWAY_LOG_LEVEL="warning",
        **env,
        **collector_variable(),
    )


def bench_instance(serve: ServeProcess) -> tuple[str, dict[str, str]]:
    """Tenant `bench` and the instance ACCEPT_BODY names: the tenant's API key, and the
    instance's body (for more like it)."""
    _, tenant = serve.request("POST", "/admin/tenants", {"tenantId": "bench"}, key=ADMIN)
    hook = "https://hooks.invalid/wa"  # never resolves: passes the guard, and no worker delivers here
    instance = {"instanceName": ACCEPT_BODY["instanceName"], "webhookUrl": hook, "webhookSecret": "x" * 16}
    status, _ = serve.request("POST", "/instance/create", instance, key=tenant["apiKey"])
    assert status == 201
    return tenant["apiKey"], instance


# Where an accept load goes: the URL and the headers it sends.
Target = tuple[str, dict[str, str]]


@dataclass(frozen=True)
class AcceptingGateway:
    """`serve --no-worker` (the instance stays closed: accepting alone, as the API does it)."""

    serve: ServeProcess
    key: str  # tenant `bench`'s
    instance: dict[str, str]  # the body that created the instance ACCEPT_BODY names

    @property
    def target(self) -> Target:
        return f"{self.serve.base}/message/text", {"apikey": self.key}


@asynccontextmanager
async def accepting_gateway(processes: int, speedups: str | None = None) -> AsyncIterator[AcceptingGateway]:
    """A gateway with `processes` API processes (and the GATEWAY_SPEEDUPS `speedups`, else the
    default), every process listening, its bench instance created."""
    with tempfile.TemporaryDirectory() as tmp:
        serve = accept_serve(
            Path(tmp) / "data",
            GATEWAY_API_PROCESSES=str(processes),
            **({} if speedups is None else {"GATEWAY_SPEEDUPS": speedups or "none"}),
        )
        serve.start(extra_args=("--no-worker",), timeout=60)
        try:
            await until_listening(serve.port, processes)
            key, instance = bench_instance(serve)
            yield AcceptingGateway(serve, key, instance)
        finally:
            serve.stop()


async def in_turn(targets: list[Target], seconds: float, concurrency: int, rounds: int) -> list[list[float]]:
    """Requests a second of each target (accept loads, from wrk), measured in turn `rounds` times,
    each warmed up first (every API process up): per target, its figure of each round."""
    for url, headers in targets:
        await wrk_rate(url, ACCEPT_BODY, headers, WARM_UP_SECONDS, concurrency)
    found: list[list[float]] = [[] for _ in targets]
    for _ in range(rounds):
        for rates, (url, headers) in zip(found, targets, strict=True):
            rates.append(await wrk_rate(url, ACCEPT_BODY, headers, seconds, concurrency))
    return found


def ratio(ours: list[float], theirs: list[float]) -> float:
    """The median of the rounds' ratios ours / theirs."""
    return median(a / b for a, b in zip(ours, theirs, strict=True))


async def campaign_rate(gateway: AcceptingGateway, seconds: float) -> float:
    """Messages accepted a second through POST /message/batch: batches of 1,000 texts, 4 at once,
    spread over 10 instances."""
    for i in range(2, 11):
        named = {**gateway.instance, "instanceName": f"bench__c1__n{i}"}
        assert gateway.serve.request("POST", "/instance/create", named, key=gateway.key)[0] == 201
    items = [
        {"type": "text", "instanceName": f"bench__c1__n{1 + i % 10}", "to": "5491112345678", "text": f"m{i}"}
        for i in range(1000)
    ]
    url = f"{gateway.serve.base}/message/batch"
    return 1000 * await wrk_rate(url, {"messages": items}, {"apikey": gateway.key}, seconds, 4)


async def paced_run(
    instances: int,
    rate: float,
    seconds: float,
    burst: int,
    round_trips: RoundTrips,
    deliverer_apart: bool = False,
    around_burst: Callable[[EmbeddedRedis], AbstractAsyncContextManager[None]] | None = None,
) -> dict[str, Any]:
    """`instances` linked sandbox instances on one in-process worker. A steady phase sends `rate`
    messages a second to random instances for `seconds` (lateness, round trips); a burst phase then
    queues `burst` messages on every instance at once (how many sends a second one worker does).
    `around_burst`, given its embedded Redis, is entered for the burst alone (its accepts, sends and
    deliveries: benchmarks/redis_instructions.py counts Redis's instructions there)."""
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        await redis_server.start()
        settings = sandbox_settings(  # private URLs allowed: webhooks go to the receiver process below
            Path(tmp),
            redis_server.url,
            lanes=json.dumps(COMPRESSED_LANES),
            log_level="warning",
            max_sessions=instances + 10,
            worker_delivers_webhooks=not deliverer_apart,
        )
        hook_port = free_port()
        deliverer_trips = Path(tmp) / "deliverer-trips.json"
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(hook_port)])
        deliverer = (
            None
            if not deliverer_apart
            else subprocess.Popen(  # its round trips counted too (benchmarks/counted.py)
                [sys.executable, "-m", "benchmarks.counted", str(deliverer_trips), "deliverer"],
                env={
                    **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
                    **collector_variable(),
                    "GATEWAY_REDIS_URL": redis_server.url,
                    "GATEWAY_SECRET_KEY": "bench-secret-key-0123456789",
                    "GATEWAY_ADMIN_KEY": ADMIN,
                    "GATEWAY_DATA_DIR": str(Path(tmp) / "deliverer"),
                    "GATEWAY_ALLOW_PRIVATE_URLS": "1",
                    "GATEWAY_LOG_LEVEL": "warning",
                },
            )
        )
        app = create_app(settings)
        app.cleanup_ctx.append(worker_context(settings))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await wait_until_up(f"http://127.0.0.1:{hook_port}/")
            async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
                call = _caller(http)
                key = (await call("POST", "/admin/tenants", {"tenantId": "bench"}, ADMIN))["apiKey"]
                names = [f"bench__c{i % 10}__n{i}" for i in range(instances)]
                rss_before = rss_bytes()
                redis_before = await _redis_memory(redis_server.url)
                hook = f"http://127.0.0.1:{hook_port}/hook"

                async def open_one(name: str) -> None:
                    body = {"instanceName": name, "webhookUrl": hook, "webhookSecret": "x" * 16}
                    await call("POST", "/instance/create", body, key)
                    await call("POST", f"/sandbox/instance/{name}/link", {}, key)

                # 50 at a time, each opener taking the next name as soon as its last one is open
                # (a fixed chunk of 50 would wait for its slowest link every time).
                waiting = iter(names)

                async def opener() -> None:
                    for name in waiting:
                        await open_one(name)

                opening = time.perf_counter()
                await asyncio.gather(*(opener() for _ in range(50)))
                open_seconds = time.perf_counter() - opening
                memory = {
                    "rss_per_instance": (rss_bytes() - rss_before) / instances,
                    "redis_per_instance": (await _redis_memory(redis_server.url) - redis_before) / instances,
                }
                lanes = ["urgent", "normal", "bulk"]

                def text(name: str, i: int) -> Awaitable[Any]:
                    body = {
                        "instanceName": name,
                        "to": "5491112345678",
                        "text": f"{{Hi|Hello}} {i}",
                        "lane": lanes[i % 3],
                    }
                    return call("POST", "/message/text", body, key)

                steady_ids: list[str] = []
                before = await _counted_apart(deliverer, deliverer_trips)
                with round_trips.counting() as counted:
                    started = time.perf_counter()
                    for i in range(int(rate * seconds)):
                        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
                        steady_ids.append((await text(random.choice(names), i))["id"])
                    await _until_all_sent(redis_server.url, len(steady_ids))
                    trips = counted()
                await asyncio.sleep(1)  # the last events' deliveries (a few ms after their sends)
                apart = _minus(await _counted_apart(deliverer, deliverer_trips), before)
                scripts = script_names()
                steady_late = await _lateness(redis_server.url, steady_ids)

                # The burst is queued through POST /message/batch, 1,000 at a time, and the worker's
                # rate is read from the send times: accepting it costs the worker little.
                burst_ids: list[str] = []
                others = {"deliverer": deliverer, "webhook receiver": receiver}
                cpu_before = await _cpu_seconds(redis_server.url, others)
                async with (around_burst or _nothing)(redis_server):
                    for i in range(burst):
                        for chunk in range(0, len(names), 1000):
                            items = [
                                {"type": "text", "instanceName": n, "to": "5491112345678", "text": f"b{i}",
                                 "lane": lanes[i % 3]}
                                for n in names[chunk : chunk + 1000]
                            ]  # fmt: skip
                            answer = await call("POST", "/message/batch", {"messages": items}, key)
                            burst_ids += [record["id"] for record in answer["accepted"]]
                    await _until_all_sent(redis_server.url, len(steady_ids) + len(burst_ids))
                    await asyncio.sleep(0.5)  # the burst's last webhook deliveries
                cpu_after = await _cpu_seconds(redis_server.url, others)
                burst_cpu = {who: (cpu_after[who] - cpu_before[who]) / max(1, len(burst_ids)) for who in cpu_after}
                burst_late = await _lateness(redis_server.url, burst_ids) if burst_ids else [0.0]
                burst_sent = await _sent_times(redis_server.url, burst_ids) if burst_ids else [0.0]
        finally:
            await runner.cleanup()
            for process in (deliverer, receiver):
                if process is not None:
                    process.terminate()
                    process.wait()
            await redis_server.stop()
    return {
        "steady": steady_late,
        "trips_per_message": trips / len(steady_ids),
        "deliverer_trips_per_message": apart["count"] / len(steady_ids),
        "deliverer_by_command": apart["by_command"],
        "scripts": scripts,
        "sent": len(steady_ids),
        "burst_rate": len(burst_ids) / max(0.001, max(burst_sent) - min(burst_sent)) if burst_ids else 0.0,
        "burst": burst_late,
        "burst_cpu_per_message": burst_cpu,
        "open_seconds": open_seconds,
        **memory,
    }


def _nothing(_: EmbeddedRedis) -> AbstractAsyncContextManager[None]:
    return nullcontext()


async def _cpu_seconds(url: str, others: dict[str, subprocess.Popen[bytes] | None]) -> dict[str, float]:
    """CPU time (user and system, s) spent so far by this process (the API and the worker), by
    Redis, and by each of `others` that runs."""
    client = Redis.from_url(url, decode_responses=True, client_name=NOT_COUNTED)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    tick = os.sysconf("SC_CLK_TCK")
    spent = {"API and worker": time.process_time(), "Redis": info["used_cpu_user"] + info["used_cpu_sys"]}
    for who, process in others.items():
        if process is not None:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
            spent[who] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return spent


async def _counted_apart(process: subprocess.Popen[bytes] | None, path: Path) -> dict[str, Any]:
    """What the deliverer process (benchmarks/counted.py) has counted so far; nothing without one."""
    if process is None:
        return {"count": 0, "by_command": {}}
    path.unlink(missing_ok=True)
    process.send_signal(signal.SIGUSR1)
    for _ in range(200):
        if path.exists() and path.read_text():
            found: dict[str, Any] = json.loads(path.read_text())
            return found
        await asyncio.sleep(0.02)
    raise RuntimeError("the deliverer did not write its round trips")


def _minus(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    commands = after["by_command"]
    by_command = {name: n - before["by_command"].get(name, 0) for name, n in commands.items()}
    return {"count": after["count"] - before["count"], "by_command": {k: n for k, n in by_command.items() if n}}


def _script(command: str, scripts: dict[str, str]) -> str:
    """EVALSHA <sha> as the script's name (core/lua/<name>.lua)."""
    name, _, sha = command.partition(" ")
    return f"{name} {scripts.get(sha, sha[:8])}" if sha else name


def _caller(http: aiohttp.ClientSession) -> Callable[..., Awaitable[Any]]:
    async def call(method: str, path: str, body: Any, key: str) -> Any:
        async with http.request(method, path, json=body, headers={"apikey": key}) as response:
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
            return await response.json()

    return call


async def _redis_memory(url: str) -> int:
    from core.redis_client import connect

    client = connect(url)
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


async def _until_all_sent(url: str, total: int) -> None:
    client = Redis.from_url(url, decode_responses=True, client_name=NOT_COUNTED)
    try:
        while int(await client.hget(keys.STATS, "sent") or 0) < total:
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def _lateness(url: str, ids: list[str]) -> list[float]:
    from datetime import datetime

    from core.redis_client import connect

    client = connect(url)
    try:
        late = []
        for message_id in ids:
            sent_at, eligible = await client.hmget(keys.message(message_id), ["sentAt", "eligibleMs"])  # type: ignore[misc]
            late.append(datetime.fromisoformat(sent_at).timestamp() * 1000 - int(eligible))
        return late
    finally:
        await client.aclose()


async def _sent_times(url: str, ids: list[str]) -> list[float]:
    """When each message went out (s)."""
    from datetime import datetime

    from core.redis_client import connect

    client = connect(url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for message_id in ids:
                pipe.hget(keys.message(message_id), "sentAt")
            return [datetime.fromisoformat(sent_at).timestamp() for sent_at in await pipe.execute()]
    finally:
        await client.aclose()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main() -> None:
    configure_logging(load_settings({}, log_level="error"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100, help="messages a second in the steady phase")
    parser.add_argument("--seconds", type=float, default=10, help="length of the steady phase")
    parser.add_argument("--burst", type=int, default=3, help="messages per instance in the burst phase")
    parser.add_argument("--many", type=int, default=10000, help="instances of the second lateness run (0: skip)")
    parser.add_argument("--accept-seconds", type=float, default=5, help="of load (from wrk) behind each accept figure")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    parser.add_argument(
        "--deliverer", action="store_true", help="webhooks from a `wa-gateway deliverer` process, not the worker"
    )
    args = parser.parse_args()

    figures: dict[str, Any] = {"machine": {"cores": len(os.sched_getaffinity(0)), "python": sys.version.split()[0]}}
    async with (
        handler_server(BARE) as (bare_url, _),
        accepting_gateway(1) as one_process,
        accepting_gateway(2) as two_processes,
    ):
        targets = [(bare_url, {}), one_process.target, two_processes.target]
        bares, ones, twos = await in_turn(targets, args.accept_seconds, args.concurrency, ROUNDS)
        batch_rate = await campaign_rate(one_process, args.accept_seconds)
    one, two, bare = median(ones), median(twos), median(bares)
    per_process, scaling = ratio(ones, bares), ratio(twos, ones)
    figures["accept"] = {
        "bare_aiohttp": bare,
        "one_process": one,
        "two_processes": two,
        "ratio_per_process": per_process,
        "two_processes_vs_one": scaling,
        "batch_messages": batch_rate,
    }
    print(
        f"1. accepted sends/s  gateway, 1 API process {one:8.0f}   bare aiohttp {bare:8.0f}   "
        f"ratio {per_process:.2f}   (target >= 0.5; wrk, {args.concurrency} connections, {args.accept_seconds:g} s; "
        f"medians of {ROUNDS} rounds, each the bare handler, then 1 and 2 API processes)"
    )
    print(f"   2 API processes (serve --api-processes 2): {two:8.0f} in total ({scaling:.2f}x one process)")
    print(f"   POST /message/batch (1,000 texts over 10 instances, 4 at once): {batch_rate:8.0f} messages accepted/s")
    round_trips = RoundTrips()
    run = await paced_run(args.instances, args.rate, args.seconds, args.burst, round_trips, args.deliverer)
    steady, burst = run["steady"], run["burst"]
    print(
        f"2. lateness on {args.instances} instances, {args.rate:g} messages/s for {args.seconds:g} s, "
        f"gaps 10-60 ms: p50 {percentile(steady, 0.5):.1f} ms   p99 {percentile(steady, 0.99):.1f} ms   "
        f"max {max(steady):.1f} ms   (target p99 <= 100 ms)"
    )
    print(
        f"   burst of {args.burst} messages on each instance at once (queued by POST /message/batch): "
        f"{run['burst_rate']:.0f} sends/s on one "
        f"worker (target >= 1,500); lateness p50 {percentile(burst, 0.5):.0f} ms   p99 {percentile(burst, 0.99):.0f} ms"
    )
    cpu = run["burst_cpu_per_message"]
    print(
        "   CPU per message in the burst: "
        + ", ".join(f"{who} {seconds * 1000:.2f} ms" for who, seconds in cpu.items())
        + f"; in all {sum(cpu.values()) * 1000:.2f} ms on {figures['machine']['cores']} cores"
    )
    print(
        f"   so one Redis, with a core to itself, carries at most {1 / cpu['Redis']:,.0f} messages/s, however many "
        "workers share it (python -m benchmarks.redis_instructions counts its instructions per message)"
    )
    print(
        f"3. Redis round trips per message  {run['trips_per_message']:.1f}   (the API and the worker: accept, claims, "
        f"the send, its record{'' if args.deliverer else ', webhook delivery'}; steady phase)"
    )
    scripts = run["scripts"]
    top = ", ".join(
        f"{_script(name, scripts)} {count / run['sent']:.2f}" for name, count in round_trips.by_command.most_common(10)
    )
    print(f"   by command, per message: {top}")
    sandbox = sum(n for name, n in round_trips.by_command.items() if _script(name, scripts) == "EVALSHA sandbox_sent")
    own = run["trips_per_message"] - sandbox / run["sent"]
    print(f"   without the sandbox's own record of each send (no such write with WhatsApp): {own:.1f}   (target <= 4)")
    if args.deliverer:
        apart = ", ".join(f"{name} {n / run['sent']:.2f}" for name, n in sorted(run["deliverer_by_command"].items()))
        print(
            f"   the deliverer process apart, delivering each message's webhook event: "
            f"{run['deliverer_trips_per_message']:.1f} per message ({apart}); in all, without the sandbox's: "
            f"{own + run['deliverer_trips_per_message']:.1f}"
        )
    figures["send"] = {
        "instances": args.instances,
        "lateness_ms": {"p50": percentile(steady, 0.5), "p99": percentile(steady, 0.99), "max": max(steady)},
        "burst_sends_per_second": run["burst_rate"],
        "burst_cpu_ms_per_message": {who: seconds * 1000 for who, seconds in cpu.items()},
        "redis_messages_per_second_at_most": 1 / cpu["Redis"],
        "round_trips_per_message": run["trips_per_message"],
        "round_trips_per_message_without_sandbox": own,
        "deliverer_round_trips_per_message": run["deliverer_trips_per_message"],
        "memory_per_instance": {"worker_rss": run["rss_per_instance"], "redis": run["redis_per_instance"]},
    }
    print(
        f"4. memory per idle sandbox instance  worker RSS {run['rss_per_instance'] / 1024:.1f} KiB   "
        f"Redis {run['redis_per_instance'] / 1024:.1f} KiB"
    )
    if args.many:
        big = await paced_run(args.many, args.rate, args.seconds, 0, RoundTrips())
        print(
            f"5. lateness on {args.many} instances, {args.rate:g} messages/s for {args.seconds:g} s: "
            f"p50 {percentile(big['steady'], 0.5):.1f} ms   p99 {percentile(big['steady'], 0.99):.1f} ms   "
            f"max {max(big['steady']):.1f} ms   (target p99 <= {50 if args.many <= 10_000 else 250} ms)"
        )
        figures["many"] = {
            "instances": args.many,
            "lateness_ms": {"p99": percentile(big["steady"], 0.99), "max": max(big["steady"])},
            "redis_per_instance": big["redis_per_instance"],
        }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    run_as_deployed(main())
