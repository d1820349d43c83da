"""The one way to accept a send: `accept_sends(request, items)`, for every route that queues
messages. It checks the API key, then the caller's tenant against each item's instance, then
looks up what the items refer to and accepts them, in that order whatever the route; a handler
has no order of its own to get wrong.

On the single-send routes the middleware leaves the key check to the accept step
(`Route.checks_key`): the key is checked, counted and the message recorded in one Redis step
(core/lua/accept.lua records nothing for a key that may not send there), and its findings answer
in the same order: 401 or 429 for the key, 403 for the tenant, then the accept's own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from core.errors import ForbiddenTenant, InvalidState, NotFound, QueueFull
from core.instances import tenant_of
from core.tenants import Principal
from gateway.middleware import checked_caller
from gateway.routes.content import Content, Laned, ReactionContent
from gateway.state import KEY_CHECK, principal, services
from scheduler.drivers.base import SendType
from scheduler.lanes import Accepting
from scheduler.messages import Message, new_message_id, stored_metadata
from scheduler.references import References
from scheduler.typing import typing_ms


@dataclass(frozen=True)
class Send:
    """One message a request asks for, as its body gave it."""

    instance_name: str
    type: SendType
    content: Laned
    client_ref: str | None = None


# What a route hands over: sends as given, or messages it made itself (an edit, a deletion).
Item = Send | Accepting


@dataclass(frozen=True)
class Accepted:
    item: Accepting
    earlier: str | None  # the message its clientRef had queued before (then nothing new was queued)


async def accept_sends(
    request: web.Request,
    items: Sequence[Item],
    *,
    numbered: bool = False,
    checks: Callable[[], Awaitable[None]] | None = None,
) -> list[Accepted]:
    """Accept `items` (the key check, the tenant check, the lookups, the accept, in that order), in
    one atomic step per instance; `checks` are the route's own of the whole request, made once the
    caller may use every instance named. `numbered`: the items are a list the caller numbered (a
    batch), and errors name the item by its index."""
    names = list(dict.fromkeys(_instance(item) for item in items))
    # The key check the middleware left to this step (Route.checks_key), if it did: taken once.
    check = request.pop(KEY_CHECK, None)
    refers = any(isinstance(item, Send) and item.content.refers() for item in items)
    if check is not None and (len(names) > 1 or refers or checks is not None):
        # Lookups and checks come after the key check: it is made now, in a round trip of its own.
        checked_caller(request, check, *await services(request).gatekeeper.count(check))
        check = None
    if check is None:
        _tenant_check(principal(request), items, numbered)
        if checks is not None:
            await checks()
    ready = []
    for i, item in enumerate(items):
        try:
            ready.append(item if isinstance(item, Accepting) else await accepting(request, item))
        except (NotFound, InvalidState) as exc:  # a quote or a target that cannot be resolved
            if not numbered:
                raise
            raise type(exc)(f"message {i}: {exc.message}: nothing was queued") from None
    by_instance: dict[str, list[Accepting]] = {name: [] for name in names}
    for item in ready:
        by_instance[item.message.instance_name].append(item)
    svc = services(request)
    if len(names) > 1:
        # Past the queue limit on any instance, nothing is queued (accept.lua checks it again,
        # atomically, for each instance).
        waiting = await svc.instances.queued_totals(names)
        for name, mine in by_instance.items():
            if waiting[name] + len(mine) > svc.settings.queue_limit:
                raise queue_full(request, name)
    # One atomic step per instance, all asked for at once: they go to Redis together, in one round
    # trip (core/scripts.py), however many instances a batch names.
    accepts = [svc.lanes.accept(name, mine, check) for name, mine in by_instance.items()]
    answers = [await accepts[0]] if len(accepts) == 1 else await asyncio.gather(*accepts)
    earlier: dict[str, str | None] = {}
    others = len(by_instance) > 1  # a problem found now, after the checks: the other instances' were queued
    for (name, mine), accepted in zip(by_instance.items(), answers, strict=True):
        if check is not None:  # what the accept step found for the key: the key, then its tenant
            _tenant_check(checked_caller(request, check, accepted.tenant, accepted.count), items, numbered)
        if accepted.full:
            raise queue_full(request, name, others_queued=others)
        if accepted.earlier is None:
            if others:
                raise NotFound(
                    f"instance {name!r} was deleted while the batch was queued; its messages were not, "
                    "the other instances' were"
                )
            raise NotFound(f"no instance {name!r}" + (": nothing was queued" if numbered else ""))
        earlier.update({item.message.id: e for item, e in zip(mine, accepted.earlier, strict=True)})
    return [Accepted(item, earlier[item.message.id]) for item in ready]


def _instance(item: Item) -> str:
    return item.instance_name if isinstance(item, Send) else item.message.instance_name


def _tenant_check(caller: Principal, items: Sequence[Item], numbered: bool) -> None:
    """403 when an item is for an instance of another tenant than the caller's."""
    if not numbered:
        for item in items:
            caller.require(tenant_of(_instance(item)), f"instance {_instance(item)!r}")
        return
    foreign = []
    for i, item in enumerate(items):
        try:
            caller.require(tenant_of(_instance(item)), "")
        except ForbiddenTenant:
            foreign.append(i)
    if foreign:
        raise ForbiddenTenant(f"messages {foreign} are for instances of another tenant: nothing was queued")


def queue_full(request: web.Request, name: str, others_queued: bool = False) -> QueueFull:
    limit = services(request).settings.queue_limit
    queued = "its messages were not queued, the other instances' were" if others_queued else "nothing was queued"
    return QueueFull(
        f"instance {name!r} already has {limit} messages waiting (GATEWAY_QUEUE_LIMIT); {queued}",
        headers={"Retry-After": "60"},
    )


def _media_url(fields: dict[str, Any]) -> str | None:
    for field in ("image_url", "document_url", "audio_url", "video_url", "sticker_url"):
        if field in fields:
            return str(fields[field])
    return None


async def accepting(request: web.Request, send: Send) -> Accepting:
    """The message a send asks for, its quote or its reaction's target resolved (404/409 when
    they cannot be), and how long "typing..." shows before it."""
    svc = services(request)
    references = References(svc.redis, svc.messages)
    content, instance_name = send.content, send.instance_name
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
        if quoted is not None or content.mentions:
            details = details.model_copy(update={"quoted": quoted, "mentions": tuple(content.mentions)})
    fields = vars(content)  # the kind's fields by name (a kind without one has no such key)
    message = Message.new(
        new_message_id(),
        instance_name,
        content.lane,
        to,
        send.type,
        text=fields.get("text"),
        caption=fields.get("caption"),
        media_url=_media_url(fields),
        file_name=fields.get("file_name"),
        quoted_message_id=fields.get("quoted_message_id"),
        details=details.stored(),
        transactional=content.transactional,
        typing_ms=typing_ms(send.type, typing, content.typed_text()),
        metadata=stored_metadata(content.metadata),
    )
    return Accepting(message, client_ref=send.client_ref)
