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
