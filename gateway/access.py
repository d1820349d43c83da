"""Around every request, outermost: one JSON access-log line (request id, route, status, duration)
and the request counted for `wa_http_requests_total` (gateway/http_counts.py).

The line names the route's template (`/instance/{name}/status`), the method and the status, never
the query or a header: keys that may ride in a query (`apikey`, a media link's `sig`) stay out of
the logs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import redis.exceptions
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.routing import route_of
from gateway.state import REQUEST_ID, SERVICES, services

log = structlog.get_logger("gateway.access")

FLUSH_SECONDS = 5.0
UNMATCHED = "unmatched"  # no route: the path itself is not a label (its values would be unbounded)


def route_label(request: web.Request) -> str:
    route = route_of(request.match_info.handler)
    if route is not None:
        return route.path
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # below 400 (a redirect): the error middleware answers the rest
        status = exc.status
        raise
    except (ConnectionError, asyncio.CancelledError):
        status = 499  # the client went away before the answer (nginx's code for it)
        raise
    finally:
        route = route_label(request)
        services(request).http.count(request.method, route, status)
        log.info(
            "http.request",
            request_id=request.get(REQUEST_ID),
            method=request.method,
            route=route,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )


async def flushing_http_counts(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx that flushes the request counts every FLUSH_SECONDS, and once more at shutdown."""

    async def flush() -> None:
        try:
            await app[SERVICES].http.flush()
        except (redis.exceptions.RedisError, OSError):
            log.warning("http_counts.flush_failed")  # kept for the next flush

    async def every_few_seconds() -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await flush()

    task = asyncio.create_task(every_few_seconds())
    yield
    task.cancel()
    await flush()
