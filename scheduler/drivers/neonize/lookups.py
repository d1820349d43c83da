"""A session's lookups: the account behind a number (`IsOnWhatsApp`, remembered a while: one
lookup per message is a pattern WhatsApp watches), and the session's LID store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from scheduler.drivers.base import Account, DriverError, NotOnWhatsAppError, is_group, is_lid
from scheduler.drivers.neonize import kinds
from scheduler.drivers.neonize.answers import accounts, jid_text
from scheduler.drivers.neonize.loading import _pb
from scheduler.drivers.neonize.mapping import digits
from scheduler.drivers.neonize.session_core import SessionCore, lookup_error

log = logging.getLogger(__name__)

# How long an `IsOnWhatsApp` answer is reused.
LOOKUP_TTL = 24 * 3600.0
LOOKUP_MISS_TTL = 3600.0


class Lookups(SessionCore):
    _recipients: dict[str, tuple[Any, float]]  # digits -> (JID or None, valid until)

    async def check_numbers(self, phone_numbers: Sequence[str]) -> dict[str, Account | None]:
        """Each number's account: `IsOnWhatsApp`'s JID, and its LID as the session's LID store
        knows it (`GetLIDFromPN`)."""
        client = self._require_client()
        found = await self._accounts([digits(number) for number in phone_numbers])
        lids = {
            user: await self._lid_for(client, jid) for jid in found.values() if jid is not None for user in [jid.User]
        }
        return {
            number: Account(number=jid.User, lid=lids[jid.User], jid=jid_text(jid))
            if (jid := found[digits(number)]) is not None
            else None
            for number in phone_numbers
        }

    async def number_for_lid(self, lid: str) -> str | None:
        return await self._phone_for_lid(self._require_client(), lid)

    async def _chat(self, to: str) -> Any:
        """Where a send to `to` goes: a group's or a LID chat's JID as it is, a number's account JID
        (looked up)."""
        if is_group(to) or is_lid(to):
            return kinds.chat_jid(to)
        phone = digits(to)
        if not phone:
            raise DriverError("recipient must be a phone number in international digits, or a group id")
        jid = await self._recipient(phone)
        if jid is None:
            raise NotOnWhatsAppError(f"{phone} is not on WhatsApp")
        return jid

    async def _recipient(self, phone: str) -> Any:
        """The account JID of `phone` (international digits), None if it has no WhatsApp."""
        return (await self._accounts([phone]))[phone]

    async def _accounts(self, phones: Sequence[str]) -> dict[str, Any]:
        """The account JID of each of `phones` (international digits), None for those without
        WhatsApp: remembered ones from memory, the others asked in one lookup."""
        if not all(phones):
            raise DriverError("recipient must be a phone number in international digits")
        now = time.monotonic()
        found = {phone: cached[0] for phone in phones if (cached := self._recipients.get(phone)) and cached[1] > now}
        missing = [phone for phone in dict.fromkeys(phones) if phone not in found]
        if missing:
            asked = await self._ask_accounts(self._require_client(), missing)
            for phone, jid in asked.items():
                self._recipients[phone] = (jid, now + (LOOKUP_TTL if jid is not None else LOOKUP_MISS_TTL))
            found.update(asked)
        return found

    async def _ask_accounts(self, client: Any, phones: list[str]) -> dict[str, Any]:
        try:
            answers = await asyncio.wait_for(client.is_on_whatsapp(*[f"+{p}" for p in phones]), self._lookup_timeout)
        except Exception as exc:
            if "returned nothing" not in str(exc):
                raise lookup_error(exc) from exc
            # An invalid number: WhatsApp knows no such account, and its answer says nothing of the
            # other numbers asked with it: those are asked one by one.
            if len(phones) == 1:
                return {phones[0]: None}
            return {phone: jid for one in phones for phone, jid in (await self._ask_accounts(client, [one])).items()}
        return accounts(phones, answers)

    async def _phone_for_lid(self, client: Any, lid: str) -> str | None:
        """The number the session's LID store knows for `lid`, None when it knows none."""
        lid_jid = _pb().JID(User=lid, Server="lid", RawAgent=0, Device=0, Integrator=0, IsEmpty=False)
        return await self._lid_store(client, "get_pn_from_lid", lid_jid, "phone number for a LID")

    async def _lid_for(self, client: Any, account: Any) -> str | None:
        """The LID the session's LID store knows for an account JID, None when it knows none."""
        return await self._lid_store(client, "get_lid_from_pn", account, "LID for a number")

    async def _lid_store(self, client: Any, method: str, jid: Any, what: str) -> str | None:
        try:
            found = await asyncio.wait_for(getattr(client, method)(jid), self._lookup_timeout)
        except Exception as exc:  # an unknown one is an error in whatsmeow's store
            log.debug("%s: no %s: %s", self.instance_name, what, exc)
            return None
        return digits(found.User) or None
