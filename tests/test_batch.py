"""POST /message/batch: many messages of any type on any of the tenant's instances, validated as
a whole, accepted in one atomic step per instance, each clientRef queued once."""

from aiohttp.test_utils import TestClient

from benchmarks.roundtrips import RoundTrips
from core import keys
from core.scripts import BATCH_EARLY
from gateway.state import SERVICES
from tests.conftest import instance_body, open_instance
from tests.test_sending import finished, sent

SALES, SUPPORT = "acme__shop1__sales", "acme__shop1__support"
TO = "5491112345678"


async def batch(client: TestClient, headers: dict[str, str], messages: list[dict]) -> tuple[int, dict]:
    response = await client.post("/message/batch", json={"messages": messages}, headers=headers)
    return response.status, await response.json()


async def queued(client: TestClient, headers: dict[str, str], name: str) -> int:
    return int((await (await client.get(f"/instance/{name}/queue", headers=headers)).json())["total"])


async def test_batch_queues_every_type_on_several_instances_and_answers_records_in_order(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await open_instance(gateway, acme, SALES)
    await gateway.post("/instance/create", json=instance_body(SUPPORT), headers=acme)  # closed: they wait
    messages = [
        {"type": "text", "instanceName": SALES, "to": TO, "text": "one", "lane": "urgent"},
        {"type": "image", "instanceName": SUPPORT, "to": TO, "imageUrl": "https://example.com/a.png"},
        {"type": "text", "instanceName": SALES, "to": TO, "text": "two", "clientRef": "order-2"},
        {"type": "document", "instanceName": SUPPORT, "to": TO, "documentUrl": "https://example.com/a.pdf",
         "fileName": "a.pdf"},
    ]  # fmt: skip
    status, body = await batch(gateway, acme, messages)
    assert status == 202, body
    records = body["accepted"]
    assert [r["instanceName"] for r in records] == [SALES, SUPPORT, SALES, SUPPORT]
    assert [r["lane"] for r in records] == ["urgent", "normal", "normal", "normal"]
    assert [r["clientRef"] for r in records] == [None, None, "order-2", None]
    assert {r["status"] for r in records} == {"pending"} and not any(r["replayed"] for r in records)
    assert len({r["id"] for r in records}) == 4
    for record in (records[0], records[2]):
        assert (await finished(gateway, acme, record["id"]))["status"] == "sent"
    assert [item["text"] for item in await sent(gateway, acme, SALES)] == ["one", "two"]
    assert await queued(gateway, acme, SUPPORT) == 2


async def test_a_bad_batch_lists_every_bad_item_by_index_and_queues_nothing(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await gateway.post("/instance/create", json=instance_body(SALES), headers=acme)
    messages = [
        {"type": "text", "instanceName": SALES, "to": TO, "text": "fine"},
        {"type": "text", "instanceName": SALES, "to": "+54 11", "text": ""},
        {"type": "fax", "instanceName": SALES, "to": TO},
        {"type": "image", "instanceName": SALES, "to": TO},
        {"type": "text", "instanceName": SALES, "to": TO, "text": "a", "clientRef": "r"},
        {"type": "text", "instanceName": SALES, "to": TO, "text": "b", "clientRef": "r"},
    ]
    status, body = await batch(gateway, acme, messages)
    assert status == 400
    paths = {tuple(issue["path"]) for issue in body["error"]["issues"]}
    assert {path[:2] for path in paths} == {("messages", 1), ("messages", 2), ("messages", 3)}
    assert ("messages", 1, "text", "to") in paths and ("messages", 1, "text", "text") in paths
    assert ("messages", 3, "image", "imageUrl") in paths
    status, body = await batch(gateway, acme, [messages[0], messages[4], messages[5]])
    assert status == 400
    assert [issue["path"] for issue in body["error"]["issues"]] == [["messages", 2, "clientRef"]]
    assert await queued(gateway, acme, SALES) == 0


async def test_batch_size_foreign_and_unknown_instances_are_refused_whole(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await gateway.post("/instance/create", json=instance_body(SALES), headers=acme)
    item = {"type": "text", "instanceName": SALES, "to": TO, "text": "x"}
    assert (await batch(gateway, acme, []))[0] == 400
    status, body = await batch(gateway, acme, [item] * 1001)
    assert status == 400 and body["error"]["issues"][0]["path"] == ["messages"]
    status, body = await batch(gateway, acme, [item, {**item, "instanceName": "globex__a__b"}])
    assert status == 403 and "[1]" in body["error"]["message"]
    status, body = await batch(gateway, acme, [item, {**item, "instanceName": "acme__shop1__nope"}])
    assert status == 404 and "acme__shop1__nope" in body["error"]["message"]
    assert await queued(gateway, acme, SALES) == 0


async def test_a_client_ref_already_queued_answers_the_first_message_and_queues_nothing_more(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    await gateway.post("/instance/create", json=instance_body(SALES), headers=acme)
    first = {"type": "text", "instanceName": SALES, "to": TO, "text": "hello", "clientRef": "c-1"}
    other = {"type": "text", "instanceName": SALES, "to": TO, "text": "other", "clientRef": "c-2"}
    status, body = await batch(gateway, acme, [first])
    assert status == 202
    [original] = body["accepted"]
    status, body = await batch(gateway, acme, [other, first])
    assert status == 202
    fresh, again = body["accepted"]
    assert not fresh["replayed"] and fresh["id"] != original["id"]
    assert again["replayed"] and again["id"] == original["id"] and again["clientRef"] == "c-1"
    assert await queued(gateway, acme, SALES) == 2


async def test_a_batch_over_many_instances_goes_to_redis_in_a_few_writes(
    gateway: TestClient, acme: dict[str, str]
) -> None:
    names = [f"acme__shop1__n{i}" for i in range(20)]
    for name in names:
        assert (await gateway.post("/instance/create", json=instance_body(name), headers=acme)).status == 201
    messages = [{"type": "text", "instanceName": name, "to": TO, "text": f"to {name}"} for name in names]
    trips = RoundTrips()
    with trips.counting():
        status, body = await batch(gateway, acme, messages)
    assert status == 202, body
    accept_sha = gateway.app[SERVICES].lanes.script("accept").sha
    # twenty atomic steps, written BATCH_EARLY at a time on one connection, not one by one
    assert trips.by_command[f"EVALSHA {accept_sha}"] == -(-len(names) // BATCH_EARLY)
    assert [await queued(gateway, acme, name) for name in names] == [1] * 20


async def test_each_instance_of_a_batch_is_looked_up_by_its_own_backlog_and_existence(gateway: TestClient) -> None:
    """The batch's checks read every instance in one step each (core/lua/instances_exist.lua,
    queued_totals.lua): the answers must land on the right instance, in order."""
    instances = gateway.app[SERVICES].instances
    names = [f"acme__shop1__n{i}" for i in range(30)]
    for i, name in enumerate(names[:20]):  # the last ten are never created
        await instances.redis.hset(keys.instance(name), mapping={"createdAt": "2026-12-07T00:00:00Z"})
        for lane in ("urgent", "normal", "bulk")[: i % 4]:
            await instances.redis.rpush(keys.lane(name, lane), *[f"m{n}" for n in range(i)])
    assert await instances.exist(names) == [True] * 20 + [False] * 10
    totals = await instances.queued_totals(names)
    assert list(totals) == names
    assert [totals[name] for name in names] == [i * (i % 4) for i in range(20)] + [0] * 10
    assert await instances.exist([]) == [] and await instances.queued_totals([]) == {}
