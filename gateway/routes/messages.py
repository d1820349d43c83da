from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, RootModel, ValidationInfo, field_validator

from config.settings import LaneName
from core.errors import ForbiddenTenant, InvalidState, Issue, NotFound, ValidationFailed
from core.instances import tenant_of
from core.records import ApiModel, Timestamp
from gateway.middleware import checked_caller, key_check
from gateway.responses import json_response
from gateway.state import accessible_instance, principal, require_instance_access, require_tenant_access, services
from gateway.validation import InstanceNameStr, NamePart, PhoneNumber, WebUrl, validate
from scheduler.drivers.base import SendType
from scheduler.lanes import Accepting
from scheduler.messages import RECENT_KEPT, Message, new_message_id
from scheduler.messages import Status as MessageStatus

# WhatsApp's own limits on a text and on a caption.
MAX_TEXT = 65_536
MAX_CAPTION = 1_024


class Content(ApiModel):
    # The document says what the validator below checks: transactional only on the urgent lane.
    model_config = {
        **ApiModel.model_config,
        "json_schema_extra": {
            "if": {"properties": {"transactional": {"const": True}}, "required": ["transactional"]},
            "then": {"properties": {"lane": {"const": "urgent"}}, "required": ["lane"]},
        },
    }
    to: PhoneNumber
    lane: LaneName = "normal"
    # Sent even to a number on the tenant's opt-out list (a code, a receipt): urgent lane only.
    transactional: bool = False

    @field_validator("transactional")
    @classmethod
    def _urgent_only(cls, transactional: bool, info: ValidationInfo) -> bool:
        if transactional and info.data.get("lane") != "urgent":
            raise ValueError('only messages on the "urgent" lane may be transactional')
        return transactional


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


class ToClient(ApiModel):
    tenant_id: NamePart
    client_id: NamePart


class RoutedText(TextContent, ToClient):
    type: Literal["text"]


class RoutedImage(ImageContent, ToClient):
    type: Literal["image"]


class RoutedDocument(DocumentContent, ToClient):
    type: Literal["document"]


class RoutedAudio(AudioContent, ToClient):
    type: Literal["audio"]


class RoutedVideo(VideoContent, ToClient):
    type: Literal["video"]


Routed = RoutedText | RoutedImage | RoutedDocument | RoutedAudio | RoutedVideo


class RouteTarget(RootModel[Annotated[Routed, Field(discriminator="type")]]):
    """The body of /message/route: the client to route for, and the fields of one `type` of message."""


class Queued(ApiModel):
    id: str
    status: Literal["pending"]
    lane: LaneName
    queued_at: Timestamp
    instance_name: str


class MessageOut(ApiModel):
    id: str
    instance_name: str
    lane: LaneName
    to: str
    type: SendType
    status: MessageStatus
    created_at: Timestamp
    sent_at: Timestamp | None
    error: str | None
    text: str | None
    caption: str | None
    wa_message_id: str | None
    attempts: int
    possibly_duplicated: bool
    transactional: bool


def _media_url(content: Content) -> str | None:
    for field in ("image_url", "document_url", "audio_url", "video_url"):
        if hasattr(content, field):
            return str(getattr(content, field))
    return None


def _accepting(instance_name: str, type_: SendType, content: Content, client_ref: str | None = None) -> Accepting:
    message = Message.new(
        new_message_id(),
        instance_name,
        content.lane,
        content.to,
        type_,
        text=getattr(content, "text", None),
        caption=getattr(content, "caption", None),
        media_url=_media_url(content),
        file_name=getattr(content, "file_name", None),
        transactional=content.transactional,
    )
    return Accepting(message, client_ref)


def _queued(item: Accepting) -> Queued:
    message = item.message
    return Queued(
        id=message.id,
        status="pending",
        lane=message.lane,
        queued_at=message.created_at,
        instance_name=message.instance_name,
    )


async def _enqueue(request: web.Request, instance_name: str, type_: SendType, content: Content) -> web.Response:
    item = _accepting(instance_name, type_, content)
    check = key_check(request)  # the send routes check the key in the accept step (Route.checks_key)
    if check is None:
        require_instance_access(request, instance_name)
    accepted = await services(request).lanes.accept(instance_name, [item], check)
    if check is not None:
        checked_caller(request, check, accepted.tenant, accepted.count)
        require_instance_access(request, instance_name)
    if accepted.earlier is None:
        raise NotFound(f"no instance {instance_name!r}")
    return json_response(_queued(item), status=202)


async def _send(request: web.Request, body: OnInstance, type_: SendType) -> web.Response:
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
    target = body.root
    require_tenant_access(request, target.tenant_id)
    svc = services(request)
    name = await svc.instances.next_open(target.tenant_id, target.client_id)
    if name is None:
        raise InvalidState(
            f"client {target.client_id!r} of tenant {target.tenant_id!r} has no open instance: nothing was queued"
        )
    return await _enqueue(request, name, target.type, target)


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
        transactional=message.transactional,
    )


# Campaign sends: POST /message/batch.
MAX_BATCH = 1000


class ClientRef(ApiModel):
    # Within 24 h, an item whose clientRef was already queued on its instance is not queued again:
    # its answer is the message queued first (`replayed`).
    client_ref: str | None = Field(default=None, min_length=1, max_length=128)


class BatchText(SendText, ClientRef):
    type: Literal["text"]


class BatchImage(SendImage, ClientRef):
    type: Literal["image"]


class BatchDocument(SendDocument, ClientRef):
    type: Literal["document"]


class BatchAudio(SendAudio, ClientRef):
    type: Literal["audio"]


class BatchVideo(SendVideo, ClientRef):
    type: Literal["video"]


BatchItem = Annotated[BatchText | BatchImage | BatchDocument | BatchAudio | BatchVideo, Field(discriminator="type")]


class SendBatch(ApiModel):
    messages: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class BatchRecord(ApiModel):
    id: str
    status: MessageStatus
    lane: LaneName
    queued_at: str
    instance_name: str
    client_ref: str | None
    replayed: bool  # the clientRef had queued this message before: nothing new was queued


class BatchAccepted(ApiModel):
    accepted: list[BatchRecord]


async def send_batch(request: web.Request, body: SendBatch) -> web.Response:
    """Validated as a whole (every problem listed by index, nothing queued), then accepted in
    one atomic step per instance."""
    caller = principal(request)
    foreign = []
    for i, m in enumerate(body.messages):
        try:
            caller.require(tenant_of(m.instance_name), f"instance {m.instance_name!r}")
        except ForbiddenTenant:
            foreign.append(i)
    if foreign:
        raise ForbiddenTenant(f"messages {foreign} are for instances of another tenant: nothing was queued")
    seen: dict[tuple[str, str], int] = {}
    issues = []
    for i, m in enumerate(body.messages):
        if m.client_ref is not None:
            first = seen.setdefault((m.instance_name, m.client_ref), i)
            if first != i:
                issues.append(Issue(("messages", i, "clientRef"), f"repeats the clientRef of message {first}"))
    if issues:
        raise ValidationFailed(issues)
    svc = services(request)
    names = list(dict.fromkeys(m.instance_name for m in body.messages))
    missing = [name for name, known in zip(names, await svc.instances.exist(names), strict=True) if not known]
    if missing:
        raise NotFound(f"no instance {', '.join(map(repr, missing))}: nothing was queued")
    items = [_accepting(m.instance_name, m.type, m, m.client_ref) for m in body.messages]
    earlier: dict[str, str] = {}  # message id -> the id its clientRef had queued before
    by_instance: dict[str, list[Accepting]] = {}
    for item in items:
        by_instance.setdefault(item.message.instance_name, []).append(item)
    for name, mine in by_instance.items():
        answers = (await svc.lanes.accept(name, mine)).earlier
        if answers is None:  # deleted since the check above: the instances before it were queued
            raise NotFound(f"instance {name!r} was deleted while the batch was queued; its messages were not")
        earlier.update({item.message.id: e for item, e in zip(mine, answers, strict=True) if e is not None})
    replays = {message_id: await svc.messages.get(e) for message_id, e in earlier.items()}
    records = []
    for item, m in zip(items, body.messages, strict=True):
        queued = _queued(item)
        record = BatchRecord(**queued.model_dump(), client_ref=m.client_ref, replayed=False)
        if (replay := replays.get(item.message.id)) is not None:
            record = record.model_copy(
                update={"id": replay.id, "status": replay.status, "lane": replay.lane,
                        "queued_at": replay.created_at, "replayed": True}
            )  # fmt: skip
        records.append(record)
    return json_response(BatchAccepted(accepted=records), status=202)
