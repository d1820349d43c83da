"""Inbound WhatsApp events into webhook events: `message.received` with its media kept and
linked, `message.reaction`, `message.edited`, `message.deleted` and `message.poll_vote`.

Each is forwarded once (WhatsApp redelivers after reconnects) and never for the number's own
messages. A media download that failed still delivers its message, with `media.error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from pydantic import Field

from core import keys
from core.clock import iso
from core.media_store import MediaLibrary
from core.records import ApiModel
from core.redis_client import Redis
from scheduler.contacts import Contacts
from scheduler.conversation_log import ConversationLog
from scheduler.drivers.base import (
    Contact,
    Inbound,
    InboundMedia,
    Location,
    MessageDeleted,
    MessageEdited,
    MessageReaction,
    MessageReceived,
    MessageType,
    Poll,
    PollVote,
    option_hash,
)
from scheduler.media import sniff_type
from scheduler.references import seen_value, sender_address
from webhooks.outbox import Outbox

log = structlog.get_logger(__name__)

# WhatsApp redelivers messages after reconnects; remember ids this long to forward each once.
SEEN_TTL_SECONDS = 7 * 24 * 3600
# A poll's options are kept this long to name the options its votes choose.
POLL_TTL_SECONDS = 30 * 24 * 3600


class InboundData(ApiModel):
    """Who sent an inbound event and where: the fields every `message.*` event from a contact has."""

    sender: str | None = Field(alias="from", description="phone number; null when only a LID is known")
    from_lid: str | None = Field(default=None, description="the sender's LID (WhatsApp's privacy identifier), if sent")
    chat_id: str | None = Field(
        description="the group id in a group, else the contact's number, or `<lid>@lid` when only its LID is known"
    )
    is_group: bool
    participant: str | None = Field(description="the sender inside a group")
    push_name: str | None = None

    @staticmethod
    def who(event: Inbound) -> dict[str, Any]:
        group = event.chat_id is not None
        return {
            "sender": event.sender,
            "from_lid": event.sender_lid,
            "chat_id": event.chat_id if group else sender_address(event),
            "is_group": group,
            "participant": event.sender if group else None,
            "push_name": event.push_name,
        }


class MediaData(ApiModel):
    """Media a contact sent, downloaded by the worker as the message arrived (its type taken from the
    bytes) and kept for GATEWAY_MEDIA_RETENTION; when the download fails the message still arrives."""

    id: str | None = Field(description="null when the media could not be kept (see error)")
    mimetype: str | None
    size: int | None
    file_name: str | None
    seconds: int | None
    url: str | None = Field(description="a signed link, valid while the media is kept; null with error")
    error: str | None


class ReceivedData(InboundData):
    """A contact wrote. The number's own messages and status broadcasts are never forwarded; a message
    WhatsApp delivers again after a reconnect is forwarded once."""

    message_id: str
    message_type: MessageType
    text: str | None
    caption: str | None
    quoted_message_id: str | None
    mentions: list[str]
    media: MediaData | None
    location: Location | None
    contacts: list[Contact] | None
    poll: Poll | None
    raw_type: str | None = Field(description="with messageType unsupported: the WhatsApp kind")
    timestamp: str


class ReactionData(InboundData):
    """A contact reacted to a message, or removed its reaction."""

    message_id: str = Field(description="the message reacted to")
    emoji: str = Field(description='"" when the reaction was removed')
    reaction_id: str
    timestamp: str


class EditedData(InboundData):
    """A contact edited a message."""

    message_id: str = Field(description="the message edited")
    text: str | None = Field(description="the new text, or the new caption")
    edit_id: str
    timestamp: str


class DeletedData(InboundData):
    """A contact deleted a message for everyone."""

    message_id: str = Field(description="the message deleted for everyone")
    timestamp: str


class PollVoteData(InboundData):
    """A contact voted in a poll, or withdrew the vote."""

    message_id: str = Field(description="the poll")
    vote_id: str
    selected_options: list[str] | None = Field(description="null when the poll is unknown or the vote unreadable")
    option_hashes: list[str] = Field(description="SHA-256 (hex) of each chosen option's text")
    error: str | None
    timestamp: str


# Each inbound event, its webhook event name and the record its `data` is.
EVENTS: dict[type[Inbound], tuple[str, type[InboundData]]] = {
    MessageReceived: ("message.received", ReceivedData),
    MessageReaction: ("message.reaction", ReactionData),
    MessageEdited: ("message.edited", EditedData),
    MessageDeleted: ("message.deleted", DeletedData),
    PollVote: ("message.poll_vote", PollVoteData),
}


class InboundEvents:
    def __init__(
        self,
        redis: Redis,
        outbox: Outbox,
        media: MediaLibrary,
        max_media_bytes: int,
        contacts: Contacts,
        conversations: ConversationLog,
    ) -> None:
        self.redis = redis
        self.conversations = conversations
        self.outbox = outbox
        self.media = media
        self.max_media_bytes = max_media_bytes
        self.contacts = contacts

    async def publish(self, name: str, event: Inbound) -> None:
        if event.from_me:
            return
        seen = keys.inbound_seen(name, event.message_id)
        first = await self.redis.set(seen, seen_value(event), nx=True, ex=SEEN_TTL_SECONDS)
        if not first:
            log.info("message.duplicate_dropped", instance=name, message_id=event.message_id)
            return
        event_name, record = EVENTS[type(event)]
        try:
            fields = {**InboundData.who(event), **await self._fields(name, event), "timestamp": iso(event.timestamp)}
            data = record.model_validate(fields).model_dump(mode="json", by_alias=True)
            await self.outbox.publish(name, event_name, data)
            await self.conversations.received(name, event, data)
            if isinstance(event, MessageReceived) and (event.sender or event.sender_lid) and event.chat_id is None:
                # A person wrote to this number directly: no longer a first contact, and maybe a STOP.
                await self.contacts.received(name, event.sender, event.sender_lid, event.text)
        except BaseException:
            # Not published: whoever retries it must not find it marked as already forwarded.
            with contextlib.suppress(Exception):
                await self.redis.delete(keys.inbound_seen(name, event.message_id))
            raise

    async def _fields(self, name: str, event: Inbound) -> dict[str, Any]:
        match event:
            case MessageReceived():
                return await self._message(name, event)
            case MessageReaction(target_id=target, emoji=emoji):
                return {"message_id": target, "emoji": emoji, "reaction_id": event.message_id}
            case MessageEdited(target_id=target, text=text):
                return {"message_id": target, "text": text, "edit_id": event.message_id}
            case MessageDeleted(target_id=target):
                return {"message_id": target}
            case PollVote():
                return await self._vote(name, event)
        raise TypeError(f"not an inbound event: {event!r}")

    async def _message(self, name: str, message: MessageReceived) -> dict[str, Any]:
        poll = message.poll
        if poll is not None:
            await self.redis.set(keys.poll(name, message.message_id), json.dumps(poll.options), ex=POLL_TTL_SECONDS)
        return {
            "message_id": message.message_id,
            "message_type": message.message_type,
            "text": message.text if message.message_type == "conversation" else None,
            "caption": message.caption,
            "quoted_message_id": message.quoted_message_id,
            "mentions": list(message.mentions),
            "media": None if message.media is None else await self._media(name, message.media),
            "location": message.location,
            "contacts": list(message.contacts) or None,
            "poll": poll,
            "raw_type": message.raw_type,
        }

    async def _media(self, name: str, media: InboundMedia) -> MediaData:
        described = MediaData(
            id=None,
            mimetype=media.mimetype,
            size=media.size,
            file_name=media.file_name,
            seconds=media.seconds,
            url=None,
            error=media.error,
        )
        data = media.data
        if data is None:
            return described.model_copy(update={"error": media.error or "the media was not downloaded"})
        if len(data) > self.max_media_bytes:
            error = f"{len(data)} bytes is over the {self.max_media_bytes}-byte media limit"
            return described.model_copy(update={"error": error})
        mimetype = await asyncio.to_thread(sniff_type, data, media.mimetype)
        try:
            record, url = await self.media.add(name, data, mimetype, file_name=media.file_name, seconds=media.seconds)
        except OSError as exc:
            log.error("media.store_failed", instance=name, error=str(exc))
            error = f"the gateway could not store the media: {exc.strerror or exc}"
            return described.model_copy(update={"error": error})
        kept = {"id": record.id, "mimetype": mimetype, "size": record.size, "url": url, "error": None}
        return described.model_copy(update=kept)

    async def _vote(self, name: str, vote: PollVote) -> dict[str, Any]:
        raw = await self.redis.get(keys.poll(name, vote.poll_id))
        names = {option_hash(option): option for option in json.loads(raw)} if raw else {}
        chosen = [names.get(h) for h in vote.option_hashes]
        known = vote.error is None and all(option is not None for option in chosen)
        return {
            "message_id": vote.poll_id,
            "vote_id": vote.message_id,
            "selected_options": chosen if known else None,
            "option_hashes": list(vote.option_hashes),
            "error": vote.error,
        }
