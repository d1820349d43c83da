"""The client's side of a bad day: its own errors when there is no answer, retries with backoff
for what is safe to retry (and only that), an automatic Idempotency-Key on sends, a connection kept
by the blocking client; and methods that show their real signature and docstring."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import ADMIN_KEY
from tests.serve_process import free_port
from wa_gateway_client import (
    AsyncClient,
    Client,
    GatewayConnectionError,
    GatewayTimeoutError,
    NotFoundError,
    Queued,
    RateLimitedError,
    TransportError,
)
from wa_gateway_client.errors import GatewayError

QUEUED = {"id": "msg_1", "status": "pending", "lane": "normal", "queuedAt": "2026-12-06T08:00:00Z",
          "instanceName": "acme__shop1__sales"}  # fmt: skip
FAST: dict[str, Any] = {"retries": 3, "backoff": 0.01}


@dataclass
class Flaky:
    """A stub gateway: each route fails with `status` for its first `failures` requests."""

    status: int = 503
    failures: int = 2
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Idempotency-Key

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path, request.headers.get("Idempotency-Key")))
        if len(self.seen) <= self.failures:
            error = {"error": {"code": "unavailable", "message": "not ready"}}
            return web.json_response(error, status=self.status, headers={"Retry-After": "0.01"})
        if request.path == "/message/text":
            return web.json_response(QUEUED, status=202)
        return web.json_response({"keyId": "k1", "tenantId": "acme", "admin": False})


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[str, Flaky]]:
    stub = Flaky()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stub.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), stub


async def test_an_idempotent_call_is_retried_through_unavailable_answers(flaky: tuple[str, Flaky]) -> None:
    url, stub = flaky
    async with AsyncClient(url, "key", **FAST) as gw:
        me = await gw.whoami()
    assert me.tenant_id == "acme"
    assert [method for method, _, _ in stub.seen] == ["GET", "GET", "GET"]


async def test_a_send_carries_an_idempotency_key_and_its_retries_the_same_one(flaky: tuple[str, Flaky]) -> None:
    url, stub = flaky
    async with AsyncClient(url, "key", **FAST) as gw:
        queued = await gw.send_text("acme__shop1__sales", "5491112345678", "hi")
    assert isinstance(queued, Queued)
    keys = [key for _, _, key in stub.seen]
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1

    stub.seen.clear()
    async with AsyncClient(url, "key", **FAST) as gw:
        await gw.send_text("acme__shop1__sales", "5491112345678", "hi", idempotency_key="mine-1")
    assert {key for _, _, key in stub.seen} == {"mine-1"}


async def test_a_call_that_could_act_twice_is_not_retried(flaky: tuple[str, Flaky]) -> None:
    url, stub = flaky
    async with AsyncClient(url, "key", **FAST) as gw:
        with pytest.raises(GatewayError) as unavailable:
            await gw.create_tenant("acme")  # a POST without an Idempotency-Key
    assert unavailable.value.status == 503
    assert len(stub.seen) == 1


async def test_retries_give_up_after_their_number(flaky: tuple[str, Flaky]) -> None:
    url, stub = flaky
    stub.failures, stub.status = 10, 429
    with pytest.raises(RateLimitedError):
        await asyncio.to_thread(lambda: Client(url, "key", **FAST).whoami())
    assert len(stub.seen) == 4  # the first try and 3 retries


async def test_an_error_answer_that_a_retry_cannot_change_is_raised_at_once(flaky: tuple[str, Flaky]) -> None:
    url, stub = flaky
    stub.status = 404
    async with AsyncClient(url, "key", **FAST) as gw:
        with pytest.raises(NotFoundError):
            await gw.whoami()
    assert len(stub.seen) == 1


@pytest.mark.parametrize("blocking", [False, True], ids=["async", "sync"])
async def test_no_gateway_there_is_a_connection_error_of_the_client(blocking: bool) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GatewayConnectionError) as refused:
        if blocking:
            await asyncio.to_thread(lambda: Client(url, "key", **FAST).whoami())
        else:
            async with AsyncClient(url, "key", **FAST) as gw:
                await gw.whoami()
    assert isinstance(refused.value, TransportError)
    assert (refused.value.method, refused.value.url) == ("GET", f"{url}/whoami")


@pytest.mark.parametrize("blocking", [False, True], ids=["async", "sync"])
async def test_a_gateway_that_does_not_answer_in_time_is_a_timeout_of_the_client(blocking: bool) -> None:
    answer = asyncio.Event()

    async def stalled(request: web.Request) -> web.Response:
        await answer.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/whoami", stalled)
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        with pytest.raises(GatewayTimeoutError) as late:
            if blocking:
                await asyncio.to_thread(lambda: Client(url, "key", timeout=0.2, retries=1, backoff=0.01).whoami())
            else:
                async with AsyncClient(url, "key", timeout=0.2, retries=1, backoff=0.01) as gw:
                    await gw.whoami()
        answer.set()
    assert "no answer within 0.2 s" in str(late.value)


async def test_the_blocking_client_keeps_its_connection(gateway: TestClient) -> None:
    url = str(gateway.make_url("")).rstrip("/")

    def three_calls() -> set[tuple[str, int]]:
        ends = set()
        with Client(url, ADMIN_KEY) as admin:
            for _ in range(3):
                assert admin.whoami().admin
                assert admin._connection is not None and admin._connection.sock is not None
                ends.add(admin._connection.sock.getsockname())
        return ends

    assert len(await asyncio.to_thread(three_calls)) == 1  # one TCP connection for all three


async def test_methods_show_their_arguments_answer_and_docstring() -> None:
    async with AsyncClient("http://127.0.0.1:9") as gw:
        awaited = inspect.signature(gw.send_text)
    blocking = inspect.signature(Client("http://127.0.0.1:9").get_status)
    assert list(awaited.parameters)[:3] == ["instance_name", "to", "text"]
    assert awaited.parameters["idempotency_key"].kind is inspect.Parameter.KEYWORD_ONLY
    assert awaited.return_annotation == "Awaitable[Queued]"
    assert blocking.return_annotation == "InstanceStatusWithWebhook"
    assert "state" in (Client("http://127.0.0.1:9").get_status.__doc__ or "")
