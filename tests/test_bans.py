"""Temporary bans (sandbox): a banned number stays closed until its latest ban is over, then
reopens by itself; asking for a QR code meanwhile is refused at once."""

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import eventually, open_instance

NAME = "acme__shop1__sales"


async def state(client: TestClient, headers: dict[str, str]) -> str:
    return (await (await client.get(f"/instance/{NAME}/status", headers=headers)).json())["state"]


async def ban(client: TestClient, headers: dict[str, str], seconds: float) -> None:
    response = await client.post(f"/sandbox/instance/{NAME}/ban", json={"seconds": seconds}, headers=headers)
    assert response.status == 200, await response.text()


async def test_a_qr_asked_for_during_a_ban_is_refused_and_the_instance_reopens_when_the_ban_ends(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await open_instance(gateway, acme)
    await ban(gateway, acme, 1.0)
    response = await gateway.get(f"/instance/{NAME}/qr", headers=acme)
    assert response.status == 409
    assert "banned" in (await response.json())["error"]["message"]
    assert await state(gateway, acme) == "close"
    body = {"instanceName": NAME, "to": "5491112345678", "text": "after the ban"}
    queued = await (await gateway.post("/message/text", json=body, headers=acme)).json()

    async def sent() -> bool:
        found = await (await gateway.get(f"/message/{queued['id']}", headers=acme)).json()
        return found["status"] == "sent"

    await eventually(sent, timeout=10)
    assert await state(gateway, acme) == "open"


async def test_a_longer_ban_arriving_during_a_short_one_keeps_the_instance_closed(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await open_instance(gateway, acme)
    await ban(gateway, acme, 0.2)
    await ban(gateway, acme, 600)

    async def reopened() -> bool:
        return await state(gateway, acme) != "close"

    with pytest.raises(AssertionError, match="not met"):
        await eventually(reopened, timeout=1.0)  # well past the end of the first ban
    response = await gateway.get(f"/instance/{NAME}/qr", headers=acme)
    assert response.status == 409
