"""Message records: what was asked, what happened. Kept in Redis for the retention period once
they end (sent, failed or cancelled); pending ones are kept until they end."""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from enum import Enum
from typing import Any, Final, Literal

from pydantic.alias_generators import to_camel

from config.settings import LaneName
from core import keys, scripts
from core.clock import iso_from_ms, now_ms
from core.ids import random_hex
from core.instances import tenant_of
from core.records import ApiModel, ErrorCode
from core.redis_client import Redis
from scheduler.drivers.base import Contact, Location, MessageRef, Poll, SendType

Status = Literal["pending", "sending", "sent", "delivered", "read", "failed", "cancelled"]
# Message ids an instance's recent-messages index keeps (the console's listing); older ones drop out.
RECENT_KEPT = 200
# A receipt only moves a message forward: a late "delivered" never undoes a "read".
RECEIPT_ORDER = {"sent": 0, "delivered": 1, "read": 2}


class Details(ApiModel):
    """What a message carries beyond its text, caption and media, by kind: kept in the record as
    one JSON field (`details`), resolved when it was accepted (a quote's or a target's WhatsApp id
    and chat)."""

    quoted: MessageRef | None = None
    mentions: tuple[str, ...] = ()
    location: Location | None = None
    contacts: tuple[Contact, ...] = ()
    poll: Poll | None = None
    emoji: str | None = None
    target: MessageRef | None = None
    target_id: str | None = None  # the reference the client gave for the target (our id or WhatsApp's)

    def stored(self) -> str | None:
        if not self.model_fields_set:  # nothing given: every field its default (a plain text's)
            return None
        found = self.model_dump_json(by_alias=True, exclude_defaults=True)
        return None if found == "{}" else found


def stored_metadata(metadata: dict[str, Any] | None) -> str | None:
    return None if metadata is None else json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)


def new_message_id() -> str:
    return f"msg_{now_ms():x}{random_hex(8)}"


@dataclass(frozen=True)
class Message:
    """The message record: one definition for Python and Lua. It is a Redis hash whose field
    names are these attributes in camelCase (`FIELDS`); the lane scripts take them from here
    (`lua_fields`), and every change to a record is a `MessageUpdate`."""

    id: str
    instance_name: str
    tenant_id: str
    lane: LaneName
    to: str
    type: SendType
    status: Status
    created_at: str
    created_ms: int
    text: str | None = None
    caption: str | None = None
    media_url: str | None = None
    file_name: str | None = None
    sent_at: str | None = None
    error: str | None = None
    error_code: ErrorCode | None = None
    wa_message_id: str | None = None
    attempts: int = 0
    possibly_duplicated: bool = False
    eligible_ms: int | None = None  # when the lanes first allowed it to go (lateness figures)
    transactional: bool = False  # sent even to an opted-out number (urgent lane only)
    quoted_message_id: str | None = None  # as the client gave it: our id, or WhatsApp's
    details: str | None = None  # `Details` as JSON
    typing_ms: int = 0  # "typing..." shown this long before the send, within the lane gap
    recipient: str | None = None  # the account `to` resolved to when it was sent: JSON {number, lid, jid}
    metadata: str | None = None  # the client's metadata object as JSON

    @property
    def meta(self) -> dict[str, Any] | None:
        """The client's metadata, as given with the send (every message.* event carries it)."""
        return json.loads(self.metadata) if self.metadata else None

    @property
    def detail(self) -> Details:
        return Details.model_validate_json(self.details) if self.details else Details()

    @classmethod
    def new(
        cls,
        message_id: str,
        instance_name: str,
        lane: LaneName,
        to: str,
        type_: SendType,
        transactional: bool = False,
        typing_ms: int = 0,
        **content: str | None,
    ) -> Message:
        """A message just accepted: pending, with its content (text, caption, media_url, file_name,
        quoted_message_id, details)."""
        created_ms = now_ms()  # one clock reading for both of its times
        return cls._of(
            {
                **content,  # only the optional str fields are passed
                "id": message_id,
                "instance_name": instance_name,
                "tenant_id": tenant_of(instance_name),
                "lane": lane,
                "to": to,
                "type": type_,
                "status": "pending",
                "created_at": iso_from_ms(created_ms),
                "created_ms": created_ms,
                "transactional": transactional,
                "typing_ms": typing_ms,
            }
        )

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Message:
        values: dict[str, Any] = {}
        for name, field, kind in _FIELD_KINDS:
            raw = data.get(field)
            if raw is not None:
                values[name] = raw == "1" if kind is bool else int(raw) if kind is int else raw
        return cls._of(values)

    @classmethod
    def _of(cls, values: dict[str, Any]) -> Message:
        """The record from its attributes by name, as `Message(**values)` makes it, without the
        constructor's frozen writes (an object.__setattr__ call per attribute: 5.4 µs against 1.0
        for a message, made for every send accepted and every record read)."""
        if not _REQUIRED <= values.keys() <= FIELDS.keys():
            return cls(**values)  # the constructor's own TypeError names what is missing or unknown
        made = object.__new__(cls)
        made.__dict__.update(_DEFAULTS)
        made.__dict__.update(values)
        return made

    def stored_fields(self) -> list[str | int]:
        """The record as the accept script stores it, each field followed by its value: a field
        without a value (None, or a false flag) is left out, as the hash has no such field."""
        found: list[str | int] = []
        values = self.__dict__  # read whole, not 26 getattr and _stored calls: once per accepted message
        for name, field, _ in _FIELD_KINDS:
            value = values[name]
            if value is not None and value is not False:
                found += (field, "1" if value is True else value)
        return found


FIELDS = {field.name: to_camel(field.name) for field in fields(Message)}
_DEFAULTS = {field.name: field.default for field in fields(Message) if field.default is not MISSING}
_REQUIRED = FIELDS.keys() - _DEFAULTS.keys()
# Each attribute, its hash field and the type its stored text reads back as.
_FIELD_KINDS = tuple(
    (field.name, FIELDS[field.name], int if hint in ("int", "int | None") else bool if hint == "bool" else str)
    for field, hint in ((field, str(field.type)) for field in fields(Message))
)


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP


@dataclass(frozen=True)
class MessageUpdate:
    """A change to message records: each attribute of `Message` given here gets its value (None
    removes it); those left `KEEP` stay as they are."""

    status: Status | _Keep = KEEP
    error: str | _Keep | None = KEEP
    error_code: ErrorCode | _Keep | None = KEEP
    attempts: int | _Keep = KEEP
    sent_at: str | _Keep | None = KEEP
    wa_message_id: str | _Keep | None = KEEP
    recipient: str | _Keep | None = KEEP
    text: str | _Keep | None = KEEP
    caption: str | _Keep | None = KEEP

    def changed(self) -> dict[str, Any]:
        """What it changes, by Message attribute."""
        return {name: value for name, value in vars(self).items() if value is not KEEP}

    def hash_fields(self) -> dict[str, str | int | None]:
        """As the hash fields the scripts set (None removes a field)."""
        return {FIELDS[name]: _stored(value) for name, value in self.changed().items()}

    def applied_to(self, message: Message) -> Message:
        """The record as it is once changed."""
        return Message._of({**vars(message), **self.changed()})  # as replace() makes it, 4x as fast


def _stored(value: object) -> str | int | None:
    """An attribute as its hash field holds it: a flag as "1" or no field, None as no field."""
    if value is True:
        return "1"
    if value is None or value is False:
        return None
    assert isinstance(value, str | int)
    return value


def lua_fields() -> str:
    """`local F = {createdMs = 'createdMs', ...}`: the record's field names for the Lua scripts."""
    entries = ", ".join(f"{field} = '{field}'" for field in FIELDS.values())
    return f"local F = {{{entries}}}"


scripts.generate("message_fields", lua_fields)


class Messages:
    def __init__(self, redis: Redis, retention_seconds: int) -> None:
        self.redis = redis
        self.retention = retention_seconds
        self._receipt = scripts.Scripts.of(redis)["receipt"]

    async def get(self, message_id: str) -> Message | None:
        data = await self.redis.hgetall(keys.message(message_id))  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
        return Message.from_hash(data) if data.get("id") else None

    async def recent(self, instance_name: str, limit: int) -> list[Message]:
        """The instance's latest messages still retained, newest first."""
        index = keys.recent_messages(instance_name)
        while True:
            ids = await self.redis.zrevrange(index, 0, limit - 1)
            async with self.redis.pipeline(transaction=False) as pipe:
                for message_id in ids:
                    pipe.hgetall(keys.message(message_id))
                records = await pipe.execute()
            gone = [message_id for message_id, data in zip(ids, records, strict=True) if not data.get("id")]
            if not gone:
                return [Message.from_hash(data) for data in records]
            await self.redis.zrem(index, *gone)  # their retention ran out: the index forgets them too

    async def apply_receipt(self, instance_name: str, wa_message_ids: tuple[str, ...], status: str) -> list[Message]:
        """Move the messages a receipt names to `status` (forward only, one atomic step); returns
        those that moved, as they were before."""
        found = await self._receipt(
            args=[
                instance_name,
                FIELDS["status"],
                status,
                json.dumps(RECEIPT_ORDER),
                *wa_message_ids,
            ]
        )
        return [Message.from_hash(dict(zip(flat[::2], flat[1::2], strict=True))) for flat in found]
