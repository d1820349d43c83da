"""`NeonizeDriver`: hands out `NeonizeSession`s and sizes the event loop's default executor for them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
from pathlib import Path
from typing import Any

from scheduler.drivers.base import DriverError, EventSink, TransientDriverError
from scheduler.drivers.neonize.session import NeonizeSession
from scheduler.drivers.neonize.stores import PostgresStores, SessionStore, SqliteStore

# Threads beyond one per hosted session: media uploads, sends still running in Go after we gave
# up waiting, sqlite reads and whatever else uses `asyncio.to_thread`.
EXECUTOR_MARGIN = 8

_INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


# -- executor -------------------------------------------------------------------------------------


def executor_for(max_sessions: int) -> concurrent.futures.ThreadPoolExecutor:
    """A default executor with one thread per hosted session plus `EXECUTOR_MARGIN`."""
    if max_sessions < 1:
        raise ValueError("max_sessions must be at least 1")
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=max_sessions + EXECUTOR_MARGIN, thread_name_prefix="neonize"
    )


def install_executor(loop: asyncio.AbstractEventLoop, max_sessions: int) -> concurrent.futures.ThreadPoolExecutor:
    """Make `executor_for(max_sessions)` the loop's default executor (neonize uses `to_thread`)."""
    executor = executor_for(max_sessions)
    loop.set_default_executor(executor)
    return executor


class NeonizeDriver:
    """Hands out `NeonizeSession`s: one sqlite session store per instance under `sessions_dir`, or
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
        # neonize's Go side adds a <bot biz_bot="1"/> node to every private message unless told not to.
        os.environ.setdefault("NEONIZE_BOT_TAG", "off")
        self.sessions_dir = sessions_dir
        self.max_sessions = max_sessions
        self.postgres = PostgresStores(database_url) if database_url is not None else None
        self._proxy = proxy
        self._options = options
        self._sessions: dict[str, NeonizeSession] = {}

    def store_path(self, instance_name: str) -> Path:
        if not _INSTANCE_NAME.fullmatch(instance_name):
            raise ValueError(f"instance name not usable as a file name: {instance_name!r}")
        return self.sessions_dir / f"{instance_name}.sqlite3"

    def store(self, instance_name: str) -> SessionStore:
        path = self.store_path(instance_name)  # validates the name for both kinds of store
        if self.postgres is not None:
            return self.postgres.store(instance_name)
        return SqliteStore(path)

    def session(self, instance_name: str, sink: EventSink) -> NeonizeSession:
        store = self.store(instance_name)
        if instance_name in self._sessions:
            raise DriverError(f"{instance_name} already has an open session; close it first")
        if len(self._sessions) >= self.max_sessions:
            # One executor thread per session: one more would starve every other session.
            raise TransientDriverError(f"this worker already hosts {self.max_sessions} sessions")
        if self.postgres is None:
            self.sessions_dir.mkdir(parents=True, exist_ok=True)
        session = NeonizeSession(instance_name, store, sink, proxy=self._proxy, on_close=self._forget, **self._options)
        self._sessions[instance_name] = session
        return session

    def remove_store(self, instance_name: str) -> None:
        """Delete the instance's store; with PostgreSQL blocks for a query or two (DROP SCHEMA)."""
        if instance_name in self._sessions:
            raise DriverError(f"{instance_name} still has an open session; close it before removing its store")
        self.store(instance_name).remove()

    def close(self) -> None:
        """Close the worker's own PostgreSQL connection, if any."""
        if self.postgres is not None:
            self.postgres.close()

    def install_executor(self, loop: asyncio.AbstractEventLoop) -> concurrent.futures.ThreadPoolExecutor:
        return install_executor(loop, self.max_sessions)

    def _forget(self, session: NeonizeSession) -> None:
        if self._sessions.get(session.instance_name) is session:
            del self._sessions[session.instance_name]
