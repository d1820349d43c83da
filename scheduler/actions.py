"""The conversation actions, run on the worker that hosts the instance's session: the API waits for
their answer (`scheduler/commands.py`). Each gives WhatsApp `timeout` seconds; when WhatsApp fails
or does not answer in time the API answers 502 `whatsapp_error` saying which action failed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, TypeVar

from core.errors import InvalidState, NotFound, WhatsAppError
from scheduler.drivers.base import (
    DriverError,
    Group,
    GroupChange,
    NotLinkedError,
    NotOnWhatsAppError,
    Profile,
    Session,
    UnknownChatError,
)
from scheduler.instance_commands import (
    ActionCommand,
    ChangeParticipants,
    CheckNumbers,
    CreateGroup,
    InviteLink,
    JoinGroup,
    LeaveGroup,
    ListGroups,
    LookUpLid,
    MarkRead,
    ReadGroup,
    ReadProfile,
    SetPresence,
    UpdateGroup,
)
from scheduler.numbers import NumberCache

T = TypeVar("T")
Answer = dict[str, Any]  # an action's answer, as the API's JSON


class ConnectedSessions(Protocol):
    def connected_session(self, name: str) -> Session | None: ...


class Actions:
    def __init__(self, sessions: ConnectedSessions, numbers: NumberCache, timeout: float) -> None:
        self.sessions = sessions
        self.numbers = numbers
        self.timeout = timeout

    async def run(self, name: str, command: ActionCommand) -> Answer:
        """Carry out a conversation action; its answer, as the API's JSON."""
        session = self._session(name)
        match command:
            case CheckNumbers(numbers=numbers):
                return await self.check_numbers(name, session, numbers)
            case LookUpLid(lid=lid):
                found = await self._ask("looking the LID up", self.numbers.lid(name, lid, session.number_for_lid))
                return {"lid": lid, "number": found.number}
            case ReadProfile(number=number):
                return await self.profile(name, session, number)
            case MarkRead(chat_id=chat_id, message_ids=message_ids):
                await self._ask("marking the messages read", session.mark_read(chat_id, message_ids))
            case SetPresence(state=state):
                await self._ask("setting the presence", session.set_presence(state))
            case ListGroups():
                return {
                    "groups": [_summary(group) for group in await self._ask("listing the groups", session.groups())]
                }
            case ReadGroup(group_id=group_id):
                return _group(await self._ask("reading the group", session.group(group_id)))
            case _:
                return await self._manage_group(session, command)
        return {}

    async def _manage_group(self, session: Session, command: ActionCommand) -> Answer:
        match command:
            case CreateGroup(subject=subject, participants=participants):
                return {"groupId": await self._ask("creating the group", session.create_group(subject, participants))}
            case ChangeParticipants(group_id=group_id, action=action, participants=participants):
                call = session.update_participants(group_id, action, participants)
                found = await self._ask(f"changing the participants ({action})", call)
                return {"results": [{"number": r.number, "ok": r.ok, "error": r.error} for r in found]}
            case InviteLink(group_id=group_id, revoke=revoke):
                what = "revoking the invite link" if revoke else "reading the invite link"
                return {"inviteLink": await self._ask(what, session.invite_link(group_id, revoke))}
            case UpdateGroup(group_id=group_id, subject=subject, description=description):
                change = GroupChange(subject, description, command.announce, command.locked)
                await self._ask("updating the group", session.update_group(group_id, change))
            case LeaveGroup(group_id=group_id):
                await self._ask("leaving the group", session.leave_group(group_id))
            case JoinGroup(invite_link=invite_link):
                return {"groupId": await self._ask("joining the group", session.join_group(invite_link))}
            case _:
                raise NotFound(f"unknown command {command.op!r}")
        return {}

    async def check_numbers(self, name: str, session: Session, numbers: Sequence[str]) -> Answer:
        found = await self._ask("checking the numbers", self.numbers.check(name, numbers, session.check_numbers))
        return {
            "results": [
                {
                    "number": number,
                    "onWhatsApp": account is not None,
                    "jid": account.jid if account else None,
                    "lid": account.lid if account else None,
                }
                for number, account in found.items()
            ]
        }

    async def profile(self, name: str, session: Session, number: str) -> Answer:
        async def read() -> Profile:  # one deadline for both steps: the API waits for one answer
            if not await self.numbers.on_whatsapp(name, number, session.check_numbers):
                raise NotOnWhatsAppError(f"{number} is not on WhatsApp")
            return await session.profile(number)

        found = await self._ask("reading the profile", read())
        return {"number": number, "name": found.name, "pictureUrl": found.picture_url, "about": found.about}

    def _session(self, name: str) -> Session:
        session = self.sessions.connected_session(name)
        if session is None:
            raise InvalidState("instance is not open: link it (QR or pairing code) and wait for state 'open'")
        return session

    async def _ask(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            raise WhatsAppError(f"{what} failed: WhatsApp did not answer within {self.timeout:g} s") from None
        except (NotOnWhatsAppError, UnknownChatError) as exc:
            raise NotFound(str(exc)) from None
        except NotLinkedError as exc:
            raise InvalidState(str(exc)) from None
        except DriverError as exc:
            raise WhatsAppError(f"{what} failed: {str(exc) or type(exc).__name__}") from None


def _summary(group: Group) -> Answer:
    return {
        "groupId": group.group_id,
        "subject": group.subject,
        "participantsCount": len(group.members),
        "isAdmin": group.is_admin,
    }


def _group(group: Group) -> Answer:
    return {
        "groupId": group.group_id,
        "subject": group.subject,
        "description": group.description,
        "participants": [{"phoneNumber": m.phone_number, "isAdmin": m.is_admin} for m in group.members],
    }
