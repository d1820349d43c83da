"""Conversation actions through the real API, on sandbox sessions hosted by an in-process worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.conftest import ADMIN, eventually, instance_body, open_instance
from tests.test_sending import finished, gateway_with, send
from wa_gateway_client import AsyncClient, WhatsAppError

NAME = "acme__shop1__sales"
ANA, BEN, NOBODY = "5491112345678", "5491187654321", "9995550000"
GROUP = "120363012345678901@g.us"
OLD_GROUP = "5491112345678-1600000000@g.us"


async def actions(client: TestClient, headers: dict[str, str], kind: str | None = None) -> list[dict[str, Any]]:
    response = await client.get(f"/sandbox/instance/{NAME}/actions", headers=headers)
    assert response.status == 200, await response.text()
    return [a for a in await response.json() if kind is None or a["action"] == kind]


async def check(client: TestClient, headers: dict[str, str], numbers: list[str], name: str = NAME) -> Any:
    response = await client.post(f"/instance/{name}/contacts/check", json={"numbers": numbers}, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    error: dict[str, Any] = (await response.json())["error"]
    return error


# -- contacts/check and the number cache -----------------------------------------------------------


async def test_check_says_which_numbers_are_on_whatsapp_with_their_jid(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    assert await check(gateway, acme, [ANA, NOBODY, ANA]) == [
        {"number": ANA, "onWhatsApp": True, "jid": f"{ANA}@s.whatsapp.net", "lid": None},
        {"number": NOBODY, "onWhatsApp": False, "jid": None, "lid": None},
    ]
    [lookup] = await actions(gateway, acme, "lookup")
    assert lookup["numbers"] == [ANA, NOBODY]  # one call, each number once


async def test_check_answers_from_the_cache_and_asks_whatsapp_only_for_the_rest(
    gateway: TestClient, acme: dict
) -> None:
    await open_instance(gateway, acme)
    await check(gateway, acme, [ANA, NOBODY])
    again = await check(gateway, acme, [NOBODY, BEN, ANA])
    assert [(n["number"], n["onWhatsApp"]) for n in again] == [(NOBODY, False), (BEN, True), (ANA, True)]
    assert [a["numbers"] for a in await actions(gateway, acme, "lookup")] == [[ANA, NOBODY], [BEN]]


async def test_a_second_send_to_the_same_number_does_not_look_it_up_again(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    first = await send(gateway, acme, text="one")
    assert (await finished(gateway, acme, first["id"]))["status"] == "sent"
    second = await send(gateway, acme, text="two")
    assert (await finished(gateway, acme, second["id"]))["status"] == "sent"
    assert [a["numbers"] for a in await actions(gateway, acme, "lookup")] == [[ANA]]


async def test_a_send_uses_what_contacts_check_learnt(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    await check(gateway, acme, [ANA, NOBODY])
    for to in (ANA, NOBODY):
        queued = await send(gateway, acme, to=to)
        await finished(gateway, acme, queued["id"])
    assert len(await actions(gateway, acme, "lookup")) == 1
    ended = await (await gateway.get(f"/message/{queued['id']}", headers=acme)).json()
    assert (ended["status"], ended["error"]) == ("failed", "not_on_whatsapp")


async def test_the_cache_is_shared_by_the_tenants_instances_but_not_between_tenants(
    gateway: TestClient, acme: dict
) -> None:
    other = "acme__shop2__support"
    await open_instance(gateway, acme)
    await open_instance(gateway, acme, other)
    await check(gateway, acme, [ANA])
    await check(gateway, acme, [ANA], name=other)
    response = await gateway.get(f"/sandbox/instance/{other}/actions", headers=acme)
    assert [a for a in await response.json() if a["action"] == "lookup"] == []
    created = await gateway.post("/admin/tenants", json={"tenantId": "zeta"}, headers=ADMIN)
    zeta = {"apikey": (await created.json())["apiKey"]}
    await open_instance(gateway, zeta, "zeta__shop1__sales")
    await check(gateway, zeta, [ANA], name="zeta__shop1__sales")
    response = await gateway.get("/sandbox/instance/zeta__shop1__sales/actions", headers=zeta)
    assert [a["numbers"] for a in await response.json()] == [[ANA]]


async def test_a_negative_answer_expires_sooner_than_a_positive_one(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    client = await gateway_with(aiohttp_client, redis_url, tmp_path, number_check_miss_ttl=1)
    acme = client.acme  # type: ignore[attr-defined]
    await open_instance(client, acme)
    await check(client, acme, [ANA, NOBODY])

    async def asked_again() -> bool:
        await check(client, acme, [ANA, NOBODY])
        return len(await actions(client, acme, "lookup")) > 1

    await eventually(asked_again, timeout=5, interval=0.3)
    assert [a["numbers"] for a in await actions(client, acme, "lookup")][1] == [NOBODY]


async def test_check_takes_1_to_50_numbers_in_digits(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    url = f"/instance/{NAME}/contacts/check"
    too_many = [f"54911{n:08d}" for n in range(51)]
    error = await error_of(await gateway.post(url, json={"numbers": too_many}, headers=acme), 400)
    assert error["issues"][0]["path"] == ["numbers"]
    error = await error_of(await gateway.post(url, json={"numbers": []}, headers=acme), 400)
    assert error["issues"][0]["path"] == ["numbers"]
    error = await error_of(await gateway.post(url, json={"numbers": [ANA, "+54 9 11 1234-5678"]}, headers=acme), 400)
    [issue] = error["issues"]
    assert issue["path"] == ["numbers", 1] and "5491112345678" in issue["message"]
    assert await actions(gateway, acme, "lookup") == []


# -- profile ---------------------------------------------------------------------------------------


async def test_profile_answers_what_the_contact_shows_and_nulls_where_hidden(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    profiles = [
        {"number": ANA, "name": "Ana", "pictureUrl": "https://pps.whatsapp.net/ana.jpg", "about": "Hey there"},
        {"number": BEN, "name": "Ben", "about": "busy", "hidden": True},
    ]
    seeded = await gateway.post(f"/sandbox/instance/{NAME}/profiles", json={"profiles": profiles}, headers=acme)
    assert seeded.status == 200, await seeded.text()
    ana = await (await gateway.get(f"/instance/{NAME}/contacts/{ANA}/profile", headers=acme)).json()
    assert ana == {"number": ANA, "name": "Ana", "pictureUrl": "https://pps.whatsapp.net/ana.jpg", "about": "Hey there"}
    ben = await (await gateway.get(f"/instance/{NAME}/contacts/{BEN}/profile", headers=acme)).json()
    assert ben == {"number": BEN, "name": None, "pictureUrl": None, "about": None}


async def test_profile_of_a_number_not_on_whatsapp_is_404(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    error = await error_of(await gateway.get(f"/instance/{NAME}/contacts/{NOBODY}/profile", headers=acme), 404)
    assert NOBODY in error["message"] and "not on WhatsApp" in error["message"]


async def test_profile_of_a_malformed_number_names_the_path_parameter(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    error = await error_of(await gateway.get(f"/instance/{NAME}/contacts/abc/profile", headers=acme), 400)
    assert error["issues"][0]["path"] == ["path", "number"]


# -- read and presence -----------------------------------------------------------------------------


async def test_marking_messages_read_reaches_whatsapp_for_a_number_and_a_group(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    for chat in (ANA, GROUP, OLD_GROUP):
        response = await gateway.post(
            f"/instance/{NAME}/chats/{chat}/read", json={"messageIds": ["3A0001", "3A0002"]}, headers=acme
        )
        assert response.status == 204, await response.text()
    reads = await actions(gateway, acme, "read")
    assert [(r["chatId"], r["messageIds"]) for r in reads] == [
        (chat, ["3A0001", "3A0002"]) for chat in (ANA, GROUP, OLD_GROUP)
    ]


async def test_read_names_a_bad_chat_id_or_message_ids(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    bad_chat = await gateway.post(f"/instance/{NAME}/chats/12@g.us/read", json={"messageIds": ["3A1"]}, headers=acme)
    assert (await error_of(bad_chat, 400))["issues"][0]["path"] == ["path", "chatId"]
    url = f"/instance/{NAME}/chats/{ANA}/read"
    none = await error_of(await gateway.post(url, json={"messageIds": []}, headers=acme), 400)
    assert none["issues"][0]["path"] == ["messageIds"]
    spaced = await error_of(await gateway.post(url, json={"messageIds": ["3A1 3A2"]}, headers=acme), 400)
    assert spaced["issues"][0]["path"] == ["messageIds", 0]
    assert await actions(gateway, acme, "read") == []


async def test_reading_a_chat_with_a_number_not_on_whatsapp_is_404(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    url = f"/instance/{NAME}/chats/{NOBODY}/read"
    error = await error_of(await gateway.post(url, json={"messageIds": ["3A1"]}, headers=acme), 404)
    assert NOBODY in error["message"]


async def test_presence_is_set_and_a_wrong_state_is_named(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    url = f"/instance/{NAME}/presence"
    for state in ("unavailable", "available"):
        response = await gateway.post(url, json={"state": state}, headers=acme)
        assert response.status == 204, await response.text()
    assert [a["state"] for a in await actions(gateway, acme, "presence")] == ["unavailable", "available"]
    error = await error_of(await gateway.post(url, json={"state": "away"}, headers=acme), 400)
    assert error["issues"][0]["path"] == ["state"]


# -- groups ----------------------------------------------------------------------------------------


GROUPS = [
    {
        "groupId": GROUP,
        "subject": "Team",
        "description": "Our team",
        "isAdmin": True,
        "participants": [{"phoneNumber": "5491100000000", "isAdmin": True}, {"phoneNumber": ANA}, {}],
    },
    {"groupId": OLD_GROUP, "subject": "Family", "participants": [{"phoneNumber": BEN, "isAdmin": True}]},
]


async def test_groups_lists_the_groups_the_number_is_in(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    seeded = await gateway.post(f"/sandbox/instance/{NAME}/groups", json={"groups": GROUPS}, headers=acme)
    assert (await seeded.json())["seeded"] == 2
    listed = await (await gateway.get(f"/instance/{NAME}/groups", headers=acme)).json()
    assert sorted(listed, key=lambda g: g["subject"]) == [
        {"groupId": OLD_GROUP, "subject": "Family", "participantsCount": 1, "isAdmin": False},
        {"groupId": GROUP, "subject": "Team", "participantsCount": 3, "isAdmin": True},
    ]


async def test_a_group_answers_with_its_participants(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    await gateway.post(f"/sandbox/instance/{NAME}/groups", json={"groups": GROUPS}, headers=acme)
    group = await (await gateway.get(f"/instance/{NAME}/groups/{GROUP}", headers=acme)).json()
    assert group == {
        "groupId": GROUP,
        "subject": "Team",
        "description": "Our team",
        "participants": [
            {"phoneNumber": "5491100000000", "isAdmin": True},
            {"phoneNumber": ANA, "isAdmin": False},
            {"phoneNumber": None, "isAdmin": False},  # known only by LID
        ],
    }


async def test_an_unknown_group_is_404_and_a_malformed_id_is_400(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    error = await error_of(await gateway.get(f"/instance/{NAME}/groups/{GROUP}", headers=acme), 404)
    assert GROUP in error["message"]
    error = await error_of(await gateway.get(f"/instance/{NAME}/groups/{ANA}", headers=acme), 400)
    assert error["issues"][0]["path"] == ["path", "groupId"]


# -- when WhatsApp or the instance is not there ----------------------------------------------------


async def test_whatsapp_failing_is_a_502_naming_the_action_and_the_next_call_works(
    gateway: TestClient, acme: dict
) -> None:
    await open_instance(gateway, acme)
    failing = {"error": "rate-overlimit", "count": 2}
    assert (await gateway.post(f"/sandbox/instance/{NAME}/fail-actions", json=failing, headers=acme)).status == 200
    error = await error_of(await gateway.get(f"/instance/{NAME}/groups", headers=acme), 502)
    assert error["code"] == "whatsapp_error"
    assert "listing the groups" in error["message"] and "rate-overlimit" in error["message"]
    response = await gateway.post(f"/instance/{NAME}/presence", json={"state": "available"}, headers=acme)
    assert "setting the presence" in (await error_of(response, 502))["message"]
    assert (await gateway.get(f"/instance/{NAME}/groups", headers=acme)).status == 200


async def test_a_failed_lookup_is_not_cached(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    await gateway.post(f"/sandbox/instance/{NAME}/fail-actions", json={"error": "boom"}, headers=acme)
    url = f"/instance/{NAME}/contacts/check"
    await error_of(await gateway.post(url, json={"numbers": [ANA]}, headers=acme), 502)
    assert (await check(gateway, acme, [ANA]))[0]["onWhatsApp"] is True


async def test_whatsapp_not_answering_in_time_is_a_502(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    client = await gateway_with(aiohttp_client, redis_url, tmp_path, action_timeout=0.3)
    acme = client.acme  # type: ignore[attr-defined]
    await open_instance(client, acme)
    await client.post(f"/sandbox/instance/{NAME}/fail-actions", json={"hang": True}, headers=acme)
    response = await client.post(f"/instance/{NAME}/contacts/check", json={"numbers": [ANA]}, headers=acme)
    error = await error_of(response, 502)
    assert "did not answer within 0.3 s" in error["message"] and "checking the numbers" in error["message"]


async def test_fail_actions_takes_an_error_or_hang(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    url = f"/sandbox/instance/{NAME}/fail-actions"
    for body in ({}, {"error": "x", "hang": True}):
        error = await error_of(await gateway.post(url, json=body, headers=acme), 400)
        assert "error" in error["message"] and "hang" in error["message"]


async def test_actions_on_an_instance_that_is_not_open_are_409(gateway: TestClient, acme: dict) -> None:
    created = await gateway.post("/instance/create", json=instance_body(), headers=acme)
    assert created.status == 201
    calls = [
        gateway.post(f"/instance/{NAME}/contacts/check", json={"numbers": [ANA]}, headers=acme),
        gateway.get(f"/instance/{NAME}/contacts/{ANA}/profile", headers=acme),
        gateway.post(f"/instance/{NAME}/chats/{ANA}/read", json={"messageIds": ["3A1"]}, headers=acme),
        gateway.post(f"/instance/{NAME}/presence", json={"state": "available"}, headers=acme),
        gateway.get(f"/instance/{NAME}/groups", headers=acme),
        gateway.get(f"/instance/{NAME}/groups/{GROUP}", headers=acme),
    ]
    for call in calls:
        error = await error_of(await call, 409)
        assert error["code"] == "invalid_state" and "not open" in error["message"]


async def test_an_unknown_instance_is_404_and_another_tenants_is_403(gateway: TestClient, acme: dict) -> None:
    missing = await gateway.get("/instance/acme__shop9__none/groups", headers=acme)
    assert (await error_of(missing, 404))["code"] == "not_found"
    foreign = await gateway.get("/instance/zeta__shop1__sales/groups", headers=acme)
    assert (await error_of(foreign, 403))["code"] == "forbidden_tenant"


# -- the typed client ------------------------------------------------------------------------------


async def test_the_client_carries_out_every_action(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    async with AsyncClient(str(gateway.make_url("/")), acme["apikey"]) as client:
        group = {"group_id": GROUP, "subject": "Team", "is_admin": True, "participants": [{"phone_number": ANA}]}
        await client.sandbox_seed_groups(NAME, [group])
        await client.sandbox_seed_profiles(NAME, [{"number": ANA, "name": "Ana", "about": "hi"}])
        checked = await client.check_numbers(NAME, [ANA, NOBODY])
        assert [(n.number, n.on_whats_app) for n in checked] == [(ANA, True), (NOBODY, False)]
        profile = await client.get_profile(NAME, ANA)
        assert (profile.name, profile.picture_url, profile.about) == ("Ana", None, "hi")
        await client.mark_read(NAME, GROUP, ["3A01"])
        await client.set_presence(NAME, "unavailable")
        [summary] = await client.list_groups(NAME)
        assert (summary.group_id, summary.participants_count, summary.is_admin) == (GROUP, 1, True)
        details = await client.get_group(NAME, GROUP)
        assert [(p.phone_number, p.is_admin) for p in details.participants] == [(ANA, False)]
        await client.sandbox_fail_actions(NAME, "no network")
        with pytest.raises(WhatsAppError, match="no network"):
            await client.list_groups(NAME)
        done = [(a.action, a.chat_id, a.state) for a in await client.sandbox_actions(NAME)]
        assert ("read", GROUP, None) in done and ("presence", None, "unavailable") in done


async def test_a_send_whose_number_lookup_gets_no_answer_is_retried_not_stuck(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    client = await gateway_with(aiohttp_client, redis_url, tmp_path, action_timeout=0.3)
    acme = client.acme  # type: ignore[attr-defined]
    await open_instance(client, acme)
    await client.post(f"/sandbox/instance/{NAME}/fail-actions", json={"hang": True}, headers=acme)
    queued = await send(client, acme, to=ANA)
    done = await finished(client, acme, queued["id"])
    assert done["status"] == "sent" and done["attempts"] == 2, done
