"""The sandbox's "WhatsApp" keeps what it took through a Redis outage, once: a send whose record
write lost its answer must neither look untried (the pump would send it again) nor show twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from core import keys
from core.redis_client import connect
from core.redis_server import EmbeddedRedis
from scheduler.drivers.base import DriverEvent, OutgoingMessage
from scheduler.drivers.sandbox import SandboxSession


async def _ignore(event: DriverEvent) -> None:
    pass


async def test_a_send_during_a_redis_outage_is_recorded_once_when_redis_is_back(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    await server.start()
    redis = connect(server.url)
    try:
        session = SandboxSession("shop", tmp_path / "shop.json", redis, _ignore, (60,), "w1")
        await session.link("5491100000001")
        await server.stop()
        send = asyncio.create_task(session.send(OutgoingMessage(to="5491100000002", type="text", text="hi")))
        await asyncio.sleep(0.6)
        assert not send.done()  # it waits for Redis; it does not fail as if never sent
        await server.start()
        sent = await asyncio.wait_for(send, 10)
        records = [json.loads(item) for item in await redis.lrange(keys.sandbox_sent("shop"), 0, -1)]  # type: ignore[misc]
        assert [(r["messageId"], r["text"]) for r in records] == [(sent.message_id, "hi")]
        # The same record written again, as after an answer lost to a cut connection: still once.
        await session._record_sent(sent.message_id, json.dumps(records[0]))
        assert await redis.llen(keys.sandbox_sent("shop")) == 1  # type: ignore[misc]
    finally:
        await redis.aclose()
        await server.stop()
