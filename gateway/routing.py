"""The route table's building block: one `Route` drives the aiohttp router, access control,
body validation and the OpenAPI document, so none of them can drift from the others."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from gateway.validation import check_path, parse_body

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
    query: type[BaseModel] | None = None  # documents the query string; the handler validates it
    many: bool = False  # the response is a list of `response`
    # What a success answer carries when it is not a JSON `response`: media bytes of their own
    # content type ("binary"), or plain text such as Prometheus' format ("text").
    answers: Literal["json", "binary", "text"] = "json"
    status: int = 200
    # Another success the route can answer, with its body (DELETE /message/{id}: 202 once sent).
    also: tuple[int, type[BaseModel]] | None = None
    access: Access = "key"
    tag: str = "gateway"
    in_docs: bool = True
    # The key may also come as `?apikey=`: for WebSockets, which browsers open without headers.
    key_in_query: bool = False
    # The handler checks the key in its own Redis step (accept_sends, gateway/routes/accepting.py):
    # the send routes check it, count it and accept the message in one round trip.
    checks_key: bool = False

    def endpoint(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The aiohttp handler: parses and validates the body, then calls ours with it."""
        handler, body = self.handler, self.body

        async def endpoint(request: web.Request) -> web.StreamResponse:
            check_path(request.match_info)
            if body is None:
                return await handler(request)
            return await handler(request, await parse_body(request, body))

        endpoint.route = self  # type: ignore[attr-defined]  # read by the auth middleware
        return endpoint


def route_of(handler: Any) -> Route | None:
    return getattr(handler, "route", None)


def router_paths(routes: Sequence[Route]) -> dict[str, str]:
    """Each path as aiohttp should match it: a `{param}` segment does not match a fixed segment of
    another route at the same place (`/instance/{name}` is not `/instance/create`), so a method
    of one never shows in the other's `Allow` header or runs in its place."""
    fixed: dict[tuple[str, ...], set[str]] = {}
    for route in routes:
        parts = route.path.split("/")
        for depth, part in enumerate(parts):
            if not part.startswith("{"):
                fixed.setdefault(tuple(parts[:depth]), set()).add(part)
    paths = {}
    for route in routes:
        original = route.path.split("/")
        parts = list(original)
        for depth, part in enumerate(original):
            # Siblings by the path as written: an earlier segment rewritten below must not hide them.
            siblings = sorted(fixed.get(tuple(original[:depth]), ()))
            if part.startswith("{") and siblings:
                excluded = "|".join(re.escape(sibling) for sibling in siblings)
                parts[depth] = f"{{{part[1:-1]}:(?!(?:{excluded})(?:/|\\Z))[^/]+}}"
        paths[route.path] = "/".join(parts)
    return paths
