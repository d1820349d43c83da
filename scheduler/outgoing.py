"""Turns a message record into what the driver sends: text as it is, media fetched at send time
(audio converted to an OGG/Opus voice note)."""

from __future__ import annotations

from scheduler.drivers.base import OutgoingMessage
from scheduler.media import MediaFetcher, to_voice_note
from scheduler.messages import Message


class Outgoing:
    def __init__(self, fetcher: MediaFetcher) -> None:
        self.fetcher = fetcher

    async def outgoing(self, message: Message, text_caption: str | None) -> OutgoingMessage:
        """The driver's message; raises MediaError when the media cannot be fetched or converted."""
        if message.type == "text":
            return OutgoingMessage(to=message.to, type="text", text=text_caption)
        assert message.media_url is not None
        media = await self.fetcher.fetch(message.media_url, message.type, file_name=message.file_name)
        if message.type == "audio":
            media = await to_voice_note(media)
        return OutgoingMessage(
            to=message.to,
            type=message.type,
            caption=text_caption if message.type != "audio" else None,
            media=media.data,
            mimetype=media.mimetype,
            file_name=message.file_name or media.file_name,
            media_url=message.media_url,
        )
