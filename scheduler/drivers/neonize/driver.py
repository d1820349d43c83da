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

import structlog

from scheduler.drivers.base import (
    Account,
    Banned,
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
    PhoneControls,
    PresenceState,
    Profile,
    QrCode,
    QrExpired,
    SendResult,
    Session,
    TransientDriverError,
)
from scheduler.drivers.neonize import calls, wire
from scheduler.drivers.neonize.calls import SessionCall
from scheduler.drivers.neonize.child import HostSpec
from scheduler.drivers.neonize.orphans import reap_orphans
from scheduler.drivers.neonize.session import (
    LOOKUP_TIMEOUT,
    MAX_MEDIA_BYTES,
    MEDIA_TIMEOUT,
    PAIR_QR_WAIT,
    SEND_TIMEOUT,
)
from scheduler.drivers.neonize.stores import PostgresStores, SessionStore, SqliteStore, private_dir
from scheduler.drivers.neonize.zygote import Zygote
from scheduler.media import MAX_BYTES

log = logging.getLogger(__name__)
host_log = structlog.get_logger("scheduler.session_host")  # what the hosts log, whatsmeow's lines too

_INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# Pauses before reconnecting a linked session whose host died or whose run broke, by attempt.
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# Beyond the child's own deadlines: a call still unanswered after them means the child is stuck.
CALL_MARGIN = 10.0
CONNECT_TIMEOUT = 60.0
# How long a session host gets to close its client (a clean websocket goodbye) before it is killed.
HOST_GRACE = 3.0
# How long a session host may leave a heartbeat unanswered before it is killed (and restarted).
HOST_TIMEOUT = 20.0
# Seconds between two collections of the zombies the worker inherits as a subreaper (`orphans`).
ORPHAN_SWEEP = 10.0
# How long a delete waits for WhatsApp to confirm a logout before the host is ended anyway.
LOGOUT_TIMEOUT = 1.5


class SessionProcess:
    """One session host: the child process (watched through a pidfd) and the socket to it.

    The host is watched three ways: its pidfd fires when it exits, its socket closes when it dies,
    and a heartbeat (`ping`, answered by the host's event loop) every `heartbeat / 3` s catches one
    that is alive but stuck: no answer within `heartbeat` s and it is killed. A frame that does not
    decode is treated the same: the host is killed and reaped, never read further.
    """

    def __init__(
        self,
        pid: int,
        pidfd: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        frame_limit: int,
        heartbeat: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.pid = pid
        self._pidfd = pidfd
        self._reader = reader
        self._writer = writer
        self._frame_limit = frame_limit
        self._calls: dict[int, tuple[bool, asyncio.Future[Any]]] = {}  # (is a send, its answer)
        self._ids = itertools.count(1)
        self.ending = False
        self.killed = False
        self.why: str | None = None  # why the worker killed it, when it did
        self.exited = loop.create_future()
        self._dead = loop.create_future()
        loop.add_reader(pidfd, self._on_dead)
        self.on_event: Callable[[DriverEvent], None] = lambda event: None
        self.on_ended: Callable[[bool], None] = lambda reconnect: None
        self.on_exit: Callable[[str], None] = lambda why: None
        self.on_log: Callable[[wire.Log], None] = lambda line: None
        self._reading = loop.create_task(self._read())
        self._beating = loop.create_task(self._beat(heartbeat))

    @classmethod
    async def start(cls, zygote: Zygote, spec: HostSpec, heartbeat: float) -> SessionProcess:
        ours, theirs = socket.socketpair()
        try:
            try:
                pid = await zygote.spawn(spec, theirs)
                pidfd = os.pidfd_open(pid)
            finally:
                theirs.close()
            reader, writer = await asyncio.open_connection(sock=ours)
        except OSError as exc:
            ours.close()
            raise TransientDriverError(f"could not start a session host: {exc}") from exc
        return cls(pid, pidfd, reader, writer, frame_limit=spec.frame_limit, heartbeat=heartbeat)

    async def call(self, call: SessionCall, *, timeout: float) -> Any:
        if self.exited.done():
            raise TransientDriverError("the session host has ended")
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = (isinstance(call, calls.Send), future)
        try:
            self._writer.write(wire.encode(wire.Call(call_id, call)))
            del call  # a send's media is in the transport's buffer now, or already sent
            async with asyncio.timeout(timeout):  # a stopped host stops reading too: drain is bounded
                await self._writer.drain()
                return await future
        except ConnectionError as exc:
            raise TransientDriverError("the session host has ended") from exc
        finally:
            self._calls.pop(call_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # failed by _reap while we were still writing: already told

    async def end(self, timeout: float) -> None:
        """Ask the child to close its client, then end it whatever it does."""
        self.ending = True
        if not self.exited.done() and timeout > 0:
            with contextlib.suppress(DriverError, TimeoutError):
                await self.call(calls.Close(), timeout=timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._dead), timeout)
        self.kill()
        await asyncio.shield(self.exited)

    def kill(self, why: str | None = None) -> None:
        if not self._dead.done():
            self.killed = True
            self.why = self.why or why
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _on_dead(self) -> None:
        asyncio.get_running_loop().remove_reader(self._pidfd)
        if not self._dead.done():
            self._dead.set_result(None)

    async def _beat(self, bound: float) -> None:
        while not self.exited.done():
            await asyncio.sleep(bound / 3)
            try:
                await self.call(calls.Ping(), timeout=bound)
            except TimeoutError:
                log.error("session host %s did not answer a heartbeat within %g s; killing it", self.pid, bound)
                self.kill(f"no heartbeat within {bound:g} s")
                return
            except DriverError:
                return  # it ended: _reap tells

    async def _read(self) -> None:
        try:
            while await self._take():
                pass
        except wire.FrameError as exc:
            log.error("session host %s sent a frame that does not decode (%s); killing it", self.pid, exc)
            self.kill("it sent a frame that does not decode")
        await self._reap()

    async def _take(self) -> bool:
        # One frame per call: nothing of it (an inbound media's bytes) outlives its handling.
        frame = await wire.read(self._reader, self._frame_limit)
        match frame:
            case None:
                return False
            case wire.Reply(call_id=call_id, value=value, error=error):
                _, future = self._calls.get(call_id, (False, None))
                if future is not None and not future.done():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(value)
            case wire.Event(event=event):
                self.on_event(event)
            case wire.Ended(reconnect=reconnect):
                self.on_ended(reconnect)
            case wire.Log():
                self.on_log(frame)
        return True

    async def _reap(self) -> None:
        # The socket closed: the child exited, is about to, or is stuck. It gets a moment.
        self._beating.cancel()
        self._writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._dead), HOST_GRACE if self.ending else 1.0)
        self.kill("it closed its socket but did not exit")
        await self._dead
        # A host whose zygote died is our child (we are its subreaper): collect its exit status.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)  # noqa: ASYNC222 (it has exited)
        os.close(self._pidfd)
        why = f"killed: {self.why}" if self.killed and not self.ending else "its process exited"
        for sending, future in self._calls.values():
            if not future.done():
                if sending:
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
        self._online = False  # Connected came and nothing ended it since: a logout can reach WhatsApp
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
        """Start a host and its client; a start that fails is retried with backoff (a linked
        session reconnects from its store) and raises a `DriverError` to the caller meanwhile."""
        self._wanted = True
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        try:
            await self._start()
        except DriverError as exc:
            if self._wanted and self._host is None:
                log.warning("%s: starting the session failed: %s; trying again", self.instance_name, exc)
                self._schedule_restart()
            raise

    async def pair_phone(self, phone_number: str) -> str:
        timeout = PAIR_QR_WAIT + LOOKUP_TIMEOUT + CALL_MARGIN
        code: str = await self._call(calls.PairPhone(phone_number), timeout=timeout)
        return code

    async def check_numbers(self, phone_numbers: Sequence[str]) -> dict[str, Account | None]:
        answer: dict[str, Account | None] = await self._query(calls.CheckNumbers(tuple(phone_numbers)))
        return answer

    async def number_for_lid(self, lid: str) -> str | None:
        answer: str | None = await self._query(calls.NumberForLid(lid))
        return answer

    async def send(self, message: OutgoingMessage) -> SendResult:
        timeout = LOOKUP_TIMEOUT + MEDIA_TIMEOUT + SEND_TIMEOUT + CALL_MARGIN
        result: SendResult = await self._call(calls.Send(message), timeout=timeout)
        return result

    # Conversation actions: one query (or a few) each, answered within the child's lookup deadline.

    async def profile(self, phone_number: str) -> Profile:
        answer: Profile = await self._query(calls.ReadProfile(phone_number))
        return answer

    async def mark_read(self, chat_id: str, message_ids: Sequence[str]) -> None:
        await self._query(calls.MarkRead(chat_id, tuple(message_ids)))

    async def set_presence(self, state: PresenceState) -> None:
        await self._query(calls.SetPresence(state))

    async def groups(self) -> list[Group]:
        answer: list[Group] = await self._query(calls.ListGroups())
        return answer

    async def group(self, group_id: str) -> Group:
        answer: Group = await self._query(calls.ReadGroup(group_id))
        return answer

    async def create_group(self, subject: str, participants: Sequence[str]) -> str:
        answer: str = await self._query(calls.CreateGroup(subject, tuple(participants)))
        return answer

    async def update_participants(
        self, group_id: str, action: ParticipantAction, participants: Sequence[str]
    ) -> list[ParticipantResult]:
        answer: list[ParticipantResult] = await self._query(
            calls.UpdateParticipants(group_id, action, tuple(participants))
        )
        return answer

    async def invite_link(self, group_id: str, revoke: bool = False) -> str:
        answer: str = await self._query(calls.InviteLink(group_id, revoke))
        return answer

    async def update_group(self, group_id: str, change: GroupChange) -> None:
        await self._query(calls.UpdateGroup(group_id, change))

    async def leave_group(self, group_id: str) -> None:
        await self._query(calls.LeaveGroup(group_id))

    async def join_group(self, invite_link: str) -> str:
        answer: str = await self._query(calls.JoinGroup(invite_link))
        return answer

    async def reject_call(self, call_id: str, caller: str) -> None:
        await self._query(calls.RejectCall(call_id, caller))

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

    async def _query(self, call: SessionCall) -> Any:
        # A profile asks up to four things in turn (lookup, user info, picture, contact).
        return await self._call(call, timeout=4 * LOOKUP_TIMEOUT + CALL_MARGIN)

    async def show_typing(self, to: str, typing: bool) -> None:
        await self._call(calls.ShowTyping(to, typing), timeout=LOOKUP_TIMEOUT + CALL_MARGIN)

    async def logout(self) -> None:
        """Unlink the device if WhatsApp can be told now, then end the host at once: bounded by
        `LOGOUT_TIMEOUT` whatever the host does. A device WhatsApp was not told about is dropped by
        WhatsApp once its store is gone (the caller removes it) and it never connects again."""
        self._wanted = False
        host = self._host
        try:
            if host is not None and not host.ending and self._online:
                await host.call(calls.Logout(), timeout=LOGOUT_TIMEOUT)
        except (DriverError, TimeoutError) as exc:
            log.warning("%s: logout not confirmed by WhatsApp: %s", self.instance_name, exc or "timed out")
        finally:
            await self._close(grace=0.0)

    async def close(self) -> None:
        await self._close(grace=HOST_GRACE)

    async def _close(self, grace: float) -> None:
        self._wanted = False
        self._online = False
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        host, self._host = self._host, None
        if host is not None:
            await host.end(grace)
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
            driver = self._driver
            driver.watch_orphans()
            spec = driver.spec(self.instance_name, self._proxy_url)
            host = await SessionProcess.start(driver.zygote, spec, driver.host_timeout)
            host.on_event = self._queue
            host.on_ended = functools.partial(self._host_ended, host)
            host.on_exit = functools.partial(self._host_died, host)
            host.on_log = self._host_log
            if not self._wanted:  # closed while the host was starting
                self._retire(host)
                return
            self._host = host
            try:
                await host.call(calls.Connect(), timeout=CONNECT_TIMEOUT)
            except TimeoutError:
                self._retire(host)
                raise TransientDriverError(f"the session host did not connect within {CONNECT_TIMEOUT:g} s") from None
            except BaseException:
                self._retire(host)
                raise

    async def _call(self, call: SessionCall, *, timeout: float) -> Any:
        host = self._require_host()
        what, sending = type(call).__name__, isinstance(call, calls.Send)
        try:
            return await host.call(call, timeout=timeout)
        except TimeoutError:
            # The child's own deadlines are shorter: it is stuck (a Go deadlock). End it; a linked
            # session comes back in a fresh one.
            log.error("%s: session host %s did not answer %s; ending it", self.instance_name, host.pid, what)
            host.kill()
            if sending:
                raise OutcomeUnknownError(
                    "the session host stopped answering; the message may have been sent"
                ) from None
            raise TransientDriverError(f"the session host stopped answering {what}") from None

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

    def _host_log(self, line: wire.Log) -> None:
        host_log.log(line.level, line.message, instance=self.instance_name, logger=line.logger)

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
        except DriverError as exc:
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
        if isinstance(event, Connected | Disconnected | QrCode | QrExpired | Banned):
            self._online = isinstance(event, Connected)
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
                del event  # an inbound media's bytes are not kept until the next event
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
        host_timeout: float = HOST_TIMEOUT,
        whatsmeow_log_level: int = logging.WARNING,
        **options: Any,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.host_timeout = host_timeout
        self.whatsmeow_log_level = whatsmeow_log_level
        # The largest frame: an inbound media download or an outgoing file, and the rest of it.
        media = max(int(options.get("max_media_bytes", MAX_MEDIA_BYTES)), *MAX_BYTES.values())
        self.frame_limit = media + wire.FRAME_OVERHEAD
        self.sessions_dir = sessions_dir
        self.max_sessions = max_sessions
        self.database_url = database_url
        self.postgres = PostgresStores(database_url) if database_url is not None else None
        self._proxy = proxy
        self._options = options  # NeonizeSession's keyword options (deadlines), for the children
        self._sessions: dict[str, HostedSession] = {}
        self.zygote = Zygote()
        self._reaping: asyncio.Task[None] | None = None

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
            whatsmeow_log_level=self.whatsmeow_log_level,
            frame_limit=self.frame_limit,
        )

    def session(self, instance_name: str, sink: EventSink) -> HostedSession:
        store = self.store(instance_name)
        if instance_name in self._sessions:
            raise DriverError(f"{instance_name} already has an open session; close it first")
        if len(self._sessions) >= self.max_sessions:
            raise TransientDriverError(f"this worker already hosts {self.max_sessions} sessions")
        if self.postgres is None:
            private_dir(self.sessions_dir)
        session = HostedSession(self, instance_name, store, sink)
        self._sessions[instance_name] = session
        return session

    def phone_controls(self, session: Session) -> PhoneControls | None:
        return None  # a real phone: nothing stands in for it

    def remove_store(self, instance_name: str) -> None:
        """Delete the instance's store; with PostgreSQL blocks for a query or two (DROP SCHEMA)."""
        if instance_name in self._sessions:
            raise DriverError(f"{instance_name} still has an open session; close it before removing its store")
        self.store(instance_name).remove()

    async def open(self) -> None:
        """Start the zygote now (it preloads while the worker starts), not at the first session."""
        await asyncio.to_thread(self.zygote.start)
        self.watch_orphans()

    def watch_orphans(self) -> None:
        """Collect the orphans we inherit as a subreaper from now on (called from the event loop)."""
        if self._reaping is None:
            self._reaping = asyncio.get_running_loop().create_task(self._reap_orphans())

    async def _reap_orphans(self) -> None:
        while True:
            await asyncio.sleep(ORPHAN_SWEEP)
            reap_orphans()

    def close(self) -> None:
        """Stop the zygote (once the sessions are closed) and close the worker's own PostgreSQL
        connection, if any."""
        if self._reaping is not None:
            self._reaping.cancel()
            self._reaping = None
        self.zygote.close()
        if self.postgres is not None:
            self.postgres.close()

    def forget(self, session: HostedSession) -> None:
        if self._sessions.get(session.instance_name) is session:
            del self._sessions[session.instance_name]

    def host_pids(self) -> dict[str, int]:
        """The session hosts' process ids by instance (for operators and tests)."""
        return {name: pid for name, s in self._sessions.items() if (pid := s.host_pid) is not None}
