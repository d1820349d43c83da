import io

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN


async def issues_of(response: ClientResponse) -> list[dict]:
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == "validation_error"
    assert body["requestId"].startswith("req_")
    return body["error"]["issues"]


async def test_bad_json_is_a_400_naming_the_problem(client: TestClient) -> None:
    response = await client.post("/admin/tenants", data=b"{not json", headers=ADMIN)
    [issue] = await issues_of(response)
    assert issue["path"] == []
    assert "not valid JSON" in issue["message"]


async def test_empty_body_is_a_400(client: TestClient) -> None:
    [issue] = await issues_of(await client.post("/admin/tenants", data=b"", headers=ADMIN))
    assert "empty" in issue["message"]


async def test_non_object_body_is_a_400(client: TestClient) -> None:
    [issue] = await issues_of(await client.post("/admin/tenants", json=[1, 2], headers=ADMIN))
    assert issue["message"] == "request body must be a JSON object"


async def test_every_problem_is_listed_with_its_path(client: TestClient) -> None:
    response = await client.post("/admin/tenants", json={"name": 5, "extra": True}, headers=ADMIN)
    issues = {tuple(i["path"]): i["message"] for i in await issues_of(response)}
    assert issues == {
        ("tenantId",): "field required",
        ("name",): "Input should be a valid string",
        ("extra",): "unknown field",
    }


@pytest.mark.parametrize("tenant_id", ["Acme", "acme__x", "_acme", "acme_", "ac me", ""])
async def test_tenant_id_must_follow_name_part_rules(client: TestClient, tenant_id: str) -> None:
    [issue] = await issues_of(await client.post("/admin/tenants", json={"tenantId": tenant_id}, headers=ADMIN))
    assert issue["path"] == ["tenantId"]


async def test_body_over_the_limit_is_413(client: TestClient) -> None:
    response = await client.post("/admin/tenants", data=io.BytesIO(b"x" * 2_000_000), headers=ADMIN)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_unknown_route_is_404_in_the_error_shape(client: TestClient) -> None:
    response = await client.get("/nothing/here")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_wrong_method_is_405_in_the_error_shape(client: TestClient) -> None:
    response = await client.put("/admin/tenants", headers=ADMIN)
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


async def test_deeply_nested_body_is_a_400_not_a_crash(client: TestClient) -> None:
    response = await client.post("/admin/tenants", data=b"[" * 100_000, headers=ADMIN)
    [issue] = await issues_of(response)
    assert "nested too deeply" in issue["message"]
