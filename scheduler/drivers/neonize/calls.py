"""The calls the worker makes into a session host: one frozen record per `Session` method, sent
as a `wire.Call` and dispatched by type in the host (`child`). Their fields are plain values and
the driver interface's own types, all the wire carries."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.drivers.base import GroupChange, OutgoingMessage, ParticipantAction, PresenceState


@dataclass(frozen=True)
class Connect:
    pass


@dataclass(frozen=True)
class PairPhone:
    phone_number: str


@dataclass(frozen=True)
class CheckNumbers:
    phone_numbers: tuple[str, ...]


@dataclass(frozen=True)
class NumberForLid:
    lid: str


@dataclass(frozen=True)
class Send:
    message: OutgoingMessage


@dataclass(frozen=True)
class ShowTyping:
    to: str
    typing: bool


@dataclass(frozen=True)
class ReadProfile:
    phone_number: str


@dataclass(frozen=True)
class MarkRead:
    chat_id: str
    message_ids: tuple[str, ...]


@dataclass(frozen=True)
class SetPresence:
    state: PresenceState


@dataclass(frozen=True)
class ListGroups:
    pass


@dataclass(frozen=True)
class ReadGroup:
    group_id: str


@dataclass(frozen=True)
class CreateGroup:
    subject: str
    participants: tuple[str, ...]


@dataclass(frozen=True)
class UpdateParticipants:
    group_id: str
    action: ParticipantAction
    participants: tuple[str, ...]


@dataclass(frozen=True)
class InviteLink:
    group_id: str
    revoke: bool


@dataclass(frozen=True)
class UpdateGroup:
    group_id: str
    change: GroupChange


@dataclass(frozen=True)
class LeaveGroup:
    group_id: str


@dataclass(frozen=True)
class JoinGroup:
    invite_link: str


@dataclass(frozen=True)
class RejectCall:
    call_id: str
    caller: str


@dataclass(frozen=True)
class Logout:
    """Unlink the device; the host ends right after."""


@dataclass(frozen=True)
class Close:
    """Close the client; the host ends right after."""


@dataclass(frozen=True)
class Ping:
    """The heartbeat: answered by the host's event loop being free to answer it."""


SessionCall = (
    Connect
    | PairPhone
    | CheckNumbers
    | NumberForLid
    | Send
    | ShowTyping
    | ReadProfile
    | MarkRead
    | SetPresence
    | ListGroups
    | ReadGroup
    | CreateGroup
    | UpdateParticipants
    | InviteLink
    | UpdateGroup
    | LeaveGroup
    | JoinGroup
    | RejectCall
    | Logout
    | Close
    | Ping
)
