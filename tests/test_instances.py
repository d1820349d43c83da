import asyncio
import base64
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zxingcpp
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from PIL import Image
from pytest_aiohttp import AiohttpClient

from tests.conftest import ADMIN, instance_body

NAME = "acme__shop1__sales"


def decode_qr(data_uri: str) -> str:
    prefix = "data:image/png;base64,"
    assert data_uri.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(data_uri[len(prefix) :])))
    assert image.format == "PNG"
    [found] = zxingcpp.read_barcodes(image)
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    return str(found.text)


async def error_code(response: ClientResponse) -> str:
    return str((await response.json())["error"]["code"])


async def test_documented_client_flow_from_health_to_delete(gateway: TestClient, acme: dict[str, str]) -> None:
    assert (await gateway.get("/health")).status == 200

    created = await gateway.post("/instance/create", json=instance_body(), headers=acme)
    assert created.status == 201
    body = await created.json()
    assert body["instanceName"] == NAME
    assert body["state"] == "connecting"
    assert body["phoneNumber"] is None and body["connectedAt"] is None
    assert "webhookSecret" not in body

    qr = await gateway.get(f"/instance/{NAME}/qr", headers=acme)
    assert qr.status == 200
    qr_body = await qr.json()
    assert decode_qr(qr_body["qrcode"]).startswith("2@sandbox,")
    assert datetime.fromisoformat(qr_body["expiresAt"]) > datetime.now(UTC)

    status = await (await gateway.get(f"/instance/{NAME}/status", headers=acme)).json()
    assert status["state"] == "connecting"

    linked = await gateway.post(f"/sandbox/instance/{NAME}/link", json={"phoneNumber": "5491112345678"}, headers=acme)
    assert linked.status == 200

    status = await (await gateway.get(f"/instance/{NAME}/status", headers=acme)).json()
    assert status["state"] == "open"
    assert status["phoneNumber"] == "5491112345678"
    assert datetime.fromisoformat(status["connectedAt"]) <= datetime.now(UTC)
    assert status["messagesQueuedCount"] == 0

    by_tenant = await (await gateway.get("/tenant/acme/instances", headers=acme)).json()
    by_client = await (await gateway.get("/tenant/acme/client/shop1/instances", headers=acme)).json()
    other_client = await (await gateway.get("/tenant/acme/client/shop2/instances", headers=acme)).json()
    assert [i["instanceName"] for i in by_tenant] == [NAME]
    assert by_client == by_tenant
    assert other_client == []

    assert (await gateway.delete(f"/instance/{NAME}", headers=acme)).status == 204
    assert (await gateway.get(f"/instance/{NAME}/status", headers=acme)).status == 404
    assert await (await gateway.get("/tenant/acme/instances", headers=acme)).json() == []


async def test_qr_code_is_reused_until_it_expires(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    first = await (await gateway.get(f"/instance/{NAME}/qr", headers=acme)).json()
    second = await (await gateway.get(f"/instance/{NAME}/qr", headers=acme)).json()
    assert decode_qr(first["qrcode"]) == decode_qr(second["qrcode"])


async def test_qr_for_an_open_instance_is_409_invalid_state(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    await gateway.post(f"/sandbox/instance/{NAME}/link", json={}, headers=acme)
    response = await gateway.get(f"/instance/{NAME}/qr", headers=acme)
    assert response.status == 409
    assert await error_code(response) == "invalid_state"
    pairing = await gateway.post(
        f"/instance/{NAME}/pairing-code/request", json={"phoneNumber": "5491112345678"}, headers=acme
    )
    assert pairing.status == 409


async def test_pairing_code_is_eight_characters_in_two_groups(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    response = await gateway.post(
        f"/instance/{NAME}/pairing-code/request", json={"phoneNumber": "5491112345678"}, headers=acme
    )
    assert response.status == 200
    code = (await response.json())["pairingCode"]
    assert len(code) == 9 and code[4] == "-" and code.replace("-", "").isalnum()


async def test_pairing_code_phone_with_plus_and_spaces_says_what_to_send(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    response = await gateway.post(
        f"/instance/{NAME}/pairing-code/request", json={"phoneNumber": "+54 9 11 1234-5678"}, headers=acme
    )
    assert response.status == 400
    [issue] = (await response.json())["error"]["issues"]
    assert issue["path"] == ["phoneNumber"]
    assert "'5491112345678'" in issue["message"]


async def test_existing_name_is_409_already_exists(gateway: TestClient, acme: dict[str, str]) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    again = await gateway.post("/instance/create", json=instance_body(), headers=acme)
    assert again.status == 409
    assert await error_code(again) == "already_exists"


async def test_deleted_name_can_be_created_again(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    await gateway.post(f"/sandbox/instance/{NAME}/link", json={}, headers=acme)
    assert (await gateway.delete(f"/instance/{NAME}", headers=acme)).status == 204
    again = await gateway.post("/instance/create", json=instance_body(), headers=acme)
    assert again.status == 201
    assert (await again.json())["state"] == "connecting"  # a fresh, unlinked session


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"instanceName": "acme_shop1_sales"}, "instanceName"),
        ({"instanceName": "acme__Shop1__sales"}, "instanceName"),
        ({"instanceName": "acme__shop1__sales__x"}, "instanceName"),
        ({"webhookSecret": "short"}, "webhookSecret"),
        ({"webhookUrl": "ftp://example.com/hook"}, "webhookUrl"),
        ({"webhookUrl": "not a url"}, "webhookUrl"),
    ],
)
async def test_create_validation_names_the_field(
    gateway: TestClient, acme: dict[str, str], overrides: dict[str, str], path: str
) -> None:
    response = await gateway.post("/instance/create", json=instance_body(**overrides), headers=acme)
    assert response.status == 400
    issues = (await response.json())["error"]["issues"]
    assert [issue["path"] for issue in issues] == [[path]]


async def test_create_lists_every_missing_field(gateway: TestClient, acme: dict[str, str]) -> None:
    response = await gateway.post("/instance/create", json={}, headers=acme)
    paths = sorted(issue["path"][0] for issue in (await response.json())["error"]["issues"])
    assert paths == ["instanceName", "webhookSecret", "webhookUrl"]


async def test_unknown_instance_is_404(gateway: TestClient, acme: dict[str, str]) -> None:
    for method, path in [
        ("GET", "/instance/acme__x__y/status"),
        ("GET", "/instance/acme__x__y/qr"),
        ("GET", "/instance/acme__x__y/queue"),
        ("DELETE", "/instance/acme__x__y"),
    ]:
        response = await gateway.request(method, path, headers=acme)
        assert response.status == 404, path
        assert await error_code(response) == "not_found"


async def test_queue_counts_are_zero_for_a_new_instance(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    response = await gateway.get(f"/instance/{NAME}/queue", headers=acme)
    queue = await response.json()
    assert {lane: queue[lane] for lane in ("urgent", "normal", "bulk", "total")} == {
        "urgent": 0, "normal": 0, "bulk": 0, "total": 0
    }  # fmt: skip


async def test_another_tenant_gets_403_on_every_route_and_sees_nothing(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    created = await gateway.post("/admin/tenants", json={"tenantId": "globex"}, headers=ADMIN)
    globex = {"apikey": (await created.json())["apiKey"]}

    attempts = [
        ("POST", "/instance/create", instance_body()),
        ("GET", f"/instance/{NAME}/qr", None),
        ("POST", f"/instance/{NAME}/pairing-code/request", {"phoneNumber": "5491112345678"}),
        ("GET", f"/instance/{NAME}/status", None),
        ("GET", f"/instance/{NAME}/queue", None),
        ("DELETE", f"/instance/{NAME}", None),
        ("GET", "/tenant/acme/instances", None),
        ("GET", "/tenant/acme/client/shop1/instances", None),
        ("POST", f"/sandbox/instance/{NAME}/link", {}),
        ("POST", f"/sandbox/instance/{NAME}/unlink", None),
        ("POST", f"/sandbox/instance/{NAME}/inbound", {"from": "5491100000001", "text": "hi"}),
        ("GET", f"/sandbox/instance/{NAME}/sent", None),
        ("POST", f"/sandbox/instance/{NAME}/fail-next", {"error": "boom"}),
    ]
    for method, path, body in attempts:
        response = await gateway.request(method, path, json=body, headers=globex)
        assert response.status == 403, (method, path, response.status)
        assert await error_code(response) == "forbidden_tenant"
    # and a name that does not exist under acme is 403 too: no probing another tenant's names
    assert (await gateway.get("/instance/acme__nope__x/status", headers=globex)).status == 403
    assert await (await gateway.get("/tenant/globex/instances", headers=globex)).json() == []
    status = await (await gateway.get(f"/instance/{NAME}/status", headers=acme)).json()
    assert status["state"] == "connecting"  # untouched by globex


async def test_admin_sees_any_tenant_and_unknown_tenant_is_404(gateway: TestClient, acme: dict[str, str]) -> None:
    await gateway.post("/instance/create", json=instance_body(), headers=acme)
    assert len(await (await gateway.get("/tenant/acme/instances", headers=ADMIN)).json()) == 1
    assert (await gateway.get("/tenant/nobody/instances", headers=ADMIN)).status == 404
    missing = await gateway.post("/instance/create", json=instance_body("nobody__a__b"), headers=ADMIN)
    assert missing.status == 404


@pytest.mark.parametrize("url", ["http://a..b/hook", f"http://{'x' * 64}.example/hook"])
async def test_webhook_url_with_an_unusable_host_is_a_400(gateway: TestClient, acme: dict[str, str], url: str) -> None:
    response = await gateway.post("/instance/create", json=instance_body(webhookUrl=url), headers=acme)
    assert response.status == 400
    assert [i["path"] for i in (await response.json())["error"]["issues"]] == [["webhookUrl"]]


async def test_qr_request_fails_fast_with_the_reason_when_whatsapp_cannot_be_reached(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    from gateway.app import create_app
    from scheduler.worker import worker_context
    from tests.conftest import make_settings

    # The real driver, offline: through a refused local proxy the dial fails at once (and nothing
    # leaves this machine), and the answer says so without waiting out the QR timeout.
    settings = make_settings(redis_url, tmp_path / "data", driver="neonize", whatsapp_proxy="socks5://127.0.0.1:9")
    app = create_app(settings)
    app.cleanup_ctx.append(worker_context(settings))
    client = await aiohttp_client(app)
    created = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    acme = {"apikey": (await created.json())["apiKey"]}
    assert (await client.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    started = asyncio.get_running_loop().time()
    response = await client.get(f"/instance/{NAME}/qr", headers=acme)
    assert response.status == 502
    assert (await response.json())["error"]["code"] == "whatsapp_error"
    assert asyncio.get_running_loop().time() - started < 15
