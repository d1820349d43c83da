import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path / "data")
    yield process
    if process.process is not None:
        process.stop()


def test_serve_generates_a_private_admin_key_instead_of_a_default(serve: ServeProcess) -> None:
    serve.start()
    key_file = serve.data_dir / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert serve.request("GET", "/admin/tenants", key=serve.admin_key()) == (200, [])
    assert serve.request("GET", "/admin/tenants", key="admin")[0] == 401


def test_embedded_redis_keeps_tenants_and_keys_across_a_restart(serve: ServeProcess) -> None:
    serve.start()
    status, created = serve.request("POST", "/admin/tenants", {"tenantId": "acme"}, key=serve.admin_key())
    assert status == 201
    assert serve.stop() == 0
    assert not (serve.data_dir / "redis" / "redis.sock").exists()  # its Redis stopped with it

    serve.start()
    assert serve.request("GET", "/admin/tenants", key=created["apiKey"])[0] == 403  # known key, not 401
    status, tenants = serve.request("GET", "/admin/tenants", key=serve.admin_key())
    assert [t["tenantId"] for t in tenants] == ["acme"]
    assert list((serve.data_dir / "redis").glob("appendonly*"))  # AOF is on
