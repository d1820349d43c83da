"""What lands in the conversation store (core/conversations.py), written from the places that
already publish the events: inbound messages where `message.received` is published
(scheduler/inbound.py), ours once sent where `message.sent` is (scheduler/pump.py), receipts,
and WhatsApp's history sync (scheduler/history.py). Reactions, edits and deletes, either way,
change the stored message they are about.

The store is a record for readers, not a step of delivery: a write that fails is logged and
dropped, and never holds a webhook or a send back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

import structlog

from core.conversations import (
    Change,
    ChatMessage,
    ConversationStore,
    Deleted,
    Edited,
    Entry,
    Reacted,
    StatusMoved,
)
from scheduler.drivers.base import (
    Inbound,
    MessageDeleted,
    MessageEdited,
    MessageReaction,
    MessageReceived,
    ReceiptStatus,
    is_group,
)
from scheduler.messages import Message

log = structlog.get_logger(__name__)
LID_SUFFIX = "@lid"


def inbound_chat(event: Inbound) -> str | None:
    """The chat an inbound event belongs to: the group, else the contact's number, else its LID chat."""
    if event.chat_id is not None:
        return event.chat_id
    if event.sender is not None:
        return event.sender
    if event.sender_lid:
        return event.sender_lid if event.sender_lid.endswith(LID_SUFFIX) else f"{event.sender_lid}{LID_SUFFIX}"
    return None


def ms_of(iso_moment: str) -> int:
    return int(datetime.fromisoformat(iso_moment.replace("Z", "+00:00")).timestamp() * 1000)


class ConversationLog:
    def __init__(self, store: ConversationStore) -> None:
        self.store = store

    async def received(self, name: str, event: Inbound, data: dict[str, Any]) -> None:
        """An inbound event as published (`data`, the webhook's): stored, or applied to its message."""
        chat = inbound_chat(event)
        if chat is None:
            return
        match event:
            case MessageReceived():
                entry = Entry(
                    chat_id=chat,
                    is_group=event.chat_id is not None,
                    message=received_message(data),
                    at_ms=ms_of(data["timestamp"]),
                    chat_name=None if event.chat_id is not None else event.push_name,
                    unread="in",
                )
                await _safely(self.store.add(name, [entry]), name, "received")
            case MessageReaction(target_id=target, emoji=emoji):
                await self._change(name, chat, target, Reacted(event.sender, False, emoji, data["timestamp"]))
            case MessageEdited(target_id=target, text=text):
                await self._change(name, chat, target, Edited(text))
            case MessageDeleted(target_id=target):
                await self._change(name, chat, target, Deleted())

    async def sent(self, name: str, message: Message) -> None:
        """One of ours went out (`message`: its record as the send left it): stored, or, for a
        reaction, an edit or a deletion, applied to the message it is about."""
        wa_id, sent_at = message.wa_message_id, message.sent_at
        if wa_id is None or sent_at is None:
            return
        detail = message.detail
        target = detail.target
        if message.type in ("reaction", "edit", "delete"):
            if target is None:
                return
            change: Change = (
                Reacted(None, True, detail.emoji or "", sent_at)
                if message.type == "reaction"
                else Edited(message.text)
                if message.type == "edit"
                else Deleted()
            )
            await self._change(name, target.chat, target.message_id, change)
            return
        stored = ChatMessage(
            id=message.id,
            message_id=wa_id,
            direction="out",
            type=message.type,
            text=message.text,
            caption=message.caption,
            media=None if message.media_url is None else {"url": message.media_url, "fileName": message.file_name},
            quoted_message_id=detail.quoted.message_id if detail.quoted is not None else message.quoted_message_id,
            status="sent",
            timestamp=sent_at,
            metadata=_metadata(message),
        )
        entry = Entry(message.to, is_group(message.to), stored, ms_of(sent_at), unread="out")
        await _safely(self.store.add(name, [entry]), name, "sent")

    async def receipt(self, name: str, message: Message, status: ReceiptStatus) -> None:
        if message.wa_message_id is not None:
            await self._change(name, message.to, message.wa_message_id, StatusMoved(status))

    async def _change(self, name: str, chat: str, message_id: str, change: Change) -> None:
        await _safely(self.store.update(name, chat, message_id, change), name, type(change).__name__)


def received_message(data: dict[str, Any]) -> ChatMessage:
    """The stored form of a `message.received` event's data (camelCase, as published)."""
    fields = ("messageId", "from", "fromLid", "text", "caption", "media", "quotedMessageId", "timestamp")
    kept = {field: data.get(field) for field in fields}
    return ChatMessage.model_validate({**kept, "direction": "in", "type": data["messageType"], "status": "received"})


def _metadata(message: Message) -> dict[str, Any] | None:
    # Sends carry `metadata` once issue 21's record field is there; stored as the record keeps it.
    found = getattr(message, "metadata", None)
    if isinstance(found, str):
        found = json.loads(found)
    return found if isinstance(found, dict) else None


async def _safely(write: Awaitable[Any], name: str, what: str) -> None:
    try:
        await write
    except Exception as exc:
        log.warning("conversation.write_failed", instance=name, what=what, error=f"{type(exc).__name__}: {exc}")
