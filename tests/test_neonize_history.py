"""WhatsApp's history sync as neonize reports it (`HistorySync` events, real protobufs parsed back
from their bytes as neonize hands them over) into the driver's `HistorySynced`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scheduler.drivers.base import HistoryChat, HistoryMessage, HistorySynced
from scheduler.drivers.neonize.history import map_history
from scheduler.drivers.neonize.loading import _e2e, _import, _pb
from tests.test_neonize_driver import PHONE, wire

pb = _pb()
e2e = _e2e()
common_pb = _import("neonize.proto.waCommon.WACommon_pb2")
sync_pb = _import("neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2")
web_pb = _import("neonize.proto.waWeb.WAWebProtobufsWeb_pb2")

ANA = "5491112345678"
GROUP = "120363025246125486@g.us"
LID = "123456789012345"
SECONDS = 1_740_830_400


def item(chat: str, message_id: str, message: Any, *, from_me: bool = False, participant: str = "") -> Any:
    info = web_pb.WebMessageInfo(
        key=common_pb.MessageKey(remoteJID=chat, fromMe=from_me, ID=message_id),
        message=message,
        messageTimestamp=SECONDS,
        participant=participant,
    )
    return sync_pb.HistorySyncMsg(message=info, msgOrderID=1)


def history_event(*conversations: Any) -> Any:
    data = sync_pb.HistorySync(syncType=sync_pb.HistorySync.INITIAL_BOOTSTRAP, conversations=list(conversations))
    return wire(pb.HistorySync(Data=data))


def text(body: str) -> Any:
    return e2e.Message(conversation=body)


def test_history_sync_maps_chats_and_their_messages_as_the_store_keeps_them() -> None:
    direct = sync_pb.Conversation(
        ID=f"{ANA}@s.whatsapp.net",
        name="Ana",
        messages=[
            item(f"{ANA}@s.whatsapp.net", "OLD1", text("hola")),
            item(
                f"{ANA}@s.whatsapp.net",
                "OLD2",
                e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text="hi")),
                from_me=True,
            ),
            item(
                f"{ANA}@s.whatsapp.net",
                "PIC",
                e2e.Message(imageMessage=e2e.ImageMessage(caption="look", mimetype="image/jpeg")),
            ),
        ],
    )
    group = sync_pb.Conversation(
        ID=GROUP,
        displayName="Team",
        messages=[
            item(GROUP, "G1", text("standup?"), participant=f"{PHONE}@s.whatsapp.net"),
            item(GROUP, "G2", text("no number"), participant=f"{LID}@lid"),
        ],
    )
    when = datetime.fromtimestamp(SECONDS, UTC)
    assert map_history(history_event(direct, group).Data) == HistorySynced(
        (
            HistoryChat(
                ANA,
                "Ana",
                (
                    HistoryMessage(message_id="OLD1", from_me=False, sender=ANA, text="hola", timestamp=when),
                    HistoryMessage(message_id="OLD2", from_me=True, text="hi", timestamp=when),
                    HistoryMessage(
                        message_id="PIC",
                        from_me=False,
                        sender=ANA,
                        message_type="imageMessage",
                        caption="look",
                        timestamp=when,
                    ),
                ),
            ),
            HistoryChat(
                GROUP,
                "Team",
                (
                    HistoryMessage(message_id="G1", from_me=False, sender=PHONE, text="standup?", timestamp=when),
                    HistoryMessage(message_id="G2", from_me=False, sender_lid=LID, text="no number", timestamp=when),
                ),
            ),
        )
    )


def test_history_sync_leaves_out_what_is_no_conversation_or_no_message() -> None:
    reaction = e2e.Message(reactionMessage=e2e.ReactionMessage(key=common_pb.MessageKey(ID="OLD1"), text="👍"))
    revoke = e2e.Message(protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.REVOKE))
    chat = sync_pb.Conversation(
        ID=f"{ANA}@s.whatsapp.net",
        messages=[
            item(f"{ANA}@s.whatsapp.net", "R", reaction),
            item(f"{ANA}@s.whatsapp.net", "P", revoke),
            item(f"{ANA}@s.whatsapp.net", "EMPTY", e2e.Message()),
            item(f"{ANA}@s.whatsapp.net", "KEPT", text("kept")),
        ],
    )
    status = sync_pb.Conversation(ID="status@broadcast", messages=[item("status@broadcast", "S", text("story"))])
    newsletter = sync_pb.Conversation(ID="1203630@newsletter", messages=[item("1203630@newsletter", "N", text("news"))])
    mapped = map_history(history_event(chat, status, newsletter).Data)
    assert [c.chat_id for c in mapped.chats] == [ANA]
    assert [m.message_id for m in mapped.chats[0].messages] == ["KEPT"]
    assert mapped.chats[0].name is None
