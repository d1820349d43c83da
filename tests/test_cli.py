"""The `wa-gateway` command as an operator types it: --version, --data-dir, the healthcheck, and
admin commands that refuse a data directory no gateway has used."""

import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess, free_port


def wa_gateway(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": "/usr/bin:/bin", "GATEWAY_DRIVER": "sandbox", **env}
    command = [sys.executable, "-m", "gateway", *args]
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=60)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    """`wa-gateway serve`, already answering, with its data in tmp_path/data."""
    running = ServeProcess(tmp_path / "data")
    running.start()
    try:
        yield running
    finally:
        if running.process is not None:
            running.stop()


def test_version_prints_the_installed_distribution_version(tmp_path: Path) -> None:
    done = wa_gateway("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wa-gateway, version {version('wa-gateway')}"


def test_an_admin_command_refuses_a_data_directory_no_gateway_has_used(tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    done = wa_gateway("--data-dir", str(empty), "tenant", "list", cwd=tmp_path)
    assert done.returncode == 1
    assert f"no gateway data in {empty}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (empty / "redis").exists()  # no fresh Redis was started there

    done = wa_gateway("key", "issue", "acme", cwd=tmp_path)  # the default ./data, from another folder
    assert done.returncode == 1
    assert f"no gateway data in {tmp_path / 'data'}" in done.stderr


def test_data_dir_reaches_the_running_gateway_from_any_folder(serve: ServeProcess, tmp_path: Path) -> None:
    assert serve.request("POST", "/admin/tenants", {"tenantId": "acme"}, key=serve.admin_key())[0] == 201
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = wa_gateway("--data-dir", str(serve.data_dir), "tenant", "list", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("acme\t")


def test_admin_commands_start_the_embedded_redis_of_a_used_data_directory(serve: ServeProcess, tmp_path: Path) -> None:
    assert serve.request("POST", "/admin/tenants", {"tenantId": "acme"}, key=serve.admin_key())[0] == 201
    assert serve.stop() == 0

    done = wa_gateway("tenant", "list", cwd=tmp_path, GATEWAY_DATA_DIR=str(serve.data_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("acme\t")
    assert not (serve.data_dir / "redis" / "redis.sock").exists()  # stopped again afterwards


def test_health_asks_the_configured_port(serve: ServeProcess, tmp_path: Path) -> None:
    done = wa_gateway("health", cwd=tmp_path, GATEWAY_PORT=str(serve.port), GATEWAY_HOST="0.0.0.0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"http://127.0.0.1:{serve.port}/health: 200"

    closed = free_port()
    done = wa_gateway("health", "--timeout", "2", cwd=tmp_path, GATEWAY_PORT=str(closed))
    assert done.returncode == 1
    assert f"http://127.0.0.1:{closed}/health:" in done.stderr
    assert "Traceback" not in done.stderr
