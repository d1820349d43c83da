"""A Redis master, one replica and three Sentinels as real `redis-server` processes on loopback
ports, for the failover test (`redis-sentinel` is `redis-server --sentinel`)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis

from core.redis_server import find_redis_server
from tests.serve_process import free_port, wait_for

SERVICE = "mymaster"


class SentinelCluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.start_server(self.master_port)
        self.start_server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        for port in self.sentinel_ports:
            config = self.directory / f"sentinel-{port}.conf"  # Sentinel rewrites its config: one each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            self._spawn(port, str(config), "--sentinel")
        # Ready once the replica is in sync and every Sentinel knows the replica and the others.
        wait_for(lambda: self._info(self.replica_port, "master_link_status") == "up", 15, "replica in sync")
        for port in self.sentinel_ports:
            wait_for(lambda port=port: self._sentinel_ready(port), 30, f"sentinel {port} ready")

    def start_server(self, port: int, *args: str) -> None:
        self._spawn(port, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", str(self.directory), *args)  # fmt: skip
        wait_for(lambda: self._answers(port), 10, f"redis on {port}")

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def master(self) -> int:
        """The master's port, as the Sentinels see it."""
        client = redis.Redis(port=self.sentinel_ports[0], decode_responses=True, socket_timeout=2)
        try:
            return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])
        finally:
            client.close()

    def role(self, port: int) -> str | None:
        return self._info(port, "role")

    def stop(self) -> None:
        for port in list(self.processes):
            process = self.processes.pop(port)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, port: int, *args: str) -> None:
        log = open(self.directory / f"{port}.log", "ab")  # noqa: SIM115  (the process keeps it)
        self.processes[port] = subprocess.Popen([find_redis_server(), *args], stdout=log, stderr=log)
        log.close()

    def _answers(self, port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _info(self, port: int, field: str) -> str | None:
        client = redis.Redis(port=port, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)
        try:
            value = client.info("replication").get(field)  # type: ignore[union-attr]  # redis-py: sync or async
            return None if value is None else str(value)
        except redis.RedisError:
            return None
        finally:
            client.close()

    def _sentinel_ready(self, port: int) -> bool:
        client = redis.Redis(port=port, decode_responses=True, socket_timeout=1)
        try:
            state = client.sentinel_master(SERVICE)
            return bool(state["num-other-sentinels"] >= 2 and state["num-slaves"] >= 1)
        except redis.RedisError:
            return False
        finally:
            client.close()
