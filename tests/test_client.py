"""The Python client (`wa_gateway_client`) against a live gateway: every route of the route table
has a method, the seed's flow runs through it async and sync, errors come back typed, and the
webhook helpers verify what the gateway really signs."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import parse_qs, urlsplit

import pytest
import zxingcpp
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from pydantic import BaseModel
from pytest_aiohttp import AiohttpClient

import wa_gateway_client
from gateway.app import ROUTES, SANDBOX_ROUTES, create_app
from gateway.state import SERVICES
from tests.conftest import ADMIN_KEY, eventually, make_settings
from tests.test_layers import LAYERS, imports_of
from tests.test_media import make_image
from wa_gateway_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    ForbiddenError,
    LidLookup,
    NotFoundError,
    RateLimitedError,
    Recipient,
    ValidationError,
    WebhookEvent,
    sign,
    verify_signature,
    webhook_handler,
)
from wa_gateway_client.calls import Operation
from wa_gateway_client.models import Model, camel
from wa_gateway_client.routes import Routes
from webhooks import signing

NAME = "acme__shop1__sales"
SECRET = "0123456789abcdef-secret"
PHONE = "5491112345678"
HOOK = "http://127.0.0.1:9/hook"  # refused at once: nothing leaves this machine
MEDIA = "http://127.0.0.1:9/media"


def operations() -> dict[tuple[str, str], str]:
    return {(op.method, op.template): name for name, op in vars(Routes).items() if isinstance(op, Operation)}


# The WebSocket is a stream, not a request: the async client reads it with `events()`.
STREAMS = {("GET", "/events"): AsyncClient.events}


def test_every_route_of_the_route_table_has_a_client_method_and_no_method_is_stale() -> None:
    served = {(r.method, r.path) for r in ROUTES + SANDBOX_ROUTES if r.in_docs or r.path == "/openapi.json"}
    assert set(operations()) | set(STREAMS) == served


async def test_the_client_reads_metrics_as_text_and_events_live(
    gateway: TestClient, admin: AsyncClient, acme: AsyncClient
) -> None:
    await acme.create_instance(NAME, HOOK, SECRET)
    await first_qr_out(gateway)
    await acme.sandbox_link(NAME, phone_number="5491100000000")
    stream = acme.events(instance=NAME, since="0-0")  # from the stream's start: the link is in it
    event = await asyncio.wait_for(anext(stream), 10)
    await stream.aclose()  # type: ignore[attr-defined]
    assert (event["event"], event["instanceName"], event["data"]["phoneNumber"]) == (
        "instance.connected",
        NAME,
        "5491100000000",
    )
    assert event["cursor"] and event["deliveryId"]
    text = await admin.metrics()
    assert "# TYPE wa_instances gauge" in text and "wa_workers_alive 1.0" in text


async def test_the_client_sends_inbound_media_and_reads_it_back_by_key_and_by_signed_link(
    gateway: TestClient, acme: AsyncClient, base_url: str
) -> None:
    await acme.create_instance(NAME, HOOK, SECRET)
    await first_qr_out(gateway)
    await acme.sandbox_link(NAME, phone_number="5491100000000")
    png = make_image("PNG")
    encoded = base64.b64encode(png).decode()
    await acme.sandbox_inbound(NAME, from_lid="123456789012345", media_base64=encoded, caption="look")
    stream = acme.events(instance=NAME, since="0-0")
    event = await asyncio.wait_for(anext(stream), 10)
    while event["event"] != "message.received":
        event = await asyncio.wait_for(anext(stream), 10)
    await stream.aclose()  # type: ignore[attr-defined]
    data = event["data"]
    assert (data["from"], data["fromLid"], data["caption"]) == (None, "123456789012345", "look")
    assert await acme.get_media(data["media"]["id"]) == png
    link = parse_qs(urlsplit(data["media"]["url"]).query)
    async with AsyncClient(base_url) as keyless:
        assert await keyless.get_media(data["media"]["id"], exp=int(link["exp"][0]), sig=link["sig"][0]) == png
        with pytest.raises(AuthenticationError):
            await keyless.get_media(data["media"]["id"])


def _wire_fields(model: type[BaseModel]) -> dict[str, Any]:
    """A response model's fields as the API shows them, nested models expanded."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        kind = get_args(field.annotation)[0] if get_origin(field.annotation) is list else field.annotation
        nested = isinstance(kind, type) and issubclass(kind, BaseModel)
        fields[field.alias or name] = _wire_fields(kind) if nested else None  # type: ignore[arg-type]
    return fields


def _client_fields(model: type[Model]) -> dict[str, Any]:
    hints = get_type_hints(model)
    fields = {}
    for field in dataclasses.fields(model):  # type: ignore[arg-type]
        kind = hints[field.name]
        kind = get_args(kind)[0] if get_origin(kind) is list else kind
        nested = isinstance(kind, type) and issubclass(kind, Model)
        fields[camel(field.name)] = _client_fields(kind) if nested else None
    return fields


def test_the_client_reads_every_field_each_route_answers() -> None:
    routes = {(r.method, r.path): r for r in ROUTES + SANDBOX_ROUTES}
    compared = 0
    for (method, template), name in operations().items():
        answer = get_args(get_type_hints(getattr(Routes, name).build)["return"])[0]
        answer = get_args(answer)[0] if get_origin(answer) is list else answer
        response = routes[method, template].response
        if response is None or not (isinstance(answer, type) and issubclass(answer, Model)):
            continue
        wire = _wire_fields(response)
        if len(wire) == 1 and set(wire) != set(_client_fields(answer)):  # a page: {messages: [...]}
            [wire] = wire.values()
        assert _client_fields(answer) == wire, name
        compared += 1
    assert compared >= 25


def test_the_client_imports_nothing_of_the_server() -> None:
    package = Path(wa_gateway_client.__file__).parent
    found = [(path.name, target) for path in package.glob("*.py") for _, target in imports_of(path)]
    assert found and [(name, target) for name, target in found if target.split(".")[0] in LAYERS] == []


@pytest.fixture
def base_url(gateway: TestClient) -> str:
    return str(gateway.make_url("/"))


@pytest.fixture
async def admin(base_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url, ADMIN_KEY) as client:
        yield client


@pytest.fixture
async def acme(admin: AsyncClient, base_url: str) -> AsyncIterator[AsyncClient]:
    created = await admin.create_tenant("acme", name="Acme")
    async with AsyncClient(base_url, created.api_key) as client:
        yield client


async def first_qr_out(gateway: TestClient, name: str = NAME) -> None:
    """Link only once the connect command has produced the first QR (as a phone would)."""

    async def out() -> bool:
        instance = await gateway.app[SERVICES].instances.find(name)
        return instance is not None and instance.qr is not None

    await eventually(out)


async def test_the_seed_flow_tenant_instance_qr_link_send_status(gateway: TestClient, acme: AsyncClient) -> None:
    assert (await acme.health()).status == "ok"
    me = await acme.whoami()
    assert (me.tenant_id, me.admin) == ("acme", False)

    created = await acme.create_instance(NAME, HOOK, SECRET)
    assert (created.instance_name, created.state) == (NAME, "connecting")
    qr = await acme.get_qr(NAME)
    [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.png)))
    await first_qr_out(gateway)
    assert code.text == (await gateway.app[SERVICES].instances.get(NAME)).qr
    assert (await acme.request_pairing_code(NAME, PHONE)).pairing_code

    await acme.sandbox_link(NAME, phone_number="5491100000000")
    status = await acme.get_status(NAME)
    assert (status.state, status.phone_number) == ("open", "5491100000000")

    queued = await acme.send_text(NAME, PHONE, "Hello", lane="urgent", idempotency_key="k-1")
    assert (queued.status, queued.lane, queued.instance_name) == ("pending", "urgent", NAME)
    assert (await acme.send_text(NAME, PHONE, "Hello", lane="urgent", idempotency_key="k-1")).id == queued.id

    async def sent() -> bool:
        return (await acme.get_message(queued.id)).status == "sent"

    await eventually(sent)
    message = await acme.get_message(queued.id)
    assert (message.to, message.text, message.type, message.attempts) == (PHONE, "Hello", "text", 1)
    assert [m.id for m in await acme.list_messages(NAME, limit=5)] == [queued.id]
    assert (await acme.get_queue(NAME)).total == 0
    assert [i.instance_name for i in await acme.list_tenant_instances("acme")] == [NAME]
    assert [i.instance_name for i in await acme.list_client_instances("acme", "shop1")] == [NAME]

    routed = await acme.send_routed("acme", "shop1", PHONE, "text", text="Routed {hi|hello}")
    assert routed.instance_name == NAME
    media = [
        await acme.send_image(NAME, PHONE, f"{MEDIA}/a.png", caption="pic", lane="bulk"),
        await acme.send_document(NAME, PHONE, f"{MEDIA}/a.pdf", "a.pdf"),
        await acme.send_audio(NAME, PHONE, f"{MEDIA}/a.ogg"),
        await acme.send_video(NAME, PHONE, f"{MEDIA}/a.mp4", caption="clip"),
    ]
    types = [(await acme.get_message(q.id)).type for q in media]
    assert types == ["image", "document", "audio", "video"]
    batch = [
        {"type": "text", "instance_name": NAME, "to": PHONE, "text": "one", "client_ref": "order-1"},
        {"type": "text", "instanceName": NAME, "to": PHONE, "text": "two", "lane": "bulk"},
    ]
    first, second = await acme.send_batch(batch)
    assert (first.client_ref, first.replayed, second.lane) == ("order-1", False, "bulk")
    [again] = await acme.send_batch(batch[:1])
    assert (again.id, again.replayed) == (first.id, True)
    with pytest.raises(ValidationError) as bad_batch:
        await acme.send_batch([{"type": "text", "instance_name": NAME, "to": "+54", "text": "x"}])
    assert bad_batch.value.issues[0].path[:2] == ("messages", 0)

    await acme.delete_instance(NAME)
    with pytest.raises(NotFoundError):
        await acme.get_status(NAME)


async def test_errors_come_back_typed_with_code_message_issues_and_request_id(
    acme: AsyncClient, admin: AsyncClient, base_url: str
) -> None:
    with pytest.raises(ValidationError) as invalid:
        await acme.create_instance(NAME, "not a url", "short")
    error = invalid.value
    assert (error.status, error.code) == (400, "validation_error")
    assert {issue.path for issue in error.issues} == {("webhookUrl",), ("webhookSecret",)}
    assert error.request_id and error.request_id.startswith("req_")

    await acme.create_instance(NAME, HOOK, SECRET)
    with pytest.raises(ConflictError) as taken:
        await acme.create_instance(NAME, HOOK, SECRET)
    assert taken.value.code == "already_exists"
    with pytest.raises(ValidationError) as phone:
        await acme.send_text(NAME, "+54 9 11 1234", "hi")
    assert [issue.path for issue in phone.value.issues] == [("to",)]
    with pytest.raises(NotFoundError):
        await acme.get_message("msg_nothing")

    globex = await admin.create_tenant("globex")
    async with AsyncClient(base_url, globex.api_key) as other:
        with pytest.raises(ForbiddenError) as forbidden:
            await other.get_status(NAME)
        assert forbidden.value.code == "forbidden_tenant"
    with pytest.raises(ForbiddenError):
        await acme.stats()
    async with AsyncClient(base_url, "wrong-key") as stranger:
        with pytest.raises(AuthenticationError) as unknown:
            await stranger.whoami()
        assert unknown.value.message == "unknown or revoked API key"


async def test_over_the_rate_limit_the_error_says_when_to_retry(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path
) -> None:
    server = await aiohttp_client(create_app(make_settings(redis_url, tmp_path, rate_limit=2)))
    async with AsyncClient(str(server.make_url("/")), ADMIN_KEY, retries=0) as admin:
        await admin.whoami()
        await admin.whoami()
        with pytest.raises(RateLimitedError) as limited:
            await admin.whoami()
    assert (limited.value.status, limited.value.code) == (429, "rate_limited")
    assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 60


async def test_the_sync_client_runs_the_admin_routes(gateway: TestClient, base_url: str) -> None:
    def admin_session() -> tuple[str, int, int]:
        with Client(base_url, ADMIN_KEY) as admin:
            assert admin.whoami().admin
            created = admin.create_tenant("acme")
            extra = admin.issue_key("acme")
            assert {t.tenant_id: len(t.key_ids) for t in admin.list_tenants()} == {"acme": 2}
            admin.revoke_key(created.key_id)
            with pytest.raises(AuthenticationError):
                Client(base_url, created.api_key).whoami()
            tenant = Client(base_url, extra.api_key)
            tenant.create_instance(NAME, HOOK, SECRET)
            tenant.send_text(NAME, PHONE, "waits: the instance is not linked")
            flushed = admin.flush_queue(NAME)
            stats = admin.stats()
            assert [w.worker_id for w in admin.list_workers()] == ["test-worker"]
            assert "/message/text" in admin.openapi()["paths"]
            return flushed.instance_name, flushed.flushed, stats.messages["accepted"]

    assert await asyncio.to_thread(admin_session) == (NAME, 1, 1)


async def test_sandbox_controls_through_the_client(gateway: TestClient, acme: AsyncClient) -> None:
    await acme.create_instance(NAME, HOOK, SECRET)
    await first_qr_out(gateway)
    await acme.sandbox_link(NAME)
    await acme.sandbox_fail_next(NAME, "refused by the test", count=1)
    failed = await acme.send_text(NAME, PHONE, "fails")
    ok = await acme.send_text(NAME, PHONE, "goes out")

    async def settled() -> bool:
        return (await acme.get_message(ok.id)).status == "sent"

    await eventually(settled)
    assert (await acme.get_message(failed.id)).status == "failed"
    [out] = await acme.sandbox_sent(NAME)
    assert (out.to, out.text, out.jid) == (PHONE, "goes out", f"{PHONE}@s.whatsapp.net")
    assert (await acme.get_message(ok.id)).recipient == Recipient(PHONE, None, f"{PHONE}@s.whatsapp.net")
    await acme.sandbox_declare_accounts(NAME, [{"numbers": ["525512345678", "5215512345678"], "lid": "123456789"}])
    [check] = await acme.check_numbers(NAME, ["5215512345678"])
    assert (check.jid, check.lid) == ("525512345678@s.whatsapp.net", "123456789")
    assert await acme.lookup_lid(NAME, "123456789") == LidLookup("123456789", "525512345678")
    wa_id = (await acme.get_message(ok.id)).wa_message_id
    assert wa_id is not None
    await acme.sandbox_receipt(NAME, [wa_id], "read")
    assert (await acme.get_message(ok.id)).status == "read"
    assert (await acme.sandbox_inbound(NAME, PHONE, text="hi there", push_name="Ana")).strip()
    await acme.sandbox_ban(NAME, 60)
    await acme.sandbox_unlink(NAME)

    async def closed() -> bool:
        return (await acme.get_status(NAME)).state == "close"

    await eventually(closed)


@pytest.fixture
async def hook_server() -> AsyncIterator[tuple[str, list[WebhookEvent], dict[str, str]]]:
    """An aiohttp app receiving webhooks through `webhook_handler`, secrets looked up per instance."""
    events: list[WebhookEvent] = []
    secrets: dict[str, str] = {}

    async def secret_of(instance_name: str) -> str | None:
        return secrets.get(instance_name)

    async def on_event(event: WebhookEvent) -> None:
        events.append(event)

    app = web.Application()
    app.router.add_post("/hook", webhook_handler(secret_of, on_event))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", events, secrets
    await runner.cleanup()


async def test_the_webhook_receiver_helper_verifies_what_the_gateway_signs(
    gateway: TestClient, acme: AsyncClient, hook_server: tuple[str, list[WebhookEvent], dict[str, str]]
) -> None:
    url, events, secrets = hook_server
    secrets[NAME] = SECRET
    await acme.create_instance(NAME, url, SECRET)
    await first_qr_out(gateway)
    await acme.sandbox_link(NAME)
    test = await acme.send_test_webhook(NAME)
    await eventually(lambda: any(e.event == "webhook.test" for e in events))
    event = next(e for e in events if e.event == "webhook.test")
    assert (event.instance_name, event.delivery_id) == (NAME, test.delivery_id)
    assert verify_signature(event.body, sign(event.body, SECRET), SECRET)

    page = await acme.list_deliveries(NAME, limit=10)
    delivered = next(d for d in page.deliveries if d.id == test.delivery_id)
    assert delivered.status == "delivered" and delivered.attempts[-1].status_code == 204
    assert (await acme.replay_delivery(NAME, test.delivery_id)).status == "pending"
    await eventually(lambda: [e.delivery_id for e in events].count(test.delivery_id) == 2)

    # A new secret the receiver does not know yet: the helper answers 401 and never passes it on.
    rotated = await acme.update_webhook(NAME, webhook_secret="another-secret-0123456789")
    assert rotated.secret_rotated and rotated.events == ["*"] and rotated.webhook.state == "ok"
    assert (await acme.get_status(NAME)).webhook.pending >= 0
    assert (await acme.replay_dead_letters(NAME)).replayed == 0
    seen = len(events)
    retried = await acme.send_test_webhook(NAME)

    async def refused() -> bool:
        page = await acme.list_deliveries(NAME, limit=10)
        attempts = next(d for d in page.deliveries if d.id == retried.delivery_id).attempts
        return bool(attempts) and attempts[0].status_code == 401

    await eventually(refused)
    assert len(events) == seen
    # Once the receiver knows the new secret, the gateway's retry gets through.
    secrets[NAME] = "another-secret-0123456789"
    await eventually(lambda: any(e.delivery_id == retried.delivery_id for e in events), timeout=15)


async def test_the_receiver_helper_refuses_unsigned_and_foreign_bodies(aiohttp_client: AiohttpClient) -> None:
    received: list[WebhookEvent] = []

    async def on_event(event: WebhookEvent) -> None:
        received.append(event)

    app = web.Application()
    app.router.add_post("/hook", webhook_handler(SECRET, on_event))
    client = await aiohttp_client(app)
    body = b'{"event":"message.received","instanceName":"acme__shop1__sales","data":{},"timestamp":"t"}'
    assert (await client.post("/hook", data=body)).status == 401
    forged = {"x-gateway-signature": sign(body, "some-other-secret-xyz")}
    assert (await client.post("/hook", data=body, headers=forged)).status == 401
    assert (await client.post("/hook", data=b"[]", headers={"x-gateway-signature": sign(b"[]", SECRET)})).status == 400
    signed = {"x-gateway-signature": sign(body, SECRET).upper(), "x-gateway-delivery": "evt_1"}
    assert (await client.post("/hook", data=body, headers=signed)).status == 204
    assert [(e.event, e.delivery_id, e.data) for e in received] == [("message.received", "evt_1", {})]


def readme_flow() -> str:
    """The Python block of the README's "Python client" section."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    return text.split("## Python client", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readme_flow_runs_as_written(
    gateway: TestClient,
    base_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    here = tmp_path / "readme"  # (tmp_path/data is the gateway's)
    (here / "data").mkdir(parents=True)
    (here / "data" / "admin.key").write_text(ADMIN_KEY + "\n")
    monkeypatch.chdir(here)
    code = readme_flow()
    assert '"http://127.0.0.1:8080"' in code
    # Nothing may leave this machine: the gateway, and a webhook URL that refuses at once.
    code = code.replace('"http://127.0.0.1:8080"', repr(base_url)).replace("https://example.com/hook", HOOK)
    capsys.readouterr()
    await asyncio.to_thread(exec, code, {})
    # What the flow printed, without the log lines of the gateway running in this process.
    printed = [line for line in capsys.readouterr().out.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert printed[-1] == "sent"
    assert zxingcpp.read_barcodes(Image.open(here / "qr.png"))


@pytest.mark.parametrize("body", [b"", b"{}", "é€ unicode".encode(), bytes(range(256))])
def test_the_standalone_signature_is_the_gateways(body: bytes) -> None:
    assert sign(body, SECRET) == signing.sign(body, SECRET)
    assert sign(body, SECRET) == hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    header = f"  {signing.sign(body, SECRET).upper()} "
    assert verify_signature(body, header, SECRET) == signing.verify_signature(body, header, SECRET) is True
    assert not verify_signature(body + b"x", header, SECRET)
