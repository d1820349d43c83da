"""Request handling around every route: request id, the JSON error shape, API-key auth,
per-key rate limiting and Idempotency-Key replay."""

from __future__ import annotations

import asyncio
import contextlib
import re

import redis.exceptions
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from core.errors import (
    ForbiddenTenant,
    GatewayError,
    InsufficientScope,
    InvalidApiKey,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    ValidationFailed,
)
from core.ids import random_hex
from core.tenants import KeyCheck, Principal, key_id_of, scope_of
from gateway.errors import HttpError, status_of
from gateway.idempotency import StoredAnswer, fingerprint
from gateway.ratelimit import Allowance
from gateway.routing import Route, route_of
from gateway.state import EXTRA_HEADERS, KEY_CHECK, PRINCIPAL, REQUEST_ID, services

log = structlog.get_logger(__name__)

REQUEST_ID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
# Printable ASCII without spaces: API keys and idempotency keys are tokens, never free text.
TOKEN = r"[!-~]+"
IDEMPOTENCY_KEY_MAX = 255
_REQUEST_ID, _TOKEN = re.compile(REQUEST_ID_PATTERN), re.compile(TOKEN)


def new_request_id() -> str:
    return f"req_{random_hex(12)}"


def _request_id(request: web.Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if given and _REQUEST_ID.fullmatch(given) else new_request_id()


def error_response(exc: GatewayError, request_id: str) -> web.Response:
    response = web.json_response({"error": exc.body(), "requestId": request_id}, status=status_of(exc))
    response.headers.update(exc.headers)
    return response


def _as_api_error(exc: web.HTTPException, request: web.Request) -> GatewayError:
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"no route for {request.method} {request.path}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(f"{request.method} is not allowed here; use {allowed}", headers={"Allow": allowed})
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = services(request).settings.max_body_bytes
        return PayloadTooLarge(f"request body is larger than the {limit}-byte limit")
    return HttpError(exc.status, re.sub(r"\W+", "_", exc.reason.lower()), exc.reason)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    request[EXTRA_HEADERS] = {}
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except GatewayError as exc:
        response = error_response(exc, request_id)
        if status_of(exc) == 408:
            response.force_close()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_as_api_error(exc, request), request_id)
    except ConnectionError:
        raise  # the client went away mid-request: nobody to answer (the server logs it quietly)
    except redis.exceptions.ConnectionError:
        log.warning("redis.unavailable", path=request.path)
        response = error_response(Unavailable("the gateway's store is unavailable; retry shortly"), request_id)
    except Exception:
        log.exception("request.failed", method=request.method, path=request.path)
        response = error_response(GatewayError("internal error; quote the requestId when reporting it"), request_id)
    response.headers.update(request[EXTRA_HEADERS])
    response.headers["x-request-id"] = request_id
    return response


def presented_key(request: web.Request, route: Route) -> str:
    """The API key of the request: the `apikey` header, else `Authorization: Bearer` (what
    Prometheus sends), else, where the route allows it, the `apikey` query parameter."""
    if "apikey" in request.headers:
        return request.headers["apikey"]
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query.get("apikey", "") if route.key_in_query else ""


@web.middleware
async def body_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the whole body within `http_body_timeout` (later reads get it from memory); a client
    that stalls mid-body gets a 408 and its connection closed."""
    if request.body_exists:
        timeout = services(request).settings.http_body_timeout
        try:
            if request.content.is_eof():
                await request.read()  # all of it came with the headers: nothing to wait for
            else:
                async with asyncio.timeout(timeout):
                    await request.read()
        except TimeoutError:
            request.content.feed_eof()  # read no more of it: the 408 goes out and the connection closes
            raise HttpError(408, "request_timeout", f"the request body did not arrive within {timeout:g} s") from None
        except web.RequestPayloadError as exc:  # bad chunked framing, a body cut short, bad compression
            raise ValidationFailed.at([], f"the request body is malformed: {exc}") from None
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(handler)
    if route is None:  # unknown paths (404) and the docs page's static files
        return await handler(request)
    gatekeeper = services(request).gatekeeper
    remote = request.remote or "-"
    if route.access == "public" and route.path == "/health":
        # Health must answer from here whatever Redis does; the limit is counted only when it can be.
        with contextlib.suppress(redis.exceptions.RedisError):
            _, allowance = await gatekeeper.check("", remote)
            request[EXTRA_HEADERS].update(allowance.headers())
        return await handler(request)
    keyless = route.access == "public" or (route.access == "signed" and "sig" in request.query)
    api_key = presented_key(request, route) if not keyless else ""
    if api_key and not _TOKEN.fullmatch(api_key):
        raise InvalidApiKey("unknown API key: keys are printable ASCII without spaces")
    full_key = scope_of(key_id_of(api_key) or "") == "all"
    if route.checks_key and api_key and full_key and "Idempotency-Key" not in request.headers:
        # The handler checks the key inside its own Redis step (checked_caller): one round trip for
        # the key, its limit and the work. Should it fail before, the key is checked here and a
        # bad key or the limit answers first, as on any route.
        request[KEY_CHECK] = gatekeeper.key_check(api_key, remote)  # taken by gateway/routes/accepting.py
        try:
            return await handler(request)
        except GatewayError:
            if request.pop(KEY_CHECK, None) is not None:
                caller, allowance = await gatekeeper.check(api_key, remote)
                _within_limit(request, allowance)
                _known(caller, api_key)
            raise
    caller, allowance = await gatekeeper.check(api_key, remote)
    _within_limit(request, allowance)
    if keyless:
        return await handler(request)
    caller = _known(caller, api_key)
    _within_scope(caller, route)
    if route.access == "admin" and not caller.is_admin and not (caller.scope == "metrics" and route.path == "/metrics"):
        raise ForbiddenTenant(f"only the admin key may use {route.path}")
    request[PRINCIPAL] = caller
    return await handler(request)


def _within_scope(caller: Principal, route: Route) -> None:
    """A read key: GET routes (and /events, a GET) only; a metrics key: GET /metrics alone."""
    if caller.scope == "read" and route.method != "GET":
        raise InsufficientScope(f"this key may only read (scope read): {route.method} {route.path} is not a read")
    if caller.scope == "metrics" and route.path != "/metrics":
        raise InsufficientScope(f"this key may only read GET /metrics (scope metrics), not {route.path}")


def _within_limit(request: web.Request, allowance: Allowance) -> None:
    """Answers carry the rate limit's headers; over it, 429."""
    request[EXTRA_HEADERS].update(allowance.headers())
    if not allowance.allowed:
        raise RateLimited(
            f"more than {allowance.limit} requests a minute; retry in {allowance.reset_in} s",
            headers={"Retry-After": str(allowance.reset_in)},
        )


def _known(caller: Principal | None, api_key: str) -> Principal:
    if caller is None:
        raise InvalidApiKey(
            "missing apikey header (or Authorization: Bearer)" if not api_key else "unknown or revoked API key"
        )
    return caller


def checked_caller(request: web.Request, check: KeyCheck, tenant: str, count: int) -> Principal:
    """The caller, from what the route's step found for `check` (core/lua/authorize.lua): 429 over
    the limit, 401 for an unknown key, as the middleware answers."""
    caller, allowance = services(request).gatekeeper.verdict(check, tenant, count)
    _within_limit(request, allowance)
    request[PRINCIPAL] = found = _known(caller, "-")
    return found


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or key is None or PRINCIPAL not in request:
        return await handler(request)
    if not _TOKEN.fullmatch(key) or len(key) > IDEMPOTENCY_KEY_MAX:
        raise ValidationFailed.at(
            ["headers", "Idempotency-Key"], f"must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters, no spaces"
        )
    store = services(request).idempotency
    scope = request[PRINCIPAL].key_id
    print_ = fingerprint(request.method, request.path, await request.read())
    stored = await store.begin(scope, key, print_)
    if stored is not None:
        replay = (
            web.Response(status=stored.status, text=stored.body, content_type="application/json")
            if stored.body
            else web.Response(status=stored.status)
        )
        replay.headers["Idempotent-Replayed"] = "true"
        return replay
    try:
        response = await handler(request)
    except BaseException:
        await store.release(scope, key)
        raise
    if isinstance(response, web.Response) and response.status < 400:
        await store.finish(scope, key, print_, StoredAnswer(status=response.status, body=response.text or ""))
    else:
        await store.release(scope, key)
    return response
