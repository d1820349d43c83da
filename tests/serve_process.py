"""Run `wa-gateway serve` as a real process, as a user would, for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def wait_for(check: Any, timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """`python -m gateway serve` (or `worker`) as its own process; its log goes to `log_path`."""

    def __init__(self, data_dir: Path, *args: str, **env: str) -> None:
        self.data_dir = data_dir
        self.args = args or ("serve",)
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_DRIVER": "sandbox",
            "GATEWAY_API_PROCESSES": "1",  # tests of several API processes ask for them
            **env,
        }
        self.log_path = data_dir.parent / f"{'-'.join(self.args)}-{env.get('GATEWAY_WORKER_ID', self.port)}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.command_prefix: tuple[str, ...] = ()  # e.g. setpriv, to run it as another user

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30, extra_args: tuple[str, ...] = (), wait_healthy: bool = True) -> None:
        command = [*self.command_prefix, sys.executable, "-m", "gateway", *self.args, *extra_args]
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        if not wait_healthy:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{' '.join(self.args)} exited: {self.log_path.read_text()[-3000:]}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.process.terminate()  # not left running behind the error (with its embedded Redis)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        raise TimeoutError(f"{' '.join(self.args)} did not become healthy")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit (after a signal sent with `signal`); its exit code."""
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def request(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        if key:
            request.add_header("apikey", key)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            error.close()
            return error.code, json.loads(raw) if raw else None

    def admin_key(self) -> str:
        return (self.data_dir / "admin.key").read_text().strip()
