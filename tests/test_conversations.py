"""The conversation store, on both backends (Redis, PostgreSQL) through one interface: messages in
order, cursors that walk every message once while new ones arrive, changes applied to stored
messages, chats with their last message and unread count, isolation, deletion, retention.

PostgreSQL tests skip (saying why) only when no server answers at WA_GATEWAY_TEST_POSTGRES_URL
(default: 127.0.0.1:5432, database `test`); each test gets a schema of its own, dropped after."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from config import Settings, SettingsError, load_settings
from core.clock import iso_from_ms, now_ms
from core.conversations import (
    ChatMessage,
    ConversationStore,
    Deleted,
    Edited,
    Entry,
    Reacted,
    RedisConversations,
    StatusMoved,
)
from core.redis_client import connect
from scheduler.drivers.base import HistoryChat, HistoryMessage
from scheduler.history import history_entry
from scheduler.services import conversation_store
from tests.conftest import ADMIN, eventually, make_settings, open_instance
from tests.receiver import Receiver
from wa_gateway_client import AsyncClient, Client

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
A, B = "acme__shop1__sales", "acme__shop1__other"
ANA, BEN = "5491112345678", "5491187654321"
GROUP = "120363000000000001@g.us"


def pg_url() -> str:
    return os.environ.get("WA_GATEWAY_TEST_POSTGRES_URL", PG_URL)


async def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        conn = await psycopg.AsyncConnection.connect(pg_url(), connect_timeout=3)
    except psycopg.OperationalError as exc:
        return f"no PostgreSQL at {pg_url()}: {str(exc).strip()}"
    await conn.close()
    return None


@pytest.fixture(params=["redis", "postgres"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[ConversationStore]:
    if request.param == "redis":
        redis = connect(redis_url)
        yield RedisConversations(redis, retention_days=30, max_per_chat=1000)
        await redis.aclose()
        return
    if (why := await postgres_reachable()) is not None:
        pytest.skip(why)
    from core.conversations_pg import PgConversations

    pg = PgConversations(pg_url(), retention_days=30, schema=f"test_conv_{uuid.uuid4().hex[:12]}")
    yield pg
    await pg.drop_schema()
    await pg.close()


def message(message_id: str, at_ms: int, direction: str = "in", **fields: Any) -> ChatMessage:
    sender = None if direction == "out" else fields.pop("sender", ANA)
    values = {"message_id": message_id, "direction": direction, "sender": sender, "type": "conversation"}
    values |= {"status": "received" if direction == "in" else "sent", "timestamp": iso_from_ms(at_ms)}
    return ChatMessage.model_validate(values | fields)


def entry(message_id: str, at_ms: int, chat: str = ANA, direction: str = "in", **fields: Any) -> Entry:
    unread = "in" if direction == "in" else "out"
    is_group = chat.endswith("@g.us")
    return Entry(chat, is_group, message(message_id, at_ms, direction, **fields), at_ms, unread=unread)  # type: ignore[arg-type]


async def walk(store: ConversationStore, name: str, chat: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.messages(name, chat, limit, cursor)
        seen += [item["messageId"] for item in page.items]
        if page.next is None:
            return seen
        cursor = page.next


async def test_inbound_and_outbound_land_in_order_newest_first(store: ConversationStore) -> None:
    start = now_ms() - 60_000
    added = await store.add(A, [entry("in1", start, text="hi"), entry("out1", start + 1000, direction="out")])
    added += await store.add(A, [entry("in2", start + 2000, text="still there?")])
    assert added == 3
    page = await store.messages(A, ANA, 50, None)
    assert [(m["messageId"], m["direction"]) for m in page.items] == [("in2", "in"), ("out1", "out"), ("in1", "in")]
    assert page.next is None
    assert page.items[0]["text"] == "still there?"
    assert page.items[0]["from"] == ANA and page.items[1]["from"] is None


async def test_a_message_is_stored_once_whatever_arrives_twice(store: ConversationStore) -> None:
    at = now_ms() - 1000
    assert await store.add(A, [entry("dup", at, text="first")]) == 1
    assert await store.add(A, [entry("dup", at, text="again")]) == 0
    items = (await store.messages(A, ANA, 50, None)).items
    assert [(m["messageId"], m["text"]) for m in items] == [("dup", "first")]
    chat = (await store.chats(A, 50, None)).items[0]
    assert chat["unread"] == 1  # the redelivery did not count again


async def test_paging_walks_every_message_exactly_once_while_new_ones_arrive(store: ConversationStore) -> None:
    start = now_ms() - 3_600_000
    # Same-millisecond neighbours too: the order key breaks ties by id, so none is skipped.
    await store.add(A, [entry(f"m{i:03d}", start + (i // 3) * 1000) for i in range(230)])
    seen: list[str] = []
    cursor = None
    arrived = 0
    while True:
        page = await store.messages(A, ANA, 50, cursor)
        assert 1 <= len(page.items) <= 50
        seen += [item["messageId"] for item in page.items]
        arrived += 1
        await store.add(A, [entry(f"new{arrived}", now_ms(), text="arrived while paging")])
        if page.next is None:
            break
        cursor = page.next
    assert len(seen) == len(set(seen)) == 230
    assert seen == [f"m{i:03d}" for i in reversed(range(230))]
    assert (await walk(store, A, ANA, 7))[:arrived] == [f"new{n}" for n in range(arrived, 0, -1)]


async def test_a_page_that_ends_exactly_at_the_last_message_has_no_next(store: ConversationStore) -> None:
    start = now_ms() - 60_000
    await store.add(A, [entry(f"m{i}", start + i) for i in range(4)])
    first = await store.messages(A, ANA, 2, None)
    second = await store.messages(A, ANA, 2, first.next)
    assert [m["messageId"] for m in first.items + second.items] == ["m3", "m2", "m1", "m0"]
    assert second.next is None


async def test_reactions_edits_deletes_and_receipts_show_on_the_stored_message(store: ConversationStore) -> None:
    at = now_ms() - 10_000
    await store.add(A, [entry("in1", at, text="original"), entry("out1", at + 1, direction="out", text="ours")])
    when = iso_from_ms(at + 5)
    assert await store.update(A, ANA, "in1", Reacted(ANA, False, "👍", when))
    assert await store.update(A, ANA, "in1", Reacted(None, True, "❤️", when))
    assert await store.update(A, ANA, "in1", Reacted(ANA, False, "😂", when))  # replaces Ana's 👍
    assert await store.update(A, ANA, "in1", Edited("edited text"))
    assert await store.update(A, ANA, "out1", StatusMoved("read"))
    assert await store.update(A, ANA, "out1", StatusMoved("delivered"))  # late: never moves back
    items = {m["messageId"]: m for m in (await store.messages(A, ANA, 50, None)).items}
    assert items["in1"]["text"] == "edited text" and items["in1"]["edited"] is True
    reactions = {(r["from"], r["fromMe"], r["emoji"]) for r in items["in1"]["reactions"]}
    assert reactions == {(ANA, False, "😂"), (None, True, "❤️")}
    assert items["out1"]["status"] == "read"

    assert await store.update(A, ANA, "in1", Reacted(None, True, "", when))  # "" takes ours back
    assert await store.update(A, ANA, "out1", Deleted())
    items = {m["messageId"]: m for m in (await store.messages(A, ANA, 50, None)).items}
    assert [r["emoji"] for r in items["in1"]["reactions"]] == ["😂"]
    assert items["out1"]["deleted"] is True and items["out1"]["text"] is None
    # The chat's last message is the stored one, changes included.
    chat = (await store.chats(A, 50, None)).items[0]
    assert chat["lastMessage"]["messageId"] == "out1" and chat["lastMessage"]["deleted"] is True
    assert not await store.update(A, ANA, "never-stored", Edited("x"))


async def test_chats_most_recent_first_with_last_message_and_unread(store: ConversationStore) -> None:
    start = now_ms() - 60_000
    await store.add(A, [entry("a1", start, text="one"), entry("a2", start + 1, text="two")])
    await store.add(A, [entry("g1", start + 2, chat=GROUP, sender=BEN, text="group")])
    await store.add(A, [entry("b1", start + 3, chat=BEN, sender=BEN, text="ben")])
    await store.add(A, [entry("b2", start + 4, chat=BEN, direction="out", text="our answer")])
    page = await store.chats(A, 50, None)
    assert [c["chatId"] for c in page.items] == [BEN, GROUP, ANA]
    ben, group, ana = page.items
    assert ben["unread"] == 0 and ben["lastMessage"]["messageId"] == "b2"  # we answered: read
    assert group["isGroup"] is True and group["unread"] == 1
    assert ana["unread"] == 2 and ana["lastMessage"]["text"] == "two" and ana["isGroup"] is False
    assert ana["lastMessageAt"] == iso_from_ms(start + 1)
    # Ana writes again: her chat goes first; paging by one walks every chat once.
    await store.add(A, [entry("a3", start + 10, text="three")])
    first = await store.chats(A, 1, None)
    rest = await store.chats(A, 2, first.next)
    assert [c["chatId"] for c in first.items + rest.items] == [ANA, BEN, GROUP]
    assert rest.next is None and first.items[0]["unread"] == 3


async def test_a_chat_name_is_kept_until_a_new_one_is_known(store: ConversationStore) -> None:
    at = now_ms() - 1000
    named = Entry(ANA, False, message("n1", at), at, chat_name="Ana", unread="in")
    await store.add(A, [named, entry("n2", at + 1)])
    assert (await store.chats(A, 50, None)).items[0]["name"] == "Ana"


async def test_instances_do_not_see_each_others_conversations(store: ConversationStore) -> None:
    at = now_ms() - 1000
    await store.add(A, [entry("only-a", at)])
    await store.add(B, [entry("only-b", at)])
    assert [m["messageId"] for m in (await store.messages(A, ANA, 50, None)).items] == ["only-a"]
    assert [m["messageId"] for m in (await store.messages(B, ANA, 50, None)).items] == ["only-b"]
    assert not await store.update(B, ANA, "only-a", Edited("x"))


async def test_forgetting_an_instance_deletes_its_conversations_only(store: ConversationStore) -> None:
    at = now_ms() - 1000
    await store.add(A, [entry("a", at), entry("g", at, chat=GROUP)])
    await store.add(B, [entry("b", at)])
    await store.forget_instance(A)
    assert (await store.chats(A, 50, None)).items == []
    assert (await store.messages(A, ANA, 50, None)).items == []
    assert [c["chatId"] for c in (await store.chats(B, 50, None)).items] == [ANA]


async def test_messages_older_than_the_retention_are_not_kept(store: ConversationStore) -> None:
    too_old = now_ms() - 31 * 24 * 3600 * 1000
    assert await store.add(A, [entry("old", too_old), entry("recent", now_ms() - 1000)]) == 1
    assert [m["messageId"] for m in (await store.messages(A, ANA, 50, None)).items] == ["recent"]


async def test_a_cursor_not_handed_out_is_refused(store: ConversationStore) -> None:
    for cursor in ("not-a-cursor", "!!!", "MTIz"):
        with pytest.raises(ValueError, match="cursor"):
            await store.messages(A, ANA, 50, cursor)
        with pytest.raises(ValueError, match="cursor"):
            await store.chats(A, 50, cursor)


async def test_redis_keeps_at_most_the_cap_per_chat_dropping_the_oldest(redis_url: str) -> None:
    redis = connect(redis_url)
    store = RedisConversations(redis, retention_days=30, max_per_chat=5)
    start = now_ms() - 60_000
    for i in range(8):
        await store.add(A, [entry(f"m{i}", start + i)])
    assert await walk(store, A, ANA, 50) == ["m7", "m6", "m5", "m4", "m3"]
    assert await redis.hlen(f"wa:conv:{A}:m:{ANA}") == 5  # type: ignore[misc]
    assert 0 < await redis.ttl(f"wa:conv:{A}:z:{ANA}") <= 30 * 24 * 3600
    await redis.aclose()


# -- through the API: the sandbox writes in, the worker sends, the routes read ------------------


@pytest.fixture(params=["redis", "postgres"])
async def settings(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """The gateway's settings with the conversation store on each backend."""
    if request.param == "redis":
        yield make_settings(redis_url, tmp_path / "data")
        return
    if (why := await postgres_reachable()) is not None:
        pytest.skip(why)
    schema = f"test_conv_{uuid.uuid4().hex[:12]}"
    yield make_settings(redis_url, tmp_path / "data", database_url=pg_url(), database_schema=schema)
    from core.conversations_pg import PgConversations

    pg = PgConversations(pg_url(), retention_days=30, schema=schema)
    await pg.drop_schema()
    await pg.close()


async def get_json(client: TestClient, path: str, headers: dict[str, str], status: int = 200) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def inbound(client: TestClient, name: str, headers: dict[str, str], **body: Any) -> str:
    response = await client.post(f"/sandbox/instance/{name}/inbound", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return str((await response.json())["messageId"])


async def stored(client: TestClient, name: str, chat: str, headers: dict[str, str], count: int) -> list[Any]:
    """The chat's stored messages once there are `count` (inbound events are stored by the worker)."""

    async def enough() -> Any:
        items = (await get_json(client, f"/instance/{name}/chats/{chat}/messages", headers))["items"]
        return items if len(items) >= count else None

    found: list[Any] = await eventually(enough)
    return found


async def test_received_and_sent_messages_land_in_the_chat_in_order(gateway: TestClient, acme: dict[str, str]) -> None:
    name = await open_instance(gateway, acme)
    first = await inbound(gateway, name, acme, **{"from": ANA, "text": "hola", "pushName": "Ana"})
    sent = await gateway.post("/message/text", json={"instanceName": name, "to": ANA, "text": "hi Ana"}, headers=acme)
    assert sent.status == 202
    ours = (await sent.json())["id"]
    path = f"/instance/{name}/chats/{ANA}/messages"

    async def both() -> Any:
        page = await get_json(gateway, path, acme)
        return page if len(page["items"]) == 2 else None

    page = await eventually(both)
    newest, oldest = page["items"]
    assert (newest["id"], newest["direction"], newest["text"], newest["status"]) == (ours, "out", "hi Ana", "sent")
    assert (oldest["messageId"], oldest["direction"], oldest["from"], oldest["text"]) == (first, "in", ANA, "hola")
    assert oldest["type"] == "conversation" and oldest["reactions"] == [] and page["next"] is None
    contract = "id messageId direction from fromLid type text caption media quotedMessageId status timestamp"
    assert set(newest) == {*contract.split(), "metadata", "edited", "deleted", "reactions"}

    chats = await get_json(gateway, f"/instance/{name}/chats", acme)
    assert [(c["chatId"], c["name"], c["isGroup"], c["unread"]) for c in chats["items"]] == [(ANA, "Ana", False, 0)]
    assert chats["items"][0]["lastMessage"]["id"] == ours and chats["next"] is None


async def test_reactions_edits_and_deletes_from_the_contact_change_the_stored_message(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    name = await open_instance(gateway, acme)
    target = await inbound(gateway, name, acme, **{"from": ANA, "text": "typo hre"})
    other = await inbound(gateway, name, acme, **{"from": ANA, "text": "to be deleted"})
    await inbound(gateway, name, acme, **{"from": ANA, "reaction": {"messageId": target, "emoji": "🎉"}})
    await inbound(gateway, name, acme, **{"from": ANA, "edit": {"messageId": target, "text": "typo here"}})
    await inbound(gateway, name, acme, **{"from": ANA, "delete": {"messageId": other}})
    items = {
        m["messageId"]: m for m in (await get_json(gateway, f"/instance/{name}/chats/{ANA}/messages", acme))["items"]
    }
    assert set(items) == {target, other}  # the reaction, the edit and the delete are no messages of their own
    assert items[target]["text"] == "typo here" and items[target]["edited"] is True
    assert [(r["from"], r["emoji"]) for r in items[target]["reactions"]] == [(ANA, "🎉")]
    assert items[other]["deleted"] is True and items[other]["text"] is None


async def test_pages_are_bounded_and_a_bad_query_names_what_was_wrong(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    name = await open_instance(gateway, acme)
    for n in range(3):
        await inbound(gateway, name, acme, **{"from": ANA, "text": f"m{n}"})
    first = await get_json(gateway, f"/instance/{name}/chats/{ANA}/messages?limit=2", acme)
    rest = await get_json(gateway, f"/instance/{name}/chats/{ANA}/messages?limit=2&cursor={first['next']}", acme)
    assert [m["text"] for m in first["items"] + rest["items"]] == ["m2", "m1", "m0"] and rest["next"] is None
    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("cursor=bogus", "cursor"), ("x=1", "x")):
        error = await get_json(gateway, f"/instance/{name}/chats?{query}", acme, status=400)
        assert error["error"]["code"] == "validation_error"
        assert [issue["path"][-1] for issue in error["error"]["issues"]] == [field], error
    bad_chat = await get_json(gateway, f"/instance/{name}/chats/not-a-chat/messages", acme, status=400)
    assert bad_chat["error"]["issues"][0]["path"] == ["path", "chatId"]


async def test_a_tenant_reads_only_its_own_instances_conversations(gateway: TestClient, acme: dict[str, str]) -> None:
    name = await open_instance(gateway, acme)
    await inbound(gateway, name, acme, **{"from": ANA, "text": "private"})
    await stored(gateway, name, ANA, acme, 1)
    created = await gateway.post("/admin/tenants", json={"tenantId": "globex"}, headers=ADMIN)
    globex = {"apikey": (await created.json())["apiKey"]}
    for path in (f"/instance/{name}/chats", f"/instance/{name}/chats/{ANA}/messages"):
        error = await get_json(gateway, path, globex, status=403)
        assert error["error"]["code"] == "forbidden_tenant"
        assert (await get_json(gateway, path, ADMIN))["items"]  # the admin sees every tenant's
    missing = await get_json(gateway, "/instance/acme__shop1__nobody/chats", acme, status=404)
    assert missing["error"]["code"] == "not_found"


async def test_deleting_an_instance_deletes_its_conversations(gateway: TestClient, acme: dict[str, str]) -> None:
    name = await open_instance(gateway, acme)
    await inbound(gateway, name, acme, **{"from": ANA, "text": "soon gone"})
    await stored(gateway, name, ANA, acme, 1)
    assert (await gateway.delete(f"/instance/{name}", headers=acme)).status == 204
    await open_instance(gateway, acme)  # the same name again starts with no conversations
    assert (await get_json(gateway, f"/instance/{name}/chats", acme))["items"] == []
    assert (await get_json(gateway, f"/instance/{name}/chats/{ANA}/messages", acme))["items"] == []


# -- history sync ---------------------------------------------------------------------------------


async def test_history_lands_below_what_arrived_live_and_leaves_unread_alone(store: ConversationStore) -> None:
    now = now_ms()
    await store.add(A, [entry("live", now - 1000, text="live copy")])
    chat = HistoryChat(
        ANA,
        "Ana",
        (
            HistoryMessage(message_id="h1", from_me=False, sender=ANA, text="old", timestamp=at(now - 90_000)),
            HistoryMessage(message_id="h2", from_me=True, text="old answer", timestamp=at(now - 80_000)),
            HistoryMessage(message_id="live", from_me=False, sender=ANA, text="synced copy", timestamp=at(now - 1000)),
        ),
    )
    assert await store.add(A, [history_entry(chat, message) for message in chat.messages]) == 2
    items = (await store.messages(A, ANA, 50, None)).items
    assert [(m["messageId"], m["direction"], m["text"]) for m in items] == [
        ("live", "in", "live copy"),
        ("h2", "out", "old answer"),
        ("h1", "in", "old"),
    ]
    (ana,) = (await store.chats(A, 50, None)).items
    assert (ana["name"], ana["unread"], ana["lastMessage"]["messageId"]) == ("Ana", 1, "live")


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def test_sandbox_history_is_stored_and_history_synced_fires(
    gateway: TestClient, acme: dict[str, str], hooked: str, receiver: Receiver
) -> None:
    now = now_ms()
    chats = [
        {
            "chatId": ANA,
            "name": "Ana",
            "messages": [
                {
                    "messageId": "HIST1",
                    "fromMe": False,
                    "text": "hello from 2026",
                    "timestamp": iso_from_ms(now - 9000),
                },
                {"messageId": "HIST2", "fromMe": True, "text": "hi Ana", "timestamp": iso_from_ms(now - 8000)},
            ],
        },
        {
            "chatId": GROUP,
            "name": "Team",
            "messages": [
                {"messageId": "HIST3", "fromMe": False, "from": BEN, "text": "standup?", "timestamp": iso_from_ms(now)}
            ],
        },
    ]
    response = await gateway.post(f"/sandbox/instance/{hooked}/history", json={"chats": chats}, headers=acme)
    assert response.status == 200, await response.text()
    assert await response.json() == {"instanceName": hooked, "chats": 2, "messages": 3}
    await eventually(lambda: receiver.of("history.synced"))
    assert receiver.of("history.synced")[0].json()["data"] == {"chats": 2, "messages": 3}
    listed = await get_json(gateway, f"/instance/{hooked}/chats", acme)
    assert [(c["chatId"], c["name"], c["isGroup"], c["unread"]) for c in listed["items"]] == [
        (GROUP, "Team", True, 0),
        (ANA, "Ana", False, 0),
    ]
    items = await stored(gateway, hooked, ANA, acme, 2)
    assert [(m["messageId"], m["direction"], m["from"]) for m in items] == [
        ("HIST2", "out", None),
        ("HIST1", "in", ANA),
    ]
    group = await stored(gateway, hooked, GROUP, acme, 1)
    assert group[0]["from"] == BEN
    # The same batch again (WhatsApp repeats itself after reconnects): nothing new.
    await gateway.post(f"/sandbox/instance/{hooked}/history", json={"chats": chats}, headers=acme)
    await eventually(lambda: len(receiver.of("history.synced")) == 2)
    assert receiver.of("history.synced")[1].json()["data"] == {"chats": 2, "messages": 0}


async def test_history_is_not_kept_when_sync_history_is_off(
    gateway: TestClient, acme: dict[str, str], hooked: str, receiver: Receiver
) -> None:
    patched = await gateway.patch(f"/instance/{hooked}/settings", json={"syncHistory": False}, headers=acme)
    assert patched.status == 200, await patched.text()
    message = {"messageId": "HIST9", "fromMe": False, "text": "old news", "timestamp": iso_from_ms(now_ms())}
    body = {"chats": [{"chatId": ANA, "messages": [message]}]}
    response = await gateway.post(f"/sandbox/instance/{hooked}/history", json=body, headers=acme)
    assert response.status == 200, await response.text()
    # A live message after it: once it is stored, the history batch before it has been handled.
    sent = await gateway.post(f"/sandbox/instance/{hooked}/inbound", json={"from": ANA, "text": "now"}, headers=acme)
    assert sent.status == 201, await sent.text()
    items = await stored(gateway, hooked, ANA, acme, 1)
    assert [m["text"] for m in items] == ["now"]
    assert not receiver.of("history.synced")


async def test_sandbox_history_refuses_what_whatsapp_could_not_send(gateway: TestClient, acme: dict[str, str]) -> None:
    name = await open_instance(gateway, acme)
    bad = {"chats": [{"chatId": "nobody", "messages": [{"messageId": "X", "fromMe": "maybe", "timestamp": "today"}]}]}
    response = await gateway.post(f"/sandbox/instance/{name}/history", json=bad, headers=acme)
    assert response.status == 400
    paths = {tuple(issue["path"]) for issue in (await response.json())["error"]["issues"]}
    assert {
        ("chats", 0, "chatId"),
        ("chats", 0, "messages", 0, "fromMe"),
        ("chats", 0, "messages", 0, "timestamp"),
    } <= paths


async def test_the_client_walks_every_chat_and_message_page_by_page(gateway: TestClient, acme: dict[str, str]) -> None:
    name = await open_instance(gateway, acme)
    now = now_ms()
    history = [
        {
            "chatId": number,
            "messages": [
                {
                    "messageId": f"H{number[-1]}{n}",
                    "fromMe": n % 2 == 1,
                    "text": f"#{n}",
                    "timestamp": iso_from_ms(now - n),
                }
                for n in range(7)
            ],
        }
        for number in (ANA, BEN)
    ]
    base_url = str(gateway.make_url("")).rstrip("/")
    async with AsyncClient(base_url, acme["apikey"]) as client:
        await client.sandbox_history(name, history)
        chats = [chat async for chat in client.iter_chats(name, page_size=1)]
        assert {chat.chat_id for chat in chats} == {ANA, BEN} and len(chats) == 2
        messages = [m async for m in client.iter_chat_messages(name, ANA, page_size=3)]
    assert [m.text for m in messages] == [f"#{n}" for n in range(7)]
    assert [(m.direction, m.from_) for m in messages[:2]] == [("in", ANA), ("out", None)]
    assert messages[0].reactions == [] and messages[0].edited is False
    with Client(base_url, acme["apikey"]) as sync:
        walked = await asyncio.to_thread(
            lambda: [m.message_id for m in sync.iter_chat_messages(name, BEN, page_size=2)]
        )
    assert walked == [f"H{BEN[-1]}{n}" for n in range(7)]


async def test_our_reactions_edits_deletes_and_receipts_change_the_stored_messages(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    name = await open_instance(gateway, acme)
    theirs = await inbound(gateway, name, acme, **{"from": ANA, "text": "lunch?"})
    await stored(gateway, name, ANA, acme, 1)
    reacted = await gateway.post(
        "/message/reaction", json={"instanceName": name, "messageId": theirs, "emoji": "👍"}, headers=acme
    )
    assert reacted.status == 202, await reacted.text()
    sent = await gateway.post("/message/text", json={"instanceName": name, "to": ANA, "text": "yes at 1"}, headers=acme)
    ours = (await sent.json())["id"]
    items = await stored(gateway, name, ANA, acme, 2)
    wa_id = items[0]["messageId"]
    assert items[0]["id"] == ours

    edited = await gateway.post(f"/message/{ours}/edit", json={"text": "yes at 2"}, headers=acme)
    assert edited.status == 202, await edited.text()
    receipt = {"messageIds": [wa_id], "status": "read"}
    assert (await gateway.post(f"/sandbox/instance/{name}/receipt", json=receipt, headers=acme)).status == 200

    async def changed() -> Any:
        found = {m["messageId"]: m for m in await stored(gateway, name, ANA, acme, 2)}
        done = found[wa_id]["edited"] and found[wa_id]["status"] == "read" and found[theirs]["reactions"]
        return found if done else None

    found = await eventually(changed)
    assert found[wa_id]["text"] == "yes at 2"
    assert [(r["from"], r["fromMe"], r["emoji"]) for r in found[theirs]["reactions"]] == [(None, True, "👍")]
    assert len(found) == 2  # the reaction and the edit went out as messages, but are none of the chat's

    assert (await gateway.delete(f"/message/{ours}", headers=acme)).status == 202

    async def deleted() -> bool:
        return any(m["deleted"] for m in await stored(gateway, name, ANA, acme, 2))

    await eventually(deleted)


async def test_the_store_is_picked_by_the_settings_and_postgres_without_psycopg_names_what_to_install(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connect(redis_url)
    assert isinstance(conversation_store(make_settings(redis_url, tmp_path), redis), RedisConversations)
    on_postgres = make_settings(redis_url, tmp_path, database_url=pg_url())
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)  # import psycopg_pool now raises ImportError
    monkeypatch.delitem(sys.modules, "core.conversations_pg", raising=False)
    with pytest.raises(RuntimeError, match=r"GATEWAY_DATABASE_URL.*wa-gateway\[postgres\]"):
        conversation_store(on_postgres, redis)
    with pytest.raises(SettingsError, match="GATEWAY_DATABASE_URL"):
        load_settings({"GATEWAY_DATABASE_URL": "mysql://db/wa"})
    with pytest.raises(SettingsError, match="GATEWAY_DATABASE_SCHEMA"):
        load_settings({"GATEWAY_DATABASE_SCHEMA": "bad-schema; drop"})
    await redis.aclose()


async def test_a_timestamp_from_far_in_the_future_still_sorts_as_the_newest(store: ConversationStore) -> None:
    now = now_ms()
    far = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp() * 1000)
    await store.add(A, [entry("now", now), entry("far", far), entry("before", now - 1)])
    assert await walk(store, A, ANA, 1) == ["far", "now", "before"]
