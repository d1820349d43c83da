"""The HTTP server around the app: slow-client timeouts, a connection limit, and protocol errors
(what aiohttp's parser refuses before any route runs) answered in the API's JSON error shape.

`GatewayRunner(app, settings)` replaces `web.AppRunner`. aiohttp answers a request it cannot parse
(a NUL or bare CR in a header, obsolete line folding, an oversized header, a bad Content-Length,
Content-Length with Transfer-Encoding, an unknown method, a huge URL) from its connection handler,
outside every middleware; `GatewayProtocol.handle_error` gives those answers our shape and a
request id, and logs them as warnings without the client's bytes. A request's headers must
arrive within `http_header_timeout` of the connection opening or of the previous answer (aiohttp's
keep-alive timer, which already runs from the first byte); the body deadline is the
`body_deadline_middleware`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sized
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from config import Settings
from core.errors import GatewayError, Issue, ValidationFailed
from gateway.errors import HttpError
from gateway.middleware import error_response, new_request_id
from gateway.state import SOCKETS

log = structlog.get_logger(__name__)

MESSAGE_MAX = 200  # characters of the parser's message echoed back (it may quote the bad line)


def protocol_error(status: int, exc: BaseException | None) -> GatewayError:
    if status == 400 and isinstance(exc, HttpProcessingError):
        first_line = (exc.message or type(exc).__name__).strip().splitlines()[0]
        text = first_line if len(first_line) <= MESSAGE_MAX else first_line[:MESSAGE_MAX] + "..."
        return ValidationFailed([Issue((), f"the request is not valid HTTP/1.1: {text}")])
    if status == 400:
        return ValidationFailed([Issue((), "the request is not valid HTTP/1.1")])
    if status == 504:
        return HttpError(504, "timeout", "the request took too long to handle; retry shortly")
    return GatewayError("internal error; quote the requestId when reporting it")


class GatewayProtocol(RequestHandler):
    def __init__(self, manager: GatewayServer, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.max_connections = max_connections
        self.sockets = manager.sockets

    def connection_made(self, transport: Any) -> None:
        # /events sockets have their own cap per key (gateway/sockets.py) and do not count here.
        busy = len(self._manager.connections if self._manager else ()) - len(self.sockets)
        if busy >= self.max_connections:
            log.warning("http.connection_refused", reason="too many connections", limit=self.max_connections)
            transport.write(_too_busy())
            transport.close()
            return
        super().connection_made(transport)

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        error = protocol_error(status, exc)
        request_id = new_request_id()
        fields = {"status": status, "error": type(exc).__name__ if exc else None, "request_id": request_id}
        if isinstance(exc, ConnectionError):
            log.info("http.client_gone", **fields)
        elif status >= 500:
            log.error("http.request_failed", **fields, exc_info=exc)
        else:  # the client's fault; its bytes (maybe an apikey) stay out of the log
            log.warning("http.bad_request", **fields)
        response = error_response(error, request_id)
        response.headers["x-request-id"] = request_id
        response.force_close()
        return response


def _too_busy() -> bytes:
    """The whole answer to a connection over the limit, written before any request is read."""
    request_id = new_request_id()
    error = {"code": "unavailable", "message": "too many open connections; retry shortly"}
    body = json.dumps({"error": error, "requestId": request_id}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nx-request-id: {request_id}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class GatewayServer(web.Server):
    def __init__(self, *args: Any, max_connections: int, sockets: Sized, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.sockets = sockets

    def __call__(self) -> RequestHandler:
        return GatewayProtocol(self, loop=self._loop, max_connections=self.max_connections, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """`web.AppRunner` with our protocol handler and the HTTP limits from `settings`."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=settings.http_header_timeout, **kwargs)
        self.max_connections = settings.http_max_connections

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the app's startup and freezes it
        return GatewayServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            max_connections=self.max_connections,
            sockets=self.app[SOCKETS],
            **self._kwargs,
        )
