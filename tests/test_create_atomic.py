"""Creating an instance is one atomic step (issue 23): a create that fails midway leaves no
name-only record behind, so the next create of that name succeeds (it was a 409 forever)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from config import Settings
from core import keys
from core.redis_client import connect
from tests.conftest import instance_body


async def test_a_create_that_fails_midway_leaves_nothing_behind(
    client: TestClient, tenant_key: str, settings: Settings
) -> None:
    acme = {"apikey": tenant_key}
    redis = connect(settings.redis_url or "")
    try:
        # The tenant's index is of the wrong type: writing it fails in the middle of the create.
        await redis.set(keys.tenant_instances("acme"), "not a sorted set")
        failed = await client.post("/instance/create", json=instance_body(), headers=acme)
        assert failed.status == 500
        assert not await redis.exists(keys.instance("acme__shop1__sales"))
        await redis.delete(keys.tenant_instances("acme"))
    finally:
        await redis.aclose()
    created = await client.post("/instance/create", json=instance_body(), headers=acme)
    assert created.status == 201, await created.text()
    assert (await client.delete("/instance/acme__shop1__sales", headers=acme)).status == 204
