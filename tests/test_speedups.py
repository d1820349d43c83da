"""GATEWAY_SPEEDUPS (core/speedups.py): with orjson on or off, a request's JSON is judged alike
(NaN, Infinity, a lone surrogate escape: 400 naming it) and answers are the same JSON; an
accelerator that is not installed, or unknown, stops start-up with its name; hiredis packs the
bytes redis-py's own packer writes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import redis as sync_redis
from aiohttp.test_utils import TestClient
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from config import SettingsError, load_settings
from core import speedups
from core.redis_client import HiredisPacking, connect, hiredis_packing
from core.redis_server import find_redis_server
from tests.conftest import ADMIN
from tests.serve_process import free_port, wait_for


@pytest.fixture(params=[(), ("orjson",), ("uvloop", "orjson", "hiredis")])
def chosen(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    speedups.configure(request.param)
    yield request.param
    speedups.configure(load_settings({}).speedups)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"tenantId": NaN}', "not valid JSON"),
        (b'{"tenantId": "acme", "x": Infinity}', "not valid JSON"),
        (b'{"tenantId": "\\ud800"}', "surrogate"),
        (b'{"tenantId": ', "not valid JSON"),
    ],
)
async def test_bad_json_is_refused_alike(chosen: tuple[str, ...], client: TestClient, body: bytes, said: str) -> None:
    response = await client.post("/admin/tenants", data=body, headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status == 400
    answer = await response.json()
    assert said in str(answer) or ("orjson" in chosen and "not valid JSON" in str(answer))


async def test_answers_are_the_same_json(chosen: tuple[str, ...], client: TestClient) -> None:
    response = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    assert response.status == 201 and response.content_type == "application/json"
    assert (await response.json())["tenantId"] == "acme"


def test_an_accelerator_not_installed_or_unknown_is_named() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_SPEEDUPS"):
        load_settings({"GATEWAY_SPEEDUPS": "rust"})
    assert load_settings({"GATEWAY_SPEEDUPS": "none"}).speedups == frozenset()
    assert load_settings({"GATEWAY_SPEEDUPS": "uvloop, orjson"}).speedups == {"uvloop", "orjson"}


COMMANDS: list[tuple[object, ...]] = [
    ("SET", "k", "é", "EX", 5),
    ("EVALSHA", "a" * 40, 2, "key:1", "key:2", 0.1, 1e20, -5, b"\x00\xff", "x" * 10_000),
    ("CLIENT SETNAME", "worker"),
    (b"CLIENT SETNAME", b"worker"),
]


def test_hiredis_packs_the_bytes_redis_py_packs() -> None:
    """The C packer (core/redis_client.py) writes exactly what redis-py's asyncio packer writes,
    one command or a pipeline of them, and refuses what it refuses."""
    own, fast = Connection(), hiredis_packing(Connection)()
    for command in COMMANDS:
        assert b"".join(fast.pack_command(*command)) == b"".join(own.pack_command(*command))  # type: ignore[arg-type]
    assert b"".join(fast.pack_commands(COMMANDS)) == b"".join(own.pack_commands(COMMANDS))  # type: ignore[arg-type]
    for refused in (None, True):
        with pytest.raises(DataError):
            fast.pack_command("SET", "k", refused)  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        fast.pack_command("SET", "k", "\udc80")


def _answers(port: int) -> bool:
    try:
        return bool(sync_redis.Redis(port=port).ping())
    except sync_redis.ConnectionError:
        return False


@pytest.fixture(scope="module")
def tcp_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis on a loopback port (the embedded one listens on a Unix socket only)."""
    port = free_port()
    directory = tmp_path_factory.mktemp("tcp-redis")
    server = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _answers(port), 10, "the loopback Redis answers")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()


@pytest.mark.parametrize("on", [False, True])
async def test_a_pool_packs_with_hiredis_only_when_it_is_on(redis_url: str, tcp_redis_url: str, on: bool) -> None:
    speedups.configure({"hiredis"} if on else set())
    try:
        clients = [connect(redis_url), connect(tcp_redis_url)]  # a Unix socket's connections, and TCP's
    finally:
        speedups.configure(load_settings({}).speedups)
    try:
        for redis in clients:
            assert issubclass(redis.connection_pool.connection_class, HiredisPacking) is on
            async with redis.pipeline(transaction=False) as pipe:
                pipe.set("packed", "é" * 5000)
                pipe.get("packed")
                pipe.client_setname("packer")
                assert await pipe.execute() == [True, "é" * 5000, True]
            assert await redis.eval("return ARGV[1] .. KEYS[1]", 1, "k", 1.5) == "1.5k"  # type: ignore[arg-type,misc]
            assert await redis.client_getname() == "packer"
    finally:
        for redis in clients:
            await redis.aclose()
