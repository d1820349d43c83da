"""A webhook endpoint for aiohttp that checks the gateway's signature before anything else:

    async def on_event(event: WebhookEvent) -> None: ...
    app.router.add_post("/hooks/whatsapp", webhook_handler(secret, on_event))

`secret` is one webhook secret, or a function (sync or async) from an instance name to its
secret, for one endpoint serving several instances. A bad or missing signature answers 401 and
`on_event` never sees the request; when `on_event` raises, the answer is a 500 and the gateway
delivers the event again later (1 s, 5 s, 30 s), so make `on_event` safe to repeat: the
`delivery_id` stays the same across retries and replays."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from wa_gateway_client.signing import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature

SecretSource = str | Callable[[str], str | None] | Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class WebhookEvent:
    event: str  # message.received, message.sent, instance.connected, ...
    instance_name: str
    data: dict[str, Any]
    timestamp: str
    delivery_id: str | None  # stable across retries and replays: de-duplicate on it
    body: bytes  # the raw, verified body


async def _secret_of(source: SecretSource, instance_name: str) -> str | None:
    if isinstance(source, str):
        return source
    found = source(instance_name)
    return await found if inspect.isawaitable(found) else found


def webhook_handler(
    secret: SecretSource, on_event: Callable[[WebhookEvent], Awaitable[None]]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            envelope = json.loads(raw)
            instance_name = str(envelope["instanceName"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="not a gateway webhook envelope")
        key = await _secret_of(secret, instance_name)
        if key is None or not verify_signature(raw, request.headers.get(SIGNATURE_HEADER, ""), key):
            return web.Response(status=401, text="bad or missing signature")
        event = WebhookEvent(
            event=str(envelope.get("event")),
            instance_name=instance_name,
            data=envelope.get("data") or {},
            timestamp=str(envelope.get("timestamp")),
            delivery_id=request.headers.get(DELIVERY_HEADER),
            body=raw,
        )
        await on_event(event)
        return web.Response(status=204)

    return handle
