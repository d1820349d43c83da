"""A simulated WhatsApp for development, demos and tests: same behaviour seen from the API.

Sessions keep a small JSON store per instance (like neonize's sqlite file), show real QR codes
that rotate and run out, record every send in Redis instead of delivering it, and take injected
inbound messages and failures through the `/sandbox/...` control routes.

Magic input: a recipient number starting with 999 is not on WhatsApp.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from core import keys
from core.clock import iso
from core.errors import InvalidState, NotFound
from core.redis_client import Redis
from scheduler.drivers.base import (
    Banned,
    Connected,
    Disconnected,
    DriverError,
    EventSink,
    MessageReceived,
    MessageType,
    NotLinkedError,
    OutgoingMessage,
    QrCode,
    QrExpired,
    Receipt,
    ReceiptStatus,
    SendResult,
    TransientDriverError,
)

log = structlog.get_logger(__name__)

# WhatsApp's rotation: the first code lasts about 60 s, the next ones about 20 s each, six in all.
QR_SCHEDULE: tuple[float, ...] = (60, 20, 20, 20, 20, 20)
NOT_ON_WHATSAPP_PREFIX = "999"
PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ123456789"
DEFAULT_PHONE = "5491100000000"
SANDBOX_CONTROL = "sandbox."  # the prefix of the API's commands that stand in for the phone
BAN_REASON = "temporary ban (sandbox)"


@dataclass
class _Store:
    linked: bool = False
    phone_number: str | None = None


class SandboxSession:
    def __init__(
        self, name: str, store_path: Path, redis: Redis, sink: EventSink, qr_schedule: Sequence[float], worker_id: str
    ) -> None:
        self.name = name
        self.worker_id = worker_id
        self.store_path = store_path
        self.redis = redis
        self.sink = sink
        self.qr_schedule = qr_schedule
        self._qr_task: asyncio.Task[None] | None = None
        self._fail: list[tuple[str, bool]] = []
        self._connected = False
        self._banned_until: datetime | None = None

    def _load(self) -> _Store:
        try:
            data = json.loads(self.store_path.read_text())
        except FileNotFoundError:
            return _Store()
        return _Store(linked=data["linked"], phone_number=data.get("phoneNumber"))

    def _save(self, store: _Store) -> None:
        self.store_path.parent.mkdir(parents=True, exist_ok=True)
        self.store_path.write_text(json.dumps({"linked": store.linked, "phoneNumber": store.phone_number}))

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

    async def is_on_whatsapp(self, phone_number: str) -> bool:
        return not phone_number.startswith(NOT_ON_WHATSAPP_PREFIX)

    async def send(self, message: OutgoingMessage) -> SendResult:
        if not self._connected:
            raise NotLinkedError("the sandbox session is not connected")
        if self._fail:
            error, transient = self._fail.pop(0)
            raise (TransientDriverError if transient else DriverError)(error)
        sent_at = datetime.now(UTC)
        message_id = "3EB0" + secrets.token_hex(8).upper()
        record = {
            "messageId": message_id,
            "to": message.to,
            "type": message.type,
            "text": message.text,
            "caption": message.caption,
            "mediaUrl": message.media_url,
            "fileName": message.file_name,
            "mimetype": message.mimetype,
            "mediaBytes": len(message.media) if message.media is not None else None,
            "sentAt": iso(sent_at),
            "sentBy": self.worker_id,
        }
        await self.redis.rpush(keys.sandbox_sent(self.name), json.dumps(record))  # type: ignore[misc]
        return SendResult(message_id=message_id, sent_at=sent_at)

    async def logout(self) -> None:
        self._stop_qr()
        self._connected = False
        self.store_path.unlink(missing_ok=True)

    async def close(self) -> None:
        self._stop_qr()
        self._connected = False

    # The control surface standing in for the phone and the contacts: `control` runs the one named
    # after `sandbox.` in a command from the API (the routes in gateway/routes/sandbox.py).

    async def control(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        match op:
            case "link":
                await self.link(args.get("phoneNumber") or DEFAULT_PHONE)
            case "unlink":
                await self.unlink()
            case "inbound":
                return {
                    "messageId": await self.inbound(
                        args["from"], args.get("text"), args["messageType"], args.get("pushName")
                    )
                }
            case "receipt":
                await self.receipt(tuple(args["messageIds"]), args["status"])
            case "ban":
                await self.ban(args["seconds"])
            case "fail_next":
                self.fail_next(args["error"], args["count"], args["transient"])
            case _:
                raise NotFound(f"unknown sandbox control {op!r}")
        return {}

    async def link(self, phone_number: str) -> None:
        if self._connected:
            raise InvalidState("instance is already open")
        self._stop_qr()
        self._save(_Store(linked=True, phone_number=phone_number))
        self._connected = True
        await self.sink(Connected(phone_number=phone_number))

    async def unlink(self) -> None:
        self._stop_qr()
        self._connected = False
        self._save(_Store())
        await self.sink(Disconnected(reason="logged_out", logged_out=True))

    async def inbound(self, sender: str, text: str | None, message_type: MessageType, push_name: str | None) -> str:
        message_id = "3A" + secrets.token_hex(9).upper()
        await self.sink(
            MessageReceived(
                message_id=message_id,
                sender=sender,
                push_name=push_name,
                message_type=message_type,
                text=text if message_type == "conversation" else None,
                timestamp=datetime.now(UTC),
            )
        )
        return message_id

    async def receipt(self, wa_message_ids: tuple[str, ...], status: ReceiptStatus) -> None:
        """As if the recipient's phone acknowledged messages: delivered, or read."""
        await self.sink(Receipt(message_ids=wa_message_ids, status=status, timestamp=datetime.now(UTC)))

    async def ban(self, seconds: float) -> None:
        """As if WhatsApp banned the number for a while: disconnected until then."""
        self._stop_qr()
        self._connected = False
        self._banned_until = datetime.now(UTC) + timedelta(seconds=seconds)
        await self.sink(Banned(reason=BAN_REASON, expires_at=self._banned_until))

    def fail_next(self, error: str, count: int, transient: bool = False) -> None:
        self._fail.extend([(error, transient)] * count)


class SandboxDriver:
    def __init__(
        self, sessions_dir: Path, redis: Redis, worker_id: str, qr_schedule: Sequence[float] = QR_SCHEDULE
    ) -> None:
        self.sessions_dir = sessions_dir
        self.worker_id = worker_id
        self.redis = redis
        self.qr_schedule = qr_schedule

    def _store(self, instance_name: str) -> Path:
        return self.sessions_dir / f"{instance_name}.sandbox.json"

    def session(self, instance_name: str, sink: EventSink) -> SandboxSession:
        store = self._store(instance_name)
        return SandboxSession(instance_name, store, self.redis, sink, self.qr_schedule, self.worker_id)

    def remove_store(self, instance_name: str) -> None:
        self._store(instance_name).unlink(missing_ok=True)
