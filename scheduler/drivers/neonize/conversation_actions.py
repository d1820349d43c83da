"""A session's conversation actions: profiles, reads, presence, groups and their management,
declining calls."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from scheduler.drivers.base import (
    Group,
    GroupChange,
    NotOnWhatsAppError,
    ParticipantAction,
    ParticipantResult,
    PresenceState,
    Profile,
    UnknownChatError,
)
from scheduler.drivers.neonize import kinds
from scheduler.drivers.neonize.answers import (
    group_of,
    hidden_picture,
    jid_text,
    participant_results,
    profile_of,
    unknown_group,
)
from scheduler.drivers.neonize.loading import _import
from scheduler.drivers.neonize.lookups import Lookups
from scheduler.drivers.neonize.mapping import digits
from scheduler.drivers.neonize.session_core import lookup_error

log = logging.getLogger(__name__)

GROUP_SENDERS_KEPT = 10_000
T = TypeVar("T")


class ConversationActions(Lookups):
    # (group id, message id) -> the sender's JID, of the latest group messages received: marking
    # a group message read names its sender.
    _group_senders: dict[tuple[str, str], Any]
    _callers: dict[str, Any]  # call id -> the caller's JID, of the latest calls offered

    async def profile(self, phone_number: str) -> Profile:
        client = self._require_client()
        jid = await self._recipient(digits(phone_number))
        if jid is None:
            raise NotOnWhatsAppError(f"{phone_number} is not on WhatsApp")
        infos = await self._query(client.get_user_info(jid))
        info = next((one.UserInfo for one in infos if one.JID.User == jid.User), None)
        try:
            picture = await asyncio.wait_for(client.get_profile_picture(jid), self._lookup_timeout)
        except Exception as exc:
            if not hidden_picture(exc):
                raise lookup_error(exc) from exc
            picture = None
        try:  # the names this session heard (push name, business name, the address book's)
            contact = await asyncio.wait_for(client.contact.get_contact(jid), self._lookup_timeout)
        except Exception as exc:
            log.debug("%s: no contact record for a profile: %s", self.instance_name, exc)
            contact = None
        return profile_of(info, picture, contact)

    async def mark_read(self, chat_id: str, message_ids: Sequence[str]) -> None:
        client = self._require_client()
        chat = kinds.chat_jid(chat_id)
        if chat.Server == kinds.GROUP_SERVER:
            # In a group WhatsApp wants each message's sender: the ones this session received.
            unknown = [m for m in message_ids if (chat_id, m) not in self._group_senders]
            if unknown:
                raise UnknownChatError(
                    f"message(s) {', '.join(unknown)} were not received in {chat_id} by this session: "
                    "WhatsApp needs the sender of a group message to mark it read"
                )
            by_sender: dict[str, tuple[Any, list[str]]] = {}
            for message_id in message_ids:
                sender = self._group_senders[(chat_id, message_id)]
                by_sender.setdefault(jid_text(sender), (sender, []))[1].append(message_id)
            batches = list(by_sender.values())
        else:
            chat = await self._recipient(digits(chat_id))
            if chat is None:
                raise NotOnWhatsAppError(f"{chat_id} is not on WhatsApp")
            batches = [(chat, list(message_ids))]
        read = _import("neonize.utils.enum").ReceiptType.READ
        for sender, ids in batches:
            await self._query(client.mark_read(*ids, chat=chat, sender=sender, receipt=read))

    async def set_presence(self, state: PresenceState) -> None:
        presence = _import("neonize.utils.enum").Presence[state.upper()]
        await self._query(self._require_client().send_presence(presence))

    async def groups(self) -> list[Group]:
        infos = await self._query(self._require_client().get_joined_groups())
        return [group_of(info, self._own_phone or "") for info in infos]

    async def group(self, group_id: str) -> Group:
        info = await self._group_query(group_id, self._require_client().get_group_info(kinds.chat_jid(group_id)))
        return group_of(info, self._own_phone or "")

    async def create_group(self, subject: str, participants: Sequence[str]) -> str:
        client = self._require_client()
        found = await self._accounts([digits(number) for number in participants])
        jids = [jid for jid in found.values() if jid is not None]
        info = await self._query(client.create_group(subject, jids))
        return jid_text(info.JID)

    async def update_participants(
        self, group_id: str, action: ParticipantAction, participants: Sequence[str]
    ) -> list[ParticipantResult]:
        client = self._require_client()
        found = await self._accounts([digits(number) for number in participants])
        asked = {number: found[digits(number)] for number in participants}
        jids = [jid for jid in asked.values() if jid is not None]
        answers: Sequence[Any] = []
        if jids:
            change = _import("neonize.utils.enum").ParticipantChange(action)
            call = client.update_group_participants(kinds.chat_jid(group_id), jids, change)
            answers = await self._group_query(group_id, call)
        return participant_results(participants, asked, answers)

    async def invite_link(self, group_id: str, revoke: bool = False) -> str:
        call = self._require_client().get_group_invite_link(kinds.chat_jid(group_id), revoke)
        link: str = await self._group_query(group_id, call)
        return link

    async def update_group(self, group_id: str, change: GroupChange) -> None:
        client = self._require_client()
        jid = kinds.chat_jid(group_id)
        if change.subject is not None:
            await self._group_query(group_id, client.set_group_name(jid, change.subject))
        if change.description is not None:
            # whatsmeow replaces a topic by its id: the current one from the group, a new one of ours.
            info = await self._group_query(group_id, client.get_group_info(jid))
            new_id = uuid.uuid4().hex.upper()[:16]
            await self._group_query(
                group_id, client.set_group_topic(jid, info.GroupTopic.TopicID, new_id, change.description)
            )
        if change.announce is not None:
            await self._group_query(group_id, client.set_group_announce(jid, change.announce))
        if change.locked is not None:
            await self._group_query(group_id, client.set_group_locked(jid, change.locked))

    async def leave_group(self, group_id: str) -> None:
        await self._group_query(group_id, self._require_client().leave_group(kinds.chat_jid(group_id)))

    async def join_group(self, invite_link: str) -> str:
        jid = await self._query(self._require_client().join_group_with_link(invite_link))
        return jid_text(jid)

    async def _group_query(self, group_id: str, call: Awaitable[T]) -> T:
        """A request about a group: UnknownChatError when WhatsApp says this number is not in it."""
        try:
            return await asyncio.wait_for(call, self._lookup_timeout)
        except Exception as exc:
            if unknown_group(exc):
                raise UnknownChatError(f"this number is in no group {group_id}") from exc
            raise lookup_error(exc) from exc

    async def reject_call(self, call_id: str, caller: str) -> None:
        """Decline with the caller's JID as the offer named it (remembered), else built from `caller`."""
        client = self._require_client()
        jid = self._callers.pop(call_id, None)
        if jid is None:
            user, _, server = caller.partition("@")
            jid = _import("neonize.utils.jid").build_jid(user, server or kinds.USER_SERVER)
        await self._query(client.reject_call(jid, call_id))

    def _remember_sender(self, chat_id: str, message_id: str, sender: Any) -> None:
        self._group_senders[(chat_id, message_id)] = sender
        if len(self._group_senders) > GROUP_SENDERS_KEPT:
            del self._group_senders[next(iter(self._group_senders))]  # the oldest
