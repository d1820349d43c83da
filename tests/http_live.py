"""The gateway served as `wa-gateway serve` serves it (GatewayRunner on a loopback port, with an
in-process worker), raw-socket requests for bytes an HTTP client refuses to send, and the
captured log to prove no request made the server log an error."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from config import Settings
from gateway.app import create_app
from gateway.server import GatewayRunner
from scheduler.worker import worker_context


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Live:
    port: int
    base: str


@asynccontextmanager
async def live_gateway(settings: Settings) -> AsyncIterator[Live]:
    app = create_app(settings)
    app.cleanup_ctx.append(worker_context(settings))
    runner = GatewayRunner(app, settings, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Live(port=port, base=f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def raw_request(port: int, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Send `data` as is and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    return parse_response(received)


def parse_response(received: bytes) -> RawResponse:
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status=int(lines[0].split()[1]), headers=headers, body=body)


@dataclass
class Captured:
    events: list[MutableMapping[str, Any]] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Every error-level line and every line carrying a traceback."""
        found = [
            f"{e.get('log_level')}: {e.get('event')}"
            for e in self.events
            if e.get("log_level") in ("error", "critical", "exception") or e.get("exc_info")
        ]
        found += [f"{r.levelname}: {r.name}: {r.getMessage()}" for r in self.records if r.levelno >= logging.ERROR]
        return found


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@contextmanager
def captured_logs() -> Iterator[Captured]:
    """structlog events and stdlib records (aiohttp logs through the latter) while inside."""
    captured = Captured()
    handler = _Collect(captured.records)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with structlog.testing.capture_logs() as events:
            captured.events = events
            yield captured
    finally:
        root.removeHandler(handler)
