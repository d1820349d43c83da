"""Control routes of the sandbox driver: they stand in for the phone and the contacts."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import Field, model_validator

from core import keys
from core.records import ApiModel, Timestamp
from gateway.responses import json_response
from gateway.state import accessible_instance, services
from gateway.validation import PhoneNumber
from scheduler.drivers.base import MessageType, ReceiptStatus


class LinkBody(ApiModel):
    phone_number: PhoneNumber | None = None


class InboundBody(ApiModel):
    # The rule of `_text_for_conversation`, for the OpenAPI document.
    model_config = {
        **ApiModel.model_config,
        "json_schema_extra": {
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
                {"required": ["messageType"], "properties": {"messageType": {"not": {"const": "conversation"}}}},
            ]
        },
    }
    sender: PhoneNumber = Field(alias="from")
    text: str | None = None
    message_type: MessageType = "conversation"
    push_name: str | None = None

    @model_validator(mode="after")
    def _text_for_conversation(self) -> InboundBody:
        if self.message_type == "conversation" and not self.text:
            raise ValueError("text is required when messageType is conversation")
        return self


class FailNextBody(ApiModel):
    error: str = Field(min_length=1, max_length=500)
    count: int = Field(default=1, ge=1, le=10_000)
    transient: bool = False  # a passing failure (the gateway retries) rather than a refusal


class ReceiptBody(ApiModel):
    message_ids: list[str] = Field(min_length=1, max_length=100, description="WhatsApp message ids (waMessageId)")
    status: ReceiptStatus


class BanBody(ApiModel):
    seconds: float = Field(gt=0, le=7 * 24 * 3600)


class InboundOut(ApiModel):
    message_id: str


class LinkOut(ApiModel):
    instance_name: str
    linked: bool


class FailNextOut(ApiModel):
    instance_name: str
    fail_next: int


class BanOut(ApiModel):
    instance_name: str
    banned_for: float


class ReceiptOut(ApiModel):
    instance_name: str
    status: ReceiptStatus


class SentMessage(ApiModel):
    message_id: str
    to: str
    type: str
    text: str | None
    caption: str | None
    media_url: str | None
    file_name: str | None
    mimetype: str | None
    media_bytes: int | None
    sent_at: Timestamp
    sent_by: str


async def link(request: web.Request, body: LinkBody) -> web.Response:
    instance = await accessible_instance(request)
    args = {"phoneNumber": body.phone_number} if body.phone_number else {}
    await services(request).commands.call(instance.name, "sandbox.link", args)
    return json_response(LinkOut(instance_name=instance.name, linked=True))


async def unlink(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, "sandbox.unlink")
    return json_response(LinkOut(instance_name=instance.name, linked=False))


async def inbound(request: web.Request, body: InboundBody) -> web.Response:
    instance = await accessible_instance(request)
    result = await services(request).commands.call(
        instance.name, "sandbox.inbound", body.model_dump(by_alias=True, mode="json")
    )
    return json_response(InboundOut(message_id=result["messageId"]), status=201)


async def sent(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    raw = await services(request).redis.lrange(keys.sandbox_sent(instance.name), 0, -1)  # type: ignore[misc]
    records = [SentMessage.model_validate(json.loads(item)) for item in raw]
    return json_response(records)


async def fail_next(request: web.Request, body: FailNextBody) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, "sandbox.fail_next", body.model_dump())
    return json_response(FailNextOut(instance_name=instance.name, fail_next=body.count))


async def ban(request: web.Request, body: BanBody) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, "sandbox.ban", {"seconds": body.seconds})
    return json_response(BanOut(instance_name=instance.name, banned_for=body.seconds))


async def receipt(request: web.Request, body: ReceiptBody) -> web.Response:
    instance = await accessible_instance(request)
    args = {"messageIds": body.message_ids, "status": body.status}
    await services(request).commands.call(instance.name, "sandbox.receipt", args)
    return json_response(ReceiptOut(instance_name=instance.name, status=body.status))
