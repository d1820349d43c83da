"""Conversation actions: synchronous calls carried out by the worker hosting the instance's session
(`scheduler/actions.py`). 409 when the instance is not open; 502 `whatsapp_error` when WhatsApp
fails or does not answer within `GATEWAY_ACTION_TIMEOUT`; 503 when no worker answers at all."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from core.errors import InvalidState
from core.records import ApiModel
from gateway.responses import json_response
from gateway.state import accessible_instance, services
from gateway.validation import PhoneNumber, WaMessageId
from scheduler import instance_commands as command

# Beyond the worker's own deadline for WhatsApp, so its answer (a 502 naming the action) comes first.
WORKER_MARGIN = 5.0


class CheckNumbers(ApiModel):
    numbers: list[PhoneNumber] = Field(min_length=1, max_length=50)


class NumberStatus(ApiModel):
    number: str
    on_whatsapp: bool = Field(alias="onWhatsApp")
    jid: str | None = Field(description="the account's WhatsApp id, where messages to the number go")
    lid: str | None = Field(description="the account's LID (WhatsApp's privacy identifier); null if unknown")


class LidOut(ApiModel):
    lid: str
    number: str | None = Field(description="the number behind the LID; null when WhatsApp does not tell")


class ProfileOut(ApiModel):
    number: str
    name: str | None
    picture_url: str | None
    about: str | None


class MarkRead(ApiModel):
    message_ids: list[WaMessageId] = Field(
        min_length=1, max_length=100, description="WhatsApp ids of messages received in the chat (webhook messageId)"
    )


class PresenceBody(ApiModel):
    state: Literal["available", "unavailable"]


class GroupSummary(ApiModel):
    group_id: str
    subject: str
    participants_count: int
    is_admin: bool = Field(description="whether the instance's number administers the group")


class Participant(ApiModel):
    phone_number: str | None = Field(description="null when WhatsApp shows the member only by LID")
    is_admin: bool


class GroupOut(ApiModel):
    group_id: str
    subject: str
    description: str | None
    participants: list[Participant]


async def act(request: web.Request, action: command.ActionCommand) -> dict[str, Any]:
    instance = await accessible_instance(request)
    if instance.state != "open":
        raise InvalidState(f"instance is {instance.state}, not open: link it and wait for state 'open'")
    svc = services(request)
    return await svc.commands.call(instance.name, action, timeout=svc.settings.action_timeout + WORKER_MARGIN)


async def check_numbers(request: web.Request, body: CheckNumbers) -> web.Response:
    numbers = list(dict.fromkeys(body.numbers))  # each number once, in the order given
    answer = await act(request, command.CheckNumbers(numbers=tuple(numbers)))
    return json_response([NumberStatus.model_validate(result) for result in answer["results"]])


async def get_lid(request: web.Request) -> web.Response:
    answer = await act(request, command.LookUpLid(lid=request.match_info["lid"]))
    return json_response(LidOut.model_validate(answer))


async def get_profile(request: web.Request) -> web.Response:
    answer = await act(request, command.ReadProfile(number=request.match_info["number"]))
    return json_response(ProfileOut.model_validate(answer))


async def mark_read(request: web.Request, body: MarkRead) -> web.Response:
    await act(request, command.MarkRead(chat_id=request.match_info["chatId"], message_ids=tuple(body.message_ids)))
    return web.Response(status=204)


async def set_presence(request: web.Request, body: PresenceBody) -> web.Response:
    await act(request, command.SetPresence(state=body.state))
    return web.Response(status=204)


async def list_groups(request: web.Request) -> web.Response:
    answer = await act(request, command.ListGroups())
    return json_response([GroupSummary.model_validate(group) for group in answer["groups"]])


async def get_group(request: web.Request) -> web.Response:
    answer = await act(request, command.ReadGroup(group_id=request.match_info["groupId"]))
    return json_response(GroupOut.model_validate(answer))
