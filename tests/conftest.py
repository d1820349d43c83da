"""Tests run against a real redis-server that this test session starts itself (never a fake)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, overload

import pytest
import redis as sync_redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from config import Settings, load_settings
from config.settings import LANES
from core.redis_client import Redis, connect
from core.redis_server import EmbeddedRedis
from gateway.app import create_app
from gateway.state import SERVICES
from scheduler.worker import GatewayWorker, worker_context

if TYPE_CHECKING:
    from tests.receiver import Receiver

ADMIN_KEY = "test-admin-key-0123456789"
FAST_LANES = '{"urgent": {"gap": [0.01, 0.02]}, "normal": {"gap": [0.02, 0.04]}, "bulk": {"gap": [0.04, 0.06]}}'
# No "typing..." before sends unless a test turns it on. (The rules that keep a number unbanned
# need no switching off: they hold only instances whose deliverability is "cautious".)
UNTYPED = {"typing": False}


def untyped(lanes: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """Every lane of `lanes` (JSON of GATEWAY_LANES) without typing unless it sets it."""
    return {lane: {**UNTYPED, **lanes.get(lane, {})} for lane in LANES}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    asyncio.run(server.start())
    yield server
    asyncio.run(server.stop())


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    client = sync_redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the test's Redis (emptied for the test), closed after it."""
    client = connect(redis_url)
    yield client
    await client.aclose()


def make_settings(redis_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "admin_key": ADMIN_KEY,
        "secret_key": "test-secret-key-0123456789",
        "data_dir": data_dir,
        "driver": "sandbox",
        "lanes": FAST_LANES,
        "worker_id": "test-worker",
        "allow_private_urls": True,
    }
    values.update(overrides)
    if isinstance(values["lanes"], str):
        values["lanes"] = json.dumps(untyped(json.loads(values["lanes"])))
    return load_settings({}, **values)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data")


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, app: web.Application) -> TestClient:
    return await aiohttp_client(app)


ADMIN = {"apikey": ADMIN_KEY}

if TYPE_CHECKING:
    from tests.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real webhook receiver on 127.0.0.1 that records every request (tests/receiver.py)."""
    from tests.receiver import Receiver  # it imports this module: import it only once both exist

    found = Receiver()
    await found.start()
    yield found
    await found.close()


@pytest.fixture
async def tenant_key(client: TestClient) -> AsyncIterator[str]:
    """The API key of a fresh tenant `acme`."""
    response = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    assert response.status == 201, await response.text()
    yield (await response.json())["apiKey"]


@pytest.fixture
async def gateway(aiohttp_client: AiohttpClient, settings: Settings) -> TestClient:
    """The API with one in-process worker hosting sandbox sessions, as `wa-gateway serve` runs."""
    app = create_app(settings)
    app.cleanup_ctx.append(worker_context(settings))
    return await aiohttp_client(app)


@pytest.fixture
async def acme(gateway: TestClient) -> dict[str, str]:
    """Headers carrying the API key of a fresh tenant `acme`."""
    response = await gateway.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    assert response.status == 201, await response.text()
    return {"apikey": (await response.json())["apiKey"]}


def instance_body(name: str = "acme__shop1__sales", **overrides: object) -> dict[str, object]:
    return {
        "instanceName": name,
        "webhookUrl": "http://127.0.0.1:9/hook",
        "webhookSecret": "0123456789abcdef-secret",
        **overrides,
    }


T = TypeVar("T")


# `Callable[..., X]`: a check may bind a loop's variable as a lambda's default argument.
@overload
async def eventually(check: Callable[..., Awaitable[T | None]], timeout: float = 10.0, interval: float = 0.02) -> T: ...
@overload
async def eventually(check: Callable[..., T | None], timeout: float = 10.0, interval: float = 0.02) -> T: ...
async def eventually(check: Callable[..., object], timeout: float = 10.0, interval: float = 0.02) -> object:
    """Poll `check` (sync or async) until it returns something truthy; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def open_instance(
    client: TestClient, headers: dict[str, str], name: str = "acme__shop1__sales", **body: object
) -> str:
    """Create an instance and link it through the sandbox; returns its name once it is open."""
    created = await client.post("/instance/create", json=instance_body(name, **body), headers=headers)
    assert created.status == 201, await created.text()
    linked = await client.post(f"/sandbox/instance/{name}/link", json={"phoneNumber": "5491100000000"}, headers=headers)
    assert linked.status == 200, await linked.text()
    return name


@pytest.fixture
async def hooked(gateway: TestClient, acme: dict[str, str], receiver: Receiver) -> str:
    """An open instance whose webhook is the receiver, its instance.connected already delivered."""
    name = "acme__shop1__sales"
    created = await gateway.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
    assert created.status == 201, await created.text()

    # Link once the connect command has run (its first QR is out): run after the link, it would
    # reconnect the freshly linked session and fire a second instance.connected.
    async def first_qr_out() -> bool:
        instance = await gateway.app[SERVICES].instances.find(name)
        return instance is not None and instance.qr is not None

    await eventually(first_qr_out)
    linked = await gateway.post(f"/sandbox/instance/{name}/link", json={"phoneNumber": "5491100000000"}, headers=acme)
    assert linked.status == 200
    await receiver.wait_for(1)
    return name


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[GatewayWorker]:
    """A worker run by hand, beside the API-only `client`, to feed driver events straight in."""
    started_worker = GatewayWorker(settings)
    await started_worker.start()
    yield started_worker
    await started_worker.stop()
