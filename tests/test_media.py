"""scheduler.media against a real aiohttp server on 127.0.0.1, and a real ffmpeg."""

from __future__ import annotations

import asyncio
import io
import math
import os
import re
import struct
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from core import netguard
from scheduler.media import (
    MAX_BYTES,
    MB,
    VOICE_NOTE_MIMETYPE,
    Media,
    MediaError,
    MediaFetcher,
    find_ffmpeg,
    is_ogg_opus,
    ogg_last_granule,
    to_voice_note,
)

STREAM_CHUNK = b"x" * (64 * 1024)
STREAM_TOTAL = 64 * MB  # what the oversize endpoints would send if nobody stopped reading


def make_image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "teal").save(buffer, fmt)
    return buffer.getvalue()


def make_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


PNG = make_image("PNG")
JPEG = make_image("JPEG")
GIF = make_image("GIF")
WAV = make_wav()
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


@dataclass
class Server:
    base: str
    sent: dict[str, int] = field(default_factory=dict)  # bytes of body written, per streaming endpoint
    finished: dict[str, asyncio.Event] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets the stalling handlers end
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


async def stream_until_stopped(
    request: web.Request, server: Server, name: str, content_length: int | None
) -> web.StreamResponse:
    """Writes up to STREAM_TOTAL bytes, counting them, until the client hangs up."""
    response = web.StreamResponse(headers={"Content-Type": "image/png"})
    if content_length is None:
        response.enable_chunked_encoding()
    else:
        response.content_length = content_length
    await response.prepare(request)
    server.sent[name] = 0
    try:
        while server.sent[name] < STREAM_TOTAL:
            await response.write(STREAM_CHUNK)
            server.sent[name] += len(STREAM_CHUNK)
        await response.write_eof()
    finally:
        server.finished[name].set()
    return response


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(base="")
    state.finished = {"chunked": asyncio.Event(), "huge": asyncio.Event()}

    async def png(request: web.Request) -> web.Response:
        state.hits["png"] = state.hits.get("png", 0) + 1
        return web.Response(body=PNG, content_type="image/png")

    async def jpeg(request: web.Request) -> web.Response:
        return web.Response(body=JPEG, content_type="image/jpeg")

    async def gif(request: web.Request) -> web.Response:
        return web.Response(body=GIF, content_type="image/gif")

    async def html_as_png(request: web.Request) -> web.Response:
        return web.Response(body=b"<!DOCTYPE html><html><body>Not found</body></html>", content_type="image/png")

    async def chunked(request: web.Request) -> web.StreamResponse:
        return await stream_until_stopped(request, state, "chunked", None)

    async def huge(request: web.Request) -> web.StreamResponse:
        return await stream_until_stopped(request, state, "huge", int(7.2 * MB))

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such file")

    async def empty(request: web.Request) -> web.Response:
        return web.Response(body=b"", content_type="image/png")

    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return web.Response(body=PNG, content_type="image/png")
        status = (301, 302, 303, 307, 308)[n % 5]
        return web.Response(status=status, headers={"Location": f"/hop/{n - 1}"})

    async def to_private(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def stall_headers(request: web.Request) -> web.Response:
        await state.release.wait()
        return web.Response(body=PNG, content_type="image/png")

    async def stall_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = len(PNG)
        await response.prepare(request)
        await response.write(PNG[:10])
        await state.release.wait()
        return response

    async def wav(request: web.Request) -> web.Response:
        return web.Response(body=WAV, content_type="audio/wav")

    async def opaque_audio(request: web.Request) -> web.Response:
        return web.Response(body=b"\0" * 4096, content_type="audio/mpeg")

    async def named(request: web.Request) -> web.Response:
        return web.Response(
            body=PDF,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": "attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf",
            },
        )

    async def pdf_in_path(request: web.Request) -> web.Response:
        return web.Response(body=PDF, content_type="application/octet-stream")

    async def csv(request: web.Request) -> web.Response:
        return web.Response(body=b"name,phone\nAna,123\nBo,456\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/image.png", png)
    app.router.add_get("/photo.jpg", jpeg)
    app.router.add_get("/anim.gif", gif)
    app.router.add_get("/fake.png", html_as_png)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/huge", huge)
    app.router.add_get("/missing", missing)
    app.router.add_get("/empty", empty)
    app.router.add_get("/hop/{n}", hop)
    app.router.add_get("/redirect", to_private)
    app.router.add_get("/stall-headers", stall_headers)
    app.router.add_get("/stall-body", stall_body)
    app.router.add_get("/tone.wav", wav)
    app.router.add_get("/opaque", opaque_audio)
    app.router.add_get("/download", named)
    app.router.add_get("/files/report 2024.pdf", pdf_in_path)
    app.router.add_get("/contacts.csv", csv)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    state.release.set()
    await runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[MediaFetcher]:
    async with MediaFetcher(allow_private=True) as media_fetcher:
        yield media_fetcher


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Lets the guard take 127.0.0.1 (the test server) for a public host, so that a redirect from it
    to a private address can be checked with the guard on; every other address is judged as usual."""
    real = netguard.is_public
    monkeypatch.setattr(netguard, "is_public", lambda address: address == "127.0.0.1" or real(address))
    yield


# --- fetching ---------------------------------------------------------------------------------


async def test_png_is_fetched_with_its_sniffed_type_and_url_file_name(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url("/image.png"), "image")
    assert media == Media(PNG, "image/png", "image.png")


async def test_jpeg_is_fetched(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url("/photo.jpg"), "image")
    assert (media.data, media.mimetype) == (JPEG, "image/jpeg")


async def test_html_served_as_png_is_refused_as_not_an_image(server: Server, fetcher: MediaFetcher) -> None:
    with pytest.raises(MediaError, match=r"^imageUrl: text/html is not an image$"):
        await fetcher.fetch(server.url("/fake.png"), "image")


async def test_gif_is_refused_as_an_unsupported_image_type(server: Server, fetcher: MediaFetcher) -> None:
    with pytest.raises(MediaError, match=r"^imageUrl: image/gif is not a supported image \(jpeg, png or webp\)$"):
        await fetcher.fetch(server.url("/anim.gif"), "image")


async def test_image_fetched_as_video_is_refused(server: Server, fetcher: MediaFetcher) -> None:
    with pytest.raises(MediaError, match=r"^videoUrl: image/png is not a video$"):
        await fetcher.fetch(server.url("/image.png"), "video")


async def test_chunked_body_over_the_cap_is_refused_while_streaming(server: Server) -> None:
    async with MediaFetcher(allow_private=True, max_bytes={"image": 256 * 1024}) as fetcher:
        with pytest.raises(
            MediaError, match=r"^imageUrl: over the 256 KB image limit \(stopped reading at [\d.]+ KB\)$"
        ):
            await fetcher.fetch(server.url("/chunked"), "image")
    # The client hung up: the server stops long before it has sent everything (socket buffers
    # on loopback hold a few MB at most).
    await asyncio.wait_for(server.finished["chunked"].wait(), 10)
    assert server.sent["chunked"] < STREAM_TOTAL // 4


async def test_content_length_over_the_cap_is_refused_before_reading(server: Server, fetcher: MediaFetcher) -> None:
    assert MAX_BYTES["image"] == 5 * MB
    with pytest.raises(MediaError, match=r"^imageUrl: 7.2 MB is over the 5 MB image limit$"):
        await fetcher.fetch(server.url("/huge"), "image")
    await asyncio.wait_for(server.finished["huge"].wait(), 10)
    assert server.sent["huge"] < int(7.2 * MB)


async def test_404_is_refused_naming_the_status(server: Server, fetcher: MediaFetcher) -> None:
    with pytest.raises(MediaError, match=r"^documentUrl: answered 404 Not Found$"):
        await fetcher.fetch(server.url("/missing"), "document")


async def test_empty_body_is_refused(server: Server, fetcher: MediaFetcher) -> None:
    with pytest.raises(MediaError, match=r"^imageUrl: the answer was empty$"):
        await fetcher.fetch(server.url("/empty"), "image")


async def test_redirect_chain_of_every_status_is_followed(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url(f"/hop/{netguard.MAX_REDIRECTS}"), "image")
    assert media.data == PNG


async def test_too_many_redirects_are_refused(server: Server, fetcher: MediaFetcher) -> None:
    with pytest.raises(MediaError, match=rf"^imageUrl: more than {netguard.MAX_REDIRECTS} redirects$"):
        await fetcher.fetch(server.url(f"/hop/{netguard.MAX_REDIRECTS + 1}"), "image")


@pytest.mark.usefixtures("loopback_is_public")
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://10.0.0.5/secret", "10.0.0.5 is a private or reserved address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a private or reserved address"),
        ("http://[::ffff:192.168.1.1]/", "::ffff:c0a8:101 is a private or reserved address"),
        ("http://localhost/admin", "localhost is a loopback name"),
        ("file:///etc/passwd", "only http(s) URLs with a host are allowed"),
    ],
)
async def test_redirect_to_a_private_address_is_refused_with_the_guard_on(
    server: Server, target: str, message: str
) -> None:
    async with MediaFetcher(allow_private=False) as fetcher:
        assert (await fetcher.fetch(server.url("/image.png"), "image")).data == PNG  # the first hop is allowed
        with pytest.raises(MediaError, match="^imageUrl: " + re.escape(message)):
            await fetcher.fetch(f"{server.url('/redirect')}?to={target}", "image")


async def test_loopback_server_is_refused_with_the_guard_on(server: Server) -> None:
    async with MediaFetcher(allow_private=False) as fetcher:
        with pytest.raises(MediaError, match=r"^imageUrl: 127.0.0.1 is a private or reserved address$"):
            await fetcher.fetch(server.url("/image.png"), "image")
    assert server.hits.get("png", 0) == 0


async def test_loopback_server_is_reached_when_private_addresses_are_allowed(server: Server) -> None:
    async with MediaFetcher(allow_private=True) as fetcher:
        assert (await fetcher.fetch(server.url("/image.png"), "image")).data == PNG
    assert server.hits["png"] == 1


async def test_server_that_never_answers_times_out(server: Server) -> None:
    async with MediaFetcher(allow_private=True, timeout=0.3) as fetcher:
        started = time.monotonic()
        with pytest.raises(MediaError, match=r"^imageUrl: no complete answer within 0.3 s$"):
            await fetcher.fetch(server.url("/stall-headers"), "image")
    assert time.monotonic() - started < 5


async def test_body_that_stalls_times_out(server: Server) -> None:
    async with MediaFetcher(allow_private=True, timeout=0.3) as fetcher:
        with pytest.raises(MediaError, match=r"^imageUrl: no complete answer within 0.3 s$"):
            await fetcher.fetch(server.url("/stall-body"), "image")


async def test_refused_connection_is_reported(fetcher: MediaFetcher, unused_tcp_port: int) -> None:
    with pytest.raises(MediaError, match=rf"^audioUrl: could not connect to 127.0.0.1:{unused_tcp_port}$"):
        await fetcher.fetch(f"http://127.0.0.1:{unused_tcp_port}/a.mp3", "audio")


async def test_header_type_is_used_only_when_sniffing_is_inconclusive(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url("/opaque"), "audio")
    assert media.mimetype == "audio/mpeg"


async def test_document_reports_its_sniffed_type_and_caller_file_name(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url("/download"), "document", file_name="invoice.pdf")
    assert (media.mimetype, media.file_name) == ("application/pdf", "invoice.pdf")


async def test_document_file_name_comes_from_content_disposition(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url("/download"), "document")
    assert (media.mimetype, media.file_name) == ("application/pdf", "Rechnung März.pdf")


async def test_document_file_name_comes_from_the_url_path(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url("/files/report%202024.pdf"), "document")
    assert (media.mimetype, media.file_name) == ("application/pdf", "report 2024.pdf")


async def test_plain_text_document_takes_the_csv_type_from_its_extension(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url("/contacts.csv"), "document")
    assert media.mimetype == "text/csv"


async def test_fetch_before_open_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await MediaFetcher(allow_private=True).fetch("http://127.0.0.1/x.png", "image")


def test_media_repr_leaves_out_the_bytes() -> None:
    assert "data" not in repr(Media(b"\x89PNG" * 1000, "image/png", "a.png"))


# --- voice notes ------------------------------------------------------------------------------


def assert_voice_note(media: Media, seconds: float) -> None:
    assert media.mimetype == VOICE_NOTE_MIMETYPE
    assert media.data.startswith(b"OggS")
    assert b"OpusHead" in media.data[:100]
    assert is_ogg_opus(media.data)
    granule = ogg_last_granule(media.data)
    assert granule is not None
    assert abs(granule / 48000 - seconds) < 0.2  # all of the audio, at 48 kHz (pre-skip is 312 samples)


async def test_wav_is_fetched_and_transcoded_to_an_ogg_opus_voice_note(server: Server, fetcher: MediaFetcher) -> None:
    media = await fetcher.fetch(server.url("/tone.wav"), "audio")
    assert media.mimetype in ("audio/x-wav", "audio/wav")
    voice = await to_voice_note(media)
    assert_voice_note(voice, 1.0)
    assert voice.file_name == "tone.ogg"


async def test_ogg_opus_passes_through_untouched() -> None:
    opus = (await to_voice_note(Media(WAV, "audio/x-wav"))).data
    original = Media(opus, "audio/ogg", "note.ogg")
    voice = await to_voice_note(original, ffmpeg="/nonexistent/ffmpeg")  # would fail if it ran
    assert voice.data is opus
    assert (voice.mimetype, voice.file_name) == (VOICE_NOTE_MIMETYPE, "note.ogg")
    assert await to_voice_note(voice) is voice


async def test_m4a_with_its_index_at_the_end_is_transcoded_whole(tmp_path: Path) -> None:
    """ffmpeg reading MP4 from a pipe cannot seek to a trailing moov box and converts nothing (exit 0)."""
    source = tmp_path / "long.m4a"
    process = await asyncio.create_subprocess_exec(
        find_ffmpeg(), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=20",
        "-c:a", "aac", "-b:a", "64k", str(source),
    )  # fmt: skip
    assert await process.wait() == 0
    data = source.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")  # index at the end, as a non-streaming muxer writes it
    assert_voice_note(await to_voice_note(Media(data, "audio/mp4")), 20.0)


async def test_bytes_that_are_not_audio_fail_to_convert() -> None:
    with pytest.raises(MediaError, match=r"^audioUrl: could not convert to a voice note: .+"):
        await to_voice_note(Media(b"this is not audio at all\n" * 200, "audio/mpeg"))


async def test_missing_ffmpeg_fails_to_convert() -> None:
    with pytest.raises(MediaError, match=r"^audioUrl: could not convert to a voice note: cannot run ffmpeg"):
        await to_voice_note(Media(WAV, "audio/x-wav"), ffmpeg="/nonexistent/ffmpeg")


async def test_hung_ffmpeg_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    fake = tmp_path / "ffmpeg"
    fake.write_text(f'#!/bin/sh\necho $$ > "{pid_file}"\nexec sleep 60\n')
    fake.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"^audioUrl: could not convert to a voice note: ffmpeg took over 0.5 s$"):
        await to_voice_note(Media(WAV, "audio/x-wav"), ffmpeg=str(fake), timeout=0.5)
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(pid_file.read_text()), 0)
