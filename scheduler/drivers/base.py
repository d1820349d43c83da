"""The WhatsApp driver interface: one small surface, two drivers (neonize, sandbox).

A driver hands out one `Session` per instance (one WhatsApp number). Sessions report what
happens on the WhatsApp side as `DriverEvent` values through an async sink; the worker turns
them into instance state and webhook events.

Exception tree::

    DriverError                 the WhatsApp side refused or failed
     +-- TransientDriverError   worth retrying later (network blip, not connected yet)
     +-- OutcomeUnknownError    the send may or may not have gone out (timeout)
     +-- NotOnWhatsAppError     the recipient number has no WhatsApp account
     +-- NotLinkedError         the session has no linked device (needs a QR / pairing code)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

MessageType = Literal["conversation", "imageMessage", "documentMessage", "audioMessage", "videoMessage"]
SendType = Literal["text", "image", "document", "audio", "video"]
ReceiptStatus = Literal["delivered", "read"]


class DriverError(Exception):
    """The WhatsApp side refused or failed."""


class TransientDriverError(DriverError):
    pass


class OutcomeUnknownError(DriverError):
    pass


class NotOnWhatsAppError(DriverError):
    pass


class NotLinkedError(DriverError):
    pass


@dataclass(frozen=True)
class QrCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Connected:
    phone_number: str


@dataclass(frozen=True)
class Disconnected:
    reason: str
    logged_out: bool = False


@dataclass(frozen=True)
class QrExpired:
    pass


@dataclass(frozen=True)
class Banned:
    reason: str
    expires_at: datetime | None


@dataclass(frozen=True)
class MessageReceived:
    message_id: str
    sender: str
    push_name: str | None
    message_type: MessageType
    text: str | None
    timestamp: datetime
    from_me: bool = False
    caption: str | None = None


@dataclass(frozen=True)
class Receipt:
    message_ids: tuple[str, ...]
    status: ReceiptStatus
    timestamp: datetime


DriverEvent = QrCode | Connected | Disconnected | QrExpired | Banned | MessageReceived | Receipt
EventSink = Callable[[DriverEvent], Awaitable[None]]


@dataclass(frozen=True)
class OutgoingMessage:
    to: str
    type: SendType
    text: str | None = None
    caption: str | None = None
    media: bytes | None = None
    mimetype: str | None = None
    file_name: str | None = None
    media_url: str | None = None


@dataclass(frozen=True)
class SendResult:
    message_id: str
    sent_at: datetime = field(compare=False)


class Session(Protocol):
    """One WhatsApp number, owned by exactly one worker."""

    @property
    def linked(self) -> bool:
        """True when the session store holds a linked device (no QR needed to reconnect)."""
        ...

    async def connect(self) -> None:
        """Reconnect a linked session, or start a QR cycle (QrCode events) for a new one."""
        ...

    async def pair_phone(self, phone_number: str) -> str:
        """Ask WhatsApp for an 8-character pairing code ("ABCD-EFGH") for `phone_number`."""
        ...

    async def is_on_whatsapp(self, phone_number: str) -> bool: ...

    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def logout(self) -> None:
        """Unlink the device from the phone and forget the credentials."""
        ...

    async def close(self) -> None:
        """Disconnect without logging out; the store keeps the link for the next connect."""
        ...


class Driver(Protocol):
    def session(self, instance_name: str, sink: EventSink) -> Session: ...

    def remove_store(self, instance_name: str) -> None:
        """Delete the instance's session store (after logout)."""
        ...
