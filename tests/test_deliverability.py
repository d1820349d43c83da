"""Staying unbanned: warm-up, opt-outs, first-contact limits, the bulk lane's pause on trouble and
per-recipient spacing, each under concurrent sends, with compressed days (GATEWAY_DAY_LENGTH)."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.conftest import ADMIN, eventually, instance_body
from tests.receiver import Receiver
from tests.test_sending import gateway_with as sending_gateway

NAME = "acme__shop1__sales"
FAST = [0.01, 0.02]


async def open_hooked(client: TestClient, receiver: Receiver, deliverability: str = "standard") -> None:
    acme = client.acme  # type: ignore[attr-defined]
    body = {**instance_body(NAME, webhookUrl=receiver.url()), "settings": {"deliverability": deliverability}}
    created = await client.post("/instance/create", json=body, headers=acme)
    assert created.status == 201, await created.text()
    linked = await client.post(f"/sandbox/instance/{NAME}/link", json={"phoneNumber": "5491100000000"}, headers=acme)
    assert linked.status == 200, await linked.text()
    await eventually(lambda: receiver.of("instance.connected"))


async def send_all(client: TestClient, bodies: list[dict[str, Any]]) -> list[str]:
    """POST every text at once; the ids of the queued messages, in order."""
    acme = client.acme  # type: ignore[attr-defined]
    answers = await asyncio.gather(
        *(client.post("/message/text", json={"instanceName": NAME, "text": "hi", **b}, headers=acme) for b in bodies)
    )
    assert [a.status for a in answers] == [202] * len(bodies), [await a.text() for a in answers]
    return [(await a.json())["id"] for a in answers]


async def gateway_with(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, **overrides: object
) -> TestClient:
    """The gateway of tests/test_sending.py, with room for these tests' polling of every message."""
    return await sending_gateway(aiohttp_client, redis_url, tmp_path, **{"rate_limit": 1_000_000, **overrides})


async def records(client: TestClient, ids: list[str]) -> list[dict[str, Any]]:
    acme = client.acme  # type: ignore[attr-defined]
    found = []
    for i in ids:
        response = await client.get(f"/message/{i}", headers=acme)
        assert response.status == 200, await response.text()
        found.append(await response.json())
    return found


async def statuses(client: TestClient, ids: list[str]) -> list[str]:
    return [r["status"] for r in await records(client, ids)]


async def queue(client: TestClient) -> dict[str, Any]:
    response = await client.get(f"/instance/{NAME}/queue", headers=client.acme)  # type: ignore[attr-defined]
    assert response.status == 200
    return dict(await response.json())


def sent_at(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["sentAt"]).timestamp()


# Each test of a cautious instance turns on the rule it is about (the defaults are in GATEWAY_LANES).
NO_RULES = {"gap": FAST, "warmup": [1], "firstContactPerDay": None, "spacing": 0}


def lanes(**bulk: Any) -> str:
    return json.dumps({"urgent": NO_RULES, "normal": NO_RULES, "bulk": {**NO_RULES, **bulk}})


async def test_warmup_quota_is_never_exceeded_on_day_one_and_raised_on_day_two(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(
        aiohttp_client, redis_url, tmp_path, day_length=4, lanes=lanes(perHour=100, perDay=10, warmup=[0.3, 1])
    )
    await open_hooked(gateway, receiver, "cautious")
    today = await queue(gateway)
    assert today["quotas"]["bulk"] == {"perHour": 30, "perDay": 3, "warmup": 0.3, "firstContactPerDay": None}
    assert today["quotas"]["urgent"]["perDay"] == 1000  # lanes without a ramp keep their quotas
    assert today["warmup"]["day"] == 0 and today["warmup"]["override"] is None
    linked_at = datetime.fromisoformat(today["warmup"]["firstLinkedAt"]).timestamp()

    ids = await send_all(gateway, [{"to": f"54911000000{i:02}", "lane": "bulk"} for i in range(10)])
    await eventually(lambda: _count(gateway, ids, "sent", 3))
    done = await eventually(lambda: _count(gateway, ids, "sent", 10), timeout=15)  # day 2: the full quota
    on_day_one = [r for r in done if sent_at(r) < linked_at + 4]
    assert len(on_day_one) == 3
    tomorrow = await queue(gateway)
    assert tomorrow["warmup"]["day"] >= 1 and tomorrow["quotas"]["bulk"]["perDay"] == 10


async def _count(client: TestClient, ids: list[str], status: str, count: int) -> list[dict[str, Any]] | None:
    found = [r for r in await records(client, ids) if r["status"] == status]
    assert len(found) <= count, f"{len(found)} {status}, more than {count}"
    return found if len(found) == count else None


async def test_an_admin_override_lifts_the_warmup_at_once(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(perDay=10, warmup=[0.2, 1]))
    await open_hooked(gateway, receiver, "cautious")
    ids = await send_all(gateway, [{"to": f"54911000000{i:02}", "lane": "bulk"} for i in range(6)])
    await eventually(lambda: _count(gateway, ids, "sent", 2))
    bad = await gateway.put(f"/admin/instances/{NAME}/warmup", json={"factor": 2}, headers=ADMIN)
    assert bad.status == 400
    tenant = await gateway.put(f"/admin/instances/{NAME}/warmup", json={"skip": True}, headers=gateway.acme)  # type: ignore[attr-defined]
    assert tenant.status == 403
    skipped = await gateway.put(f"/admin/instances/{NAME}/warmup", json={"skip": True}, headers=ADMIN)
    assert skipped.status == 200 and (await skipped.json())["factor"] == 1
    await eventually(lambda: _count(gateway, ids, "sent", 6))
    assert (await queue(gateway))["quotas"]["bulk"]["perDay"] == 10
    cleared = await gateway.delete(f"/admin/instances/{NAME}/warmup", headers=ADMIN)
    assert cleared.status == 200 and (await queue(gateway))["quotas"]["bulk"]["perDay"] == 2


async def test_a_stop_reply_suppresses_the_sender_and_later_sends_end_opted_out_but_transactional_urgent_goes(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path)
    await open_hooked(gateway, receiver)
    acme = gateway.acme  # type: ignore[attr-defined]
    stopper, other = "5491100000077", "5491100000088"
    inbound = {"from": stopper, "text": "  sTop "}
    replied = await gateway.post(f"/sandbox/instance/{NAME}/inbound", json=inbound, headers=acme)
    assert replied.status == 201
    [event] = await eventually(lambda: receiver.of("contact.opted_out"))
    assert event.json()["data"] == {"number": stopper, "lid": None, "keyword": "STOP"}
    listed = await (await gateway.get("/tenant/acme/suppressions", headers=acme)).json()
    assert [(s["number"], s["source"]) for s in listed["suppressions"]] == [(stopper, "keyword")]

    bodies: list[dict[str, Any]] = [{"to": stopper, "lane": lane} for lane in ("bulk", "normal", "urgent")] * 3
    bodies += [{"to": stopper, "lane": "urgent", "transactional": True}, {"to": other, "lane": "normal"}]
    ids = await send_all(gateway, bodies)
    done = await eventually(lambda: _finished(gateway, ids))
    assert [r["status"] for r in done] == ["failed"] * 9 + ["sent", "sent"]
    assert {r["error"] for r in done[:9]} == {"opted_out"}
    sent = await (await gateway.get(f"/sandbox/instance/{NAME}/sent", headers=acme)).json()
    assert sorted(m["to"] for m in sent) == [stopper, other]  # only the transactional one reached it
    failed = [r.json()["data"] for r in receiver.of("message.failed")]
    assert len(failed) == 9 and {f["error"] for f in failed} == {"opted_out"}

    wrong_lane = await gateway.post(
        "/message/text",
        json={"instanceName": NAME, "to": stopper, "text": "x", "lane": "normal", "transactional": True},
        headers=acme,
    )
    assert wrong_lane.status == 400
    [issue] = (await wrong_lane.json())["error"]["issues"]
    assert issue["path"] == ["transactional"] and "urgent" in issue["message"]


async def _finished(client: TestClient, ids: list[str]) -> list[dict[str, Any]] | None:
    found = await records(client, ids)
    return found if all(r["status"] in ("sent", "failed") for r in found) else None


async def test_the_suppression_list_is_per_tenant_and_editable(gateway: TestClient, acme: dict[str, str]) -> None:
    added = await gateway.post(
        "/tenant/acme/suppressions",
        json={"numbers": ["5491100000001", "5491100000002"], "reason": "asked"},
        headers=acme,
    )
    assert added.status == 200 and (await added.json())["added"] == ["5491100000001", "5491100000002"]
    again = await gateway.post("/tenant/acme/suppressions", json={"numbers": ["5491100000001"]}, headers=acme)
    assert (await again.json())["added"] == []
    listed = (await (await gateway.get("/tenant/acme/suppressions", headers=acme)).json())["suppressions"]
    assert [(s["number"], s["reason"], s["source"]) for s in listed] == [
        ("5491100000001", "asked", "api"),
        ("5491100000002", "asked", "api"),
    ]
    assert (await gateway.delete("/tenant/acme/suppressions/5491100000001", headers=acme)).status == 204
    gone = await gateway.delete("/tenant/acme/suppressions/5491100000001", headers=acme)
    assert gone.status == 404 and "5491100000001" in (await gone.json())["error"]["message"]
    bad = await gateway.post("/tenant/acme/suppressions", json={"numbers": ["+54 9 11"]}, headers=acme)
    assert bad.status == 400 and (await bad.json())["error"]["issues"][0]["path"] == ["numbers", 0]

    other = await gateway.post("/admin/tenants", json={"tenantId": "globex"}, headers=ADMIN)
    globex = {"apikey": (await other.json())["apiKey"]}
    assert (await gateway.get("/tenant/acme/suppressions", headers=globex)).status == 403
    assert (
        await gateway.post("/tenant/acme/suppressions", json={"numbers": ["5491100000009"]}, headers=globex)
    ).status == 403
    theirs = (await (await gateway.get("/tenant/globex/suppressions", headers=globex)).json())["suppressions"]
    assert theirs == []
    assert (await gateway.get("/tenant/nobody/suppressions", headers=ADMIN)).status == 404


async def test_the_first_contact_limit_is_never_exceeded_while_known_contacts_keep_flowing(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(firstContactPerDay=2))
    await open_hooked(gateway, receiver, "cautious")
    known = "5491100000055"
    wrote = await gateway.post(
        f"/sandbox/instance/{NAME}/inbound",
        json={"from": known, "text": "hello"},
        headers=gateway.acme,  # type: ignore[attr-defined]
    )
    assert wrote.status == 201
    await eventually(lambda: receiver.of("message.received"))
    strangers = [f"54911000001{i:02}" for i in range(8)]
    bodies = [{"to": n, "lane": "bulk"} for n in strangers] + [{"to": known, "lane": "bulk"}] * 3
    ids = await send_all(gateway, bodies)
    await eventually(lambda: _count(gateway, ids[8:], "sent", 3))  # the known contact is not held up
    await eventually(lambda: _count(gateway, ids[:8], "sent", 2))
    for _ in range(20):  # and no third stranger goes, however many times the instance wakes
        await asyncio.sleep(0.05)
        assert len([s for s in await statuses(gateway, ids[:8]) if s == "sent"]) == 2
    assert (await queue(gateway))["bulk"] == 6
    assert (await queue(gateway))["quotas"]["bulk"]["firstContactPerDay"] == 2


async def judged(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver, **throttle: float
) -> TestClient:
    """An open instance whose last outcomes are judged by `throttle` (GATEWAY_THROTTLE)."""
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(), throttle=json.dumps(throttle))
    await open_hooked(gateway, receiver)
    return gateway


async def test_a_bad_window_of_not_on_whatsapp_pauses_bulk_while_urgent_flows_until_an_admin_resumes_it(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await judged(aiohttp_client, redis_url, tmp_path, receiver, window=4, notOnWhatsapp=0.5, pause=600)
    gone = await send_all(gateway, [{"to": f"99911100000{i}", "lane": "normal"} for i in range(4)])
    await eventually(lambda: _finished(gateway, gone))
    [event] = await eventually(lambda: receiver.of("instance.throttled"))
    assert event.json()["data"]["reason"] == "not_on_whatsapp"
    paused = (await queue(gateway))["throttled"]
    assert paused["reason"] == "not_on_whatsapp"

    bulk = await send_all(gateway, [{"to": f"54911000002{i}", "lane": "bulk"} for i in range(3)])
    urgent = await send_all(gateway, [{"to": f"54911000003{i}", "lane": "urgent"} for i in range(3)])
    await eventually(lambda: _count(gateway, urgent, "sent", 3))
    assert await statuses(gateway, bulk) == ["pending"] * 3

    assert (await gateway.delete(f"/admin/instances/{NAME}/throttle", headers=gateway.acme)).status == 403  # type: ignore[attr-defined]
    resumed = await gateway.delete(f"/admin/instances/{NAME}/throttle", headers=ADMIN)
    assert resumed.status == 200 and (await resumed.json())["reason"] == "not_on_whatsapp"
    await eventually(lambda: _count(gateway, bulk, "sent", 3))
    [event] = await eventually(lambda: receiver.of("instance.unthrottled"))
    assert event.json()["data"] == {"reason": "not_on_whatsapp", "by": "admin"}
    assert (await queue(gateway))["throttled"] is None
    again = await gateway.delete(f"/admin/instances/{NAME}/throttle", headers=ADMIN)
    assert again.status == 409


async def test_after_a_temporary_ban_bulk_stays_paused_then_resumes_by_itself(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(), throttle='{"afterBan": 3}')
    await open_hooked(gateway, receiver)
    acme = gateway.acme  # type: ignore[attr-defined]
    assert (await gateway.post(f"/sandbox/instance/{NAME}/ban", json={"seconds": 0.3}, headers=acme)).status == 200
    [event] = await eventually(lambda: receiver.of("instance.throttled"))
    assert event.json()["data"]["reason"] == "banned"
    bulk = await send_all(gateway, [{"to": "5491100000021", "lane": "bulk"}])
    urgent = await send_all(gateway, [{"to": "5491100000031", "lane": "urgent"}])
    [done] = await eventually(lambda: _count(gateway, urgent, "sent", 1))  # after the ban, before the pause ends
    assert (await records(gateway, bulk))[0]["status"] == "pending"
    assert (await queue(gateway))["throttled"]["reason"] == "banned"
    [event] = await eventually(lambda: receiver.of("instance.unthrottled"), timeout=10)
    assert event.json()["data"] == {"reason": "banned", "by": "expiry"}
    [bulk_done] = await eventually(lambda: _count(gateway, bulk, "sent", 1))
    assert sent_at(bulk_done) > sent_at(done)


async def test_bulk_messages_to_one_recipient_are_spaced_while_the_others_flow(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(spacing=1))
    await open_hooked(gateway, receiver, "cautious")
    same, others = "5491100000044", [f"54911000005{i}" for i in range(4)]
    bodies = [{"to": same, "lane": "bulk"}] * 3 + [{"to": n, "lane": "bulk"} for n in others]
    bodies += [{"to": same, "lane": "urgent"}]
    ids = await send_all(gateway, bodies)
    done = await eventually(lambda: _finished(gateway, ids), timeout=15)
    assert {r["status"] for r in done} == {"sent"}
    to_same = sorted(sent_at(r) for r in done[:3])
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(to_same)), to_same
    flowing = [sent_at(r) for r in done[3:]]
    assert max(flowing) < to_same[1]  # the other recipients (and urgent) did not wait behind them


async def test_a_failure_rate_over_the_threshold_pauses_bulk_and_it_resumes_by_itself(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await judged(aiohttp_client, redis_url, tmp_path, receiver, window=4, failures=0.75, pause=1.5)
    acme = gateway.acme  # type: ignore[attr-defined]
    failing = await gateway.post(
        f"/sandbox/instance/{NAME}/fail-next", json={"error": "refused", "count": 3}, headers=acme
    )
    assert failing.status == 200
    first = await send_all(gateway, [{"to": f"54911000006{i}", "lane": "normal"} for i in range(4)])
    done = await eventually(lambda: _finished(gateway, first))
    assert sorted(r["status"] for r in done) == ["failed", "failed", "failed", "sent"]
    [event] = await eventually(lambda: receiver.of("instance.throttled"))
    assert event.json()["data"]["reason"] == "failure_rate"
    bulk = await send_all(gateway, [{"to": "5491100000071", "lane": "bulk"}])
    [event] = await eventually(lambda: receiver.of("instance.unthrottled"))
    assert event.json()["data"] == {"reason": "failure_rate", "by": "expiry"}
    [sent] = await eventually(lambda: _count(gateway, bulk, "sent", 1))
    paused_until = datetime.fromisoformat(receiver.of("instance.throttled")[0].json()["data"]["until"]).timestamp()
    assert sent_at(sent) >= paused_until


async def test_the_unbanned_calls_are_in_the_openapi_document(gateway: TestClient) -> None:
    paths = (await (await gateway.get("/openapi.json")).json())["paths"]
    assert set(paths["/tenant/{tenantId}/suppressions"]) >= {"get", "post"}
    assert "delete" in paths["/tenant/{tenantId}/suppressions/{number}"]
    assert set(paths["/admin/instances/{name}/warmup"]) >= {"put", "delete"}
    assert "delete" in paths["/admin/instances/{name}/throttle"]
