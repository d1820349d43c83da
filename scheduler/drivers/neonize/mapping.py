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
    Contact,
    Disconnected,
    DriverError,
    DriverEvent,
    InboundMedia,
    Location,
    MessageDeleted,
    MessageEdited,
    MessageReaction,
    MessageReceived,
    NotLinkedError,
    OutcomeUnknownError,
    Poll,
    PollVote,
    Receipt,
    ReceiptStatus,
    TransientDriverError,
)
from scheduler.drivers.neonize.loading import _pb

LID_SERVER = "lid"
_PHONE_SERVERS = frozenset({"s.whatsapp.net", "c.us"})
_CHAT_SERVERS = frozenset({"s.whatsapp.net", "lid", "c.us", "g.us"})
_POLL_FIELDS = ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3")
# Fields that ride along with content without being content themselves.
_NOT_CONTENT = frozenset(
    {"messageContextInfo", "senderKeyDistributionMessage", "fastRatchetKeySenderKeyDistributionMessage"}
)
# Containers whose inner `.message` is the real content (whatsmeow usually unwraps them already).
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "deviceSentMessage",
    "editedMessage",  # an edit: inside is the protocolMessage saying which message and the new text
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


def _jid_digits(jid: Any) -> str | None:
    return digits(jid.User) or None


def _sender(source: Any) -> tuple[str | None, str | None]:
    """The sender's phone number and LID, each None when WhatsApp did not tell us."""
    sender, alt = source.Sender, source.SenderAlt
    # LID-addressed chats: the sender is an opaque "lid" id, its phone number JID (if known) is SenderAlt.
    if sender.Server == "lid":
        phone = _jid_digits(alt) if alt.Server in _PHONE_SERVERS else None
        return phone, _jid_digits(sender)
    lid = _jid_digits(alt) if alt.Server == "lid" else None
    return _jid_digits(sender), lid


def _address(jid_text: str) -> str:
    """A JID string as we show it: digits for a person, `<digits>@lid` for a LID (the session
    looks its number up), the whole JID for a group."""
    user, _, server = jid_text.partition("@")
    person = digits(user.split(":", 1)[0])
    if server == "g.us":
        return jid_text
    return f"{person}@{LID_SERVER}" if server == LID_SERVER and person else person


def content_message(message: Any) -> Any:
    """The message inside wrappers (disappearing, view-once, edits, ...), as whatsmeow unwraps them."""
    for _ in range(4):
        for field in _WRAPPERS:
            if message.HasField(field) and getattr(message, field).HasField("message"):
                message = getattr(message, field).message
                break
        else:
            return message
    return message


def _raw_type(message: Any) -> str | None:
    """The name of the message's content field; None when it carries nothing to tell a receiver."""
    for descriptor, _ in message.ListFields():
        if descriptor.name not in _NOT_CONTENT:
            return str(descriptor.name)
    return None


def _context(content: Any) -> tuple[str | None, tuple[str, ...]]:
    """The quoted message id and the mentioned numbers of a message's ContextInfo."""
    if content is None or "contextInfo" not in content.DESCRIPTOR.fields_by_name:
        return None, ()
    if not content.HasField("contextInfo"):
        return None, ()
    context = content.contextInfo
    quoted = context.stanzaID or None
    return quoted, tuple(mention for jid in context.mentionedJID if (mention := _address(jid)))


def _media(content: Any, *, file_name: str | None = None, seconds: int | None = None) -> InboundMedia:
    return InboundMedia(
        mimetype=content.mimetype or None,
        size=content.fileLength or None,
        file_name=file_name,
        seconds=seconds,
    )


def _vcard_contact(display_name: str, vcard: str) -> Contact:
    # vCard 3.0 as WhatsApp writes it: FN, ORG, and TEL lines whose waid parameter is the number.
    fields: dict[str, str] = {}
    phone = None
    for line in vcard.splitlines():
        name, _, value = line.partition(":")
        key = name.split(";", 1)[0].upper()
        if key == "TEL" and phone is None:
            waid = re.search(r"waid=(\d+)", name, re.IGNORECASE)
            phone = waid.group(1) if waid else digits(value) or None
        elif key in ("FN", "ORG") and key not in fields:
            fields[key] = value.strip().rstrip(";")
    return Contact(
        full_name=fields.get("FN") or display_name, phone_number=phone, organization=fields.get("ORG") or None
    )


def _content(message: Any) -> dict[str, Any] | None:
    """`MessageReceived` fields for a WhatsApp `Message` proto; None when it holds no content."""
    if message.HasField("conversation"):
        return {"message_type": "conversation", "text": message.conversation}
    if message.HasField("extendedTextMessage"):
        return {"message_type": "conversation", "text": message.extendedTextMessage.text}
    if message.HasField("imageMessage"):
        image = message.imageMessage
        return {"message_type": "imageMessage", "caption": image.caption or None, "media": _media(image)}
    if message.HasField("videoMessage") or message.HasField("ptvMessage"):
        video = message.videoMessage if message.HasField("videoMessage") else message.ptvMessage
        media = _media(video, seconds=video.seconds or None)
        return {"message_type": "videoMessage", "caption": video.caption or None, "media": media}
    if message.HasField("audioMessage"):
        audio = message.audioMessage
        return {"message_type": "audioMessage", "media": _media(audio, seconds=audio.seconds or None)}
    if message.HasField("documentMessage"):
        document = message.documentMessage
        media = _media(document, file_name=document.fileName or document.title or None)
        return {"message_type": "documentMessage", "caption": document.caption or None, "media": media}
    if message.HasField("stickerMessage"):
        return {"message_type": "stickerMessage", "media": _media(message.stickerMessage)}
    if message.HasField("locationMessage") or message.HasField("liveLocationMessage"):
        place = message.locationMessage if message.HasField("locationMessage") else message.liveLocationMessage
        location = Location(
            latitude=place.degreesLatitude,
            longitude=place.degreesLongitude,
            name=getattr(place, "name", "") or None,
            address=getattr(place, "address", "") or None,
        )
        return {"message_type": "locationMessage", "location": location}
    if message.HasField("contactMessage"):
        card = message.contactMessage
        return {"message_type": "contactMessage", "contacts": (_vcard_contact(card.displayName, card.vcard),)}
    if message.HasField("contactsArrayMessage"):
        contacts = tuple(_vcard_contact(c.displayName, c.vcard) for c in message.contactsArrayMessage.contacts)
        return {"message_type": "contactMessage", "contacts": contacts}
    for field in _POLL_FIELDS:
        if message.HasField(field):
            poll = getattr(message, field)
            options = tuple(option.optionName for option in poll.options)
            return {
                "message_type": "pollCreationMessage",
                "poll": Poll(question=poll.name, options=options, selectable_count=poll.selectableOptionsCount or 1),
            }
    raw = _raw_type(message)
    return None if raw is None else {"message_type": "unsupported", "raw_type": raw}


def _inner_content(message: Any) -> Any:
    """The content proto of a message (for its ContextInfo), whatever kind it is."""
    for descriptor, value in message.ListFields():
        if descriptor.name not in _NOT_CONTENT and descriptor.message_type is not None:
            return value
    return None


def _map_message(event: Any) -> DriverEvent | None:
    if not event.HasField("Message"):
        return None
    info = event.Info
    source = info.MessageSource
    chat = source.Chat
    # Status updates (status@broadcast), broadcast lists and newsletters are not conversations.
    if chat.Server and chat.Server not in _CHAT_SERVERS:
        return None
    sender, lid = _sender(source)
    common: dict[str, Any] = {
        "message_id": info.ID,
        "sender": sender,
        "sender_lid": lid,
        "chat_id": f"{chat.User}@g.us" if source.IsGroup or chat.Server == "g.us" else None,
        "push_name": info.Pushname or None,
        "timestamp": from_epoch(info.Timestamp),
        "from_me": source.IsFromMe,
    }
    message = content_message(event.Message)
    if message.HasField("reactionMessage"):
        reaction = message.reactionMessage
        return MessageReaction(**common, target_id=reaction.key.ID, emoji=reaction.text)
    if message.HasField("pollUpdateMessage"):
        return PollVote(**common, poll_id=message.pollUpdateMessage.pollCreationMessageKey.ID)
    if message.HasField("protocolMessage"):
        return _map_protocol(message.protocolMessage, common)
    fields = _content(message)
    if fields is None:
        return None
    quoted, mentions = _context(_inner_content(message))
    fields.setdefault("text", None)
    return MessageReceived(**common, **fields, quoted_message_id=quoted, mentions=mentions)


def _map_protocol(protocol: Any, common: dict[str, Any]) -> DriverEvent | None:
    kind = protocol.type if protocol.HasField("type") else None
    pb_type = type(protocol).Type
    if kind == pb_type.REVOKE:
        return MessageDeleted(**common, target_id=protocol.key.ID)
    if kind == pb_type.MESSAGE_EDIT:
        edited = protocol.editedMessage
        fields = _content(content_message(edited)) or {}
        text = fields.get("text") if fields.get("message_type") == "conversation" else fields.get("caption")
        return MessageEdited(**common, target_id=protocol.key.ID, text=text)
    return None  # key shares, history sync and other housekeeping between our own devices


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
