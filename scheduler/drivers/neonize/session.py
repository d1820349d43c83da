"""`NeonizeSession`: one WhatsApp number on one neonize `NewAClient`, inside its session host.

A session runs in a child process of the worker (`child`), one per session and connect cycle: when
the session ends (logged out, banned, QR codes run out, a run that broke) it says so through
`on_ended` and its process is ended, with whatever the Go side still held.

Facts about neonize 0.5.2 this module is built around (see DESIGN.md, "WhatsApp drivers"):

- `NewAClient(name)`: `name` is the session database: one sqlite file per instance, or a
  PostgreSQL URL (`stores`). Its `uuid` is the key of the Go-side client table.
- `connect()` returns a task running the blocking Go `Neonize()` call in a thread of the loop's
  default executor for the whole life of the client.
- QR codes come through the `qr` callback as raw bytes. When they run out whatsmeow reports the
  login event `timeout` through the login-status callback (which neonize ignores; `_Client` hears
  it) and the Go call never returns: the session reports `QrExpired` and its process is ended. A
  linking attempt that produces no QR at all ends by its own deadline the same way.
- Exceptions raised inside event handlers vanish: every handler is wrapped by `guard`, and runs
  under one lock taken in arrival order, so the sink sees events in the order WhatsApp sent them.
- `get_me()` on a client that is not running dereferences a nil pointer in Go and kills the
  process; this module never calls it. The own phone number is read from the session store.
- `IsOnWhatsApp` wants the number with its `+` and answers the account's JID, which is where the
  message goes (it differs from `<digits>@s.whatsapp.net` for some countries). An invalid number
  answers "Function returned nothing.". Answers are cached per recipient.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scheduler.drivers.base import (
    Disconnected,
    DriverError,
    DriverEvent,
    EventSink,
    Inbound,
    OutcomeUnknownError,
    OutgoingMessage,
    QrCode,
    QrExpired,
    SendResult,
    TransientDriverError,
)
from scheduler.drivers.neonize import builders
from scheduler.drivers.neonize.client import Handler, _client_class, guard
from scheduler.drivers.neonize.completion import InboundCompletion
from scheduler.drivers.neonize.conversation_actions import ConversationActions
from scheduler.drivers.neonize.history import map_history
from scheduler.drivers.neonize.loading import _import, _pb
from scheduler.drivers.neonize.mapping import (
    _enum_name,
    classify_error,
    digits,
    format_pairing_code,
    from_epoch,
    is_final,
    map_event,
)
from scheduler.drivers.neonize.notices import map_call, map_group_info, map_joined
from scheduler.drivers.neonize.stores import SessionStore, SqliteStore

log = logging.getLogger(__name__)

# whatsmeow's QR rotation: the first code lives 60 s, the next ones 20 s each.
QR_FIRST_TTL = 60.0
QR_NEXT_TTL = 20.0
# Slack after a code's expiry before declaring the QR cycle over, should whatsmeow's own `timeout`
# login event not come.
QR_GRACE = 5.0
# How long pair_phone waits for the first QR of the cycle (PairPhone fails before it).
PAIR_QR_WAIT = 30.0
# whatsmeow waits up to 75 s for the server's ack of a send; past our limit the outcome is unknown.
SEND_TIMEOUT = 60.0
MEDIA_TIMEOUT = 120.0
LOOKUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
MAX_MEDIA_BYTES = 100 * 1024 * 1024  # inbound media larger than this is not downloaded
CALLS_KEPT = 1000

Ended = Callable[[bool], Coroutine[Any, Any, None]]


class NeonizeSession(ConversationActions, InboundCompletion):
    """One WhatsApp number on top of one `NewAClient` per connect cycle."""

    def __init__(
        self,
        instance_name: str,
        store: Path | SessionStore,
        sink: EventSink,
        *,
        proxy: str | None = None,
        qr_first_ttl: float = QR_FIRST_TTL,
        qr_next_ttl: float = QR_NEXT_TTL,
        qr_grace: float = QR_GRACE,
        pair_qr_wait: float = PAIR_QR_WAIT,
        send_timeout: float = SEND_TIMEOUT,
        media_timeout: float = MEDIA_TIMEOUT,
        lookup_timeout: float = LOOKUP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        max_media_bytes: int = MAX_MEDIA_BYTES,
        on_close: Callable[[NeonizeSession], None] | None = None,
        on_ended: Ended | None = None,
    ) -> None:
        self.instance_name = instance_name
        self.store: SessionStore = SqliteStore(store) if isinstance(store, Path) else store
        self._sink = sink
        self._proxy = proxy
        self._qr_first_ttl = qr_first_ttl
        self._qr_next_ttl = qr_next_ttl
        self._qr_grace = qr_grace
        self._pair_qr_wait = pair_qr_wait
        self._send_timeout = send_timeout
        self._media_timeout = media_timeout
        self._lookup_timeout = lookup_timeout
        self._stop_timeout = stop_timeout
        self._max_media_bytes = max_media_bytes
        self._on_ended = on_ended
        self._client: Any = None
        self._cycle: str | None = None  # tags the store's resources of the current client
        self._task: asyncio.Future[Any] | None = None
        self._connected = False
        self._closing = False
        self._own_phone: str | None = None
        self._qr_count = 0
        self._qr_seen = asyncio.Event()
        self._qr_timer: asyncio.TimerHandle | None = None
        self.qr_deadline: float | None = None  # loop time at which the QR cycle counts as expired
        self._order = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._recipients: dict[str, tuple[Any, float]] = {}  # digits -> (JID or None, valid until)
        # (group id, message id) -> the sender's JID, of the latest group messages received: marking
        # a group message read names its sender.
        self._group_senders: dict[tuple[str, str], Any] = {}
        self._callers: dict[str, Any] = {}  # call id -> the caller's JID, of the latest calls offered

    @property
    def linked(self) -> bool:
        # Blocks for one query with a PostgreSQL store; raises TransientDriverError if unreachable.
        return self.store.has_device()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- lifecycle

    async def connect(self) -> None:
        if self._task is not None and not self._task.done():
            return
        await self._shutdown_client()
        self._closing = False
        self._qr_count = 0
        self._qr_seen = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self.store.prepare)
            linked = await asyncio.to_thread(self.store.has_device)
        except OSError as exc:
            raise DriverError(f"session store not usable: {exc}") from exc
        cycle = uuid.uuid4().hex
        client = self._new_client(cycle)
        client.login_status = lambda status: loop.call_soon_threadsafe(self._on_login_status, client, status)
        proxy = None
        if self._proxy:
            proxy = _import("neonize._binder").ProxySettings(proxy_address=self._proxy)
        self._client = client
        self._cycle = cycle
        try:
            task = await client.connect_with_proxy(proxy)
        except Exception as exc:
            self._client = None
            self._cycle = None
            raise classify_error(exc) from exc
        self._task = task
        task.add_done_callback(functools.partial(self._on_run_done, client))
        if not linked:
            # A linking attempt ends even if no QR ever comes (proxy that never answers, an outdated
            # client): otherwise its Go call would hold a thread and the store for good.
            self._arm_qr_timer(self._qr_first_ttl + self._qr_grace)

    async def close(self) -> None:
        self._closing = True
        await self._shutdown_client()
        for task in list(self._background):
            if task is not asyncio.current_task():
                task.cancel()

    async def logout(self, *, close: bool = True) -> None:
        """Unlink the device (when connected), then close the client; without `close` the caller
        ends the process instead (a host: `client.stop()` can block for many seconds)."""
        client = self._client
        try:
            if client is not None and self._connected:
                try:
                    await asyncio.wait_for(client.logout(), self._lookup_timeout)
                except Exception as exc:
                    raise classify_error(exc) from exc
            else:
                log.info("%s: not connected, logout only forgets the local store", self.instance_name)
        finally:
            if close:
                await self.close()

    # -- pairing and sending

    async def pair_phone(self, phone_number: str) -> str:
        phone = digits(phone_number)
        if not phone:
            raise DriverError("pairing needs a phone number in international digits")
        if self._connected:
            raise DriverError("session is already linked")
        client = self._client
        if client is None or self._task is None or self._task.done():
            raise TransientDriverError("not connected: call connect() before asking for a pairing code")
        try:
            await asyncio.wait_for(self._qr_seen.wait(), self._pair_qr_wait)
        except TimeoutError as exc:
            raise TransientDriverError("WhatsApp produced no QR yet; a pairing code cannot be requested") from exc
        try:
            code = await asyncio.wait_for(client.pair_code(phone), self._lookup_timeout)
        except Exception as exc:
            raise classify_error(exc) from exc
        return format_pairing_code(code)

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send to the recipient's account JID (looked up, or cached from `check_numbers`)."""
        client = self._require_client()
        jid = await self._chat(message.to)
        try:
            payload = await asyncio.wait_for(builders.build(client, message, self._own_phone), self._media_timeout)
        except TimeoutError as exc:
            raise TransientDriverError(f"preparing the {message.type} timed out; nothing was sent") from exc
        except Exception as exc:
            error = classify_error(exc)
            # Nothing is sent while building: whatever went wrong, the message did not leave.
            raise (TransientDriverError(str(error)) if isinstance(error, OutcomeUnknownError) else error) from exc
        try:
            response = await asyncio.wait_for(client.send_message(jid, payload), self._send_timeout)
        except Exception as exc:
            raise classify_error(exc, sending=True) from exc
        return SendResult(message_id=response.ID, sent_at=from_epoch(response.Timestamp))

    async def show_typing(self, to: str, typing: bool) -> None:
        client = self._require_client()
        enum = _import("neonize.utils.enum")
        state = enum.ChatPresence.CHAT_PRESENCE_COMPOSING if typing else enum.ChatPresence.CHAT_PRESENCE_PAUSED
        try:
            await asyncio.wait_for(
                client.send_chat_presence(await self._chat(to), state, enum.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT),
                self._lookup_timeout,
            )
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(f"showing typing failed: {exc}") from exc

    # -- conversation actions

    # -- group management

    # -- calls

    # -- the neonize client

    def _new_client(self, cycle: str | None = None) -> Any:
        cycle = cycle or uuid.uuid4().hex
        client = _client_class()(self.store.client_name(cycle), uuid=f"{self.instance_name}:{cycle}")
        pb = _pb()
        client.qr(guard(self._on_qr, "qr", self._order))
        handlers: tuple[tuple[type[Any], Handler, str], ...] = (
            (pb.PairStatus, self._on_pair_status, "pair status"),
            (pb.Connected, self._on_connected, "connected"),
            (pb.Message, self._on_event, "message"),
            (pb.Receipt, self._on_event, "receipt"),
            (pb.Disconnected, self._on_event, "disconnected"),
            (pb.LoggedOut, self._on_event, "logged out"),
            (pb.StreamReplaced, self._on_event, "stream replaced"),
            (pb.TemporaryBan, self._on_event, "temporary ban"),
            (pb.ConnectFailure, self._on_event, "connect failure"),
            (pb.ClientOutdated, self._on_event, "client outdated"),
            (pb.StreamError, self._on_event, "stream error"),
            (pb.HistorySync, self._on_history, "history sync"),
            (pb.CallOffer, self._on_call, "call offer"),
            (pb.GroupInfoEvent, self._on_group_info, "group info"),
            (pb.JoinedGroup, self._on_joined_group, "joined group"),
        )
        for event_type, handler, what in handlers:
            client.event(event_type)(guard(handler, what, self._order))
        return client

    async def _shutdown_client(self) -> None:
        client, task, cycle = self._client, self._task, self._cycle
        self._client = None
        self._task = None
        self._cycle = None
        self._connected = False
        self._cancel_qr_timer()
        if client is None:
            return
        try:
            # Stop = disconnect + forget the Go-side client + end the blocking Neonize() call.
            await asyncio.wait_for(client.stop(), self._stop_timeout)
        except Exception:
            log.warning("%s: stopping the neonize client failed", self.instance_name, exc_info=True)
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), self._stop_timeout)
            except TimeoutError:
                log.warning("%s: neonize connect thread still running after stop", self.instance_name)
            except Exception:
                pass  # reported by _on_run_done
        if cycle is not None:
            try:
                await asyncio.to_thread(self.store.release, cycle)
            except Exception:
                log.warning("%s: releasing the session store failed", self.instance_name, exc_info=True)

    def _on_run_done(self, client: Any, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if client is not self._client or self._closing:
            return
        # The Go call returned on its own: a connect that failed, or the shim's event loop giving up
        # on an event it could not encode. Either way nothing reaches us any more: end, and let the
        # parent connect again from the store.
        reason = f"connection failed: {exc}" if exc is not None else "the WhatsApp client stopped"
        log.warning("%s: neonize run ended: %s", self.instance_name, reason)
        self._spawn(self._end(Disconnected(reason=reason), reconnect=True))

    async def _end(self, event: DriverEvent | None, *, reconnect: bool) -> None:
        async with self._order:
            if self._closing:
                return
            self._closing = True
            await self._shutdown_client()
            if event is not None:
                await self._sink(event)
        if self._on_ended is not None:
            await self._on_ended(reconnect)

    # -- handlers (registered through `guard`)

    def _on_login_status(self, client: Any, status: str) -> None:
        if client is not self._client:
            return
        if status == "timeout":  # whatsmeow ran out of QR codes
            self._spawn(self._expire_qr())
        elif status != "success":
            log.warning("%s: linking ended: %s", self.instance_name, status)

    async def _on_qr(self, client: Any, data: bytes | str) -> None:
        if client is not self._client or self._closing:
            return
        code = data.decode() if isinstance(data, bytes) else data
        self._qr_count += 1
        ttl = self._qr_first_ttl if self._qr_count == 1 else self._qr_next_ttl
        self._arm_qr_timer(ttl + self._qr_grace)
        self._qr_seen.set()
        await self._sink(QrCode(code=code, expires_at=datetime.now(UTC) + timedelta(seconds=ttl)))

    async def _on_pair_status(self, client: Any, event: Any) -> None:
        if client is not self._client:
            return
        if _enum_name(event, "Status", "") == "SUCCESS":
            self._own_phone = digits(event.ID.User) or self._own_phone
            self._cancel_qr_timer()
        else:
            log.warning("%s: pairing failed: %s", self.instance_name, event.Error)

    async def _on_connected(self, client: Any, event: Any) -> None:
        if client is not self._client or self._closing:
            return
        self._cancel_qr_timer()
        self._connected = True
        phone = self._own_phone
        if not phone:
            try:
                phone = await asyncio.to_thread(self.store.phone)
            except DriverError as exc:
                log.warning("%s: reading the own number from the session store failed: %s", self.instance_name, exc)
        if not phone:
            log.warning("%s: connected but the store has no device JID", self.instance_name)
        self._own_phone = phone
        mapped = map_event(event, own_phone=phone or "")
        if mapped is not None:
            await self._sink(mapped)
        self._spawn(self._announce(client))

    async def _announce(self, client: Any) -> None:
        # Without a presence WhatsApp shows recipients no name and may hold back delivery receipts.
        try:
            presence = _import("neonize.utils.enum").Presence.AVAILABLE
            await asyncio.wait_for(client.send_presence(presence), self._lookup_timeout)
        except Exception as exc:
            log.info("%s: sending presence failed: %s", self.instance_name, exc)

    async def _on_event(self, client: Any, event: Any) -> None:
        if client is not self._client:
            return
        mapped = map_event(event, own_phone=self._own_phone or "")
        if mapped is None:
            return
        if isinstance(mapped, Inbound) and not mapped.from_me:
            if mapped.chat_id is not None:
                self._remember_sender(mapped.chat_id, mapped.message_id, event.Info.MessageSource.Sender)
            await self._sink(await self._complete(client, event, mapped))
            return
        if isinstance(mapped, Disconnected):
            self._connected = False
        if is_final(event, mapped):
            # whatsmeow does not reconnect after these: end the client (and with it this session's
            # process) before the parent can connect again.
            self._closing = True
            await self._shutdown_client()
            await self._sink(mapped)
            if self._on_ended is not None:
                self._spawn(self._on_ended(False))
            return
        await self._sink(mapped)

    async def _on_history(self, client: Any, event: Any) -> None:
        if client is self._client and event.HasField("Data"):
            await self._sink(map_history(event.Data))

    async def _on_call(self, client: Any, offer: Any) -> None:
        if client is not self._client:
            return
        call = map_call(offer)
        meta = offer.basicCallMeta
        # RejectCall wants the caller's JID exactly as the offer named it.
        self._callers[call.call_id] = meta.callCreator if meta.HasField("callCreator") else getattr(meta, "from")
        if len(self._callers) > CALLS_KEPT:
            del self._callers[next(iter(self._callers))]  # the oldest
        await self._sink(call)

    async def _on_group_info(self, client: Any, event: Any) -> None:
        if client is not self._client:
            return
        for change in map_group_info(event):
            await self._sink(change)

    async def _on_joined_group(self, client: Any, event: Any) -> None:
        if client is not self._client or not self._own_phone:
            return
        await self._sink(map_joined(event, self._own_phone))

    # -- inbound: what the mapping cannot know offline

    # -- QR deadline

    def _arm_qr_timer(self, delay: float) -> None:
        self._cancel_qr_timer()
        loop = asyncio.get_running_loop()
        self.qr_deadline = loop.time() + delay
        self._qr_timer = loop.call_later(delay, lambda: self._spawn(self._expire_qr()))

    def _cancel_qr_timer(self) -> None:
        if self._qr_timer is not None:
            self._qr_timer.cancel()
        self._qr_timer = None
        self.qr_deadline = None

    async def _expire_qr(self) -> None:
        self._cancel_qr_timer()
        if self._closing or self._connected or self._client is None:
            return
        await self._end(QrExpired(), reconnect=False)

    # -- plumbing
