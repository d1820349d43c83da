"""Calls, group management and the per-number settings' effects (API.md, "Per-instance settings",
"Calls and groups"), black-box through the API on sandbox sessions hosted by an in-process worker,
events checked at a real local webhook receiver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core import keys
from gateway.state import SERVICES
from tests.conftest import ADMIN, eventually, instance_body, make_settings, open_instance
from tests.receiver import Receiver
from tests.test_actions import actions, error_of
from tests.test_client import acme as client_acme  # noqa: F401  (fixtures of the typed client)
from tests.test_client import admin, base_url, first_qr_out  # noqa: F401
from tests.test_webhooks import new_tenant, started
from wa_gateway_client import AsyncClient, NotFoundError

NAME = "acme__shop1__sales"
OWN, ANA, BEN, NOBODY = "5491100000000", "5491112345678", "5491187654321", "9995550000"
GROUP = "120363012345678901@g.us"
PROXY = "socks5://user:s3cret-pass@proxy.example.com:1080"


async def patch_settings(gateway: TestClient, headers: dict[str, str], **body: object) -> None:
    answer = await gateway.patch(f"/instance/{NAME}/settings", json=body, headers=headers)
    assert answer.status == 200, await answer.text()


async def inbound(gateway: TestClient, headers: dict[str, str], **body: object) -> str:
    answer = await gateway.post(f"/sandbox/instance/{NAME}/inbound", json=body, headers=headers)
    assert answer.status == 201, await answer.text()
    message_id: str = (await answer.json())["messageId"]
    return message_id


async def call(gateway: TestClient, headers: dict[str, str], **body: object) -> str:
    answer = await gateway.post(f"/sandbox/instance/{NAME}/call", json=body, headers=headers)
    assert answer.status == 201, await answer.text()
    call_id: str = (await answer.json())["callId"]
    return call_id


async def events(receiver: Receiver, name: str, count: int = 1) -> list[dict[str, Any]]:
    await eventually(lambda: len(receiver.of(name)) >= count)
    return [request.json()["data"] for request in receiver.of(name)]


# -- calls -----------------------------------------------------------------------------------------


async def test_a_call_fires_call_received_and_is_left_ringing_by_default(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    call_id = await call(gateway, acme, **{"from": ANA, "isVideo": True})
    [received] = await events(receiver, "call.received")
    assert received == {
        "callId": call_id,
        "from": ANA,
        "fromLid": None,
        "isVideo": True,
        "isGroup": False,
        "timestamp": received["timestamp"],
    }
    await inbound(gateway, acme, **{"from": ANA, "text": "after the call"})
    await events(receiver, "message.received")  # everything after the call is out: no rejection came
    assert receiver.of("call.rejected") == [] and await actions(gateway, acme, "call_reject") == []


async def test_reject_calls_rejects_says_so_and_sends_the_message_through_the_urgent_lane(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    await patch_settings(gateway, acme, rejectCalls=True, rejectCallMessage="Please write, we do not take calls")
    call_id = await call(gateway, acme, **{"from": ANA})
    [rejected] = await events(receiver, "call.rejected")
    assert (rejected["callId"], rejected["from"]) == (call_id, ANA)
    [reject] = await actions(gateway, acme, "call_reject")
    assert (reject["callId"], reject["number"]) == (call_id, ANA)
    message = await (await gateway.get(f"/message/{rejected['messageId']}", headers=acme)).json()
    assert (message["lane"], message["to"]) == ("urgent", ANA)

    async def sent() -> list[dict[str, Any]]:
        found = await (await gateway.get(f"/sandbox/instance/{NAME}/sent", headers=acme)).json()
        return [item for item in found if item["to"] == ANA]

    [reply] = await eventually(sent)
    assert reply["text"] == "Please write, we do not take calls"


async def test_reject_calls_without_a_message_sends_nothing(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    await patch_settings(gateway, acme, rejectCalls=True)
    await call(gateway, acme, **{"from": BEN})
    [rejected] = await events(receiver, "call.rejected")
    assert rejected["messageId"] is None
    assert await (await gateway.get(f"/sandbox/instance/{NAME}/sent", headers=acme)).json() == []


async def test_the_sandbox_call_route_needs_an_open_instance_and_a_number(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    await error_of(await gateway.post(f"/sandbox/instance/{NAME}/call", json={"from": ANA}, headers=acme), 409)
    error = await error_of(await gateway.post(f"/sandbox/instance/{NAME}/call", json={"from": "x"}, headers=acme), 400)
    assert "from" in str(error)


# -- settings' effects -----------------------------------------------------------------------------


async def test_ignore_groups_drops_group_messages_live_and_keeps_direct_ones(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    await patch_settings(gateway, acme, ignoreGroups=True)
    await inbound(gateway, acme, **{"from": ANA, "chatId": GROUP, "text": "in the group"})
    await inbound(gateway, acme, **{"from": ANA, "text": "direct"})
    [direct] = await events(receiver, "message.received")
    assert direct["text"] == "direct"
    await patch_settings(gateway, acme, ignoreGroups=False)  # no reconnect needed: the next one counts
    await inbound(gateway, acme, **{"from": ANA, "chatId": GROUP, "text": "in the group again"})
    _, group = await events(receiver, "message.received", 2)
    assert (group["text"], group["chatId"]) == ("in the group again", GROUP)
    assert receiver.of("instance.disconnected") == []


async def test_auto_read_marks_each_message_read_on_arrival(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    first = await inbound(gateway, acme, **{"from": ANA, "text": "not read"})
    await patch_settings(gateway, acme, autoRead=True)
    direct = await inbound(gateway, acme, **{"from": ANA, "text": "read me"})
    grouped = await inbound(gateway, acme, **{"from": BEN, "chatId": GROUP, "text": "me too"})
    reads = await eventually(lambda: _reads(gateway, acme, 2))
    assert [(r["chatId"], r["messageIds"]) for r in reads] == [(ANA, [direct]), (GROUP, [grouped])]
    assert first not in str(reads)


async def _reads(gateway: TestClient, headers: dict[str, str], count: int) -> list[dict[str, Any]] | None:
    found = await actions(gateway, headers, "read")
    return found if len(found) >= count else None


async def test_always_online_sets_the_presence_when_switched_and_on_every_connect(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    await patch_settings(gateway, acme, alwaysOnline=True)
    await eventually(lambda: _presences(gateway, acme, ["available"]))
    await patch_settings(gateway, acme, alwaysOnline=False)
    await eventually(lambda: _presences(gateway, acme, ["available", "unavailable"]))
    await patch_settings(gateway, acme, alwaysOnline=True)
    # the worker applies a change when its command arrives (it polls its queue): wait for it
    await eventually(lambda: _presences(gateway, acme, ["available", "unavailable", "available"]))
    assert (await gateway.post(f"/sandbox/instance/{NAME}/unlink", headers=acme)).status == 200
    assert (await gateway.post(f"/sandbox/instance/{NAME}/link", json={}, headers=acme)).status == 200
    # switched on (available), then the new connection announces it again
    await eventually(lambda: _presences(gateway, acme, ["available", "unavailable", "available", "available"]))


async def _presences(gateway: TestClient, headers: dict[str, str], expected: list[str]) -> bool:
    return [a["state"] for a in await actions(gateway, headers, "presence")] == expected


async def test_a_new_proxy_reconnects_the_session_through_it_and_only_its_host_is_recorded(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    other = await open_instance(gateway, acme, "acme__shop1__other")
    await patch_settings(gateway, acme, proxyUrl=PROXY)
    [proxy] = await eventually(lambda: actions(gateway, acme, "proxy"))
    assert proxy["proxyHost"] == "proxy.example.com" and "s3cret" not in str(await actions(gateway, acme))
    await events(receiver, "instance.connected", 2)  # reconnected through it
    await patch_settings(gateway, acme, autoRead=True)  # the proxy unchanged: no reconnect
    await patch_settings(gateway, acme, proxyUrl=None)
    await eventually(lambda: _proxy_hosts(gateway, acme, ["proxy.example.com", None]))
    other_actions = await gateway.get(f"/sandbox/instance/{other}/actions", headers=acme)
    assert [a for a in await other_actions.json() if a["action"] == "proxy"] == []  # that session only
    await events(receiver, "instance.connected", 3)


async def _proxy_hosts(gateway: TestClient, headers: dict[str, str], expected: list[str | None]) -> bool:
    return [a["proxyHost"] for a in await actions(gateway, headers, "proxy")] == expected


async def test_a_proxy_given_at_create_is_used_from_the_first_connect_and_sealed(
    gateway: TestClient, acme: dict
) -> None:
    created = await gateway.post("/instance/create", json=instance_body(settings={"proxyUrl": PROXY}), headers=acme)
    assert created.status == 201, await created.text()
    [proxy] = await eventually(lambda: actions(gateway, acme, "proxy"))  # before its first QR
    assert proxy["proxyHost"] == "proxy.example.com"
    assert "s3cret" not in (await gateway.app[SERVICES].redis.hget(keys.instance(NAME), "settings"))


async def test_the_settings_hold_after_a_full_restart(redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    settings = make_settings(redis_url, tmp_path / "data")
    first = await started(settings)
    try:
        acme = await new_tenant(first)
        await open_instance(first, acme, webhookUrl=receiver.url())
        await patch_settings(first, acme, rejectCalls=True, ignoreGroups=True, alwaysOnline=True)
        await eventually(lambda: _presences(first, acme, ["available"]))
    finally:
        await first.close()
    second = await started(settings)
    try:
        # adopted and reconnected from its store: online again, calls rejected, groups ignored
        await eventually(lambda: _presences(second, acme, ["available", "available"]))
        await inbound(second, acme, **{"from": ANA, "chatId": GROUP, "text": "ignored"})
        call_id = await call(second, acme, **{"from": ANA})
        [rejected] = await events(receiver, "call.rejected")
        assert rejected["callId"] == call_id and receiver.of("message.received") == []
    finally:
        await second.close()


# -- group management ------------------------------------------------------------------------------


async def create_group(gateway: TestClient, headers: dict[str, str], **body: object) -> str:
    answer = await gateway.post(f"/instance/{NAME}/groups", json=body, headers=headers)
    assert answer.status == 201, await answer.text()
    group_id: str = (await answer.json())["groupId"]
    return group_id


async def group_of(gateway: TestClient, headers: dict[str, str], group_id: str) -> dict[str, Any]:
    answer = await gateway.get(f"/instance/{NAME}/groups/{group_id}", headers=headers)
    assert answer.status == 200, await answer.text()
    found: dict[str, Any] = await answer.json()
    return found


async def test_a_created_group_has_its_subject_and_members_with_us_as_admin(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    group_id = await create_group(gateway, acme, subject="Team", participants=[ANA, BEN, ANA])
    assert group_id.endswith("@g.us")
    group = await group_of(gateway, acme, group_id)
    assert group["subject"] == "Team"
    assert group["participants"] == [
        {"phoneNumber": OWN, "isAdmin": True},
        {"phoneNumber": ANA, "isAdmin": False},
        {"phoneNumber": BEN, "isAdmin": False},
    ]
    [created] = await actions(gateway, acme, "group_create")
    assert created["participants"] == [ANA, BEN]  # each number once


async def test_participants_are_added_removed_promoted_and_demoted_each_with_its_outcome(
    gateway: TestClient, acme: dict
) -> None:
    await open_instance(gateway, acme)
    group_id = await create_group(gateway, acme, subject="Team", participants=[ANA])
    url = f"/instance/{NAME}/groups/{group_id}/participants"

    async def change(action: str, *numbers: str) -> list[dict[str, Any]]:
        answer = await gateway.post(url, json={"action": action, "participants": list(numbers)}, headers=acme)
        assert answer.status == 200, await answer.text()
        found: list[dict[str, Any]] = await answer.json()
        return found

    assert await change("add", BEN, ANA, NOBODY) == [
        {"number": BEN, "ok": True, "error": None},
        {"number": ANA, "ok": False, "error": "already a participant"},
        {"number": NOBODY, "ok": False, "error": "not on WhatsApp"},
    ]
    assert await change("promote", BEN) == [{"number": BEN, "ok": True, "error": None}]
    members = {p["phoneNumber"]: p["isAdmin"] for p in (await group_of(gateway, acme, group_id))["participants"]}
    assert members == {OWN: True, ANA: False, BEN: True}
    assert (await change("demote", BEN))[0]["ok"]
    assert await change("remove", ANA, NOBODY) == [
        {"number": ANA, "ok": True, "error": None},
        {"number": NOBODY, "ok": False, "error": "not a participant"},
    ]
    members = {p["phoneNumber"]: p["isAdmin"] for p in (await group_of(gateway, acme, group_id))["participants"]}
    assert members == {OWN: True, BEN: False}
    error = await error_of(await gateway.post(url, json={"action": "kick", "participants": [ANA]}, headers=acme), 400)
    assert "action" in str(error)


async def test_the_invite_link_is_read_revoked_and_joined_by(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    group_id = await create_group(gateway, acme, subject="Team", participants=[ANA])
    url = f"/instance/{NAME}/groups/{group_id}/invite"
    link = (await (await gateway.get(url, headers=acme)).json())["inviteLink"]
    assert link.startswith("https://chat.whatsapp.com/")
    assert (await (await gateway.get(url, headers=acme)).json())["inviteLink"] == link  # the same until revoked
    revoked = await gateway.delete(url, headers=acme)
    assert revoked.status == 200
    new_link = (await revoked.json())["inviteLink"]
    assert new_link != link and (await (await gateway.get(url, headers=acme)).json())["inviteLink"] == new_link
    joined = await gateway.post(f"/instance/{NAME}/groups/join", json={"inviteLink": new_link}, headers=acme)
    assert joined.status == 200 and (await joined.json()) == {"groupId": group_id}  # already in it
    other = await gateway.post(f"/instance/{NAME}/groups/join", json={"inviteLink": "AbCdEfGhIjKl12"}, headers=acme)
    assert other.status == 200
    joined_id = (await other.json())["groupId"]
    assert joined_id != group_id and not (await group_of(gateway, acme, joined_id))["participants"][0]["isAdmin"]
    bad = await gateway.post(
        f"/instance/{NAME}/groups/join", json={"inviteLink": "https://evil.example/x"}, headers=acme
    )
    assert "inviteLink" in str(await error_of(bad, 400))
    # "join" is no group id: another method on it is not allowed, rather than a group id's 400
    wrong = await gateway.patch(f"/instance/{NAME}/groups/join", json={"subject": "x"}, headers=acme)
    assert wrong.status == 405 and wrong.headers["Allow"] == "POST"


async def test_a_group_is_updated_and_left(gateway: TestClient, acme: dict) -> None:
    await open_instance(gateway, acme)
    group_id = await create_group(gateway, acme, subject="Team", participants=[ANA])
    url = f"/instance/{NAME}/groups/{group_id}"
    body = {"subject": "Team 2", "description": "Our team", "announce": True, "locked": True}
    assert (await gateway.patch(url, json=body, headers=acme)).status == 204
    group = await group_of(gateway, acme, group_id)
    assert (group["subject"], group["description"]) == ("Team 2", "Our team")
    [update] = await actions(gateway, acme, "group_update")
    assert (update["announce"], update["locked"]) == (True, True)
    assert "at least one" in str(await error_of(await gateway.patch(url, json={}, headers=acme), 400))
    assert (await gateway.patch(url, json={"description": ""}, headers=acme)).status == 204
    assert (await group_of(gateway, acme, group_id))["description"] is None  # "" removes it
    assert (await gateway.post(f"{url}/leave", headers=acme)).status == 204
    await error_of(await gateway.get(url, headers=acme), 404)
    await error_of(await gateway.post(f"{url}/leave", headers=acme), 404)


async def test_group_actions_need_admin_rights_and_answer_whatsapp_failures_as_502(
    gateway: TestClient, acme: dict
) -> None:
    await open_instance(gateway, acme)
    seeded = {"groupId": GROUP, "subject": "Not ours", "participants": [{"phoneNumber": ANA, "isAdmin": True}]}
    await gateway.post(f"/sandbox/instance/{NAME}/groups", json={"groups": [seeded]}, headers=acme)
    refused = await gateway.patch(f"/instance/{NAME}/groups/{GROUP}", json={"subject": "Mine"}, headers=acme)
    assert "not-authorized" in (await error_of(refused, 502))["message"]
    failing = {"error": "rate-overlimit"}
    assert (await gateway.post(f"/sandbox/instance/{NAME}/fail-actions", json=failing, headers=acme)).status == 200
    error = await error_of(
        await gateway.post(f"/instance/{NAME}/groups", json={"subject": "X", "participants": [ANA]}, headers=acme), 502
    )
    assert error["code"] == "whatsapp_error" and "creating the group" in error["message"]


async def test_group_actions_are_the_tenants_own_and_need_an_open_instance(gateway: TestClient, acme: dict) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(), headers=acme)).status == 201
    body = {"subject": "Team", "participants": [ANA]}
    await error_of(await gateway.post(f"/instance/{NAME}/groups", json=body, headers=acme), 409)
    created = await gateway.post("/admin/tenants", json={"tenantId": "zeta"}, headers=ADMIN)
    zeta = {"apikey": (await created.json())["apiKey"]}
    await error_of(await gateway.post(f"/instance/{NAME}/groups", json=body, headers=zeta), 403)
    await error_of(await gateway.get(f"/instance/{NAME}/groups/{GROUP}/invite", headers=zeta), 403)
    await error_of(
        await gateway.post(f"/instance/{NAME}/groups/join", json={"inviteLink": "AbCdEfGhIjKl"}, headers=zeta), 403
    )


# -- group events ----------------------------------------------------------------------------------


async def test_group_events_fire_and_the_kept_group_follows(
    gateway: TestClient, acme: dict[str, str], receiver: Receiver, hooked: str
) -> None:
    group_id = await create_group(gateway, acme, subject="Team", participants=[ANA])
    event = {"groupId": group_id, "action": "add", "participants": [BEN], "by": ANA}
    answer = await gateway.post(f"/sandbox/instance/{NAME}/group-event", json=event, headers=acme)
    assert answer.status == 200, await answer.text()
    [added] = await events(receiver, "group.participants")
    assert added == {"groupId": group_id, "action": "add", "participants": [BEN], "by": ANA}
    assert BEN in [p["phoneNumber"] for p in (await group_of(gateway, acme, group_id))["participants"]]
    update = {"groupId": group_id, "action": "update", "subject": "Renamed", "locked": True, "by": ANA}
    await gateway.post(f"/sandbox/instance/{NAME}/group-event", json=update, headers=acme)
    [updated] = await events(receiver, "group.updated")
    assert updated == {
        "groupId": group_id,
        "by": ANA,
        "subject": "Renamed",
        "description": None,
        "announce": None,
        "locked": True,
    }
    assert (await group_of(gateway, acme, group_id))["subject"] == "Renamed"
    missing = {"groupId": group_id, "action": "remove"}
    answer = await gateway.post(f"/sandbox/instance/{NAME}/group-event", json=missing, headers=acme)
    assert "participants" in str(await error_of(answer, 400))


# -- the typed client and the OpenAPI document -----------------------------------------------------


async def test_the_typed_client_manages_groups_and_drives_calls(gateway: TestClient, client_acme: AsyncClient) -> None:  # noqa: F811
    await client_acme.create_instance(NAME, "http://127.0.0.1:9/hook", "0123456789abcdef-secret")
    await first_qr_out(gateway)
    await client_acme.sandbox_link(NAME)
    created = await client_acme.create_group(NAME, "Team", [ANA])
    outcomes = await client_acme.change_participants(NAME, created.group_id, "add", [BEN, NOBODY])
    assert [(o.number, o.ok) for o in outcomes] == [(BEN, True), (NOBODY, False)]
    link = await client_acme.get_group_invite(NAME, created.group_id)
    assert (await client_acme.revoke_group_invite(NAME, created.group_id)).invite_link != link.invite_link
    await client_acme.update_group(NAME, created.group_id, subject="Renamed", announce=True)
    assert (await client_acme.get_group(NAME, created.group_id)).subject == "Renamed"
    await client_acme.sandbox_group_event(NAME, created.group_id, "remove", [ANA], by=BEN)
    joined = await client_acme.join_group(NAME, "https://chat.whatsapp.com/AbCdEfGhIjKl")
    await client_acme.leave_group(NAME, joined.group_id)
    assert [g.group_id for g in await client_acme.list_groups(NAME)] == [created.group_id]
    await client_acme.update_settings(NAME, reject_calls=True)
    call_id = await client_acme.sandbox_call(NAME, ANA, is_video=True)
    reject = await eventually(lambda: _rejected(client_acme))
    assert (reject.call_id, reject.number) == (call_id, ANA)
    with pytest.raises(NotFoundError):
        await client_acme.update_group(NAME, "120363000000000009@g.us", locked=True)


async def _rejected(client: AsyncClient) -> Any:
    found = [a for a in await client.sandbox_actions(NAME) if a.action == "call_reject"]
    return found[0] if found else None


async def test_the_new_routes_and_events_are_in_the_openapi_document(gateway: TestClient) -> None:
    document = await (await gateway.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/instance/{name}/groups"]) == {"get", "post"}
    assert set(paths["/instance/{name}/groups/{groupId}"]) == {"get", "patch"}
    assert set(paths["/instance/{name}/groups/{groupId}/invite"]) == {"get", "delete"}
    for path in ("/groups/join", "/groups/{groupId}/participants", "/groups/{groupId}/leave"):
        assert "post" in paths[f"/instance/{{name}}{path}"]
    assert {"/sandbox/instance/{name}/call", "/sandbox/instance/{name}/group-event"} <= set(paths)
    assert {"call.received", "call.rejected", "group.participants", "group.updated"} <= set(document["webhooks"])
