"""WhatsApp's history sync into the conversation store: each batch the driver reports
(`HistorySynced`, from neonize's `HistorySync` events or the sandbox's `history` control) is
stored as the chats' past, without touching their unread counts, then `history.synced`
{chats, messages} tells the webhook how much of it was new."""

from __future__ import annotations

import structlog
from pydantic import Field

from core.clock import iso
from core.conversations import ChatMessage, ConversationStore, Entry
from core.instances import Instances
from core.records import ApiModel
from scheduler.drivers.base import HistoryChat, HistoryMessage, HistorySynced, is_group
from webhooks.outbox import Outbox

log = structlog.get_logger(__name__)

# Stored this many messages at a time: one pipeline (Redis) or one transaction (PostgreSQL) each.
BATCH = 500


class HistorySyncedData(ApiModel):
    """`history.synced`: one batch of WhatsApp's history sync was stored."""

    chats: int = Field(description="chats the batch held")
    messages: int = Field(description="messages of it that were new to the store")


class HistoryImport:
    def __init__(self, store: ConversationStore, outbox: Outbox, instances: Instances) -> None:
        self.store = store
        self.outbox = outbox
        self.instances = instances

    async def synced(self, name: str, batch: HistorySynced) -> None:
        """Store the batch, unless the instance's `syncHistory` setting is off."""
        if not (await self.instances.settings(name)).sync_history:
            log.info("history.skipped", instance=name, chats=len(batch.chats))
            return
        entries = [history_entry(chat, message) for chat in batch.chats for message in chat.messages]
        stored = 0
        for start in range(0, len(entries), BATCH):
            stored += await self.store.add(name, entries[start : start + BATCH])
        chats = len({entry.chat_id for entry in entries})
        log.info("history.synced", instance=name, chats=chats, messages=stored)
        await self.outbox.publish(name, "history.synced", HistorySyncedData(chats=chats, messages=stored))


def history_entry(chat: HistoryChat, message: HistoryMessage) -> Entry:
    stored = ChatMessage.model_validate(
        {
            "messageId": message.message_id,
            "direction": "out" if message.from_me else "in",
            "from": None if message.from_me else message.sender,
            "fromLid": None if message.from_me else message.sender_lid,
            "type": message.message_type,
            "text": message.text,
            "caption": message.caption,
            "status": "sent" if message.from_me else "received",
            "timestamp": iso(message.timestamp),
        }
    )
    at_ms = int(message.timestamp.timestamp() * 1000)
    return Entry(chat.chat_id, is_group(chat.chat_id), stored, at_ms, chat_name=chat.name, unread="keep")
