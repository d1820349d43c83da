"""How one route becomes a method of both clients: an `Operation` knows the route's method and
path template, and its builder turns the method's arguments into a `Call` (path values, query,
body, how to read the answer). The async client awaits it with aiohttp, the sync one runs it
with the standard library; each route is written once, in `routes.py`, and typed for both."""

from __future__ import annotations

import functools
import inspect
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload
from urllib.parse import quote, urlencode

from wa_gateway_client.errors import ClientError, GatewayError, RateLimitedError, TransportError, error_from
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


def new_idempotency_key() -> str:
    """A key for one send: retrying it (here, or by the caller with this key) cannot send twice."""
    return f"wgc-{uuid.uuid4().hex}"


# Answers worth another try: rate limited, or a gateway (or proxy before it) not ready.
RETRY_STATUSES = frozenset({429, 503, 504})
# Retrying these methods cannot do a thing twice; a POST only when it carries an Idempotency-Key.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT"})
MAX_DELAY = 30.0


@dataclass(frozen=True)
class Retry:
    """How a client retries: up to `retries` more tries, waiting `backoff` seconds, doubled each
    time (with jitter), or what a 429's Retry-After asks, capped at MAX_DELAY."""

    retries: int = 3
    backoff: float = 0.5

    def delay(self, method: str, call: Call[Any], tried: int, error: ClientError) -> float | None:
        """Seconds to wait before trying `call` again after its `tried`-th failure, or None to give up."""
        if tried > self.retries or not (method in IDEMPOTENT_METHODS or call.idempotency_key):
            return None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(error.retry_after, MAX_DELAY)
        if isinstance(error, GatewayError) and error.status not in RETRY_STATUSES:
            return None
        if not isinstance(error, GatewayError | TransportError):
            return None
        return min(self.backoff * 2.0 ** (tried - 1), MAX_DELAY) * random.uniform(0.5, 1.0)


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


def _answer_type(annotation: Any, awaited: bool) -> Any:
    """`Call[X]` (a string: annotations are postponed) as what the bound method gives: X, or
    Awaitable[X] for the async client."""
    if not (isinstance(annotation, str) and annotation.startswith("Call[")):
        return inspect.Signature.empty
    inner = annotation[len("Call[") : -1]
    return f"Awaitable[{inner}]" if awaited else inner


class Operation(Generic[P, T]):
    def __init__(self, method: str, template: str, build: Callable[P, Call[T]]) -> None:
        self.method = method
        self.template = template
        self.build = build
        self.__doc__ = build.__doc__
        self.signature = inspect.signature(build)

    @overload
    def __get__(self, client: None, owner: type) -> Self: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __get__(self, client: Client, owner: type) -> Callable[P, T]: ...
    def __get__(self, client: Any, owner: type) -> Any:
        if client is None:
            return self

        @functools.wraps(self.build)
        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            call = self.build(*args, **kwargs)
            return client.perform(self.method, call.target(self.template), call)

        # help() and IDEs show the route's own arguments and what the call returns.
        awaited = inspect.iscoroutinefunction(client.perform)
        bound.__signature__ = self.signature.replace(  # type: ignore[attr-defined]
            return_annotation=_answer_type(self.signature.return_annotation, awaited)
        )
        return bound


def operation(method: str, template: str) -> Callable[[Callable[P, Call[T]]], Operation[P, T]]:
    def wrap(build: Callable[P, Call[T]]) -> Operation[P, T]:
        return Operation(method, template, build)

    return wrap
