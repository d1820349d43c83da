"""Media sends end to end: fetched by the worker from a real local server at send time."""

import io
import math
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from pytest_aiohttp import AiohttpClient

from tests.conftest import open_instance
from tests.test_sending import NAME, finished, gateway_with, sent


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(16000)))
    return buffer.getvalue()


@pytest.fixture
async def media_server() -> AsyncIterator[TestServer]:
    image, pdf = png(), b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n"
    routes = {
        "/cat.png": (image, "image/png"),
        "/page.png": (b"<html>not an image</html>", "image/png"),
        "/huge.png": (image + b"\0" * (6 * 1024 * 1024), "image/png"),
        "/hello.wav": (wav(), "audio/wav"),
        "/report": (pdf, "application/pdf"),
    }

    async def serve(request: web.Request) -> web.Response:
        if request.path not in routes:
            raise web.HTTPNotFound()
        body, content_type = routes[request.path]
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/{path:.*}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path) -> TestClient:
    """The gateway with one open sandbox instance; `client.acme` holds its tenant's headers."""
    client = await gateway_with(aiohttp_client, redis_url, tmp_path)
    await open_instance(client, client.acme)  # type: ignore[attr-defined]
    return client


async def send_media(client: TestClient, path: str, body: dict) -> dict:
    response = await client.post(path, json={"instanceName": NAME, "to": "5491112345678", **body}, headers=client.acme)  # type: ignore[attr-defined]
    assert response.status == 202, await response.text()
    return await finished(client, client.acme, (await response.json())["id"])  # type: ignore[attr-defined]


async def test_image_is_fetched_at_send_time_and_sent_with_its_caption(
    client: TestClient, media_server: TestServer
) -> None:
    url = str(media_server.make_url("/cat.png"))
    done = await send_media(client, "/message/image", {"imageUrl": url, "caption": "{a|b} cat"})
    assert done["status"] == "sent", done
    [record] = await sent(client, client.acme)  # type: ignore[attr-defined]
    assert (record["type"], record["mediaUrl"], record["mimetype"]) == ("image", url, "image/png")
    assert record["mediaBytes"] == len(png())
    assert record["caption"] in ("a cat", "b cat") and record["caption"] == done["caption"]


async def test_audio_goes_out_as_an_ogg_opus_voice_note(client: TestClient, media_server: TestServer) -> None:
    done = await send_media(client, "/message/audio", {"audioUrl": str(media_server.make_url("/hello.wav"))})
    assert done["status"] == "sent", done
    [record] = await sent(client, client.acme)  # type: ignore[attr-defined]
    assert record["mimetype"] == "audio/ogg; codecs=opus"


async def test_document_keeps_the_file_name_given(client: TestClient, media_server: TestServer) -> None:
    url = str(media_server.make_url("/report"))
    done = await send_media(client, "/message/document", {"documentUrl": url, "fileName": "q3.pdf"})
    assert done["status"] == "sent", done
    [record] = await sent(client, client.acme)  # type: ignore[attr-defined]
    assert (record["fileName"], record["mimetype"]) == ("q3.pdf", "application/pdf")


@pytest.mark.parametrize(
    ("path", "error"),
    [("/huge.png", "over the 5 MB image limit"), ("/page.png", "is not an image"), ("/missing.png", "404")],
)
async def test_media_that_cannot_be_used_fails_the_message_and_the_worker_goes_on(
    client: TestClient, media_server: TestServer, path: str, error: str
) -> None:
    done = await send_media(client, "/message/image", {"imageUrl": str(media_server.make_url(path))})
    assert done["status"] == "failed"
    assert done["error"].startswith("imageUrl: ") and error in done["error"]
    after = await send_media(client, "/message/text", {"text": "still going"})
    assert after["status"] == "sent"
    assert [m["type"] for m in await sent(client, client.acme)] == ["text"]  # type: ignore[attr-defined]


async def test_private_media_address_is_refused_when_the_guard_is_on(
    aiohttp_client: AiohttpClient, redis_url: str, tmp_path: Path, media_server: TestServer
) -> None:
    client = await gateway_with(aiohttp_client, redis_url, tmp_path, allow_private_urls=False)
    # a webhook name that never resolves passes the guard at create (it is checked again at delivery)
    await open_instance(client, client.acme, webhookUrl="https://hooks.invalid/wa")  # type: ignore[attr-defined]
    done = await send_media(client, "/message/image", {"imageUrl": str(media_server.make_url("/cat.png"))})
    assert done["status"] == "failed"
    assert "127.0.0.1" in done["error"] and "private" in done["error"]
