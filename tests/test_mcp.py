"""`wa-gateway mcp` as an agent's host runs it: a subprocess spoken to over stdio by the MCP SDK's
own client, in front of a served gateway (sandbox driver), with a tenant key."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, ImageContent, TextContent

from tests.conftest import UNTYPED, eventually
from tests.serve_process import ServeProcess
from wa_gateway_client import Client as GatewayClient

NAME = "acme__shop1__sales"
LANES = {lane: {"gap": [0.005, 0.01], **UNTYPED} for lane in ("urgent", "normal", "bulk")}
TOOLS = {
    "list_instances", "get_instance_status", "create_instance", "get_qr", "request_pairing_code",
    "send_text", "send_media", "send_location", "send_contact", "send_poll", "send_reaction",
    "edit_message", "delete_message", "get_message", "check_numbers", "list_chats", "list_chat_messages",
}  # fmt: skip


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A served gateway with tenant acme and its instance NAME linked: (its URL, acme's key)."""
    served = ServeProcess(tmp_path_factory.mktemp("mcp") / "data", GATEWAY_LANES=json.dumps(LANES))
    served.start()
    try:
        key = GatewayClient(served.base, served.admin_key()).create_tenant("acme").api_key
        with GatewayClient(served.base, key) as gw:
            gw.create_instance(NAME, "https://hooks.invalid/wa", "s" * 16)
            gw.sandbox_link(NAME, phone_number="5491100000000")
        yield served.base, key
    finally:
        served.stop()


@asynccontextmanager
async def mcp_session(url: str, key: str) -> AsyncIterator[Client]:
    """`wa-gateway mcp` with the key in the environment, as an agent's host configures it."""
    command = StdioServerParameters(
        command=sys.executable,
        args=["-m", "gateway", "mcp", "--url", url],
        env={"WA_GATEWAY_API_KEY": key},
    )
    async with Client(command, read_timeout_seconds=30) as client:
        yield client


def structured(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    data = result.structured_content
    return data["result"] if isinstance(data, dict) and set(data) == {"result"} else data


def text_of(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_the_tools_cover_instances_sending_status_numbers_and_conversations(gateway: tuple[str, str]) -> None:
    async with mcp_session(*gateway) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    assert all(tool.description for tool in tools.values())
    assert set(tools["send_media"].input_schema["required"]) == {"instance_name", "to", "kind", "url"}


async def test_instances_status_and_a_text_followed_to_sent(gateway: tuple[str, str]) -> None:
    async with mcp_session(*gateway) as client:
        instances = structured(await client.call_tool("list_instances", {}))
        assert [(i["instance_name"], i["state"]) for i in instances] == [(NAME, "open")]
        status = structured(await client.call_tool("get_instance_status", {"instance_name": NAME}))
        assert status["phone_number"] == "5491100000000"

        queued = structured(
            await client.call_tool("send_text", {"instance_name": NAME, "to": "5491112345678", "text": "hi from MCP"})
        )
        assert queued["status"] == "pending"

        async def sent() -> dict[str, Any] | None:
            message = structured(await client.call_tool("get_message", {"message_id": queued["id"]}))
            return message if message["status"] == "sent" else None

        message = await eventually(sent, timeout=30)
    assert message["text"] == "hi from MCP"
    with GatewayClient(*gateway) as gw:
        assert [m.text for m in gw.sandbox_sent(NAME)][-1:] == ["hi from MCP"]  # it really went out


async def test_every_kind_of_send_is_queued(gateway: tuple[str, str]) -> None:
    to = {"instance_name": NAME, "to": "5491112345678"}
    sends: list[tuple[str, dict[str, Any]]] = [
        ("send_media", {**to, "kind": "image", "url": "https://example.com/a.png", "caption": "look"}),
        ("send_media", {**to, "kind": "video", "url": "https://example.com/a.mp4"}),
        ("send_media", {**to, "kind": "audio", "url": "https://example.com/a.ogg"}),
        ("send_media", {**to, "kind": "document", "url": "https://example.com/a.pdf", "file_name": "a.pdf"}),
        ("send_media", {**to, "kind": "sticker", "url": "https://example.com/a.webp"}),
        ("send_location", {**to, "latitude": -34.6, "longitude": -58.4, "name": "Obelisco"}),
        ("send_contact", {**to, "contacts": [{"full_name": "Ana", "phone_number": "5491100000002"}]}),
        ("send_poll", {**to, "question": "Lunch?", "options": ["yes", "no"]}),
    ]
    async with mcp_session(*gateway) as client:
        text = structured(await client.call_tool("send_text", {**to, "text": "to react to"}))
        with GatewayClient(*gateway) as gw:
            await eventually(lambda: gw.get_message(text["id"]).status == "sent", timeout=30)
        reaction = {"instance_name": NAME, "message_id": text["id"], "emoji": "👍"}
        queued = [structured(await client.call_tool(tool, arguments)) for tool, arguments in sends]
        queued.append(structured(await client.call_tool("send_reaction", reaction)))
        queued.append(structured(await client.call_tool("edit_message", {"message_id": text["id"], "text": "edited"})))
        deletion = structured(await client.call_tool("delete_message", {"message_id": text["id"]}))
        with GatewayClient(*gateway) as gw:
            types = [gw.get_message(q["id"]).type for q in queued]
            assert gw.get_message(deletion["id"]).type == "delete"  # a sent message: deleted for everyone
    assert all(q["status"] == "pending" for q in queued)
    assert types == ["image", "video", "audio", "document", "sticker", "location",
                     "contact", "poll", "reaction", "edit"]  # fmt: skip


async def test_gateway_errors_reach_the_agent_as_tool_errors(gateway: tuple[str, str]) -> None:
    async with mcp_session(*gateway) as client:
        missing = await client.call_tool("get_instance_status", {"instance_name": "acme__shop1__nobody"})
        invalid = await client.call_tool("send_text", {"instance_name": NAME, "to": "not a number", "text": "x"})
        no_name = await client.call_tool(
            "send_media", {"instance_name": NAME, "to": "5491112345678", "kind": "document", "url": "https://e.com/a"}
        )
    assert missing.is_error and "404 not_found" in text_of(missing)
    assert invalid.is_error and "400 validation_error" in text_of(invalid) and "to:" in text_of(invalid)
    assert no_name.is_error and "file_name: required for a document" in text_of(no_name)


async def test_a_wrong_key_is_refused_by_the_gateway(gateway: tuple[str, str]) -> None:
    async with mcp_session(gateway[0], "not-a-key") as client:
        refused = await client.call_tool("list_instances", {})
    assert refused.is_error and "401 invalid_api_key" in text_of(refused)


async def test_the_qr_of_a_connecting_instance_comes_as_an_image(gateway: tuple[str, str]) -> None:
    async with mcp_session(*gateway) as client:
        hook = {"webhook_url": "https://hooks.invalid/wa", "webhook_secret": "s" * 16}
        created = await client.call_tool("create_instance", {"instance_name": "acme__shop1__new", **hook})
        assert structured(created)["state"] == "connecting"
        qr = await client.call_tool("get_qr", {"instance_name": "acme__shop1__new"})
    image = next(block for block in qr.content if isinstance(block, ImageContent))
    assert image.mime_type == "image/png"
    assert base64.b64decode(image.data).startswith(b"\x89PNG")
    assert "expires at" in text_of(qr)


async def test_number_checks(gateway: tuple[str, str]) -> None:
    async with mcp_session(*gateway) as client:
        checked = structured(
            await client.call_tool("check_numbers", {"instance_name": NAME, "numbers": ["5491112345678"]})
        )
    assert [(c["number"], c["on_whats_app"]) for c in checked] == [("5491112345678", True)]


async def test_chats_and_their_messages_come_from_the_conversation_store(gateway: tuple[str, str]) -> None:
    with GatewayClient(*gateway) as gw:
        for text in ("hola", "sigues ahi?"):
            gw.sandbox_inbound(NAME, "5491177776666", text=text)
    async with mcp_session(*gateway) as client:

        async def stored() -> Any:
            chats = structured(await client.call_tool("list_chats", {"instance_name": NAME, "limit": 20}))
            found = [chat for chat in chats["items"] if chat["chat_id"] == "5491177776666"]
            return found if found and found[0]["unread"] == 2 else None

        await eventually(stored, timeout=30)
        first = structured(
            await client.call_tool(
                "list_chat_messages", {"instance_name": NAME, "chat_id": "5491177776666", "limit": 1}
            )
        )
        rest = structured(
            await client.call_tool(
                "list_chat_messages", {"instance_name": NAME, "chat_id": "5491177776666", "cursor": first["next"]}
            )
        )
    assert [m["text"] for m in first["items"] + rest["items"]] == ["sigues ahi?", "hola"]
    assert {m["direction"] for m in first["items"] + rest["items"]} == {"in"} and rest["next"] is None
