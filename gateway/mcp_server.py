"""`wa-gateway mcp`: a tenant's routes as MCP tools, over stdio, for AI agents.

It is a client, not part of the server: it talks to a running gateway over HTTP with a tenant key
through the typed client (`wa_gateway_client`) and reads none of the server's settings. Each tool
is one client call; a gateway error comes back to the agent as the tool's error, with the code and
message of the API's error body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image

from wa_gateway_client import AsyncClient, GatewayError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Lane = Literal["urgent", "normal", "bulk"]
T = TypeVar("T")
MediaKind = Literal["image", "video", "audio", "document", "sticker"]

INSTRUCTIONS = """Send and read WhatsApp messages through a wa-gateway tenant.
An instance is one linked WhatsApp number: link it by scanning get_qr's code (or a pairing code),
then send. Sends are queued and paced (answer `pending`); follow one with get_message until it is
`sent`, `failed` or `expired`. Numbers are international digits without '+'."""


async def called(call: Awaitable[T]) -> T:
    """The call's answer, or a tool error carrying the gateway's error (an agent reads it)."""
    try:
        return await call
    except GatewayError as exc:
        problems = "; ".join(f"{'.'.join(map(str, issue.path)) or 'body'}: {issue.message}" for issue in exc.issues)
        raise ToolError(f"{exc}{f' ({problems})' if problems else ''}") from None


async def answer(call: Awaitable[DataclassInstance]) -> dict[str, Any]:
    """The call's answer as JSON-ready values (what a tool returns)."""
    return dataclasses.asdict(await called(call))


async def answers(call: Awaitable[Sequence[DataclassInstance]]) -> list[dict[str, Any]]:
    """The call's answers as JSON-ready values."""
    return [dataclasses.asdict(item) for item in await called(call)]


def build_server(url: str, api_key: str) -> MCPServer[None]:
    gw = AsyncClient(url, api_key)

    @asynccontextmanager
    async def closing(_: MCPServer[None]) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gw.close()

    server: MCPServer[None] = MCPServer(
        "wa-gateway", version=version("wa-gateway"), instructions=INSTRUCTIONS, lifespan=closing
    )

    # Instances.
    @server.tool()
    async def list_instances(client_id: str | None = None) -> list[dict[str, Any]]:
        """The tenant's instances (all, or one client's) with their state: open, connecting or close."""
        me = await answer(gw.whoami())
        if me["tenant_id"] is None:
            raise ToolError("the admin key has no instances: use a tenant's API key")
        if client_id is None:
            return await answers(gw.list_tenant_instances(me["tenant_id"]))
        return await answers(gw.list_client_instances(me["tenant_id"], client_id))

    @server.tool()
    async def get_instance_status(instance_name: str) -> dict[str, Any]:
        """One instance's state, linked phone number and waiting messages."""
        return await answer(gw.get_status(instance_name))

    @server.tool()
    async def create_instance(instance_name: str, webhook_url: str, webhook_secret: str) -> dict[str, Any]:
        """Create an instance (`tenant__client__label`); it starts linking at once (then get_qr)."""
        return await answer(gw.create_instance(instance_name, webhook_url, webhook_secret))

    @server.tool()
    async def get_qr(instance_name: str) -> list[Image | str]:
        """The QR code to scan in WhatsApp (Linked devices) while the instance is connecting."""
        qr = await called(gw.get_qr(instance_name))
        return [Image(data=qr.png, format="png"), f"expires at {qr.expires_at}"]

    @server.tool()
    async def request_pairing_code(instance_name: str, phone_number: str) -> dict[str, Any]:
        """Link by the 8-character code WhatsApp asks for, instead of the QR."""
        return await answer(gw.request_pairing_code(instance_name, phone_number))

    # Sending: every send is queued and answers `pending`.
    @server.tool()
    async def send_text(
        instance_name: str, to: str, text: str, lane: Lane | None = None, quoted_message_id: str | None = None
    ) -> dict[str, Any]:
        """Queue a text to a number or group id; `quoted_message_id` replies to a message."""
        sent = gw.send_text(instance_name, to, text, lane=lane, quoted_message_id=quoted_message_id)
        return await answer(sent)

    @server.tool()
    async def send_media(
        instance_name: str,
        to: str,
        kind: MediaKind,
        url: str,
        caption: str | None = None,
        file_name: str | None = None,
        lane: Lane | None = None,
    ) -> dict[str, Any]:
        """Queue an image, video, audio (sent as a voice note), document (needs `file_name`) or
        sticker, fetched from `url` at send time; `caption` for image, video and document."""
        if kind == "document":
            if not file_name:
                raise ToolError("file_name: required for a document")
            sent = gw.send_document(instance_name, to, url, file_name, caption=caption, lane=lane)
        elif kind == "image":
            sent = gw.send_image(instance_name, to, url, caption=caption, lane=lane)
        elif kind == "video":
            sent = gw.send_video(instance_name, to, url, caption=caption, lane=lane)
        elif kind == "audio":
            sent = gw.send_audio(instance_name, to, url, lane=lane)
        else:
            sent = gw.send_sticker(instance_name, to, url, lane=lane)
        return await answer(sent)

    @server.tool()
    async def send_location(
        instance_name: str,
        to: str,
        latitude: float,
        longitude: float,
        name: str | None = None,
        address: str | None = None,
        lane: Lane | None = None,
    ) -> dict[str, Any]:
        """Queue a location pin."""
        sent = gw.send_location(instance_name, to, latitude, longitude, name=name, address=address, lane=lane)
        return await answer(sent)

    @server.tool()
    async def send_contact(
        instance_name: str, to: str, contacts: list[dict[str, str]], lane: Lane | None = None
    ) -> dict[str, Any]:
        """Queue 1 to 10 contact cards, each {"full_name", "phone_number", "organization"?}."""
        return await answer(gw.send_contact(instance_name, to, contacts, lane=lane))

    @server.tool()
    async def send_poll(
        instance_name: str,
        to: str,
        question: str,
        options: list[str],
        selectable_count: int | None = None,
        lane: Lane | None = None,
    ) -> dict[str, Any]:
        """Queue a poll of 2 to 12 distinct options; `selectable_count` 0 allows any number of picks."""
        sent = gw.send_poll(instance_name, to, question, options, selectable_count=selectable_count, lane=lane)
        return await answer(sent)

    @server.tool()
    async def send_reaction(instance_name: str, message_id: str, emoji: str) -> dict[str, Any]:
        """React to a message (our `msg_` id or WhatsApp's); an empty `emoji` removes the reaction."""
        return await answer(gw.send_reaction(instance_name, message_id, emoji))

    @server.tool()
    async def edit_message(message_id: str, text: str) -> dict[str, Any]:
        """Queue an edit of a sent text (WhatsApp allows 15 minutes)."""
        return await answer(gw.edit_message(message_id, text))

    @server.tool()
    async def delete_message(message_id: str) -> dict[str, Any]:
        """Cancel a waiting message, or delete a sent one for everyone."""
        return await answer(gw.delete_message(message_id))

    # Reading.
    @server.tool()
    async def get_message(message_id: str) -> dict[str, Any]:
        """A message's status (pending, sending, sent, delivered, read, failed, expired, cancelled)."""
        return await answer(gw.get_message(message_id))

    @server.tool()
    async def check_numbers(instance_name: str, numbers: list[str]) -> list[dict[str, Any]]:
        """Which numbers are on WhatsApp (asked through the instance's linked account)."""
        return await answers(gw.check_numbers(instance_name, numbers))

    @server.tool()
    async def list_chats(instance_name: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """The instance's conversations, most recent first; pass `next` as `cursor` for more."""
        return await answer(gw.list_chats(instance_name, limit=limit, cursor=cursor))

    @server.tool()
    async def list_chat_messages(
        instance_name: str, chat_id: str, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """One conversation's messages, sent and received, newest first; pass `next` as `cursor` for more."""
        page = gw.list_chat_messages(instance_name, chat_id, limit=limit, cursor=cursor)
        return await answer(page)

    return server
