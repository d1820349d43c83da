"""`python -m benchmarks.sessions`: what a hosted neonize session costs, with the real library, offline.

1. Memory per hosted session, as PSS (from /proc/PID/smaps_rollup: shared pages divided among the
   processes sharing them, so the sum over processes is what the machine really spends): 1, 10 and
   50 sessions held connecting through a local SOCKS5 proxy that accepts and never answers. Per
   session = (PSS of every session host + PSS of the zygote they are forked from) / sessions. The
   worker process itself loads no neonize and is reported apart.
2. Time for one worker to bring up 500 sessions from their stores (linked sqlite stores, copies of
   one made by whatsmeow itself): from the first connect() until every session host has its client
   dialing, then the worker's and the hosts' figures.
3. Restart adoption: a worker (the real `GatewayWorker`, its own embedded Redis) restarted with 500
   linked instances it owned: from `start()` until every instance's session host is dialing, with
   the hosts' PSS. Adoption runs `GATEWAY_ADOPT_CONCURRENCY` instances at once.
4. Seconds of continuous load: 20 sessions sending while 4 others connect and close in a loop (the
   issue's 30-second probe; the test suite runs it for 10).

Targets: <= 25 MB per session; 500 sessions up in <= 30 s (issue 10); a restarted worker with 500
linked instances has every host dialing in <= 15 s (issue 20).
Options: `python -m benchmarks.sessions --counts 1,10,50 --bring-up 500 --adopt 500 --probe-seconds 30`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from config import load_settings
from core.logs import configure_logging
from core.redis_server import EmbeddedRedis
from scheduler.drivers.base import Disconnected, DriverEvent, OutgoingMessage, TransientDriverError
from scheduler.drivers.neonize import NeonizeDriver
from scheduler.services import Services
from scheduler.worker import GatewayWorker
from tests.whatsapp_offline import REFUSED, Blackhole, linked_instances, linked_store

PHONE = "5491112345678"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(") ", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def ignore(event: DriverEvent) -> None:
    pass


async def memory(counts: list[int], proxy: str, folder: Path) -> list[dict[str, Any]]:
    rows = []
    for n in counts:
        driver = NeonizeDriver(folder / f"mem{n}", n, proxy=proxy)
        await driver.open()
        worker_before = pss_mb()
        sessions = [driver.session(f"m{i}", ignore) for i in range(n)]
        await asyncio.gather(*(session.connect() for session in sessions))
        await asyncio.sleep(2)  # the clients are dialing; whatsmeow gives up on TLS after 10 s
        hosts = list(driver.host_pids().values())
        zygote = driver.zygote._process.pid if driver.zygote._process else None
        hosts_pss = sum(pss_mb(pid) for pid in hosts)
        zygote_pss = pss_mb(zygote) if zygote else 0.0
        rows.append(
            {
                "sessions": n,
                "hosts_alive": len(hosts),
                "pss_per_session_mb": round((hosts_pss + zygote_pss) / n, 1),
                "host_pss_avg_mb": round(hosts_pss / max(1, len(hosts)), 1),
                "zygote_pss_mb": round(zygote_pss, 1),
                "worker_pss_delta_mb": round(pss_mb() - worker_before, 1),
            }
        )
        await asyncio.gather(*(session.close() for session in sessions))
        driver.close()
    return rows


async def bring_up(n: int, proxy: str, folder: Path) -> dict[str, Any]:
    template = await linked_store(folder / "template", "template")
    stores = folder / "bring-up"
    stores.mkdir()
    for i in range(n):
        shutil.copy(template, stores / f"b{i}.sqlite3")
    driver = NeonizeDriver(stores, n, proxy=proxy)
    await driver.open()
    sessions = [driver.session(f"b{i}", ignore) for i in range(n)]
    assert all(session.linked for session in sessions[:3])
    started = time.monotonic()
    await asyncio.gather(*(session.connect() for session in sessions))
    seconds = time.monotonic() - started
    hosts = list(driver.host_pids().values())
    hosts_pss = sum(pss_mb(pid) for pid in hosts)
    cpu = sum(cpu_seconds(pid) for pid in hosts) / max(1, len(hosts))
    row = {
        "sessions": n,
        "seconds_until_all_dialing": round(seconds, 1),
        # CPU one host used to start and dial: x sessions / cores = the time on an idle machine.
        "host_cpu_seconds_avg": round(cpu, 3),
        "idle_machine_estimate_s": round(cpu * n / (os.cpu_count() or 1), 1),
        "hosts_alive": len(hosts),
        "pss_per_session_mb": round(hosts_pss / max(1, len(hosts)), 1),
        "worker_pss_mb": round(pss_mb(), 1),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    closing = time.monotonic()
    await asyncio.gather(*(session.close() for session in sessions))
    row["seconds_to_close_all"] = round(time.monotonic() - closing, 1)
    driver.close()
    return row


async def adoption(n: int, proxy: str, folder: Path) -> dict[str, Any]:
    redis_server = EmbeddedRedis(folder / "redis")
    await redis_server.start()
    worker_id = "bench-adopt"
    settings = load_settings(
        {},
        redis_url=redis_server.url,
        secret_key="bench-secret-key-0123456789",
        data_dir=folder / "adopt",
        driver="neonize",
        whatsapp_proxy=proxy,
        worker_id=worker_id,
        log_level="error",
        max_sessions=n,
    )
    try:
        configure_logging(settings)
        services = Services.open(settings)
        names = [f"bench__c__n{i}" for i in range(n)]
        await linked_instances(services, settings.data_dir / "sessions", names, worker_id)
        await services.close()
        worker = GatewayWorker(settings)
        driver = worker.driver
        assert isinstance(driver, NeonizeDriver)
        worker_cpu = cpu_seconds(os.getpid())
        started = time.monotonic()
        # start() returns once every adopted session's host has its client dialing (a host whose
        # dial already gave up, 10 s into a slow start, is being restarted and not counted alive).
        await worker.start()
        seconds = time.monotonic() - started
        worker_cpu = cpu_seconds(os.getpid()) - worker_cpu
        hosts = list(driver.host_pids().values())
        hosts_cpu = sum(cpu_seconds(pid) for pid in hosts) / max(1, len(hosts))
        row = {
            "instances": n,
            "seconds_until_all_dialing": round(seconds, 1),
            # CPU the worker (Redis round trips, the hosts' frames) and one host spent on it: their sum
            # over the cores (but no less than the worker's, one core) is the figure on an idle machine.
            "worker_cpu_seconds": round(worker_cpu, 1),
            "host_cpu_seconds_avg": round(hosts_cpu, 3),
            "idle_machine_estimate_s": round(max(worker_cpu, (worker_cpu + hosts_cpu * n) / (os.cpu_count() or 1)), 1),
            "hosts_alive": len(hosts),
            "host_pss_avg_mb": round(sum(pss_mb(pid) for pid in hosts) / max(1, len(hosts)), 1),
            "zygote_pss_mb": round(pss_mb(driver.zygote.pid), 1) if driver.zygote.pid else None,
            "worker_pss_mb": round(pss_mb(), 1),
            "load_average_1m": round(os.getloadavg()[0], 1),
        }
        stopping = time.monotonic()
        await worker.stop()
        row["seconds_to_stop_worker"] = round(time.monotonic() - stopping, 1)
    finally:
        await redis_server.stop()
    return row


async def probe(seconds: float, proxy: str, folder: Path) -> dict[str, Any]:
    senders_driver = NeonizeDriver(folder / "senders", 20, proxy=proxy)
    cyclers_driver = NeonizeDriver(folder / "cyclers", 4, proxy=REFUSED)
    await senders_driver.open()
    await cyclers_driver.open()
    senders = [senders_driver.session(f"s{i}", ignore) for i in range(20)]
    await asyncio.gather(*(session.connect() for session in senders))
    stop = time.monotonic() + seconds
    counts = {"sends_refused_not_connected": 0, "connect_close_cycles": 0, "unexpected": 0}

    async def send(session: Any) -> None:
        while time.monotonic() < stop:
            try:
                await session.send(OutgoingMessage(to=PHONE, type="text", text="hi"))
                counts["unexpected"] += 1
            except TransientDriverError:
                counts["sends_refused_not_connected"] += 1
            await asyncio.sleep(0.01)

    async def cycle(k: int) -> None:
        while time.monotonic() < stop:
            ended = asyncio.Event()

            async def sink(event: DriverEvent, ended: asyncio.Event = ended) -> None:
                if isinstance(event, Disconnected):
                    ended.set()

            session = cyclers_driver.session(f"c{k}", sink)
            await session.connect()
            await asyncio.wait_for(ended.wait(), 60)
            await session.close()
            counts["connect_close_cycles"] += 1

    await asyncio.gather(*(send(session) for session in senders), *(cycle(k) for k in range(4)))
    await asyncio.gather(*(session.close() for session in senders))
    senders_driver.close()
    cyclers_driver.close()
    return {"seconds": seconds, **counts, "worker_alive": True}


async def main(args: argparse.Namespace) -> None:
    report: dict[str, Any] = {}
    async with Blackhole() as blackhole:
        await run(args, blackhole.url, report)


async def run(args: argparse.Namespace, proxy: str, report: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as folder:
        base = Path(folder)
        counts = [int(n) for n in args.counts.split(",") if n]
        report["memory_per_session"] = await memory(counts, proxy, base)
        print(json.dumps({"memory_per_session": report["memory_per_session"]}), flush=True)
        if args.bring_up:
            report["bring_up"] = await bring_up(args.bring_up, proxy, base)
            print(json.dumps({"bring_up": report["bring_up"]}), flush=True)
        if args.adopt:
            report["restart_adoption"] = await adoption(args.adopt, proxy, base)
            print(json.dumps({"restart_adoption": report["restart_adoption"]}), flush=True)
        if args.probe_seconds:
            report["probe"] = await probe(args.probe_seconds, proxy, base)
            print(json.dumps({"probe": report["probe"]}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--bring-up", type=int, default=500)
    parser.add_argument("--adopt", type=int, default=500)
    parser.add_argument("--probe-seconds", type=float, default=30.0)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parser.parse_args()))
