"""Per-instance settings (API.md, "Per-instance settings"): defaults, partial changes, create's
`settings`, the proxy URL checked like webhook URLs, sealed at rest and answered masked, kept in
Redis across a restart, and the typed client methods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from core import keys
from gateway.app import create_app
from gateway.state import SERVICES
from tests.conftest import ADMIN, instance_body, make_settings
from tests.test_client import acme as client_acme  # noqa: F401  (fixtures of the typed client)
from tests.test_client import admin, base_url  # noqa: F401
from wa_gateway_client import AsyncClient, ValidationError

NAME = "acme__shop1__sales"
DEFAULTS = {
    "deliverability": "standard",
    "rejectCalls": False,
    "rejectCallMessage": None,
    "alwaysOnline": False,
    "autoRead": False,
    "ignoreGroups": False,
    "syncHistory": True,
    "proxyUrl": None,
}
PROXY = "socks5://user:s3cret-pass@proxy.example.com:1080"


async def settings_of(gateway: TestClient, headers: dict[str, str], name: str = NAME) -> dict[str, object]:
    found = await gateway.get(f"/instance/{name}/settings", headers=headers)
    assert found.status == 200, await found.text()
    return dict(await found.json())


async def patch(gateway: TestClient, headers: dict[str, str], body: dict[str, object]) -> tuple[int, dict[str, Any]]:
    answer = await gateway.patch(f"/instance/{NAME}/settings", json=body, headers=headers)
    return answer.status, await answer.json()


async def test_a_new_instance_has_the_contract_defaults_and_a_patch_changes_only_what_it_sends(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    assert await settings_of(gateway, acme) == DEFAULTS
    status, changed = await patch(gateway, acme, {"deliverability": "cautious", "rejectCalls": True})
    assert status == 200 and changed == {**DEFAULTS, "deliverability": "cautious", "rejectCalls": True}
    status, changed = await patch(gateway, acme, {"autoRead": True, "rejectCallMessage": "call later"})
    expected = {**DEFAULTS, "deliverability": "cautious", "rejectCalls": True, "autoRead": True}
    assert status == 200 and changed == {**expected, "rejectCallMessage": "call later"}
    status, changed = await patch(gateway, acme, {"rejectCallMessage": None})
    assert changed == expected and await settings_of(gateway, acme) == expected


async def test_unknown_or_malformed_fields_are_400s_naming_each_and_change_nothing(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    body = {"deliverability": "reckless", "autoReed": True, "syncHistory": "yes", "proxyUrl": "ftp://h:21"}
    status, answer = await patch(gateway, acme, body)
    assert status == 400
    paths = sorted(tuple(issue["path"]) for issue in answer["error"]["issues"])
    assert paths == [("autoReed",), ("deliverability",), ("proxyUrl",), ("syncHistory",)]
    assert await settings_of(gateway, acme) == DEFAULTS
    bad_create = await gateway.post(
        "/instance/create",
        json={**instance_body("acme__shop1__other"), "settings": {"alwaysOnline": 1.5}},
        headers=acme,
    )
    assert bad_create.status == 400
    assert (await bad_create.json())["error"]["issues"][0]["path"] == ["settings", "alwaysOnline"]


async def test_create_takes_settings_and_another_tenant_cannot_read_or_change_them(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    body = {**instance_body(), "settings": {"deliverability": "cautious", "syncHistory": False}}
    assert (await gateway.post("/instance/create", json=body, headers=acme)).status == 201
    assert await settings_of(gateway, acme) == {**DEFAULTS, "deliverability": "cautious", "syncHistory": False}
    assert (await settings_of(gateway, ADMIN))["deliverability"] == "cautious"
    other = await gateway.post("/admin/tenants", json={"tenantId": "globex"}, headers=ADMIN)
    globex = {"apikey": (await other.json())["apiKey"]}
    assert (await gateway.get(f"/instance/{NAME}/settings", headers=globex)).status == 403
    assert (await gateway.patch(f"/instance/{NAME}/settings", json={}, headers=globex)).status == 403
    assert (await gateway.get("/instance/acme__shop1__nobody/settings", headers=acme)).status == 404


async def test_the_proxy_is_sealed_at_rest_answered_masked_and_kept_across_a_restart(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, gateway: TestClient, acme: dict[str, str]
) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    status, answer = await patch(gateway, acme, {"proxyUrl": PROXY})
    assert status == 200 and answer["proxyUrl"] == "socks5://user:***@proxy.example.com:1080"
    stored = await gateway.app[SERVICES].redis.hget(keys.instance(NAME), "settings")
    assert "s3cret-pass" not in stored and "proxy.example.com" not in stored
    # The masked URL sent back (a client PATCHing what it read) keeps the real password.
    status, answer = await patch(gateway, acme, {**answer, "ignoreGroups": True})
    assert status == 200 and (await gateway.app[SERVICES].instances.settings(NAME)).proxy_url == PROXY

    restarted = await aiohttp_client(create_app(make_settings(redis_url, tmp_path / "again")))
    again = await settings_of(restarted, acme)
    assert again["proxyUrl"] == "socks5://user:***@proxy.example.com:1080" and again["ignoreGroups"] is True
    assert (await restarted.app[SERVICES].instances.settings(NAME)).proxy_url == PROXY
    status, answer = await patch(restarted, acme, {"proxyUrl": "https://proxy.example.com"})
    assert status == 200 and answer["proxyUrl"] == "https://proxy.example.com"
    status, answer = await patch(restarted, acme, {"proxyUrl": None})
    assert status == 200 and answer["proxyUrl"] is None


async def test_a_proxy_on_a_private_address_is_refused_like_a_webhook_url(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    guarded = await aiohttp_client(create_app(make_settings(redis_url, tmp_path / "data", allow_private_urls=False)))
    created = await guarded.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    acme = {"apikey": (await created.json())["apiKey"]}
    hook = "https://hooks.example.com/in"
    body = {**instance_body(webhookUrl=hook), "settings": {"proxyUrl": "socks5://10.0.0.7:1080"}}
    refused = await guarded.post("/instance/create", json=body, headers=acme)
    assert refused.status == 400
    [issue] = (await refused.json())["error"]["issues"]
    assert issue["path"] == ["settings", "proxyUrl"] and "private" in issue["message"]
    assert (await guarded.post("/instance/create", json=instance_body(webhookUrl=hook), headers=acme)).status == 201
    for url in ("http://127.0.0.1:3128", "socks5://localhost:1080", "http://[::1]:8080"):
        status, answer = await patch(guarded, acme, {"proxyUrl": url})
        assert status == 400 and answer["error"]["issues"][0]["path"] == ["proxyUrl"], (url, answer)
    status, _ = await patch(guarded, acme, {"proxyUrl": "http://1.1.1.1:3128"})
    assert status == 200


async def test_the_typed_client_reads_and_changes_settings(gateway: TestClient, client_acme: AsyncClient) -> None:  # noqa: F811
    await client_acme.create_instance(
        NAME,
        "http://127.0.0.1:9/hook",
        "0123456789abcdef-secret",
        settings={"deliverability": "cautious", "proxy_url": PROXY},
    )
    found = await client_acme.get_settings(NAME)
    assert found.deliverability == "cautious" and found.proxy_url == "socks5://user:***@proxy.example.com:1080"
    changed = await client_acme.update_settings(NAME, always_online=True, clear=("proxy_url",))
    assert changed.always_online and changed.proxy_url is None and changed.sync_history
    try:
        await client_acme.update_settings(NAME, deliverability="reckless")  # type: ignore[arg-type]
    except ValidationError as exc:
        assert tuple(exc.issues[0].path) == ("deliverability",)
    else:
        raise AssertionError("a bad value was accepted")


async def test_the_settings_routes_are_in_the_openapi_document(gateway: TestClient) -> None:
    paths = (await (await gateway.get("/openapi.json")).json())["paths"]
    assert set(paths["/instance/{name}/settings"]) >= {"get", "patch"}
