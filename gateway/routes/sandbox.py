"""Control routes of the sandbox driver: they stand in for the phone and the contacts."""

from __future__ import annotations

import binascii
import itertools
import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, JsonValue, WithJsonSchema, model_validator

from core import keys
from core.records import ApiModel, Command, Timestamp
from gateway.responses import json_response
from gateway.state import accessible_instance, services
from gateway.validation import GroupId, Lid, PhoneNumber, Recipient, WaMessageId, WebUrl, given
from scheduler.drivers import sandbox_controls as control
from scheduler.drivers.base import Contact, ReceiptStatus
from scheduler.drivers.sandbox_controls import (
    FailureKind,
    SandboxAccount,
    SandboxGroup,
    SandboxInbound,
    SandboxMember,
    SandboxProfile,
)

# What each messageType needs the body to carry.
_NEEDS = {"locationMessage": "location", "contactMessage": "contacts", "pollCreationMessage": "poll"}
_ACTIONS = {"reaction": "reaction", "edit": "edit", "delete": "delete", "pollVote": "poll_vote"}  # alias: field
_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"


def _needs(kind: str, alias: str) -> dict[str, Any]:
    """JSON Schema: a body whose messageType is `kind` carries `alias`."""
    type_is = {"required": ["messageType"], "properties": {"messageType": {"const": kind}}}
    return {"anyOf": [{"not": type_is}, given(alias)]}


# The rules of `InboundBody._consistent`, for the OpenAPI document (and the contract test).
_RULES: list[JsonValue] = [
    {"anyOf": [given("from"), given("fromLid")]},
    {"not": {"anyOf": [given(a, b) for a, b in itertools.combinations(_ACTIONS, 2)]}},
    {"not": given("mediaBase64", "mediaUrl")},
    {
        "anyOf": [
            {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
            *(given(action) for action in _ACTIONS),
            {
                "required": ["messageType"],
                "properties": {"messageType": {"not": {"anyOf": [{"const": "conversation"}, {"type": "null"}]}}},
            },
            {
                "not": given("messageType"),
                "anyOf": [given(alias) for alias in ("location", "contacts", "poll", "mediaBase64", "mediaUrl")],
            },
        ]
    },
    *(_needs(kind, alias) for kind, alias in _NEEDS.items()),
]


_HANG: JsonValue = {"required": ["hang"], "properties": {"hang": {"const": True}}}


class LinkBody(ApiModel):
    phone_number: PhoneNumber | None = None


class InboundBody(SandboxInbound):
    """A contact writes in: a text, media (base64 or a URL the worker downloads), a location,
    contacts, a poll; or reacts to, edits, deletes a message, or votes in a poll. In a group
    (`chatId`), `from` is the participant; `fromLid` alone is a sender WhatsApp only knows by LID."""

    model_config = {**SandboxInbound.model_config, "json_schema_extra": {"allOf": _RULES}}
    sender: PhoneNumber | None = Field(default=None, alias="from")
    from_lid: Lid | None = None
    chat_id: GroupId | None = None
    mentions: list[PhoneNumber] = Field(default_factory=list, max_length=100)
    media_base64: Annotated[str, WithJsonSchema({"type": "string", "pattern": f"^{_BASE64}$"})] | None = None
    media_url: WebUrl | None = None
    contacts: list[Contact] | None = Field(default=None, min_length=1, max_length=10)

    @model_validator(mode="after")
    def _consistent(self) -> InboundBody:
        if self.sender is None and self.from_lid is None:
            raise ValueError("from (a phone number) or fromLid (a LID) is required")
        actions = [alias for alias, field in _ACTIONS.items() if getattr(self, field) is not None]
        if len(actions) > 1:
            raise ValueError(f"send one of reaction, edit, delete or pollVote, not {' and '.join(actions)}")
        if self.media_base64 is not None and self.media_url is not None:
            raise ValueError("send mediaBase64 or mediaUrl, not both")
        if self.media_base64 is not None:
            try:
                binascii.a2b_base64(self.media_base64, strict_mode=True)
            except binascii.Error as exc:
                raise ValueError(f"mediaBase64 is not valid base64: {exc}") from None
        kind = self.kind()
        if not actions and kind == "conversation" and not self.text:
            raise ValueError("text is required when messageType is conversation")
        needed = _NEEDS.get(kind)
        if needed is not None and not getattr(self, needed):
            raise ValueError(f"{needed} is required when messageType is {kind}")
        return self


class FailNextBody(ApiModel):
    error: str = Field(min_length=1, max_length=500)
    count: int = Field(default=1, ge=1, le=10_000)
    transient: bool = False  # a passing failure (the gateway retries) rather than a refusal
    kind: FailureKind = Field(default="refused", description="how WhatsApp fails the send (when not transient)")


class ReceiptBody(ApiModel):
    message_ids: list[str] = Field(min_length=1, max_length=100, description="WhatsApp message ids (waMessageId)")
    status: ReceiptStatus


class BanBody(ApiModel):
    seconds: float = Field(gt=0, le=7 * 24 * 3600)


class FailActionsBody(ApiModel):
    """The next `count` actions fail with `error`, or (`hang`) get no answer at all."""

    model_config = {**ApiModel.model_config, "json_schema_extra": {"oneOf": [given("error"), _HANG]}}
    error: str | None = Field(default=None, min_length=1, max_length=500)
    hang: bool = False
    count: int = Field(default=1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one_way(self) -> FailActionsBody:
        if (self.error is None) != self.hang:
            raise ValueError("send error (the actions fail with it) or hang: true (they get no answer), one of them")
        return self


class Member(SandboxMember):
    phone_number: PhoneNumber | None = None


class SeedGroup(SandboxGroup):
    group_id: GroupId
    subject: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2048)
    participants: Sequence[Member] = Field(default_factory=list, max_length=1024)


class GroupsBody(ApiModel):
    groups: list[SeedGroup] = Field(min_length=1, max_length=100)


class SeedProfile(SandboxProfile):
    number: PhoneNumber
    name: str | None = Field(default=None, max_length=100)
    picture_url: WebUrl | None = None
    about: str | None = Field(default=None, max_length=500)


class ProfilesBody(ApiModel):
    profiles: list[SeedProfile] = Field(min_length=1, max_length=100)


class DeclaredAccount(SandboxAccount):
    numbers: list[PhoneNumber] = Field(min_length=1, max_length=10, description="its spellings; the first is it")
    lid: Lid | None = None


class AccountsBody(ApiModel):
    accounts: list[DeclaredAccount] = Field(min_length=1, max_length=100)


class FailActionsOut(ApiModel):
    instance_name: str
    fail_actions: int


class Seeded(ApiModel):
    instance_name: str
    seeded: int


class SandboxAction(ApiModel):
    """One thing a conversation action (or a setting) asked of 'WhatsApp', with what it carried."""

    action: Literal[
        "lookup",
        "lid",
        "profile",
        "read",
        "presence",
        "groups",
        "group",
        "group_create",
        "group_participants",
        "group_invite",
        "group_update",
        "group_leave",
        "group_join",
        "call_reject",
        "proxy",
    ]
    at: Timestamp
    numbers: list[str] | None = None
    number: str | None = None
    chat_id: str | None = None
    message_ids: list[str] | None = None
    state: str | None = None
    group_id: str | None = None
    lid: str | None = None
    subject: str | None = None
    participants: list[str] | None = None
    change: str | None = Field(default=None, description="a participants change: add, remove, promote, demote")
    revoke: bool | None = None
    description: str | None = None
    announce: bool | None = None
    locked: bool | None = None
    invite_link: str | None = None
    call_id: str | None = None
    proxy_host: str | None = Field(default=None, description="the proxy now used (its host only); null: none")


class CallBody(ApiModel):
    sender: PhoneNumber = Field(alias="from")
    is_video: bool = False


class CallOut(ApiModel):
    call_id: str


class GroupEventBody(ApiModel):
    """Someone else changed a group: members (`add`, `remove`, `promote`, `demote` with
    `participants`), or with `update` its subject, description, announce or locked setting."""

    model_config = {
        **ApiModel.model_config,
        "json_schema_extra": {
            "anyOf": [
                {"required": ["action"], "properties": {"action": {"const": "update"}}},
                {"required": ["participants"], "properties": {"participants": {"minItems": 1}}},
            ]
        },
    }

    group_id: GroupId
    action: Literal["add", "remove", "promote", "demote", "update"]
    participants: list[PhoneNumber] = Field(default_factory=list, max_length=100)
    by: PhoneNumber | None = None
    subject: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2048)
    announce: bool | None = None
    locked: bool | None = None

    @model_validator(mode="after")
    def _complete(self) -> GroupEventBody:
        if self.action != "update" and not self.participants:
            raise ValueError(f"participants are required with action {self.action}")
        return self


class GroupEventOut(ApiModel):
    instance_name: str
    group_id: str


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
    jid: str | None = Field(default=None, description="where it went: the account `to` resolved to, or the chat")
    quoted_message_id: str | None = Field(default=None, description="the WhatsApp id of the message quoted")
    mentions: list[str] = Field(default_factory=list)
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    contacts: list[Contact] | None = None
    question: str | None = None
    options: list[str] | None = None
    selectable_count: int | None = None
    emoji: str | None = None
    target_message_id: str | None = Field(default=None, description="the WhatsApp id reacted to, edited or deleted")
    typing_ms: int | None = Field(default=None, description='how long "typing..." showed before the send')


async def link(request: web.Request, body: LinkBody) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, control.LinkPhone(phone_number=body.phone_number or None))
    return json_response(LinkOut(instance_name=instance.name, linked=True))


async def unlink(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, control.UnlinkPhone())
    return json_response(LinkOut(instance_name=instance.name, linked=False))


async def inbound(request: web.Request, body: InboundBody) -> web.Response:
    instance = await accessible_instance(request)
    command = control.InjectInbound.model_validate(body.model_dump(by_alias=True, mode="json"))
    result = await services(request).commands.call(instance.name, command)
    return json_response(InboundOut(message_id=result["messageId"]), status=201)


async def sent(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    raw = await services(request).redis.lrange(keys.sandbox_sent(instance.name), 0, -1)  # type: ignore[misc]
    records = [SentMessage.model_validate(json.loads(item)) for item in raw]
    return json_response(records)


async def fail_next(request: web.Request, body: FailNextBody) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, control.FailNext(**body.model_dump()))
    return json_response(FailNextOut(instance_name=instance.name, fail_next=body.count))


async def ban(request: web.Request, body: BanBody) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, control.Ban(seconds=body.seconds))
    return json_response(BanOut(instance_name=instance.name, banned_for=body.seconds))


async def receipt(request: web.Request, body: ReceiptBody) -> web.Response:
    instance = await accessible_instance(request)
    command = control.InjectReceipt(message_ids=tuple(body.message_ids), status=body.status)
    await services(request).commands.call(instance.name, command)
    return json_response(ReceiptOut(instance_name=instance.name, status=body.status))


async def fail_actions(request: web.Request, body: FailActionsBody) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, control.FailActions(**body.model_dump()))
    return json_response(FailActionsOut(instance_name=instance.name, fail_actions=body.count))


async def seed_groups(request: web.Request, body: GroupsBody) -> web.Response:
    return await _seed(request, control.SeedGroups, body, len(body.groups))


async def seed_profiles(request: web.Request, body: ProfilesBody) -> web.Response:
    return await _seed(request, control.SeedProfiles, body, len(body.profiles))


async def declare_accounts(request: web.Request, body: AccountsBody) -> web.Response:
    return await _seed(request, control.DeclareAccounts, body, len(body.accounts))


async def _seed(request: web.Request, kind: type[Command], body: ApiModel, count: int) -> web.Response:
    instance = await accessible_instance(request)
    command = kind.model_validate(body.model_dump(by_alias=True, mode="json"))
    await services(request).commands.call(instance.name, command)
    return json_response(Seeded(instance_name=instance.name, seeded=count))


async def actions(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    raw = await services(request).redis.lrange(keys.sandbox_actions(instance.name), 0, -1)  # type: ignore[misc]
    return json_response([SandboxAction.model_validate_json(item) for item in raw])


class HistoryMessageBody(ApiModel):
    message_id: WaMessageId
    from_me: bool
    sender: PhoneNumber | None = Field(default=None, alias="from", description="in a group: who wrote it")
    text: str | None = Field(default=None, max_length=1024)
    timestamp: AwareDatetime


class HistoryChatBody(ApiModel):
    chat_id: Recipient
    name: str | None = Field(default=None, max_length=200)
    messages: list[HistoryMessageBody] = Field(max_length=100)


class HistoryBody(ApiModel):
    # Small batches (as WhatsApp's come): a test sends several, and every body stays far below the
    # request size limit.
    chats: list[HistoryChatBody] = Field(min_length=1, max_length=20)


class HistoryOut(ApiModel):
    instance_name: str
    chats: int = Field(description="chats handed over as WhatsApp's history sync")
    messages: int


async def history(request: web.Request, body: HistoryBody) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(
        instance.name, control.InjectHistory.model_validate(body.model_dump(by_alias=True, mode="json"))
    )
    handed = sum(len(chat.messages) for chat in body.chats)
    return json_response(HistoryOut(instance_name=instance.name, chats=len(body.chats), messages=handed))


async def call(request: web.Request, body: CallBody) -> web.Response:
    instance = await accessible_instance(request)
    command = control.PlaceCall(caller=body.sender, is_video=body.is_video)
    result = await services(request).commands.call(instance.name, command)
    return json_response(CallOut(call_id=result["callId"]), status=201)


async def group_event(request: web.Request, body: GroupEventBody) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).commands.call(instance.name, control.InjectGroupEvent(**body.model_dump()))
    return json_response(GroupEventOut(instance_name=instance.name, group_id=body.group_id))
