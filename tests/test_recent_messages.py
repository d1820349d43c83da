"""`GET /instance/{name}/messages` (the console's listing of recent messages) and `GET /whoami`."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from core import keys
from gateway.state import SERVICES
from scheduler.messages import RECENT_KEPT
from tests.conftest import ADMIN, eventually, instance_body, open_instance

NAME = "acme__shop1__sales"


async def send(client: TestClient, headers: dict[str, str], text: str, name: str = NAME) -> str:
    body = {"instanceName": name, "to": "5491112345678", "text": text}
    response = await client.post("/message/text", json=body, headers=headers)
    assert response.status == 202, await response.text()
    return str((await response.json())["id"])


async def recent(client: TestClient, headers: dict[str, str], query: str = "") -> list[dict[str, object]]:
    response = await client.get(f"/instance/{NAME}/messages{query}", headers=headers)
    assert response.status == 200, await response.text()
    return list((await response.json())["messages"])


async def test_lists_the_latest_messages_newest_first_with_their_status(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await open_instance(gateway, acme)
    ids = [await send(gateway, acme, f"message {n}") for n in range(3)]

    async def all_sent() -> bool:
        return [m["status"] for m in await recent(gateway, acme)] == ["sent"] * 3

    await eventually(all_sent)
    listed = await recent(gateway, acme)
    assert [m["id"] for m in listed] == ids[::-1]
    assert [m["text"] for m in listed] == ["message 2", "message 1", "message 0"]
    assert [m["id"] for m in await recent(gateway, acme, "?limit=2")] == ids[:0:-1]


async def test_keeps_only_the_latest_ids_and_forgets_expired_records(client: TestClient, tenant_key: str) -> None:
    acme = {"apikey": tenant_key}
    created = await client.post("/instance/create", json=instance_body(NAME), headers=acme)
    assert created.status == 201, await created.text()
    ids = [await send(client, acme, f"m{n}") for n in range(RECENT_KEPT + 2)]
    redis = client.app[SERVICES].redis
    assert await redis.zcard(keys.recent_messages(NAME)) == RECENT_KEPT

    await redis.delete(keys.message(ids[-1]))  # as if its retention ran out
    listed = await recent(client, acme, "?limit=3")
    assert [m["id"] for m in listed] == [ids[-2], ids[-3], ids[-4]]
    assert await redis.zscore(keys.recent_messages(NAME), ids[-1]) is None


async def test_another_tenant_gets_403_and_a_bad_limit_400_naming_it(client: TestClient, tenant_key: str) -> None:
    acme = {"apikey": tenant_key}
    created = await client.post("/instance/create", json=instance_body(NAME), headers=acme)
    assert created.status == 201
    other = await client.post("/admin/tenants", json={"tenantId": "globex"}, headers=ADMIN)
    globex = {"apikey": (await other.json())["apiKey"]}

    forbidden = await client.get(f"/instance/{NAME}/messages", headers=globex)
    assert forbidden.status == 403
    assert (await forbidden.json())["error"]["code"] == "forbidden_tenant"
    missing = await client.get("/instance/acme__shop1__nothing/messages", headers=acme)
    assert missing.status == 404
    bad = await client.get(f"/instance/{NAME}/messages?limit=0", headers=acme)
    assert bad.status == 400
    assert [issue["path"] for issue in (await bad.json())["error"]["issues"]] == [["limit"]]


async def test_deleting_an_instance_drops_its_index(client: TestClient, tenant_key: str) -> None:
    acme = {"apikey": tenant_key}
    await client.post("/instance/create", json=instance_body(NAME), headers=acme)
    await send(client, acme, "bye")
    assert (await client.delete(f"/instance/{NAME}", headers=acme)).status == 204
    assert not await client.app[SERVICES].redis.exists(keys.recent_messages(NAME))


@pytest.mark.parametrize("admin", [True, False])
async def test_whoami_names_the_keys_tenant_or_the_admin(client: TestClient, tenant_key: str, admin: bool) -> None:
    response = await client.get("/whoami", headers=ADMIN if admin else {"apikey": tenant_key})
    assert response.status == 200
    body = await response.json()
    assert (body["admin"], body["tenantId"]) == ((True, None) if admin else (False, "acme"))
    assert body["keyId"]


async def test_whoami_without_a_key_is_401(client: TestClient) -> None:
    response = await client.get("/whoami")
    assert response.status == 401
    assert (await response.json())["error"]["message"] == "missing apikey header (or Authorization: Bearer)"


async def test_a_batch_is_listed_in_its_order_newest_last_queued_first(client: TestClient, tenant_key: str) -> None:
    acme = {"apikey": tenant_key}
    await client.post("/instance/create", json=instance_body(NAME), headers=acme)
    before = await send(client, acme, "before")
    items = [{"type": "text", "instanceName": NAME, "to": "5491112345678", "text": f"b{n}"} for n in range(3)]
    response = await client.post("/message/batch", json={"messages": items}, headers=acme)
    assert response.status == 202, await response.text()
    batch = [record["id"] for record in (await response.json())["accepted"]]
    assert [m["id"] for m in await recent(client, acme)] == [*batch[::-1], before]
