"""Inbound events completed with what the mapping cannot know offline: the number behind a LID,
the media's bytes, a vote's choices."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from scheduler.drivers.base import InboundEvent, InboundMedia, MessageReceived, PollVote
from scheduler.drivers.neonize.lookups import Lookups
from scheduler.drivers.neonize.mapping import LID_SERVER, content_message


class InboundCompletion(Lookups):
    async def _complete(self, client: Any, event: Any, inbound: InboundEvent) -> InboundEvent:
        """Fill in the number behind a LID, the media's bytes and a vote's choices."""
        if inbound.sender is None and inbound.sender_lid:
            inbound = replace(inbound, sender=await self._phone_for_lid(client, inbound.sender_lid))
        if isinstance(inbound, MessageReceived) and any(m.endswith(f"@{LID_SERVER}") for m in inbound.mentions):
            inbound = replace(inbound, mentions=tuple([await self._mention(client, m) for m in inbound.mentions]))
        if isinstance(inbound, MessageReceived) and inbound.media is not None:
            inbound = replace(inbound, media=await self._download(client, event.Message, inbound.media))
        if isinstance(inbound, PollVote):
            inbound = await self._read_vote(client, event, inbound)
        return inbound

    async def _mention(self, client: Any, mention: str) -> str:
        lid, _, server = mention.partition("@")
        if server != LID_SERVER:
            return mention
        return await self._phone_for_lid(client, lid) or mention  # unknown: the LID, marked as one

    async def _download(self, client: Any, message: Any, media: InboundMedia) -> InboundMedia:
        if media.size is not None and media.size > self._max_media_bytes:
            return replace(media, error=f"{media.size} bytes is over the {self._max_media_bytes}-byte media limit")
        try:
            data = await asyncio.wait_for(client.download_any(content_message(message)), self._media_timeout)
        except Exception as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            return replace(media, error=f"download failed: {reason}")
        if not data:
            return replace(media, error="download failed: WhatsApp sent no bytes")
        return replace(media, data=data, size=len(data))

    async def _read_vote(self, client: Any, event: Any, vote: PollVote) -> PollVote:
        try:
            decrypted = await asyncio.wait_for(client.decrypt_poll_vote(event), self._lookup_timeout)
        except Exception as exc:  # a vote on a poll this session never saw cannot be decrypted
            return replace(vote, error=f"the vote could not be decrypted: {str(exc) or type(exc).__name__}")
        return replace(vote, option_hashes=tuple(bytes(option).hex() for option in decrypted.selectedOptions))
