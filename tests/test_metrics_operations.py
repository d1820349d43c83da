"""The operator's figures beside the send counts: lateness without the deliberate "typing...",
the typing apart, HTTP requests by route and status, what WhatsApp sessions went through, and the
build; read from GET /metrics of a running gateway (API + worker + sandbox WhatsApp)."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from tests.conftest import ADMIN, eventually, make_settings, open_instance
from tests.test_metrics import scrape, value

NAME = "acme__shop1__sales"
LANES = {lane: {"gap": [0.01, 0.02]} for lane in ("urgent", "normal", "bulk")}
LANES["normal"]["typing"] = True  # type: ignore[assignment]
TEXT = "twenty characters..."  # 20 characters: 1 s of "typing..." (scheduler/typing.py's minimum)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", lanes=json.dumps(LANES))


async def test_lateness_leaves_the_typing_out_and_the_typing_is_counted_apart(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await open_instance(gateway, acme, NAME)
    body = {"instanceName": NAME, "to": "5491112345678", "text": TEXT, "lane": "normal"}
    queued = await gateway.post("/message/text", json=body, headers=acme)
    assert queued.status == 202
    message_id = (await queued.json())["id"]

    async def sent() -> bool:
        return (await (await gateway.get(f"/message/{message_id}", headers=acme)).json())["status"] == "sent"

    await eventually(sent, timeout=30)
    families = await scrape(gateway)
    assert value(families, "wa_send_typing_seconds_count", lane="normal") == 1
    assert value(families, "wa_send_typing_seconds_sum", lane="normal") == 1.0
    assert value(families, "wa_send_lateness_seconds_count", lane="normal") == 1
    # The typing (1 s) is not in the lateness: what is left is the worker's own delay.
    assert value(families, "wa_send_lateness_seconds_sum", lane="normal") < 0.9
    assert value(families, "wa_send_typing_seconds_count", lane="urgent") == 0


async def test_http_requests_are_counted_by_route_and_status(gateway: TestClient, acme: dict[str, str]) -> None:
    for _ in range(2):
        assert (await gateway.get("/health")).status == 200
    assert (await gateway.get("/instance/acme__shop1__nobody/status", headers=acme)).status == 404
    assert (await gateway.get("/no/such/route/here")).status == 404
    assert (await gateway.get("/whoami", headers={"apikey": "wrong"})).status == 401

    families = await scrape(gateway)
    requests = "wa_http_requests_total"
    assert value(families, requests, method="GET", route="/health", status="200") == 2
    assert value(families, requests, method="GET", route="/instance/{name}/status", status="404") == 1
    assert value(families, requests, method="GET", route="unmatched", status="404") == 1
    assert value(families, requests, method="GET", route="/whoami", status="401") == 1
    assert value(families, requests, method="POST", route="/admin/tenants", status="201") == 1  # acme's


async def test_disconnects_log_outs_and_bans_are_counted(gateway: TestClient, acme: dict[str, str]) -> None:
    await open_instance(gateway, acme, NAME)
    banned = await gateway.post(f"/sandbox/instance/{NAME}/ban", json={"seconds": 3600}, headers=acme)
    assert banned.status == 200
    await open_instance(gateway, acme, "acme__shop1__other")
    assert (await gateway.post("/sandbox/instance/acme__shop1__other/unlink", headers=acme)).status == 200

    async def counted() -> dict | None:
        families = await scrape(gateway)
        ban = value(families, "wa_connection_events_total", event="banned")
        out = value(families, "wa_connection_events_total", event="logged_out")
        return families if ban == 1 and out == 1 else None

    families = await eventually(counted)
    assert value(families, "wa_connection_events_total", event="qr_expired") == 0


async def test_build_info_names_the_versions(client: TestClient) -> None:
    families = await scrape(client, ADMIN)
    [sample] = families["wa_build_info"].samples
    assert sample.value == 1
    assert sample.labels["version"] == version("wa-gateway")
    assert sample.labels["neonize"] == version("neonize")
