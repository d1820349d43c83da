"""The neonize driver's conversation actions, offline: neonize's answers built with its own protobuf
classes, mapped by the pure helpers, and the session's calls on a stand-in for a running client."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.drivers import neonize as nd
from scheduler.drivers.base import Account, Group, GroupMember, NotOnWhatsAppError, Profile, UnknownChatError
from scheduler.drivers.neonize.answers import accounts, group_of, hidden_picture, profile_of
from scheduler.drivers.neonize.kinds import chat_jid
from scheduler.drivers.neonize.loading import _e2e, _import
from tests.test_neonize_driver import PHONE, FakeClient, Recorder, driver, jid, message_event, pb, qr_session

__all__ = ["driver"]  # the fixture, used by name

e2e = _e2e()
enum = _import("neonize.utils.enum")
exc_module = _import("neonize.exc")
OWN = "5491100000000"
GROUP = "120363012345678901"


def participant(user: str, server: str = "s.whatsapp.net", *, phone: str = "", admin: bool = False, **kw: Any) -> Any:
    return pb.GroupParticipant(
        JID=jid(user, server), PhoneNumber=jid(phone), LID=jid(""), IsAdmin=admin, IsSuperAdmin=False, **kw
    )


def group_info(*participants: Any, topic: str = "") -> Any:
    return pb.GroupInfo(
        JID=jid(GROUP, "g.us"),
        OwnerJID=jid(OWN),
        GroupName=pb.GroupName(Name="Team", NameSetAt=0),
        GroupTopic=pb.GroupTopic(Topic=topic, TopicID="", TopicSetAt=0, TopicDeleted=False),
        Participants=list(participants),
    )


# -- pure mappings ---------------------------------------------------------------------------------


def test_accounts_map_each_number_asked_to_its_account_jid_or_none() -> None:
    answers = [
        pb.IsOnWhatsAppResponse(Query="+5215512345678", JID=jid("525512345678"), IsIn=True),
        pb.IsOnWhatsAppResponse(Query="+5491100000001", JID=jid("5491100000001"), IsIn=False),
    ]
    found = accounts(["5215512345678", "5491100000001", "5491100000002"], answers)
    assert found["5215512345678"].User == "525512345678"  # the account, not the digits asked
    assert (found["5491100000001"], found["5491100000002"]) == (None, None)


def test_a_group_info_maps_to_our_group_with_members_by_number() -> None:
    info = group_info(
        participant(OWN, admin=True),
        participant(PHONE),
        participant("98765432101234", "lid", phone="5491187654321"),  # a LID-addressed group
        participant("98765432109999", "lid"),  # its number hidden from us
        topic="Our team",
    )
    assert group_of(info, OWN) == Group(
        group_id=f"{GROUP}@g.us",
        subject="Team",
        description="Our team",
        members=(
            GroupMember(phone_number=OWN, is_admin=True),
            GroupMember(phone_number=PHONE, is_admin=False),
            GroupMember(phone_number="5491187654321", is_admin=False),
            GroupMember(phone_number=None, is_admin=False),
        ),
        is_admin=True,
    )


def test_a_super_admin_is_an_admin_and_we_are_no_admin_when_another_member_is() -> None:
    info = group_info(pb.GroupParticipant(JID=jid(PHONE), IsAdmin=False, IsSuperAdmin=True), participant(OWN))
    group = group_of(info, OWN)
    assert group.members[0].is_admin and not group.is_admin
    assert group.description is None  # no topic set


def test_a_profile_takes_the_push_name_the_picture_and_the_about_text() -> None:
    info = pb.UserInfo(Status="Hey there", PictureID="123")
    picture = pb.ProfilePictureInfo(URL="https://pps.whatsapp.net/v/t61/ana.jpg", ID="123", Type="image")
    contact = pb.ContactInfo(Found=True, FirstName="", FullName="Ana (work)", PushName="Ana", BusinessName="")
    assert profile_of(info, picture, contact) == Profile(
        name="Ana", picture_url="https://pps.whatsapp.net/v/t61/ana.jpg", about="Hey there"
    )


def test_a_business_without_a_push_name_is_named_by_its_verified_name() -> None:
    details = _import("neonize.proto.waVnameCert.WAWebProtobufsVnameCert_pb2").VerifiedNameCertificate.Details
    info = pb.UserInfo(Status="", VerifiedName=pb.VerifiedName(Details=details(verifiedName="Acme Shop")))
    assert profile_of(info, None, pb.ContactInfo(Found=False)) == Profile(
        name="Acme Shop", picture_url=None, about=None
    )


def test_a_hidden_profile_maps_to_nulls() -> None:
    assert profile_of(pb.UserInfo(Status=""), None, None) == Profile(name=None, picture_url=None, about=None)


def test_a_hidden_or_missing_picture_is_no_picture_and_other_failures_are_failures() -> None:
    answer = pb.GetProfilePictureReturnFunction
    hidden = exc_module.GetProfilePictureError(answer(Error="the user has hidden their profile picture from you"))
    missing = exc_module.GetProfilePictureError(answer(Error="that user doesn't have a profile picture"))
    broken = exc_module.GetProfilePictureError(answer(Error="info query timed out"))
    assert hidden_picture(hidden) and hidden_picture(missing) and not hidden_picture(broken)


def test_chat_ids_address_groups_and_numbers() -> None:
    group, person = chat_jid("5491112345678-1600000000@g.us"), chat_jid(PHONE)
    assert (group.User, group.Server) == ("5491112345678-1600000000", "g.us")
    assert (person.User, person.Server) == (PHONE, "s.whatsapp.net")


# -- the session's calls ---------------------------------------------------------------------------


class ActionsClient(FakeClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reads: list[tuple[tuple[str, ...], Any, Any, Any]] = []
        self.groups = [group_info(participant(OWN, admin=True), participant(PHONE))]
        self.lookup_error: Exception | None = None

    async def is_on_whatsapp(self, *numbers: str) -> list[Any]:
        if self.lookup_error is not None and len(numbers) > 1:
            self.lookups.extend(numbers)
            raise self.lookup_error
        return await super().is_on_whatsapp(*numbers)

    async def mark_read(self, *ids: str, chat: Any, sender: Any, receipt: Any, timestamp: int | None = None) -> None:
        self.reads.append((ids, chat, sender, receipt))

    async def get_joined_groups(self) -> list[Any]:
        return self.groups

    async def get_group_info(self, group: Any) -> Any:
        found = [info for info in self.groups if info.JID.User == group.User]
        if not found:
            raise exc_module.GetGroupInfoError("failed to get group info: group not found")
        return found[0]


def actions_session(driver: nd.NeonizeDriver) -> tuple[nd.NeonizeSession, ActionsClient]:
    session, _ = qr_session(driver, Recorder())
    client = ActionsClient()
    session._client = client
    session._connected = True
    session._own_phone = OWN
    return session, client


def account(number: str, lid: str | None = None) -> Account:
    return Account(number=number, lid=lid, jid=f"{number}@s.whatsapp.net")


async def test_check_numbers_asks_once_for_all_and_remembers(driver: nd.NeonizeDriver) -> None:
    session, client = actions_session(driver)
    found = await session.check_numbers([PHONE, "5491187654321"])
    assert found == {PHONE: account(PHONE), "5491187654321": account("5491187654321")}
    assert await session.check_numbers([PHONE]) == {PHONE: account(PHONE)}
    assert client.lookups == [f"+{PHONE}", "+5491187654321"]
    await session.close()


async def test_an_invalid_number_in_a_batch_does_not_void_the_others(driver: nd.NeonizeDriver) -> None:
    session, client = actions_session(driver)
    client.lookup_error = exc_module.IsOnWhatsAppError("Function returned nothing.")
    original = client.is_on_whatsapp

    async def lookup(*numbers: str) -> list[Any]:
        if numbers == ("+123",):
            raise exc_module.IsOnWhatsAppError("Function returned nothing.")
        return await original(*numbers)

    client.is_on_whatsapp = lookup  # type: ignore[method-assign]
    assert await session.check_numbers(["123", PHONE]) == {"123": None, PHONE: account(PHONE)}
    await session.close()


async def test_reading_a_direct_chat_marks_the_messages_read_in_the_senders_account(driver: nd.NeonizeDriver) -> None:
    session, client = actions_session(driver)
    await session.mark_read(PHONE, ["3A01", "3A02"])
    [(ids, chat, sender, receipt)] = client.reads
    assert ids == ("3A01", "3A02") and receipt == enum.ReceiptType.READ
    assert (chat.User, chat.Server, sender.User) == (PHONE, "s.whatsapp.net", PHONE)
    await session.close()


async def test_reading_in_a_group_names_each_messages_sender(driver: nd.NeonizeDriver) -> None:
    session, client = actions_session(driver)
    group = jid(GROUP, "g.us")
    event = message_event(e2e.Message(conversation="hola"), sender=jid(PHONE), chat=group, is_group=True)
    await session._on_event(client, event)
    await session.mark_read(f"{GROUP}@g.us", [event.Info.ID])
    [(ids, chat, sender, _)] = client.reads
    assert ids == (event.Info.ID,) and (chat.User, chat.Server) == (GROUP, "g.us") and sender.User == PHONE
    with pytest.raises(UnknownChatError, match="3A_NEVER_SEEN"):
        await session.mark_read(f"{GROUP}@g.us", ["3A_NEVER_SEEN"])
    await session.close()


async def test_reading_a_chat_with_a_number_not_on_whatsapp_is_refused(driver: nd.NeonizeDriver) -> None:
    session, client = actions_session(driver)
    session._client = client = ActionsClient(on_whatsapp=False)
    with pytest.raises(NotOnWhatsAppError):
        await session.mark_read("5491100000009", ["3A01"])
    assert client.reads == []
    await session.close()


async def test_presence_is_sent_as_neonizes_presence(driver: nd.NeonizeDriver) -> None:
    session, client = actions_session(driver)
    await session.set_presence("unavailable")
    await session.set_presence("available")
    assert client.presences == [enum.Presence.UNAVAILABLE, enum.Presence.AVAILABLE]
    await session.close()


async def test_groups_and_a_group_come_from_neonizes_group_infos(driver: nd.NeonizeDriver) -> None:
    session, _ = actions_session(driver)
    [listed] = await session.groups()
    assert (listed.group_id, listed.subject, len(listed.members), listed.is_admin) == (f"{GROUP}@g.us", "Team", 2, True)
    assert await session.group(f"{GROUP}@g.us") == listed
    with pytest.raises(UnknownChatError, match=r"120363000000000000@g\.us"):
        await session.group("120363000000000000@g.us")
    await session.close()


async def test_a_profile_of_a_number_not_on_whatsapp_is_refused(driver: nd.NeonizeDriver) -> None:
    session, _ = actions_session(driver)
    session._client = ActionsClient(on_whatsapp=False)
    with pytest.raises(NotOnWhatsAppError):
        await session.profile("5491100000009")
    await session.close()


class LidStoreClient(ActionsClient):
    """The session's LID store: numbers it knows a LID for, and the other way round; whatsmeow
    answers an unknown one with an error."""

    def __init__(self, lids: dict[str, str]) -> None:
        super().__init__()
        self.lids = lids

    async def get_lid_from_pn(self, account: Any) -> Any:
        if account.User not in self.lids:
            raise exc_module.GetJIDFromStoreError("no LID found for that number")
        return jid(self.lids[account.User], "lid")

    async def get_pn_from_lid(self, lid: Any) -> Any:
        numbers = {lid_: number for number, lid_ in self.lids.items()}
        if lid.User not in numbers:
            raise exc_module.GetJIDFromStoreError("no phone number found for that LID")
        return jid(numbers[lid.User])


async def test_check_numbers_answers_each_accounts_lid_from_the_lid_store(driver: nd.NeonizeDriver) -> None:
    session, _ = actions_session(driver)
    session._client = LidStoreClient({PHONE: "123456789012345"})
    found = await session.check_numbers([PHONE, "5491187654321"])
    assert found == {PHONE: account(PHONE, "123456789012345"), "5491187654321": account("5491187654321")}
    assert await session.number_for_lid("123456789012345") == PHONE
    assert await session.number_for_lid("999999999") is None
    await session.close()


def test_a_lid_chat_is_addressed_on_the_lid_server() -> None:
    lid = chat_jid("123456789012345@lid")
    assert (lid.User, lid.Server) == ("123456789012345", "lid")
