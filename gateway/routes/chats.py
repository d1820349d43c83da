"""The conversation store, read: an instance's chats and a chat's messages, newest first, paged by
opaque cursors (core/conversations.py). Not to be confused with the conversation actions
(gateway/routes/conversations.py), which ask WhatsApp; these read what the gateway kept."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from core.conversations import CURSOR_PATTERN, PAGE_DEFAULT, PAGE_MAX, Chat, ChatMessage, Page
from core.records import ApiModel
from gateway.state import accessible_instance, services
from gateway.validation import validate


class PageQuery(ApiModel):
    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(
        default=None, pattern=CURSOR_PATTERN, description="`next` of the previous page, as it came"
    )


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
    return _page(await store.chats(instance.name, query.limit, query.cursor))


async def list_messages(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    query = validate(PageQuery, dict(request.query))
    store = services(request).conversations
    chat_id = request.match_info["chatId"]
    return _page(await store.messages(instance.name, chat_id, query.limit, query.cursor))


def _page(page: Page) -> web.Response:
    # The items are stored in their wire form already: answered as they are.
    return web.json_response({"items": page.items, "next": page.next})
