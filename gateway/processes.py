"""Every core for `wa-gateway serve`: the extra API processes (all listening on one port with
SO_REUSEPORT, so the kernel spreads connections over them), the extra worker processes that
`serve` starts beside its own, and the webhook deliverer processes, stopped with it.

The first API process is `serve`'s own (with its in-process worker and, without a Redis URL, the
embedded Redis); each child is a plain `wa-gateway serve --no-worker` or `wa-gateway worker` told
the Redis URL and, for workers, an id of its own. A child dies with `serve` even on SIGKILL
(PR_SET_PDEATHSIG), so no orphan keeps the port or hosts sessions twice."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT = 30.0  # seconds a child has for its graceful stop before it is killed
WATCH_INTERVAL = 1.0  # seconds between looks at the children
RESTART_BACKOFF_MAX = 30.0


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@dataclass
class Child:
    role: str  # "api", "worker" or "deliverer"
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0


class Children:
    """The processes `serve` started besides itself; one that exits is started again."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = {
            **environ,
            "GATEWAY_API_PROCESSES": "1",
            "GATEWAY_WORKER_PROCESSES": "1",
            "GATEWAY_DELIVERER_PROCESSES": "0",
        }
        self.children: list[Child] = []

    def add(self, role: str, **env: str) -> None:
        child = Child(role, env)
        self._spawn(child)
        self.children.append(child)

    def _spawn(self, child: Child) -> None:
        command = {
            "api": ["serve", "--no-worker", "--reuse-port"],
            "worker": ["worker"],
            "deliverer": ["deliverer"],
        }[child.role]
        child.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", *command],
            env={**self.environ, **child.env},
            preexec_fn=_die_with(os.getpid()),  # only prctl, before exec
        )
        log.info("serve.child_started", role=child.role, pid=child.process.pid, restarts=child.restarts)

    async def watch(self) -> None:
        """Start again every child that exits, after a pause that grows with its restarts."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is None:
                    continue
                log.warning("serve.child_exited", role=child.role, pid=child.process.pid, code=code)
                await asyncio.sleep(min(RESTART_BACKOFF_MAX, 0.5 * 2**child.restarts))
                child.restarts += 1
                self._spawn(child)

    def stop(self) -> None:
        """SIGTERM to each (the same graceful stop as Ctrl-C), then SIGKILL to what is left."""
        running = [child.process for child in self.children if child.process and child.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("serve.child_killed", pid=process.pid, reason="no graceful stop in time")
                process.kill()
                process.wait()
        self.children.clear()
