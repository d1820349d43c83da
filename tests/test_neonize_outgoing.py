"""What the neonize driver sends for each kind beyond text and media, offline: the real neonize
protobufs built by the session, a FakeClient only where WhatsApp itself would answer."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from scheduler.drivers import neonize as nd
from scheduler.drivers.base import Contact, Location, MessageRef, OutgoingMessage, Poll
from scheduler.drivers.neonize.loading import _import
from tests.test_neonize_driver import PHONE, FakeClient, Recorder, e2e, in_child_session

OWN = "5491100000000"
GROUP = "120363025246125486@g.us"
CONTACT = "5491187654321"
enum = _import("neonize.utils.enum")


class TypingClient(FakeClient):
    def __init__(self) -> None:
        super().__init__()
        self.chat_presences: list[tuple[Any, Any, Any]] = []

    async def send_chat_presence(self, jid: Any, state: Any, media: Any) -> None:
        self.chat_presences.append((jid, state, media))


@pytest.fixture
def session(tmp_path: Path) -> Any:
    driver = nd.NeonizeDriver(tmp_path / "sessions", max_sessions=4)
    session = in_child_session(driver, Recorder())
    session._client = TypingClient()
    session._connected = True
    session._own_phone = OWN
    return session


async def sent(session: Any, **fields: Any) -> tuple[Any, Any]:
    """Send through the session; the JID and the waE2E.Message the client was handed."""
    await session.send(OutgoingMessage(**{"to": PHONE, **fields}))
    jid, proto = session._client.sent[-1]
    assert isinstance(proto, e2e.Message)
    return jid, proto


async def test_a_location_is_a_location_message_with_its_name_and_address(session: Any) -> None:
    place = Location(latitude=-34.6037, longitude=-58.3816, name="Obelisco", address="CABA")
    _, proto = await sent(session, type="location", location=place)
    pin = proto.locationMessage
    assert (pin.degreesLatitude, pin.degreesLongitude, pin.name, pin.address) == (
        -34.6037,
        -58.3816,
        "Obelisco",
        "CABA",
    )


async def test_one_contact_is_a_vcard_and_several_are_a_contacts_array(session: Any) -> None:
    ana = Contact(full_name="Ana; Pérez", phone_number=CONTACT, organization="Acme")
    _, one = await sent(session, type="contact", contacts=(ana,))
    card = one.contactMessage
    assert card.displayName == "Ana; Pérez"
    assert card.vcard.splitlines() == [
        "BEGIN:VCARD",
        "VERSION:3.0",
        "FN:Ana\\; Pérez",
        "ORG:Acme;",
        f"TEL;type=CELL;type=VOICE;waid={CONTACT}:+{CONTACT}",
        "END:VCARD",
    ]
    _, two = await sent(session, type="contact", contacts=(ana, Contact(full_name="Bo", phone_number=PHONE)))
    assert [c.displayName for c in two.contactsArrayMessage.contacts] == ["Ana; Pérez", "Bo"]
    assert f"waid={PHONE}" in two.contactsArrayMessage.contacts[1].vcard


async def test_a_poll_carries_its_options_choice_count_and_a_secret_for_the_votes(session: Any) -> None:
    _, proto = await sent(
        session, type="poll", poll=Poll(question="Lunch?", options=("Pizza", "Sushi"), selectable_count=0)
    )
    poll = proto.pollCreationMessage
    assert poll.name == "Lunch?" and [o.optionName for o in poll.options] == ["Pizza", "Sushi"]
    assert poll.selectableOptionsCount == 0
    assert len(proto.messageContextInfo.messageSecret) == 32


async def test_a_reaction_names_the_message_by_its_key(session: Any) -> None:
    ours = MessageRef(message_id="3EB0OURS", chat=PHONE, from_me=True)
    _, proto = await sent(session, type="reaction", emoji="👍", target=ours)
    reaction = proto.reactionMessage
    assert reaction.text == "👍" and reaction.senderTimestampMS > 0
    assert (reaction.key.remoteJID, reaction.key.fromMe, reaction.key.ID) == (
        f"{PHONE}@s.whatsapp.net",
        True,
        "3EB0OURS",
    )
    theirs = MessageRef(message_id="3AFROMHER", chat=GROUP, sender=CONTACT)
    jid, removal = await sent(session, to=GROUP, type="reaction", emoji="", target=theirs)
    key = removal.reactionMessage.key
    assert removal.reactionMessage.text == ""
    assert (key.remoteJID, key.fromMe, key.participant) == (GROUP, False, f"{CONTACT}@s.whatsapp.net")
    assert (jid.User, jid.Server) == ("120363025246125486", "g.us")


async def test_an_edit_is_neonizes_edit_of_our_message(session: Any) -> None:
    _, proto = await sent(
        session, type="edit", text="Hello", target=MessageRef(message_id="3EB0OURS", chat=PHONE, from_me=True)
    )
    protocol = proto.editedMessage.message.protocolMessage
    assert protocol.type == e2e.ProtocolMessage.MESSAGE_EDIT
    assert (protocol.key.ID, protocol.key.fromMe, protocol.key.remoteJID) == (
        "3EB0OURS",
        True,
        f"{PHONE}@s.whatsapp.net",
    )
    assert protocol.editedMessage.conversation == "Hello"


async def test_a_delete_is_neonizes_revoke_of_our_own_message(session: Any) -> None:
    _, proto = await sent(
        session, to=GROUP, type="delete", target=MessageRef(message_id="3EB0OURS", chat=GROUP, from_me=True)
    )
    protocol = proto.protocolMessage
    assert protocol.type == e2e.ProtocolMessage.REVOKE
    assert (protocol.key.ID, protocol.key.fromMe, protocol.key.remoteJID) == ("3EB0OURS", True, GROUP)
    assert not protocol.key.participant


async def test_a_reply_with_mentions_is_an_extended_text_with_its_context(session: Any) -> None:
    quoted = MessageRef(message_id="3AFROMHER", chat=PHONE, sender=PHONE, text="Ready?")
    _, proto = await sent(session, type="text", text=f"@{CONTACT} yes", quoted=quoted, mentions=(CONTACT,))
    text = proto.extendedTextMessage
    assert text.text == f"@{CONTACT} yes"
    context = text.contextInfo
    assert (context.stanzaID, context.participant) == ("3AFROMHER", f"{PHONE}@s.whatsapp.net")
    assert context.quotedMessage.conversation == "Ready?"
    assert list(context.mentionedJID) == [f"{CONTACT}@s.whatsapp.net"]


async def test_a_plain_text_stays_a_conversation(session: Any) -> None:
    _, proto = await sent(session, type="text", text="hi")
    assert proto.conversation == "hi"
    assert not proto.HasField("extendedTextMessage")


async def test_a_group_send_goes_to_the_group_jid_without_a_number_lookup(session: Any) -> None:
    jid, proto = await sent(session, to=GROUP, type="text", text="hello all")
    assert (jid.User, jid.Server) == ("120363025246125486", "g.us")
    assert proto.conversation == "hello all" and session._client.lookups == []
    dashed, _ = await sent(session, to="5491112345678-1612345678@g.us", type="text", text="x")
    assert (dashed.User, dashed.Server) == ("5491112345678-1612345678", "g.us")


async def test_a_sticker_is_uploaded_as_an_image_and_sent_as_a_webp_sticker_replying(session: Any) -> None:
    webp = io.BytesIO()
    Image.new("RGBA", (512, 512), (0, 0, 255, 128)).save(webp, "WEBP")
    quoted = MessageRef(message_id="3EB0OURS", chat=PHONE, from_me=True, text="pick one")
    _, proto = await sent(session, type="sticker", media=webp.getvalue(), mimetype="image/webp", quoted=quoted)
    sticker = proto.stickerMessage
    assert sticker.mimetype == "image/webp" and (sticker.width, sticker.height) == (512, 512)
    assert sticker.URL == "https://mmg.whatsapp.net/x" and sticker.fileLength == len(webp.getvalue())
    assert session._client.uploads[-1][1] == enum.MediaType.MediaImage
    assert sticker.contextInfo.stanzaID == "3EB0OURS" and sticker.contextInfo.participant == f"{OWN}@s.whatsapp.net"


async def test_typing_is_composing_then_paused_in_the_chat(session: Any) -> None:
    await session.show_typing(GROUP, True)
    await session.show_typing(PHONE, False)
    (group, composing, media), (person, paused, _) = session._client.chat_presences
    assert (group.Server, composing, media) == (
        "g.us",
        enum.ChatPresence.CHAT_PRESENCE_COMPOSING,
        enum.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
    )
    assert (person.User, paused) == (PHONE, enum.ChatPresence.CHAT_PRESENCE_PAUSED)


def test_every_new_field_crosses_to_the_session_host() -> None:
    message = OutgoingMessage(
        to=GROUP,
        type="poll",
        quoted=MessageRef(message_id="3A", chat=GROUP, sender=PHONE),
        mentions=(PHONE,),
        poll=Poll(question="Q", options=("a", "b")),
        contacts=(Contact(full_name="A", phone_number=PHONE),),
        location=Location(latitude=1, longitude=2),
        typing_ms=1500,
    )
    assert pickle.loads(pickle.dumps(message)) == message


async def test_a_send_to_a_lid_chat_goes_to_that_lid_without_a_number_lookup(session: Any) -> None:
    jid, proto = await sent(session, to="123456789012345@lid", type="text", text="hola")
    assert (jid.User, jid.Server) == ("123456789012345", "lid") and proto.conversation == "hola"
    assert session._client.lookups == []


async def test_a_message_from_an_unknown_sender_is_never_taken_for_ours(session: Any) -> None:
    # A group message whose LID sender was never resolved: its reaction names the LID, not us.
    theirs = MessageRef(message_id="3AFROMLID", chat=GROUP, sender="123456789012345@lid")
    _, proto = await sent(session, to=GROUP, type="reaction", emoji="👍", target=theirs)
    key = proto.reactionMessage.key
    assert (key.fromMe, key.participant) == (False, "123456789012345@lid")
    # WhatsApp told us nothing of who wrote it: not ours either, and the quote names no author.
    unknown = MessageRef(message_id="3ANOBODY", chat=PHONE, text="?")
    _, reply = await sent(session, type="text", text="ok", quoted=unknown)
    assert reply.extendedTextMessage.contextInfo.participant == ""
    _, reaction = await sent(session, type="reaction", emoji="👍", target=unknown)
    assert reaction.reactionMessage.key.fromMe is False
