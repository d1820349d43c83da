"""What the API hands the sandbox in the place of the phone and its contacts: the records the
`/sandbox/...` control routes describe (validated by the API; these are their shapes on the way to
the session), and one command per control route, carried out by `SandboxSession.control`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import Field

from core.records import ApiModel, Command
from scheduler.drivers.base import (
    Account,
    Contact,
    Group,
    GroupMember,
    Location,
    MessageType,
    Poll,
    Profile,
    ReceiptStatus,
)

# How a send the sandbox fails (fail-next) fails, as the real driver would report it.
FailureKind = Literal["refused", "not_on_whatsapp", "unknown_chat", "not_linked", "outcome_unknown"]
GroupEventAction = Literal["add", "remove", "promote", "demote", "update"]


class SandboxReaction(ApiModel):
    message_id: str
    emoji: str


class SandboxEdit(ApiModel):
    message_id: str
    text: str


class SandboxDelete(ApiModel):
    message_id: str


class SandboxPollVote(ApiModel):
    message_id: str
    options: list[str]


class SandboxInbound(ApiModel):
    """What a contact does, as `POST /sandbox/instance/{name}/inbound` describes it (the API
    validates it; this is its shape on the way to the session)."""

    sender: str | None = Field(default=None, alias="from")
    from_lid: str | None = None
    chat_id: str | None = None
    push_name: str | None = None
    message_type: MessageType | None = None
    text: str | None = None
    caption: str | None = None
    quoted_message_id: str | None = None
    mentions: list[str] = Field(default_factory=list)
    media_base64: str | None = None
    media_url: str | None = None
    mimetype: str | None = None
    file_name: str | None = None
    seconds: int | None = None
    location: Location | None = None
    contacts: list[Contact] | None = None
    poll: Poll | None = None
    reaction: SandboxReaction | None = None
    edit: SandboxEdit | None = None
    delete: SandboxDelete | None = None
    poll_vote: SandboxPollVote | None = None
    raw_type: str | None = None  # with messageType "unsupported": the WhatsApp kind it stands for

    def kind(self) -> MessageType:
        """The message type, from `messageType` or else from what the message carries."""
        if self.message_type is not None:
            return self.message_type
        if self.location is not None:
            return "locationMessage"
        if self.contacts:
            return "contactMessage"
        if self.poll is not None:
            return "pollCreationMessage"
        if self.media_base64 is not None or self.media_url is not None:
            family = (self.mimetype or "").split("/", 1)[0]
            media_types: dict[str, MessageType] = {
                "image": "imageMessage",
                "video": "videoMessage",
                "audio": "audioMessage",
            }
            return media_types.get(family, "documentMessage")
        return "conversation"


class SandboxAccount(ApiModel):
    """Spellings of one WhatsApp account and its LID, as `POST /sandbox/.../accounts` declares
    them: the account is the first number."""

    numbers: list[str]
    lid: str | None = None

    def account(self) -> Account:
        number = self.numbers[0]
        return Account(number=number, lid=self.lid, jid=f"{number}@s.whatsapp.net")


class SandboxMember(ApiModel):
    phone_number: str | None = None
    is_admin: bool = False


class SandboxGroup(ApiModel):
    """A group the number is in, as `POST /sandbox/instance/{name}/groups` seeds it (and the group
    management actions keep it)."""

    group_id: str
    subject: str
    description: str | None = None
    participants: Sequence[SandboxMember] = Field(default_factory=list)
    is_admin: bool = False  # whether the instance's own number administers it
    announce: bool = False  # only admins write
    locked: bool = False  # only admins edit the group's info
    invite_code: str | None = None  # the current invite link's code, once one was asked for

    def group(self) -> Group:
        members = tuple(GroupMember(phone_number=m.phone_number, is_admin=m.is_admin) for m in self.participants)
        return Group(self.group_id, self.subject, self.description, members, self.is_admin)


class SandboxProfile(ApiModel):
    """A contact's profile, as `POST /sandbox/instance/{name}/profiles` seeds it; `hidden`: the
    contact shows it to nobody (every field reads as null)."""

    number: str
    name: str | None = None
    picture_url: str | None = None
    about: str | None = None
    hidden: bool = False

    def profile(self) -> Profile:
        if self.hidden:
            return Profile(name=None, picture_url=None, about=None)
        return Profile(name=self.name, picture_url=self.picture_url, about=self.about)


class HistoryMessageSpec(ApiModel):
    message_id: str
    from_me: bool
    sender: str | None = Field(default=None, alias="from")
    text: str | None = None
    timestamp: datetime


class HistoryChatSpec(ApiModel):
    chat_id: str
    name: str | None = None
    messages: list[HistoryMessageSpec]


# The commands, one per control route.


class LinkPhone(Command):
    op = "sandbox.link"
    phone_number: str | None = None  # None: the instance's own default number


class UnlinkPhone(Command):
    op = "sandbox.unlink"


class InjectInbound(SandboxInbound, Command):
    op = "sandbox.inbound"


class InjectHistory(Command):
    op = "sandbox.history"
    chats: list[HistoryChatSpec]


class InjectReceipt(Command):
    op = "sandbox.receipt"
    message_ids: tuple[str, ...]
    status: ReceiptStatus


class Ban(Command):
    op = "sandbox.ban"
    seconds: float


class FailNext(Command):
    op = "sandbox.fail_next"
    error: str
    count: int = 1
    transient: bool = False
    kind: FailureKind = "refused"


class FailActions(Command):
    op = "sandbox.fail_actions"
    error: str | None = None
    hang: bool = False
    count: int = 1


class SeedGroups(Command):
    op = "sandbox.groups"
    groups: list[SandboxGroup]


class SeedProfiles(Command):
    op = "sandbox.profiles"
    profiles: list[SandboxProfile]


class DeclareAccounts(Command):
    op = "sandbox.accounts"
    accounts: list[SandboxAccount]


class PlaceCall(Command):
    op = "sandbox.call"
    caller: str = Field(validation_alias="from", serialization_alias="from")
    is_video: bool = False


class InjectGroupEvent(Command):
    op = "sandbox.group_event"
    group_id: str
    action: GroupEventAction
    participants: tuple[str, ...] = ()
    by: str | None = None
    subject: str | None = None
    description: str | None = None
    announce: bool | None = None
    locked: bool | None = None


SANDBOX_COMMANDS: tuple[type[Command], ...] = (
    LinkPhone,
    UnlinkPhone,
    InjectInbound,
    InjectHistory,
    InjectReceipt,
    Ban,
    FailNext,
    FailActions,
    SeedGroups,
    SeedProfiles,
    DeclareAccounts,
    PlaceCall,
    InjectGroupEvent,
)
