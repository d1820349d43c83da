"""Inbound media in an S3-compatible bucket: core/media_s3.py against moto's standalone S3-protocol
server on 127.0.0.1 (a real HTTP server speaking S3; no S3 service is reachable from here), and the
whole inbound-media flow with the API and the worker on separate data directories."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiobotocore.session import get_session
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from config import Settings, SettingsError, load_settings
from core.media_s3 import S3MediaStore, parse_location
from gateway.app import create_app
from scheduler.worker import GatewayWorker
from tests.conftest import ADMIN, eventually, instance_body, make_settings
from tests.receiver import Receiver
from tests.test_media import make_image

NAME = "acme__shop1__sales"
PNG = make_image("PNG")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in a process of its own on a free loopback port."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("moto's server exited at start")
                subprocess.run(["sleep", "0.05"], check=True)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
async def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh bucket, with credentials and region given the standard way (AWS_* variables)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = "media-" + request.node.name.replace("_", "-")[:40].strip("-").lower()
    async with get_session().create_client("s3", endpoint_url=s3_endpoint) as s3:
        await s3.create_bucket(Bucket=name)
    return name


async def keys_in(endpoint: str, bucket: str) -> list[str]:
    async with get_session().create_client("s3", endpoint_url=endpoint) as s3:
        listed = await s3.list_objects_v2(Bucket=bucket)
    return sorted(found["Key"] for found in listed.get("Contents", []))


@pytest.fixture
async def store(s3_endpoint: str, bucket: str) -> AsyncIterator[S3MediaStore]:
    found = S3MediaStore(f"s3://{bucket}/gw/media", s3_endpoint)
    yield found
    await found.close()


def test_location_names_the_bucket_and_a_prefix() -> None:
    assert parse_location("s3://media") == ("media", "")
    assert parse_location("s3://media/gw/in/") == ("media", "gw/in/")


async def test_put_then_get_round_trips_the_bytes_under_the_prefix(store: S3MediaStore, s3_endpoint: str) -> None:
    await store.put(NAME, "med_1", PNG)
    assert await store.get(NAME, "med_1") == PNG
    assert await keys_in(s3_endpoint, store.bucket) == [f"gw/media/{NAME}/med_1"]
    assert await store.get(NAME, "med_missing") is None
    assert await store.get(NAME, "../escape") is None
    with pytest.raises(ValueError):
        await store.put("..", "med_1", PNG)


async def test_drop_deletes_one_instance_only_past_one_delete_batch(store: S3MediaStore, s3_endpoint: str) -> None:
    other = "acme__shop1__support"
    for index in range(1005):  # more than one DeleteObjects call holds
        await store.put(NAME, f"med_{index}", b"x")
    await store.put(other, "med_kept", b"kept")
    await store.drop(NAME)
    assert await keys_in(s3_endpoint, store.bucket) == [f"gw/media/{other}/med_kept"]


async def test_sweep_deletes_only_what_was_stored_before_the_cutoff(store: S3MediaStore) -> None:
    await store.put(NAME, "med_a", b"a")
    assert await store.sweep(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert await store.get(NAME, "med_a") == b"a"
    assert await store.sweep(datetime.now(UTC) + timedelta(minutes=1)) == 1
    assert await store.get(NAME, "med_a") is None


def test_a_malformed_store_location_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_MEDIA_STORE"):
        load_settings({"GATEWAY_MEDIA_STORE": "s3://No_Such Bucket"})
    with pytest.raises(SettingsError, match="GATEWAY_MEDIA_STORE"):
        load_settings({"GATEWAY_MEDIA_STORE": "nfs:/mnt/media"})
    assert load_settings({"GATEWAY_MEDIA_STORE": "s3://media/in"}).media_store == "s3://media/in"


@pytest.fixture
def split(redis_url: str, tmp_path: Path, bucket: str, s3_endpoint: str) -> tuple[Settings, Settings]:
    """The API's and the worker's settings: one Redis and one bucket, separate data directories."""
    shared = {"media_store": f"s3://{bucket}/media", "s3_endpoint_url": s3_endpoint, "webhook_retry_delays": (0.05,)}
    return (
        make_settings(redis_url, tmp_path / "api", **shared),
        make_settings(redis_url, tmp_path / "worker", **shared),
    )


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, split: tuple[Settings, Settings]) -> AsyncIterator[TestClient]:
    worker = GatewayWorker(split[1])
    await worker.start()
    yield await aiohttp_client(create_app(split[0]))
    await worker.stop()


async def test_inbound_media_flows_from_a_worker_to_the_api_through_the_bucket_alone(
    api: TestClient, split: tuple[Settings, Settings], receiver: Receiver, bucket: str, s3_endpoint: str
) -> None:
    created = await api.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    acme = {"apikey": (await created.json())["apiKey"]}
    made = await api.post("/instance/create", json=instance_body(webhookUrl=receiver.url()), headers=acme)
    assert made.status == 201, await made.text()
    linked = await api.post(f"/sandbox/instance/{NAME}/link", json={"phoneNumber": "5491100000000"}, headers=acme)
    assert linked.status == 200, await linked.text()
    body = {"from": "5491155554444", "mediaBase64": base64.b64encode(PNG).decode()}
    assert (await api.post(f"/sandbox/instance/{NAME}/inbound", json=body, headers=acme)).status == 201

    async def received() -> dict[str, object] | None:
        found = receiver.of("message.received")
        return found[0].json()["data"] if found else None

    media = (await eventually(received))["media"]
    assert isinstance(media, dict)
    assert await keys_in(s3_endpoint, bucket) == [f"media/{NAME}/{media['id']}"]
    for settings in split:  # neither process kept the bytes on its disk
        assert not list((settings.data_dir / "media").glob("**/med_*"))

    served = await api.get(urlsplit(str(media["url"]))._replace(scheme="", netloc="").geturl())
    assert served.status == 200, await served.text()
    assert await served.read() == PNG

    assert (await api.delete(f"/instance/{NAME}", headers=acme)).status == 204
    assert await keys_in(s3_endpoint, bucket) == []
