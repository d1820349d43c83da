from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from config.settings import LaneName
from core.errors import InvalidState, NotFound
from core.instances import InstanceName
from core.records import ApiModel
from gateway.responses import json_response
from gateway.state import accessible_instance, principal, require_instance_access, require_tenant_access, services
from gateway.validation import InstanceNameStr, NamePart, PhoneNumber, WebUrl, validate
from scheduler.messages import RECENT_KEPT, Message, SendType, new_message_id, new_record
from scheduler.messages import Status as MessageStatus

# WhatsApp's own limits on a text and on a caption.
MAX_TEXT = 65_536
MAX_CAPTION = 1_024


class Content(ApiModel):
    to: PhoneNumber
    lane: LaneName = "normal"


class TextContent(Content):
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class ImageContent(Content):
    image_url: WebUrl
    caption: str | None = Field(default=None, max_length=MAX_CAPTION)


class DocumentContent(Content):
    document_url: WebUrl
    file_name: str = Field(min_length=1, max_length=255)
    caption: str | None = Field(default=None, max_length=MAX_CAPTION)


class AudioContent(Content):
    audio_url: WebUrl


class VideoContent(Content):
    video_url: WebUrl
    caption: str | None = Field(default=None, max_length=MAX_CAPTION)


class OnInstance(ApiModel):
    instance_name: InstanceNameStr


class SendText(TextContent, OnInstance):
    pass


class SendImage(ImageContent, OnInstance):
    pass


class SendDocument(DocumentContent, OnInstance):
    pass


class SendAudio(AudioContent, OnInstance):
    pass


class SendVideo(VideoContent, OnInstance):
    pass


CONTENT: dict[SendType, type[Content]] = {
    "text": TextContent,
    "image": ImageContent,
    "document": DocumentContent,
    "audio": AudioContent,
    "video": VideoContent,
}


class RouteTarget(ApiModel):
    """The envelope of /message/route; the fields of `type` come beside it."""

    model_config = {**ApiModel.model_config, "extra": "allow"}
    tenant_id: NamePart
    client_id: NamePart
    type: SendType


class Queued(ApiModel):
    id: str
    status: Literal["pending"]
    lane: LaneName
    queued_at: str
    instance_name: str


class MessageOut(ApiModel):
    id: str
    instance_name: str
    lane: LaneName
    to: str
    type: SendType
    status: MessageStatus
    created_at: str
    sent_at: str | None
    error: str | None
    text: str | None
    caption: str | None
    wa_message_id: str | None
    attempts: int
    possibly_duplicated: bool


def _media_url(content: Content) -> str | None:
    for field in ("image_url", "document_url", "audio_url", "video_url"):
        if hasattr(content, field):
            return str(getattr(content, field))
    return None


async def _enqueue(request: web.Request, instance_name: str, type_: SendType, content: Content) -> web.Response:
    svc = services(request)
    message_id = new_message_id()
    record = new_record(
        message_id,
        instance_name,
        InstanceName.parse(instance_name).tenant_id,
        content.lane,
        content.to,
        type_,
        text=getattr(content, "text", None),
        caption=getattr(content, "caption", None),
        media_url=_media_url(content),
        file_name=getattr(content, "file_name", None),
    )
    if not await svc.lanes.accept(instance_name, message_id, content.lane, record):
        raise NotFound(f"no instance {instance_name!r}")
    queued = Queued(
        id=message_id,
        status="pending",
        lane=content.lane,
        queued_at=str(record["createdAt"]),
        instance_name=instance_name,
    )
    return json_response(queued, status=202)


async def _send(request: web.Request, body: OnInstance, type_: SendType) -> web.Response:
    require_instance_access(request, body.instance_name)
    assert isinstance(body, Content)
    return await _enqueue(request, body.instance_name, type_, body)


async def send_text(request: web.Request, body: SendText) -> web.Response:
    return await _send(request, body, "text")


async def send_image(request: web.Request, body: SendImage) -> web.Response:
    return await _send(request, body, "image")


async def send_document(request: web.Request, body: SendDocument) -> web.Response:
    return await _send(request, body, "document")


async def send_audio(request: web.Request, body: SendAudio) -> web.Response:
    return await _send(request, body, "audio")


async def send_video(request: web.Request, body: SendVideo) -> web.Response:
    return await _send(request, body, "video")


async def send_routed(request: web.Request, body: RouteTarget) -> web.Response:
    require_tenant_access(request, body.tenant_id)
    fields: dict[str, Any] = dict(body.model_extra or {})
    content = validate(CONTENT[body.type], fields)
    svc = services(request)
    name = await svc.instances.next_open(body.tenant_id, body.client_id)
    if name is None:
        raise InvalidState(
            f"client {body.client_id!r} of tenant {body.tenant_id!r} has no open instance: nothing was queued"
        )
    return await _enqueue(request, name, body.type, content)


async def get_message(request: web.Request) -> web.Response:
    message = await services(request).messages.get(request.match_info["id"])
    if message is None:
        raise NotFound(f"no message {request.match_info['id']!r} (finished messages are kept for a limited time)")
    principal(request).require(message.tenant_id, f"message {message.id!r}")
    return json_response(_out(message))


class RecentQuery(ApiModel):
    limit: int = Field(default=20, ge=1, le=RECENT_KEPT)


class MessageList(ApiModel):
    messages: list[MessageOut]


async def list_recent(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    query = validate(RecentQuery, dict(request.query))
    recent = await services(request).messages.recent(instance.name, query.limit)
    return json_response(MessageList(messages=[_out(message) for message in recent]))


def _out(message: Message) -> MessageOut:
    return MessageOut(
        id=message.id,
        instance_name=message.instance_name,
        lane=message.lane,
        to=message.to,
        type=message.type,
        status=message.status,
        created_at=message.created_at,
        sent_at=message.sent_at,
        error=message.error,
        text=message.text,
        caption=message.caption,
        wa_message_id=message.wa_message_id,
        attempts=message.attempts,
        possibly_duplicated=message.possibly_duplicated,
    )
