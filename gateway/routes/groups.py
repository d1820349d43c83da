"""Group management (API.md, "Calls and groups"): synchronous like the other conversation actions
(`gateway/routes/conversations.py`): 409 when the instance is not open, 404 for a group the number
is not in, 502 `whatsapp_error` when WhatsApp refuses or does not answer."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StrictBool, StringConstraints, model_validator

from core.records import ApiModel
from gateway.responses import json_response
from gateway.routes.conversations import act
from gateway.validation import PhoneNumber, given
from scheduler import instance_commands as command

# A WhatsApp invite link, or its code alone.
INVITE_LINK = r"^(https://chat\.whatsapp\.com/)?[A-Za-z0-9_-]{10,64}$"
Subject = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class CreateGroup(ApiModel):
    subject: Subject
    participants: list[PhoneNumber] = Field(min_length=1, max_length=1023)


class GroupCreated(ApiModel):
    group_id: str


class ChangeParticipants(ApiModel):
    action: Literal["add", "remove", "promote", "demote"]
    participants: list[PhoneNumber] = Field(min_length=1, max_length=100)


class ParticipantOut(ApiModel):
    number: str
    ok: bool
    error: str | None = Field(description="why WhatsApp did not make the change for this number")


class InviteLink(ApiModel):
    invite_link: str


class JoinGroup(ApiModel):
    invite_link: Annotated[str, StringConstraints(pattern=INVITE_LINK)] = Field(
        description="https://chat.whatsapp.com/<code>, or the code alone"
    )


class UpdateGroup(ApiModel):
    """Any of these; what is left out (or null) stays as it is."""

    model_config = {
        **ApiModel.model_config,
        "json_schema_extra": {"anyOf": [given(field) for field in ("subject", "description", "announce", "locked")]},
    }

    subject: Subject | None = None
    description: str | None = Field(default=None, max_length=2048, description='"" removes it')
    announce: StrictBool | None = Field(default=None, description="only admins write")
    locked: StrictBool | None = Field(default=None, description="only admins edit the group's info")

    @model_validator(mode="after")
    def _something(self) -> UpdateGroup:
        if not self.model_dump(exclude_none=True):
            raise ValueError("send at least one of subject, description, announce, locked")
        return self


def _group(request: web.Request) -> str:
    return request.match_info["groupId"]


async def create_group(request: web.Request, body: CreateGroup) -> web.Response:
    participants = list(dict.fromkeys(body.participants))
    answer = await act(request, command.CreateGroup(subject=body.subject, participants=tuple(participants)))
    return json_response(GroupCreated.model_validate(answer), status=201)


async def change_participants(request: web.Request, body: ChangeParticipants) -> web.Response:
    participants = tuple(dict.fromkeys(body.participants))
    answer = await act(
        request, command.ChangeParticipants(group_id=_group(request), action=body.action, participants=participants)
    )
    return json_response([ParticipantOut.model_validate(result) for result in answer["results"]])


async def get_invite(request: web.Request) -> web.Response:
    answer = await act(request, command.InviteLink(group_id=_group(request), revoke=False))
    return json_response(InviteLink.model_validate(answer))


async def revoke_invite(request: web.Request) -> web.Response:
    """The old link stops working; the answer is the new one."""
    answer = await act(request, command.InviteLink(group_id=_group(request), revoke=True))
    return json_response(InviteLink.model_validate(answer))


async def update_group(request: web.Request, body: UpdateGroup) -> web.Response:
    await act(request, command.UpdateGroup(group_id=_group(request), **body.model_dump(exclude_none=True)))
    return web.Response(status=204)


async def leave_group(request: web.Request) -> web.Response:
    await act(request, command.LeaveGroup(group_id=_group(request)))
    return web.Response(status=204)


async def join_group(request: web.Request, body: JoinGroup) -> web.Response:
    answer = await act(request, command.JoinGroup(invite_link=body.invite_link))
    return json_response(GroupCreated.model_validate(answer))
