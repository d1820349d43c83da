"""The two clients: `AsyncClient` (aiohttp) and `Client` (blocking, standard library only). Both
have one method per route (`routes.py`) and raise `GatewayError`s for error answers."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self, TypeVar

import aiohttp

from wa_gateway_client.calls import Call
from wa_gateway_client.models import Chat, StoredMessage
from wa_gateway_client.routes import Routes

T = TypeVar("T")


class AsyncClient(Routes):
    """`async with AsyncClient("http://127.0.0.1:8080", api_key) as gw: await gw.send_text(...)`.

    Pass `session` to share an aiohttp session you manage (it is then not closed here)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    async def perform(self, method: str, target: str, call: Call[T]) -> T:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        async with self._session.request(
            method, self.base_url + target, data=call.payload(), headers=call.headers(self.api_key)
        ) as response:
            return call.answer(response.status, response.headers, await response.read())

    async def events(self, instance: str | None = None, since: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """`GET /events`: the live events of the key's tenant (all, for the admin key), as the
        webhook envelopes; `since` resumes after an event id a previous stream carried."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        query = {name: value for name, value in (("instance", instance), ("since", since)) if value is not None}
        headers = {"apikey": self.api_key} if self.api_key else {}
        async with self._session.ws_connect(f"{self.base_url}/events", params=query, headers=headers) as socket:
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
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Client(Routes):
    """The same methods, blocking: `Client("http://127.0.0.1:8080", api_key).send_text(...)`.
    Proxies from the environment are not used (as aiohttp does by default)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def perform(self, method: str, target: str, call: Call[T]) -> T:
        request = urllib.request.Request(
            self.base_url + target, data=call.payload(), headers=call.headers(self.api_key), method=method
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return call.answer(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return call.answer(error.code, dict(error.headers.items()), error.read())

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
        """Nothing to release (each call uses its own connection); here for symmetry."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
