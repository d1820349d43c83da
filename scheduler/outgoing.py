"""Turns a message record into what the driver sends: text as it is, media fetched at send time
(audio converted to an OGG/Opus voice note, a sticker to a 512x512 WebP), and what the record
resolved when it was accepted (a quote, a reaction's or an edit's target)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

from PIL import Image

from scheduler.drivers.base import OutgoingMessage
from scheduler.media import Media, MediaError, MediaFetcher, to_voice_note
from scheduler.messages import Message

STICKER_SIZE = 512  # px: WhatsApp's stickers are 512x512 WebP


class Outgoing:
    def __init__(self, fetcher: MediaFetcher) -> None:
        self.fetcher = fetcher

    async def outgoing(self, message: Message, text_caption: str | None) -> OutgoingMessage:
        """The driver's message; raises MediaError when the media cannot be fetched or converted."""
        detail = message.detail
        common = OutgoingMessage(
            to=message.to,
            type=message.type,
            quoted=detail.quoted,
            mentions=detail.mentions,
            location=detail.location,
            contacts=detail.contacts,
            poll=detail.poll,
            emoji=detail.emoji,
            target=detail.target,
            typing_ms=message.typing_ms,
        )
        if message.media_url is None:
            return replace(common, text=text_caption if message.type in ("text", "edit") else None)
        assert message.type in ("image", "document", "audio", "video", "sticker")
        media = await self.fetcher.fetch(message.media_url, message.type, file_name=message.file_name)
        if message.type == "audio":
            media = await to_voice_note(media)
        if message.type == "sticker":
            media = await asyncio.to_thread(to_sticker, media)
        return replace(
            common,
            caption=text_caption if message.type in ("image", "document", "video") else None,
            media=media.data,
            mimetype=media.mimetype,
            file_name=message.file_name or media.file_name,
            media_url=message.media_url,
        )


def to_sticker(media: Media) -> Media:
    """A WebP as it is; a PNG or JPEG scaled to fit 512x512 (transparent around it) as WebP."""
    if media.mimetype == "image/webp":
        return media
    try:
        with Image.open(io.BytesIO(media.data)) as image:
            picture = image.convert("RGBA")
    except (OSError, ValueError) as exc:
        raise MediaError(f"stickerUrl: the image could not be read: {exc}") from exc
    picture.thumbnail((STICKER_SIZE, STICKER_SIZE))
    canvas = Image.new("RGBA", (STICKER_SIZE, STICKER_SIZE), (0, 0, 0, 0))
    canvas.paste(picture, ((STICKER_SIZE - picture.width) // 2, (STICKER_SIZE - picture.height) // 2))
    out = io.BytesIO()
    canvas.save(out, "WEBP", quality=80)
    return Media(data=out.getvalue(), mimetype="image/webp", file_name="sticker.webp")
