"""neonize's client as the sessions use it: a `NewAClient` that hears whatsmeow's login events and
pairs with a proper display name, and `guard` for the handlers registered on it."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from scheduler.drivers.base import DriverError
from scheduler.drivers.neonize.loading import _import, _pb

log = logging.getLogger(__name__)

# whatsmeow documents the pairing display name as "Browser (OS)".
PAIRING_DISPLAY_NAME = "Chrome (Linux)"
_CHROME = 1  # PairClientType CHROME

Handler = Callable[..., Awaitable[None]]


def guard(handler: Handler, what: str, order: asyncio.Lock | None = None) -> Callable[..., Coroutine[Any, Any, None]]:
    """Wrap an event handler so its exceptions are logged instead of vanishing inside neonize, and
    (with `order`) so handlers run one at a time in the order neonize scheduled them."""

    @functools.wraps(handler)
    async def guarded(*args: Any) -> None:
        try:
            if order is None:
                await handler(*args)
                return
            async with order:
                await handler(*args)
        except Exception:
            log.exception("neonize %s handler failed", what)

    return guarded


@functools.cache
def _client_class() -> type[Any]:
    base = _import("neonize.aioze.client").NewAClient

    class Client(base):  # type: ignore[valid-type, misc]
        """A `NewAClient` that hears whatsmeow's login events (`timeout`, `success`, `err-...`)."""

        login_status: Callable[[str], None] | None = None

        def _NewAClient__onLoginStatus(self, _uuid: int, status: int) -> None:
            if self.login_status is not None:
                self.login_status(ctypes.string_at(status).decode(errors="replace"))

        async def pair_code(self, phone: str) -> str:
            """`PairPhone` with the display name in whatsmeow's documented "Browser (OS)" form
            (neonize's own wrapper sends "FIREFOX (LINUX)")."""
            pb = _pb()
            params = pb.PairPhoneParams(
                phone=phone, clientDisplayName=PAIRING_DISPLAY_NAME, clientType=_CHROME, showPushNotification=True
            ).SerializeToString()
            gocode = _import("neonize._binder").gocode
            raw = await asyncio.to_thread(gocode.PairPhone, self.uuid, params, len(params))
            answer = pb.PairPhoneReturnFunction.FromString(raw)
            if answer.Error:
                raise DriverError(f"pairing failed: {answer.Error}")
            return str(answer.Code)

    return Client
