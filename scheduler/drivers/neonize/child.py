"""The session host: a child process of the worker running one `NeonizeSession`.

neonize's Go shim keeps its clients in unguarded package-level maps (two sessions in one process
can abort it), strands a thread for a linking attempt that never ends, and leaks a little per
connect cycle. A child per session and connect cycle confines all of that: the parent ends the
child when the session ends, and whatever Go held goes with the process.

The worker starts children through a forkserver that has imported `zygote`: the protobuf modules
and neonize's Python dependencies are then shared copy-on-write by every child. The Go library
itself is loaded only in the children (its runtime starts threads, which a fork would lose).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler.drivers.base import DriverError, DriverEvent
from scheduler.drivers.neonize import wire
from scheduler.drivers.neonize.session import NeonizeSession
from scheduler.drivers.neonize.stores import PostgresStores, SessionStore, SqliteStore

log = logging.getLogger(__name__)

# A session pins one executor thread for its client's life; a few more serve media and sqlite.
_THREADS = 6
_METHODS = frozenset(
    {
        "connect",
        "pair_phone",
        "check_numbers",
        "send",
        "show_typing",
        "profile",
        "mark_read",
        "set_presence",
        "groups",
        "group",
        "create_group",
        "update_participants",
        "invite_link",
        "update_group",
        "leave_group",
        "join_group",
        "reject_call",
        "logout",
        "close",
    }
)
# Calls after which the child has nothing left to do.
_FINAL = frozenset({"logout", "close"})


@dataclass(frozen=True)
class HostSpec:
    """What a session host is started with (pickled to the child)."""

    instance_name: str
    sqlite_path: Path
    database_url: str | None
    proxy: str | None
    options: dict[str, Any]
    log_level: int

    def store(self) -> SessionStore:
        if self.database_url is not None:
            return PostgresStores(self.database_url).store(self.instance_name)
        return SqliteStore(self.sqlite_path)


def serve(sock: socket.socket, spec: HostSpec) -> None:
    """The child's entry point: serve calls from the parent until told to close or orphaned."""
    logging.getLogger().setLevel(spec.log_level)
    os.environ.setdefault("NEONIZE_BOT_TAG", "off")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_Host(spec).run(sock))
    except BaseException:
        log.exception("session host failed")
    finally:
        # Never wait for the Go side at exit: a thread may be stuck in it for good.
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
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(_THREADS, thread_name_prefix="neonize"))
        reader, self.writer = await asyncio.open_connection(sock=sock)
        reading = asyncio.create_task(self._read(reader))
        await asyncio.wait([reading, asyncio.create_task(self.done.wait())], return_when=asyncio.FIRST_COMPLETED)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while (frame := await wire.read(reader)) is not None:
            if isinstance(frame, wire.Call):
                task = asyncio.create_task(self._call(frame))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        # The parent is gone (or closed our socket): nothing here is wanted any more.

    async def _call(self, call: wire.Call) -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            if call.method not in _METHODS:
                raise DriverError(f"unknown session call {call.method!r}")
            if call.method == "close" and not self.session.connected:
                pass  # nothing to say goodbye to: the process ends, and whatever Go holds with it
            else:
                value = await getattr(self.session, call.method)(*call.args)
        except DriverError as exc:
            error = exc
        except Exception as exc:  # reported to the caller, whatever it was
            log.exception("%s failed", call.method)
            error = DriverError(f"{call.method} failed in the session host: {type(exc).__name__}: {exc}")
        await self._send(wire.Reply(call.call_id, value, error))
        if call.method in _FINAL:
            self.done.set()

    async def emit(self, event: DriverEvent) -> None:
        await self._send(wire.Event(event))

    async def ended(self, reconnect: bool) -> None:
        await self._send(wire.Ended(reconnect))

    async def _send(self, frame: wire.Frame) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        self.writer.write(wire.encode(frame))
        try:
            await self.writer.drain()
        except ConnectionError:
            self.done.set()
