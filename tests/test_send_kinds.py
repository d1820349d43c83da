"""Every kind of send beyond text and media, through the lanes to the sandbox: locations, contact
cards, stickers, polls, reactions, replies with mentions, group sends, edits, deletions, cancels,
and "typing..." shown within the lane gap."""

import io
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from pytest_aiohttp import AiohttpClient

from core import keys
from gateway.state import SERVICES
from scheduler.media import Media
from scheduler.outgoing import to_sticker
from tests.conftest import ADMIN_KEY, instance_body, open_instance
from tests.test_sending import NAME, finished, gateway_with, message, send, sent
from tests.test_sending_media import png

TO = "5491112345678"
GROUP = "120363025246125486@g.us"


async def post(client: TestClient, path: str, body: dict, status: int = 202) -> dict:
    response = await client.post(path, json=body, headers=client.acme)  # type: ignore[attr-defined]
    assert response.status == status, await response.text()
    return await response.json()


async def queue(client: TestClient, kind: str, **fields: object) -> dict:
    """Queue a `kind` send on the open instance and wait until it is sent; its sandbox item."""
    queued = await post(client, f"/message/{kind}", {"instanceName": NAME, **fields})
    done = await finished(client, client.acme, queued["id"])  # type: ignore[attr-defined]
    assert done["status"] == "sent", done
    [item] = [s for s in await sent(client, client.acme) if s["messageId"] == done["waMessageId"]]  # type: ignore[attr-defined]
    return item


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path) -> TestClient:
    client = await gateway_with(aiohttp_client, redis_url, tmp_path)
    await open_instance(client, client.acme)  # type: ignore[attr-defined]
    return client


@pytest.fixture
async def sticker_server() -> AsyncIterator[TestServer]:
    webp = io.BytesIO()
    Image.new("RGBA", (512, 512), (0, 0, 255, 128)).save(webp, "WEBP")
    routes = {"/cat.png": (png(), "image/png"), "/ready.webp": (webp.getvalue(), "image/webp")}

    async def serve(request: web.Request) -> web.Response:
        body, content_type = routes[request.path]
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/{path:.*}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_a_location_reaches_whatsapp_with_its_coordinates_name_and_address(client: TestClient) -> None:
    item = await queue(
        client, "location", to=TO, latitude=-34.6037, longitude=-58.3816, name="Obelisco", address="CABA"
    )
    assert item["type"] == "location" and item["to"] == TO
    assert (item["latitude"], item["longitude"], item["name"], item["address"]) == (
        -34.6037,
        -58.3816,
        "Obelisco",
        "CABA",
    )


async def test_contact_cards_reach_whatsapp_in_order(client: TestClient) -> None:
    cards = [
        {"fullName": "Ana Pérez", "phoneNumber": "5491187654321", "organization": "Acme"},
        {"fullName": "Bo", "phoneNumber": "14155550100"},
    ]
    item = await queue(client, "contact", to=TO, contacts=cards)
    assert item["type"] == "contact"
    assert item["contacts"] == [cards[0], {**cards[1], "organization": None}]


async def test_a_poll_reaches_whatsapp_with_its_options_and_choice_count(client: TestClient) -> None:
    item = await queue(client, "poll", to=TO, question="Lunch?", options=["Pizza", "Sushi", "Tacos"], selectableCount=0)
    assert (item["type"], item["question"], item["options"], item["selectableCount"]) == (
        "poll",
        "Lunch?",
        ["Pizza", "Sushi", "Tacos"],
        0,
    )


async def test_a_png_sticker_goes_out_as_webp_and_a_webp_one_as_it_is(
    client: TestClient, sticker_server: TestServer
) -> None:
    converted = await queue(client, "sticker", to=TO, stickerUrl=str(sticker_server.make_url("/cat.png")))
    kept = await queue(client, "sticker", to=TO, stickerUrl=str(sticker_server.make_url("/ready.webp")))
    assert converted["type"] == kept["type"] == "sticker"
    assert converted["mimetype"] == kept["mimetype"] == "image/webp"
    assert converted["mediaUrl"].endswith("/cat.png")


def test_a_png_becomes_a_512_square_webp_with_the_picture_centred() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 100), (255, 0, 0)).save(buffer, "PNG")
    sticker = to_sticker(Media(data=buffer.getvalue(), mimetype="image/png"))
    with Image.open(io.BytesIO(sticker.data)) as image:
        assert image.format == "WEBP" and image.size == (512, 512)
        rgba = image.convert("RGBA")
        inside, above = rgba.getpixel((256, 256)), rgba.getpixel((256, 5))
        assert isinstance(inside, tuple) and isinstance(above, tuple)
        assert inside[0] > 200 and above[3] == 0  # transparent band above


async def test_a_reply_quotes_the_whatsapp_id_of_our_message_and_carries_mentions(client: TestClient) -> None:
    first = await finished(client, client.acme, (await send(client, client.acme, text="Ready?"))["id"])  # type: ignore[attr-defined]
    reply = await queue(
        client, "text", to=TO, text="@5491187654321 yes", quotedMessageId=first["id"], mentions=["5491187654321"]
    )
    assert reply["quotedMessageId"] == first["waMessageId"]
    assert reply["mentions"] == ["5491187654321"]
    [latest] = (await (await client.get(f"/instance/{NAME}/messages?limit=1", headers=client.acme)).json())["messages"]  # type: ignore[attr-defined]
    assert latest["quotedMessageId"] == first["id"] and latest["mentions"] == ["5491187654321"]


async def test_a_reply_can_quote_a_message_received_in_a_webhook_by_its_whatsapp_id(client: TestClient) -> None:
    inbound = await post(client, f"/sandbox/instance/{NAME}/inbound", {"from": TO, "text": "hi"}, status=201)
    reply = await queue(client, "text", to=TO, text="hello", quotedMessageId=inbound["messageId"])
    assert reply["quotedMessageId"] == inbound["messageId"]


async def test_a_reaction_goes_to_the_chat_of_the_message_it_is_about(client: TestClient) -> None:
    first = await finished(client, client.acme, (await send(client, client.acme))["id"])  # type: ignore[attr-defined]
    item = await queue(client, "reaction", messageId=first["id"], emoji="👍")
    assert (item["type"], item["to"], item["emoji"], item["targetMessageId"]) == (
        "reaction",
        TO,
        "👍",
        first["waMessageId"],
    )
    removed = await queue(client, "reaction", messageId=first["waMessageId"], emoji="")
    assert removed["emoji"] == "" and removed["targetMessageId"] == first["waMessageId"]


async def test_a_group_send_goes_through_the_lanes_to_the_group(client: TestClient) -> None:
    item = await queue(client, "text", to=GROUP, text="hello all")
    assert item["to"] == GROUP and item["type"] == "text"
    dashed = await queue(client, "location", to="5491112345678-1612345678@g.us", latitude=1, longitude=2)
    assert dashed["to"] == "5491112345678-1612345678@g.us"


async def test_an_edit_and_a_delete_reach_whatsapp_about_the_sent_text(client: TestClient) -> None:
    first = await finished(client, client.acme, (await send(client, client.acme, text="Helo"))["id"])  # type: ignore[attr-defined]
    edit = await post(client, f"/message/{first['id']}/edit", {"text": "{Hello|Hello}"})
    edited = await finished(client, client.acme, edit["id"])  # type: ignore[attr-defined]
    assert edited["status"] == "sent" and edited["type"] == "edit" and edited["targetMessageId"] == first["id"]
    response = await client.delete(f"/message/{first['id']}", headers=client.acme)  # type: ignore[attr-defined]
    assert response.status == 202, await response.text()
    deletion = await finished(client, client.acme, (await response.json())["id"])  # type: ignore[attr-defined]
    assert deletion["status"] == "sent" and deletion["type"] == "delete"
    items = {s["type"]: s for s in await sent(client, client.acme)}  # type: ignore[attr-defined]
    assert items["edit"]["text"] == "Hello" and items["edit"]["targetMessageId"] == first["waMessageId"]
    assert items["delete"]["targetMessageId"] == first["waMessageId"] and items["delete"]["to"] == TO


async def test_edits_of_what_is_not_a_sent_text_are_refused(client: TestClient) -> None:
    location = await queue(client, "location", to=TO, latitude=1, longitude=2)
    [record] = (await (await client.get(f"/instance/{NAME}/messages?limit=1", headers=client.acme)).json())["messages"]  # type: ignore[attr-defined]
    assert record["waMessageId"] == location["messageId"]
    refused = await post(client, f"/message/{record['id']}/edit", {"text": "x"}, status=409)
    assert "only a text can be edited" in refused["error"]["message"]
    missing = await post(client, "/message/msg_nope/edit", {"text": "x"}, status=404)
    assert "msg_nope" in missing["error"]["message"]


async def test_a_text_older_than_15_minutes_is_too_old_to_edit(client: TestClient) -> None:
    first = await finished(client, client.acme, (await send(client, client.acme))["id"])  # type: ignore[attr-defined]
    services = client.app[SERVICES]
    long_ago = datetime.fromtimestamp(time.time() - 16 * 60).astimezone().isoformat()
    await services.redis.hset(keys.message(first["id"]), "sentAt", long_ago)
    refused = await post(client, f"/message/{first['id']}/edit", {"text": "x"}, status=409)
    assert "too old to edit" in refused["error"]["message"]


async def test_cancelling_a_waiting_message_ends_it_and_it_is_never_sent(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    client = await gateway_with(aiohttp_client, redis_url, tmp_path)
    created = await client.post("/instance/create", json=instance_body(), headers=client.acme)  # type: ignore[attr-defined]
    assert created.status == 201
    queued = await send(client, client.acme)  # type: ignore[attr-defined]
    kept = await send(client, client.acme, text="second")  # type: ignore[attr-defined]
    response = await client.delete(f"/message/{queued['id']}", headers=client.acme)  # type: ignore[attr-defined]
    assert response.status == 200, await response.text()
    cancelled = await response.json()
    assert cancelled["id"] == queued["id"] and cancelled["status"] == "cancelled" and "cancelled" in cancelled["error"]
    again = await client.delete(f"/message/{queued['id']}", headers=client.acme)  # type: ignore[attr-defined]
    assert again.status == 409 and "cancelled" in (await again.json())["error"]["message"]
    await client.post(f"/sandbox/instance/{NAME}/link", json={}, headers=client.acme)  # type: ignore[attr-defined]
    assert (await finished(client, client.acme, kept["id"]))["status"] == "sent"  # type: ignore[attr-defined]
    assert [s["text"] for s in await sent(client, client.acme)] == ["second"]  # type: ignore[attr-defined]
    assert (await message(client, client.acme, queued["id"]))["status"] == "cancelled"  # type: ignore[attr-defined]


async def test_references_to_unknown_or_unsent_messages_are_404_and_409(client: TestClient) -> None:
    missing = await post(
        client, "/message/reaction", {"instanceName": NAME, "messageId": "msg_nope", "emoji": "👍"}, 404
    )
    assert "msg_nope" in missing["error"]["message"]
    unseen = await post(
        client, "/message/text", {"instanceName": NAME, "to": TO, "text": "x", "quotedMessageId": "3EB0AAAA"}, 404
    )
    assert "3EB0AAAA" in unseen["error"]["message"]
    # Not linked: a message to another instance waits, pending.
    created = await client.post("/instance/create", json=instance_body("acme__shop1__idle"), headers=client.acme)  # type: ignore[attr-defined]
    assert created.status == 201
    waiting = await post(client, "/message/text", {"instanceName": "acme__shop1__idle", "to": TO, "text": "x"})
    early = await post(
        client,
        "/message/reaction",
        {"instanceName": "acme__shop1__idle", "messageId": waiting["id"], "emoji": "👍"},
        409,
    )
    assert "not sent yet" in early["error"]["message"]
    elsewhere = await post(
        client, "/message/reaction", {"instanceName": NAME, "messageId": waiting["id"], "emoji": "👍"}, 409
    )
    assert "acme__shop1__idle" in elsewhere["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("location", {"to": TO, "latitude": 91, "longitude": 0}, ["latitude"]),
        ("location", {"to": TO, "latitude": 0, "longitude": -181}, ["longitude"]),
        ("contact", {"to": TO, "contacts": []}, ["contacts"]),
        (
            "contact",
            {"to": TO, "contacts": [{"fullName": "A", "phoneNumber": "+54 11"}]},
            ["contacts", 0, "phoneNumber"],
        ),
        ("poll", {"to": TO, "question": "Q", "options": ["a", "a"]}, ["options"]),
        ("poll", {"to": TO, "question": "Q", "options": ["a"]}, ["options"]),
        ("poll", {"to": TO, "question": "Q", "options": ["a", "b"], "selectableCount": 3}, []),
        ("reaction", {"messageId": "msg_x", "emoji": "ok"}, ["emoji"]),
        ("sticker", {"to": TO, "stickerUrl": "ftp://x/y.webp"}, ["stickerUrl"]),
        ("text", {"to": "123@s.whatsapp.net", "text": "x"}, ["to"]),
        ("text", {"to": "abc@g.us", "text": "x"}, ["to"]),
        ("text", {"to": TO, "text": "x", "mentions": ["+5491112345678"]}, ["mentions", 0]),
    ],
)
async def test_bad_fields_are_a_400_naming_them(client: TestClient, path: str, body: dict, field: list) -> None:
    answer = await post(client, f"/message/{path}", {"instanceName": NAME, **body}, status=400)
    paths = [issue["path"] for issue in answer["error"]["issues"]]
    assert field in paths, paths


async def test_a_batch_takes_every_new_kind_and_lists_bad_items_by_index(client: TestClient) -> None:
    good: list[dict[str, Any]] = [
        {"type": "location", "instanceName": NAME, "to": TO, "latitude": 1, "longitude": 2},
        {"type": "poll", "instanceName": NAME, "to": GROUP, "question": "Q", "options": ["a", "b"]},
        {"type": "contact", "instanceName": NAME, "to": TO, "contacts": [{"fullName": "A", "phoneNumber": TO}]},
    ]
    bad = await post(
        client, "/message/batch", {"messages": [*good, {**good[0], "latitude": 100}, {**good[1], "options": []}]}, 400
    )
    assert sorted({issue["path"][1] for issue in bad["error"]["issues"]}) == [3, 4]
    accepted = (await post(client, "/message/batch", {"messages": good}))["accepted"]
    for record in accepted:
        assert (await finished(client, client.acme, record["id"]))["status"] == "sent"  # type: ignore[attr-defined]
    assert [s["type"] for s in await sent(client, client.acme)] == ["location", "poll", "contact"]  # type: ignore[attr-defined]


async def test_typing_shows_before_a_normal_text_within_the_gap_and_not_before_bulk(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    lanes = '{"urgent": {"gap": [0.01, 0.02]}, "normal": {"gap": [2, 2], "typing": true}, "bulk": {"gap": [2, 2]}}'
    client = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes)
    await open_instance(client, client.acme)  # type: ignore[attr-defined]
    first = await finished(client, client.acme, (await send(client, client.acme, text="one"))["id"])  # type: ignore[attr-defined]
    second = await finished(client, client.acme, (await send(client, client.acme, text="two"))["id"])  # type: ignore[attr-defined]
    bulk = await finished(client, client.acme, (await send(client, client.acme, text="three", lane="bulk"))["id"])  # type: ignore[attr-defined]
    untyped = await finished(client, client.acme, (await send(client, client.acme, text="four", typing=False))["id"])  # type: ignore[attr-defined]
    items = await sent(client, client.acme)  # type: ignore[attr-defined]
    assert [item["typingMs"] for item in items] == [1000, 1000, None, None]
    assert second["typingMs"] == 1000 and bulk["typingMs"] == 0 and untyped["typingMs"] == 0

    def at(record: dict) -> float:
        return datetime.fromisoformat(record["sentAt"]).timestamp()

    # The second send keeps the 2 s gap after the first, and its second of typing comes out of it.
    gap = at(second) - at(first)
    assert 2.0 <= gap < 2.8, gap
    assert at(bulk) - at(second) >= 2.0 and at(untyped) - at(bulk) >= 2.0


async def test_a_reaction_to_a_group_message_received_goes_to_the_group(client: TestClient) -> None:
    inbound = await post(
        client, f"/sandbox/instance/{NAME}/inbound", {"from": TO, "chatId": GROUP, "text": "hi all"}, status=201
    )
    item = await queue(client, "reaction", messageId=inbound["messageId"], emoji="🎉")
    assert (item["to"], item["targetMessageId"]) == (GROUP, inbound["messageId"])
    reply = await post(
        client,
        "/message/text",
        {"instanceName": NAME, "to": TO, "text": "x", "quotedMessageId": inbound["messageId"]},
        409,
    )
    assert GROUP in reply["error"]["message"]


async def test_a_client_route_takes_the_new_kinds(client: TestClient) -> None:
    body = {"tenantId": "acme", "clientId": "shop1", "type": "poll", "to": TO, "question": "Q", "options": ["a", "b"]}
    queued = await post(client, "/message/route", body)
    assert queued["instanceName"] == NAME
    assert (await finished(client, client.acme, queued["id"]))["poll"]["options"] == ["a", "b"]  # type: ignore[attr-defined]


async def test_the_first_contact_rule_holds_people_back_but_not_groups(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    lanes = json.dumps({"normal": {"gap": [0.02, 0.04], "firstContactPerDay": 0}})
    client = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes)
    await open_instance(client, client.acme, settings={"deliverability": "cautious"})  # type: ignore[attr-defined]
    person = await send(client, client.acme)  # type: ignore[attr-defined]
    group = await post(client, "/message/text", {"instanceName": NAME, "to": GROUP, "text": "hello all"})
    assert (await finished(client, client.acme, group["id"]))["status"] == "sent"  # type: ignore[attr-defined]
    assert (await message(client, client.acme, person["id"]))["status"] == "pending"  # type: ignore[attr-defined]
    assert [item["to"] for item in await sent(client, client.acme)] == [GROUP]  # type: ignore[attr-defined]


async def test_a_reference_is_looked_up_only_for_a_caller_with_access(client: TestClient) -> None:
    """A quote or a reaction's target says nothing about another tenant's messages: a bad key is a
    401 and another tenant's key a 403, before any lookup."""
    queued = await post(client, "/message/text", {"instanceName": NAME, "to": TO, "text": "hello"})
    other = await client.post("/admin/tenants", json={"tenantId": "globex"}, headers={"apikey": ADMIN_KEY})
    globex = {"apikey": (await other.json())["apiKey"]}
    reaction = {"instanceName": NAME, "messageId": queued["id"], "emoji": "👍"}
    quote = {"instanceName": NAME, "to": TO, "text": "x", "quotedMessageId": "msg_nope"}
    for body, path in ((reaction, "/message/reaction"), (quote, "/message/text")):
        for headers, status, code in (
            ({"apikey": "no-such-key"}, 401, "invalid_api_key"),
            (globex, 403, "forbidden_tenant"),
        ):
            response = await client.post(path, json=body, headers=headers)
            assert response.status == status, await response.text()
            assert (await response.json())["error"]["code"] == code
