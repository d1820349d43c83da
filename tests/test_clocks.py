"""One clock (issue 23): what one process stamps and another judges uses Redis's clock, so a
worker whose own clock is off (here: an hour ahead) neither outlives its lease in the others'
eyes nor spends lanes' gaps and quotas on its own time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from config import Settings
from core import keys
from core.clock import redis_now_ms
from core.redis_client import Redis, connect
from scheduler.lanes import Lanes
from scheduler.ownership import Ownership
from scheduler.worker import GatewayWorker
from tests.test_bounded_work import EXPIRED, NAME, OPTED_OUT, WORKER, an_open_instance, messages

HOUR = 3600


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def clock_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + HOUR)


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
