"""Pure helpers: neonize events into `DriverEvent`s, whatever neonize raises into `DriverError`s.

Event timestamps: `MessageInfo.Timestamp` is in milliseconds, `Receipt.Timestamp` and
`SendResponse.Timestamp` in seconds (`from_epoch` takes both); `TemporaryBan.Expire` is a duration
in seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.drivers.base import (
    Banned,
    Connected,
    Disconnected,
    DriverError,
    DriverEvent,
    MessageReceived,
    MessageType,
    NotLinkedError,
    OutcomeUnknownError,
    Receipt,
    ReceiptStatus,
    TransientDriverError,
)
from scheduler.drivers.neonize.loading import _pb

_DIRECT_CHAT_SERVERS = frozenset({"s.whatsapp.net", "lid", "c.us"})
_MEDIA_FIELDS: tuple[MessageType, ...] = ("imageMessage", "documentMessage", "audioMessage", "videoMessage")
# Containers whose inner `.message` is the real content (whatsmeow usually unwraps them already).
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "deviceSentMessage",
)
_LOGGED_OUT_REASONS = frozenset({"LOGGED_OUT"})
# whatsmeow reports these as logouts; WhatsApp Web calls 403 LOCKED and 406 BANNED: the number is
# barred, not merely unlinked.
_BARRED_REASONS = {"MAIN_DEVICE_GONE": "locked", "UNKNOWN_LOGOUT": "banned"}
_NOT_LINKED_MARKERS = ("not logged in", "doesn't contain a device", "no device")
# whatsmeow fails these before the message node is written: nothing left, it is safe to retry.
_NOT_SENT_MARKERS = (
    "info query",  # "info query timed out", "websocket disconnected before info query returned response"
    "failed to get",  # the LID, user info or device list lookups that precede a send
    "failed to fetch",
    "failed to prefetch",
    "no lid found",
    "websocket not connected",
    "failed to send message node",  # the write itself failed: the server got no message
)
# Only after the node went out is the outcome unknown: WhatsApp may have taken the message.
_UNKNOWN_OUTCOME_MARKERS = ("timed out waiting for message send response",)
_TIMEOUT_MARKERS = ("timed out", "timeout", "deadline exceeded")
_TRANSIENT_MARKERS = (
    *_NOT_SENT_MARKERS,
    "client is nil",
    "client not found",
    "not connected",
    "failed to dial",
    "connection refused",
    "connection reset",
    "broken pipe",
    "no such host",
    "network is unreachable",
)


def digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def from_epoch(value: int, *, now: datetime | None = None) -> datetime:
    """neonize mixes seconds and milliseconds; a value past year 5000 in seconds is milliseconds."""
    if value <= 0:
        return now or datetime.now(UTC)
    seconds = value / 1000 if value > 100_000_000_000 else value
    return datetime.fromtimestamp(seconds, UTC)


def format_pairing_code(code: str) -> str:
    """WhatsApp's 8-character linking code as "ABCD-EFGH"."""
    raw = re.sub(r"[^0-9A-Za-z]", "", code).upper()
    if len(raw) != 8:
        raise DriverError(f"unexpected pairing code from WhatsApp: {code!r}")
    return f"{raw[:4]}-{raw[4:]}"


def _enum_name(message: Any, field: str, default: str) -> str:
    if not message.HasField(field):
        return default
    enum = message.DESCRIPTOR.fields_by_name[field].enum_type
    value = enum.values_by_number.get(getattr(message, field))
    return value.name if value is not None else default


def _sender_phone(source: Any) -> str:
    sender = source.Sender
    # LID-addressed chats: the sender is an opaque "lid" id, its phone number JID is SenderAlt.
    if sender.Server == "lid" and source.SenderAlt.User and source.SenderAlt.Server != "lid":
        return digits(source.SenderAlt.User)
    return digits(sender.User)


def _unwrap(message: Any) -> Any:
    for _ in range(4):
        for field in _WRAPPERS:
            if message.HasField(field) and getattr(message, field).HasField("message"):
                message = getattr(message, field).message
                break
        else:
            return message
    return message


def message_content(message: Any) -> tuple[MessageType, str | None, str | None] | None:
    """The API message type, text and caption of a WhatsApp `Message` proto; None for types we do
    not map. A caption is not text: media messages have text None and their caption apart."""
    message = _unwrap(message)
    if message.HasField("conversation"):
        return "conversation", message.conversation, None
    if message.HasField("extendedTextMessage"):
        return "conversation", message.extendedTextMessage.text, None
    for field in _MEDIA_FIELDS:
        if message.HasField(field):
            media = getattr(message, field)
            caption = media.caption if "caption" in media.DESCRIPTOR.fields_by_name and media.caption else None
            return field, None, caption
    return None


def _map_message(event: Any) -> MessageReceived | None:
    if not event.HasField("Message"):
        return None
    info = event.Info
    source = info.MessageSource
    # Direct chats only: groups, status updates (status@broadcast), broadcast lists and
    # newsletters are not conversations with a number.
    if source.IsGroup or (source.Chat.Server and source.Chat.Server not in _DIRECT_CHAT_SERVERS):
        return None
    content = message_content(event.Message)
    if content is None:
        return None
    message_type, text, caption = content
    return MessageReceived(
        message_id=info.ID,
        sender=_sender_phone(source),
        push_name=info.Pushname or None,
        message_type=message_type,
        text=text,
        timestamp=from_epoch(info.Timestamp),
        from_me=source.IsFromMe,
        caption=caption,
    )


def _map_receipt(event: Any, now: datetime) -> Receipt | None:
    pb = _pb()
    statuses: dict[int, ReceiptStatus] = {
        pb.Receipt.DELIVERED: "delivered",
        pb.Receipt.READ: "read",
        pb.Receipt.PLAYED: "read",  # a voice note or video played has been read
    }
    status = statuses.get(event.Type) if event.HasField("Type") else None
    # Receipts sent by our own other devices (IsFromMe) say nothing about the recipient.
    if status is None or not event.MessageIDs or event.MessageSource.IsFromMe:
        return None
    return Receipt(message_ids=tuple(event.MessageIDs), status=status, timestamp=from_epoch(event.Timestamp, now=now))


def map_event(event: Any, *, own_phone: str = "", now: datetime | None = None) -> DriverEvent | None:
    """Translate one neonize event (a `neonize.proto.Neonize_pb2` message) into a `DriverEvent`.

    `own_phone` fills `Connected` (the event carries no JID); `now` anchors relative times (a
    temporary ban's expiry). Events and message types we do not report map to None.
    """
    pb = _pb()
    now = now or datetime.now(UTC)
    if isinstance(event, pb.Message):
        return _map_message(event)
    if isinstance(event, pb.Receipt):
        return _map_receipt(event, now)
    if isinstance(event, pb.Connected):
        return Connected(phone_number=digits(own_phone))
    if isinstance(event, pb.Disconnected):
        return Disconnected(reason="connection lost")
    if isinstance(event, pb.LoggedOut):
        reason = _enum_name(event, "Reason", "LOGGED_OUT")
        if reason in _BARRED_REASONS:
            return Banned(reason=_BARRED_REASONS[reason], expires_at=None)
        return Disconnected(reason=f"logged out ({reason.lower()})", logged_out=True)
    if isinstance(event, pb.StreamReplaced):
        return Disconnected(reason="stream replaced: another client connected with this session")
    if isinstance(event, pb.TemporaryBan):
        reason = _enum_name(event, "Code", "UNKNOWN").lower()
        expires_at = now + timedelta(seconds=event.Expire) if event.Expire > 0 else None
        return Banned(reason=reason, expires_at=expires_at)
    if isinstance(event, pb.ConnectFailure):
        reason = _enum_name(event, "Reason", "GENERIC")
        if reason == "TEMP_BANNED":
            return Banned(reason=event.Message or "temp_banned", expires_at=None)
        if reason in _BARRED_REASONS:
            return Banned(reason=_BARRED_REASONS[reason], expires_at=None)
        detail = f": {event.Message}" if event.Message else ""
        return Disconnected(
            reason=f"connect failure ({reason.lower()}){detail}", logged_out=reason in _LOGGED_OUT_REASONS
        )
    if isinstance(event, pb.ClientOutdated):
        return Disconnected(reason="client outdated: WhatsApp rejected this neonize version")
    if isinstance(event, pb.StreamError):
        return Disconnected(reason=f"stream error {event.Code}".strip())
    return None


def classify_error(exc: BaseException, *, sending: bool = False) -> DriverError:
    """Turn whatever neonize (or asyncio) raised into our exception tree.

    With `sending`, a timeout whose stage cannot be told apart may have let the message out
    (`OutcomeUnknownError`); failures whatsmeow raises before writing the message are transient.
    """
    if isinstance(exc, DriverError) and type(exc) is not DriverError:
        return exc
    if isinstance(exc, TimeoutError):
        if sending:
            return OutcomeUnknownError("WhatsApp did not answer in time; the message may have been sent")
        return TransientDriverError("WhatsApp did not answer in time")
    text = str(exc)
    lowered = text.lower()
    name = type(exc).__name__
    if any(marker in lowered for marker in _NOT_LINKED_MARKERS):
        return NotLinkedError(f"session is not linked: {text}")
    if any(marker in lowered for marker in _UNKNOWN_OUTCOME_MARKERS):
        return OutcomeUnknownError(f"WhatsApp did not confirm in time, the message may have been sent: {text}")
    if any(marker in lowered for marker in _TRANSIENT_MARKERS):
        return TransientDriverError(f"not sent, WhatsApp not reachable: {text}")
    if any(marker in lowered for marker in _TIMEOUT_MARKERS):
        if sending:
            return OutcomeUnknownError(f"WhatsApp did not confirm in time, the message may have been sent: {text}")
        return TransientDriverError(f"WhatsApp did not answer in time: {text}")
    if isinstance(exc, DriverError):
        return exc
    if name in ("UploadError", "DownloadError"):
        return TransientDriverError(f"media transfer failed: {text}")
    if isinstance(exc, ConnectionError):
        return TransientDriverError(f"connection error: {text or name}")
    return DriverError(f"WhatsApp call failed: {name}: {text}")


def is_final(event: Any, mapped: DriverEvent) -> bool:
    """Whether whatsmeow gives up after `event` (it reconnects by itself only after plain
    disconnects and stream errors): the session ends and is connected again only when asked."""
    pb = _pb()
    if isinstance(mapped, Banned) or (isinstance(mapped, Disconnected) and mapped.logged_out):
        return True
    return isinstance(event, (pb.StreamReplaced, pb.ClientOutdated, pb.ConnectFailure))


def lid_sender(event: Any) -> Any:
    """The sender's LID when a message names its sender only by LID (no phone number beside it)."""
    source = event.Info.MessageSource
    sender = source.Sender
    if sender.Server != "lid":
        return None
    if source.SenderAlt.User and source.SenderAlt.Server != "lid":
        return None
    return sender
