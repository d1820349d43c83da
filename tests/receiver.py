"""A real webhook receiver on 127.0.0.1 for the tests: it records every request (headers and raw
body, failed ones too) and fails on demand: a status for the next N requests, or a hang that
only the gateway's timeout ends."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import eventually


@dataclass(frozen=True)
class Received:
    path: str
    headers: CIMultiDict[str]
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result

    @property
    def delivery_id(self) -> str:
        return self.headers["x-gateway-delivery"]


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.accepted: list[Received] = []  # the requests it answered 2xx
        self._failures: list[int] = []
        self._down: tuple[int, str] | None = None
        self._hangs = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def fail_next(self, count: int, status: int = 500) -> None:
        self._failures.extend([status] * count)

    def go_down(self, status: int = 503, text: str = "") -> None:
        """Answer every request `status` (with `text`) until `come_back`: an outage."""
        self._down = (status, text)

    def come_back(self) -> None:
        self._down = None

    def hang_next(self, count: int) -> None:
        self._hangs += count

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The first `count` requests, once they have arrived."""
        await eventually(lambda: len(self.requests) >= count, timeout)
        return self.requests[:count]

    def of(self, event: str) -> list[Received]:
        return [r for r in self.requests if r.headers["x-gateway-event"] == event]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a request the gateway gave up on ends here too.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Received(request.path, CIMultiDict(request.headers), await request.read(), time.monotonic())
        )
        if self._hangs:
            self._hangs -= 1
            await self._closing.wait()
        if self._failures:
            return web.Response(status=self._failures.pop(0))
        if self._down is not None:
            status, text = self._down
            return web.Response(status=status, text=text)
        self.accepted.append(self.requests[-1])
        return web.Response(status=204)
