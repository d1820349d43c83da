"""The route table's building block: one `Route` drives the aiohttp router, access control,
body validation and the OpenAPI document, so none of them can drift from the others."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from gateway.validation import parse_body

# "signed": a key, or instead a signed link (`?sig=`) that the handler checks.
Access = Literal["public", "key", "admin", "signed"]
Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    many: bool = False  # the response is a list of `response`
    binary: bool = False  # the response is bytes of their own content type (media), not JSON
    status: int = 200
    access: Access = "key"
    tag: str = "gateway"
    in_docs: bool = True

    def endpoint(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The aiohttp handler: parses and validates the body, then calls ours with it."""
        handler, body = self.handler, self.body

        async def endpoint(request: web.Request) -> web.StreamResponse:
            if body is None:
                return await handler(request)
            return await handler(request, await parse_body(request, body))

        endpoint.route = self  # type: ignore[attr-defined]  # read by the auth middleware
        return endpoint


def route_of(handler: Any) -> Route | None:
    return getattr(handler, "route", None)
