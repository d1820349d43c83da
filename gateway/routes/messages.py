from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, RootModel

from config.settings import LaneName
from core.clock import iso_from_ms
from core.errors import ForbiddenTenant, InvalidState, Issue, NotFound, QueueFull, ValidationFailed
from core.instances import tenant_of
from core.records import ApiModel, ErrorCode, Timestamp
from gateway.middleware import caller_now, checked_caller, key_check
from gateway.responses import json_response
from gateway.routes.content import (
    AudioContent,
    ContactContent,
    Content,
    DocumentContent,
    ImageContent,
    Laned,
    LocationContent,
    PollContent,
    ReactionContent,
    StickerContent,
    TextContent,
    VideoContent,
)
from gateway.state import accessible_instance, principal, require_instance_access, require_tenant_access, services
from gateway.validation import InstanceNameStr, NamePart, validate
from scheduler.drivers.base import Contact, Location, MessageRef, Poll, SendType
from scheduler.event_data import Recipient
from scheduler.lanes import BEHIND, Accepting, Waiting, WaitReason
from scheduler.messages import RECENT_KEPT, Message, new_message_id, stored_metadata
from scheduler.messages import Status as MessageStatus
from scheduler.references import References
from scheduler.typing import typing_ms


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


class SendLocation(LocationContent, OnInstance):
    pass


class SendContact(ContactContent, OnInstance):
    pass


class SendSticker(StickerContent, OnInstance):
    pass


class SendPoll(PollContent, OnInstance):
    pass


class SendReaction(ReactionContent, OnInstance):
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


class RoutedLocation(LocationContent, ToClient):
    type: Literal["location"]


class RoutedContact(ContactContent, ToClient):
    type: Literal["contact"]


class RoutedSticker(StickerContent, ToClient):
    type: Literal["sticker"]


class RoutedPoll(PollContent, ToClient):
    type: Literal["poll"]


# A reaction is not routed: only the instance that has the message can react to it.
Routed = (
    RoutedText
    | RoutedImage
    | RoutedDocument
    | RoutedAudio
    | RoutedVideo
    | RoutedLocation
    | RoutedContact
    | RoutedSticker
    | RoutedPoll
)


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
    error_code: ErrorCode | None = Field(description="why it failed (or was flushed), for programs")
    metadata: dict[str, Any] | None = Field(description="the send's own metadata, as it was given")
    text: str | None
    caption: str | None
    wa_message_id: str | None
    attempts: int
    possibly_duplicated: bool
    transactional: bool
    quoted_message_id: str | None
    mentions: list[str]
    typing_ms: int = Field(description='how long "typing..." shows (or showed) before the send')
    location: Location | None
    contacts: list[Contact] | None
    poll: Poll | None
    emoji: str | None
    target_message_id: str | None = Field(description="what a reaction, an edit or a deletion is about")
    target: MessageRef | None = Field(description="that message on WhatsApp: its id and chat")
    recipient: Recipient | None = Field(description="the account `to` resolved to; null until sent, and for groups")
    waiting: WaitingOut | None = Field(description="why a pending message waits (null once it is not pending)")


class WaitingOut(ApiModel):
    reason: WaitReason
    until: Timestamp | None = Field(description="the earliest it can go; null when that depends on something else")


def _media_url(content: Laned) -> str | None:
    for field in ("image_url", "document_url", "audio_url", "video_url", "sticker_url"):
        if hasattr(content, field):
            return str(getattr(content, field))
    return None


async def accepting(
    request: web.Request, instance_name: str, type_: SendType, content: Laned, client_ref: str | None = None
) -> Accepting:
    """The message a send body asks for, its quote or its reaction's target resolved (404/409 when
    they cannot be), and how long "typing..." shows before it."""
    svc = services(request)
    references = References(svc.redis, svc.messages)
    details = content.details()
    to, typing = "", False
    if isinstance(content, ReactionContent):
        target = await references.resolve(instance_name, content.message_id, "messageId")
        details = details.model_copy(update={"target": target})
        to = target.chat
    if isinstance(content, Content):
        to = content.to
        typing = svc.settings.lanes[content.lane].typing if content.typing is None else content.typing
        quoted = None
        if content.quoted_message_id is not None:
            quoted = await references.resolve(instance_name, content.quoted_message_id, "quotedMessageId")
            if quoted.chat != to:
                raise InvalidState(
                    f"quotedMessageId {content.quoted_message_id!r} is in the chat with {quoted.chat}, not {to}"
                )
        details = details.model_copy(update={"quoted": quoted, "mentions": tuple(content.mentions)})
    message = Message.new(
        new_message_id(),
        instance_name,
        content.lane,
        to,
        type_,
        text=getattr(content, "text", None),
        caption=getattr(content, "caption", None),
        media_url=_media_url(content),
        file_name=getattr(content, "file_name", None),
        quoted_message_id=getattr(content, "quoted_message_id", None),
        details=details.stored(),
        transactional=content.transactional,
        typing_ms=typing_ms(type_, typing, content.typed_text()),
        metadata=stored_metadata(content.metadata),
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


async def enqueue(request: web.Request, item: Accepting, status: int = 202) -> web.Response:
    """Queue one message (recorded, in its lane, its instance woken) and answer that it is queued.
    On the send routes the API key is checked in that same step (Route.checks_key)."""
    instance_name = item.message.instance_name
    check = key_check(request)
    if check is None:
        require_instance_access(request, instance_name)
    accepted = await services(request).lanes.accept(instance_name, [item], check)
    if check is not None:
        checked_caller(request, check, accepted.tenant, accepted.count)
        require_instance_access(request, instance_name)
    if accepted.full:
        raise _queue_full(request, instance_name)
    if accepted.earlier is None:
        raise NotFound(f"no instance {instance_name!r}")
    return json_response(_queued(item), status=status)


def _queue_full(request: web.Request, name: str) -> QueueFull:
    limit = services(request).settings.queue_limit
    return QueueFull(
        f"instance {name!r} already has {limit} messages waiting (GATEWAY_QUEUE_LIMIT); nothing was queued",
        headers={"Retry-After": "60"},
    )


async def _send(request: web.Request, body: OnInstance, type_: SendType) -> web.Response:
    assert isinstance(body, Laned)
    if body.refers():
        # A quote or a reaction's target is looked up before the message is accepted: only for a
        # caller known to have access to the instance (no key check left for the accept step).
        await caller_now(request)
        require_instance_access(request, body.instance_name)
    return await enqueue(request, await accepting(request, body.instance_name, type_, body))


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


async def send_location(request: web.Request, body: SendLocation) -> web.Response:
    return await _send(request, body, "location")


async def send_contact(request: web.Request, body: SendContact) -> web.Response:
    return await _send(request, body, "contact")


async def send_sticker(request: web.Request, body: SendSticker) -> web.Response:
    return await _send(request, body, "sticker")


async def send_poll(request: web.Request, body: SendPoll) -> web.Response:
    return await _send(request, body, "poll")


async def send_reaction(request: web.Request, body: SendReaction) -> web.Response:
    return await _send(request, body, "reaction")


async def send_routed(request: web.Request, body: RouteTarget) -> web.Response:
    target = body.root
    require_tenant_access(request, target.tenant_id)
    svc = services(request)
    name = await svc.instances.next_open(target.tenant_id, target.client_id)
    if name is None:
        raise InvalidState(
            f"client {target.client_id!r} of tenant {target.tenant_id!r} has no open instance: nothing was queued"
        )
    return await enqueue(request, await accepting(request, name, target.type, target))


async def get_message(request: web.Request) -> web.Response:
    message = await services(request).messages.get(request.match_info["id"])
    if message is None:
        raise NotFound(f"no message {request.match_info['id']!r} (finished messages are kept for a limited time)")
    principal(request).require(message.tenant_id, f"message {message.id!r}")
    heads = await services(request).lanes.waiting(message.instance_name) if message.status == "pending" else {}
    return json_response(message_out(message, heads))


class RecentQuery(ApiModel):
    limit: int = Field(default=20, ge=1, le=RECENT_KEPT)


class MessageList(ApiModel):
    messages: list[MessageOut]


async def list_recent(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    query = validate(RecentQuery, dict(request.query))
    svc = services(request)
    recent = await svc.messages.recent(instance.name, query.limit)
    heads = await svc.lanes.waiting(instance.name) if any(m.status == "pending" for m in recent) else {}
    return json_response(MessageList(messages=[message_out(message, heads) for message in recent]))


def waiting_out(message: Message, heads: dict[LaneName, tuple[str, Waiting]]) -> WaitingOut | None:
    """Why a pending message waits: its lane head's reason when it is the head, else `queued`."""
    if message.status != "pending":
        return None
    head, waits = heads.get(message.lane, ("", BEHIND))
    found = waits if head == message.id else BEHIND
    return WaitingOut(reason=found.reason, until=iso_from_ms(found.until_ms) if found.until_ms is not None else None)


def message_out(message: Message, heads: dict[LaneName, tuple[str, Waiting]] | None = None) -> MessageOut:
    """The record as the API answers it; `heads` (Lanes.waiting of its instance) say why it waits."""
    detail = message.detail
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
        error_code=message.error_code,
        metadata=message.meta,
        text=message.text,
        caption=message.caption,
        wa_message_id=message.wa_message_id,
        attempts=message.attempts,
        possibly_duplicated=message.possibly_duplicated,
        transactional=message.transactional,
        quoted_message_id=message.quoted_message_id,
        mentions=list(detail.mentions),
        typing_ms=message.typing_ms,
        location=detail.location,
        contacts=list(detail.contacts) or None,
        poll=detail.poll,
        emoji=detail.emoji,
        target_message_id=detail.target_id,
        target=detail.target,
        recipient=Recipient.model_validate_json(message.recipient) if message.recipient else None,
        waiting=waiting_out(message, heads or {}),
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


class BatchLocation(SendLocation, ClientRef):
    type: Literal["location"]


class BatchContact(SendContact, ClientRef):
    type: Literal["contact"]


class BatchSticker(SendSticker, ClientRef):
    type: Literal["sticker"]


class BatchPoll(SendPoll, ClientRef):
    type: Literal["poll"]


class BatchReaction(SendReaction, ClientRef):
    type: Literal["reaction"]


BatchItem = Annotated[
    BatchText
    | BatchImage
    | BatchDocument
    | BatchAudio
    | BatchVideo
    | BatchLocation
    | BatchContact
    | BatchSticker
    | BatchPoll
    | BatchReaction,
    Field(discriminator="type"),
]


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
    items = []
    for i, m in enumerate(body.messages):
        try:
            items.append(await accepting(request, m.instance_name, m.type, m, m.client_ref))
        except (NotFound, InvalidState) as exc:  # a quote or a target that cannot be resolved
            raise type(exc)(f"message {i}: {exc.message}: nothing was queued") from None
    earlier: dict[str, str] = {}  # message id -> the id its clientRef had queued before
    by_instance: dict[str, list[Accepting]] = {}
    for item in items:
        by_instance.setdefault(item.message.instance_name, []).append(item)
    # Past the queue limit on any instance, the batch queues nothing (accept.lua checks it again,
    # atomically, for each instance).
    waiting = await svc.instances.queued_totals(names)
    for name, mine in by_instance.items():
        if waiting[name] + len(mine) > svc.settings.queue_limit:
            raise _queue_full(request, name)
    for name, mine in by_instance.items():
        accepted = await svc.lanes.accept(name, mine)
        if accepted.full:
            raise _queue_full(request, name)
        answers = accepted.earlier
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
