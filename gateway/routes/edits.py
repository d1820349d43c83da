"""Sends about a message already sent: edit it (`POST /message/{id}/edit`), or cancel it while it
waits and delete it for everyone once sent (`DELETE /message/{id}`). Each edit or deletion is
queued through the lanes like any send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from config.settings import LaneName
from core.errors import InvalidState, NotFound
from core.records import ApiModel
from gateway.responses import json_response
from gateway.routes.content import MAX_TEXT, Metadata
from gateway.routes.messages import enqueue, message_out
from gateway.state import principal, services
from scheduler.lanes import Accepting
from scheduler.messages import Details, Message, new_message_id, stored_metadata
from scheduler.references import POINTERS, SENT, References

# WhatsApp lets a sender edit a text for about 15 minutes after sending it.
EDIT_WINDOW = timedelta(minutes=15)
CANCELLED_BY_CLIENT = "cancelled by the client (DELETE /message/{id}) before it was sent"


class EditBody(ApiModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    lane: LaneName | None = Field(default=None, description="default: the lane the text was sent on")
    metadata: Metadata | None = Field(default=None, description="default: the edited message's metadata")


async def _own_message(request: web.Request) -> Message:
    message_id = request.match_info["id"]
    message = await services(request).messages.get(message_id)
    if message is None:
        raise NotFound(f"no message {message_id!r} (finished messages are kept for a limited time)")
    principal(request).require(message.tenant_id, f"message {message_id!r}")
    return message


def _about(
    original: Message,
    type_: Literal["edit", "delete"],
    lane: LaneName,
    text: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Accepting:
    """A send of `type_` (edit, delete) about `original`, which was sent; it carries `metadata`,
    else the original's."""
    target = References.sent_ref(original.instance_name, original, original.id, "message")
    details = Details(target=target, target_id=original.id)
    message = Message.new(
        new_message_id(),
        original.instance_name,
        lane,
        original.to,
        type_,
        text=text,
        details=details.stored(),
        metadata=stored_metadata(metadata) if metadata is not None else original.metadata,
    )
    return Accepting(message)


async def edit_message(request: web.Request, body: EditBody) -> web.Response:
    original = await _own_message(request)
    what = f"message {original.id!r}"
    if original.type != "text":
        raise InvalidState(f"{what} is a {original.type}: only a text can be edited")
    if original.status not in SENT:
        raise InvalidState(f"{what} is {original.status}: only a sent text can be edited")
    sent_at = datetime.fromisoformat(original.sent_at or original.created_at)
    if datetime.now(UTC) - sent_at > EDIT_WINDOW:
        raise InvalidState(f"{what} is too old to edit: WhatsApp allows edits for 15 minutes after sending")
    return await enqueue(request, _about(original, "edit", body.lane or original.lane, body.text, body.metadata))


async def delete_message(request: web.Request) -> web.Response:
    """Waiting: cancelled (200, the record). Sent: deleted for everyone (202, the deletion queued)."""
    message = await _own_message(request)
    what = f"message {message.id!r}"
    svc = services(request)
    if message.status == "pending":
        if await svc.lanes.cancel(message.instance_name, message.id, CANCELLED_BY_CLIENT):
            cancelled = await svc.messages.get(message.id)
            assert cancelled is not None
            return json_response(message_out(cancelled))
        raise InvalidState(f"{what} was picked for sending meanwhile: it can be deleted once it is sent")
    if message.status == "sending":
        raise InvalidState(f"{what} is being sent right now: it can be deleted once it is sent")
    if message.status not in SENT:
        raise InvalidState(f"{what} is {message.status}: it was never sent, so there is nothing to delete")
    if message.type in POINTERS:
        raise InvalidState(f"{what} is a {message.type}: there is nothing to delete for everyone")
    return await enqueue(request, _about(message, "delete", message.lane))
