"""What an operator's log collector and the admin's /events see: JSON lines only (start-up
included), one access line per request without any key in it, and an audit trail of keys issued
and revoked, instances deleted and queues flushed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from core import keys
from gateway.state import SERVICES
from tests.conftest import ADMIN, open_instance
from tests.serve_process import ServeProcess
from wa_gateway_client import Client

NAME = "acme__shop1__sales"
AUDITED = ["audit.key_issued", "audit.key_issued", "audit.queue_flushed", "audit.instance_deleted", "audit.key_revoked"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    gateway = ServeProcess(tmp_path / "data", GATEWAY_LOG_FORMAT="json")
    gateway.start()
    yield gateway
    if gateway.process is not None:
        gateway.stop()


def test_the_log_is_json_lines_with_an_access_line_per_request_and_no_key(served: ServeProcess) -> None:
    admin_key = served.admin_key()
    with Client(served.base, admin_key) as admin:
        created = admin.create_tenant("acme")
        extra = admin.issue_key("acme")
        with Client(served.base, created.api_key) as tenant:
            tenant.create_instance(NAME, "https://hooks.invalid/wa", "s" * 16)
            tenant.send_text(NAME, "5491112345678", "waits: the instance is not linked")
        admin.flush_queue(NAME)
        admin.delete_instance(NAME)
        admin.revoke_key(extra.key_id)
    assert served.request("GET", f"/events?apikey={created.api_key}")[0] == 426  # a key in the query
    assert served.stop() == 0

    text = served.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON, start-up included
    events = [line["event"] for line in lines]
    assert "gateway.listening" in events and "gateway.secrets" in events
    for secret in (admin_key, created.api_key, extra.api_key, "s" * 16):
        assert secret not in text
    access = [line for line in lines if line["event"] == "http.request"]
    assert {"request_id", "method", "route", "status", "duration_ms", "timestamp", "level"} <= set(access[0])
    assert all(line["request_id"].startswith("req_") for line in access)
    seen = {(line["method"], line["route"], line["status"]) for line in access}
    assert {("POST", "/admin/tenants", 201), ("POST", "/message/text", 202), ("DELETE", "/instance/{name}", 204),
            ("GET", "/events", 426)} <= seen  # fmt: skip
    audit = [line for line in lines if line["event"].startswith("audit.")]
    assert [line["event"] for line in audit] == AUDITED
    assert audit[-1] == {**audit[-1], "by": "admin", "key_id": extra.key_id}
    assert audit[2] == {**audit[2], "instance": NAME, "flushed": 1}


async def test_audit_events_reach_the_admin_on_events_and_no_tenant(gateway: TestClient, acme: dict[str, str]) -> None:
    await open_instance(gateway, acme, NAME)
    issued = await (await gateway.post("/admin/tenants/acme/keys", headers=ADMIN)).json()
    assert (await gateway.delete(f"/admin/queue/{NAME}", headers=ADMIN)).status == 200
    assert (await gateway.delete(f"/instance/{NAME}", headers=acme)).status == 204  # by the tenant
    assert (await gateway.delete(f"/admin/keys/{issued['keyId']}", headers=ADMIN)).status == 204

    received: list[dict[str, Any]] = []
    async with gateway.ws_connect("/events?since=0", headers=ADMIN) as socket:
        while len([e for e in received if e["event"].startswith("audit.")]) < len(AUDITED):
            frame = await socket.receive(timeout=10)
            assert frame.type == WSMsgType.TEXT, frame
            received.append(frame.json())
    audit = [event for event in received if event["event"].startswith("audit.")]
    assert [event["event"] for event in audit] == AUDITED
    tenant_key_id = audit[0]["data"]["key_id"]  # acme's first key, issued by the admin
    assert audit[0]["data"] == {"by": "admin", "tenant_id": "acme", "key_id": tenant_key_id}
    assert audit[3]["instanceName"] == NAME and audit[3]["data"]["by"] == tenant_key_id
    assert all(event["deliveryId"] == "" for event in audit)  # never sent to a webhook

    tenant_stream = await gateway.app[SERVICES].redis.xrange(keys.tenant_events("acme"))
    assert not [entry for _, entry in tenant_stream if "audit." in entry["envelope"]]
