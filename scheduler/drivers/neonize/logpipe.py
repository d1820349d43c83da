"""A session host's log, on its way to the worker's structured log.

Every record of the host's loggers (whatsmeow's lines among them: neonize's Go side calls
`whatsmeow` with each entry at or above the level it was given) becomes a `wire.Log` frame. The
pipe is bounded: lines that find `limit` others waiting are dropped and counted, and the count is
logged once the worker catches up, so a flood can neither grow the host nor stall the Go thread
that logs. Started in the host, after the fork: no thread of the zygote is needed for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import threading
from collections import deque
from collections.abc import Callable

from scheduler.drivers.neonize import wire
from scheduler.drivers.neonize.loading import _pb

LOG_BACKLOG = 1000  # lines waiting for the worker at most


class LogPipe(logging.Handler):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, send: Callable[[wire.Log], bool], limit: int = LOG_BACKLOG
    ) -> None:
        super().__init__()
        self._loop = loop
        self._send = send  # False: the line could not go (the worker is behind)
        self._limit = limit
        self._pending: deque[wire.Log] = deque()
        self._dropped = 0
        self._scheduled = False
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        except Exception:  # a record that cannot be formatted is not worth a crash
            return
        with self._guard:
            if len(self._pending) >= self._limit:
                self._dropped += 1
                return
            self._pending.append(wire.Log(record.levelno, record.name, message))
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the host is ending
            self._loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._guard:
            lines, self._pending = self._pending, deque()
            dropped, self._dropped = self._dropped, 0
            self._scheduled = False
        for line in lines:
            if not self._send(line):
                dropped += 1
        if dropped:
            note = f"{dropped} log line(s) of this session host dropped: the worker was not keeping up"
            self._send(wire.Log(logging.WARNING, __name__, note))

    def whatsmeow(self, entry: int, size: int) -> None:
        """neonize's log callback (called from Go with a serialized `LogEntry`)."""
        try:
            parsed = _pb().LogEntry.FromString(ctypes.string_at(entry, size))
            level = logging.getLevelName(parsed.Level.upper())
            name = parsed.Name.replace("/", ".") or "Client"
            logger = logging.getLogger(f"whatsmeow.{name}")
            logger.log(level if isinstance(level, int) else logging.INFO, parsed.Message)
        except Exception:  # raised into Go it would only be printed; a lost line is the lesser harm
            return
