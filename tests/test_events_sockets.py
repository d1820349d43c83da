"""GET /events under a hostile or careless client (issue 23): a revoked key loses its sockets, one
key cannot open more than its share, a client that reads nothing is closed, and sockets do not
use up the HTTP connection limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from gateway.state import SOCKETS
from tests.conftest import ADMIN, eventually, make_settings
from tests.http_live import live_gateway, raw_request


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", events_sockets_per_key=3, events_stall=1.0)


async def new_key(client: TestClient, tenant_id: str) -> tuple[str, str]:
    created = await client.post("/admin/tenants", json={"tenantId": tenant_id}, headers=ADMIN)
    found = await created.json()
    return found["apiKey"], found["keyId"]


async def test_revoking_a_key_closes_its_sockets(client: TestClient) -> None:
    key, key_id = await new_key(client, "acme")
    async with client.ws_connect("/events", headers={"apikey": key}) as socket:
        assert (await client.delete(f"/admin/keys/{key_id}", headers=ADMIN)).status == 204
        closed = await socket.receive(timeout=8)  # the contract: within 5 s (one 2 s read, then the check)
        assert closed.type == aiohttp.WSMsgType.CLOSE, closed
        assert closed.extra == "the API key was revoked"


async def test_one_key_opens_at_most_its_share_of_sockets(client: TestClient) -> None:
    key, _ = await new_key(client, "acme")
    other, _ = await new_key(client, "globex")
    held = [await client.ws_connect("/events", headers={"apikey": key}) for _ in range(3)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/events", headers={"apikey": key})
    assert refused.value.status == 429
    async with client.ws_connect("/events", headers={"apikey": other}):  # another key is not held up
        pass
    await held.pop().close()
    await eventually(lambda: len(client.app[SOCKETS]) == 2)
    held.append(await client.ws_connect("/events", headers={"apikey": key}))
    for socket in held:
        await socket.close()


async def test_a_client_that_reads_nothing_is_closed_while_one_that_reads_stays(client: TestClient) -> None:
    key, _ = await new_key(client, "acme")
    reading = await client.ws_connect("/events", headers={"apikey": key})
    deaf = await client.ws_connect("/events", headers={"apikey": key})
    await eventually(lambda: len(client.app[SOCKETS]) == 2)
    # The reading client answers the pings of a quiet stream (inside receive) and stays.
    waiting = asyncio.create_task(reading.receive())
    await eventually(lambda: len(client.app[SOCKETS]) == 1, timeout=20)  # the deaf one is gone
    assert not waiting.done() and not reading.closed
    waiting.cancel()
    await deaf.close()


async def test_a_cursor_redis_would_refuse_is_a_400(client: TestClient) -> None:
    key, _ = await new_key(client, "acme")
    response = await client.get("/events?since=18446744073709551616-0", headers={"apikey": key})
    assert response.status == 400
    assert (await response.json())["error"]["issues"][0]["path"] == ["since"]


async def test_sockets_do_not_count_against_the_http_connection_limit(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(redis_url, tmp_path / "data", http_max_connections=5, events_sockets_per_key=20)
    async with live_gateway(settings) as served, aiohttp.ClientSession(served.base) as http:
        sockets = [await http.ws_connect("/events", headers=ADMIN) for _ in range(20)]
        response = await raw_request(served.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert response.status == 200
        for socket in sockets:
            await socket.close()
