"""The conversation actions, run on the worker that hosts the instance's session: the API waits for
their answer (`scheduler/commands.py`). Each gives WhatsApp `timeout` seconds; when WhatsApp fails
or does not answer in time the API answers 502 `whatsapp_error` saying which action failed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
from scheduler.numbers import NumberCache

T = TypeVar("T")
Command = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ConnectedSessions(Protocol):
    def connected_session(self, name: str) -> Session | None: ...


class Actions:
    def __init__(self, sessions: ConnectedSessions, numbers: NumberCache, timeout: float) -> None:
        self.sessions = sessions
        self.numbers = numbers
        self.timeout = timeout

    def commands(self) -> dict[str, Command]:
        """The command table entries, by the op names the API sends."""
        return {
            "contacts.check": self.check_numbers,
            "contacts.profile": self.profile,
            "contacts.lid": self.lid,
            "chats.read": self.mark_read,
            "presence": self.set_presence,
            "groups.list": self.groups,
            "groups.info": self.group,
            "groups.create": self.create_group,
            "groups.participants": self.update_participants,
            "groups.invite": self.invite_link,
            "groups.update": self.update_group,
            "groups.leave": self.leave_group,
            "groups.join": self.join_group,
        }

    async def check_numbers(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        session = self._session(name)
        found = await self._ask(
            "checking the numbers", self.numbers.check(name, args["numbers"], session.check_numbers)
        )
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

    async def lid(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        session = self._session(name)
        found = await self._ask("looking the LID up", self.numbers.lid(name, args["lid"], session.number_for_lid))
        return {"lid": args["lid"], "number": found.number}

    async def profile(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        number = args["number"]
        session = self._session(name)

        async def read() -> Profile:  # one deadline for both steps: the API waits for one answer
            if not await self.numbers.on_whatsapp(name, number, session.check_numbers):
                raise NotOnWhatsAppError(f"{number} is not on WhatsApp")
            return await session.profile(number)

        found = await self._ask("reading the profile", read())
        return {"number": number, "name": found.name, "pictureUrl": found.picture_url, "about": found.about}

    async def mark_read(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        session = self._session(name)
        await self._ask("marking the messages read", session.mark_read(args["chatId"], args["messageIds"]))
        return {}

    async def set_presence(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        await self._ask("setting the presence", self._session(name).set_presence(args["state"]))
        return {}

    async def groups(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        found = await self._ask("listing the groups", self._session(name).groups())
        return {
            "groups": [
                {
                    "groupId": group.group_id,
                    "subject": group.subject,
                    "participantsCount": len(group.members),
                    "isAdmin": group.is_admin,
                }
                for group in found
            ]
        }

    async def group(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return _group(await self._ask("reading the group", self._session(name).group(args["groupId"])))

    # Group management.

    async def create_group(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        call = self._session(name).create_group(args["subject"], args["participants"])
        return {"groupId": await self._ask("creating the group", call)}

    async def update_participants(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        call = self._session(name).update_participants(args["groupId"], args["action"], args["participants"])
        found = await self._ask(f"changing the participants ({args['action']})", call)
        return {"results": [{"number": r.number, "ok": r.ok, "error": r.error} for r in found]}

    async def invite_link(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        what = "revoking the invite link" if args["revoke"] else "reading the invite link"
        link = await self._ask(what, self._session(name).invite_link(args["groupId"], args["revoke"]))
        return {"inviteLink": link}

    async def update_group(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        change = GroupChange(**{k: args.get(k) for k in ("subject", "description", "announce", "locked")})
        await self._ask("updating the group", self._session(name).update_group(args["groupId"], change))
        return {}

    async def leave_group(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        await self._ask("leaving the group", self._session(name).leave_group(args["groupId"]))
        return {}

    async def join_group(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"groupId": await self._ask("joining the group", self._session(name).join_group(args["inviteLink"]))}

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


def _group(group: Group) -> dict[str, Any]:
    return {
        "groupId": group.group_id,
        "subject": group.subject,
        "description": group.description,
        "participants": [{"phoneNumber": m.phone_number, "isAdmin": m.is_admin} for m in group.members],
    }
