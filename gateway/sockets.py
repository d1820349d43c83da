"""The open `/events` WebSockets of one API process, by API key: at most a few per key, so one
key cannot hold the server's connections, and a count the HTTP server leaves out of its
connection limit (a socket is long-lived by design; a request is not)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from core.errors import RateLimited


class EventSockets:
    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._held: dict[str, int] = {}  # places taken per key id, from before the upgrade
        self._open: set[web.WebSocketResponse] = set()

    def __len__(self) -> int:
        return sum(self._held.values())

    def __iter__(self) -> Iterator[web.WebSocketResponse]:
        return iter(list(self._open))

    @contextmanager
    def place(self, key_id: str) -> Iterator[None]:
        """A place for one more socket of `key_id` while the block runs; 429 past the cap."""
        held = self._held.get(key_id, 0)
        if held >= self.per_key:
            raise RateLimited(
                f"this API key already has {held} open /events sockets (the limit); close one first",
                headers={"Retry-After": "1"},
            )
        self._held[key_id] = held + 1
        try:
            yield
        finally:
            self._held[key_id] -= 1
            if not self._held[key_id]:
                del self._held[key_id]

    @contextmanager
    def opened(self, socket: web.WebSocketResponse) -> Iterator[None]:
        """`socket` is open (and told goodbye on shutdown) while the block runs."""
        self._open.add(socket)
        try:
            yield
        finally:
            self._open.discard(socket)
