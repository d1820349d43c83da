"""The protos of the kinds of send beyond text and media (location, contacts, sticker, poll,
reaction, edit, deletion) and what any send may carry (a quote, mentions), with neonize's own
helpers where they exist offline (`build_jid`, `build_edit`, `build_revoke`). neonize's client
builders for reactions and polls go through the Go library; these build the same protos here."""

from __future__ import annotations

import os
import time
from typing import Any

from scheduler.drivers.base import (
    GROUP_SUFFIX,
    LID_SUFFIX,
    Contact,
    DriverError,
    MessageRef,
    OutgoingMessage,
    is_group,
    is_lid,
)
from scheduler.drivers.neonize.loading import _e2e, _import

USER_SERVER = "s.whatsapp.net"
GROUP_SERVER = "g.us"
LID_SERVER = "lid"
STICKER_SIZE = 512
POLL_SECRET_BYTES = 32  # the poll's messageSecret: voters' clients encrypt their votes with it


def chat_jid(address: str) -> Any:
    """The JID of a recipient: a phone number's account, a group (`<id>@g.us`) or a LID chat
    (`<lid>@lid`)."""
    build_jid = _import("neonize.utils.jid").build_jid
    if is_group(address):
        return build_jid(address.removesuffix(GROUP_SUFFIX), GROUP_SERVER)
    if is_lid(address):
        return build_jid(address.removesuffix(LID_SUFFIX), LID_SERVER)
    return build_jid(address, USER_SERVER)


def _jid_string(address: str) -> str:
    return address if is_group(address) or is_lid(address) else f"{address}@{USER_SERVER}"


def context_info(message: OutgoingMessage, own_phone: str | None) -> Any:
    """The ContextInfo of a reply and of @mentions, as neonize's `_make_quoted_message` builds a
    quote (stanza id, author, the quoted content); None when the send has neither."""
    if message.quoted is None and not message.mentions:
        return None
    e2e = _e2e()
    info = e2e.ContextInfo(mentionedJID=[_jid_string(number) for number in message.mentions])
    quoted = message.quoted
    if quoted is not None:
        info.stanzaID = quoted.message_id
        # Who wrote the quoted message: this number, or the contact (when WhatsApp told us who).
        author = own_phone if quoted.from_me else quoted.sender
        info.participant = _jid_string(author) if author else ""
        info.quotedMessage.CopyFrom(e2e.Message(conversation=quoted.text or ""))
    return info


def vcard(contact: Contact) -> str:
    """A vCard 3.0 as WhatsApp's apps write one: the number's WhatsApp id in `waid`."""

    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")

    lines = ["BEGIN:VCARD", "VERSION:3.0", f"FN:{escaped(contact.full_name)}"]
    if contact.organization:
        lines.append(f"ORG:{escaped(contact.organization)};")
    if contact.phone_number:
        number = contact.phone_number
        lines.append(f"TEL;type=CELL;type=VOICE;waid={number}:+{number}")
    lines.append("END:VCARD")
    return "\n".join(lines)


def _message_key(target: MessageRef) -> Any:
    key = _import("neonize.proto.waCommon.WACommon_pb2").MessageKey(
        remoteJID=_jid_string(target.chat), fromMe=target.from_me, ID=target.message_id
    )
    if not target.from_me and target.sender is not None and is_group(target.chat):
        key.participant = _jid_string(target.sender)
    return key


def _target(message: OutgoingMessage) -> MessageRef:
    if message.target is None:
        raise DriverError(f"a {message.type} needs the message it is about")
    return message.target


def build_kind(message: OutgoingMessage, own_phone: str | None, uploaded: dict[str, Any] | None = None) -> Any:
    """The `waE2E.Message` of a location, contacts, sticker (`uploaded`: its upload), poll,
    reaction, edit or deletion, without its quote and mentions (`with_context` adds them)."""
    e2e = _e2e()
    match message.type:
        case "location":
            if message.location is None:
                raise DriverError("a location needs its coordinates")
            place = message.location
            return e2e.Message(
                locationMessage=e2e.LocationMessage(
                    degreesLatitude=place.latitude,
                    degreesLongitude=place.longitude,
                    name=place.name,
                    address=place.address,
                )
            )
        case "contact":
            cards = [e2e.ContactMessage(displayName=c.full_name, vcard=vcard(c)) for c in message.contacts]
            if not cards:
                raise DriverError("a contact message needs at least one contact")
            if len(cards) == 1:
                return e2e.Message(contactMessage=cards[0])
            return e2e.Message(
                contactsArrayMessage=e2e.ContactsArrayMessage(displayName=f"{len(cards)} contacts", contacts=cards)
            )
        case "sticker":
            if uploaded is None:
                raise DriverError("a sticker needs its uploaded image")
            return e2e.Message(
                stickerMessage=e2e.StickerMessage(
                    **uploaded, mimetype="image/webp", width=STICKER_SIZE, height=STICKER_SIZE, isAnimated=False
                )
            )
        case "poll":
            if message.poll is None:
                raise DriverError("a poll needs its question and options")
            poll = message.poll
            options = [e2e.PollCreationMessage.Option(optionName=option) for option in poll.options]
            return e2e.Message(
                pollCreationMessage=e2e.PollCreationMessage(
                    name=poll.question, options=options, selectableOptionsCount=poll.selectable_count
                ),
                messageContextInfo=e2e.MessageContextInfo(messageSecret=os.urandom(POLL_SECRET_BYTES)),
            )
        case "reaction":
            reaction = e2e.ReactionMessage(
                key=_message_key(_target(message)), text=message.emoji or "", senderTimestampMS=int(time.time() * 1000)
            )
            return e2e.Message(reactionMessage=reaction)
        case "edit":
            target = _target(message)
            if not message.text:
                raise DriverError("an edit needs the new text")
            build_edit = _import("neonize.builder").build_edit
            return build_edit(chat_jid(target.chat), target.message_id, e2e.Message(conversation=message.text))
        case "delete":
            target = _target(message)
            me = chat_jid(own_phone or "")
            return _import("neonize.builder").build_revoke(chat_jid(target.chat), me, target.message_id, me)
    raise DriverError(f"unsupported message type {message.type!r}")


# Where a quote and mentions go in each kind: the ContextInfo of its sub-message.
_SUBMESSAGE = {
    "image": "imageMessage",
    "document": "documentMessage",
    "audio": "audioMessage",
    "video": "videoMessage",
    "location": "locationMessage",
    "contact": "contactMessage",
    "sticker": "stickerMessage",
    "poll": "pollCreationMessage",
}


def with_context(proto: Any, message: OutgoingMessage, own_phone: str | None) -> Any:
    """`proto` replying to the quoted message and mentioning the numbers, if the send says so. A
    text that does either is an extendedTextMessage (a conversation has no ContextInfo)."""
    info = context_info(message, own_phone)
    if info is None or message.type in ("reaction", "edit", "delete"):
        return proto
    e2e = _e2e()
    if message.type == "text":
        return e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text=proto.conversation, contextInfo=info))
    field = _SUBMESSAGE[message.type]
    if field == "contactMessage" and proto.HasField("contactsArrayMessage"):
        field = "contactsArrayMessage"
    getattr(proto, field).contextInfo.MergeFrom(info)
    return proto
