"""What the per-instance settings (core/instance_settings.py) do on the worker hosting the number,
and the call and group events. Settings are read from the instance's record where they are needed,
so a PATCH holds from the next event on, across restarts and adoption, without a reconnect; only
the proxy and the presence need telling the session (`apply`, after a PATCH).

- `rejectCalls`: a call is declined, `call.rejected` fires and `rejectCallMessage`, if any, is
  queued to the caller in the urgent lane (so gaps and quotas hold for it as for any send).
- `alwaysOnline`: presence `available` on every connect, and at once when switched on
  (`unavailable` when switched off).
- `autoRead`: every message received is marked read once its event is out.
- `ignoreGroups`: no `message.*` events from group chats at all (their reactions, edits and
  deletions included: without the messages they would point at nothing).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import structlog
from pydantic import Field

from core.clock import iso
from core.instance_settings import InstanceSettings
from core.instances import Instances
from core.records import ApiModel
from scheduler.drivers.base import (
    CallReceived,
    DriverError,
    GroupEvent,
    GroupParticipants,
    GroupUpdated,
    Inbound,
    MessageReceived,
    PresenceState,
    Session,
)
from scheduler.lanes import Accepting, Lanes
from scheduler.messages import Message, new_message_id
from webhooks.outbox import Outbox

log = structlog.get_logger(__name__)


class CallReceivedData(ApiModel):
    """Someone calls the number."""

    call_id: str
    sender: str | None = Field(alias="from", description="the caller's number; null when only a LID is known")
    from_lid: str | None
    is_video: bool
    is_group: bool
    timestamp: str


class CallRejectedData(ApiModel):
    """A call was declined (the number's `rejectCalls` setting); a rejection WhatsApp refuses is only logged."""

    call_id: str
    sender: str | None = Field(alias="from")
    message_id: str | None = Field(description="the rejectCallMessage queued to the caller (GET /message/{id})")


class GroupParticipantsData(ApiModel):
    """Members of a group the number is in were added, removed, promoted or demoted."""

    group_id: str
    action: Literal["add", "remove", "promote", "demote"]
    participants: list[str] = Field(description="numbers; `<lid>@lid` for members known only by LID")
    by: str | None = Field(description="who made the change; null when unknown or self-joined")


class GroupUpdatedData(ApiModel):
    """A group's subject, description or settings changed."""

    group_id: str
    by: str | None
    subject: str | None = Field(description="null when unchanged, as every field below")
    description: str | None
    announce: bool | None = Field(description="only admins write")
    locked: bool | None = Field(description="only admins edit the group's info")


class PerNumber:
    def __init__(self, instances: Instances, outbox: Outbox, lanes: Lanes, timeout: float) -> None:
        self.instances = instances
        self.outbox = outbox
        self.lanes = lanes
        self.timeout = timeout  # for each request to WhatsApp (GATEWAY_ACTION_TIMEOUT)
        self._online: dict[str, bool] = {}  # alwaysOnline as last applied to each connected session

    async def settings(self, name: str) -> InstanceSettings:
        return await self.instances.settings(name)

    async def connecting(self, name: str, session: Session) -> None:
        """Before a session connects: its proxy."""
        await session.use_proxy((await self.settings(name)).proxy_url)

    async def connected(self, name: str, session: Session | None) -> None:
        online = (await self.settings(name)).always_online
        self._online[name] = online
        if online and session is not None:
            await self._ask(name, "setting the presence", session.set_presence("available"))

    def disconnected(self, name: str) -> None:
        self._online.pop(name, None)

    async def apply(self, name: str, session: Session, connected: bool) -> None:
        """After the settings changed: a new proxy (the session reconnects through it), and the
        presence when alwaysOnline was switched while connected."""
        settings = await self.settings(name)
        await session.use_proxy(settings.proxy_url)
        if connected and self._online.get(name) != settings.always_online:
            self._online[name] = settings.always_online
            state: PresenceState = "available" if settings.always_online else "unavailable"
            await self._ask(name, "setting the presence", session.set_presence(state))

    async def admits(self, name: str, event: Inbound) -> bool:
        """Whether the event is forwarded at all (ignoreGroups)."""
        return event.chat_id is None or not (await self.settings(name)).ignore_groups

    async def received(self, name: str, event: Inbound, session: Session | None) -> None:
        """After a message's event is out: mark it read (autoRead)."""
        if not isinstance(event, MessageReceived) or event.from_me or session is None:
            return
        chat = event.chat_id or event.sender
        if chat is None or not (await self.settings(name)).auto_read:
            return
        await self._ask(name, "marking the message read", session.mark_read(chat, [event.message_id]))

    async def call(self, name: str, call: CallReceived, session: Session | None) -> None:
        caller = call.caller or (f"{call.caller_lid}@lid" if call.caller_lid else "")
        received = CallReceivedData.model_validate(
            {
                "callId": call.call_id,
                "from": call.caller,
                "fromLid": call.caller_lid,
                "isVideo": call.is_video,
                "isGroup": call.is_group,
                "timestamp": iso(call.timestamp),
            }
        )
        await self.outbox.publish(name, "call.received", received)
        settings = await self.settings(name)
        if not settings.reject_calls or session is None:
            return
        if not await self._ask(name, "rejecting the call", session.reject_call(call.call_id, caller)):
            return
        message_id = None
        if settings.reject_call_message and call.caller:
            message_id = await self._queue_reply(name, call.caller, settings.reject_call_message)
        rejected = CallRejectedData.model_validate(
            {"callId": call.call_id, "from": call.caller, "messageId": message_id}
        )
        await self.outbox.publish(name, "call.rejected", rejected)

    async def _queue_reply(self, name: str, to: str, text: str) -> str | None:
        message = Message.new(new_message_id(), name, "urgent", to, "text", text=text)
        accepted = await self.lanes.accept(name, [Accepting(message)])
        return message.id if accepted.earlier is not None else None

    async def group(self, name: str, event: GroupEvent) -> None:
        match event:
            case GroupParticipants():
                data: ApiModel = GroupParticipantsData(
                    group_id=event.group_id, action=event.action, participants=list(event.participants), by=event.by
                )
                await self.outbox.publish(name, "group.participants", data)
            case GroupUpdated():
                data = GroupUpdatedData.model_validate(vars(event))
                await self.outbox.publish(name, "group.updated", data)

    async def _ask(self, name: str, what: str, call: Any) -> bool:
        """Run a request the settings make of WhatsApp; a failure is logged, not raised: the event
        that caused it is delivered all the same."""
        try:
            await asyncio.wait_for(call, self.timeout)
        except (DriverError, TimeoutError) as exc:
            log.warning("settings.request_failed", instance=name, what=what, error=str(exc) or type(exc).__name__)
            return False
        return True
