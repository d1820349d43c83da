"""The typed seams between processes: every command the API sends a worker, and every call the
worker makes into a session host, is a record that crosses its wire and comes back the same; a
name or a type nobody registered does not."""

from __future__ import annotations

import typing
from dataclasses import fields
from datetime import UTC, datetime

import msgpack
import pytest

from core.errors import NotFound
from core.records import Command
from scheduler import instance_commands as command
from scheduler.drivers import sandbox_controls as control
from scheduler.drivers.base import Contact, GroupChange, OutgoingMessage
from scheduler.drivers.neonize import calls, wire
from scheduler.messages import FIELDS, KEEP, Message, MessageUpdate

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

COMMANDS: list[Command] = [
    command.Adopt(),
    command.Delete(),
    command.Connect(),
    command.AskQr(),
    command.AskPairingCode(phone_number="5491100000000"),
    command.SettingsChanged(),
    command.CheckNumbers(numbers=("5491100000000", "5491100000001")),
    command.ReadProfile(number="5491100000000"),
    command.LookUpLid(lid="123456789012345"),
    command.MarkRead(chat_id="5491100000000", message_ids=("3AAA", "3AAB")),
    command.SetPresence(state="available"),
    command.ListGroups(),
    command.ReadGroup(group_id="1203630@g.us"),
    command.CreateGroup(subject="Team", participants=("5491100000000",)),
    command.ChangeParticipants(group_id="1203630@g.us", action="promote", participants=("5491100000000",)),
    command.InviteLink(group_id="1203630@g.us", revoke=True),
    command.UpdateGroup(group_id="1203630@g.us", description="", locked=True),
    command.LeaveGroup(group_id="1203630@g.us"),
    command.JoinGroup(invite_link="https://chat.whatsapp.com/AbCdEfGhIjK"),
    control.LinkPhone(phone_number="5491100000000"),
    control.UnlinkPhone(),
    control.InjectInbound.model_validate(
        {"from": "5491100000000", "text": "hi", "contacts": [{"fullName": "Ana", "phoneNumber": "5491100000002"}]}
    ),
    control.InjectHistory.model_validate(
        {"chats": [{"chatId": "5491100000000", "messages": [{"messageId": "3A", "fromMe": False, "timestamp": AT}]}]}
    ),
    control.InjectReceipt(message_ids=("3AAA",), status="read"),
    control.Ban(seconds=1.5),
    control.FailNext(error="refused", count=2, transient=True, kind="unknown_chat"),
    control.FailActions(hang=True, count=3),
    control.SeedGroups.model_validate({"groups": [{"groupId": "1203630@g.us", "subject": "Team"}]}),
    control.SeedProfiles.model_validate({"profiles": [{"number": "5491100000000", "hidden": True}]}),
    control.DeclareAccounts.model_validate({"accounts": [{"numbers": ["5491100000000"], "lid": "1234"}]}),
    control.PlaceCall(caller="5491100000000", is_video=True),
    control.InjectGroupEvent(group_id="1203630@g.us", action="remove", participants=("5491100000000",)),
]


def test_every_registered_command_has_one_name_and_a_sample_here() -> None:
    assert len(command.COMMANDS) == len(set(command.COMMANDS)) == len(COMMANDS)
    assert {type(sample) for sample in COMMANDS} == set(command.COMMANDS.values())


@pytest.mark.parametrize("sample", COMMANDS, ids=lambda sample: sample.op)
def test_a_command_crosses_the_job_wire_unchanged(sample: Command) -> None:
    op, args = command.encode(sample)
    assert op == sample.op
    assert msgpack.unpackb(msgpack.packb(args)) == args  # plain JSON values: what arq's codec takes
    assert command.decode(op, args) == sample


def test_the_job_args_keep_the_camelcase_names_of_the_api() -> None:
    assert command.encode(control.PlaceCall(caller="5491100000000")) == (
        "sandbox.call",
        {"from": "5491100000000", "isVideo": False},
    )
    assert command.encode(command.AskPairingCode(phone_number="5491100000000"))[1] == {"phoneNumber": "5491100000000"}


def test_an_op_nobody_registered_is_not_found() -> None:
    with pytest.raises(NotFound, match="unknown command 'shutdown'"):
        command.decode("shutdown", {})


def test_commands_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        COMMANDS[4].phone_number = "1"  # type: ignore[attr-defined]


MESSAGE = OutgoingMessage(to="5491100000000", type="contact", contacts=(Contact(full_name="Ana", phone_number="549"),))
CALLS: list[calls.SessionCall] = [
    calls.Connect(),
    calls.PairPhone("5491100000000"),
    calls.CheckNumbers(("5491100000000",)),
    calls.NumberForLid("1234"),
    calls.Send(MESSAGE),
    calls.ShowTyping("5491100000000", True),
    calls.ReadProfile("5491100000000"),
    calls.MarkRead("5491100000000", ("3AAA",)),
    calls.SetPresence("unavailable"),
    calls.ListGroups(),
    calls.ReadGroup("1203630@g.us"),
    calls.CreateGroup("Team", ("5491100000000",)),
    calls.UpdateParticipants("1203630@g.us", "add", ("5491100000000",)),
    calls.InviteLink("1203630@g.us", False),
    calls.UpdateGroup("1203630@g.us", GroupChange(subject="New", announce=False)),
    calls.LeaveGroup("1203630@g.us"),
    calls.JoinGroup("AbCdEfGhIjK"),
    calls.RejectCall("CALL1", "5491100000000"),
    calls.Logout(),
    calls.Close(),
    calls.Ping(),
]


def test_every_session_call_has_a_sample_here() -> None:
    assert {type(sample) for sample in CALLS} == set(typing.get_args(calls.SessionCall))


@pytest.mark.parametrize("sample", CALLS, ids=lambda sample: type(sample).__name__)
def test_a_session_call_crosses_the_host_wire_unchanged(sample: calls.SessionCall) -> None:
    frame = wire.encode(wire.Call(7, sample))
    assert wire.decode(frame[4:]) == wire.Call(7, sample)


def test_a_call_frame_builds_only_the_call_records() -> None:
    by_method = msgpack.packb(["call", 1, "logout", []])  # the old shape: a method name and its args
    with pytest.raises(wire.FrameError):
        wire.decode(by_method)
    event_as_call = msgpack.packb(["call", 1, {"\x00dc": "QrExpired", "fields": {}}])  # a driver type, not a call
    with pytest.raises(wire.FrameError):
        wire.decode(event_as_call)
    unknown = msgpack.packb(["call", 1, {"\x00c": "Shutdown", "fields": {}}])
    with pytest.raises(wire.FrameError, match="unknown type 'Shutdown'"):
        wire.decode(unknown)


MESSAGE_RECORD = Message(
    id="msg_1",
    instance_name="acme__shop1__sales",
    tenant_id="acme",
    lane="normal",
    to="5491100000000",
    type="text",
    status="sending",
    created_at="2026-01-02T03:04:05Z",
    created_ms=1,
    text="hello",
    error="transient: offline",
    attempts=1,
)


def test_a_message_update_changes_only_what_it_names_and_none_removes() -> None:
    update = MessageUpdate(status="sent", error=None, wa_message_id="3AXYZ", attempts=2)
    assert update.hash_fields() == {"status": "sent", "error": None, "waMessageId": "3AXYZ", "attempts": 2}
    after = update.applied_to(MESSAGE_RECORD)
    assert (after.status, after.error, after.wa_message_id, after.attempts) == ("sent", None, "3AXYZ", 2)
    assert (after.text, after.to, after.created_ms) == ("hello", "5491100000000", 1)


def test_a_message_update_names_only_message_fields() -> None:
    assert {field.name for field in fields(MessageUpdate)} <= set(FIELDS)
    assert MessageUpdate().hash_fields() == {} and MessageUpdate().status is KEEP
