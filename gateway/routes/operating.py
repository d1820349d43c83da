"""Operating the gateway: Prometheus metrics and the live event stream."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import Field, field_validator
from redis.exceptions import RedisError, ResponseError

from core import keys
from core.records import ApiModel
from core.redis_client import Redis
from gateway.errors import HttpError
from gateway.state import SOCKETS, principal, require_instance_access, services
from gateway.validation import validate
from webhooks.live import CURSOR, last_cursor, read_after, stream_of

log = structlog.get_logger(__name__)

BLOCK_MS = 2_000  # one XREAD waits this long for an event: the key's revocation is checked after each
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
        if since is not None and not (CURSOR.match(since) and all(int(part) < 2**64 for part in since.split("-"))):
            raise ValueError("must be the cursor of an event received earlier, like 1732950000000-0")
        return since


async def events(request: web.Request) -> web.StreamResponse:
    """The caller's events as JSON text messages, oldest first; the connection stays open until
    the client leaves, its key is revoked, or it stops reading for `events_stall` seconds."""
    caller = principal(request)
    query = validate(EventsQuery, {k: v for k, v in request.query.items() if k != "apikey"})
    svc = services(request)
    if query.instance is not None:
        require_instance_access(request, query.instance)
        await svc.instances.get(query.instance)
    stream = stream_of(None if caller.is_admin else caller.tenant_id)
    cursor = query.since or await last_cursor(svc.redis, stream)
    stall = svc.settings.events_stall
    # Pings go out often enough that a client which answers none is closed within `stall`.
    socket = web.WebSocketResponse(heartbeat=min(HEARTBEAT_SECONDS, stall / 1.5))
    if not socket.can_prepare(request).ok:
        raise HttpError(426, "upgrade_required", "GET /events is a WebSocket: connect with a WebSocket client")
    sockets = request.app[SOCKETS]
    with sockets.place(caller.key_id):
        await socket.prepare(request)
        reader = _Reader(svc.redis, request, socket, stall)
        with sockets.opened(socket):
            forwarding = asyncio.create_task(reader.forward(stream, cursor, query.instance))
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
    for socket in app[SOCKETS]:
        await socket.close(code=WSCloseCode.GOING_AWAY, message=b"the gateway is restarting")


class _Reader:
    """Forwards one socket's events, and closes it when its key is revoked (checked after every
    read, so within REVOKED_WITHIN), when Redis refuses its cursor, or when the client reads
    nothing for `stall` seconds."""

    def __init__(self, redis: Redis, request: web.Request, socket: web.WebSocketResponse, stall: float) -> None:
        self.redis, self.socket, self.caller, self.stall = redis, socket, principal(request), stall
        self.transport = request.transport

    async def forward(self, stream: str, cursor: str, instance: str | None) -> None:
        socket = self.socket
        while not socket.closed:
            try:
                found = await read_after(self.redis, stream, cursor, BLOCK_MS)
                revoked = not self.caller.is_admin and not await self.redis.exists(keys.api_key(self.caller.key_id))
            except ResponseError as exc:  # the cursor itself (say, past what a stream id can hold)
                await self._close(WSCloseCode.POLICY_VIOLATION, f"Redis refused the cursor: {exc}")
                return
            except RedisError as exc:
                log.warning("events.read_failed", error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if revoked:
                await self._close(WSCloseCode.POLICY_VIOLATION, "the API key was revoked")
                return
            for event in found:
                cursor = event.cursor
                if instance is None or event.instance_name == instance:
                    try:
                        async with asyncio.timeout(self.stall):
                            await socket.send_json(event.message())
                    except ConnectionResetError:
                        return  # the client left; its next connection resumes from its own cursor
                    except TimeoutError:  # nothing read for `stall` s: what waits for it is dropped
                        log.info("events.client_stalled", key_id=self.caller.key_id, stall=self.stall)
                        await self._close(WSCloseCode.POLICY_VIOLATION, "", wait=False)
                        return

    async def _close(self, code: int, reason: str, *, wait: bool = True) -> None:
        if wait:
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(self.stall):
                    await self.socket.close(code=code, message=reason.encode()[:120])
                    return
        if self.transport is not None:
            self.transport.abort()  # a client that reads nothing would never take a close frame either
