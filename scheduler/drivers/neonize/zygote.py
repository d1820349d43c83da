"""The zygote: a small process that forks session hosts for the worker.

It imports, once, everything a session host needs short of the Go library (`loading.preload`), so
that every child it forks shares those pages copy-on-write; it stays single-threaded, so forking is
safe. The Go library is loaded only in the children: its runtime starts threads at load time, and
threads do not survive a fork.

Protocol, over a SOCK_SEQPACKET socket pair (one message per request): the worker sends a pickled
`HostSpec` with the child's end of a socket pair attached (SCM_RIGHTS); the zygote forks, the child
serves that socket (`child.serve`), and the zygote answers the child's pid (4 bytes). The zygote
exits when the worker's end closes; its children then get SIGKILL (PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future

from scheduler.drivers.neonize.child import HostSpec, serve
from scheduler.drivers.neonize.loading import preload

_PID = struct.Struct("!i")
_MAX_REQUEST = 1 << 16
SPAWN_TIMEOUT = 30.0  # seconds for the zygote to fork and answer; it is replaced past that


class Zygote:
    """The worker's handle on its zygote process: `spawn(spec, sock)` forks one session host.

    Requests are pipelined: several threads may wait for a pid at once, and a reader thread hands
    the zygote's answers (which come in request order) to them, so a busy machine's scheduling
    delays overlap instead of adding up, one fork after the other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._answers: threading.Thread | None = None
        self._waiting: deque[Future[int]] = deque()

    def spawn(self, spec: HostSpec, sock: socket.socket) -> int:
        """Fork a session host serving `sock`; its pid. Blocking: call it from a thread."""
        answer: Future[int] = Future()
        with self._lock:
            for attempt in (1, 2):  # a zygote found dead is replaced once
                control = self._running()
                self._waiting.append(answer)
                try:
                    socket.send_fds(control, [pickle.dumps(spec)], [sock.fileno()])
                    break
                except OSError:
                    self._stop()
                    if attempt == 2:
                        raise OSError("the session host zygote is gone") from None
                    answer = Future()
        try:
            return answer.result(SPAWN_TIMEOUT)
        except TimeoutError:
            with self._lock:
                self._stop()  # a zygote that stopped answering is replaced at the next spawn
            raise OSError("the session host zygote did not answer") from None

    def start(self) -> None:
        with self._lock:
            self._running()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _running(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._control is not None:
            return self._control
        self._stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-c", f"from {__name__} import main; main({theirs.fileno()})"],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        self._control = ours
        self._waiting = deque()
        self._answers = threading.Thread(
            target=_hand_out, args=(ours, self._waiting), name="zygote-answers", daemon=True
        )
        self._answers.start()
        return ours

    def _stop(self) -> None:
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
            self._control.close()
            self._control = None
        if self._answers is not None:
            self._answers.join(5)
            self._answers = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._process = None


def _hand_out(control: socket.socket, waiting: deque[Future[int]]) -> None:
    """The reader thread: each pid the zygote answers goes to the oldest waiting request."""
    while True:
        try:
            answer = control.recv(_PID.size)
        except OSError:
            answer = b""
        if len(answer) != _PID.size:
            break
        waiting.popleft().set_result(int(_PID.unpack(answer)[0]))
    while waiting:
        waiting.popleft().set_exception(OSError("the session host zygote is gone"))


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(control_fd: int) -> None:
    """The zygote process: preload, then fork a session host per request until the worker goes."""
    control = socket.socket(fileno=control_fd)
    _die_with_parent()
    # Before neonize's import does it its own way (it calls logging.basicConfig).
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, _MAX_REQUEST, 1)
        except OSError:
            break
        if not data:
            break  # the worker is gone
        spec: HostSpec = pickle.loads(data)
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # ffmpeg's exit status is wanted in the child
            _die_with_parent()
            serve(socket.socket(fileno=fds[0]), spec)  # never returns
        for fd in fds:
            os.close(fd)
        control.send(_PID.pack(pid))
