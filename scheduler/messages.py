"""Message records: what was asked, what happened. Kept in Redis for the retention period once
they end (sent, failed or cancelled); pending ones are kept until they end."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

from config.settings import LaneName
from core import keys
from core.clock import now_iso
from core.redis_client import Redis

SendType = Literal["text", "image", "document", "audio", "video"]
Status = Literal["pending", "sending", "sent", "delivered", "read", "failed", "cancelled"]
# A receipt only moves a message forward: a late "delivered" never undoes a "read".
RECEIPT_ORDER = {"sent": 0, "delivered": 1, "read": 2}


def new_message_id() -> str:
    return f"msg_{int(time.time() * 1000):x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Message:
    id: str
    instance_name: str
    tenant_id: str
    lane: LaneName
    to: str
    type: SendType
    status: Status
    text: str | None
    caption: str | None
    media_url: str | None
    file_name: str | None
    created_at: str
    sent_at: str | None
    error: str | None
    wa_message_id: str | None
    attempts: int
    possibly_duplicated: bool
    transactional: bool  # sent even to an opted-out number (urgent lane only)

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Message:
        return cls(
            id=data["id"],
            instance_name=data["instanceName"],
            tenant_id=data["tenantId"],
            lane=data["lane"],  # type: ignore[arg-type]
            to=data["to"],
            type=data["type"],  # type: ignore[arg-type]
            status=data["status"],  # type: ignore[arg-type]
            text=data.get("text"),
            caption=data.get("caption"),
            media_url=data.get("mediaUrl"),
            file_name=data.get("fileName"),
            created_at=data["createdAt"],
            sent_at=data.get("sentAt"),
            error=data.get("error"),
            wa_message_id=data.get("waMessageId"),
            attempts=int(data.get("attempts", "0")),
            possibly_duplicated=data.get("possiblyDuplicated") == "1",
            transactional=data.get("transactional") == "1",
        )


def new_record(
    message_id: str,
    instance_name: str,
    tenant_id: str,
    lane: LaneName,
    to: str,
    type_: SendType,
    *,
    text: str | None = None,
    caption: str | None = None,
    media_url: str | None = None,
    file_name: str | None = None,
    transactional: bool = False,
) -> dict[str, str | int | None]:
    return {
        "id": message_id,
        "instanceName": instance_name,
        "tenantId": tenant_id,
        "lane": lane,
        "to": to,
        "type": type_,
        "status": "pending",
        "text": text,
        "caption": caption,
        "mediaUrl": media_url,
        "fileName": file_name,
        "createdAt": now_iso(),
        "createdMs": int(time.time() * 1000),
        "attempts": 0,
        "transactional": "1" if transactional else None,
    }


class Messages:
    def __init__(self, redis: Redis, retention_seconds: int) -> None:
        self.redis = redis
        self.retention = retention_seconds

    async def get(self, message_id: str) -> Message | None:
        data = await self.redis.hgetall(keys.message(message_id))
        return Message.from_hash(data) if data.get("id") else None

    async def apply_receipt(self, instance_name: str, wa_message_ids: tuple[str, ...], status: str) -> list[Message]:
        """Move the messages a receipt names to `status`; returns those that moved."""
        moved = []
        for wa_id in wa_message_ids:
            message_id = await self.redis.get(keys.whatsapp_id(instance_name, wa_id))
            message = await self.get(message_id) if message_id else None
            if message is None or RECEIPT_ORDER.get(message.status, 99) >= RECEIPT_ORDER[status]:
                continue
            await self.redis.hset(keys.message(message.id), "status", status)
            moved.append(message)
        return moved
