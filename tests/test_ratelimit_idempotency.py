from pathlib import Path

import redis
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from tests.conftest import ADMIN, make_settings


async def test_every_answer_carries_rate_limit_headers(client: TestClient, tenant_key: str) -> None:
    first = await client.get("/admin/tenants", headers=ADMIN)
    second = await client.get("/admin/tenants", headers=ADMIN)
    assert first.headers["X-RateLimit-Limit"] == "600"
    assert int(second.headers["X-RateLimit-Remaining"]) == int(first.headers["X-RateLimit-Remaining"]) - 1
    assert 1 <= int(first.headers["X-RateLimit-Reset"]) <= 60


async def test_over_the_limit_is_429_with_retry_after(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(make_settings(redis_url, tmp_path, rate_limit=3)))
    statuses = [(await client.get("/admin/tenants", headers=ADMIN)).status for _ in range(3)]
    limited = await client.get("/admin/tenants", headers=ADMIN)
    assert statuses == [200, 200, 200]
    assert limited.status == 429
    assert (await limited.json())["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"


async def test_limits_are_per_key(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(make_settings(redis_url, tmp_path, rate_limit=2)))
    created = await (await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)).json()
    await client.get("/admin/tenants", headers=ADMIN)
    assert (await client.get("/admin/tenants", headers=ADMIN)).status == 429
    other = await client.get("/admin/tenants", headers={"apikey": created["apiKey"]})
    assert other.status == 403  # authenticated and counted on its own budget, not limited


async def test_same_idempotency_key_and_body_replays_the_first_answer(client: TestClient) -> None:
    headers = {**ADMIN, "Idempotency-Key": "create-acme-1"}
    first = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=headers)
    again = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=headers)
    assert first.status == again.status == 201
    assert await again.json() == await first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    tenants = await (await client.get("/admin/tenants", headers=ADMIN)).json()
    assert len(tenants[0]["keyIds"]) == 1  # the replay created nothing


async def test_same_idempotency_key_with_another_body_is_409(client: TestClient) -> None:
    headers = {**ADMIN, "Idempotency-Key": "k1"}
    await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=headers)
    other = await client.post("/admin/tenants", json={"tenantId": "globex"}, headers=headers)
    assert other.status == 409
    assert (await other.json())["error"]["code"] == "idempotency_conflict"


async def test_failed_request_does_not_burn_the_idempotency_key(client: TestClient) -> None:
    headers = {**ADMIN, "Idempotency-Key": "k2"}
    bad = await client.post("/admin/tenants", json={"tenantId": "BAD"}, headers=headers)
    assert bad.status == 400
    good = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=headers)
    assert good.status == 201


async def test_public_routes_carry_rate_limit_headers_too(client: TestClient) -> None:
    for path in ("/health", "/openapi.json"):
        response = await client.get(path)
        assert response.status == 200
        assert int(response.headers["X-RateLimit-Remaining"]) < int(response.headers["X-RateLimit-Limit"])


async def test_a_replayed_answer_is_not_kept_in_plain_text(client: TestClient, redis_url: str) -> None:
    headers = {**ADMIN, "Idempotency-Key": "create-acme"}
    created = await (await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=headers)).json()
    store = redis.Redis.from_url(redis_url)
    stored = b"".join(store.get(key) or b"" for key in store.scan_iter("wa:idem:*"))  # type: ignore[misc]  # redis-py: sync or async
    store.close()
    assert stored and created["apiKey"].encode() not in stored
    again = await (await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=headers)).json()
    assert again["apiKey"] == created["apiKey"]
