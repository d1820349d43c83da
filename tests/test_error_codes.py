"""Failures say what (API.md, "Every waiting message says why; failures say what"): every way a
message ends unsent sets its stable `errorCode`, in the record, in message.failed and as the label
of the wa_messages_unsent metric."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from tests.conftest import ADMIN, ADMIN_KEY, eventually, instance_body
from tests.receiver import Receiver
from tests.test_deliverability import NAME, gateway_with, open_hooked, records, send_all
from tests.test_media import Server
from tests.test_media import server as server

TO = "5491100000101"


async def hooked(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver, **overrides: Any
) -> TestClient:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, **overrides)
    await open_hooked(gateway, receiver)
    return gateway


async def ended(client: TestClient, message_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        [found] = await records(client, [message_id])
        return found if found["status"] in ("failed", "cancelled", "sent") else None

    return await eventually(check)


async def failed_with(client: TestClient, receiver: Receiver, message_id: str, code: str) -> dict[str, Any]:
    """The record of a message that failed with `code`, checked in its message.failed event too."""
    found = await ended(client, message_id)
    assert (found["status"], found["errorCode"]) == ("failed", code), found
    assert found["error"]  # the human text stays beside it

    def event() -> list[dict[str, Any]]:
        return [e.json()["data"] for e in receiver.of("message.failed") if e.json()["data"]["messageId"] == message_id]

    [data] = await eventually(event)
    assert data["errorCode"] == code and data["error"] == found["error"]
    return found


async def unsent(client: TestClient) -> dict[str, float]:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    return {s.labels["code"]: s.value for s in families["wa_messages_unsent"].samples if s.name.endswith("_total")}


async def fail_next(client: TestClient, **body: Any) -> None:
    answer = await client.post(f"/sandbox/instance/{NAME}/fail-next", json={"error": "nope", **body}, headers=ADMIN)
    assert answer.status == 200, await answer.text()


async def test_opted_out(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await hooked(aiohttp_client, redis_url, tmp_path, receiver)
    added = await gateway.post("/tenant/acme/suppressions", json={"numbers": [TO]}, headers=ADMIN)
    assert added.status == 200
    [message_id] = await send_all(gateway, [{"to": TO}])
    await failed_with(gateway, receiver, message_id, "opted_out")
    assert (await unsent(gateway))["opted_out"] == 1


async def test_not_on_whatsapp(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked(aiohttp_client, redis_url, tmp_path, receiver)
    [message_id] = await send_all(gateway, [{"to": "9995551234"}])
    await failed_with(gateway, receiver, message_id, "not_on_whatsapp")
    assert (await unsent(gateway))["not_on_whatsapp"] == 1


async def test_media_unreachable_and_rejected(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver, server: Server
) -> None:
    gateway = await hooked(aiohttp_client, redis_url, tmp_path, receiver)
    ids = []
    for url in (
        "http://127.0.0.1:9/gone.png",
        server.url("/missing"),
        server.url("/fake.png"),
        server.url("/image.png"),
    ):
        body = {"instanceName": NAME, "to": TO, "imageUrl": url}
        answer = await gateway.post("/message/image", json=body, headers=gateway.acme)  # type: ignore[attr-defined]
        assert answer.status == 202, await answer.text()
        ids.append((await answer.json())["id"])
    refused, missing, not_image, image = ids
    await failed_with(gateway, receiver, refused, "media_unreachable")
    assert "404" in (await failed_with(gateway, receiver, missing, "media_unreachable"))["error"]
    await failed_with(gateway, receiver, not_image, "media_rejected")
    sent = await ended(gateway, image)
    assert (sent["status"], sent["errorCode"]) == ("sent", None)
    [event] = [e.json()["data"] for e in receiver.of("message.sent")]
    assert event["errorCode"] is None
    counts = await unsent(gateway)
    assert (counts["media_unreachable"], counts["media_rejected"]) == (2, 1)


async def test_expired(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, message_max_wait=1)
    body = {**instance_body(NAME, webhookUrl=receiver.url())}
    assert (await gateway.post("/instance/create", json=body, headers=gateway.acme)).status == 201  # type: ignore[attr-defined]
    [message_id] = await send_all(gateway, [{"to": TO}])
    [found] = await records(gateway, [message_id])
    await eventually(lambda: _older_than(found["createdAt"], 1.1), timeout=5)
    linked = await gateway.post(f"/sandbox/instance/{NAME}/link", json={}, headers=ADMIN)
    assert linked.status == 200
    await failed_with(gateway, receiver, message_id, "expired")
    assert (await unsent(gateway))["expired"] == 1


def _older_than(iso: str, seconds: float) -> bool:
    return (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds() > seconds


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("refused", "whatsapp_error"),
        ("outcome_unknown", "whatsapp_error"),
        ("unknown_chat", "invalid_recipient"),
        ("not_on_whatsapp", "not_on_whatsapp"),
    ],
)
async def test_whatsapp_refusals(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver, kind: str, code: str
) -> None:
    gateway = await hooked(aiohttp_client, redis_url, tmp_path, receiver)
    await fail_next(gateway, kind=kind)
    [message_id] = await send_all(gateway, [{"to": TO}])
    await failed_with(gateway, receiver, message_id, code)
    assert (await unsent(gateway))[code] == 1


async def test_retries_that_run_out_while_the_number_is_logged_out(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked(aiohttp_client, redis_url, tmp_path, receiver, send_retry_delays="0.05,0.05")
    await fail_next(gateway, kind="not_linked", count=3)
    [message_id] = await send_all(gateway, [{"to": TO}])
    found = await failed_with(gateway, receiver, message_id, "logged_out")
    assert found["attempts"] == 3 and found["error"].startswith("gave up after 3 attempts")


async def test_transient_failures_that_run_out_are_whatsapp_errors(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await hooked(aiohttp_client, redis_url, tmp_path, receiver, send_retry_delays="0.05")
    await fail_next(gateway, transient=True, count=2)
    [message_id] = await send_all(gateway, [{"to": TO}])
    await failed_with(gateway, receiver, message_id, "whatsapp_error")


async def test_a_flush_and_a_delete_cancel_with_cancelled_by_flush(gateway: TestClient, acme: dict[str, str]) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(NAME), headers=acme)).status == 201
    gateway.acme = acme  # type: ignore[attr-defined]
    flushed = await send_all(gateway, [{"to": TO}, {"to": TO, "lane": "bulk"}])
    answer = await gateway.delete(f"/admin/queue/{NAME}", headers=ADMIN)
    assert (await answer.json())["flushed"] == 2
    deleted = await send_all(gateway, [{"to": TO}])
    assert (await gateway.delete(f"/instance/{NAME}", headers=acme)).status == 204
    for found in await records(gateway, flushed + deleted):
        assert (found["status"], found["errorCode"]) == ("cancelled", "cancelled_by_flush")
    assert (await unsent(gateway))["cancelled_by_flush"] == 3
