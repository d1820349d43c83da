"""The conversation store: each instance's chats and their messages, inbound and outbound, with
reactions, edits and deletes applied to the stored message, paged newest first by opaque cursors.

One interface, `ConversationStore`, two backends: `RedisConversations` (the default, on the
gateway's Redis: bounded per chat and by retention) and `core.conversations_pg.PgConversations`
(when `GATEWAY_DATABASE_URL` is set: as deep as the retention allows). `open_store` picks one.

Both order messages by one key, "<13-digit ms>:<messageId>" (`order_key`), unique per chat, so a
cursor (the last key a page returned) stays exact while new messages arrive: they sort after
it, and walking the pages sees every message that was there exactly once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field
from redis.exceptions import WatchError

from core import keys
from core.clock import now_ms
from core.records import ApiModel, Timestamp
from core.redis_client import Redis
from core.scripts import Scripts, record

PAGE_DEFAULT = 50
PAGE_MAX = 100
DAY_MS = 24 * 3600 * 1000
# A member's time is 13 digits of milliseconds: enough until the year 2286.
_TIME_DIGITS = 13
_LATEST_MS = 10**_TIME_DIGITS - 1
# What a cursor (an order key) can be: the API documents this shape, so anything of it is accepted.
CURSOR_PATTERN = rf"^[0-9]{{{_TIME_DIGITS}}}:[!-~]{{1,256}}$"
CURSOR = re.compile(CURSOR_PATTERN)
Direction = Literal["in", "out"]
# How a stored message moves its chat's unread count: one more, none left (we wrote), unchanged.
Unread = Literal["in", "out", "keep"]


class Reaction(ApiModel):
    sender: str | None = Field(alias="from", description="who reacted; null for this number or a LID-only sender")
    from_me: bool = Field(description="this number reacted")
    emoji: str
    timestamp: Timestamp


class ChatMessage(ApiModel):
    """A stored message, as `GET /instance/{name}/chats/{chatId}/messages` answers it."""

    id: str | None = Field(default=None, description="the gateway's id (`msg_...`) of a message sent through it")
    message_id: str = Field(description="WhatsApp's message id")
    direction: Direction
    sender: str | None = Field(
        default=None, alias="from", description="phone number of who wrote it; null when ours or LID-only"
    )
    from_lid: str | None = None
    type: str = Field(description="the inbound messageType, or the send's type for ours")
    text: str | None = None
    caption: str | None = None
    media: dict[str, Any] | None = None
    quoted_message_id: str | None = None
    status: str = Field(description="received, or the send's status: sent, delivered, read")
    timestamp: Timestamp
    metadata: dict[str, Any] | None = None
    edited: bool = False
    deleted: bool = False
    reactions: list[Reaction] = Field(default_factory=list)


class Chat(ApiModel):
    chat_id: str
    name: str | None
    is_group: bool
    last_message_at: Timestamp | None
    last_message: ChatMessage | None
    unread: int


@dataclass(frozen=True)
class Entry:
    """One message to store, with what its chat is."""

    chat_id: str
    is_group: bool
    message: ChatMessage
    at_ms: int
    chat_name: str | None = None
    unread: Unread = "keep"

    @property
    def key(self) -> str:
        return order_key(self.at_ms, self.message.message_id)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]  # the wire form (camelCase) of each item
    next: str | None


# What can happen to a stored message after it was stored.
@dataclass(frozen=True)
class Reacted:
    sender: str | None
    from_me: bool
    emoji: str  # "" removes the sender's reaction
    timestamp: str


@dataclass(frozen=True)
class Edited:
    text: str | None


@dataclass(frozen=True)
class Deleted:
    pass


@dataclass(frozen=True)
class StatusMoved:
    status: str


Change = Reacted | Edited | Deleted | StatusMoved
# A receipt only moves a message forward.
_STATUS_RANK = {"sent": 0, "delivered": 1, "read": 2}


def apply_change(record: dict[str, Any], change: Change) -> dict[str, Any]:
    """The stored record (wire form) after `change`; both backends apply changes with this."""
    match change:
        case Reacted(sender=sender, from_me=from_me, emoji=emoji, timestamp=timestamp):
            others = [r for r in record.get("reactions", []) if (r["from"], r["fromMe"]) != (sender, from_me)]
            mine = [{"from": sender, "fromMe": from_me, "emoji": emoji, "timestamp": timestamp}] if emoji else []
            return {**record, "reactions": others + mine}
        case Edited(text=text):
            return {**record, "text": text, "edited": True}
        case Deleted():
            # Deleted for everyone: the content goes, the message stays in the chat as deleted.
            return {**record, "text": None, "caption": None, "media": None, "deleted": True}
        case StatusMoved(status=status):
            if _STATUS_RANK.get(record.get("status", ""), 99) < _STATUS_RANK.get(status, -1):
                return {**record, "status": status}
            return record
    raise TypeError(f"not a change: {change!r}")


def order_key(at_ms: int, ident: str) -> str:
    # Clamped into 13 digits, so that every key sorts by time (a sender's clock can say anything).
    return f"{min(max(0, at_ms), _LATEST_MS):0{_TIME_DIGITS}d}:{ident}"


def key_ms(key: str) -> int:
    return int(key[:_TIME_DIGITS])


def encode_cursor(key: str | None) -> str | None:
    """A page's `next`: the order key of its last item. Clients pass it back as it is; that it is
    readable is no promise about its form."""
    return key


def decode_cursor(cursor: str | None) -> str | None:
    """The order key a cursor stands for; raises ValueError for anything that cannot be one."""
    if cursor is not None and CURSOR.fullmatch(cursor) is None:
        raise ValueError("not a cursor this gateway hands out: pass a page's `next` as it came")
    return cursor


@dataclass(frozen=True)
class ChatRow:
    """A chat of conversation_chats.lua's page (by name)."""

    chat_id: str
    name: str | None
    is_group: str  # "1" or "0"
    unread: int
    last: str | None  # its last message's JSON


def chat_out(
    chat_id: str, name: str | None, is_group: bool, unread: int, last: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "chatId": chat_id,
        "name": name,
        "isGroup": is_group,
        "lastMessageAt": None if last is None else last["timestamp"],
        "lastMessage": last,
        "unread": unread,
    }


class ConversationStore(Protocol):
    async def add(self, name: str, entries: Sequence[Entry]) -> int:
        """Store messages not stored yet (by WhatsApp id, per chat); returns how many were new."""
        ...

    async def update(self, name: str, chat_id: str, message_id: str, change: Change) -> bool:
        """Apply `change` to a stored message; False when it is not stored (never was, or expired)."""
        ...

    async def chats(self, name: str, limit: int, cursor: str | None) -> Page:
        """The instance's chats, most recent first. Raises ValueError for a cursor not ours."""
        ...

    async def messages(self, name: str, chat_id: str, limit: int, cursor: str | None) -> Page:
        """A chat's messages, newest first. Raises ValueError for a cursor not ours."""
        ...

    async def forget_instance(self, name: str) -> None: ...

    async def close(self) -> None: ...


class RedisConversations:
    """Per instance a sorted set of chats, per chat a sorted set of messages and a hash of their
    records (core/keys.py). Bounded: at most `max_per_chat` messages a chat, none older than the
    retention (trimmed as messages arrive), and every key expires a retention after its last write.
    """

    def __init__(self, redis: Redis, retention_days: int, max_per_chat: int) -> None:
        self.redis = redis
        self.retention_ms = retention_days * DAY_MS
        self.max_per_chat = max_per_chat
        scripts = Scripts.of(redis)
        self._add = scripts["conversation_add"]
        self._messages = scripts["conversation_messages"]
        self._chats = scripts["conversation_chats"]

    async def add(self, name: str, entries: Sequence[Entry]) -> int:
        cutoff = now_ms() - self.retention_ms
        kept = [entry for entry in entries if entry.at_ms >= cutoff]
        if not kept:
            return 0
        cutoff_key = f"{cutoff:0{_TIME_DIGITS}d}"
        ttl = self.retention_ms // 1000

        def script_args(entry: Entry) -> tuple[list[str], list[str | int]]:
            chat_keys = [
                keys.conversation_chats(name),
                keys.conversation_chat(name, entry.chat_id),
                keys.conversation_order(name, entry.chat_id),
                keys.conversation_records(name, entry.chat_id),
            ]
            record = entry.message.model_dump_json(by_alias=True)
            chat: list[str | int] = [entry.chat_id, entry.chat_name or "", int(entry.is_group), entry.unread]
            return chat_keys, [entry.key, record, *chat, self.max_per_chat, cutoff_key, ttl]

        if len(kept) == 1:  # a message as it comes: one EVALSHA (a pipeline would first ask SCRIPT EXISTS)
            return int(await self._add(*script_args(kept[0])))
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in kept:
                await self._add(*script_args(entry), client=pipe)
            return sum(await pipe.execute())

    async def update(self, name: str, chat_id: str, message_id: str, change: Change) -> bool:
        records = keys.conversation_records(name, chat_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(records)
                    raw = await pipe.hget(records, message_id)  # type: ignore[misc]
                    if raw is None:
                        return False
                    pipe.multi()
                    pipe.hset(records, message_id, json.dumps(apply_change(json.loads(raw), change)))
                    await pipe.execute()
                    return True
                except WatchError:  # another change to the chat came first: apply ours on top of it
                    continue

    async def chats(self, name: str, limit: int, cursor: str | None) -> Page:
        before = _bound(decode_cursor(cursor))
        answer = await self._chats([keys.conversation_chats(name)], [name, before, limit])
        rows = [record(ChatRow, row) for row in answer[1:]]
        items = [
            chat_out(row.chat_id, row.name, row.is_group == "1", row.unread, json.loads(row.last) if row.last else None)
            for row in rows
        ]
        return Page(items, encode_cursor(answer[0] or None))

    async def messages(self, name: str, chat_id: str, limit: int, cursor: str | None) -> Page:
        before = _bound(decode_cursor(cursor))
        chat_keys = [keys.conversation_order(name, chat_id), keys.conversation_records(name, chat_id)]
        answer = await self._messages(chat_keys, [before, limit])
        return Page([json.loads(record) for record in answer[1:]], encode_cursor(answer[0] or None))

    async def forget_instance(self, name: str) -> None:
        # Every conversation key of the instance, including chats already trimmed from the index
        # whose keys have not expired yet.
        pattern = f"{keys.conversation_prefix(name)}*"
        async for batch in _batches(self.redis.scan_iter(match=pattern, count=1000)):
            await self.redis.unlink(*batch)

    async def close(self) -> None:
        """The Redis connection belongs to the services: nothing of ours to close."""


def _bound(key: str | None) -> str:
    return "+" if key is None else f"({key}"


async def _batches(found: Any, size: int = 500) -> Any:
    batch: list[str] = []
    async for key in found:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
