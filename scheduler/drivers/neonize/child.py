"""The session host: a child process of the worker running one `NeonizeSession`.

neonize's Go shim keeps its clients in unguarded package-level maps (two sessions in one process
can abort it), strands a thread for a linking attempt that never ends, and leaks a little per
connect cycle. A child per session and connect cycle confines all of that: the parent ends the
child when the session ends, and whatever Go held goes with the process.

The worker starts children through a forkserver that has imported `zygote`: the protobuf modules
and neonize's Python dependencies are then shared copy-on-write by every child. The Go library
itself is loaded only in the children (its runtime starts threads, which a fork would lose).

A host is on its own once forked: its own session and process group (a signal to the worker's group
is the worker's to handle: it closes its hosts itself), files only its user can read (the session
store holds the linked device's keys), and it exits as soon as its socket to the worker closes,
whether its event loop is free or not (a watchdog thread waits for the hang-up). It answers the
worker's heartbeat (`ping`) from its event loop, forwards its log (`logpipe`), and keeps no frame
after use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scheduler.drivers.base import DriverError, DriverEvent
from scheduler.drivers.neonize import calls, wire
from scheduler.drivers.neonize.calls import SessionCall
from scheduler.drivers.neonize.loading import _import
from scheduler.drivers.neonize.logpipe import LogPipe
from scheduler.drivers.neonize.session import NeonizeSession
from scheduler.drivers.neonize.stores import PostgresStores, SessionStore, SqliteStore

log = logging.getLogger(__name__)

# A session pins one executor thread for its client's life; a few more serve media and sqlite.
_THREADS = 6
# Bytes the worker may have left to read before log lines are dropped instead of queued.
_LOG_WRITE_BUFFER = 1024 * 1024
# Calls after which the child has nothing left to do.
_FINAL = (calls.Logout, calls.Close)


@dataclass(frozen=True)
class HostSpec:
    """What a session host is started with (sent to the zygote as JSON)."""

    instance_name: str
    sqlite_path: Path
    database_url: str | None
    proxy: str | None
    options: dict[str, Any]
    log_level: int
    whatsmeow_log_level: int
    frame_limit: int

    def to_json(self) -> bytes:
        return json.dumps({**asdict(self), "sqlite_path": str(self.sqlite_path)}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> HostSpec:
        try:
            fields = json.loads(data)
            return cls(**{**fields, "sqlite_path": Path(fields["sqlite_path"])})
        except (TypeError, KeyError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a HostSpec: {exc}") from exc

    def store(self) -> SessionStore:
        if self.database_url is not None:
            return PostgresStores(self.database_url).store(self.instance_name)
        return SqliteStore(self.sqlite_path)


def serve(sock: socket.socket, spec: HostSpec) -> None:
    """The child's entry point: serve calls from the parent until told to close or orphaned."""
    os.setsid()
    os.umask(0o077)
    threading.Thread(target=_exit_on_hang_up, args=(sock.fileno(),), name="hang-up", daemon=True).start()
    logging.getLogger().setLevel(spec.log_level)
    # neonize hands its Go side the level of this logger: whatsmeow filters at the source.
    logging.getLogger("neonize.utils.log").setLevel(spec.whatsmeow_log_level)
    logging.getLogger("whatsmeow").setLevel(spec.whatsmeow_log_level)
    os.environ.setdefault("NEONIZE_BOT_TAG", "off")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_Host(spec).run(sock))
    except BaseException:
        log.exception("session host failed")
    finally:
        # Never wait for the Go side at exit: a thread may be stuck in it for good.
        os._exit(0)


def _exit_on_hang_up(fd: int) -> None:
    """The worker closed its end (or died): end at once, even with the event loop stuck in Go."""
    poller = select.poll()
    poller.register(fd, select.POLLRDHUP)
    while True:
        for _fd, events in poller.poll():
            if events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                os._exit(0)


class _Host:
    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.writer: asyncio.StreamWriter | None = None
        self.done = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.session = NeonizeSession(
            spec.instance_name, spec.store(), self.emit, proxy=spec.proxy, on_ended=self.ended, **spec.options
        )

    async def run(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(_THREADS, thread_name_prefix="neonize"))
        reader, self.writer = await asyncio.open_connection(sock=sock)
        pipe = LogPipe(loop, self._send_log)
        logging.getLogger().handlers[:] = [pipe]
        # neonize looks its log callback up here when a client connects: ours, bounded, replaces
        # the queue its import filled for a thread the zygote ended.
        setattr(_import("neonize.aioze.client"), "log_whatsmeow", pipe.whatsmeow)  # noqa: B010
        reading = asyncio.create_task(self._read(reader))
        await asyncio.wait([reading, asyncio.create_task(self.done.wait())], return_when=asyncio.FIRST_COMPLETED)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while await self._take(reader):
                pass
        except wire.FrameError:
            log.exception("a frame from the worker did not decode")
        # The parent is gone (or closed our socket, or talks nonsense): nothing here is wanted.

    async def _take(self, reader: asyncio.StreamReader) -> bool:
        # One frame per call: its arguments (media bytes) are not kept while the next is awaited.
        frame = await wire.read(reader, self.spec.frame_limit)
        if frame is None:
            return False
        if isinstance(frame, wire.Call):
            task = asyncio.create_task(self._call(frame))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return True

    async def _call(self, frame: wire.Call) -> None:
        value: Any = None
        error: DriverError | None = None
        call, call_id = frame.call, frame.call_id
        del frame  # a send's media goes once the session is done with it
        try:
            value = await self._perform(call)
        except DriverError as exc:
            error = exc
        except Exception as exc:  # reported to the caller, whatever it was
            log.exception("%s failed", type(call).__name__)
            error = DriverError(f"{type(call).__name__} failed in the session host: {type(exc).__name__}: {exc}")
        final = isinstance(call, _FINAL)
        del call
        await self._send(wire.Reply(call_id, value, error))
        if final:
            self.done.set()

    async def _perform(self, call: SessionCall) -> Any:
        session = self.session
        if isinstance(call, _FINAL) and not session.connected:
            # Nothing to say goodbye to (a dial or a linking attempt): whatever Go holds goes with
            # the process, without a stop() that blocks while it dials.
            return False
        match call:
            case calls.Ping():
                return None  # answered by the loop being free to answer it
            case calls.Logout():
                await session.logout(close=False)  # the process ends right after: Go with it
                return True
            case calls.Close():
                return await session.close()
            case calls.Connect():
                return await session.connect()
            case calls.PairPhone(phone_number=phone_number):
                return await session.pair_phone(phone_number)
            case calls.CheckNumbers(phone_numbers=phone_numbers):
                return await session.check_numbers(phone_numbers)
            case calls.NumberForLid(lid=lid):
                return await session.number_for_lid(lid)
            case calls.Send(message=message):
                return await session.send(message)
            case calls.ShowTyping(to=to, typing=typing):
                return await session.show_typing(to, typing)
            case calls.RejectCall(call_id=call_id, caller=caller):
                return await session.reject_call(call_id, caller)
        return await _action(session, call)

    async def emit(self, event: DriverEvent) -> None:
        await self._send(wire.Event(event))

    async def ended(self, reconnect: bool) -> None:
        await self._send(wire.Ended(reconnect))

    def _send_log(self, line: wire.Log) -> bool:
        writer = self.writer
        if writer is None or writer.is_closing() or writer.transport.get_write_buffer_size() > _LOG_WRITE_BUFFER:
            return False
        writer.write(wire.encode(line))
        return True

    async def _send(self, frame: wire.Frame) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        self.writer.write(wire.encode(frame))
        del frame  # an inbound media event is not kept while the worker reads it
        try:
            await self.writer.drain()
        except ConnectionError:
            self.done.set()


async def _action(session: NeonizeSession, call: SessionCall) -> Any:
    """A conversation action on the session."""
    match call:
        case calls.ReadProfile(phone_number=phone_number):
            return await session.profile(phone_number)
        case calls.MarkRead(chat_id=chat_id, message_ids=message_ids):
            return await session.mark_read(chat_id, message_ids)
        case calls.SetPresence(state=state):
            return await session.set_presence(state)
        case calls.ListGroups():
            return await session.groups()
        case calls.ReadGroup(group_id=group_id):
            return await session.group(group_id)
        case calls.CreateGroup(subject=subject, participants=participants):
            return await session.create_group(subject, participants)
        case calls.UpdateParticipants(group_id=group_id, action=action, participants=participants):
            return await session.update_participants(group_id, action, participants)
        case calls.InviteLink(group_id=group_id, revoke=revoke):
            return await session.invite_link(group_id, revoke)
        case calls.UpdateGroup(group_id=group_id, change=change):
            return await session.update_group(group_id, change)
        case calls.LeaveGroup(group_id=group_id):
            return await session.leave_group(group_id)
        case calls.JoinGroup(invite_link=invite_link):
            return await session.join_group(invite_link)
    raise DriverError(f"unknown session call {type(call).__name__}")
