"""The send routes, one per kind of the table (gateway/routes/send_kinds.py), campaigns
(`/message/batch`) and routed sends (`/message/route`), all accepted through
gateway/routes/accepting.py; and reading messages back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from aiohttp import web
from pydantic import Field, RootModel

from config.settings import LaneName
from core.clock import iso_from_ms
from core.errors import InvalidState, Issue, NotFound, ValidationFailed
from core.records import ApiModel, ErrorCode, Timestamp
from gateway.responses import json_response
from gateway.routes.accepting import Accepted, Item, Send, accept_sends
from gateway.routes.content import Laned
from gateway.routes.send_kinds import SEND_KINDS, ClientRef, OnInstance, SendKind, ToClient
from gateway.routing import Handler, Route
from gateway.state import accessible_instance, principal, require_tenant_access, services
from gateway.validation import validate
from scheduler.drivers.base import Contact, Location, MessageRef, Poll, SendType
from scheduler.event_data import Recipient
from scheduler.lanes import BEHIND, Accepting, Waiting, WaitReason
from scheduler.messages import RECENT_KEPT, Message
from scheduler.messages import Status as MessageStatus

if TYPE_CHECKING:  # what every member of the unions below has, as mypy sees them

    class Routed(Laned, ToClient):
        type: SendType

    class BatchItem(Laned, OnInstance, ClientRef):
        type: SendType

else:  # unions made from the table, one member per kind (Union[...] builds one from a tuple)
    Routed = Union[tuple(kind.to_client() for kind in SEND_KINDS if kind.routed)]  # noqa: UP007
    BatchItem = Annotated[Union[tuple(kind.batch_item() for kind in SEND_KINDS)], Field(discriminator="type")]  # noqa: UP007


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


def _queued_fields(message: Message) -> dict[str, Any]:
    """What every answer to a send queued now says of it (Queued, and a batch's records)."""
    return {
        "id": message.id,
        "status": "pending",
        "lane": message.lane,
        "queued_at": message.created_at,
        "instance_name": message.instance_name,
    }


def queued_answer(item: Accepting) -> Queued:
    """The answer to a send queued now: 202 and this."""
    return Queued(**_queued_fields(item.message))


async def enqueue(request: web.Request, item: Item) -> web.Response:
    """Accept one message and answer that it is queued."""
    (accepted,) = await accept_sends(request, [item])
    return json_response(queued_answer(accepted.item), status=202)


def _send_handler(kind: SendKind) -> Handler:
    async def send(request: web.Request, body: Any) -> web.Response:
        (accepted,) = await accept_sends(request, [Send(body.instance_name, kind.name, body)])
        return json_response(queued_answer(accepted.item), status=202)

    send.__name__ = send.__qualname__ = f"send_{kind.name}"
    return send


SEND_ROUTES = [
    Route("POST", f"/message/{kind.name}", _send_handler(kind), kind.summary, body=kind.on_instance(),
          response=Queued, status=202, tag="messages", checks_key=True)
    for kind in SEND_KINDS
]  # fmt: skip


async def send_routed(request: web.Request, body: RouteTarget) -> web.Response:
    target = body.root
    require_tenant_access(request, target.tenant_id)
    svc = services(request)
    name = await svc.instances.next_open(target.tenant_id, target.client_id)
    if name is None:
        raise InvalidState(
            f"client {target.client_id!r} of tenant {target.tenant_id!r} has no open instance: nothing was queued"
        )
    return await enqueue(request, Send(name, target.type, target))


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

    async def checks() -> None:
        seen: dict[tuple[str, str], int] = {}
        issues = []
        for i, m in enumerate(body.messages):
            if m.client_ref is not None:
                first = seen.setdefault((m.instance_name, m.client_ref), i)
                if first != i:
                    issues.append(Issue(("messages", i, "clientRef"), f"repeats the clientRef of message {first}"))
        if issues:
            raise ValidationFailed(issues)
        names = list(dict.fromkeys(m.instance_name for m in body.messages))
        found = await services(request).instances.exist(names)
        missing = [name for name, known in zip(names, found, strict=True) if not known]
        if missing:
            raise NotFound(f"no instance {', '.join(map(repr, missing))}: nothing was queued")

    sends = [Send(m.instance_name, m.type, m, m.client_ref) for m in body.messages]
    accepted = await accept_sends(request, sends, numbered=True, checks=checks)
    records = [await _batch_record(request, one) for one in accepted]
    return json_response(BatchAccepted(accepted=records), status=202)


async def _batch_record(request: web.Request, accepted: Accepted) -> BatchRecord:
    record = BatchRecord(**_queued_fields(accepted.item.message), client_ref=accepted.item.client_ref, replayed=False)
    if accepted.earlier is None:
        return record
    replay = await services(request).messages.get(accepted.earlier)
    if replay is None:
        return record
    return record.model_copy(
        update={"id": replay.id, "status": replay.status, "lane": replay.lane,
                "queued_at": replay.created_at, "replayed": True}
    )  # fmt: skip
