"""The floor of benchmarks.instructions (benchmarks/floor.py) accepts for real: what it answers 202
for is recorded and queued as the gateway's own route would have, so its instruction count is the
cost of an accept, not of a shortcut."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from benchmarks.floor import floor_app
from gateway.state import SERVICES
from tests.conftest import instance_body


async def test_the_floor_records_and_queues_what_it_answers_202_for(
    client: TestClient, tenant_key: str, aiohttp_client: AiohttpClient
) -> None:
    headers = {"apikey": tenant_key}
    created = await client.post("/instance/create", json=instance_body(), headers=headers)
    assert created.status == 201, await created.text()
    floor = await aiohttp_client(floor_app(client.app[SERVICES].lanes))
    body = {"instanceName": "acme__shop1__sales", "to": "5491112345678", "text": "{Hi|Hello} there", "lane": "bulk"}

    answered = await floor.post("/message/text", json=body)

    assert answered.status == 202
    queued = await answered.json()
    assert queued["status"] == "pending" and queued["lane"] == "bulk"
    read = await client.get(f"/message/{queued['id']}", headers=headers)
    assert read.status == 200
    message = await read.json()
    assert (message["status"], message["text"], message["to"], message["lane"]) == (
        "pending", "{Hi|Hello} there", "5491112345678", "bulk"
    )  # fmt: skip
    queue = await client.get("/instance/acme__shop1__sales/queue", headers=headers)
    assert queue.status == 200
    assert ((await queue.json())["bulk"], (await queue.json())["total"]) == (1, 1)
