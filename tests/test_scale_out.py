"""Many workers, real processes: a worker killed, stopped, paused, and Redis restarted, all under a
steady load of sends through the sandbox. Nothing accepted may be lost or sent twice, except the
one message per instance that a killed worker may have had mid-send, flagged as possibly duplicated."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.redis_server import EmbeddedRedis
from tests.conftest import ADMIN_KEY, UNTYPED
from tests.serve_process import ServeProcess, wait_for

LANES = {
    lane: {"gap": [0.005, 0.01], "perHour": 100000, "perDay": 100000, **UNTYPED}
    for lane in ("urgent", "normal", "bulk")
}
INSTANCES = [f"acme__c{i % 3}__n{i}" for i in range(9)]


class Cluster:
    """`serve --no-worker` plus several `worker` processes sharing one Redis and one data dir."""

    def __init__(self, tmp: Path, redis_url: str, lease: float, worker_ids: list[str]) -> None:
        env = {
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_ADMIN_KEY": ADMIN_KEY,
            "GATEWAY_SECRET_KEY": "test-secret-key-0123456789",
            "GATEWAY_LEASE_TIMEOUT": str(lease),
            "GATEWAY_LANES": json.dumps(LANES),
            "GATEWAY_WEBHOOK_RETRY_DELAYS": "0.2",
            "GATEWAY_RATE_LIMIT": "1000000",
        }
        data = tmp / "data"
        self.api = ServeProcess(data, "serve", **env)
        self.workers = {w: ServeProcess(data, "worker", GATEWAY_WORKER_ID=w, **env) for w in worker_ids}
        self.key = ""

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start(wait_healthy=False)
        self.api.start(extra_args=("--no-worker",))
        wait_for(lambda: len(self.alive()) == len(self.workers), 30, "workers alive")

    def stop(self) -> None:
        for process in [self.api, *self.workers.values()]:
            if process.process is not None:
                process.signal(signal.SIGCONT)
                process.stop(signal.SIGKILL)

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        return self.api.request(method, path, body, key=key or ADMIN_KEY)

    def workers_now(self) -> list[dict[str, Any]]:
        status, workers = self.call("GET", "/admin/workers")
        assert status == 200
        return list(workers)

    def alive(self) -> list[str]:
        return [w["workerId"] for w in self.workers_now() if w["alive"]]

    def owned(self) -> dict[str, str]:
        """instance -> owning worker, as the workers list tells it."""
        return {name: w["workerId"] for w in self.workers_now() for name in w["instances"]}

    def set_up_instances(self) -> None:
        status, tenant = self.call("POST", "/admin/tenants", {"tenantId": "acme"})
        assert status == 201
        self.key = tenant["apiKey"]
        for name in INSTANCES:
            body = {"instanceName": name, "webhookUrl": "https://hooks.invalid/wa", "webhookSecret": "s" * 16}
            assert self.call("POST", "/instance/create", body, self.key)[0] == 201
            assert self.call("POST", f"/sandbox/instance/{name}/link", {}, self.key)[0] == 200
        wait_for(lambda: all(self.state(n) == "open" for n in INSTANCES), 20, "instances open")
        assert len(set(self.owned().values())) == len(self.workers)  # spread over every worker

    def sent(self, name: str) -> list[dict[str, Any]]:
        """What reached the sandbox's "WhatsApp" for the instance, in order."""
        return list(self.call("GET", f"/sandbox/instance/{name}/sent", key=self.key)[1])

    def state(self, name: str) -> str:
        return str(self.call("GET", f"/instance/{name}/status", key=self.key)[1]["state"])


@dataclass
class Load:
    """Sends texts round-robin over the instances from a thread, remembering what was accepted."""

    cluster: Cluster
    accepted: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (instance, text)
    refused: Counter[int] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            name, text = INSTANCES[i % len(INSTANCES)], f"m{i}"
            body = {
                "instanceName": name,
                "to": "5491112345678",
                "text": text,
                "lane": ("urgent", "normal", "bulk")[i % 3],
            }
            try:
                status, answer = self.cluster.call("POST", "/message/text", body, self.cluster.key)
            except OSError:
                status, answer = 0, None
            if status == 202:
                self.accepted[answer["id"]] = (name, text)
            else:
                self.refused[status] += 1
            i += 1
            time.sleep(0.01)

    def wait_more(self, count: int) -> None:
        before = len(self.accepted)
        wait_for(lambda: len(self.accepted) > before + count, 20, f"{count} more accepted")

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def check_delivered(self, killed_instances: set[str], timeout: float = 60) -> dict[str, Any]:
        """Every accepted message ends sent, once; returns the records by id."""

        def final() -> dict[str, Any] | None:
            records = {}
            for message_id in self.accepted:
                status, record = self.cluster.call("GET", f"/message/{message_id}", key=self.cluster.key)
                if status != 200 or record["status"] in ("pending", "sending"):
                    return None
                records[message_id] = record
            return records

        records = wait_for(final, timeout, "every accepted message final")
        assert {r["status"] for r in records.values()} == {"sent"}, Counter(r["status"] for r in records.values())
        sent_texts: Counter[tuple[str, str]] = Counter()
        for name in INSTANCES:
            for item in self.cluster.sent(name):
                sent_texts[(name, item["text"])] += 1
        duplicates: Counter[str] = Counter()
        for message_id, (name, text) in self.accepted.items():
            count = sent_texts[(name, text)]
            assert count >= 1, f"{text} on {name} was accepted but never sent"
            if count > 1:
                assert count == 2 and records[message_id]["possiblyDuplicated"], (text, count)
                assert name in killed_instances, f"{text} sent twice on {name}, which no worker lost"
                duplicates[name] += 1
        assert all(n <= 1 for n in duplicates.values()), duplicates
        return records


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    asyncio.run(server.start())
    yield server
    asyncio.run(server.stop())


def make_cluster(
    tmp_path: Path, redis_server: EmbeddedRedis, lease: float, workers: tuple[str, ...] = ("w1", "w2", "w3")
) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, redis_server.url, lease, list(workers))
    try:
        cluster.start()
        cluster.set_up_instances()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: EmbeddedRedis) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path, redis_server, lease=3.0)


@pytest.fixture
def patient_cluster(tmp_path: Path, redis_server: EmbeddedRedis) -> Iterator[Cluster]:
    """A lease long enough that only a hand-over can explain a fast move."""
    yield from make_cluster(tmp_path, redis_server, lease=60.0)


def test_killed_worker_loses_nothing_and_its_instances_are_adopted_within_the_lease(cluster: Cluster) -> None:
    load = Load(cluster)
    load.start()
    wait_for(lambda: len(load.accepted) > 60, 20, "load under way")
    victims = {name for name, owner in cluster.owned().items() if owner == "w1"}
    killed_at = time.monotonic()
    cluster.workers["w1"].stop(signal.SIGKILL)

    wait_for(
        lambda: (
            victims.isdisjoint(n for n, o in cluster.owned().items() if o == "w1")
            and all(cluster.owned().get(n) in ("w2", "w3") for n in victims)
        ),
        15,
        "adoption",
    )
    adopted_in = time.monotonic() - killed_at
    assert adopted_in < 3.0 + 3.0, adopted_in  # the lease, plus a heartbeat or two
    wait_for(lambda: all(cluster.state(n) == "open" for n in victims), 10, "sessions reconnected")
    wait_for(lambda: len(load.accepted) > 250, 30, "more load after the kill")
    load.stop()
    load.check_delivered(killed_instances=victims)
    assert "w1" not in cluster.alive()


def test_sigterm_hands_instances_over_at_once(patient_cluster: Cluster) -> None:
    cluster = patient_cluster
    load = Load(cluster)
    load.start()
    wait_for(lambda: len(load.accepted) > 60, 20, "load under way")
    leaving = {name for name, owner in cluster.owned().items() if owner == "w2"}
    started = time.monotonic()
    assert cluster.workers["w2"].stop(signal.SIGTERM) == 0
    wait_for(lambda: all(cluster.owned().get(n) in ("w1", "w3") for n in leaving), 10, "hand-over")
    assert time.monotonic() - started < 10  # the lease is 60 s: only the hand-over explains this
    wait_for(lambda: all(cluster.state(n) == "open" for n in leaving), 10, "sessions reconnected")
    wait_for(lambda: len(load.accepted) > 200, 30, "more load after the hand-over")
    load.stop()
    load.check_delivered(killed_instances=leaving)


def test_redis_restart_under_load_loses_nothing_accepted(cluster: Cluster, redis_server: EmbeddedRedis) -> None:
    load = Load(cluster)
    load.start()
    wait_for(lambda: len(load.accepted) > 60, 20, "load under way")
    asyncio.run(redis_server.stop())
    assert cluster.call("GET", "/health")[0] == 503
    time.sleep(0.5)  # an outage of some length, with the load still knocking
    asyncio.run(redis_server.start())
    wait_for(lambda: cluster.call("GET", "/health")[0] == 200, 10, "health back")
    before = len(load.accepted)
    wait_for(lambda: len(load.accepted) > before + 100, 30, "sends accepted again")
    load.stop()
    assert load.refused  # the outage was seen by clients, as errors, not as silent loss
    load.check_delivered(killed_instances=set())


def freeze_until_adopted(cluster: Cluster, frozen: str, other: str, before_resume: dict[str, int]) -> set[str]:
    """SIGSTOP `frozen` until `other` owns every instance it had, note how many sends each of them
    has recorded (in `before_resume`), SIGCONT; the instances it lost."""
    lost = {name for name, owner in cluster.owned().items() if owner == frozen}
    assert lost, f"{frozen} owns nothing to lose"
    cluster.workers[frozen].signal(signal.SIGSTOP)
    try:
        wait_for(lambda: all(cluster.owned().get(n) == other for n in lost), 15, f"adoption of {frozen}'s")
        before_resume.update({name: len(cluster.sent(name)) for name in lost})
    finally:
        cluster.workers[frozen].signal(signal.SIGCONT)
    wait_for(lambda: frozen in cluster.alive(), 10, f"{frozen} heartbeating again")
    return lost


@pytest.fixture
def pair(tmp_path: Path, redis_server: EmbeddedRedis) -> Iterator[Cluster]:
    """Two workers with a short lease: a freeze outlives it in a second or two."""
    yield from make_cluster(tmp_path, redis_server, 1.5, ("w1", "w2"))


def test_a_worker_frozen_past_its_lease_never_sends_on_an_instance_it_lost(pair: Cluster) -> None:
    """SIGSTOP under load, each worker in turn, until the other adopts its instances; SIGCONT. What
    reached "WhatsApp" (the sandbox's record of sends) for an instance after it was adopted, and
    before its old owner resumed, is the adopter's alone: nothing the resumed worker had claimed,
    picked or half-sent before its freeze goes out afterwards."""
    load = Load(pair)
    load.start()
    lost_by: dict[str, set[str]] = {}
    for frozen, other in (("w2", "w1"), ("w1", "w2")):
        wait_for(lambda: len(load.accepted) > 40 + 40 * len(lost_by), 20, "load under way")
        before_resume: dict[str, int] = {}  # instance -> sends recorded when its old owner resumed
        lost = lost_by[frozen] = freeze_until_adopted(pair, frozen, other, before_resume)
        load.wait_more(20)  # the resumed worker's pump has run by then
        # Before the next freeze, which hands these instances back to `frozen`:
        for name in lost:
            late = pair.sent(name)[before_resume[name] :]
            assert not [item for item in late if item["sentBy"] == frozen], (frozen, name)
    load.stop()
    load.check_delivered(killed_instances=set().union(*lost_by.values()))
