"""The commands the API sends the worker hosting an instance: one frozen record per command, one
registry naming them, one codec.

On the wire (an arq job on the owner's queue, `scheduler/commands.py`) a command is its `op` and
its fields as a JSON object in camelCase, as the job's `op` and `args`; `decode` builds the record
again on the worker, which dispatches by its type. The sandbox's control commands are the
sandbox's own (`scheduler/drivers/sandbox_controls.py`), carried out by the driver's phone controls."""

from __future__ import annotations

from typing import Any

from core.errors import NotFound
from core.records import Command
from scheduler.drivers.base import ParticipantAction, PresenceState
from scheduler.drivers.sandbox_controls import SANDBOX_COMMANDS

# The instance's lifecycle.


class Adopt(Command):
    """Take the instance over (handed to us by a leaving worker, or by the API from a dead one)."""

    op = "adopt"


class Delete(Command):
    op = "delete"


class Connect(Command):
    op = "connect"


class AskQr(Command):
    op = "qr"


class AskPairingCode(Command):
    op = "pair"
    phone_number: str


class SettingsChanged(Command):
    """The per-number settings changed (PATCH): the session is told what concerns it."""

    op = "settings"


# The conversation actions (`scheduler/actions.py`): the API waits for their answers.


class ActionCommand(Command):
    """A conversation action: it needs the instance open, and WhatsApp's answer within the
    action timeout."""


class CheckNumbers(ActionCommand):
    op = "contacts.check"
    numbers: tuple[str, ...]


class ReadProfile(ActionCommand):
    op = "contacts.profile"
    number: str


class LookUpLid(ActionCommand):
    op = "contacts.lid"
    lid: str


class MarkRead(ActionCommand):
    op = "chats.read"
    chat_id: str
    message_ids: tuple[str, ...]


class SetPresence(ActionCommand):
    op = "presence"
    state: PresenceState


class ListGroups(ActionCommand):
    op = "groups.list"


class ReadGroup(ActionCommand):
    op = "groups.info"
    group_id: str


class CreateGroup(ActionCommand):
    op = "groups.create"
    subject: str
    participants: tuple[str, ...]


class ChangeParticipants(ActionCommand):
    op = "groups.participants"
    group_id: str
    action: ParticipantAction
    participants: tuple[str, ...]


class InviteLink(ActionCommand):
    op = "groups.invite"
    group_id: str
    revoke: bool = False


class UpdateGroup(ActionCommand):
    op = "groups.update"
    group_id: str
    subject: str | None = None
    description: str | None = None
    announce: bool | None = None
    locked: bool | None = None


class LeaveGroup(ActionCommand):
    op = "groups.leave"
    group_id: str


class JoinGroup(ActionCommand):
    op = "groups.join"
    invite_link: str


_ALL: tuple[type[Command], ...] = (
    Adopt,
    Delete,
    Connect,
    AskQr,
    AskPairingCode,
    SettingsChanged,
    CheckNumbers,
    ReadProfile,
    LookUpLid,
    MarkRead,
    SetPresence,
    ListGroups,
    ReadGroup,
    CreateGroup,
    ChangeParticipants,
    InviteLink,
    UpdateGroup,
    LeaveGroup,
    JoinGroup,
    *SANDBOX_COMMANDS,
)
COMMANDS: dict[str, type[Command]] = {kind.op: kind for kind in _ALL}


def encode(command: Command) -> tuple[str, dict[str, Any]]:
    """The command as the job's `op` and `args` (JSON, camelCase)."""
    return command.op, command.model_dump(mode="json", by_alias=True)


def decode(op: str, args: dict[str, Any]) -> Command:
    """The record `encode` made; NotFound for an op nobody registered (pydantic's ValidationError
    for args that do not fit it: a job queued by another version)."""
    kind = COMMANDS.get(op)
    if kind is None:
        raise NotFound(f"unknown command {op!r}")
    return kind.model_validate(args)
