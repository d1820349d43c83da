from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN


async def error_of(response: ClientResponse) -> dict:
    body = await response.json()
    assert set(body) == {"error", "requestId"}
    assert body["requestId"] == response.headers["x-request-id"]
    return body["error"]


async def test_missing_key_is_401_invalid_api_key(client: TestClient) -> None:
    response = await client.get("/admin/tenants")
    assert response.status == 401
    assert (await error_of(response))["code"] == "invalid_api_key"


async def test_unknown_key_is_401(client: TestClient) -> None:
    response = await client.get("/admin/tenants", headers={"apikey": "wag_nothere_secret"})
    assert response.status == 401
    assert (await error_of(response))["message"] == "unknown or revoked API key"


async def test_health_needs_no_key(client: TestClient) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "redis": "ok"}


async def test_tenant_key_on_admin_route_is_403(client: TestClient, tenant_key: str) -> None:
    response = await client.get("/admin/tenants", headers={"apikey": tenant_key})
    assert response.status == 403
    assert (await error_of(response))["code"] == "forbidden_tenant"


async def test_created_tenant_is_listed_with_key_ids_but_never_keys(client: TestClient, tenant_key: str) -> None:
    response = await client.get("/admin/tenants", headers=ADMIN)
    listed = await response.json()
    assert [t["tenantId"] for t in listed] == ["acme"]
    assert len(listed[0]["keyIds"]) == 1
    assert tenant_key not in await response.text()


async def test_creating_an_existing_tenant_is_409(client: TestClient, tenant_key: str) -> None:
    response = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    assert response.status == 409
    assert (await error_of(response))["code"] == "already_exists"


async def test_revoked_key_stops_working_at_once_and_rotation_key_keeps_working(
    client: TestClient, tenant_key: str
) -> None:
    issued = await client.post("/admin/tenants/acme/keys", headers=ADMIN)
    assert issued.status == 201
    second = await issued.json()
    tenants = await (await client.get("/admin/tenants", headers=ADMIN)).json()
    first_id = next(k for k in tenants[0]["keyIds"] if k != second["keyId"])

    assert (await client.delete(f"/admin/keys/{first_id}", headers=ADMIN)).status == 204

    revoked = await client.get("/admin/tenants", headers={"apikey": tenant_key})
    assert revoked.status == 401
    assert (await error_of(revoked))["code"] == "invalid_api_key"
    # the rotated key still authenticates: 403 on an admin route, not 401
    still = await client.post("/admin/tenants/acme/keys", headers={"apikey": second["apiKey"]})
    assert still.status == 403


async def test_revoking_an_unknown_key_is_404(client: TestClient) -> None:
    response = await client.delete("/admin/keys/nope", headers=ADMIN)
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"


async def test_key_for_unknown_tenant_is_404(client: TestClient) -> None:
    response = await client.post("/admin/tenants/ghost/keys", headers=ADMIN)
    assert response.status == 404


async def test_request_id_is_echoed_when_sent(client: TestClient) -> None:
    response = await client.get("/health", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
