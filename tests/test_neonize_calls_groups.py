"""The neonize driver's calls, group notices, group management and per-number proxy, offline:
neonize's events built with its own protobuf classes, the session's requests checked against the
real client's methods (names and parameters) on a stand-in for a running client, and the proxy on
real session hosts dialling local proxies."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scheduler.drivers import neonize as nd
from scheduler.drivers.base import (
    CallReceived,
    Disconnected,
    GroupChange,
    GroupParticipants,
    GroupUpdated,
    ParticipantResult,
    UnknownChatError,
)
from scheduler.drivers.neonize.loading import _import
from scheduler.drivers.neonize.notices import map_call, map_group_info, map_joined
from tests.test_neonize_actions import GROUP, OWN, ActionsClient, actions_session, group_info, participant
from tests.test_neonize_driver import PHONE, jid, pb
from tests.test_session_hosts import Events, eventually
from tests.whatsapp_offline import Blackhole, linked_store

__all__ = ["driver"]
from tests.test_neonize_driver import driver

LID = "98765432101234"
real_client = nd.client._client_class()
enum = _import("neonize.utils.enum")
exc_module = _import("neonize.exc")


def offer(creator: Any, alt: Any, *children: str, attrs: tuple[str, ...] = ()) -> Any:
    meta = pb.BasicCallMeta(callCreator=creator, callCreatorAlt=alt, callID="CALL01", timestamp=1_740_830_400)
    getattr(meta, "from").CopyFrom(creator)
    node = pb.Node(
        Tag="offer",
        Attrs=[pb.NodeAttrs(name=name, text="x") for name in ("call-id", *attrs)],
        Nodes=[pb.Node(Tag=tag) for tag in children],
    )
    return pb.CallOffer(basicCallMeta=meta, callRemoteMeta=pb.CallRemoteMeta(), data=node)


# -- pure mappings ---------------------------------------------------------------------------------


def test_a_voice_call_offer_maps_to_call_received_with_the_callers_number_and_lid() -> None:
    assert map_call(offer(jid(PHONE), jid(LID, "lid"), "audio")) == CallReceived(
        call_id="CALL01",
        caller=PHONE,
        caller_lid=LID,
        is_video=False,
        is_group=False,
        timestamp=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
    )


def test_a_video_group_call_from_a_lid_names_its_number_from_the_alternative_address() -> None:
    call = map_call(offer(jid(LID, "lid"), jid(PHONE), "audio", "video", attrs=("group-jid",)))
    assert (call.caller, call.caller_lid, call.is_video, call.is_group) == (PHONE, LID, True, True)
    hidden = map_call(offer(jid(LID, "lid"), jid(""), "audio"))
    assert (hidden.caller, hidden.caller_lid) == (None, LID)


def test_a_group_notice_maps_to_each_members_change_then_the_settings_change() -> None:
    event = pb.GroupInfoEvent(
        JID=jid(GROUP, "g.us"),
        Sender=jid(PHONE),
        Join=[jid("5491187654321")],
        Promote=[jid(LID, "lid")],
        Name=pb.GroupName(Name="Renamed"),
        Announce=pb.GroupAnnounce(IsAnnounce=True),
    )
    assert map_group_info(event) == [
        GroupParticipants(group_id=f"{GROUP}@g.us", action="add", participants=("5491187654321",), by=PHONE),
        GroupParticipants(group_id=f"{GROUP}@g.us", action="promote", participants=(f"{LID}@lid",), by=PHONE),
        GroupUpdated(group_id=f"{GROUP}@g.us", by=PHONE, subject="Renamed", announce=True),
    ]
    left = pb.GroupInfoEvent(JID=jid(GROUP, "g.us"), Leave=[jid(PHONE)], Locked=pb.GroupLocked(isLocked=False))
    assert map_group_info(left) == [
        GroupParticipants(group_id=f"{GROUP}@g.us", action="remove", participants=(PHONE,), by=None),
        GroupUpdated(group_id=f"{GROUP}@g.us", locked=False),
    ]


def test_being_added_to_a_group_is_an_add_of_the_own_number() -> None:
    event = pb.JoinedGroup(Reason="", Type="new", GroupInfo=group_info(participant(OWN)), Sender=jid(PHONE))
    assert map_joined(event, OWN) == GroupParticipants(
        group_id=f"{GROUP}@g.us", action="add", participants=(OWN,), by=PHONE
    )


def test_the_session_listens_to_call_offers_and_group_notices(driver: nd.NeonizeDriver) -> None:
    session, _ = actions_session(driver)
    client = session._new_client()
    codes = _import("neonize.events").EVENT_TO_INT
    assert {codes[pb.CallOffer], codes[pb.GroupInfoEvent], codes[pb.JoinedGroup]} <= set(client.event.list_func)


# -- requests, on the stand-in client whose methods must match the real client's -------------------


class GroupsClient(ActionsClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests: list[tuple[str, tuple[Any, ...]]] = []
        self.participant_errors: dict[str, int] = {}

    async def create_group(self, name: str, participants: list[Any] = [], linked_parent: Any = None) -> Any:  # noqa: B006
        self.requests.append(("create_group", (name, participants)))
        return group_info(participant(OWN, admin=True), *(participant(j.User) for j in participants))

    async def update_group_participants(self, jid: Any, participants_changes: list[Any], action: Any) -> list[Any]:
        self.requests.append(("update_group_participants", (jid, participants_changes, action)))
        return [
            pb.GroupParticipant(JID=j, Error=self.participant_errors.get(j.User, 0), IsAdmin=False, IsSuperAdmin=False)
            for j in participants_changes
        ]

    async def get_group_invite_link(self, jid: Any, revoke: bool = False) -> str:
        self.requests.append(("get_group_invite_link", (jid, revoke)))
        return "https://chat.whatsapp.com/NEW" if revoke else "https://chat.whatsapp.com/OLD"

    async def set_group_name(self, jid: Any, name: str) -> None:
        self.requests.append(("set_group_name", (jid, name)))

    async def set_group_topic(self, jid: Any, previous_id: str, new_id: str, topic: str) -> None:
        self.requests.append(("set_group_topic", (jid, previous_id, new_id, topic)))

    async def set_group_announce(self, jid: Any, announce: bool) -> None:
        self.requests.append(("set_group_announce", (jid, announce)))

    async def set_group_locked(self, jid: Any, locked: bool) -> None:
        self.requests.append(("set_group_locked", (jid, locked)))

    async def leave_group(self, jid: Any) -> None:
        self.requests.append(("leave_group", (jid,)))
        if jid.User != GROUP:
            raise exc_module.LeaveGroupError("failed to leave group: item-not-found")

    async def join_group_with_link(self, code: str) -> Any:
        self.requests.append(("join_group_with_link", (code,)))
        return jid(GROUP, "g.us")

    async def reject_call(self, call_from: Any, call_id: str) -> None:
        self.requests.append(("reject_call", (call_from, call_id)))


@pytest.mark.parametrize(
    "method",
    [
        "create_group",
        "update_group_participants",
        "get_group_invite_link",
        "set_group_name",
        "set_group_topic",
        "set_group_announce",
        "set_group_locked",
        "leave_group",
        "join_group_with_link",
        "reject_call",
    ],
)
def test_the_stand_in_asks_what_the_real_client_takes(method: str) -> None:
    real = list(inspect.signature(getattr(real_client, method)).parameters)
    ours = list(inspect.signature(getattr(GroupsClient, method)).parameters)
    assert ours == real[: len(ours)], f"neonize's {method}{real} changed"
    assert inspect.iscoroutinefunction(getattr(real_client, method))


def groups_session(driver: nd.NeonizeDriver) -> tuple[nd.NeonizeSession, GroupsClient]:
    session, _ = actions_session(driver)
    client = GroupsClient()
    session._client = client
    return session, client


async def test_a_group_is_created_with_the_participants_account_jids(driver: nd.NeonizeDriver) -> None:
    session, client = groups_session(driver)
    assert await session.create_group("Team", [PHONE]) == f"{GROUP}@g.us"
    [(method, (name, jids))] = client.requests
    assert (method, name, [(j.User, j.Server) for j in jids]) == ("create_group", "Team", [(PHONE, "s.whatsapp.net")])
    await session.close()


async def test_participants_change_with_neonizes_enum_and_each_number_gets_its_outcome(
    driver: nd.NeonizeDriver,
) -> None:
    session, client = groups_session(driver)
    client.participant_errors = {"5491187654321": 403}
    results = await session.update_participants(f"{GROUP}@g.us", "add", [PHONE, "5491187654321"])
    assert results == [
        ParticipantResult(number=PHONE, ok=True),
        ParticipantResult(
            number="5491187654321",
            ok=False,
            error="the number's privacy settings refuse being added: send it the invite link",
        ),
    ]
    [(_, (group, jids, action))] = client.requests
    assert (group.User, group.Server, len(jids), action) == (GROUP, "g.us", 2, enum.ParticipantChange.ADD)
    session._client = not_there = GroupsClient(on_whatsapp=False)
    assert await session.update_participants(f"{GROUP}@g.us", "remove", ["5491100000009"]) == [
        ParticipantResult(number="5491100000009", ok=False, error="not on WhatsApp")
    ]
    assert not_there.requests == []  # nobody to change: WhatsApp is not asked
    await session.close()


async def test_invite_links_updates_leaving_and_joining_ask_the_client(driver: nd.NeonizeDriver) -> None:
    session, client = groups_session(driver)
    group_id = f"{GROUP}@g.us"
    assert await session.invite_link(group_id) == "https://chat.whatsapp.com/OLD"
    assert await session.invite_link(group_id, revoke=True) == "https://chat.whatsapp.com/NEW"
    await session.update_group(group_id, GroupChange(subject="New", description="About", announce=True, locked=False))
    assert await session.join_group("https://chat.whatsapp.com/AbCdEfGhIjKl") == group_id
    await session.leave_group(group_id)
    asked = [(method, args[1:] if method != "join_group_with_link" else args) for method, args in client.requests]
    topic = next(args for method, args in asked if method == "set_group_topic")
    assert topic[0] == "" and len(topic[1]) == 16 and topic[2] == "About"  # replaces the current topic id
    assert [method for method, _ in asked] == [
        "get_group_invite_link",
        "get_group_invite_link",
        "set_group_name",
        "set_group_topic",
        "set_group_announce",
        "set_group_locked",
        "join_group_with_link",
        "leave_group",
    ]
    assert [args for method, args in asked if method in ("set_group_announce", "set_group_locked")] == [
        (True,),
        (False,),
    ]
    with pytest.raises(UnknownChatError, match=r"120363000000000000@g\.us"):
        await session.leave_group("120363000000000000@g.us")
    await session.close()


async def test_a_call_offer_reaches_the_sink_and_is_rejected_with_the_callers_jid_as_offered(
    driver: nd.NeonizeDriver,
) -> None:
    session, client = groups_session(driver)
    sink = session._sink
    await session._on_call(client, offer(jid(LID, "lid"), jid(PHONE), "audio"))
    [call] = [event for event in sink.events if isinstance(event, CallReceived)]  # type: ignore[attr-defined]
    assert (call.call_id, call.caller) == ("CALL01", PHONE)
    await session.reject_call(call.call_id, PHONE)
    [(_, (caller, call_id))] = client.requests
    assert (caller.User, caller.Server, call_id) == (LID, "lid", "CALL01")  # as the offer named it
    await session.reject_call("UNKNOWN", PHONE)  # an offer this session never saw: built from the number
    assert (client.requests[1][1][0].User, client.requests[1][1][0].Server) == (PHONE, "s.whatsapp.net")
    await session.close()


# -- the number's own proxy, on real session hosts -------------------------------------------------


async def test_a_numbers_own_proxy_carries_its_connection_and_a_new_one_reconnects_it_alone(tmp_path: Path) -> None:
    await linked_store(tmp_path, "shop")
    await linked_store(tmp_path, "other")
    async with Blackhole() as default, Blackhole() as own, Blackhole() as new:
        driver = nd.NeonizeDriver(tmp_path, 4, proxy=default.url)
        events = Events()
        session = driver.session("shop", events)
        bystander = driver.session("other", Events())
        await session.use_proxy(own.url)
        await session.connect()
        await bystander.connect()
        await eventually(lambda: own.accepted == 1 and default.accepted == 1, 20, "each dials its own proxy")
        first, other = driver.host_pids()["shop"], driver.host_pids()["other"]
        await session.use_proxy(own.url)  # unchanged: nothing happens
        assert driver.host_pids()["shop"] == first
        await session.use_proxy(new.url)
        await eventually(lambda: new.accepted == 1, 20, "the new host dials the new proxy")
        assert driver.host_pids()["shop"] != first and driver.host_pids()["other"] == other
        assert [e.reason for e in events.of(Disconnected)] == ["reconnecting through the new proxy"]
        assert (own.accepted, default.accepted) == (1, 1)
        await session.close()
        await bystander.close()
        driver.close()
