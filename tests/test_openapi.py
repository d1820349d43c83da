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


async def test_openapi_declares_headers_parameters_and_the_validators_constraints(client: TestClient) -> None:
    spec = await (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for item in spec["paths"].values():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                assert answer["headers"]["x-request-id"]["required"] is True
                assert status in ("101", "204") or "content" in answer, (operation["operationId"], status)
    assert spec["paths"]["/admin/stats"]["get"]["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert "Allow" in spec["paths"]["/admin/stats"]["get"]["responses"]["405"]["headers"]
    assert {"500", "502", "503"} <= set(spec["paths"]["/instance/{name}/qr"]["get"]["responses"])

    deliveries = spec["paths"]["/instance/{name}/webhooks/deliveries"]["get"]["parameters"]
    query = {p["name"]: p["schema"] for p in deliveries if p["in"] == "query"}
    assert query["limit"]["maximum"] == 100 and query["cursor"]["minimum"] == 0
    create = spec["paths"]["/instance/create"]["post"]
    key = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"]["minLength"] == 1

    body = schemas["CreateInstance"]["properties"]
    assert body["instanceName"]["pattern"].startswith("^") and body["instanceName"]["pattern"].endswith("$")
    assert body["webhookUrl"]["format"] == "uri"
    assert (
        schemas["SendText"]["properties"]["to"]["pattern"]
        == "^(?:[1-9][0-9]{6,14}|[0-9]{5,30}(?:-[0-9]{5,30})?@g\\.us|[0-9]{5,20}@lid)$"
    )
    status = schemas["InstanceStatus"]["properties"]
    assert status["state"]["enum"] == ["close", "connecting", "open"]
    assert status["createdAt"]["format"] == "date-time"
    route = schemas["RouteTarget"]
    assert len(route["oneOf"]) == 9
    assert all(schemas[v["$ref"].rsplit("/", 1)[1]]["additionalProperties"] is False for v in route["oneOf"])
