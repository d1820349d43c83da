"""The zygote: a small process that only forks session hosts for the worker.

It imports, once, everything a session host needs short of the Go library (`loading.preload`), so
that every child it forks shares those pages copy-on-write; it stays single-threaded (neonize's log
thread, started by that import, is ended again), so forking is safe. The Go library is loaded only
in the children: its runtime starts threads at load time, and threads do not survive a fork.

A session host is not tied to the zygote: it starts its own session (process group), and the worker
is a child subreaper, so a host whose zygote died becomes the worker's child and goes on serving
its socket. A zygote that died or stopped answering is replaced; its hosts never notice. A host
exits when its socket to the worker closes (`child`), so hosts never outlive the worker.

Protocol, over a SOCK_SEQPACKET socket pair (one message per request): the worker sends a JSON
`HostSpec` with the child's end of a socket pair attached (SCM_RIGHTS); the zygote forks, the child
serves that socket (`child.serve`), and the zygote answers the child's pid (4 bytes). The zygote
exits when the worker's end closes, or with the worker (PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future, InvalidStateError

from scheduler.drivers.neonize.child import HostSpec, serve
from scheduler.drivers.neonize.loading import preload, quiet_log_thread

_PID = struct.Struct("!i")
_MAX_REQUEST = 1 << 16
SPAWN_TIMEOUT = 30.0  # seconds for the zygote to fork and answer; it is replaced past that
READY_TIMEOUT = 120.0  # seconds for a new zygote to import what it preloads (a loaded machine)
_READY = b"ready"
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


class Zygote:
    """The worker's handle on its zygote process: `spawn(spec, sock)` forks one session host.

    Requests are pipelined: any number of sessions may wait for a pid at once (on the event loop),
    and a reader thread hands the zygote's answers (which come in request order) to them, so a busy
    machine's scheduling delays overlap instead of adding up, one fork after the other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._answers: threading.Thread | None = None
        self._waiting: deque[Future[int]] = deque()

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    async def spawn(self, spec: HostSpec, sock: socket.socket) -> int:
        """Fork a session host serving `sock`; its pid.

        The answer is awaited on the event loop, not in a thread: hundreds of forks can be asked
        for at once. A zygote found dead, or that does not answer within `SPAWN_TIMEOUT`, is
        replaced (its hosts live on) and the request made once more to the new one."""
        for _attempt in (1, 2):
            try:
                control, answer = await asyncio.to_thread(self._request, spec, sock)
            except OSError:
                continue  # it died as we wrote: the next attempt starts a new one
            try:
                pid = await asyncio.wait_for(asyncio.wrap_future(answer), SPAWN_TIMEOUT)
            except TimeoutError:
                await asyncio.to_thread(self._replace, control)  # stopped or swamped: only forks are lost
                continue
            except OSError:
                continue  # it died meanwhile
            if pid <= 0:
                raise OSError("the session host zygote refused the request")
            return pid
        raise OSError("the session host zygote did not answer")

    def _request(self, spec: HostSpec, sock: socket.socket) -> tuple[socket.socket, Future[int]]:
        # Blocking only while a zygote starts (it preloads); otherwise one send.
        answer: Future[int] = Future()
        with self._lock:
            control = self._running()
            self._waiting.append(answer)
            try:
                socket.send_fds(control, [spec.to_json()], [sock.fileno()])
            except OSError:
                self._stop(grace=0.0)
                raise
        return control, answer

    def _replace(self, control: socket.socket) -> None:
        with self._lock:
            if self._control is control:
                self._stop(grace=0.0)

    def start(self) -> None:
        with self._lock:
            self._running()

    def close(self) -> None:
        with self._lock:
            self._stop(grace=5.0)

    def _running(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._control is not None:
            return self._control
        self._stop(grace=0.0)
        # Hosts whose zygote died are re-parented to us (not to init): we reap them, and the
        # zygote's death is no reason for them to end.
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-c", f"from {__name__} import main; main({theirs.fileno()})"],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C to the worker's group is the worker's to handle
            )
        # Its preloading is not counted against a fork's answer: wait for it here, once.
        ours.settimeout(READY_TIMEOUT)
        try:
            ready = ours.recv(len(_READY))
        except OSError:
            ready = b""
        if ready != _READY:
            ours.close()
            process.kill()
            process.wait()
            raise OSError("the session host zygote did not start")
        ours.settimeout(None)
        self._process = process
        self._control = ours
        self._waiting = deque()
        self._answers = threading.Thread(
            target=_hand_out, args=(ours, self._waiting, process), name="zygote-answers", daemon=True
        )
        self._answers.start()
        return ours

    def _stop(self, grace: float) -> None:
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.shutdown(socket.SHUT_RDWR)  # wakes the reader thread; the zygote exits
            self._control.close()
            self._control = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(grace)
            if self._process.poll() is None:
                self._process.kill()  # a stopped zygote too: SIGKILL needs no cooperation
                self._process.wait()
            self._process = None
        if self._answers is not None:
            self._answers.join(5)
            self._answers = None


def _hand_out(control: socket.socket, waiting: deque[Future[int]], process: subprocess.Popen[bytes]) -> None:
    """The reader thread: each pid the zygote answers goes to the oldest waiting request; once the
    zygote is gone, its exit status is collected at once (no zombie until the next spawn)."""
    while True:
        try:
            answer = control.recv(_PID.size)
        except OSError:
            answer = b""
        if len(answer) != _PID.size:
            break
        with contextlib.suppress(InvalidStateError):  # its asker gave up waiting
            waiting.popleft().set_result(int(_PID.unpack(answer)[0]))
    while waiting:
        with contextlib.suppress(InvalidStateError):
            waiting.popleft().set_exception(OSError("the session host zygote is gone"))
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(1.0)


def main(control_fd: int) -> None:
    """The zygote process: preload, then fork a session host per request until the worker goes."""
    control = socket.socket(fileno=control_fd)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # Before neonize's import does it its own way (it calls logging.basicConfig).
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    preload()
    quiet_log_thread()  # one thread: nothing a fork would lose
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    control.send(_READY)
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, _MAX_REQUEST, 1)
        except OSError:
            break
        if not data:
            break  # the worker is gone
        pid = -1
        try:
            spec = HostSpec.from_json(data)
        except ValueError:
            logging.getLogger(__name__).error("a session host request that is not a HostSpec: refused")
        else:
            pid = os.fork() if fds else -1
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # ffmpeg's exit status is wanted in the child
            serve(socket.socket(fileno=fds[0]), spec)  # never returns
        for fd in fds:
            os.close(fd)
        control.send(_PID.pack(pid))
