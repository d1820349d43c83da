"""`metadata` on every send (API.md, "Every waiting message says why; failures say what"): a JSON
object of at most 2 KB, stored, answered by GET /message/{id} and carried in every message.*
event of that message; a larger one or a non-object is a 400 naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.conftest import ADMIN, eventually
from tests.receiver import Receiver
from tests.test_deliverability import NAME, gateway_with, open_hooked, records

TO = "5491100000101"
META = {"orderId": "A-1042", "attempt": 2, "tags": ["vip", "ñandú"], "nested": {"ok": True, "none": None}}


def events_of(receiver: Receiver, message_id: str) -> dict[str, dict[str, Any]]:
    found = {}
    for event in receiver.requests:
        body = event.json()
        if body["event"].startswith("message.") and body["data"].get("messageId") == message_id:
            found[body["event"]] = body["data"]
    return found


async def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post(path, json=body, headers=client.acme)  # type: ignore[attr-defined]
    assert answer.status in (200, 202), await answer.text()
    return dict(await answer.json())


async def test_metadata_round_trips_through_the_record_and_every_event(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path)
    await open_hooked(gateway, receiver)
    queued = await post(gateway, "/message/text", {"instanceName": NAME, "to": TO, "text": "hi", "metadata": META})
    [record] = await records(gateway, [queued["id"]])
    assert record["metadata"] == META
    sent = await eventually(lambda: events_of(receiver, queued["id"]).get("message.sent"))
    assert sent["metadata"] == META
    wa_id = (await records(gateway, [queued["id"]]))[0]["waMessageId"]
    for status in ("delivered", "read"):
        receipt = {"messageIds": [wa_id], "status": status}
        assert (await gateway.post(f"/sandbox/instance/{NAME}/receipt", json=receipt, headers=ADMIN)).status == 200
    events = await eventually(lambda: found if len(found := events_of(receiver, queued["id"])) == 3 else None)
    assert {name: data["metadata"] for name, data in events.items()} == {
        "message.sent": META,
        "message.delivered": META,
        "message.read": META,
    }
    # A failed one carries it too, and so do a batch item, a routed send and an edit.
    opted = await post(gateway, "/tenant/acme/suppressions", {"numbers": ["5491100000199"]})
    assert opted["added"] == ["5491100000199"]
    batch = await post(
        gateway,
        "/message/batch",
        {
            "messages": [
                {"type": "text", "instanceName": NAME, "to": "5491100000199", "text": "x", "metadata": {"b": 1}}
            ]
        },
    )
    [item] = batch["accepted"]
    failed = await eventually(lambda: events_of(receiver, item["id"]).get("message.failed"))
    assert failed["metadata"] == {"b": 1} and failed["errorCode"] == "opted_out"
    routed = await post(
        gateway,
        "/message/route",
        {"tenantId": "acme", "clientId": "shop1", "to": TO, "type": "text", "text": "r", "metadata": {"r": 1}},
    )
    assert (await records(gateway, [routed["id"]]))[0]["metadata"] == {"r": 1}
    edit = await post(gateway, f"/message/{queued['id']}/edit", {"text": "hi again"})
    assert (await records(gateway, [edit["id"]]))[0]["metadata"] == META  # the edited message's


async def test_metadata_over_2_kb_or_not_an_object_is_a_400(gateway: TestClient, acme: dict[str, str]) -> None:
    base = {"instanceName": NAME, "to": TO, "text": "hi"}
    just_fits = {"k": "x" * (2048 - len('{"k":""}'))}
    for metadata in ({"k": "x" * 2048}, ["a"], "text", 3):
        answer = await gateway.post("/message/text", json={**base, "metadata": metadata}, headers=acme)
        assert answer.status == 400, metadata
        [issue] = (await answer.json())["error"]["issues"]
        assert issue["path"][0] == "metadata"
    answer = await gateway.post("/message/text", json={**base, "metadata": just_fits}, headers=acme)
    assert answer.status in (202, 404), await answer.text()  # accepted as a body (no such instance here)
