"""`NeonizeDriver`: hands out `HostedSession`s, each running in session hosts (child processes).

The worker never loads neonize itself. Each session's client lives in a child process started for
one connect cycle (`child`): a Go abort, a deadlock or a leak takes down that child only. The parent
notices at once (the child's socket closes and its sentinel fires), tells the sink the session
disconnected, and if the session is linked starts a new child that reconnects from the store, with
a growing pause between attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import re
import signal
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scheduler.drivers.base import (
    Connected,
    Disconnected,
    DriverError,
    DriverEvent,
    EventSink,
    Group,
    GroupChange,
    OutcomeUnknownError,
    OutgoingMessage,
    ParticipantAction,
    ParticipantResult,
    PresenceState,
    Profile,
    SendResult,
    TransientDriverError,
)
from scheduler.drivers.neonize import wire
from scheduler.drivers.neonize.child import HostSpec
from scheduler.drivers.neonize.session import (
    LOOKUP_TIMEOUT,
    MEDIA_TIMEOUT,
    PAIR_QR_WAIT,
    SEND_TIMEOUT,
    STOP_TIMEOUT,
)
from scheduler.drivers.neonize.stores import PostgresStores, SessionStore, SqliteStore
from scheduler.drivers.neonize.zygote import Zygote

log = logging.getLogger(__name__)

_INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# Pauses before reconnecting a linked session whose host died or whose run broke, by attempt.
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# Beyond the child's own deadlines: a call still unanswered after them means the child is stuck.
CALL_MARGIN = 10.0
CONNECT_TIMEOUT = 60.0
# How long a session host gets to close its client (a clean websocket goodbye) before it is killed.
HOST_GRACE = 3.0


class SessionProcess:
    """One session host: the child process (watched through a pidfd) and the socket to it."""

    def __init__(self, pid: int, pidfd: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self.pid = pid
        self._pidfd = pidfd
        self._reader = reader
        self._writer = writer
        self._calls: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self.ending = False
        self.killed = False
        self.exited = loop.create_future()
        self._dead = loop.create_future()
        loop.add_reader(pidfd, self._on_dead)
        self.on_event: Callable[[DriverEvent], None] = lambda event: None
        self.on_ended: Callable[[bool], None] = lambda reconnect: None
        self.on_exit: Callable[[str], None] = lambda why: None
        self._reading = loop.create_task(self._read())

    @classmethod
    async def start(cls, zygote: Zygote, spec: HostSpec) -> SessionProcess:
        ours, theirs = socket.socketpair()
        try:
            try:
                pid = await asyncio.to_thread(zygote.spawn, spec, theirs)  # a round trip: off the loop
                pidfd = os.pidfd_open(pid)
            finally:
                theirs.close()
            reader, writer = await asyncio.open_connection(sock=ours)
        except OSError as exc:
            ours.close()
            raise TransientDriverError(f"could not start a session host: {exc}") from exc
        return cls(pid, pidfd, reader, writer)

    async def call(self, method: str, *args: Any, timeout: float) -> Any:
        if self.exited.done():
            raise TransientDriverError("the session host has ended")
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = (method, future)
        try:
            self._writer.write(wire.encode(wire.Call(call_id, method, args)))
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout)
        except ConnectionError as exc:
            raise TransientDriverError("the session host has ended") from exc
        finally:
            self._calls.pop(call_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # failed by _reap while we were still writing: already told

    async def end(self, timeout: float) -> None:
        """Ask the child to close its client, then end it whatever it does."""
        self.ending = True
        if not self.exited.done():
            with contextlib.suppress(DriverError, TimeoutError):
                await self.call("close", timeout=timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._dead), timeout)
        self.kill()
        await asyncio.shield(self.exited)

    def kill(self) -> None:
        if not self._dead.done():
            self.killed = True
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _on_dead(self) -> None:
        asyncio.get_running_loop().remove_reader(self._pidfd)
        if not self._dead.done():
            self._dead.set_result(None)

    async def _read(self) -> None:
        while (frame := await wire.read(self._reader)) is not None:
            match frame:
                case wire.Reply(call_id=call_id, value=value, error=error):
                    _, future = self._calls.get(call_id, ("", None))
                    if future is not None and not future.done():
                        if error is not None:
                            future.set_exception(error)
                        else:
                            future.set_result(value)
                case wire.Event(event=event):
                    self.on_event(event)
                case wire.Ended(reconnect=reconnect):
                    self.on_ended(reconnect)
        await self._reap()

    async def _reap(self) -> None:
        # The socket closed: the child exited, is about to, or is stuck. It gets a moment.
        self._writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._dead), HOST_GRACE if self.ending else 1.0)
        self.kill()
        await self._dead
        os.close(self._pidfd)
        why = "killed after it stopped answering" if self.killed and not self.ending else "its process exited"
        for method, future in self._calls.values():
            if not future.done():
                if method == "send":
                    future.set_exception(
                        OutcomeUnknownError(f"the session host ended during the send ({why}); it may have gone out")
                    )
                else:
                    future.set_exception(TransientDriverError(f"the session host ended ({why})"))
        if not self.ending:
            self.on_exit(why)
        self.exited.set_result(None)


class HostedSession:
    """The worker's side of one WhatsApp number: the `Session` interface, served by session hosts."""

    def __init__(self, driver: NeonizeDriver, instance_name: str, store: SessionStore, sink: EventSink) -> None:
        self.instance_name = instance_name
        self.store = store
        self._driver = driver
        self._sink = sink
        self._host: SessionProcess | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._wanted = False  # connect() was asked and neither close() nor a final event came since
        self._attempts = 0
        self._restart: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._events: asyncio.Queue[DriverEvent] = asyncio.Queue()
        self._delivery: asyncio.Task[None] | None = None
        self._proxy_url: str | None = None  # this number's own proxy (settings' proxyUrl)

    @property
    def linked(self) -> bool:
        # Blocks for one sqlite or PostgreSQL query: callers on the event loop use a thread.
        return self.store.has_device()

    @property
    def host_pid(self) -> int | None:
        return self._host.pid if self._host is not None else None

    async def connect(self) -> None:
        self._wanted = True
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        await self._start()

    async def pair_phone(self, phone_number: str) -> str:
        timeout = PAIR_QR_WAIT + LOOKUP_TIMEOUT + CALL_MARGIN
        code: str = await self._call("pair_phone", phone_number, timeout=timeout)
        return code

    async def check_numbers(self, phone_numbers: Sequence[str]) -> dict[str, str | None]:
        answer: dict[str, str | None] = await self._query("check_numbers", list(phone_numbers))
        return answer

    async def send(self, message: OutgoingMessage) -> SendResult:
        timeout = LOOKUP_TIMEOUT + MEDIA_TIMEOUT + SEND_TIMEOUT + CALL_MARGIN
        result: SendResult = await self._call("send", message, timeout=timeout)
        return result

    # Conversation actions: one query (or a few) each, answered within the child's lookup deadline.

    async def profile(self, phone_number: str) -> Profile:
        answer: Profile = await self._query("profile", phone_number)
        return answer

    async def mark_read(self, chat_id: str, message_ids: Sequence[str]) -> None:
        await self._query("mark_read", chat_id, list(message_ids))

    async def set_presence(self, state: PresenceState) -> None:
        await self._query("set_presence", state)

    async def groups(self) -> list[Group]:
        answer: list[Group] = await self._query("groups")
        return answer

    async def group(self, group_id: str) -> Group:
        answer: Group = await self._query("group", group_id)
        return answer

    async def create_group(self, subject: str, participants: Sequence[str]) -> str:
        answer: str = await self._query("create_group", subject, list(participants))
        return answer

    async def update_participants(
        self, group_id: str, action: ParticipantAction, participants: Sequence[str]
    ) -> list[ParticipantResult]:
        answer: list[ParticipantResult] = await self._query("update_participants", group_id, action, list(participants))
        return answer

    async def invite_link(self, group_id: str, revoke: bool = False) -> str:
        answer: str = await self._query("invite_link", group_id, revoke)
        return answer

    async def update_group(self, group_id: str, change: GroupChange) -> None:
        await self._query("update_group", group_id, change)

    async def leave_group(self, group_id: str) -> None:
        await self._query("leave_group", group_id)

    async def join_group(self, invite_link: str) -> str:
        answer: str = await self._query("join_group", invite_link)
        return answer

    async def reject_call(self, call_id: str, caller: str) -> None:
        await self._query("reject_call", call_id, caller)

    async def use_proxy(self, proxy_url: str | None) -> None:
        """A session host connects through one proxy for its life: a new one (None: the driver's
        GATEWAY_WHATSAPP_PROXY) ends the running host and starts another through it."""
        if proxy_url == self._proxy_url:
            return
        self._proxy_url = proxy_url
        host = self._host
        if host is None or host.ending or not self._wanted:
            return
        log.info("%s: reconnecting through the new proxy", self.instance_name)
        self._retire(host)
        self._queue(Disconnected(reason="reconnecting through the new proxy"))
        await self._start()

    async def _query(self, method: str, *args: Any) -> Any:
        # A profile asks up to four things in turn (lookup, user info, picture, contact).
        return await self._call(method, *args, timeout=4 * LOOKUP_TIMEOUT + CALL_MARGIN)

    async def show_typing(self, to: str, typing: bool) -> None:
        await self._call("show_typing", to, typing, timeout=LOOKUP_TIMEOUT + CALL_MARGIN)

    async def logout(self) -> None:
        self._wanted = False
        host = self._host
        try:
            if host is not None and not host.ending:
                await host.call("logout", timeout=LOOKUP_TIMEOUT + STOP_TIMEOUT + CALL_MARGIN)
        finally:
            await self.close()

    async def close(self) -> None:
        self._wanted = False
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        host, self._host = self._host, None
        if host is not None:
            await host.end(HOST_GRACE)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._delivery is not None and self._delivery is not asyncio.current_task():
            self._delivery.cancel()
            self._delivery = None
        self._driver.forget(self)

    # -- hosts

    async def _start(self) -> None:
        # One host per session at a time, whoever asks (connect, a restart): the lock orders them.
        async with self._starting:
            if self._host is not None and not self._host.ending:
                return
            # Never two clients on one store: a host still ending goes first.
            await asyncio.gather(*self._retiring, return_exceptions=True)
            spec = self._driver.spec(self.instance_name, self._proxy_url)
            host = await SessionProcess.start(self._driver.zygote, spec)
            host.on_event = self._queue
            host.on_ended = functools.partial(self._host_ended, host)
            host.on_exit = functools.partial(self._host_died, host)
            if not self._wanted:  # closed while the host was starting
                self._retire(host)
                return
            self._host = host
            try:
                await host.call("connect", timeout=CONNECT_TIMEOUT)
            except BaseException:
                self._retire(host)
                raise

    async def _call(self, method: str, *args: Any, timeout: float) -> Any:
        host = self._require_host()
        try:
            return await host.call(method, *args, timeout=timeout)
        except TimeoutError:
            # The child's own deadlines are shorter: it is stuck (a Go deadlock). End it; a linked
            # session comes back in a fresh one.
            log.error("%s: session host %s did not answer %s; ending it", self.instance_name, host.pid, method)
            host.kill()
            if method == "send":
                raise OutcomeUnknownError(
                    "the session host stopped answering; the message may have been sent"
                ) from None
            raise TransientDriverError(f"the session host stopped answering {method}") from None

    def _require_host(self) -> SessionProcess:
        if self._host is None or self._host.ending:
            raise TransientDriverError("not connected to WhatsApp")
        return self._host

    def _host_ended(self, host: SessionProcess, reconnect: bool) -> None:
        """The child's session is over (logged out, banned, QR expired, run broken)."""
        self._retire(host)
        if not reconnect:
            self._wanted = False
        elif self._wanted:
            self._schedule_restart()

    def _host_died(self, host: SessionProcess, why: str) -> None:
        log.error("%s: session host %s died (%s)", self.instance_name, host.pid, why)
        if self._host is host:
            self._host = None
        self._queue(Disconnected(reason=f"session host died ({why})"))
        if self._wanted:
            self._schedule_restart()

    def _retire(self, host: SessionProcess) -> None:
        if self._host is host:
            self._host = None
        task = asyncio.get_running_loop().create_task(host.end(HOST_GRACE))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _schedule_restart(self) -> None:
        if self._restart is not None and not self._restart.done():
            return
        delay = RESTART_DELAYS[min(self._attempts, len(RESTART_DELAYS) - 1)]
        self._attempts += 1
        self._restart = asyncio.get_running_loop().create_task(self._restart_after(delay))

    async def _restart_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._wanted or self._host is not None:
            return
        try:
            if not await asyncio.to_thread(self.store.has_device):
                return  # a linking attempt: a new one starts when someone asks for a QR again
            log.info("%s: reconnecting from the session store", self.instance_name)
            await self._start()
        except (DriverError, TimeoutError) as exc:
            log.warning("%s: reconnecting failed: %s", self.instance_name, exc)
            self._restart = None
            if self._wanted and self._host is None:
                self._schedule_restart()
        finally:
            if self._restart is asyncio.current_task():
                self._restart = None

    # -- events, in order, one at a time

    def _queue(self, event: DriverEvent) -> None:
        if isinstance(event, Connected):
            self._attempts = 0
        self._events.put_nowait(event)
        if self._delivery is None:
            self._delivery = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._sink(event)
            except Exception:
                log.exception("%s: the event sink failed on %s", self.instance_name, type(event).__name__)
            finally:
                self._events.task_done()


class NeonizeDriver:
    """Hands out `HostedSession`s: one sqlite session store per instance under `sessions_dir`, or
    with `database_url` one schema per instance in that PostgreSQL database (see `stores`)."""

    def __init__(
        self,
        sessions_dir: Path,
        max_sessions: int,
        *,
        database_url: str | None = None,
        proxy: str | None = None,
        **options: Any,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.sessions_dir = sessions_dir
        self.max_sessions = max_sessions
        self.database_url = database_url
        self.postgres = PostgresStores(database_url) if database_url is not None else None
        self._proxy = proxy
        self._options = options  # NeonizeSession's keyword options (deadlines), for the children
        self._sessions: dict[str, HostedSession] = {}
        self.zygote = Zygote()

    def store_path(self, instance_name: str) -> Path:
        if not _INSTANCE_NAME.fullmatch(instance_name):
            raise ValueError(f"instance name not usable as a file name: {instance_name!r}")
        return self.sessions_dir / f"{instance_name}.sqlite3"

    def store(self, instance_name: str) -> SessionStore:
        path = self.store_path(instance_name)  # validates the name for both kinds of store
        if self.postgres is not None:
            return self.postgres.store(instance_name)
        return SqliteStore(path)

    def spec(self, instance_name: str, proxy: str | None = None) -> HostSpec:
        """What a session host starts from; `proxy` is the number's own, else GATEWAY_WHATSAPP_PROXY."""
        return HostSpec(
            instance_name=instance_name,
            sqlite_path=self.store_path(instance_name),
            database_url=self.database_url,
            proxy=proxy or self._proxy,
            options=self._options,
            log_level=logging.getLogger("scheduler").getEffectiveLevel(),
        )

    def session(self, instance_name: str, sink: EventSink) -> HostedSession:
        store = self.store(instance_name)
        if instance_name in self._sessions:
            raise DriverError(f"{instance_name} already has an open session; close it first")
        if len(self._sessions) >= self.max_sessions:
            raise TransientDriverError(f"this worker already hosts {self.max_sessions} sessions")
        if self.postgres is None:
            self.sessions_dir.mkdir(parents=True, exist_ok=True)
        session = HostedSession(self, instance_name, store, sink)
        self._sessions[instance_name] = session
        return session

    def remove_store(self, instance_name: str) -> None:
        """Delete the instance's store; with PostgreSQL blocks for a query or two (DROP SCHEMA)."""
        if instance_name in self._sessions:
            raise DriverError(f"{instance_name} still has an open session; close it before removing its store")
        self.store(instance_name).remove()

    async def open(self) -> None:
        """Start the zygote now (it preloads while the worker starts), not at the first session."""
        await asyncio.to_thread(self.zygote.start)

    def close(self) -> None:
        """Stop the zygote (once the sessions are closed) and close the worker's own PostgreSQL
        connection, if any."""
        self.zygote.close()
        if self.postgres is not None:
            self.postgres.close()

    def forget(self, session: HostedSession) -> None:
        if self._sessions.get(session.instance_name) is session:
            del self._sessions[session.instance_name]

    def host_pids(self) -> dict[str, int]:
        """The session hosts' process ids by instance (for operators and tests)."""
        return {name: pid for name, s in self._sessions.items() if (pid := s.host_pid) is not None}
