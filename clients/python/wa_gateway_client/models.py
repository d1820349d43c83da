"""What the gateway answers, as frozen dataclasses with snake_case fields (camelCase on the wire).
Fields the gateway adds later are ignored, so an older client keeps working against a newer one."""

from __future__ import annotations

import base64
import dataclasses
import re
import types
from functools import cache
from typing import Any, Literal, Self, TypeVar, Union, get_args, get_origin, get_type_hints

Lane = Literal["urgent", "normal", "bulk"]
State = Literal["close", "connecting", "open"]
MessageStatus = Literal["pending", "sending", "sent", "delivered", "read", "failed", "cancelled"]
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

M = TypeVar("M", bound="Model")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@cache
def _hints(cls: type[Model]) -> dict[str, Any]:
    return get_type_hints(cls)


def _convert(kind: Any, value: Any) -> Any:
    origin = get_origin(kind)
    if value is None:
        return None
    if isinstance(kind, type) and issubclass(kind, Model):
        return kind.from_json(value)
    if origin is list:
        return [_convert(get_args(kind)[0], item) for item in value]
    if origin is dict:
        return {key: _convert(get_args(kind)[1], item) for key, item in value.items()}
    if origin in (Union, types.UnionType):
        (inner,) = [arg for arg in get_args(kind) if arg is not type(None)]
        return _convert(inner, value)
    return value


class Model:
    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        hints = _hints(cls)  # type: ignore[arg-type]  # (a class is hashable; Self hides it)
        given = {snake(key): value for key, value in data.items()}
        # A field named after a Python keyword ends in "_" (`from_` is the wire's `from`).
        fields = {
            f.name: _convert(hints[f.name], given.get(f.name.removesuffix("_")))
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        }
        return cls(**fields)


def list_of(cls: type[M], field: str | None = None) -> Any:
    """Reads a JSON list of `cls` (or the list under `field` of a JSON object)."""

    def parse(data: Any) -> list[M]:
        return [cls.from_json(item) for item in (data[field] if field else data)]

    return parse


@dataclasses.dataclass(frozen=True)
class Health(Model):
    status: str
    redis: str


@dataclasses.dataclass(frozen=True)
class WhoAmI(Model):
    key_id: str
    tenant_id: str | None
    admin: bool


@dataclasses.dataclass(frozen=True)
class WebhookStatus(Model):
    state: Literal["ok", "retrying", "down", "disabled"]
    since: str | None
    pending: int
    oldest_pending_at: str | None


@dataclasses.dataclass(frozen=True)
class InstanceStatus(Model):
    instance_name: str
    state: State
    phone_number: str | None
    connected_at: str | None
    messages_queued_count: int
    webhook_url: str
    created_at: str


@dataclasses.dataclass(frozen=True)
class InstanceStatusWithWebhook(InstanceStatus):
    webhook: WebhookStatus  # how its webhook fares (get_status)


@dataclasses.dataclass(frozen=True)
class Qr(Model):
    qrcode: str  # data:image/png;base64,...
    expires_at: str

    @property
    def png(self) -> bytes:
        return base64.b64decode(self.qrcode.split(",", 1)[1])


@dataclasses.dataclass(frozen=True)
class PairingCode(Model):
    pairing_code: str


@dataclasses.dataclass(frozen=True)
class LaneQuota(Model):
    per_hour: int
    per_day: int
    warmup: float  # the factor of the lane's configured quotas applied today
    first_contact_per_day: int | None  # messages a day to numbers that never wrote (None: no limit)


@dataclasses.dataclass(frozen=True)
class WarmupState(Model):
    day: int  # days since the first link, 0 on that day
    first_linked_at: str | None
    override: float | None  # an admin's factor replacing the schedule


@dataclasses.dataclass(frozen=True)
class ThrottleState(Model):
    reason: str  # banned, not_on_whatsapp or failure_rate
    until: str


@dataclasses.dataclass(frozen=True)
class Queue(Model):
    urgent: int
    normal: int
    bulk: int
    total: int
    quotas: dict[str, LaneQuota]  # today's effective quotas, by lane
    warmup: WarmupState
    throttled: ThrottleState | None  # the bulk lane's pause, while it lasts
    held: dict[str, int] | None = None  # why the heads of the lanes wait: reason -> count


@dataclasses.dataclass(frozen=True)
class Queued(Model):
    id: str
    status: Literal["pending"]
    lane: Lane
    queued_at: str
    instance_name: str


@dataclasses.dataclass(frozen=True)
class BatchRecord(Model):
    id: str
    status: MessageStatus
    lane: Lane
    queued_at: str
    instance_name: str
    client_ref: str | None
    replayed: bool  # its client_ref had queued this message before: nothing new was queued


@dataclasses.dataclass(frozen=True)
class Location(Model):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@dataclasses.dataclass(frozen=True)
class Contact(Model):
    full_name: str
    phone_number: str | None = None
    organization: str | None = None


@dataclasses.dataclass(frozen=True)
class Poll(Model):
    question: str
    options: list[str]
    selectable_count: int


@dataclasses.dataclass(frozen=True)
class MessageRef(Model):
    """A message on WhatsApp a send points at: its WhatsApp id, its chat, whether we wrote it, and
    else who did (None: WhatsApp did not say)."""

    message_id: str
    chat: str
    from_me: bool = False
    sender: str | None = None
    text: str | None = None


@dataclasses.dataclass(frozen=True)
class Waiting(Model):
    reason: str  # queued, gap, hourly_quota, daily_quota, warmup, first_contact, spacing, throttled, ...
    until: str | None  # the earliest it can go; None when that depends on something else


@dataclasses.dataclass(frozen=True)
class Message(Model):
    id: str
    instance_name: str
    lane: Lane
    to: str
    type: SendType
    status: MessageStatus
    created_at: str
    sent_at: str | None
    error: str | None
    text: str | None
    caption: str | None
    wa_message_id: str | None
    attempts: int
    possibly_duplicated: bool
    transactional: bool | None = None  # on the urgent lane: sent even to an opted-out number
    quoted_message_id: str | None = None
    mentions: list[str] | None = None
    typing_ms: int | None = None
    location: Location | None = None
    contacts: list[Contact] | None = None
    poll: Poll | None = None
    emoji: str | None = None
    target_message_id: str | None = None  # what a reaction, an edit or a deletion is about
    target: MessageRef | None = None
    recipient: Recipient | None = None  # the account `to` resolved to; None until sent, and for groups
    waiting: Waiting | None = None  # why a pending message waits
    error_code: str | None = None  # why it failed (or was flushed), for programs
    metadata: dict[str, Any] | None = None  # the send's own metadata, as it was given


@dataclasses.dataclass(frozen=True)
class Webhook(Model):
    instance_name: str
    webhook_url: str
    events: list[str]  # ["*"]: all
    webhook: WebhookStatus


@dataclasses.dataclass(frozen=True)
class WebhookUpdated(Webhook):
    secret_rotated: bool


@dataclasses.dataclass(frozen=True)
class Replayed(Model):
    replayed: int


@dataclasses.dataclass(frozen=True)
class Attempt(Model):
    at: str
    duration_ms: int
    status_code: int | None
    error: str | None


@dataclasses.dataclass(frozen=True)
class Delivery(Model):
    id: str
    event: str
    status: Literal["pending", "retrying", "delivered", "dead"]
    created_at: str
    next_attempt_at: str | None
    delivered_at: str | None
    tries: int
    attempts: list[Attempt]
    last_status_code: int | None = None
    last_response: str | None = None  # the first 1 KB of the receiver's last answer


@dataclasses.dataclass(frozen=True)
class DeliveryPage(Model):
    deliveries: list[Delivery]
    next_cursor: int | None


@dataclasses.dataclass(frozen=True)
class DeliveryQueued(Model):
    delivery_id: str
    event: str
    status: str


@dataclasses.dataclass(frozen=True)
class LaneCounts(Model):
    urgent: int
    normal: int
    bulk: int


@dataclasses.dataclass(frozen=True)
class Stats(Model):
    instances: dict[str, int]
    waiting: LaneCounts
    messages: dict[str, int]
    webhooks: dict[str, int]
    workers_alive: int


@dataclasses.dataclass(frozen=True)
class Worker(Model):
    worker_id: str
    alive: bool
    last_heartbeat: str
    host: str | None
    pid: int | None
    capacity: int | None
    started_at: str | None
    instances: list[str]


@dataclasses.dataclass(frozen=True)
class Flushed(Model):
    instance_name: str
    flushed: int


@dataclasses.dataclass(frozen=True)
class TenantCreated(Model):
    tenant_id: str
    name: str
    api_key: str
    key_id: str


@dataclasses.dataclass(frozen=True)
class Tenant(Model):
    tenant_id: str
    name: str
    created_at: str
    key_ids: list[str]


@dataclasses.dataclass(frozen=True)
class KeyIssued(Model):
    api_key: str
    key_id: str
    scopes: list[str] = dataclasses.field(default_factory=lambda: ["all"])


@dataclasses.dataclass(frozen=True)
class InstancePage(Model):
    items: list[InstanceStatus]
    next: str | None


@dataclasses.dataclass(frozen=True)
class SentMessage(Model):
    message_id: str
    to: str
    type: str
    text: str | None
    caption: str | None
    media_url: str | None
    file_name: str | None
    mimetype: str | None
    media_bytes: int | None
    sent_at: str
    sent_by: str
    jid: str | None = None  # where it went: the account `to` resolved to, or the chat
    quoted_message_id: str | None = None
    mentions: list[str] | None = None
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    contacts: list[Contact] | None = None
    question: str | None = None
    options: list[str] | None = None
    selectable_count: int | None = None
    emoji: str | None = None
    target_message_id: str | None = None
    typing_ms: int | None = None


# Staying unbanned.
@dataclasses.dataclass(frozen=True)
class Suppression(Model):
    number: str
    reason: str | None
    source: str  # "api", or "keyword": the contact replied with an opt-out keyword
    added_at: str


@dataclasses.dataclass(frozen=True)
class Suppressions(Model):
    tenant_id: str
    suppressions: list[Suppression]


@dataclasses.dataclass(frozen=True)
class Suppressed(Model):
    tenant_id: str
    added: list[str]


@dataclasses.dataclass(frozen=True)
class InstanceSettings(Model):
    deliverability: Literal["standard", "cautious"]
    reject_calls: bool
    reject_call_message: str | None
    always_online: bool
    auto_read: bool
    ignore_groups: bool
    sync_history: bool
    proxy_url: str | None  # its password, if any, answered as ***


@dataclasses.dataclass(frozen=True)
class Warmup(Model):
    instance_name: str
    factor: float | None  # None: the lanes' warm-up schedule applies


@dataclasses.dataclass(frozen=True)
class Unthrottled(Model):
    instance_name: str
    reason: str


# Conversation actions.
@dataclasses.dataclass(frozen=True)
class NumberCheck(Model):
    number: str
    on_whats_app: bool  # onWhatsApp on the wire
    jid: str | None  # the account's WhatsApp id
    lid: str | None = None  # its LID, when known


@dataclasses.dataclass(frozen=True)
class LidLookup(Model):
    lid: str
    number: str | None  # None when WhatsApp does not tell


@dataclasses.dataclass(frozen=True)
class Recipient(Model):
    """The account a message's `to` resolved to when it was sent."""

    number: str | None  # None for a LID chat whose number is unknown
    lid: str | None
    jid: str  # where the message went


@dataclasses.dataclass(frozen=True)
class ContactProfile(Model):
    number: str
    name: str | None  # None where the contact hides it
    picture_url: str | None
    about: str | None


@dataclasses.dataclass(frozen=True)
class GroupSummary(Model):
    group_id: str
    subject: str
    participants_count: int
    is_admin: bool  # whether the instance's number administers the group


@dataclasses.dataclass(frozen=True)
class GroupParticipant(Model):
    phone_number: str | None  # None when WhatsApp shows the member only by LID
    is_admin: bool


@dataclasses.dataclass(frozen=True)
class GroupDetails(Model):
    group_id: str
    subject: str
    description: str | None
    participants: list[GroupParticipant]


@dataclasses.dataclass(frozen=True)
class GroupCreated(Model):
    group_id: str


@dataclasses.dataclass(frozen=True)
class ParticipantOutcome(Model):
    number: str
    ok: bool
    error: str | None  # why WhatsApp did not make the change for this number


@dataclasses.dataclass(frozen=True)
class InviteLink(Model):
    invite_link: str


@dataclasses.dataclass(frozen=True)
class SandboxAction(Model):
    """What a conversation action (or a setting) asked of the sandbox's 'WhatsApp'."""

    action: str  # lookup, lid, profile, read, presence, groups, group, group_*, call_reject or proxy
    at: str
    numbers: list[str] | None
    number: str | None
    chat_id: str | None
    message_ids: list[str] | None
    state: str | None
    group_id: str | None
    subject: str | None
    participants: list[str] | None
    change: str | None  # a participants change: add, remove, promote, demote
    revoke: bool | None
    description: str | None
    announce: bool | None
    locked: bool | None
    invite_link: str | None
    call_id: str | None
    proxy_host: str | None  # the proxy now used (its host only); None: none
    lid: str | None = None


# The conversation store: what the gateway kept of each chat.
@dataclasses.dataclass(frozen=True)
class Reaction(Model):
    from_: str | None  # who reacted; None for this number or a sender known only by LID
    from_me: bool
    emoji: str
    timestamp: str


@dataclasses.dataclass(frozen=True)
class StoredMessage(Model):
    """A message of a chat as the gateway kept it: received (`direction` "in") or ours ("out")."""

    id: str | None  # the gateway's id (msg_...) of a message sent through it
    message_id: str  # WhatsApp's id
    direction: Literal["in", "out"]
    from_: str | None
    from_lid: str | None
    type: str
    text: str | None
    caption: str | None
    media: dict[str, Any] | None
    quoted_message_id: str | None
    status: str
    timestamp: str
    metadata: dict[str, Any] | None
    edited: bool
    deleted: bool
    reactions: list[Reaction]


@dataclasses.dataclass(frozen=True)
class Chat(Model):
    chat_id: str
    name: str | None
    is_group: bool
    last_message_at: str | None
    last_message: StoredMessage | None
    unread: int


@dataclasses.dataclass(frozen=True)
class ChatPage(Model):
    items: list[Chat]
    next: str | None  # pass it as `cursor` for the next page; None at the end


@dataclasses.dataclass(frozen=True)
class StoredMessagePage(Model):
    items: list[StoredMessage]
    next: str | None
