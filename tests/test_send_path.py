"""The send path's properties with real processes and a real Redis: a worker's claim loop never
sends a message twice nor two at once on one number, even with its repair sweep running all the
time; an instance with waiting messages sends again within seconds of Redis coming back from a
crash; stopping every worker at once and starting them again connects each instance once; a
worker paused past its lease never shows as a row of nulls."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.redis_server import EmbeddedRedis
from tests.conftest import ADMIN_KEY, UNTYPED
from tests.serve_process import ServeProcess, wait_for

GAP = {"gap": [0.005, 0.01], "perHour": 100000, "perDay": 100000, **UNTYPED}
LANES = {lane: GAP for lane in ("urgent", "normal", "bulk")}
MEDIA_DELAY = 0.1  # each image fetch takes this long: sends on one number are at least this far apart


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (20, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def slow_media() -> Iterator[str]:
    """An image server on 127.0.0.1 answering each request after MEDIA_DELAY."""
    image = png()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(MEDIA_DELAY)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cat.png"
    server.shutdown()
    server.server_close()


class Gateway:
    """`serve --no-worker` and `worker` processes on one Redis."""

    def __init__(self, tmp: Path, redis_url: str, workers: list[str], **env: str) -> None:
        self.env = {
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_ADMIN_KEY": ADMIN_KEY,
            "GATEWAY_SECRET_KEY": "test-secret-key-0123456789",
            "GATEWAY_LANES": json.dumps(LANES),
            "GATEWAY_RATE_LIMIT": "100000000",
            "GATEWAY_ALLOW_PRIVATE_URLS": "true",
            "GATEWAY_LOG_LEVEL": "warning",
            **env,
        }
        self.data = tmp / "data"
        self.api = ServeProcess(self.data, "serve", **self.env)
        self.workers = {w: self.worker(w) for w in workers}
        self.key = ""

    def worker(self, worker_id: str) -> ServeProcess:
        return ServeProcess(self.data, "worker", GATEWAY_WORKER_ID=worker_id, **self.env)

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start(wait_healthy=False)
        self.api.start(extra_args=("--no-worker",))
        wait_for(lambda: len(self.alive()) == len(self.workers), 30, "workers alive")
        status, tenant = self.call("POST", "/admin/tenants", {"tenantId": "acme"})
        assert status == 201
        self.key = tenant["apiKey"]

    def stop(self) -> None:
        for process in [self.api, *self.workers.values()]:
            if process.process is not None:
                process.signal(signal.SIGCONT)
                process.stop(signal.SIGKILL)

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        return self.api.request(method, path, body, key=key or self.key or ADMIN_KEY)

    def workers_now(self) -> list[dict[str, Any]]:
        status, workers = self.call("GET", "/admin/workers", key=ADMIN_KEY)
        assert status == 200
        return list(workers)

    def alive(self) -> list[str]:
        return [w["workerId"] for w in self.workers_now() if w["alive"]]

    def owned(self) -> dict[str, str]:
        return {name: w["workerId"] for w in self.workers_now() for name in w["instances"]}

    def create_instances(self, names: list[str], threads: int = 16) -> None:
        def create(name: str) -> int:
            body = {"instanceName": name, "webhookUrl": "https://hooks.invalid/wa", "webhookSecret": "s" * 16}
            return self.call("POST", "/instance/create", body)[0]

        with ThreadPoolExecutor(threads) as pool:
            assert set(pool.map(create, names)) == {201}

    def link(self, names: list[str]) -> None:
        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(lambda n: self.call("POST", f"/sandbox/instance/{n}/link", {})[0], names)) == {200}
        wait_for(lambda: all(self.state(n) == "open" for n in names), 30, "instances open")

    def open_instances(self, names: list[str], threads: int = 16) -> None:
        self.create_instances(names, threads)
        self.link(names)

    def state(self, name: str) -> str:
        return str(self.call("GET", f"/instance/{name}/status")[1]["state"])

    def send(self, body: dict[str, Any]) -> str:
        status, answer = self.call("POST", f"/message/{body.pop('kind', 'text')}", body)
        assert status == 202, answer
        return str(answer["id"])

    def sent(self, name: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/sandbox/instance/{name}/sent")[1])

    def records(self, ids: list[str]) -> dict[str, dict[str, Any]] | None:
        """Every message's record once all have ended, else None."""
        found = {}
        for message_id in ids:
            status, record = self.call("GET", f"/message/{message_id}")
            if status != 200 or record["status"] in ("pending", "sending"):
                return None
            found[message_id] = record
        return found


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    asyncio.run(server.start())
    yield server
    asyncio.run(server.stop())


def started(tmp_path: Path, redis_server: EmbeddedRedis, workers: list[str], **env: str) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path, redis_server.url, workers, **env)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


def at(item: dict[str, Any]) -> float:
    return datetime.fromisoformat(item["sentAt"]).timestamp()


@pytest.mark.timeout(300)  # real processes: slow on a machine shared with other suites
def test_busy_sweeping_worker_never_sends_twice_nor_two_at_once_on_a_number(
    tmp_path: Path, redis_server: EmbeddedRedis, slow_media: str
) -> None:
    # The worker polls its command queue often: linking 303 instances is 303 commands.
    env = {"GATEWAY_SWEEP_INTERVAL": "0.05", "GATEWAY_WORKER_POLL_DELAY": "0.01"}
    gateway = next(gw := started(tmp_path, redis_server, ["w1"], **env))
    try:
        idle = [f"acme__idle__n{i}" for i in range(300)]
        busy = [f"acme__busy__n{i}" for i in range(3)]
        gateway.open_instances(idle + busy)
        ids: dict[str, str] = {}  # message id -> instance
        for i in range(40):
            for name in busy:
                body = {"kind": "image", "instanceName": name, "to": "5491112345678", "imageUrl": slow_media}
                ids[gateway.send({**body, "caption": f"c{i}", "lane": ("urgent", "normal", "bulk")[i % 3]})] = name
            name = idle[i * 7 % len(idle)]
            ids[gateway.send({"instanceName": name, "to": "5491112345678", "text": f"t{i}"})] = name

        records = wait_for(lambda: gateway.records(list(ids)), 60, "every message sent")
        assert {r["status"] for r in records.values()} == {"sent"}
        assert not any(r["possiblyDuplicated"] for r in records.values())
        for name in set(ids.values()):
            out = gateway.sent(name)
            mine = [message_id for message_id, owner in ids.items() if owner == name]
            assert sorted(item["messageId"] for item in out) == sorted(records[m]["waMessageId"] for m in mine)
            times = sorted(at(item) for item in out)
            if name in busy:  # each send fetched its image first: two at once would be closer
                assert min(b - a for a, b in itertools.pairwise(times)) >= MEDIA_DELAY * 0.9
    finally:
        next(gw, None)


@pytest.mark.timeout(300)  # real processes: slow on a machine shared with other suites
def test_every_waiting_instance_sends_within_5_s_of_redis_coming_back_from_a_crash(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    # Gaps of 0.1-0.15 s: 30 messages keep each of 12 instances busy for seconds.
    slow = {"gap": [0.1, 0.15], "perHour": 100000, "perDay": 100000, **UNTYPED}
    lanes = json.dumps(dict.fromkeys(("urgent", "normal", "bulk"), slow))
    gateway = next(gw := started(tmp_path, redis_server, ["w1"], GATEWAY_LANES=lanes))
    try:
        names = [f"acme__c{i % 3}__n{i}" for i in range(12)]
        gateway.create_instances(names)  # closed: the messages wait until all are linked
        ids = {gateway.send({"instanceName": n, "to": "5491112345678", "text": f"m{i}"}): n
               for i in range(30) for n in names}  # fmt: skip
        gateway.link(names)
        wait_for(lambda: all(gateway.sent(n) for n in names), 20, "every instance sending")
        redis_server.kill()
        time.sleep(0.3)  # an outage of some length: the worker's sends and claims fail meanwhile
        asyncio.run(redis_server.start())
        back = time.time()

        records = wait_for(lambda: gateway.records(list(ids)), 60, "every message sent")
        assert {r["status"] for r in records.values()} == {"sent"}
        for name in names:
            out = gateway.sent(name)
            texts = [item["text"] for item in out]
            assert len(texts) == len(set(texts)) == 30, name  # nothing lost, nothing twice
            assert not any(records[m]["possiblyDuplicated"] for m, n in ids.items() if n == name)
            first_after = min(at(item) for item in out if at(item) >= back - 0.05)
            assert first_after - back < 5.0, (name, first_after - back)
    finally:
        next(gw, None)


def connected_events(gateway: Gateway, name: str) -> int:
    status, page = gateway.call("GET", f"/instance/{name}/webhooks/deliveries?limit=100")
    assert status == 200
    return sum(1 for d in page["deliveries"] if d["event"] == "instance.connected")


@pytest.mark.timeout(300)  # real processes: slow on a machine shared with other suites
def test_sigterm_of_every_worker_then_restart_connects_each_instance_once(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    gateway = next(gw := started(tmp_path, redis_server, ["w1", "w2", "w3"], GATEWAY_LEASE_TIMEOUT="60"))
    try:
        names = [f"acme__c{i % 3}__n{i}" for i in range(9)]
        gateway.open_instances(names, threads=1)  # one at a time: spread over the three workers
        assert len(set(gateway.owned().values())) == 3
        assert all(connected_events(gateway, n) == 1 for n in names)
        for worker in gateway.workers.values():
            worker.signal(signal.SIGTERM)
        for worker in gateway.workers.values():
            assert worker.wait() == 0
        for worker_id in gateway.workers:
            gateway.workers[worker_id] = gateway.worker(worker_id)
            gateway.workers[worker_id].start(wait_healthy=False)
        wait_for(lambda: len(gateway.alive()) == 3, 60, "workers back")
        wait_for(lambda: all(gateway.state(n) == "open" for n in names), 30, "instances open again")
        # Commands queued to the stopping workers are taken once the workers are back: then look.
        wait_for(lambda: queues_empty(redis_server, list(gateway.workers)), 20, "command queues drained")
        ids = [gateway.send({"instanceName": n, "to": "5491112345678", "text": "after"}) for n in names]
        wait_for(lambda: gateway.records(ids), 30, "sends after the restart")
        assert {n: connected_events(gateway, n) for n in names} == dict.fromkeys(names, 2)
    finally:
        next(gw, None)


def queues_empty(redis_server: EmbeddedRedis, workers: list[str]) -> bool:
    import redis

    from core import keys

    client = redis.Redis.from_url(redis_server.url)
    try:
        return all(client.zcard(keys.worker_queue(w)) == 0 for w in workers)
    finally:
        client.close()


@pytest.mark.timeout(300)  # real processes: slow on a machine shared with other suites
def test_worker_paused_past_its_lease_comes_back_with_its_whole_record(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    gateway = next(gw := started(tmp_path, redis_server, ["w1", "w2"], GATEWAY_LEASE_TIMEOUT="2"))
    try:
        names = [f"acme__c{i % 2}__n{i}" for i in range(4)]
        gateway.open_instances(names)
        gateway.workers["w2"].signal(signal.SIGSTOP)
        wait_for(lambda: all(gateway.owned().get(n) == "w1" for n in names), 20, "w1 adopts everything")
        wait_for(lambda: "w2" not in {w["workerId"] for w in gateway.workers_now()}, 20, "w2 forgotten")
        gateway.workers["w2"].signal(signal.SIGCONT)
        wait_for(lambda: "w2" in gateway.alive(), 10, "w2 heartbeating again")
        for row in gateway.workers_now():
            assert not row["alive"] or None not in (row["host"], row["pid"], row["capacity"], row["startedAt"]), row
    finally:
        next(gw, None)
