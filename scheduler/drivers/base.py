"""The WhatsApp driver interface: one small surface, two drivers (neonize, sandbox).

A driver hands out one `Session` per instance (one WhatsApp number). Sessions report what
happens on the WhatsApp side as `DriverEvent` values through an async sink; the worker turns
them into instance state and webhook events.

Exception tree::

    DriverError                 the WhatsApp side refused or failed
     +-- TransientDriverError   worth retrying later (network blip, not connected yet)
     +-- OutcomeUnknownError    the send may or may not have gone out (timeout)
     +-- NotOnWhatsAppError     the recipient number has no WhatsApp account
     +-- NotLinkedError         the session has no linked device (needs a QR / pairing code)
     +-- UnknownChatError       no such group (or not one of ours), or a message this session never saw
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from pydantic import ConfigDict

from core.records import ApiModel, Command, ErrorCode

MessageType = Literal[
    "conversation",
    "imageMessage",
    "documentMessage",
    "audioMessage",
    "videoMessage",
    "stickerMessage",
    "locationMessage",
    "contactMessage",
    "pollCreationMessage",
    "unsupported",  # a kind we do not map yet; `raw_type` names it
]
SendType = Literal[
    "text",
    "image",
    "document",
    "audio",
    "video",
    "location",
    "contact",
    "sticker",
    "poll",
    "reaction",
    "edit",
    "delete",
]
GROUP_SUFFIX = "@g.us"
LID_SUFFIX = "@lid"
ReceiptStatus = Literal["delivered", "read"]
PresenceState = Literal["available", "unavailable"]
ParticipantAction = Literal["add", "remove", "promote", "demote"]


class DriverError(Exception):
    """The WhatsApp side refused or failed; `code` is the errorCode a send failed by it ends with."""

    code: ErrorCode = "whatsapp_error"


class TransientDriverError(DriverError):
    pass


class OutcomeUnknownError(DriverError):
    pass


class NotOnWhatsAppError(DriverError):
    code: ErrorCode = "not_on_whatsapp"


class NotLinkedError(DriverError):
    code: ErrorCode = "logged_out"


class UnknownChatError(DriverError):
    code: ErrorCode = "invalid_recipient"


@dataclass(frozen=True)
class QrCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Connected:
    phone_number: str


@dataclass(frozen=True)
class Disconnected:
    reason: str
    logged_out: bool = False


@dataclass(frozen=True)
class QrExpired:
    pass


@dataclass(frozen=True)
class Banned:
    reason: str
    expires_at: datetime | None


@dataclass(frozen=True)
class InboundMedia:
    """Media a contact sent, as WhatsApp describes it, with its bytes once the driver downloaded
    them (or why it could not: `error`)."""

    mimetype: str | None = None
    size: int | None = None  # bytes, as WhatsApp declares it
    file_name: str | None = None
    seconds: int | None = None  # audio and video
    data: bytes | None = field(default=None, repr=False)
    error: str | None = None


class _Value(ApiModel):
    """A value inside an inbound message; camelCase on the wire, like the API's bodies."""

    model_config = ConfigDict(frozen=True)


class Location(_Value):
    """A place shared in a message."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class Contact(_Value):
    """A contact card shared in a message."""

    full_name: str
    phone_number: str | None = None
    organization: str | None = None


class Poll(_Value):
    """A poll: `selectableCount` is how many options a voter may pick, 0 for any number."""

    question: str
    options: tuple[str, ...]
    selectable_count: int = 1


class MessageRef(_Value):
    """A WhatsApp message a send points at: the one it quotes, or the one a reaction, an edit or a
    deletion is about. `from_me` when this number wrote it; else `sender` is who did: a number,
    `<lid>@lid` when WhatsApp only told us a LID, None when it told us nothing (never "us")."""

    message_id: str
    chat: str  # a phone number, a group id or `<lid>@lid`
    from_me: bool = False
    sender: str | None = None
    text: str | None = None  # its text, shown in a quote's preview


def is_group(address: str) -> bool:
    """Whether a recipient (`to`) is a group id rather than a phone number."""
    return address.endswith(GROUP_SUFFIX)


def is_lid(address: str) -> bool:
    """Whether a recipient (`to`) is a LID chat (`<digits>@lid`) rather than a phone number."""
    return address.endswith(LID_SUFFIX)


@dataclass(frozen=True)
class Account:
    """The WhatsApp account a spelling of a number (or a LID) resolves to: its number (the JID's
    user; None when WhatsApp hides it), its LID (None when unknown) and the JID a send goes to."""

    number: str | None
    lid: str | None
    jid: str

    def identities(self) -> tuple[str, ...]:
        """What the per-person rules (opt-outs, spacing, first contacts) may have it under."""
        return tuple(i for i in (self.number, f"{self.lid}{LID_SUFFIX}" if self.lid else None) if i)


@dataclass(frozen=True, kw_only=True)
class Inbound:
    """What every event from a contact carries: its own WhatsApp id, who sent it and where.

    `sender` is the phone number (digits), None when WhatsApp only told us a LID (`sender_lid`);
    `chat_id` is the group id (`...@g.us`) in a group, None in a direct chat.
    """

    message_id: str
    sender: str | None
    sender_lid: str | None = None
    chat_id: str | None = None
    push_name: str | None = None
    timestamp: datetime
    from_me: bool = False


@dataclass(frozen=True, kw_only=True)
class MessageReceived(Inbound):
    message_type: MessageType
    text: str | None
    caption: str | None = None
    quoted_message_id: str | None = None
    mentions: tuple[str, ...] = ()
    media: InboundMedia | None = None
    location: Location | None = None
    contacts: tuple[Contact, ...] = ()
    poll: Poll | None = None
    raw_type: str | None = None  # the WhatsApp field name of an "unsupported" message


@dataclass(frozen=True, kw_only=True)
class MessageReaction(Inbound):
    target_id: str
    emoji: str  # "" when the reaction was removed


@dataclass(frozen=True, kw_only=True)
class MessageEdited(Inbound):
    target_id: str
    text: str | None


@dataclass(frozen=True, kw_only=True)
class MessageDeleted(Inbound):
    target_id: str


@dataclass(frozen=True, kw_only=True)
class PollVote(Inbound):
    poll_id: str
    # SHA-256 (hex) of each chosen option's name: what WhatsApp sends once the vote is decrypted.
    option_hashes: tuple[str, ...] = ()
    error: str | None = None  # why the vote could not be read


@dataclass(frozen=True, kw_only=True)
class HistoryMessage:
    """One message of WhatsApp's history sync: ours (`from_me`) or a contact's (`sender`, its
    number, None when only its LID is known)."""

    message_id: str
    from_me: bool
    sender: str | None = None
    sender_lid: str | None = None
    message_type: MessageType = "conversation"
    text: str | None = None
    caption: str | None = None
    timestamp: datetime


@dataclass(frozen=True)
class HistoryChat:
    chat_id: str  # a phone number, a group id or a LID chat, as `chatId` everywhere
    name: str | None
    messages: tuple[HistoryMessage, ...]


@dataclass(frozen=True)
class HistorySynced:
    """A batch of WhatsApp's history sync (it comes in several after a link)."""

    chats: tuple[HistoryChat, ...]


@dataclass(frozen=True)
class Receipt:
    message_ids: tuple[str, ...]
    status: ReceiptStatus
    timestamp: datetime


def option_hash(option: str) -> str:
    """How WhatsApp names a poll option in a vote: the SHA-256 (hex) of its text."""
    return hashlib.sha256(option.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class CallReceived:
    """Someone calls this number. `caller` is the phone number (None when WhatsApp only told the
    LID, `caller_lid`)."""

    call_id: str
    caller: str | None
    caller_lid: str | None = None
    is_video: bool = False
    is_group: bool = False
    timestamp: datetime


@dataclass(frozen=True, kw_only=True)
class GroupParticipants:
    """Members joined, left, were promoted or demoted in a group; `by` is who did it (None: unknown,
    or they joined by link). Members WhatsApp shows only by LID are given as `<lid>@lid`."""

    group_id: str
    action: ParticipantAction
    participants: tuple[str, ...]
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class GroupUpdated:
    """A group's subject, description, announce-only or locked setting changed (None: unchanged)."""

    group_id: str
    by: str | None = None
    subject: str | None = None
    description: str | None = None
    announce: bool | None = None
    locked: bool | None = None


InboundEvent = MessageReceived | MessageReaction | MessageEdited | MessageDeleted | PollVote
GroupEvent = GroupParticipants | GroupUpdated
DriverEvent = (
    QrCode
    | Connected
    | Disconnected
    | QrExpired
    | Banned
    | InboundEvent
    | Receipt
    | HistorySynced
    | CallReceived
    | GroupEvent
)
EventSink = Callable[[DriverEvent], Awaitable[None]]


@dataclass(frozen=True)
class OutgoingMessage:
    to: str
    type: SendType
    text: str | None = None
    caption: str | None = None
    media: bytes | None = None
    mimetype: str | None = None
    file_name: str | None = None
    media_url: str | None = None
    quoted: MessageRef | None = None
    mentions: tuple[str, ...] = ()  # phone numbers
    location: Location | None = None
    contacts: tuple[Contact, ...] = ()
    poll: Poll | None = None
    emoji: str | None = None  # a reaction's ("" removes it)
    target: MessageRef | None = None  # what a reaction, an edit or a deletion is about
    typing_ms: int = 0  # how long "typing..." was shown before the send


@dataclass(frozen=True)
class SendResult:
    message_id: str
    sent_at: datetime = field(compare=False)


# What the conversation actions answer (scheduler/actions.py).


@dataclass(frozen=True)
class Profile:
    """A contact's profile as this number may see it: None where the contact hides it."""

    name: str | None
    picture_url: str | None
    about: str | None


@dataclass(frozen=True)
class GroupMember:
    phone_number: str | None  # None when WhatsApp only shows the member's LID
    is_admin: bool


@dataclass(frozen=True)
class Group:
    group_id: str  # <digits>@g.us or <digits>-<digits>@g.us
    subject: str
    description: str | None
    members: tuple[GroupMember, ...]
    is_admin: bool  # whether this number is an admin of the group


@dataclass(frozen=True)
class ParticipantResult:
    """One participant of a group change: whether WhatsApp made it, and why not."""

    number: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class GroupChange:
    """What `update_group` changes; None leaves a field as it is."""

    subject: str | None = None
    description: str | None = None
    announce: bool | None = None
    locked: bool | None = None


class Session(Protocol):
    """One WhatsApp number, owned by exactly one worker."""

    @property
    def linked(self) -> bool:
        """True when the session store holds a linked device (no QR needed to reconnect)."""
        ...

    async def connect(self) -> None:
        """Reconnect a linked session, or start a QR cycle (QrCode events) for a new one."""
        ...

    async def pair_phone(self, phone_number: str) -> str:
        """Ask WhatsApp for an 8-character pairing code ("ABCD-EFGH") for `phone_number`."""
        ...

    async def check_numbers(self, phone_numbers: Sequence[str]) -> dict[str, Account | None]:
        """Ask WhatsApp, in one call, which numbers have an account: each number's account, or None."""
        ...

    async def number_for_lid(self, lid: str) -> str | None:
        """The number behind a LID (digits), as the session's LID store knows it; None if unknown."""
        ...

    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def profile(self, phone_number: str) -> Profile:
        """Raises NotOnWhatsAppError when the number has no account."""
        ...

    async def mark_read(self, chat_id: str, message_ids: Sequence[str]) -> None:
        """Blue ticks: the messages of a chat (a phone number or a group id) were read."""
        ...

    async def set_presence(self, state: PresenceState) -> None: ...

    async def groups(self) -> list[Group]:
        """The groups this number is in."""
        ...

    async def group(self, group_id: str) -> Group:
        """Raises UnknownChatError when there is no such group, or this number is not in it."""

    # Group management: each raises UnknownChatError for a group this number is not in.

    async def create_group(self, subject: str, participants: Sequence[str]) -> str:
        """Create a group with these phone numbers in it; returns its id."""
        ...

    async def update_participants(
        self, group_id: str, action: ParticipantAction, participants: Sequence[str]
    ) -> list[ParticipantResult]: ...

    async def invite_link(self, group_id: str, revoke: bool = False) -> str:
        """The group's invite link; with `revoke`, the old one stops working and a new one is made."""
        ...

    async def update_group(self, group_id: str, change: GroupChange) -> None: ...

    async def leave_group(self, group_id: str) -> None: ...

    async def join_group(self, invite_link: str) -> str:
        """Join by an invite link (or its code); returns the group's id."""
        ...

    # Calls and the connection.

    async def reject_call(self, call_id: str, caller: str) -> None:
        """Decline a call this session was offered (`caller`: as CallReceived told it)."""
        ...

    async def use_proxy(self, proxy_url: str | None) -> None:
        """Connect through this proxy (None: the driver's default) from now on: a connected
        session reconnects through it when it changed."""
        ...

    async def show_typing(self, to: str, typing: bool) -> None:
        """Show "typing..." in the chat with `to` (a number or a group id), or stop showing it."""
        ...

    async def logout(self) -> None:
        """Unlink the device from the phone and forget the credentials."""
        ...

    async def close(self) -> None:
        """Disconnect without logging out; the store keeps the link for the next connect."""
        ...


class PhoneControls(Protocol):
    """A simulated WhatsApp's stand-in for the phone and its contacts (the sandbox's control routes)."""

    async def control(self, command: Command) -> dict[str, str]:
        """Carry out one of the driver's own commands; `NotFound` for one it does not know."""
        ...


class Driver(Protocol):
    def session(self, instance_name: str, sink: EventSink) -> Session: ...

    def phone_controls(self, session: Session) -> PhoneControls | None:
        """The session's simulated phone, when the driver simulates WhatsApp; None otherwise."""
        ...

    def remove_store(self, instance_name: str) -> None:
        """Delete the instance's session store (after logout)."""
        ...
