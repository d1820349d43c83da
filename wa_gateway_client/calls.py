"""How one route becomes a method of both clients: an `Operation` knows the route's method and
path template, and its builder turns the method's arguments into a `Call` (path values, query,
body, how to read the answer). The async client awaits it with aiohttp, the sync one runs it
with the standard library; each route is written once, in `routes.py`, and typed for both."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload
from urllib.parse import quote, urlencode

from wa_gateway_client.errors import error_from
from wa_gateway_client.models import camel

if TYPE_CHECKING:
    from wa_gateway_client.clients import AsyncClient, Client

P = ParamSpec("P")
T = TypeVar("T")


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body from snake_case arguments: camelCase keys, arguments left at None omitted."""
    return {camel(name): value for name, value in fields.items() if value is not None}


def nothing(_: Any) -> None:
    return None


@dataclass(frozen=True)
class Call(Generic[T]):
    parse: Callable[[Any], T]
    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    text: bool = False  # the answer is plain text (Prometheus' format), handed to `parse` as a str
    binary: bool = False  # the answer is bytes (inbound media), handed to `parse` as they came

    def target(self, template: str) -> str:
        path = template.format(**{name: quote(value, safe="") for name, value in self.path.items()})
        query = {name: value for name, value in self.query.items() if value is not None}
        return f"{path}?{urlencode(query)}" if query else path

    def payload(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode()

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Accept": "text/plain" if self.text else "*/*" if self.binary else "application/json"}
        if api_key:
            headers["apikey"] = api_key
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        if self.idempotency_key:
            headers["Idempotency-Key"] = self.idempotency_key
        return headers

    def answer(self, status: int, headers: Mapping[str, str], raw: bytes) -> T:
        """The parsed answer, or the typed error the gateway's error body describes."""
        if self.binary and status < 400:
            return self.parse(raw)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if status >= 400:
            raise error_from(status, data, headers)
        return self.parse(raw.decode() if self.text else data)


class Operation(Generic[P, T]):
    def __init__(self, method: str, template: str, build: Callable[P, Call[T]]) -> None:
        self.method = method
        self.template = template
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> Self: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __get__(self, client: Client, owner: type) -> Callable[P, T]: ...
    def __get__(self, client: Any, owner: type) -> Any:
        if client is None:
            return self

        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            call = self.build(*args, **kwargs)
            return client.perform(self.method, call.target(self.template), call)

        return bound


def operation(method: str, template: str) -> Callable[[Callable[P, Call[T]]], Operation[P, T]]:
    def wrap(build: Callable[P, Call[T]]) -> Operation[P, T]:
        return Operation(method, template, build)

    return wrap
