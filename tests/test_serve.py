import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess, wait_for


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


def test_linked_instance_reconnects_by_itself_after_a_restart_of_serve(serve: ServeProcess) -> None:
    serve.start()
    _, tenant = serve.request("POST", "/admin/tenants", {"tenantId": "acme"}, key=serve.admin_key())
    key = tenant["apiKey"]
    name = "acme__shop1__sales"
    body = {"instanceName": name, "webhookUrl": "https://hooks.invalid/wa", "webhookSecret": "s" * 16}
    assert serve.request("POST", "/instance/create", body, key=key)[0] == 201
    assert serve.request("POST", f"/sandbox/instance/{name}/link", {"phoneNumber": "5491112345678"}, key=key)[0] == 200
    assert serve.stop() == 0

    serve.start()
    status = wait_for(lambda: _open(serve, name, key), 15, "reconnected")
    assert status["phoneNumber"] == "5491112345678"
    sent = {"instanceName": name, "to": "5491100000001", "text": "after the restart"}
    message_id = serve.request("POST", "/message/text", sent, key=key)[1]["id"]
    done = wait_for(lambda: _sent(serve, message_id, key), 15, "sent")
    assert done["text"] == "after the restart"


def _open(serve: ServeProcess, name: str, key: str) -> dict | None:
    status = serve.request("GET", f"/instance/{name}/status", key=key)[1]
    return status if status["state"] == "open" else None


def _sent(serve: ServeProcess, message_id: str, key: str) -> dict | None:
    message = serve.request("GET", f"/message/{message_id}", key=key)[1]
    return message if message["status"] == "sent" else None
