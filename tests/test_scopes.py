"""Keys with less power (issue 23): a read key reads, a metrics key scrapes /metrics with a rate
limit of its own, and the admin lists every instance in one call, a page at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from core import keys
from core.redis_client import connect
from tests.conftest import ADMIN, instance_body, make_settings


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", rate_limit=10)


async def issue(client: TestClient, path: str, body: dict[str, object] | None = None) -> tuple[dict[str, str], str]:
    response = (
        await client.post(path, json=body, headers=ADMIN)
        if body is not None
        else await client.post(path, headers=ADMIN)
    )
    assert response.status == 201, await response.text()
    found = await response.json()
    return {"apikey": found["apiKey"]}, found["scopes"][0]


async def test_a_read_key_reads_and_is_refused_everything_else(client: TestClient, tenant_key: str) -> None:
    acme = {"apikey": tenant_key}
    assert (await client.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    read, scope = await issue(client, "/admin/tenants/acme/keys", {"scopes": ["read"]})
    assert scope == "read"
    assert (await client.get("/instance/acme__shop1__sales/status", headers=read)).status == 200
    async with client.ws_connect("/events", headers=read):
        pass
    for method, path, body in [
        ("POST", "/message/text", {"instanceName": "acme__shop1__sales", "to": "5491155554444", "text": "hi"}),
        ("POST", "/instance/create", instance_body("acme__shop1__other")),
        ("DELETE", "/instance/acme__shop1__sales", None),
    ]:
        refused = await client.request(method, path, json=body, headers=read)
        assert refused.status == 403, (path, await refused.text())
        assert (await refused.json())["error"]["code"] == "insufficient_scope"
    assert (await client.get("/instance/acme__shop1__sales/status", headers=acme)).status == 200
    _, default = await issue(client, "/admin/tenants/acme/keys")  # no body: a full key, as before
    assert default == "all"


async def test_a_metrics_key_scrapes_metrics_alone_with_its_own_limit(client: TestClient) -> None:
    metrics, scope = await issue(client, "/admin/keys", {"scopes": ["metrics"]})
    assert scope == "metrics"
    bad = await client.post("/admin/keys", json={"scopes": ["all"]}, headers=ADMIN)
    assert bad.status == 400
    for path in ("/admin/stats", "/whoami", "/tenant/acme/instances"):
        refused = await client.get(path, headers=metrics)
        assert refused.status == 403
        assert (await refused.json())["error"]["code"] == "insufficient_scope"
    for _ in range(10):  # the console (admin key) spends the whole of its own limit
        await client.get("/admin/stats", headers=ADMIN)
    assert (await client.get("/admin/stats", headers=ADMIN)).status == 429
    scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {metrics['apikey']}"})
    assert scraped.status == 200  # its limit is its own


async def test_admin_lists_every_instance_a_page_at_a_time(client: TestClient, settings: Settings) -> None:
    for tenant in ("acme", "globex"):
        created = await client.post("/admin/tenants", json={"tenantId": tenant}, headers=ADMIN)
        key = {"apikey": (await created.json())["apiKey"]}
        for label in ("a", "b", "c"):
            name = f"{tenant}__shop__{label}"
            assert (await client.post("/instance/create", json=instance_body(name), headers=key)).status == 201
    redis = connect(settings.redis_url or "")
    await redis.hset(keys.instance("globex__shop__b"), "state", "open")  # type: ignore[misc]
    await redis.aclose()
    seen, cursor = [], ""
    while True:
        page = await (await client.get(f"/admin/instances?limit=4{cursor}", headers=ADMIN)).json()
        seen += [item["instanceName"] for item in page["items"]]
        if page["next"] is None:
            break
        cursor = f"&cursor={page['next']}"
    assert seen == sorted(f"{t}__shop__{label}" for t in ("acme", "globex") for label in "abc")
    one = await (await client.get("/admin/instances?tenant=globex&state=open", headers=ADMIN)).json()
    assert [item["instanceName"] for item in one["items"]] == ["globex__shop__b"] and one["next"] is None
    assert (await client.get("/admin/instances?limit=0", headers=ADMIN)).status == 400
