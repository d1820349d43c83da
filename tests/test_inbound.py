"""Inbound, end to end: a contact's messages injected through the sandbox arrive at a real local
webhook receiver with the documented fields; inbound media is kept and served at /media/{id}."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from core.media_store import FileMediaStore, MediaLinks
from scheduler.drivers.base import Connected, MessageReceived
from scheduler.worker import GatewayWorker
from tests.conftest import ADMIN, instance_body, make_settings
from tests.receiver import Receiver
from tests.test_media import make_image, make_wav

NAME = "acme__shop1__sales"
CONTACT = "5491155554444"
GROUP = "120363025246125486@g.us"
LID = "123456789012345"
PUBLIC_URL = "https://gateway.example.com"
PNG = make_image("PNG")

RECEIVED_FIELDS = {
    "from", "fromLid", "chatId", "isGroup", "participant", "pushName", "messageId", "messageType", "text",
    "caption", "quotedMessageId", "mentions", "media", "location", "contacts", "poll", "rawType", "timestamp",
}  # fmt: skip


@pytest.fixture
def settings(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Settings:
    overrides = getattr(request, "param", {})
    return make_settings(
        redis_url, tmp_path / "data", **{"webhook_retry_delays": (0.05,), "public_url": PUBLIC_URL, **overrides}
    )


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A media server on 127.0.0.1 standing in for WhatsApp's: /voice.wav, anything else 404."""
    app = web.Application()
    voice = make_wav(0.5)

    async def serve_voice(request: web.Request) -> web.Response:
        return web.Response(body=voice, content_type="audio/wav")

    app.router.add_get("/voice.wav", serve_voice)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def inbound(gateway: TestClient, acme: dict[str, str], body: dict[str, Any]) -> str:
    response = await gateway.post(f"/sandbox/instance/{NAME}/inbound", json=body, headers=acme)
    assert response.status == 201, await response.text()
    return str((await response.json())["messageId"])


async def next_event(receiver: Receiver, event: str) -> dict[str, Any]:
    """The data of the first `event` delivered after instance.connected."""
    await receiver.wait_for(2)
    request = receiver.requests[1]
    assert request.headers["x-gateway-event"] == event, request.json()
    envelope = request.json()
    assert envelope["event"] == event and envelope["instanceName"] == NAME
    return dict(envelope["data"])


def local(url: str) -> str:
    """A media link as the test client requests it: its path and query on the gateway."""
    assert url.startswith(f"{PUBLIC_URL}/media/")
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_text_reply_with_mentions_carries_every_documented_field(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    body = {
        "from": CONTACT, "pushName": "Ana", "text": "@5491100000001 yes", "quotedMessageId": "3EB0QUOTED",
        "mentions": ["5491100000001"],
    }  # fmt: skip
    message_id = await inbound(gateway, acme, body)
    data = await next_event(receiver, "message.received")
    assert set(data) == RECEIVED_FIELDS
    assert data == {
        "from": CONTACT, "fromLid": None, "chatId": CONTACT, "isGroup": False, "participant": None,
        "pushName": "Ana", "messageId": message_id, "messageType": "conversation", "text": "@5491100000001 yes",
        "caption": None, "quotedMessageId": "3EB0QUOTED", "mentions": ["5491100000001"], "media": None,
        "location": None, "contacts": None, "poll": None, "rawType": None, "timestamp": data["timestamp"],
    }  # fmt: skip
    assert abs(datetime.fromisoformat(data["timestamp"]) - datetime.now(UTC)).total_seconds() < 10


async def test_group_message_names_the_group_and_its_participant(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    await inbound(gateway, acme, {"from": CONTACT, "chatId": GROUP, "text": "hi all"})
    data = await next_event(receiver, "message.received")
    assert (data["chatId"], data["isGroup"], data["participant"], data["from"]) == (GROUP, True, CONTACT, CONTACT)


async def test_sender_known_only_by_lid_has_from_null_until_the_lid_store_knows_the_number(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    await inbound(gateway, acme, {"fromLid": LID, "text": "who am I?"})
    await inbound(gateway, acme, {"from": CONTACT, "fromLid": LID, "text": "my number, once"})
    await inbound(gateway, acme, {"fromLid": LID, "text": "known now"})
    await receiver.wait_for(4)
    unknown, learnt, resolved = (r.json()["data"] for r in receiver.of("message.received"))
    assert (unknown["from"], unknown["fromLid"], unknown["chatId"]) == (None, LID, f"{LID}@lid")
    assert (learnt["from"], learnt["fromLid"]) == (CONTACT, LID)
    assert (resolved["from"], resolved["fromLid"], resolved["chatId"]) == (CONTACT, LID, CONTACT)


async def test_image_is_kept_and_its_signed_link_serves_the_same_bytes_without_a_key(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    # The declared type is wrong: the bytes decide, as for outgoing media.
    body = {"from": CONTACT, "caption": "look", "mediaBase64": base64.b64encode(PNG).decode(), "mimetype": "image/jpeg"}
    await inbound(gateway, acme, body)
    data = await next_event(receiver, "message.received")
    assert (data["messageType"], data["caption"], data["text"]) == ("imageMessage", "look", None)
    media = data["media"]
    assert media["id"].startswith("med_") and media["error"] is None
    assert (media["mimetype"], media["size"], media["fileName"], media["seconds"]) == (
        "image/png",
        len(PNG),
        None,
        None,
    )

    response = await gateway.get(local(media["url"]))  # no apikey: the signature is the credential
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "image/png"
    assert await response.read() == PNG

    with_key = await gateway.get(f"/media/{media['id']}", headers=acme)
    assert with_key.status == 200 and await with_key.read() == PNG


async def test_media_is_refused_to_another_tenant_without_a_key_and_with_a_forged_or_expired_link(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, settings: Settings
) -> None:
    await inbound(gateway, acme, {"from": CONTACT, "mediaBase64": base64.b64encode(PNG).decode()})
    media_id = (await next_event(receiver, "message.received"))["media"]["id"]
    created = await gateway.post("/admin/tenants", json={"tenantId": "globex"}, headers=ADMIN)
    globex = {"apikey": (await created.json())["apiKey"]}

    other_tenant = await gateway.get(f"/media/{media_id}", headers=globex)
    assert other_tenant.status == 403
    assert (await other_tenant.json())["error"]["code"] == "forbidden_tenant"
    assert (await gateway.get(f"/media/{media_id}")).status == 401

    assert settings.secret_key is not None
    links = MediaLinks(settings.secret_key.get_secret_value(), PUBLIC_URL)
    expired = await gateway.get(local(links.url(media_id, int(time.time()) - 1)))
    assert expired.status == 403
    assert "expired" in (await expired.json())["error"]["message"]
    forged = MediaLinks("another-secret-key-0123456789", PUBLIC_URL).url(media_id, int(time.time()) + 3600)
    refused = await gateway.get(local(forged))
    assert refused.status == 403
    assert "signature" in (await refused.json())["error"]["message"]
    # A superscript digit and a number of 4,400 digits are no expiry (400); a non-ASCII signature
    # matches none (403).
    for odd, status in (
        ("exp=%C2%B2&sig=00", 400),
        ("exp=" + "9" * 4400 + "&sig=00", 400),
        ("exp=4102444800&sig=%C3%A9", 403),
    ):
        assert (await gateway.get(f"/media/{media_id}?{odd}")).status == status, odd
    # A good signature for one media id opens no other.
    other_id = await gateway.get(local(links.url("med_000000000000000000000000", int(time.time()) + 60)))
    assert other_id.status == 404


async def test_voice_note_by_url_is_downloaded_on_arrival_and_document_keeps_its_name(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, files: str
) -> None:
    await inbound(gateway, acme, {"from": CONTACT, "mediaUrl": f"{files}/voice.wav", "mimetype": "audio/wav"})
    pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
    document = {"from": CONTACT, "mediaBase64": base64.b64encode(pdf).decode(), "fileName": "invoice 7.pdf",
                "mimetype": "application/pdf", "caption": "your invoice"}  # fmt: skip
    await inbound(gateway, acme, document)
    await receiver.wait_for(3)
    voice, invoice = (r.json()["data"] for r in receiver.of("message.received"))
    assert voice["messageType"] == "audioMessage" and voice["media"]["mimetype"].startswith("audio/")
    served = await gateway.get(local(voice["media"]["url"]))
    assert await served.read() == make_wav(0.5)

    assert (invoice["messageType"], invoice["caption"]) == ("documentMessage", "your invoice")
    assert (invoice["media"]["mimetype"], invoice["media"]["fileName"]) == ("application/pdf", "invoice 7.pdf")
    served = await gateway.get(local(invoice["media"]["url"]))
    assert served.headers["Content-Type"] == "application/pdf"
    assert served.headers["Content-Disposition"] == "attachment; filename*=UTF-8''invoice%207.pdf"
    assert await served.read() == pdf


async def test_failed_download_still_delivers_the_message_with_media_error(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, files: str
) -> None:
    body = {"from": CONTACT, "mediaUrl": f"{files}/gone.jpg", "mimetype": "image/jpeg", "caption": "see"}
    await inbound(gateway, acme, body)
    data = await next_event(receiver, "message.received")
    assert (data["messageType"], data["caption"]) == ("imageMessage", "see")
    assert data["media"]["id"] is None and data["media"]["url"] is None
    assert data["media"]["error"] == "download failed: the media server answered 404"


@pytest.mark.parametrize("settings", [{"media_max_bytes": 100}], indirect=True, ids=["cap=100B"])
async def test_media_over_the_cap_is_not_kept_and_says_why(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str, files: str
) -> None:
    await inbound(gateway, acme, {"from": CONTACT, "mediaUrl": f"{files}/voice.wav", "mimetype": "audio/wav"})
    data = await next_event(receiver, "message.received")
    assert data["media"]["id"] is None
    assert data["media"]["error"] == "download failed: over the 100-byte media limit"


async def test_location_contacts_and_sticker_arrive_with_their_objects(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    place = {"latitude": -34.6037, "longitude": -58.3816, "name": "Obelisco", "address": "Av. 9 de Julio"}
    await inbound(gateway, acme, {"from": CONTACT, "location": place})
    card = {"fullName": "Bea Diaz", "phoneNumber": "5491166667777", "organization": "Globex"}
    await inbound(gateway, acme, {"from": CONTACT, "contacts": [card]})
    webp = make_image("WEBP")
    await inbound(gateway, acme, {"from": CONTACT, "messageType": "stickerMessage",
                                  "mediaBase64": base64.b64encode(webp).decode()})  # fmt: skip
    await receiver.wait_for(4)
    location, contacts, sticker = (r.json()["data"] for r in receiver.of("message.received"))
    assert (location["messageType"], location["location"]) == ("locationMessage", place)
    assert (contacts["messageType"], contacts["contacts"]) == ("contactMessage", [card])
    assert (sticker["messageType"], sticker["media"]["mimetype"]) == ("stickerMessage", "image/webp")


async def test_poll_then_a_vote_names_the_chosen_options(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    poll = {"question": "Color?", "options": ["Red", "Blue", "Green"], "selectableCount": 2}
    poll_id = await inbound(gateway, acme, {"from": CONTACT, "poll": poll})
    vote_id = await inbound(gateway, acme, {"from": CONTACT, "pollVote": {"messageId": poll_id, "options": ["Blue"]}})
    blind = await inbound(gateway, acme, {"from": CONTACT, "pollVote": {"messageId": "3EB0UNKNOWN", "options": ["X"]}})
    await receiver.wait_for(4)
    [created] = receiver.of("message.received")
    assert (created.json()["data"]["messageType"], created.json()["data"]["poll"]) == ("pollCreationMessage", poll)
    vote, unknown = (r.json()["data"] for r in receiver.of("message.poll_vote"))
    assert (vote["messageId"], vote["voteId"], vote["selectedOptions"], vote["from"]) == (
        poll_id, vote_id, ["Blue"], CONTACT,
    )  # fmt: skip
    assert (unknown["voteId"], unknown["selectedOptions"], len(unknown["optionHashes"])) == (blind, None, 1)


async def test_reaction_edit_and_delete_are_their_own_events(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    target = "3EB0OURS0001"
    await inbound(gateway, acme, {"from": CONTACT, "reaction": {"messageId": target, "emoji": "👍"}})
    await inbound(gateway, acme, {"from": CONTACT, "chatId": GROUP, "edit": {"messageId": target, "text": "fixed"}})
    await inbound(gateway, acme, {"from": CONTACT, "delete": {"messageId": target}})
    await receiver.wait_for(4)
    events = [(r.json()["event"], r.json()["data"]) for r in receiver.requests[1:]]
    assert [event for event, _ in events] == ["message.reaction", "message.edited", "message.deleted"]
    (_, reaction), (_, edit), (_, delete) = events
    assert (reaction["messageId"], reaction["from"], reaction["emoji"]) == (target, CONTACT, "👍")
    assert (edit["messageId"], edit["text"], edit["chatId"], edit["participant"]) == (target, "fixed", GROUP, CONTACT)
    assert (delete["messageId"], delete["from"]) == (target, CONTACT)


async def test_unsupported_kind_arrives_with_its_raw_type(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    await inbound(gateway, acme, {"from": CONTACT, "messageType": "unsupported", "rawType": "groupInviteMessage"})
    data = await next_event(receiver, "message.received")
    assert (data["messageType"], data["rawType"], data["text"]) == ("unsupported", "groupInviteMessage", None)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"text": "hi"}, "from (a phone number) or fromLid (a LID) is required"),
        ({"from": CONTACT, "chatId": "12345@s.whatsapp.net", "text": "hi"}, "must be a group id"),
        ({"from": CONTACT, "mediaBase64": "not base64!"}, "mediaBase64 is not valid base64"),
        (
            {"from": CONTACT, "delete": {"messageId": "a"}, "edit": {"messageId": "a", "text": "b"}},
            "not edit and delete",
        ),
        (
            {"from": CONTACT, "messageType": "locationMessage"},
            "location is required when messageType is locationMessage",
        ),
        ({"fromLid": "12ab", "text": "hi"}, "must be a LID"),
    ],
    ids=["no-sender", "bad-group", "bad-base64", "two-actions", "no-location", "bad-lid"],
)
async def test_bad_inbound_bodies_are_400_naming_the_problem(
    gateway: TestClient, acme: dict[str, str], hooked: str, body: dict[str, Any], problem: str
) -> None:
    response = await gateway.post(f"/sandbox/instance/{NAME}/inbound", json=body, headers=acme)
    assert response.status == 400
    issues = (await response.json())["error"]["issues"]
    assert any(problem in issue["message"] for issue in issues), issues


async def test_inbound_to_an_instance_that_is_not_open_is_a_409(gateway: TestClient, acme: dict[str, str]) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    response = await gateway.post(
        f"/sandbox/instance/{NAME}/inbound", json={"from": CONTACT, "text": "hi"}, headers=acme
    )
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "invalid_state"


async def test_messages_that_arrive_before_the_connection_is_announced_follow_instance_connected(
    client: TestClient, tenant_key: str, worker: GatewayWorker, receiver: Receiver
) -> None:
    acme = {"apikey": tenant_key}
    assert (
        await client.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
    ).status == 201
    early = MessageReceived(
        message_id="3AEARLY00001",
        sender=CONTACT,
        message_type="conversation",
        text="first",
        timestamp=datetime.now(UTC),
    )
    await worker.host.on_event(NAME, early)  # WhatsApp's offline queue can beat the Connected event
    await worker.host.on_event(NAME, Connected(phone_number="5491100000000"))
    connected, message = await receiver.wait_for(2)
    assert connected.headers["x-gateway-event"] == "instance.connected"
    assert message.headers["x-gateway-event"] == "message.received"
    assert message.json()["data"]["messageId"] == "3AEARLY00001"


async def test_file_store_sweep_deletes_only_media_past_retention(tmp_path: Path) -> None:
    store = FileMediaStore(tmp_path / "media")
    await store.put(NAME, "med_old", b"old")
    await store.put(NAME, "med_new", b"new")
    old = store._path(NAME, "med_old")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert await store.sweep(datetime.fromtimestamp(time.time() - 60, UTC)) == 1
    assert await store.get(NAME, "med_old") is None
    assert await store.get(NAME, "med_new") == b"new"
    for instance, media_id in ((NAME, "../../etc/passwd"), ("..", "med_new")):
        with pytest.raises(ValueError):
            store._path(instance, media_id)


async def test_deleting_the_instance_deletes_its_media(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    await inbound(gateway, acme, {"from": CONTACT, "mediaBase64": base64.b64encode(PNG).decode()})
    url = (await next_event(receiver, "message.received"))["media"]["url"]
    assert (await gateway.get(local(url))).status == 200
    assert (await gateway.delete(f"/instance/{NAME}", headers=acme)).status == 204
    gone = await gateway.get(local(url))
    assert gone.status == 404
    assert "no longer stored" in (await gone.json())["error"]["message"]


async def test_openapi_documents_each_inbound_event_and_the_media_route(client: TestClient) -> None:
    spec = await (await client.get("/openapi.json")).json()
    assert {"message.received", "message.reaction", "message.edited", "message.deleted", "message.poll_vote"} <= set(
        spec["webhooks"]
    )
    envelope = spec["webhooks"]["message.received"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ref = envelope["properties"]["data"]["$ref"]
    assert set(spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]) == RECEIVED_FIELDS
    media = spec["paths"]["/media/{id}"]["get"]
    assert {p["name"] for p in media["parameters"]} == {"id", "exp", "sig"}
    assert media["security"] == [{"apikey": []}, {}]
    inbound_body = spec["paths"]["/sandbox/instance/{name}/inbound"]["post"]["requestBody"]
    schema = spec["components"]["schemas"][
        inbound_body["content"]["application/json"]["schema"]["$ref"].rsplit("/")[-1]
    ]
    assert {"fromLid", "chatId", "mediaBase64", "mediaUrl", "reaction", "edit", "delete", "pollVote"} <= set(
        schema["properties"]
    )


async def test_an_event_whose_publication_failed_is_not_taken_for_a_duplicate_when_retried(
    client: TestClient, tenant_key: str, worker: GatewayWorker, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = {"apikey": tenant_key}
    created = await client.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
    assert created.status == 201
    await worker.host.on_event(NAME, Connected(phone_number="5491100000000"))
    message = MessageReceived(
        message_id="3ARETRIED0001",
        sender=CONTACT,
        message_type="conversation",
        text="again",
        timestamp=datetime.now(UTC),
    )

    async def outage(*args: Any) -> str:
        raise ConnectionError("Redis went away")

    with monkeypatch.context() as patch:
        patch.setattr(worker.host.inbound.outbox, "publish", outage)
        with pytest.raises(ConnectionError):
            await worker.host.inbound.publish(NAME, message)
    await worker.host.inbound.publish(NAME, message)
    _, delivered = await receiver.wait_for(2)
    assert delivered.json()["data"]["messageId"] == "3ARETRIED0001"
