"""One clock (issue 23): what one process stamps and another judges uses Redis's clock, so a
worker whose own clock is off (here: an hour ahead or behind) neither outlives its lease in the
others' eyes nor spends lanes' gaps and quotas on its own time, nor takes, schedules or stamps
webhook deliveries by it; and /metrics judges heartbeats by the clock that stamped them."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from core import keys
from core.clock import redis_now_ms
from core.crypto import SecretBox
from core.instances import InstanceName, Instances
from core.redis_client import Redis, connect
from gateway.metrics import Metrics
from scheduler.lanes import Lanes
from scheduler.ownership import Ownership
from scheduler.worker import GatewayWorker
from tests.conftest import eventually, make_settings, open_instance
from tests.receiver import Receiver
from tests.test_bounded_work import EXPIRED, NAME, OPTED_OUT, WORKER, an_open_instance, messages
from webhooks.delivery import Deliverer
from webhooks.outbox import Limits, Outbox

HOUR = 3600
RETRY = 30.0  # s: the first webhook retry's delay


def skew(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process's clock (time.time, what core/clock.py reads) off by `seconds` from now on."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


@pytest.fixture
def clock_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    skew(monkeypatch, HOUR)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        redis_url, tmp_path / "data", webhook_retry_delays=(RETRY, RETRY), send_retry_delays=(RETRY, RETRY)
    )


@pytest.fixture
async def instances(settings: Settings, redis: Redis) -> Instances:
    assert settings.secret_key is not None
    return Instances(redis, SecretBox(settings.secret_key.get_secret_value()))


async def hooked(instances: Instances, url: str) -> None:
    await instances.create(InstanceName.parse(NAME), url, "webhook-secret-0123456789", "open")


def close_to(ms: float, redis_ms: float) -> bool:
    return abs(ms - redis_ms) < 60_000  # not an hour off


def iso_ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp() * 1000


async def test_a_heartbeat_is_stamped_and_judged_with_redis_clock(worker: GatewayWorker, clock_ahead: None) -> None:
    redis = worker.services.redis
    await worker._heartbeat_once()
    beat = await redis.zscore(keys.WORKERS, worker.worker_id)
    assert beat is not None and abs(beat - await redis_now_ms(redis)) < 60_000  # not an hour ahead
    assert await Ownership(redis, lease_timeout_ms=15_000).is_alive(worker.worker_id)


async def test_lanes_count_sends_on_redis_clock(redis: Redis, clock_ahead: None) -> None:
    lanes = Lanes(redis, Settings().lanes, 3600, max_wait_ms=60_000)
    await an_open_instance(redis)
    await lanes.accept(NAME, messages(1))
    [taken] = (await lanes.claim_due(WORKER, 10, EXPIRED, OPTED_OUT)).taken
    assert taken.message is not None
    [(_, sent_at)] = await redis.zrange(keys.sent_times(NAME, "normal"), 0, -1, withscores=True)
    assert abs(sent_at - await redis_now_ms(redis)) < 60_000


async def test_a_worker_behind_takes_the_webhook_events_another_process_made_due_now(
    settings: Settings, redis: Redis, instances: Instances, monkeypatch: pytest.MonkeyPatch
) -> None:
    await hooked(instances, "http://127.0.0.1:9/hook")
    await Outbox(redis, Limits.of(settings)).publish(NAME, "webhook.test", {})  # the API, on time
    [(_, due)] = await redis.zrange(keys.WEBHOOK_DUE, 0, -1, withscores=True)
    assert close_to(due, await redis_now_ms(redis))
    skew(monkeypatch, -HOUR)  # the delivering worker's clock is an hour behind
    worker_side = Outbox(redis, Limits.of(settings))
    assert list((await worker_side.take_due(10, "holder", 5)).heads) == [NAME]
    event = worker_side.event(NAME, "webhook.test", {})  # stamped as the worker learnt the time
    created_at = json.loads(json.loads(event.record)["record"])["createdAt"]
    assert close_to(iso_ms(created_at), await redis_now_ms(redis))


async def test_a_deliverer_ahead_schedules_a_retry_and_stamps_the_attempt_by_redis_clock(
    settings: Settings, redis: Redis, instances: Instances, receiver: Receiver, clock_ahead: None
) -> None:
    await hooked(instances, receiver.url())
    outbox = Outbox(redis, Limits.of(settings))
    receiver.fail_next(1, 500)
    delivery_id = await outbox.publish(NAME, "webhook.test", {})
    deliverer = Deliverer(settings, redis, outbox, instances)
    delivering = asyncio.create_task(deliverer.run_forever())

    async def handed_over() -> bool:  # it took the instance, attempted, failed, and handed it over for the retry
        return bool(receiver.requests) and not await redis.exists(keys.webhook_lock(NAME))

    try:
        await eventually(handed_over)
    finally:
        delivering.cancel()
        await asyncio.gather(delivering, return_exceptions=True)
        await deliverer.close()
    [request] = receiver.requests
    now = await redis_now_ms(redis)
    assert close_to(int(request.headers["x-gateway-timestamp"]) * 1000, now)
    [(_, due)] = await redis.zrange(keys.WEBHOOK_DUE, 0, -1, withscores=True)
    assert close_to(due, now + RETRY * 1000) and due > now + RETRY * 1000 - 5_000
    [tried] = (await outbox.page(NAME, 10, None))[0]
    assert tried.id == delivery_id and tried.status == "retrying" and tried.next_attempt_at is not None
    assert close_to(iso_ms(tried.next_attempt_at), now + RETRY * 1000)
    assert close_to(iso_ms(tried.attempts[0].at), now)
    since = await redis.hget(keys.webhook_endpoint(NAME), "since")  # type: ignore[misc]
    assert since is not None and close_to(int(since), now)  # what the hold before disabling counts from


async def test_metrics_judge_a_heartbeat_by_the_clock_that_stamped_it(
    worker: GatewayWorker, settings: Settings, instances: Instances, clock_ahead: None
) -> None:
    await worker._heartbeat_once()
    text = (await Metrics(worker.services.redis, instances, settings).render()).decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.labels.get("worker", worker.worker_id) == worker.worker_id}  # fmt: skip
    assert samples["wa_worker_up"] == 1 and samples["wa_workers_alive"] >= 1
    assert samples["wa_worker_heartbeat_age_seconds"] < 60


async def test_a_worker_ahead_waits_for_a_send_retry_by_redis_clock(
    gateway: TestClient, acme: dict[str, str], settings: Settings, clock_ahead: None
) -> None:
    name = await open_instance(gateway, acme, NAME)
    fail = {"error": "connection lost", "transient": True}
    assert (await gateway.post(f"/sandbox/instance/{name}/fail-next", json=fail, headers=acme)).status == 200
    text = {"instanceName": name, "to": "5491155554444", "text": "hi"}
    message_id = (await (await gateway.post("/message/text", json=text, headers=acme)).json())["id"]
    redis = connect(settings.redis_url or "")
    try:

        async def requeued() -> bool:
            return await redis.hget(keys.message(message_id), "attempts") == "1"  # type: ignore[misc]

        await eventually(requeued)
        retry_at = await redis.hget(keys.pump(name), "retry:normal")  # type: ignore[misc]
        now = await redis_now_ms(redis)
        assert retry_at is not None and close_to(int(retry_at), now + RETRY * 1000)
        assert int(retry_at) > now + RETRY * 1000 - 10_000  # it waits its delay, from Redis's now
    finally:
        await redis.aclose()


async def test_a_worker_ahead_stamps_the_first_link_by_redis_clock(
    gateway: TestClient, acme: dict[str, str], settings: Settings, clock_ahead: None
) -> None:
    name = await open_instance(gateway, acme, NAME)
    redis = connect(settings.redis_url or "")
    try:

        async def linked() -> str | None:
            return await redis.hget(keys.instance(name), "firstLinkedMs")  # type: ignore[misc]

        first = await eventually(linked)
        assert close_to(int(first), await redis_now_ms(redis))  # the warm-up's day 0 starts now
    finally:
        await redis.aclose()
