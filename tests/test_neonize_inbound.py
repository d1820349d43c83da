"""Inbound mapping, offline: every kind a contact can send, built as real neonize protobufs, and
what the session fills in with its client (the number behind a LID, media bytes, poll votes)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from scheduler.drivers import neonize as nd
from scheduler.drivers.base import (
    Connected,
    Contact,
    InboundEvent,
    InboundMedia,
    Location,
    MessageDeleted,
    MessageEdited,
    MessageReaction,
    MessageReceived,
    Poll,
    PollVote,
    option_hash,
)
from scheduler.drivers.neonize import wire as frames
from scheduler.drivers.neonize.loading import _e2e, _import, _pb
from scheduler.worker import GatewayWorker
from tests.conftest import instance_body
from tests.receiver import Receiver
from tests.test_neonize_driver import PHONE, Recorder, jid, message_event, wire

pb = _pb()
e2e = _e2e()
common_pb = _import("neonize.proto.waCommon.WACommon_pb2")

NAME = "acme__shop1__sales"
GROUP = jid("120363025246125486", "g.us")
LID = "123456789012345"


def received(content: Any, **options: Any) -> MessageReceived:
    event = nd.map_event(message_event(content, **options))
    assert isinstance(event, MessageReceived), event
    return event


def key(message_id: str) -> Any:
    return common_pb.MessageKey(remoteJID=f"{PHONE}@s.whatsapp.net", fromMe=True, ID=message_id)


def test_reply_carries_the_quoted_message_id_and_mentions_as_numbers() -> None:
    context = e2e.ContextInfo(
        stanzaID="3EB0QUOTED",
        participant=f"{PHONE}@s.whatsapp.net",
        mentionedJID=["5491100000001@s.whatsapp.net", "5491100000002@s.whatsapp.net"],
    )
    event = received(
        e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text="@ana @bea yes", contextInfo=context))
    )
    assert event.text == "@ana @bea yes"
    assert event.quoted_message_id == "3EB0QUOTED"
    assert event.mentions == ("5491100000001", "5491100000002")


def test_reply_to_a_photo_keeps_its_caption_and_quoted_id() -> None:
    image = e2e.ImageMessage(caption="this one", mimetype="image/jpeg", contextInfo=e2e.ContextInfo(stanzaID="3EB0Q"))
    event = received(e2e.Message(imageMessage=image))
    assert (event.message_type, event.text, event.caption, event.quoted_message_id) == (
        "imageMessage", None, "this one", "3EB0Q",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message_type", "media"),
    [
        (
            e2e.Message(imageMessage=e2e.ImageMessage(mimetype="image/jpeg", fileLength=2048, caption="look")),
            "imageMessage",
            InboundMedia(mimetype="image/jpeg", size=2048),
        ),
        (
            e2e.Message(audioMessage=e2e.AudioMessage(mimetype="audio/ogg; codecs=opus", PTT=True, seconds=7)),
            "audioMessage",
            InboundMedia(mimetype="audio/ogg; codecs=opus", seconds=7),
        ),
        (
            e2e.Message(videoMessage=e2e.VideoMessage(mimetype="video/mp4", seconds=12, fileLength=900_000)),
            "videoMessage",
            InboundMedia(mimetype="video/mp4", size=900_000, seconds=12),
        ),
        (
            e2e.Message(
                documentMessage=e2e.DocumentMessage(mimetype="application/pdf", fileName="invoice.pdf", fileLength=10)
            ),
            "documentMessage",
            InboundMedia(mimetype="application/pdf", size=10, file_name="invoice.pdf"),
        ),
        (
            e2e.Message(stickerMessage=e2e.StickerMessage(mimetype="image/webp", fileLength=300)),
            "stickerMessage",
            InboundMedia(mimetype="image/webp", size=300),
        ),
    ],
    ids=["image", "voice-note", "video", "document", "sticker"],
)
def test_media_kinds_map_to_their_type_and_describe_the_media(
    content: Any, message_type: str, media: InboundMedia
) -> None:
    event = received(content)
    assert event.message_type == message_type
    assert event.media == media
    assert event.text is None


def test_document_with_caption_is_unwrapped_and_keeps_caption_and_name() -> None:
    document = e2e.DocumentMessage(mimetype="application/pdf", fileName="q3.pdf", caption="Q3 figures")
    wrapped = e2e.Message(
        documentWithCaptionMessage=e2e.FutureProofMessage(message=e2e.Message(documentMessage=document))
    )
    event = received(wrapped)
    assert (event.message_type, event.caption) == ("documentMessage", "Q3 figures")
    assert event.media is not None and event.media.file_name == "q3.pdf"


def test_location_carries_coordinates_name_and_address() -> None:
    place = e2e.LocationMessage(degreesLatitude=-34.6037, degreesLongitude=-58.3816, name="Obelisco", address="CABA")
    event = received(e2e.Message(locationMessage=place))
    assert event.message_type == "locationMessage"
    assert event.location == Location(latitude=-34.6037, longitude=-58.3816, name="Obelisco", address="CABA")


def test_live_location_is_a_location() -> None:
    live = e2e.LiveLocationMessage(degreesLatitude=1.5, degreesLongitude=2.5)
    assert received(e2e.Message(liveLocationMessage=live)).location == Location(latitude=1.5, longitude=2.5)


VCARD = (
    "BEGIN:VCARD\nVERSION:3.0\nN:Perez;Ana;;;\nFN:Ana Perez\nORG:Acme SA;\n"
    "TEL;type=CELL;type=VOICE;waid=5491155554444:+54 9 11 5555-4444\nEND:VCARD"
)


def test_contact_card_is_read_from_its_vcard() -> None:
    event = received(e2e.Message(contactMessage=e2e.ContactMessage(displayName="Ana", vcard=VCARD)))
    assert event.message_type == "contactMessage"
    assert event.contacts == (Contact(full_name="Ana Perez", phone_number="5491155554444", organization="Acme SA"),)


def test_several_contacts_arrive_as_one_contact_message() -> None:
    plain = "BEGIN:VCARD\nVERSION:3.0\nFN:Bea\nTEL:+1 (555) 010-9999\nEND:VCARD"
    cards = [e2e.ContactMessage(displayName="Ana", vcard=VCARD), e2e.ContactMessage(displayName="Bea", vcard=plain)]
    event = received(
        e2e.Message(contactsArrayMessage=e2e.ContactsArrayMessage(displayName="2 contacts", contacts=cards))
    )
    assert [(c.full_name, c.phone_number) for c in event.contacts] == [
        ("Ana Perez", "5491155554444"), ("Bea", "15550109999"),
    ]  # fmt: skip


@pytest.mark.parametrize("field", ["pollCreationMessage", "pollCreationMessageV3"])
def test_poll_carries_its_question_and_options(field: str) -> None:
    options = [e2e.PollCreationMessage.Option(optionName=name) for name in ("Red", "Blue")]
    poll = e2e.PollCreationMessage(name="Color?", options=options, selectableOptionsCount=1)
    event = received(e2e.Message(**{field: poll}))
    assert event.message_type == "pollCreationMessage"
    assert event.poll == Poll(question="Color?", options=("Red", "Blue"), selectable_count=1)


def test_a_kind_we_do_not_map_arrives_as_unsupported_with_its_raw_type() -> None:
    event = received(e2e.Message(groupInviteMessage=e2e.GroupInviteMessage(groupName="Club")))
    assert (event.message_type, event.raw_type, event.text) == ("unsupported", "groupInviteMessage", None)


def test_group_message_names_the_group_and_the_participant() -> None:
    event = received(e2e.Message(conversation="hi all"), chat=GROUP, is_group=True)
    assert event.chat_id == "120363025246125486@g.us"
    assert event.sender == PHONE


def test_lid_sender_without_a_known_number_has_no_sender_but_its_lid() -> None:
    event = received(e2e.Message(conversation="hi"), sender=jid(LID, "lid"))
    assert (event.sender, event.sender_lid) == (None, LID)


def test_lid_sender_with_its_number_alongside_reports_both() -> None:
    event = received(e2e.Message(conversation="hi"), sender=jid(LID, "lid"), sender_alt=jid(PHONE))
    assert (event.sender, event.sender_lid) == (PHONE, LID)


def test_reaction_is_its_own_event_naming_the_message_reacted_to() -> None:
    event = nd.map_event(
        message_event(e2e.Message(reactionMessage=e2e.ReactionMessage(key=key("3EB0MINE"), text="👍")))
    )
    assert isinstance(event, MessageReaction)
    assert (event.target_id, event.emoji, event.sender, event.message_id) == ("3EB0MINE", "👍", PHONE, "3EB0C0FFEE")


def test_removed_reaction_has_an_empty_emoji() -> None:
    event = nd.map_event(message_event(e2e.Message(reactionMessage=e2e.ReactionMessage(key=key("3EB0MINE"), text=""))))
    assert isinstance(event, MessageReaction) and event.emoji == ""


def test_edit_is_its_own_event_with_the_new_text() -> None:
    edit = e2e.ProtocolMessage(
        key=key("3EB0ORIGINAL"),
        type=e2e.ProtocolMessage.MESSAGE_EDIT,
        editedMessage=e2e.Message(conversation="fixed typo"),
    )
    for content in (
        e2e.Message(protocolMessage=edit),  # as whatsmeow hands it over, unwrapped
        e2e.Message(editedMessage=e2e.FutureProofMessage(message=e2e.Message(protocolMessage=edit))),
    ):
        event = nd.map_event(message_event(content))
        assert isinstance(event, MessageEdited)
        assert (event.target_id, event.text) == ("3EB0ORIGINAL", "fixed typo")


def test_edited_caption_is_the_new_text() -> None:
    edit = e2e.ProtocolMessage(
        key=key("3EB0PHOTO"),
        type=e2e.ProtocolMessage.MESSAGE_EDIT,
        editedMessage=e2e.Message(imageMessage=e2e.ImageMessage(caption="better caption")),
    )
    event = nd.map_event(message_event(e2e.Message(protocolMessage=edit)))
    assert isinstance(event, MessageEdited) and event.text == "better caption"


def test_delete_for_everyone_is_its_own_event() -> None:
    revoke = e2e.ProtocolMessage(key=key("3EB0GONE"), type=e2e.ProtocolMessage.REVOKE)
    event = nd.map_event(message_event(e2e.Message(protocolMessage=revoke)))
    assert isinstance(event, MessageDeleted)
    assert (event.target_id, event.sender) == ("3EB0GONE", PHONE)


def test_poll_vote_names_the_poll() -> None:
    update = e2e.PollUpdateMessage(pollCreationMessageKey=key("3EB0POLL"), vote=e2e.PollEncValue(encPayload=b"x"))
    event = nd.map_event(message_event(e2e.Message(pollUpdateMessage=update)))
    assert isinstance(event, PollVote)
    assert (event.poll_id, event.option_hashes) == ("3EB0POLL", ())


def test_own_reactions_and_messages_are_flagged_from_me() -> None:
    reaction = e2e.Message(reactionMessage=e2e.ReactionMessage(key=key("3EB0X"), text="❤️"))
    event = nd.map_event(message_event(reaction, from_me=True))
    assert isinstance(event, MessageReaction) and event.from_me


# -- what the session fills in with its client ----------------------------------------------------


class InboundClient:
    """Stands in for a running client's lookups and downloads (which need WhatsApp itself)."""

    def __init__(
        self, *, lids: dict[str, str] | None = None, media: bytes | Exception = b"", votes: Any = None
    ) -> None:
        self.lids = lids or {}
        self.media = media
        self.votes = votes
        self.downloaded: list[Any] = []

    async def get_pn_from_lid(self, lid: Any) -> Any:
        if lid.User not in self.lids:
            raise _import("neonize.exc").GetJIDFromStoreError("no phone number for this LID")
        return pb.JID(
            User=self.lids[lid.User], Server="s.whatsapp.net", RawAgent=0, Device=0, Integrator=0, IsEmpty=False
        )

    async def download_any(self, message: Any) -> bytes:
        self.downloaded.append(message)
        if isinstance(self.media, Exception):
            raise self.media
        return self.media

    async def decrypt_poll_vote(self, event: Any) -> Any:
        if self.votes is None:
            raise _import("neonize.exc").DecryptPollVoteError("no poll secret for this message")
        return e2e.PollVoteMessage(selectedOptions=[bytes.fromhex(option_hash(o)) for o in self.votes])


async def deliver(tmp_path: Path, client: InboundClient, content: Any, **options: Any) -> Any:
    """Hand one message event to a session's handler, as neonize would; the event the sink got."""
    sink = Recorder()
    session = nd.NeonizeSession("acme__shop1__sales", tmp_path / "s.db", sink, max_media_bytes=1000)
    session._client = client
    await session._on_event(client, message_event(content, **options))
    [event] = sink.events
    return event


async def test_session_resolves_a_lid_through_its_lid_store(tmp_path: Path) -> None:
    client = InboundClient(lids={LID: PHONE})
    event = await deliver(tmp_path, client, e2e.Message(conversation="hi"), sender=jid(LID, "lid"))
    assert (event.sender, event.sender_lid) == (PHONE, LID)


async def test_session_resolves_mentioned_lids_and_marks_the_unknown_ones(tmp_path: Path) -> None:
    context = e2e.ContextInfo(mentionedJID=[f"{LID}@lid", "999999999999999@lid", "5491100000001@s.whatsapp.net"])
    text = e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text="@a @b @c", contextInfo=context))
    event = await deliver(tmp_path, InboundClient(lids={LID: PHONE}), text, chat=GROUP, is_group=True)
    assert event.mentions == (PHONE, "999999999999999@lid", "5491100000001")


async def test_session_leaves_an_unknown_lid_without_a_number(tmp_path: Path) -> None:
    event = await deliver(tmp_path, InboundClient(), e2e.Message(conversation="hi"), sender=jid(LID, "lid"))
    assert (event.sender, event.sender_lid) == (None, LID)


async def test_session_downloads_inbound_media_from_the_unwrapped_message(tmp_path: Path) -> None:
    client = InboundClient(media=b"\xff\xd8\xff jpeg bytes")
    image = e2e.Message(imageMessage=e2e.ImageMessage(mimetype="image/jpeg", fileLength=14))
    content = e2e.Message(ephemeralMessage=e2e.FutureProofMessage(message=image))
    event = await deliver(tmp_path, client, content)
    assert event.media.data == b"\xff\xd8\xff jpeg bytes" and event.media.size == 14 and event.media.error is None
    [asked] = client.downloaded
    assert asked.HasField("imageMessage")


async def test_failed_download_still_delivers_the_message_with_the_reason(tmp_path: Path) -> None:
    client = InboundClient(media=_import("neonize.exc").DownloadError("media expired on the server"))
    event = await deliver(tmp_path, client, e2e.Message(audioMessage=e2e.AudioMessage(mimetype="audio/ogg", PTT=True)))
    assert event.message_type == "audioMessage"
    assert event.media.data is None
    assert event.media.error == "download failed: media expired on the server"


async def test_media_over_the_cap_is_not_downloaded(tmp_path: Path) -> None:
    client = InboundClient(media=b"never asked for")
    video = e2e.Message(videoMessage=e2e.VideoMessage(mimetype="video/mp4", fileLength=5000))
    event = await deliver(tmp_path, client, video)
    assert client.downloaded == []
    assert event.media.error == "5000 bytes is over the 1000-byte media limit"


async def test_session_decrypts_a_poll_vote_into_option_hashes(tmp_path: Path) -> None:
    update = e2e.PollUpdateMessage(pollCreationMessageKey=key("3EB0POLL"), vote=e2e.PollEncValue(encPayload=b"x"))
    event = await deliver(tmp_path, InboundClient(votes=["Blue"]), e2e.Message(pollUpdateMessage=update))
    assert event.option_hashes == (option_hash("Blue"),) and event.error is None
    undecryptable = await deliver(tmp_path, InboundClient(), e2e.Message(pollUpdateMessage=update))
    assert undecryptable.option_hashes == () and "could not be decrypted" in undecryptable.error


def test_message_events_arrive_in_the_shape_neonize_sends() -> None:
    # The helper round-trips through bytes, as neonize's callbacks do.
    event = message_event(e2e.Message(conversation="x"))
    assert wire(event) == event


# -- from a neonize protobuf to the webhook receiver ----------------------------------------------


async def test_neonize_events_arrive_at_the_receiver_with_the_documented_fields(
    client: TestClient, tenant_key: str, worker: GatewayWorker, receiver: Receiver
) -> None:
    acme = {"apikey": tenant_key}
    created = await client.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
    assert created.status == 201
    await worker.host.on_event(NAME, Connected(phone_number="5491100000000"))
    place = e2e.LocationMessage(degreesLatitude=-34.6, degreesLongitude=-58.4, name="Obelisco")
    reply = e2e.ExtendedTextMessage(text="ok", contextInfo=e2e.ContextInfo(stanzaID="3EB0Q"))
    protos = [
        (e2e.Message(extendedTextMessage=reply), {"chat": GROUP, "is_group": True, "sender_alt": jid(LID, "lid")}),
        (e2e.Message(locationMessage=place), {}),
        (e2e.Message(reactionMessage=e2e.ReactionMessage(key=key("3EB0MINE"), text="🙏")), {}),
        (e2e.Message(protocolMessage=e2e.ProtocolMessage(key=key("3EB0MINE"), type=e2e.ProtocolMessage.REVOKE)), {}),
        (e2e.Message(conversation="status"), {"chat": jid("status", "broadcast")}),  # skipped
        (e2e.Message(conversation="from my phone"), {"from_me": True}),  # skipped
    ]
    for number, (content, options) in enumerate(protos):
        event = nd.map_event(message_event(content, **options))
        if event is not None:
            assert isinstance(event, InboundEvent)
            await worker.host.on_event(NAME, replace(event, message_id=f"3ANEONIZE{number}"))
    await receiver.wait_for(5)
    arrived = [(r.json()["event"], r.json()["data"]) for r in receiver.requests[1:]]
    assert [event for event, _ in arrived] == [
        "message.received", "message.received", "message.reaction", "message.deleted",
    ]  # fmt: skip
    (_, text), (_, location), (_, reaction), (_, deleted) = arrived
    assert (text["chatId"], text["isGroup"], text["participant"], text["fromLid"]) == (
        "120363025246125486@g.us", True, PHONE, LID,
    )  # fmt: skip
    assert (text["text"], text["quotedMessageId"]) == ("ok", "3EB0Q")
    assert location["location"] == {"latitude": -34.6, "longitude": -58.4, "name": "Obelisco", "address": None}
    assert (reaction["messageId"], reaction["emoji"], reaction["from"]) == ("3EB0MINE", "🙏", PHONE)
    assert (deleted["messageId"], deleted["chatId"]) == ("3EB0MINE", PHONE)


async def test_inbound_events_cross_the_session_hosts_wire_whole_media_bytes_included() -> None:
    common: dict[str, Any] = {"sender": None, "sender_lid": LID, "chat_id": "120363025246125486@g.us"}
    now = datetime.now(UTC)
    media = InboundMedia(mimetype="image/jpeg", size=3_000_000, data=bytes(range(256)) * 11_719 + b"\0" * 64)
    events: list[InboundEvent] = [
        MessageReceived(message_id="A", timestamp=now, **common, message_type="imageMessage", text=None,
                        caption="look", media=media, location=Location(latitude=1.5, longitude=2.5)),
        MessageReaction(message_id="B", timestamp=now, **common, target_id="A", emoji="🙏"),
        MessageEdited(message_id="C", timestamp=now, **common, target_id="A", text="new"),
        MessageDeleted(message_id="D", timestamp=now, **common, target_id="A"),
        PollVote(message_id="E", timestamp=now, **common, poll_id="P", option_hashes=(option_hash("yes"),)),
    ]  # fmt: skip
    reader = asyncio.StreamReader()
    for event in events:
        reader.feed_data(frames.encode(frames.Event(event)))
    reader.feed_eof()
    crossed = [await frames.read(reader) for _ in events]
    assert crossed == [frames.Event(event) for event in events]
    first = crossed[0]
    assert isinstance(first, frames.Event) and isinstance(first.event, MessageReceived)
    assert first.event.media is not None and first.event.media.data == media.data
    assert await frames.read(reader) is None
