"""A simulated WhatsApp for development, demos and tests: same behaviour seen from the API.

Sessions keep a small JSON store per instance (like neonize's sqlite file), show real QR codes
that rotate and run out, record every send in Redis instead of delivering it, and take injected
inbound messages and failures through the `/sandbox/...` control routes.

Magic input: a recipient number starting with 999 is not on WhatsApp. Any other number is an
account of its own, unless `POST /sandbox/.../accounts` declared it one spelling of an account
(with its LID): lookups and sends then resolve to that account, as WhatsApp's do.

The conversation actions answer from groups and profiles seeded through the control routes, and
record what they did (lookups, reads, presence) in Redis for `GET /sandbox/.../actions`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from pydantic_core import to_json
from redis.exceptions import RedisError
from yarl import URL

from core import keys
from core.clock import iso
from core.errors import InvalidState, NotFound
from core.netguard import BlockedUrl, guarded_request, guarded_session
from core.records import Command
from core.redis_client import Redis
from core.scripts import Scripts
from scheduler.drivers.base import (
    GROUP_SUFFIX,
    LID_SUFFIX,
    Account,
    Banned,
    CallReceived,
    Connected,
    Disconnected,
    DriverError,
    DriverEvent,
    EventSink,
    Group,
    GroupChange,
    GroupParticipants,
    GroupUpdated,
    HistoryChat,
    HistoryMessage,
    HistorySynced,
    InboundMedia,
    MessageDeleted,
    MessageEdited,
    MessageReaction,
    MessageReceived,
    NotLinkedError,
    NotOnWhatsAppError,
    OutcomeUnknownError,
    OutgoingMessage,
    ParticipantAction,
    ParticipantResult,
    PollVote,
    PresenceState,
    Profile,
    QrCode,
    QrExpired,
    Receipt,
    ReceiptStatus,
    SendResult,
    Session,
    TransientDriverError,
    UnknownChatError,
    option_hash,
)
from scheduler.drivers.sandbox_controls import (
    Ban,
    DeclareAccounts,
    FailActions,
    FailNext,
    FailureKind,
    HistoryChatSpec,
    InjectGroupEvent,
    InjectHistory,
    InjectInbound,
    InjectReceipt,
    LinkPhone,
    PlaceCall,
    SandboxAccount,
    SandboxGroup,
    SandboxInbound,
    SandboxMember,
    SandboxProfile,
    SeedGroups,
    SeedProfiles,
    UnlinkPhone,
)

log = structlog.get_logger(__name__)

# WhatsApp's rotation: the first code lasts about 60 s, the next ones about 20 s each, six in all.
QR_SCHEDULE: tuple[float, ...] = (60, 20, 20, 20, 20, 20)
NOT_ON_WHATSAPP_PREFIX = "999"
PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ123456789"
INVITE_PREFIX = "https://chat.whatsapp.com/"
BAN_REASON = "temporary ban (sandbox)"
FAILURES: dict[FailureKind, type[DriverError]] = {
    "refused": DriverError,
    "not_on_whatsapp": NotOnWhatsAppError,
    "unknown_chat": UnknownChatError,
    "not_linked": NotLinkedError,
    "outcome_unknown": OutcomeUnknownError,
}


MEDIA_FETCH_TIMEOUT = 30.0
# A send's record is written again this often while Redis is away; its once-only marker lasts
# longer than any outage it has to outlive.
SENT_RETRY_SECONDS = 0.2
SENT_MARKER_SECONDS = 3600


@dataclass
class _Store:
    linked: bool = False
    phone_number: str | None = None
    lids: dict[str, str] = field(default_factory=dict)  # the session's LID store: LID -> phone number


class SandboxSession:
    def __init__(
        self,
        name: str,
        store_path: Path,
        redis: Redis,
        sink: EventSink,
        qr_schedule: Sequence[float],
        worker_id: str,
        *,
        allow_private: bool = False,
        max_media_bytes: int = 100 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.allow_private = allow_private
        self.max_media_bytes = max_media_bytes
        self.worker_id = worker_id
        self.store_path = store_path
        self.redis = redis
        self.sink = sink
        self.qr_schedule = qr_schedule
        self._qr_task: asyncio.Task[None] | None = None
        self._fail: list[tuple[str, type[DriverError]]] = []
        self._fail_actions: list[str | None] = []  # an error, or None: no answer at all
        self._connected = False
        self._banned_until: datetime | None = None
        self._write_sent = Scripts.of(redis)["sandbox_sent"]
        self._typing: set[str] = set()  # chats shown "typing..." now
        self._typed: set[str] = set()  # chats whose "typing..." ended, their send not made yet
        self._accounts: dict[str, Account] | None = None  # declared spellings and LID chats -> account
        self.proxy_url: str | None = None

    def _load(self) -> _Store:
        try:
            data = json.loads(self.store_path.read_text())
        except FileNotFoundError:
            return _Store()
        return _Store(linked=data["linked"], phone_number=data.get("phoneNumber"), lids=data.get("lids", {}))

    def _save(self, store: _Store) -> None:
        self.store_path.parent.mkdir(parents=True, exist_ok=True)
        data = {"linked": store.linked, "phoneNumber": store.phone_number, "lids": store.lids}
        self.store_path.write_text(json.dumps(data))

    @property
    def linked(self) -> bool:
        return self._load().linked

    async def connect(self) -> None:
        if self._connected:
            return
        if self._banned_until is not None and self._banned_until > datetime.now(UTC):
            # WhatsApp refuses a banned number's login with the same ban, as on the first refusal.
            await self.sink(Banned(reason=BAN_REASON, expires_at=self._banned_until))
            return
        store = self._load()
        if store.linked and store.phone_number:
            with contextlib.suppress(RedisError):  # Redis away: the first send reads them
                await self._load_accounts()
            if self._connected:  # linked meanwhile (a scan while connecting): it announced itself
                return
            self._connected = True
            await self.sink(Connected(phone_number=store.phone_number))
        elif self._qr_task is None or self._qr_task.done():
            self._qr_task = asyncio.create_task(self._qr_cycle())

    async def _qr_cycle(self) -> None:
        for seconds in self.qr_schedule:
            code = f"2@sandbox,{self.name},{secrets.token_urlsafe(24)}"
            await self.sink(QrCode(code=code, expires_at=datetime.now(UTC) + timedelta(seconds=seconds)))
            await asyncio.sleep(seconds)
        await self.sink(QrExpired())

    def _stop_qr(self) -> None:
        if self._qr_task is not None and self._qr_task is not asyncio.current_task():
            self._qr_task.cancel()
        self._qr_task = None

    async def pair_phone(self, phone_number: str) -> str:
        if self._qr_task is None or self._qr_task.done():
            raise NotLinkedError("no linking in progress: request a QR code first")
        code = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(8))
        return f"{code[:4]}-{code[4:]}"

    async def check_numbers(self, phone_numbers: Sequence[str]) -> dict[str, Account | None]:
        await self._action("lookup", numbers=list(phone_numbers))
        return {number: await self._account(number) for number in phone_numbers}

    async def number_for_lid(self, lid: str) -> str | None:
        await self._action("lid", lid=lid)
        declared = await self._declared(f"{lid}{LID_SUFFIX}")
        return declared.number if declared is not None else self._load().lids.get(lid)

    async def _account(self, number: str) -> Account | None:
        if number.startswith(NOT_ON_WHATSAPP_PREFIX):
            return None
        return await self._declared(number) or Account(number=number, lid=None, jid=f"{number}@s.whatsapp.net")

    async def _declared(self, spelling: str) -> Account | None:
        if self._accounts is None:
            await self._load_accounts()
        return (self._accounts or {}).get(spelling)

    async def _load_accounts(self) -> None:
        """Read the declared accounts when the session opens (declarations come through its own
        control calls after that): a send costs no Redis round trip the real WhatsApp would not."""
        raw = await self.redis.hgetall(keys.sandbox_accounts(self.name))  # type: ignore[misc]
        self._accounts = {key: SandboxAccount.model_validate_json(value).account() for key, value in raw.items()}

    async def _destination(self, to: str) -> str:
        """The JID a send to `to` reaches: a group or a LID chat as given, a number's account."""
        if "@" in to:
            return to
        account = await self._account(to)
        if account is None:
            raise NotOnWhatsAppError(f"{to} is not on WhatsApp")
        return account.jid

    async def send(self, message: OutgoingMessage) -> SendResult:
        if not self._connected:
            raise NotLinkedError("the sandbox session is not connected")
        if self._fail:
            error, kind = self._fail.pop(0)
            raise kind(error)
        sent_at = datetime.now(UTC)
        message_id = "3EB0" + secrets.token_hex(8).upper()
        record = {
            "messageId": message_id,
            "to": message.to,
            "jid": await self._destination(message.to),
            "type": message.type,
            "text": message.text,
            "caption": message.caption,
            "mediaUrl": message.media_url,
            "fileName": message.file_name,
            "mimetype": message.mimetype,
            "mediaBytes": len(message.media) if message.media is not None else None,
            "sentAt": iso(sent_at),
            "sentBy": self.worker_id,
            **_kind_fields(message),
            # Shown only if the session was asked to show it for this chat before the send.
            "typingMs": message.typing_ms if message.to in self._typed else None,
        }
        self._typed.discard(message.to)
        await self._record_sent(message_id, to_json(record).decode())
        return SendResult(message_id=message_id, sent_at=sent_at)

    async def _record_sent(self, message_id: str, record: str) -> None:
        """What reached "WhatsApp" is written once, whatever happens to Redis meanwhile: the real
        WhatsApp does not go down with our Redis, and a send it took must not look untried (the
        pump would take a Redis error here for a send that never started, and send it again)."""
        markers = (keys.sandbox_sent(self.name), keys.sandbox_sent_once(self.name, message_id))
        while True:
            try:
                await self._write_sent(keys=markers, args=[record, SENT_MARKER_SECONDS])
                return
            except (RedisError, OSError):
                log.warning("sandbox.send_record_retrying", instance=self.name, message_id=message_id)
                await asyncio.sleep(SENT_RETRY_SECONDS)

    # Conversation actions: each recorded, and failing while `fail_actions` says so.

    async def profile(self, phone_number: str) -> Profile:
        await self._action("profile", number=phone_number)
        raw = await self.redis.hget(keys.sandbox_profiles(self.name), phone_number)  # type: ignore[misc]
        if raw is None:
            return Profile(name=None, picture_url=None, about=None)
        return SandboxProfile.model_validate_json(raw).profile()

    async def mark_read(self, chat_id: str, message_ids: Sequence[str]) -> None:
        await self._action("read", chatId=chat_id, messageIds=list(message_ids))
        if chat_id.startswith(NOT_ON_WHATSAPP_PREFIX):
            raise NotOnWhatsAppError(f"{chat_id} is not on WhatsApp")

    async def set_presence(self, state: PresenceState) -> None:
        await self._action("presence", state=state)

    async def groups(self) -> list[Group]:
        await self._action("groups")
        raw = await self.redis.hvals(keys.sandbox_groups(self.name))  # type: ignore[misc]
        return sorted((SandboxGroup.model_validate_json(item).group() for item in raw), key=lambda g: g.group_id)

    async def group(self, group_id: str) -> Group:
        await self._action("group", groupId=group_id)
        raw = await self.redis.hget(keys.sandbox_groups(self.name), group_id)  # type: ignore[misc]
        if raw is None:
            raise UnknownChatError(f"this number is in no group {group_id}")
        return SandboxGroup.model_validate_json(raw).group()

    # Group management, on the groups kept in Redis: the number must administer a group to change it.

    async def create_group(self, subject: str, participants: Sequence[str]) -> str:
        await self._action("group_create", subject=subject, participants=list(participants))
        group_id = "120363" + "".join(secrets.choice("0123456789") for _ in range(12)) + GROUP_SUFFIX
        own = SandboxMember(phone_number=self._load().phone_number, is_admin=True)
        members = [SandboxMember(phone_number=n) for n in participants if not n.startswith(NOT_ON_WHATSAPP_PREFIX)]
        await self._keep(SandboxGroup(group_id=group_id, subject=subject, participants=[own, *members], is_admin=True))
        return group_id

    async def update_participants(
        self, group_id: str, action: ParticipantAction, participants: Sequence[str]
    ) -> list[ParticipantResult]:
        await self._action("group_participants", groupId=group_id, change=action, participants=list(participants))
        group = await self._administered(group_id)
        members = {m.phone_number: m for m in group.participants}
        results = []
        for number in participants:
            error = _participant_error(action, number, number in members)
            if error is None:
                if action == "add":
                    members[number] = SandboxMember(phone_number=number)
                elif action == "remove":
                    del members[number]
                else:
                    members[number] = SandboxMember(phone_number=number, is_admin=action == "promote")
            results.append(ParticipantResult(number=number, ok=error is None, error=error))
        await self._keep(group.model_copy(update={"participants": list(members.values())}))
        return results

    async def invite_link(self, group_id: str, revoke: bool = False) -> str:
        await self._action("group_invite", groupId=group_id, revoke=revoke)
        group = await self._administered(group_id)
        code = group.invite_code
        if code is None or revoke:
            code = secrets.token_urlsafe(16)
            await self._keep(group.model_copy(update={"invite_code": code}))
        return INVITE_PREFIX + code

    async def update_group(self, group_id: str, change: GroupChange) -> None:
        await self._action("group_update", groupId=group_id, **_changed(change))
        group = await self._administered(group_id)
        await self._keep(_changed_group(group, change))

    async def leave_group(self, group_id: str) -> None:
        await self._action("group_leave", groupId=group_id)
        await self._stored_group(group_id)
        await self.redis.hdel(keys.sandbox_groups(self.name), group_id)  # type: ignore[misc]

    async def join_group(self, invite_link: str) -> str:
        """A link to one of the number's own groups leads to it; any other makes the number a
        member (no admin) of the group the code stands for."""
        await self._action("group_join", inviteLink=invite_link)
        code = invite_link.removeprefix(INVITE_PREFIX)
        raw = await self.redis.hvals(keys.sandbox_groups(self.name))  # type: ignore[misc]
        for group in (SandboxGroup.model_validate_json(item) for item in raw):
            if group.invite_code == code:
                return group.group_id
        group_id = "120363" + str(int(hashlib.sha256(code.encode()).hexdigest(), 16))[:12] + GROUP_SUFFIX
        own = SandboxMember(phone_number=self._load().phone_number)
        await self._keep(SandboxGroup(group_id=group_id, subject=f"Group {code[:8]}", participants=[own]))
        return group_id

    async def _stored_group(self, group_id: str) -> SandboxGroup:
        raw = await self.redis.hget(keys.sandbox_groups(self.name), group_id)  # type: ignore[misc]
        if raw is None:
            raise UnknownChatError(f"this number is in no group {group_id}")
        return SandboxGroup.model_validate_json(raw)

    async def _administered(self, group_id: str) -> SandboxGroup:
        group = await self._stored_group(group_id)
        if not group.is_admin:
            raise DriverError(f"not-authorized: this number is not an admin of {group_id}")
        return group

    async def _keep(self, group: SandboxGroup) -> None:
        await self.redis.hset(keys.sandbox_groups(self.name), group.group_id, group.model_dump_json(by_alias=True))  # type: ignore[misc]

    # Calls and the connection.

    async def reject_call(self, call_id: str, caller: str) -> None:
        await self._action("call_reject", callId=call_id, number=caller)

    async def use_proxy(self, proxy_url: str | None) -> None:
        """Recorded as the proxy's host only (its password stays out of Redis); a connected session
        reconnects, as the neonize driver does."""
        if proxy_url == self.proxy_url:
            return
        self.proxy_url = proxy_url
        host = URL(proxy_url).host if proxy_url else None
        record = {"action": "proxy", "proxyHost": host, "at": iso(datetime.now(UTC))}
        await self.redis.rpush(keys.sandbox_actions(self.name), json.dumps(record))  # type: ignore[misc]
        phone = self._load().phone_number
        if self._connected and phone:
            await self.sink(Disconnected(reason="reconnecting through the new proxy"))
            await self.sink(Connected(phone_number=phone))

    async def _action(self, action: str, **fields: Any) -> None:
        if not self._connected:
            raise NotLinkedError("the sandbox session is not connected")
        if self._fail_actions:
            error = self._fail_actions.pop(0)
            if error is None:
                await asyncio.Event().wait()  # as if WhatsApp never answered: the caller's deadline ends it
            raise DriverError(error)
        record = {"action": action, **fields, "at": iso(datetime.now(UTC))}
        await self.redis.rpush(keys.sandbox_actions(self.name), json.dumps(record))  # type: ignore[misc]

    async def show_typing(self, to: str, typing: bool) -> None:
        if not self._connected:
            raise NotLinkedError("the sandbox session is not connected")
        if typing:
            self._typing.add(to)
        elif to in self._typing:
            self._typing.discard(to)
            self._typed.add(to)  # "typing..." then "paused": the next send to `to` had it first

    async def logout(self) -> None:
        self._stop_qr()
        self._connected = False
        self.store_path.unlink(missing_ok=True)

    async def close(self) -> None:
        self._stop_qr()
        self._connected = False

    # The control surface standing in for the phone and the contacts: `control` carries out one of
    # the commands of the control routes (gateway/routes/sandbox.py).

    async def control(self, command: Command) -> dict[str, str]:
        match command:
            case LinkPhone(phone_number=phone_number):
                await self.link(phone_number or default_phone(self.name))
            case UnlinkPhone():
                await self.unlink()
            case InjectInbound():
                self._require_open()
                return {"messageId": await self.inbound(command)}
            case InjectHistory(chats=chats):
                self._require_open()
                await self.sink(history_batch(chats))
            case InjectReceipt(message_ids=message_ids, status=status):
                await self.receipt(message_ids, status)
            case Ban(seconds=seconds):
                await self.ban(seconds)
            case FailNext(error=error, count=count, transient=transient, kind=kind):
                self.fail_next(error, count, transient, kind)
            case FailActions(error=error, hang=hang, count=count):
                self._fail_actions.extend([None if hang else error] * count)
            case SeedGroups(groups=groups):
                await self.seed(keys.sandbox_groups(self.name), groups)
            case SeedProfiles(profiles=profiles):
                await self.seed(keys.sandbox_profiles(self.name), profiles)
            case DeclareAccounts(accounts=accounts):
                await self.declare(accounts)
            case PlaceCall(caller=caller, is_video=is_video):
                return {"callId": await self.call(caller, is_video)}
            case InjectGroupEvent():
                await self.group_event(command)
            case _:
                raise NotFound(f"unknown command {command.op!r}: the sandbox has no such control")
        return {}

    def _require_open(self) -> None:
        if not self._connected:
            raise InvalidState("instance is not open: link it first")

    async def link(self, phone_number: str) -> None:
        if self._connected:
            raise InvalidState("instance is already open")
        self._stop_qr()
        self._save(_Store(linked=True, phone_number=phone_number))
        await self._load_accounts()
        if self._connected:  # a connect that read the store just saved announced it meanwhile
            return
        self._connected = True
        await self.sink(Connected(phone_number=phone_number))

    async def unlink(self) -> None:
        self._stop_qr()
        self._connected = False
        self._save(_Store())
        await self.sink(Disconnected(reason="logged_out", logged_out=True))

    async def inbound(self, spec: SandboxInbound) -> str:
        """A contact writes in (or reacts, edits, deletes, votes): the event goes to the sink as the
        neonize driver would report it; returns its WhatsApp message id."""
        message_id = "3A" + secrets.token_hex(9).upper()
        # WhatsApp names a sender by its account, whatever spelling of the number it was declared with.
        declared = await self._declared(spec.sender) if spec.sender is not None else None
        common: dict[str, Any] = {
            "message_id": message_id,
            "sender": self._phone_of(declared.number if declared else spec.sender, spec.from_lid),
            "sender_lid": spec.from_lid,
            "chat_id": spec.chat_id,
            "push_name": spec.push_name,
            "timestamp": datetime.now(UTC),
        }
        await self.sink(await self._event(spec, common))
        return message_id

    def _phone_of(self, sender: str | None, lid: str | None) -> str | None:
        """The sender's number: as given (learning its LID), or from the LID store."""
        store = self._load()
        if sender is not None:
            if lid is not None and store.lids.get(lid) != sender:
                store.lids[lid] = sender
                self._save(store)
            return sender
        return store.lids.get(lid) if lid is not None else None

    async def _event(self, spec: SandboxInbound, common: dict[str, Any]) -> DriverEvent:
        if spec.reaction is not None:
            return MessageReaction(**common, target_id=spec.reaction.message_id, emoji=spec.reaction.emoji)
        if spec.edit is not None:
            return MessageEdited(**common, target_id=spec.edit.message_id, text=spec.edit.text)
        if spec.delete is not None:
            return MessageDeleted(**common, target_id=spec.delete.message_id)
        if spec.poll_vote is not None:
            hashes = tuple(option_hash(option) for option in spec.poll_vote.options)
            return PollVote(**common, poll_id=spec.poll_vote.message_id, option_hashes=hashes)
        kind = spec.kind()
        return MessageReceived(
            **common,
            message_type=kind,
            text=spec.text if kind == "conversation" else None,
            caption=spec.caption,
            quoted_message_id=spec.quoted_message_id,
            mentions=tuple(spec.mentions),
            media=await self._media(spec),
            location=spec.location,
            contacts=tuple(spec.contacts or ()),
            poll=spec.poll,
            raw_type=spec.raw_type if kind == "unsupported" else None,
        )

    async def _media(self, spec: SandboxInbound) -> InboundMedia | None:
        described = InboundMedia(mimetype=spec.mimetype, file_name=spec.file_name, seconds=spec.seconds)
        if spec.media_base64 is not None:
            data = base64.b64decode(spec.media_base64)
        elif spec.media_url is not None:
            try:
                data = await self._download(spec.media_url)
            except (DriverError, BlockedUrl, aiohttp.ClientError, TimeoutError) as exc:
                return replace(described, error=f"download failed: {str(exc) or type(exc).__name__}")
        else:
            return None
        return replace(described, size=len(data), data=data)

    async def _download(self, url: str) -> bytes:
        """As WhatsApp's media servers would hand the bytes over: under the size cap."""
        timeout = aiohttp.ClientTimeout(total=MEDIA_FETCH_TIMEOUT)
        async with guarded_session(self.allow_private, timeout) as session:
            response = await guarded_request(session, "GET", url, self.allow_private)
            async with response:
                if response.status != 200:
                    raise DriverError(f"the media server answered {response.status}")
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > self.max_media_bytes:
                        raise DriverError(f"over the {self.max_media_bytes}-byte media limit")
        return bytes(data)

    async def receipt(self, wa_message_ids: tuple[str, ...], status: ReceiptStatus) -> None:
        """As if the recipient's phone acknowledged messages: delivered, or read."""
        await self.sink(Receipt(message_ids=wa_message_ids, status=status, timestamp=datetime.now(UTC)))

    async def call(self, caller: str, is_video: bool) -> str:
        """Someone calls the number; returns the call's id."""
        self._require_open()
        call_id = secrets.token_hex(16).upper()
        event = CallReceived(call_id=call_id, caller=caller, is_video=is_video, timestamp=datetime.now(UTC))
        await self.sink(event)
        return call_id

    async def group_event(self, event: InjectGroupEvent) -> None:
        """Something happened in a group, done by someone else: members changed (the kept group
        follows) or, with action "update", its settings."""
        self._require_open()
        group_id, action, by = event.group_id, event.action, event.by
        if action == "update":
            change = GroupChange(event.subject, event.description, event.announce, event.locked)
            with contextlib.suppress(UnknownChatError):
                group = await self._stored_group(group_id)
                await self._keep(_changed_group(group, change))
            await self.sink(GroupUpdated(group_id=group_id, by=by, **vars(change)))
            return
        participants = event.participants
        with contextlib.suppress(UnknownChatError):
            group = await self._stored_group(group_id)
            members = {m.phone_number: m for m in group.participants}
            for number in participants:
                if action == "remove":
                    members.pop(number, None)
                else:
                    members[number] = SandboxMember(phone_number=number, is_admin=action == "promote")
            await self._keep(group.model_copy(update={"participants": list(members.values())}))
        await self.sink(GroupParticipants(group_id=group_id, action=action, participants=participants, by=by))

    async def ban(self, seconds: float) -> None:
        """As if WhatsApp banned the number for a while: disconnected until then."""
        self._stop_qr()
        self._connected = False
        self._banned_until = datetime.now(UTC) + timedelta(seconds=seconds)
        await self.sink(Banned(reason=BAN_REASON, expires_at=self._banned_until))

    async def seed(self, key: str, items: Sequence[SandboxGroup | SandboxProfile]) -> None:
        """Add (or replace, by group id or number) groups or profiles the actions answer from."""
        ids = [item.group_id if isinstance(item, SandboxGroup) else item.number for item in items]
        values = {id_: item.model_dump_json(by_alias=True) for id_, item in zip(ids, items, strict=True)}
        await self.redis.hset(key, mapping=values)  # type: ignore[misc]

    async def declare(self, accounts: Sequence[SandboxAccount]) -> None:
        """Each spelling (and the LID chat) of each account resolves to that account from now on."""
        values: dict[str, str] = {}
        for account in accounts:
            spellings = [*account.numbers, *([f"{account.lid}{LID_SUFFIX}"] if account.lid else [])]
            values.update(dict.fromkeys(spellings, account.model_dump_json(by_alias=True)))
        await self.redis.hset(keys.sandbox_accounts(self.name), mapping=values)  # type: ignore[misc]
        await self._load_accounts()

    def fail_next(self, error: str, count: int, transient: bool = False, kind: FailureKind = "refused") -> None:
        self._fail.extend([(error, TransientDriverError if transient else FAILURES[kind])] * count)


def default_phone(instance_name: str) -> str:
    """The number an instance links when the sandbox is not told one: its own, the same each time.
    Instances on one phone share its pace, so instances linked without a number are not on one."""
    return "5491" + str(int(hashlib.sha256(instance_name.encode()).hexdigest(), 16) % 10**9).zfill(9)


def _participant_error(action: ParticipantAction, number: str, member: bool) -> str | None:
    """Why WhatsApp would refuse this change for `number`, None when it makes it."""
    if action == "add":
        if number.startswith(NOT_ON_WHATSAPP_PREFIX):
            return "not on WhatsApp"
        return "already a participant" if member else None
    return None if member else "not a participant"


def _changed(change: GroupChange) -> dict[str, Any]:
    return {key: value for key, value in vars(change).items() if value is not None}


def _changed_group(group: SandboxGroup, change: GroupChange) -> SandboxGroup:
    """The group with the change made; an empty description removes it, as on WhatsApp."""
    update = _changed(change)
    if update.get("description") == "":
        update["description"] = None
    return group.model_copy(update=update)


def _kind_fields(message: OutgoingMessage) -> dict[str, Any]:
    """The fields of a send's kind as the sandbox lists them (`GET /sandbox/.../sent`)."""
    found: dict[str, Any] = {
        "quotedMessageId": message.quoted.message_id if message.quoted else None,
        "mentions": list(message.mentions),
    }
    if message.location is not None:
        found.update(message.location.model_dump(by_alias=True))
    if message.contacts:
        found["contacts"] = [contact.model_dump(by_alias=True) for contact in message.contacts]
    if message.poll is not None:
        found.update(message.poll.model_dump(by_alias=True))
    if message.target is not None:
        found["targetMessageId"] = message.target.message_id
    if message.type == "reaction":
        found["emoji"] = message.emoji
    return found


class SandboxDriver:
    def __init__(
        self,
        sessions_dir: Path,
        redis: Redis,
        worker_id: str,
        qr_schedule: Sequence[float] = QR_SCHEDULE,
        *,
        allow_private: bool = False,
        max_media_bytes: int = 100 * 1024 * 1024,
    ) -> None:
        self.allow_private = allow_private
        self.max_media_bytes = max_media_bytes
        self.sessions_dir = sessions_dir
        self.worker_id = worker_id
        self.redis = redis
        self.qr_schedule = qr_schedule

    def _store(self, instance_name: str) -> Path:
        return self.sessions_dir / f"{instance_name}.sandbox.json"

    def session(self, instance_name: str, sink: EventSink) -> SandboxSession:
        store = self._store(instance_name)
        return SandboxSession(
            instance_name,
            store,
            self.redis,
            sink,
            self.qr_schedule,
            self.worker_id,
            allow_private=self.allow_private,
            max_media_bytes=self.max_media_bytes,
        )

    def phone_controls(self, session: Session) -> SandboxSession | None:
        return session if isinstance(session, SandboxSession) else None

    def remove_store(self, instance_name: str) -> None:
        self._store(instance_name).unlink(missing_ok=True)


def history_batch(chats: Sequence[HistoryChatSpec]) -> HistorySynced:
    """`POST /sandbox/instance/{name}/history`'s chats as the neonize driver reports a history sync."""
    return HistorySynced(
        tuple(
            HistoryChat(
                chat_id=chat.chat_id,
                name=chat.name,
                messages=tuple(
                    HistoryMessage(
                        message_id=message.message_id,
                        from_me=message.from_me,
                        sender=None if message.from_me else message.sender or _chat_person(chat.chat_id),
                        text=message.text,
                        timestamp=message.timestamp,
                    )
                    for message in chat.messages
                ),
            )
            for chat in chats
        )
    )


def _chat_person(chat_id: str) -> str | None:
    return None if "@" in chat_id else chat_id
