"""Inbound WhatsApp events into webhook events: `message.received` with its media kept and
linked, `message.reaction`, `message.edited`, `message.deleted` and `message.poll_vote`.

Each is forwarded once (WhatsApp redelivers after reconnects) and never for the number's own
messages. A media download that failed still delivers its message, with `media.error`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from pydantic import BaseModel

from core import keys
from core.clock import iso
from core.media_store import MediaLibrary
from core.redis_client import Redis
from scheduler.drivers.base import (
    Inbound,
    InboundMedia,
    MessageDeleted,
    MessageEdited,
    MessageReaction,
    MessageReceived,
    PollVote,
    option_hash,
)
from scheduler.media import sniff_type
from webhooks.outbox import Outbox

log = structlog.get_logger(__name__)

# WhatsApp redelivers messages after reconnects; remember ids this long to forward each once.
SEEN_TTL_SECONDS = 7 * 24 * 3600
# A poll's options are kept this long to name the options its votes choose.
POLL_TTL_SECONDS = 30 * 24 * 3600

EVENTS: dict[type[Inbound], str] = {
    MessageReceived: "message.received",
    MessageReaction: "message.reaction",
    MessageEdited: "message.edited",
    MessageDeleted: "message.deleted",
    PollVote: "message.poll_vote",
}


def _who(event: Inbound) -> dict[str, Any]:
    group = event.chat_id is not None
    return {
        "from": event.sender,
        "fromLid": event.sender_lid,
        "chatId": event.chat_id if group else event.sender,
        "isGroup": group,
        "participant": event.sender if group else None,
        "pushName": event.push_name,
    }


def _wire(value: BaseModel | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(mode="json", by_alias=True)


class InboundEvents:
    def __init__(self, redis: Redis, outbox: Outbox, media: MediaLibrary, max_media_bytes: int) -> None:
        self.redis = redis
        self.outbox = outbox
        self.media = media
        self.max_media_bytes = max_media_bytes

    async def publish(self, name: str, event: Inbound) -> None:
        if event.from_me:
            return
        first = await self.redis.set(keys.inbound_seen(name, event.message_id), "1", nx=True, ex=SEEN_TTL_SECONDS)
        if not first:
            log.info("message.duplicate_dropped", instance=name, message_id=event.message_id)
            return
        data = {**_who(event), **await self._data(name, event), "timestamp": iso(event.timestamp)}
        await self.outbox.publish(name, EVENTS[type(event)], data)

    async def _data(self, name: str, event: Inbound) -> dict[str, Any]:
        match event:
            case MessageReceived():
                return await self._message(name, event)
            case MessageReaction(target_id=target, emoji=emoji):
                return {"messageId": target, "emoji": emoji, "reactionId": event.message_id}
            case MessageEdited(target_id=target, text=text):
                return {"messageId": target, "text": text, "editId": event.message_id}
            case MessageDeleted(target_id=target):
                return {"messageId": target}
            case PollVote():
                return await self._vote(name, event)
        raise TypeError(f"not an inbound event: {event!r}")

    async def _message(self, name: str, message: MessageReceived) -> dict[str, Any]:
        poll = message.poll
        if poll is not None:
            await self.redis.set(keys.poll(name, message.message_id), json.dumps(poll.options), ex=POLL_TTL_SECONDS)
        return {
            "messageId": message.message_id,
            "messageType": message.message_type,
            "text": message.text if message.message_type == "conversation" else None,
            "caption": message.caption,
            "quotedMessageId": message.quoted_message_id,
            "mentions": list(message.mentions),
            "media": None if message.media is None else await self._media(name, message.media),
            "location": _wire(message.location),
            "contacts": [_wire(c) for c in message.contacts] if message.contacts else None,
            "poll": _wire(poll),
            "rawType": message.raw_type,
        }

    async def _media(self, name: str, media: InboundMedia) -> dict[str, Any]:
        described = {
            "id": None,
            "mimetype": media.mimetype,
            "size": media.size,
            "fileName": media.file_name,
            "seconds": media.seconds,
            "url": None,
            "error": media.error,
        }
        data = media.data
        if data is None:
            return {**described, "error": media.error or "the media was not downloaded"}
        if len(data) > self.max_media_bytes:
            return {**described, "error": f"{len(data)} bytes is over the {self.max_media_bytes}-byte media limit"}
        mimetype = await asyncio.to_thread(sniff_type, data, media.mimetype)
        try:
            record, url = await self.media.add(name, data, mimetype, file_name=media.file_name, seconds=media.seconds)
        except OSError as exc:
            log.error("media.store_failed", instance=name, error=str(exc))
            return {**described, "error": f"the gateway could not store the media: {exc.strerror or exc}"}
        return {**described, "id": record.id, "mimetype": mimetype, "size": record.size, "url": url, "error": None}

    async def _vote(self, name: str, vote: PollVote) -> dict[str, Any]:
        raw = await self.redis.get(keys.poll(name, vote.poll_id))
        names = {option_hash(option): option for option in json.loads(raw)} if raw else {}
        chosen = [names.get(h) for h in vote.option_hashes]
        known = vote.error is None and all(option is not None for option in chosen)
        return {
            "messageId": vote.poll_id,
            "voteId": vote.message_id,
            "selectedOptions": chosen if known else None,
            "optionHashes": list(vote.option_hashes),
            "error": vote.error,
        }
