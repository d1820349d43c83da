"""Operating the gateway: Prometheus metrics and the live event stream."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import Field, field_validator
from redis.exceptions import RedisError

from core.records import ApiModel
from core.redis_client import Redis
from gateway.errors import HttpError
from gateway.state import SOCKETS, principal, require_instance_access, services
from gateway.validation import validate
from webhooks.live import CURSOR, last_cursor, read_after, stream_of

log = structlog.get_logger(__name__)

BLOCK_MS = 5_000  # one XREAD waits this long for an event before it is asked again
RETRY_SECONDS = 1.0  # after Redis failed us, before reading again (the cursor is kept)
HEARTBEAT_SECONDS = 30.0  # WebSocket pings, so proxies and clients see a quiet stream is alive


async def metrics(request: web.Request) -> web.Response:
    await services(request).http.flush()  # this process's requests so far count in what it answers
    body = await services(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class EventsQuery(ApiModel):
    instance: str | None = Field(default=None, description="only this instance's events")
    since: str | None = Field(
        default=None, description="the `cursor` of the last event received: everything after it comes first"
    )

    @field_validator("since")
    @classmethod
    def _cursor(cls, since: str | None) -> str | None:
        if since is not None and not CURSOR.match(since):
            raise ValueError("must be the cursor of an event received earlier, like 1732950000000-0")
        return since


async def events(request: web.Request) -> web.StreamResponse:
    """The caller's events as JSON text messages, oldest first; the connection stays open."""
    caller = principal(request)
    query = validate(EventsQuery, {k: v for k, v in request.query.items() if k != "apikey"})
    svc = services(request)
    if query.instance is not None:
        require_instance_access(request, query.instance)
        await svc.instances.get(query.instance)
    stream = stream_of(None if caller.is_admin else caller.tenant_id)
    cursor = query.since or await last_cursor(svc.redis, stream)
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
    if not socket.can_prepare(request).ok:
        raise HttpError(426, "upgrade_required", "GET /events is a WebSocket: connect with a WebSocket client")
    await socket.prepare(request)
    request.app[SOCKETS].add(socket)
    forwarding = asyncio.create_task(_forward(svc.redis, socket, stream, cursor, query.instance))
    try:
        async for message in socket:  # the client says nothing we act on; this waits for its close
            if message.type == WSMsgType.ERROR:
                break
    finally:
        forwarding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarding
    return socket


async def close_sockets(app: web.Application) -> None:
    """On shutdown: say goodbye to every client, which reconnects elsewhere (or here, later) from
    its own cursor; a handler waiting on its socket would hold the shutdown up."""
    sockets = app[SOCKETS]
    for socket in list(sockets):
        await socket.close(code=WSCloseCode.GOING_AWAY, message=b"the gateway is restarting")


async def _forward(redis: Redis, socket: web.WebSocketResponse, stream: str, cursor: str, instance: str | None) -> None:
    while not socket.closed:
        try:
            found = await read_after(redis, stream, cursor, BLOCK_MS)
        except RedisError as exc:
            log.warning("events.read_failed", error=str(exc))
            await asyncio.sleep(RETRY_SECONDS)
            continue
        for event in found:
            cursor = event.cursor
            if instance is None or event.instance_name == instance:
                try:
                    await socket.send_json(event.message())
                except ConnectionResetError:
                    return  # the client left; its next connection resumes from its own cursor
