from aiohttp.test_utils import TestClient

from gateway.app import ROUTES, SANDBOX_ROUTES


async def test_openapi_describes_every_route_with_the_validating_models(client: TestClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    spec = await response.json()
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    expected = {(r.path, r.method) for r in ROUTES + SANDBOX_ROUTES if r.in_docs}
    assert documented == expected

    send = spec["paths"]["/message/text"]["post"]
    ref = send["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"instanceName", "to", "text"}
    assert schema["properties"]["lane"]["enum"] == ["urgent", "normal", "bulk"]
    assert schema["additionalProperties"] is False
    assert "202" in send["responses"] and "400" in send["responses"]
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["components"]["securitySchemes"]["apikey"] == {"type": "apiKey", "in": "header", "name": "apikey"}


async def test_docs_page_renders_the_document_with_assets_served_here(client: TestClient) -> None:
    page = await client.get("/docs")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    html = await page.text()
    assert '"/openapi.json"' in html
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
        assert asset in html
        assert (await client.get(asset)).status == 200
