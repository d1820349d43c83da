"""Inbound figures: how fast contacts' messages, as the driver reports them to the worker's
session host, become webhooks delivered to a local receiver (plain texts, and images the worker
sniffs, stores and links), and how fast the API serves signed media links. One process: the API,
one worker, the sandbox driver, an embedded Redis.

`python -m benchmarks.inbound --instances 10 --messages 2000 --media-kb 64 --fetches 1000`
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from PIL import Image

from benchmarks.__main__ import ADMIN, _caller, gateway_and_receiver, sandbox_settings
from config import load_settings
from core.logs import configure_logging
from core.redis_server import EmbeddedRedis
from scheduler.drivers.base import InboundMedia, MessageReceived
from tests.serve_process import free_port

CONCURRENCY = 32


def noise_png(kilobytes: int) -> bytes:
    """A PNG of about `kilobytes` that does not compress away (random pixels)."""
    side = max(8, int((kilobytes * 1024 / 3) ** 0.5))
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


class Counter:
    """The webhook receiver: counts message.received and keeps the media links."""

    def __init__(self) -> None:
        self.received = 0
        self.links: list[str] = []
        self.done = asyncio.Event()
        self.expected = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["event"] == "message.received":
            self.received += 1
            media = body["data"]["media"]
            if media is not None and media["url"]:
                self.links.append(media["url"])
            if self.received >= self.expected:
                self.done.set()
        return web.Response(status=204)

    def expect(self, count: int) -> None:
        self.received, self.expected = 0, count
        self.done.clear()


async def run(instances: int, messages: int, media_kb: int, fetches: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        await redis_server.start()
        port = free_port()
        settings = sandbox_settings(
            Path(tmp),
            redis_server.url,
            log_level="warning",
            public_url=f"http://127.0.0.1:{port}",
        )
        counter = Counter()
        try:
            async with (
                gateway_and_receiver(settings, port, counter.hook) as gateway,
                aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http,
            ):
                worker = gateway.worker
                call = _caller(http)
                key = (await call("POST", "/admin/tenants", {"tenantId": "bench"}, ADMIN))["apiKey"]
                names = [f"bench__c__n{i}" for i in range(instances)]
                for name in names:
                    body = {"instanceName": name, "webhookUrl": gateway.hook_url}
                    await call("POST", "/instance/create", {**body, "webhookSecret": "x" * 16}, key)
                    await call("POST", f"/sandbox/instance/{name}/link", {}, key)

                async def inject(count: int, media: InboundMedia | None) -> float:
                    """`count` messages spread over the instances, each instance's in order, as its
                    session would report them; per second until the last webhook is delivered."""
                    counter.expect(count)
                    started = time.perf_counter()

                    async def one_instance(name: str, share: int) -> None:
                        for _ in range(share):
                            event = MessageReceived(
                                message_id=f"3A{uuid.uuid4().hex.upper()}",
                                sender="5491155554444",
                                message_type="imageMessage" if media else "conversation",
                                text=None if media else "hola",
                                media=media,
                                timestamp=datetime.now(UTC),
                            )
                            await worker.host.on_event(name, event)

                    await asyncio.gather(*(one_instance(name, count // instances) for name in names))
                    await asyncio.wait_for(counter.done.wait(), 600)
                    return count / (time.perf_counter() - started)

                texts = await inject(messages, None)
                image = noise_png(media_kb)
                with_media = await inject(
                    messages // 4, InboundMedia(mimetype="image/png", size=len(image), data=image)
                )
                links = counter.links[:fetches]
                started = time.perf_counter()

                async def fetch(link: str) -> None:
                    parts = urlsplit(link)
                    async with http.get(f"{parts.path}?{parts.query}") as response:
                        assert response.status == 200, response.status
                        await response.read()

                for start in range(0, len(links), CONCURRENCY):
                    await asyncio.gather(*(fetch(link) for link in links[start : start + CONCURRENCY]))
                served = len(links) / (time.perf_counter() - started)
        finally:
            await redis_server.stop()
    return {"texts": texts, "media": with_media, "served": served, "media_kb": len(image) / 1024}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--media-kb", type=int, default=64)
    parser.add_argument("--fetches", type=int, default=500)
    args = parser.parse_args()
    configure_logging(load_settings({}, log_level="warning"))
    figures = await run(args.instances, args.messages, args.media_kb, args.fetches)
    print(f"inbound, {args.instances} instances on one worker, webhooks to a local receiver:")
    print(f"1. texts: driver event -> message.received delivered  {figures['texts']:.0f} /s")
    print(f"2. {figures['media_kb']:.0f} KB images: sniffed, stored, linked, delivered  {figures['media']:.0f} /s")
    served = figures["served"]
    print(f"3. signed media links served (GET /media/{{id}}?exp=&sig=, {CONCURRENCY} at a time)  {served:.0f} /s")


if __name__ == "__main__":
    asyncio.run(main())
