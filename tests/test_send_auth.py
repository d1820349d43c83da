"""The send routes check the API key inside their accept step (one Redis round trip for the key,
its rate limit and the message): they must answer exactly as every other route does."""

from pathlib import Path

from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from tests.conftest import ADMIN, instance_body, make_settings

NAME = "acme__shop1__sales"
TEXT = {"instanceName": NAME, "to": "5491112345678", "text": "hello"}


async def queued(client: TestClient, name: str = NAME) -> int:
    response = await client.get(f"/instance/{name}/queue", headers=ADMIN)
    assert response.status == 200, await response.text()
    total: int = (await response.json())["total"]
    return total


async def tenant(client: TestClient, tenant_id: str) -> dict[str, str]:
    response = await client.post("/admin/tenants", json={"tenantId": tenant_id}, headers=ADMIN)
    assert response.status == 201, await response.text()
    return {"apikey": (await response.json())["apiKey"]}


async def with_instance(client: TestClient, tenant_id: str = "acme") -> dict[str, str]:
    key = await tenant(client, tenant_id)
    name = f"{tenant_id}__shop1__sales"
    response = await client.post("/instance/create", json=instance_body(name), headers=key)
    assert response.status == 201, await response.text()
    return key


async def test_a_tenant_key_queues_on_its_own_instance(client: TestClient) -> None:
    key = await with_instance(client)
    first = await client.post("/message/text", json=TEXT, headers=key)
    second = await client.post("/message/text", json=TEXT, headers=key)
    assert first.status == 202, await first.text()
    assert first.headers["X-RateLimit-Limit"] == "600"
    assert int(second.headers["X-RateLimit-Remaining"]) == int(first.headers["X-RateLimit-Remaining"]) - 1
    assert await queued(client) == 2


async def test_an_unknown_or_revoked_key_is_401_and_queues_nothing(client: TestClient) -> None:
    key = await with_instance(client)
    unknown = await client.post("/message/text", json=TEXT, headers={"apikey": "wag_nothere_secret"})
    assert unknown.status == 401
    assert (await unknown.json())["error"]["message"] == "unknown or revoked API key"
    key_id = (await (await client.get("/whoami", headers=key)).json())["keyId"]
    assert (await client.delete(f"/admin/keys/{key_id}", headers=ADMIN)).status == 204
    revoked = await client.post("/message/text", json=TEXT, headers=key)
    assert revoked.status == 401
    assert await queued(client) == 0


async def test_a_bad_key_answers_before_a_bad_body(client: TestClient) -> None:
    key = await with_instance(client)
    bad_body = {"instanceName": NAME, "to": "not-a-number", "text": ""}
    unknown = await client.post("/message/text", json=bad_body, headers={"apikey": "wag_nothere_secret"})
    assert unknown.status == 401
    known = await client.post("/message/text", json=bad_body, headers=key)
    assert known.status == 400
    assert {tuple(issue["path"]) for issue in (await known.json())["error"]["issues"]} == {("to",), ("text",)}
    assert "X-RateLimit-Remaining" in known.headers


async def test_another_tenants_instance_is_403_and_queues_nothing(client: TestClient) -> None:
    await with_instance(client, "acme")
    other = await tenant(client, "globex")
    response = await client.post("/message/text", json=TEXT, headers=other)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden_tenant"
    assert await queued(client) == 0


async def test_the_admin_key_queues_on_any_instance_and_a_missing_one_is_404(client: TestClient) -> None:
    await with_instance(client)
    assert (await client.post("/message/text", json=TEXT, headers=ADMIN)).status == 202
    missing = await client.post("/message/text", json={**TEXT, "instanceName": "acme__shop1__gone"}, headers=ADMIN)
    assert missing.status == 404
    assert await queued(client) == 1


async def test_over_the_limit_a_send_is_429_and_queues_nothing(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(make_settings(redis_url, tmp_path, rate_limit=4)))
    key = await with_instance(client)  # the instance's creation counts one of the key's 4
    statuses = [(await client.post("/message/text", json=TEXT, headers=key)).status for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    limited = await client.post("/message/text", json=TEXT, headers=key)
    assert limited.status == 429
    assert (await limited.json())["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert await queued(client) == 3


GONE = "acme__shop1__gone"  # acme's, and no such instance
SENDS: list[tuple[str, dict[str, object]]] = [
    ("/message/text", {"instanceName": GONE, "to": "5491112345678", "text": "hi"}),
    ("/message/text", {"instanceName": GONE, "to": "5491112345678", "text": "hi", "quotedMessageId": "msg_nothere"}),
    ("/message/reaction", {"instanceName": GONE, "messageId": "msg_nothere", "emoji": "👍"}),
    ("/message/batch", {"messages": [{"type": "text", "instanceName": GONE, "to": "5491112345678", "text": "hi"}]}),
]


async def test_every_send_checks_the_key_then_the_tenant_then_the_rest(client: TestClient) -> None:
    """Whichever route, whether the key is checked in the accept step or before it (a quote to
    look up, an Idempotency-Key): an unknown key is 401, another tenant's key 403, and only a
    caller that may use the instance learns that it (or the quoted message) does not exist."""
    await with_instance(client, "acme")
    globex = await tenant(client, "globex")
    callers = [({"apikey": "wag_nothere_secret"}, 401), (globex, 403), (ADMIN, 404)]
    for path, body in SENDS:
        for headers, status in callers:
            for extra in ({}, {"Idempotency-Key": f"k-{path}-{status}-{len(body)}"}):
                response = await client.post(path, json=body, headers={**headers, **extra})
                assert response.status == status, (path, body, status, extra, await response.text())
    assert await queued(client) == 0
