"""What a failure logs never holds an API key, a webhook secret or a message body (issue 23): the
logging `wa-gateway serve` sets up prints plain tracebacks, without the local variables of each
frame (rich's tracebacks showed them when rich was installed, as `make run` installs it). The
failures: a request, a send, and webhook deliveries (a receiver answering 500, one refusing the
connection, and a delivery that crashes with the decrypted secret in its frames)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from core import keys
from core.logs import configure_logging
from core.redis_client import connect
from tests.conftest import eventually, instance_body, make_settings
from tests.receiver import Receiver
from webhooks.schedule import Schedule

SECRET = "webhook-secret-that-must-not-leak"
BODY = "a-message-body-that-must-not-leak"


@pytest.fixture(params=["console", "json"])
def settings(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Settings:
    fast = {"webhook_retry_delays": (0.05,) * 3, "webhook_probe_delays": (0.05,)}
    return make_settings(redis_url, tmp_path / "data", log_format=request.param, log_level="debug", **fast)


@pytest.fixture
def logged(settings: Settings) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(settings)  # as `wa-gateway serve` does; its handler writes here instead of stderr
    written = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(written)
    yield written
    root.handlers[:], root.level = handlers, level


async def test_a_failing_request_and_a_failing_send_log_no_key_secret_or_body(
    gateway: TestClient, acme: dict[str, str], settings: Settings, logged: io.StringIO
) -> None:
    redis = connect(settings.redis_url or "")
    try:
        # A request that fails (500) with the key and the secret in its frames: the tenant's index
        # of instances is of the wrong type.
        await redis.set(keys.tenant_instances("acme"), "not a sorted set")
        failed = await gateway.post("/instance/create", json=instance_body(webhookSecret=SECRET), headers=acme)
        assert failed.status == 500
        await redis.delete(keys.tenant_instances("acme"))

        # A send that crashes in the pump, with the message (its body) in its frames: its record
        # is corrupted while it waits, before the instance is linked.
        name = "acme__shop1__sales"
        created = await gateway.post("/instance/create", json=instance_body(name, webhookSecret=SECRET), headers=acme)
        assert created.status == 201
        text = {"instanceName": name, "to": "5491155554444", "text": BODY}
        message_id = (await (await gateway.post("/message/text", json=text, headers=acme)).json())["id"]
        await redis.hset(keys.message(message_id), "details", "{not json")  # type: ignore[misc]
        link = {"phoneNumber": "5491100000000"}
        assert (await gateway.post(f"/sandbox/instance/{name}/link", json=link, headers=acme)).status == 200

        async def crashed() -> bool:
            return await redis.hget(keys.message(message_id), "status") == "failed"  # type: ignore[misc]

        await eventually(crashed)
    finally:
        await redis.aclose()
    output = logged.getvalue()
    assert "request.failed" in output and "Traceback" in output
    assert "pump.send_crashed" in output
    assert_holds_none(output, acme["apikey"].split("_")[2], SECRET, BODY)


def assert_holds_none(output: str, *secrets: str) -> None:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    for secret in secrets:
        # Any 12 characters of it: a traceback may wrap or cut a long value.
        assert not [secret[i : i + 12] for i in range(len(secret) - 11) if secret[i : i + 12] in plain], secret


async def test_failing_webhook_deliveries_log_no_key_secret_or_body(
    gateway: TestClient,
    acme: dict[str, str],
    logged: io.StringIO,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "acme__shop1__sales"
    body = instance_body(name, webhookUrl=receiver.url(), webhookSecret=SECRET)
    assert (await gateway.post("/instance/create", json=body, headers=acme)).status == 201
    link = {"phoneNumber": "5491100000000"}
    assert (await gateway.post(f"/sandbox/instance/{name}/link", json=link, headers=acme)).status == 200
    await eventually(lambda: receiver.accepted)
    # A receiver that answers 500, echoing what it was sent (the gateway keeps the start of it).
    receiver.go_down(500, text=f"could not take {BODY}")
    inbound = {"from": "5491155554444", "text": BODY}
    assert (await gateway.post(f"/sandbox/instance/{name}/inbound", json=inbound, headers=acme)).status == 201
    await eventually(lambda: sum(BODY.encode() in r.body for r in receiver.requests) >= 2)

    # A delivery that crashes once its secret is decrypted and its body posted.
    crashes: list[int] = []

    def crash(*args: object) -> None:
        crashes.append(1)
        raise RuntimeError("the schedule broke")

    with monkeypatch.context() as patched:
        patched.setattr(Schedule, "settle", crash)
        await eventually(lambda: crashes)
    # A receiver that refuses the connection.
    await receiver.close()
    tried = len(receiver.requests)
    await gateway.post(f"/sandbox/instance/{name}/inbound", json=inbound, headers=acme)

    async def refused() -> bool:
        return "ClientConnectorError" in logged.getvalue()

    await eventually(refused)
    assert len(receiver.requests) == tried

    output = logged.getvalue()
    assert "webhook.retrying" in output or "webhook.dead" in output
    assert "webhook.delivery_failed" in output and "Traceback" in output and "the schedule broke" in output
    assert_holds_none(output, acme["apikey"].split("_")[2], SECRET, BODY)
