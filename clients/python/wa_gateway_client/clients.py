"""The two clients: `AsyncClient` (aiohttp) and `Client` (blocking, standard library only). Both
have one method per route (`routes.py`), retry what is safe to retry (`calls.Retry`), and raise
`ClientError`s: `GatewayError`s for error answers, `TransportError`s when there is no answer."""

from __future__ import annotations

import asyncio
import http.client
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp

from wa_gateway_client.calls import Call, Retry
from wa_gateway_client.errors import ClientError, GatewayConnectionError, GatewayTimeoutError
from wa_gateway_client.models import Chat, StoredMessage
from wa_gateway_client.routes import Routes

T = TypeVar("T")


class AsyncClient(Routes):
    """`async with AsyncClient("http://127.0.0.1:8080", api_key) as gw: await gw.send_text(...)`.

    `timeout` bounds each try, in seconds; `retries` and `backoff` shape the retries of idempotent
    calls (`retries=0`: none). Pass `session` to share an aiohttp session you manage (it is then
    not closed here)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retry = Retry(retries, backoff)
        self._session = session
        self._owns_session = session is None

    async def perform(self, method: str, target: str, call: Call[T]) -> T:
        """Run one route's call: the answer, parsed, after as many tries as `retry` allows."""
        tried = 0
        while True:
            try:
                return await self._try(method, target, call)
            except ClientError as error:
                tried += 1
                delay = self.retry.delay(method, call, tried, error)
                if delay is None:
                    raise
            await asyncio.sleep(delay)

    async def _try(self, method: str, target: str, call: Call[T]) -> T:
        url = self.base_url + target
        try:
            async with self._open_session().request(
                method, url, data=call.payload(), headers=call.headers(self.api_key)
            ) as response:
                raw = await response.read()
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors (some also ClientErrors)
            raise GatewayTimeoutError(method, url, f"no answer within {self.timeout.total} s") from None
        except aiohttp.ClientError as exc:
            raise GatewayConnectionError(method, url, str(exc) or type(exc).__name__) from exc
        return call.answer(response.status, response.headers, raw)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def events(self, instance: str | None = None, since: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """`GET /events`: the live events of the key's tenant (all, for the admin key), as the
        webhook envelopes; `since` resumes after an event id a previous stream carried."""
        query = {name: value for name, value in (("instance", instance), ("since", since)) if value is not None}
        headers = {"apikey": self.api_key} if self.api_key else {}
        url = f"{self.base_url}/events"
        try:
            socket = await self._open_session().ws_connect(url, params=query, headers=headers)
        except aiohttp.ClientError as exc:
            raise GatewayConnectionError("GET", url, str(exc) or type(exc).__name__) from exc
        async with socket:
            async for frame in socket:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                yield frame.json()

    async def iter_chats(self, name: str, *, page_size: int | None = None) -> AsyncIterator[Chat]:
        """Every chat of the instance, the most recent first, fetched a page at a time."""
        page = await self.list_chats(name, limit=page_size)
        while True:
            for chat in page.items:
                yield chat
            if page.next is None:
                return
            page = await self.list_chats(name, limit=page_size, cursor=page.next)

    async def iter_chat_messages(
        self, name: str, chat_id: str, *, page_size: int | None = None
    ) -> AsyncIterator[StoredMessage]:
        """Every stored message of a chat, newest first, fetched a page at a time; messages that
        arrive meanwhile are newer than the walk and are not repeated in it."""
        page = await self.list_chat_messages(name, chat_id, limit=page_size)
        while True:
            for message in page.items:
                yield message
            if page.next is None:
                return
            page = await self.list_chat_messages(name, chat_id, limit=page_size, cursor=page.next)

    async def close(self) -> None:
        """Close the session (unless it was passed in)."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Client(Routes):
    """The same methods, blocking: `Client("http://127.0.0.1:8080", api_key).send_text(...)`.

    One connection is kept open between calls (HTTP keep-alive), so a client serves one thread at
    a time. `timeout`, `retries` and `backoff` are as for `AsyncClient`. Proxies from the
    environment are not used (as aiohttp does by default)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self._connection: http.client.HTTPConnection | None = None
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// address, not {base_url!r}")
        self._https = parts.scheme == "https"
        self._host, self._port, self._prefix = parts.hostname, parts.port, parts.path
        self.api_key = api_key
        self.timeout = timeout
        self.retry = Retry(retries, backoff)

    def perform(self, method: str, target: str, call: Call[T]) -> T:
        """Run one route's call: the answer, parsed, after as many tries as `retry` allows."""
        tried = 0
        while True:
            try:
                return self._try(method, target, call)
            except ClientError as error:
                tried += 1
                delay = self.retry.delay(method, call, tried, error)
                if delay is None:
                    raise
            time.sleep(delay)

    def _try(self, method: str, target: str, call: Call[T]) -> T:
        kept = self._connection is not None
        connection = self._connection or self._connect()
        url = self.base_url + target
        try:
            connection.request(method, self._prefix + target, body=call.payload(), headers=call.headers(self.api_key))
            response = connection.getresponse()
            raw = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            if kept:  # the server closed the kept connection while it idled: once more, on a new one
                return self._try(method, target, call)
            raise GatewayConnectionError(method, url, str(exc) or type(exc).__name__) from exc
        except TimeoutError:
            self.close()
            raise GatewayTimeoutError(method, url, f"no answer within {self.timeout} s") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise GatewayConnectionError(method, url, str(exc) or type(exc).__name__) from exc
        if response.will_close:
            self.close()
        return call.answer(response.status, dict(response.headers.items()), raw)

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        self._connection = kind(self._host, self._port, timeout=self.timeout)
        return self._connection

    def iter_chats(self, name: str, *, page_size: int | None = None) -> Iterator[Chat]:
        """Every chat of the instance, the most recent first, fetched a page at a time."""
        cursor: str | None = None
        while True:
            page = self.list_chats(name, limit=page_size, cursor=cursor)
            yield from page.items
            if (cursor := page.next) is None:
                return

    def iter_chat_messages(self, name: str, chat_id: str, *, page_size: int | None = None) -> Iterator[StoredMessage]:
        """Every stored message of a chat, newest first, fetched a page at a time."""
        cursor: str | None = None
        while True:
            page = self.list_chat_messages(name, chat_id, limit=page_size, cursor=cursor)
            yield from page.items
            if (cursor := page.next) is None:
                return

    def close(self) -> None:
        """Close the kept connection (the next call opens another)."""
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()  # a client used without `with` still lets its connection go
