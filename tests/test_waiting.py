"""The contract by default, and every waiting message says why (API.md, "Per-instance settings"
and "Every waiting message says why"): a standard instance has the seed's lanes and nothing else
holds a message; a cautious one adds the unbanned rules; each reason a pending message can give
is shown here where it is the cause, with its `until`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from core.clock import now_ms
from gateway.state import SERVICES
from tests.conftest import ADMIN, eventually, instance_body
from tests.receiver import Receiver
from tests.test_deliverability import NAME, NO_RULES, gateway_with, open_hooked, queue, records, send_all, sent_at

HOUR = 3600


def lanes(**bulk: Any) -> str:
    return json.dumps({"urgent": NO_RULES, "normal": NO_RULES, "bulk": {**NO_RULES, **bulk}})


def until(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["waiting"]["until"]).timestamp()


async def held_as(client: TestClient, message_id: str, reason: str) -> dict[str, Any]:
    """The record of `message_id` once it waits for `reason`."""

    async def check() -> dict[str, Any] | None:
        [found] = await records(client, [message_id])
        return found if found["status"] == "pending" and found["waiting"]["reason"] == reason else None

    return await eventually(check)


async def one_sent_one_held(client: TestClient, reason: str, lane: str = "bulk", **second: Any) -> dict[str, Any]:
    """Two messages of `lane`: the first goes, the second waits for `reason`; both records."""
    first, then = await send_all(
        client, [{"to": "5491100000101", "lane": lane}, {"to": "5491100000102", "lane": lane, **second}]
    )
    [done] = await eventually(lambda: _sent(client, first))
    held = await held_as(client, then, reason)
    assert (await queue(client))["held"] == {reason: 1}
    return {"sent": done, "held": held}


async def _sent(client: TestClient, message_id: str) -> list[dict[str, Any]] | None:
    found = await records(client, [message_id])
    return found if found[0]["status"] == "sent" else None


async def test_a_fresh_gateway_with_no_settings_has_the_seeds_quotas_on_day_zero(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes="{}")  # GATEWAY_LANES unset
    await open_hooked(gateway, receiver)
    today = await queue(gateway)
    assert today["warmup"]["day"] == 0
    assert today["quotas"] == {
        "urgent": {"perHour": 150, "perDay": 1000, "warmup": 1, "firstContactPerDay": None},
        "normal": {"perHour": 80, "perDay": 500, "warmup": 1, "firstContactPerDay": None},
        "bulk": {"perHour": 30, "perDay": 200, "warmup": 1, "firstContactPerDay": None},
    }
    settings = gateway.app[SERVICES].settings.lanes
    assert [settings[lane].gap for lane in ("urgent", "normal", "bulk")] == [(1, 2), (3, 8), (8, 15)]
    settled = await gateway.patch(f"/instance/{NAME}/settings", json={"deliverability": "cautious"}, headers=ADMIN)
    assert settled.status == 200
    cautious = (await queue(gateway))["quotas"]
    assert cautious["bulk"] == {"perHour": 3, "perDay": 20, "warmup": 0.1, "firstContactPerDay": 20}
    assert cautious["urgent"]["perHour"] == 150  # the urgent lane has no warm-up


async def test_two_bulk_messages_to_one_person_both_go_within_the_bulk_gap(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    # GATEWAY_LANES sets only the gaps (short, for the test): the spacing default (24 h) stays.
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path)
    assert gateway.app[SERVICES].settings.lanes["bulk"].spacing == 24 * HOUR
    await open_hooked(gateway, receiver)
    ids = await send_all(gateway, [{"to": "5491100000044", "lane": "bulk"}] * 2)
    await eventually(lambda: _sent(gateway, ids[1]))
    first, second = await records(gateway, ids)
    gap = gateway.app[SERVICES].settings.lanes["bulk"].gap
    assert gap[0] - 0.01 <= sent_at(second) - sent_at(first) < gap[1] + 5  # a gap (and a loaded machine), not a day


async def test_a_cautious_instance_holds_the_second_and_says_spacing_until_when(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path)
    await open_hooked(gateway, receiver, "cautious")
    ids = await send_all(gateway, [{"to": "5491100000044", "lane": "bulk"}] * 3)
    [first] = await eventually(lambda: _sent(gateway, ids[0]))
    second = await held_as(gateway, ids[1], "spacing")
    assert abs(until(second) - (sent_at(first) + 24 * HOUR)) < 2
    [third] = await records(gateway, ids[2:])
    assert third["waiting"] == {"reason": "queued", "until": None}  # behind the head of its lane
    assert (await queue(gateway))["held"] == {"spacing": 1}
    # Standard again: nothing but the lanes holds them.
    back = await gateway.patch(f"/instance/{NAME}/settings", json={"deliverability": "standard"}, headers=ADMIN)
    assert back.status == 200
    await eventually(lambda: _sent(gateway, ids[2]))
    assert [r["waiting"] for r in await records(gateway, ids)] == [None] * 3
    assert (await queue(gateway))["held"] == {}


async def test_not_connected_for_the_head_and_queued_behind_it(gateway: TestClient, acme: dict[str, str]) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(NAME), headers=acme)).status == 201
    gateway.acme = acme  # type: ignore[attr-defined]
    ids = await send_all(
        gateway, [{"to": "5491100000101"}, {"to": "5491100000102"}, {"to": "5491100000103", "lane": "urgent"}]
    )
    found = await records(gateway, ids)
    assert [r["waiting"] for r in found] == [
        {"reason": "not_connected", "until": None},
        {"reason": "queued", "until": None},
        {"reason": "not_connected", "until": None},
    ]
    assert (await queue(gateway))["held"] == {"not_connected": 2}


async def test_gap(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(gap=[30, 30]))
    await open_hooked(gateway, receiver)
    found = await one_sent_one_held(gateway, "gap")
    assert abs(until(found["held"]) - (sent_at(found["sent"]) + 30)) < 2


async def test_queued_behind_a_lane_above(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    slow = {**NO_RULES, "gap": [30, 30]}
    gateway = await gateway_with(
        aiohttp_client, redis_url, tmp_path, lanes=json.dumps({"urgent": slow, "normal": slow, "bulk": slow})
    )
    await open_hooked(gateway, receiver)
    first, urgent, bulk = await send_all(
        gateway,
        [
            {"to": "5491100000101", "lane": "urgent"},
            {"to": "5491100000102", "lane": "urgent"},
            {"to": "5491100000103", "lane": "bulk"},
        ],
    )
    await eventually(lambda: _sent(gateway, first))
    await held_as(gateway, urgent, "gap")
    [behind] = await records(gateway, [bulk])
    assert behind["waiting"] == {"reason": "queued", "until": None}  # the urgent lane goes first
    assert (await queue(gateway))["held"] == {"gap": 1, "queued": 1}


async def test_hourly_quota(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(perHour=1))
    await open_hooked(gateway, receiver)
    found = await one_sent_one_held(gateway, "hourly_quota")
    assert abs(until(found["held"]) - (sent_at(found["sent"]) + HOUR)) < 2


async def test_daily_quota(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(perDay=1))
    await open_hooked(gateway, receiver)
    found = await one_sent_one_held(gateway, "daily_quota")
    assert abs(until(found["held"]) - (sent_at(found["sent"]) + 24 * HOUR)) < 2


async def test_warmup(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(perDay=10, warmup=[0.1, 1]))
    await open_hooked(gateway, receiver, "cautious")
    found = await one_sent_one_held(gateway, "warmup")
    linked = datetime.fromisoformat((await queue(gateway))["warmup"]["firstLinkedAt"]).timestamp()
    assert abs(until(found["held"]) - (linked + 24 * HOUR)) < 2  # tomorrow's larger quota


async def test_first_contact(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes(firstContactPerDay=1))
    await open_hooked(gateway, receiver, "cautious")
    found = await one_sent_one_held(gateway, "first_contact")
    assert abs(until(found["held"]) - (sent_at(found["sent"]) + 24 * HOUR)) < 2


async def test_throttled(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes())
    await open_hooked(gateway, receiver)
    paused_until = now_ms() + 600_000
    await gateway.app[SERVICES].lanes.throttle(NAME, "failure_rate", paused_until)  # as finish.lua pauses it
    [held] = await send_all(gateway, [{"to": "5491100000101", "lane": "bulk"}])
    found = await held_as(gateway, held, "throttled")
    assert abs(until(found) * 1000 - paused_until) < 2
    assert (await queue(gateway))["held"] == {"throttled": 1}


async def test_retry(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, receiver: Receiver) -> None:
    gateway = await gateway_with(aiohttp_client, redis_url, tmp_path, lanes=lanes())
    await open_hooked(gateway, receiver)
    failing = {"error": "connection reset", "count": 1, "transient": True}
    assert (await gateway.post(f"/sandbox/instance/{NAME}/fail-next", json=failing, headers=gateway.acme)).status == 200  # type: ignore[attr-defined]
    [message_id] = await send_all(gateway, [{"to": "5491100000101", "lane": "urgent"}])
    found = await held_as(gateway, message_id, "retry")
    assert found["attempts"] == 1 and until(found) > datetime.fromisoformat(found["createdAt"]).timestamp()
    await eventually(lambda: _sent(gateway, message_id))  # and it goes at that time
