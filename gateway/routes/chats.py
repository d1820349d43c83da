"""The conversation store, read: an instance's chats and a chat's messages, newest first, paged by
opaque cursors (core/conversations.py). Not to be confused with the conversation actions
(gateway/routes/conversations.py), which ask WhatsApp; these read what the gateway kept."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from core.conversations import PAGE_DEFAULT, PAGE_MAX, Chat, ChatMessage, Page
from core.errors import ValidationFailed
from core.records import ApiModel
from gateway.state import accessible_instance, services
from gateway.validation import validate


class PageQuery(ApiModel):
    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(default=None, max_length=512, description="`next` of the previous page")


class ChatPage(ApiModel):
    items: list[Chat]
    next: str | None = Field(description="the cursor of the next page; null at the end")


class MessagePage(ApiModel):
    items: list[ChatMessage]
    next: str | None = Field(description="the cursor of the next page; null at the end")


async def list_chats(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    query = validate(PageQuery, dict(request.query))
    store = services(request).conversations
    return _page(await _read(store.chats(instance.name, query.limit, query.cursor)))


async def list_messages(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    query = validate(PageQuery, dict(request.query))
    store = services(request).conversations
    chat_id = request.match_info["chatId"]
    return _page(await _read(store.messages(instance.name, chat_id, query.limit, query.cursor)))


async def _read(reading: Any) -> Page:
    try:
        page: Page = await reading
    except ValueError as exc:
        raise ValidationFailed.at(("cursor",), str(exc)) from None
    return page


def _page(page: Page) -> web.Response:
    # The items are stored in their wire form already: answered as they are.
    return web.json_response({"items": page.items, "next": page.next})
