"""Every event the gateway publishes is the record scheduler/events.py names for it. A sandbox
number goes through linking, sends (to a number, to a group, failing, to an opted-out contact),
receipts, an opt-out, a pause and its lifting, a ban and its end, an unlink, and a dropped
connection and a permanent ban (fed to its session host as WhatsApp reports them); another
number's QR expires. Every webhook that arrives must be its event's record field for field: the
keys the record writes and no others, null where it writes null, left out where it leaves out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from scheduler.drivers.base import Banned, Connected, Disconnected
from scheduler.drivers.sandbox import SandboxDriver
from scheduler.events import EVENTS
from scheduler.worker import GatewayWorker
from tests.conftest import ADMIN, eventually, instance_body, make_settings
from tests.receiver import Receiver

NAME = "acme__shop1__sales"
UNSCANNED = "acme__shop1__late"  # never linked: its QR expires
CONTACT, STOPPER, STOPPER_LID = "5491155550001", "5491155550002", "200000000000002"
GROUP = "120363025246125486@g.us"
# Two failures in a row pause bulk (lifted by the admin); a ban's pause outlasts it by a moment.
THROTTLE = {"window": 2, "failures": 1.0, "pause": 600, "afterBan": 0.3}
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def hosted(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Client, GatewayWorker]]:
    """The API with its worker in the process, as `wa-gateway serve` runs them, and a hand on the worker."""
    settings = make_settings(redis_url, tmp_path / "data", throttle=json.dumps(THROTTLE), rate_limit=1_000_000)
    worker = GatewayWorker(settings)

    async def running(app: web.Application) -> AsyncIterator[None]:
        await worker.start()
        yield
        await worker.stop()

    app = create_app(settings)
    app.cleanup_ctx.append(running)
    yield await aiohttp_client(app), worker


async def call(client: Client, method: str, path: str, body: object = None, **headers: str) -> Any:
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status < 300, f"{method} {path}: {response.status} {await response.text()}"
    return await response.json() if response.status != 204 else None


def events(receiver: Receiver, event: str) -> list[dict[str, Any]]:
    return [request.json() for request in receiver.of(event)]


async def send(client: Client, key: str, to: str, **body: object) -> str:
    queued = await call(
        client, "POST", "/message/text", {"instanceName": NAME, "to": to, "text": "hi", **body}, apikey=key
    )
    return str(queued["id"])


async def test_every_published_event_is_its_record_field_for_field(
    hosted: tuple[Client, GatewayWorker], receiver: Receiver
) -> None:
    client, worker = hosted
    key = (await call(client, "POST", "/admin/tenants", {"tenantId": "acme"}, **ADMIN))["apiKey"]
    await call(client, "POST", "/instance/create", instance_body(NAME, webhookUrl=receiver.url()), apikey=key)

    async def first_qr_out() -> bool:
        instance = await worker.services.instances.find(NAME)
        return instance is not None and instance.qr is not None

    await eventually(first_qr_out)
    await call(client, "POST", f"/sandbox/instance/{NAME}/link", {"phoneNumber": "5491100000000"}, apikey=key)
    await eventually(lambda: events(receiver, "instance.connected"))

    # Sends: one resolved to an account, one to a group (no account), two refused (a pause).
    to_contact = await send(client, key, CONTACT, metadata={"order": 7})
    await send(client, key, GROUP)
    both = await eventually(lambda: found if len(found := events(receiver, "message.sent")) == 2 else None)
    wa_id = next(e["data"]["waMessageId"] for e in both if e["data"]["messageId"] == to_contact)
    for status in ("delivered", "read"):
        ack = {"messageIds": [wa_id], "status": status}
        await call(client, "POST", f"/sandbox/instance/{NAME}/receipt", ack, apikey=key)
        await eventually(lambda status=status: events(receiver, f"message.{status}"))
    await call(client, "POST", f"/sandbox/instance/{NAME}/fail-next", {"error": "refused", "count": 2}, apikey=key)
    for _ in range(2):
        await send(client, key, CONTACT)
    await eventually(lambda: events(receiver, "instance.throttled"))
    await call(client, "DELETE", f"/admin/instances/{NAME}/throttle", **ADMIN)

    # An opt-out, then a send to that contact, which ends unsent.
    stop = {"from": STOPPER, "fromLid": STOPPER_LID, "text": "stop"}
    await call(client, "POST", f"/sandbox/instance/{NAME}/inbound", stop, apikey=key)
    await eventually(lambda: events(receiver, "contact.opted_out"))
    await send(client, key, STOPPER)
    await call(client, "POST", f"/instance/{NAME}/webhooks/test", apikey=key)

    # A ban and its end (connected again, then bulk resumes by itself); the connection dropping,
    # the phone unlinking, a permanent ban.
    await call(client, "POST", f"/sandbox/instance/{NAME}/ban", {"seconds": 0.3}, apikey=key)
    await eventually(lambda: len(events(receiver, "instance.connected")) == 2)
    await eventually(lambda: len(events(receiver, "instance.unthrottled")) == 2)
    await worker.host.on_event(NAME, Disconnected(reason="stream replaced"))
    await worker.host.on_event(NAME, Connected(phone_number="5491100000000"))
    await call(client, "POST", f"/sandbox/instance/{NAME}/unlink", apikey=key)
    await worker.host.on_event(NAME, Banned(reason="permanent ban", expires_at=None))

    # Linking that nobody finishes.
    assert isinstance(worker.driver, SandboxDriver)
    worker.driver.qr_schedule = (0.1,)
    await call(client, "POST", "/instance/create", instance_body(UNSCANNED, webhookUrl=receiver.url()), apikey=key)
    await eventually(lambda: events(receiver, "instance.qr_expired"))
    last = {"message.failed": 3, "instance.disconnected": 3, "instance.banned": 2}
    await eventually(lambda: all(len(events(receiver, event)) == count for event, count in last.items()))

    received = [request.json() for request in receiver.requests]
    assert {e["event"] for e in received} == set(EVENTS) - {
        "message.reaction", "message.edited", "message.deleted", "message.poll_vote", "history.synced",
        "call.received", "call.rejected", "group.participants", "group.updated",
    }  # fmt: skip
    for envelope in received:
        record = EVENTS[envelope["event"]]
        as_published = envelope["data"]
        assert record.model_validate(as_published).model_dump(mode="json", by_alias=True) == as_published, envelope

    # What the records say about absent and null fields, seen on the wire.
    recipients = {e["data"]["to"]: e["data"].get("recipient", "absent") for e in events(receiver, "message.sent")}
    assert recipients == {
        CONTACT: {"number": CONTACT, "lid": None, "jid": f"{CONTACT}@s.whatsapp.net"},
        GROUP: "absent",
    }
    assert [e["data"]["errorCode"] for e in events(receiver, "message.failed")] == ["whatsapp_error"] * 2 + [
        "opted_out"
    ]
    for status in ("delivered", "read"):
        [receipt] = events(receiver, f"message.{status}")
        assert (receipt["data"]["messageId"], receipt["data"]["metadata"]) == (to_contact, {"order": 7})
    assert [e["data"]["reason"] for e in events(receiver, "instance.throttled")] == ["failure_rate", "banned"]
    temporary, permanent = (e["data"] for e in events(receiver, "instance.banned"))
    assert temporary["expiresAt"] is not None and permanent == {"reason": "permanent ban", "expiresAt": None}
    gone = [(e["data"]["reason"], e["data"]["loggedOut"]) for e in events(receiver, "instance.disconnected")]
    assert gone == [("banned", False), ("connection_lost", False), ("logged_out", True)]
    assert [e["data"] for e in events(receiver, "instance.unthrottled")] == [
        {"reason": "failure_rate", "by": "admin"},
        {"reason": "banned", "by": "expiry"},
    ]
    [opted_out] = events(receiver, "contact.opted_out")
    assert opted_out["data"] == {"number": STOPPER, "lid": STOPPER_LID, "keyword": "STOP"}
    [expired] = events(receiver, "instance.qr_expired")
    assert (expired["instanceName"], expired["data"]) == (UNSCANNED, {})
