"""Pure: neonize's `HistorySync` event (WhatsApp's history sync, in batches after a link) into a
`HistorySynced` of chats and their messages. Messages without content of their own (reactions,
protocol housekeeping, system stubs) are left out; what their content is, is read the way live
messages are (`mapping._content`)."""

from __future__ import annotations

from typing import Any

from scheduler.drivers.base import HistoryChat, HistoryMessage, HistorySynced
from scheduler.drivers.neonize.mapping import LID_SERVER, _address, _content, content_message, from_epoch

_CHAT_SERVERS = frozenset({"s.whatsapp.net", "c.us", "g.us", LID_SERVER})
# Content that changes another message rather than being one.
_NOT_MESSAGES = frozenset({"reactionMessage", "protocolMessage", "pollUpdateMessage", "encReactionMessage"})


def map_history(sync: Any) -> HistorySynced:
    """`sync` is the event's `Data` (waHistorySync.HistorySync)."""
    chats = []
    for conversation in sync.conversations:
        _, _, server = conversation.ID.partition("@")
        chat_id = _address(conversation.ID)
        if server not in _CHAT_SERVERS or not chat_id:
            continue  # status updates, broadcast lists, newsletters: no conversations
        messages = tuple(
            found for item in conversation.messages if (found := _message(item.message, chat_id)) is not None
        )
        chats.append(HistoryChat(chat_id, conversation.name or conversation.displayName or None, messages))
    return HistorySynced(tuple(chats))


def _message(info: Any, chat_id: str) -> HistoryMessage | None:
    if not info.HasField("message") or not info.key.ID:
        return None
    content = content_message(info.message)
    if any(content.HasField(kind) for kind in _NOT_MESSAGES):
        return None
    fields = _content(content)
    if fields is None:
        return None
    from_me = info.key.fromMe
    if from_me:
        author = ""
    elif chat_id.endswith("@g.us"):
        author = _address(info.participant or info.key.participant)
    else:
        author = chat_id
    lid = author.endswith(f"@{LID_SERVER}")
    return HistoryMessage(
        message_id=info.key.ID,
        from_me=from_me,
        sender=None if lid or not author else author,
        sender_lid=author.removesuffix(f"@{LID_SERVER}") if lid else None,
        message_type=fields["message_type"],
        text=fields.get("text"),
        caption=fields.get("caption"),
        timestamp=from_epoch(info.messageTimestamp),
    )
