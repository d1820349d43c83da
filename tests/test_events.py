"""GET /events: a real WebSocket client reading the caller's events live, as webhook envelopes, and
catching up through `?since=` after the API process it was connected to restarted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN, ADMIN_KEY, open_instance
from tests.receiver import Receiver
from tests.serve_process import ServeProcess

NAME = "acme__shop1__sales"
OTHER = "acme__shop1__support"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    await found.close()


async def next_event(socket: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    message = await socket.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    event: dict[str, Any] = message.json()
    return event


async def inbound(client: TestClient, headers: dict[str, str], name: str, text: str) -> None:
    body = {"from": "5491155554444", "messageType": "conversation", "text": text}
    assert (await client.post(f"/sandbox/instance/{name}/inbound", json=body, headers=headers)).status == 201


async def test_events_are_the_webhook_envelopes_live_with_a_cursor(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver
) -> None:
    async with gateway.ws_connect("/events", headers=acme) as socket:
        await open_instance(gateway, acme, NAME, webhookUrl=receiver.url())
        connected = await next_event(socket)
        await inbound(gateway, acme, NAME, "hola")
        received = await next_event(socket)
    hooks = await receiver.wait_for(2)
    for event, hook in zip((connected, received), hooks, strict=True):
        assert event["deliveryId"] == hook.delivery_id
        assert {k: v for k, v in event.items() if k not in ("cursor", "deliveryId")} == hook.json()
    assert connected["event"] == "instance.connected" and connected["instanceName"] == NAME
    assert received["event"] == "message.received" and received["data"]["text"] == "hola"
    assert _position(connected["cursor"]) < _position(received["cursor"])


def _position(cursor: str) -> tuple[int, ...]:
    return tuple(int(part) for part in cursor.split("-"))


async def test_events_filter_by_instance_and_stay_within_the_tenant_while_the_admin_sees_all(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    created = await gateway.post("/admin/tenants", json={"tenantId": "globex"}, headers=ADMIN)
    globex = {"apikey": (await created.json())["apiKey"]}
    await open_instance(gateway, acme, NAME)
    await open_instance(gateway, acme, OTHER)
    await open_instance(gateway, globex, "globex__hq__main")
    async with (
        gateway.ws_connect(f"/events?instance={OTHER}", headers=acme) as only_other,
        gateway.ws_connect("/events", headers=acme) as tenant,
        gateway.ws_connect(f"/events?apikey={ADMIN_KEY}") as admin,
    ):
        await inbound(gateway, acme, NAME, "one")
        await inbound(gateway, globex, "globex__hq__main", "two")
        await inbound(gateway, acme, OTHER, "three")
        assert [(await next_event(tenant))["data"]["text"] for _ in range(2)] == ["one", "three"]
        assert (await next_event(only_other))["data"]["text"] == "three"
        assert [(await next_event(admin))["data"]["text"] for _ in range(3)] == ["one", "two", "three"]
        await inbound(gateway, acme, NAME, "four")
        assert (await next_event(tenant))["data"]["text"] == "four"
        assert (await next_event(admin))["data"]["text"] == "four"
        # Nothing more came for the filtered one: "four" was another instance's.
        with pytest.raises(TimeoutError):
            await only_other.receive(timeout=0.3)


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/events", {}, 401),
        ("/events?apikey=not-a-key-0123456789", {}, 401),
        ("/events?since=yesterday", ADMIN, 400),
        (f"/events?instance={NAME}", {}, 401),
    ],
)
async def test_events_refuse_a_bad_key_or_cursor_before_the_upgrade(
    client: TestClient, path: str, headers: dict[str, str], status: int
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(path, headers=headers)
    assert refused.value.status == status


async def test_events_of_another_tenants_instance_are_forbidden(client: TestClient, tenant_key: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/events?instance=globex__hq__main", headers={"apikey": tenant_key})
    assert refused.value.status == 403
    response = await client.get("/events?since=x", headers={"apikey": tenant_key})
    assert response.status == 400
    assert (await response.json())["error"]["issues"][0]["path"] == ["since"]
    plain = await client.get("/events", headers={"apikey": tenant_key})
    assert plain.status == 426
    assert "WebSocket" in (await plain.json())["error"]["message"]


@pytest.fixture
def processes(tmp_path: Path, redis_url: str) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """An API process alone, and a gateway with its worker, on the same Redis."""
    env = {"GATEWAY_REDIS_URL": redis_url, "GATEWAY_ADMIN_KEY": ADMIN_KEY, "GATEWAY_SECRET_KEY": "s" * 32}
    api = ServeProcess(tmp_path / "api", "serve", **env)
    full = ServeProcess(tmp_path / "full", "serve", GATEWAY_WORKER_ID="events-worker", **env)
    yield api, full
    for process in (api, full):
        if process.process is not None:
            process.stop()


async def test_a_client_reconnecting_after_the_api_restarted_gets_every_event_it_missed_once(
    processes: tuple[ServeProcess, ServeProcess],
) -> None:
    api, full = processes
    full.start()
    api.start(extra_args=("--no-worker",))
    key = full.request("POST", "/admin/tenants", {"tenantId": "acme"}, key=ADMIN_KEY)[1]["apiKey"]
    body = {"instanceName": NAME, "webhookUrl": "https://hooks.invalid/wa", "webhookSecret": "s" * 16}
    assert full.request("POST", "/instance/create", body, key=key)[0] == 201

    def say(text: str) -> None:
        message = {"from": "5491155554444", "messageType": "conversation", "text": text}
        assert full.request("POST", f"/sandbox/instance/{NAME}/inbound", message, key=key)[0] == 201

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{api.port}/events?apikey={key}") as socket:
            assert full.request("POST", f"/sandbox/instance/{NAME}/link", {}, key=key)[0] == 200
            assert (await next_event(socket))["event"] == "instance.connected"
            say("before")
            last = await next_event(socket)
            assert last["data"]["text"] == "before"
            assert api.stop() == 0
            # The server went away: the socket closes rather than hanging.
            closing = await socket.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        for text in ("while", "the API", "was down"):
            say(text)
        api.start(extra_args=("--no-worker",))
        url = f"ws://127.0.0.1:{api.port}/events?since={last['cursor']}"
        async with session.ws_connect(url, headers={"apikey": key}) as socket:
            missed = [await next_event(socket) for _ in range(3)]
            assert [event["data"]["text"] for event in missed] == ["while", "the API", "was down"]
            say("after")
            assert (await next_event(socket))["data"]["text"] == "after"
            with pytest.raises(TimeoutError):
                await socket.receive(timeout=0.3)  # and nothing twice
    cursors = [last["cursor"], *(event["cursor"] for event in missed)]
    assert len(set(cursors)) == 4
