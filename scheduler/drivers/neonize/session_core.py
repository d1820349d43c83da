"""What the parts of a `NeonizeSession` share: the client of the current connect cycle, the own
number, the deadlines, and the session's background tasks. Each part is a module of its own:
`lookups` (accounts and LIDs), `conversation_actions`, `completion` (inbound), and `session` (the
lifecycle, sending and neonize's events)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from scheduler.drivers.base import DriverError, OutcomeUnknownError, TransientDriverError
from scheduler.drivers.neonize.mapping import classify_error

log = logging.getLogger(__name__)

T = TypeVar("T")


def lookup_error(exc: BaseException) -> DriverError:
    """A failed query as our exception: it changed nothing, so "outcome unknown" means "try again"."""
    error = classify_error(exc)
    return TransientDriverError(str(error)) if isinstance(error, OutcomeUnknownError) else error


class SessionCore:
    instance_name: str
    _client: Any
    _connected: bool
    _own_phone: str | None
    _lookup_timeout: float
    _media_timeout: float
    _max_media_bytes: int
    _background: set[asyncio.Task[None]]

    async def _query(self, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self._lookup_timeout)
        except Exception as exc:
            raise lookup_error(exc) from exc

    def _require_client(self) -> Any:
        if self._client is None or not self._connected:
            raise TransientDriverError("not connected to WhatsApp")
        return self._client

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: neonize session task failed", self.instance_name, exc_info=task.exception())
