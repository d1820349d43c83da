"""Media for outgoing messages: fetch `imageUrl` / `documentUrl` / `audioUrl` / `videoUrl` at send
time, and turn audio into a WhatsApp voice note.

Every fetch goes through the private-address guard (`core.netguard`: checked after DNS
resolution and on every redirect hop), under one overall deadline, with a size cap per media type
that is enforced from Content-Length before reading and again while streaming, and with the content
type sniffed from the bytes (libmagic) rather than trusted from the server.

Every failure is a `MediaError` whose message names the request field and can be shown to the API
user as it is, e.g. "imageUrl: answered 404 Not Found".
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import re
import shutil
import socket
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType, TracebackType
from typing import Literal, Self
from urllib.parse import unquote

import aiohttp
import magic
from yarl import URL

from core.netguard import BlockedUrl, guarded_request, guarded_session
from core.records import ErrorCode

MediaKind = Literal["image", "document", "audio", "video", "sticker"]

MB = 1024 * 1024
# WhatsApp's own size limits per media type (its servers and apps refuse larger files). The one
# place these numbers live; `MediaFetcher(max_bytes=...)` overrides them per deployment or test.
MAX_BYTES: Mapping[MediaKind, int] = MappingProxyType(
    {"image": 5 * MB, "audio": 16 * MB, "video": 16 * MB, "document": 100 * MB, "sticker": 5 * MB}
)
DEFAULT_TIMEOUT = 30.0  # seconds for the whole fetch, redirects and body included
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds to get a connection, per hop
TRANSCODE_TIMEOUT = 120.0  # seconds for ffmpeg to turn up to 16 MB of audio into a voice note

VOICE_NOTE_MIMETYPE = "audio/ogg; codecs=opus"

FIELDS: Mapping[MediaKind, str] = MappingProxyType(
    {"image": "imageUrl", "document": "documentUrl", "audio": "audioUrl", "video": "videoUrl", "sticker": "stickerUrl"}
)
_ACCEPT: Mapping[MediaKind, str] = MappingProxyType(
    {
        "image": "image/jpeg, image/png, image/webp",
        "sticker": "image/webp, image/png, image/jpeg",
        "document": "*/*",
        "audio": "audio/*",
        "video": "video/*",
    }
)
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
# What libmagic answers when it cannot tell; then the server's Content-Type is used instead.
_INCONCLUSIVE = frozenset({"", "application/octet-stream"})
# Containers libmagic names video/* that often hold audio alone (an .m4a written by ffmpeg sniffs as
# video/mp4); for `audio` they are taken as audio, and ffmpeg finds out if there is no audio stream.
_AUDIO_CONTAINERS: Mapping[str, str] = MappingProxyType(
    {
        "video/mp4": "audio/mp4",
        "video/3gpp": "audio/3gpp",
        "video/webm": "audio/webm",
        "video/ogg": "audio/ogg",
        "application/ogg": "audio/ogg",
    }
)
_CHUNK = 64 * 1024  # read size while streaming: a body never exceeds its cap by more than this
_SNIFF_BYTES = 1 * MB  # libmagic looks at no more than this (its own default bytes_max)


@dataclass(frozen=True)
class Media:
    data: bytes = field(repr=False)
    mimetype: str
    file_name: str | None = None


class MediaError(Exception):
    """A media URL could not be fetched or used; `str(error)` is meant for the API user, `code`
    for its program (the message's errorCode): what was fetched is unusable..."""

    code: ErrorCode = "media_rejected"


class MediaUnreachable(MediaError):
    """...or nothing usable came back from the URL (no connection, a timeout, a non-2xx answer)."""

    code: ErrorCode = "media_unreachable"


def _size(n: int) -> str:
    if n >= MB:
        return f"{round(n / MB, 1):g} MB"
    if n >= 1024:
        return f"{round(n / 1024, 1):g} KB"
    return f"{n} bytes"


class MediaFetcher:
    """Fetches media URLs through one guarded client session.

    Use as `async with MediaFetcher(allow_private=False) as fetcher: await fetcher.fetch(url, "image")`,
    or call `open()` / `close()` yourself (both from inside the event loop)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_bytes: Mapping[MediaKind, int] | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_bytes: Mapping[MediaKind, int] = MappingProxyType({**MAX_BYTES, **(max_bytes or {})})
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.timeout, connect=self.connect_timeout)
            self._session = guarded_session(self.allow_private, timeout, headers={"User-Agent": "wa-gateway"})

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def fetch(self, url: str, kind: MediaKind, *, file_name: str | None = None) -> Media:
        """Download `url` as media of `kind`. `file_name` (a document's `fileName`) wins over the
        name from Content-Disposition or the URL path."""
        if kind not in FIELDS:
            raise ValueError(f"unknown media kind {kind!r}")
        if self._session is None:
            raise RuntimeError("MediaFetcher is not open")
        name = FIELDS[kind]
        try:
            # One deadline for everything: each hop of a redirect chain would get its own `total`.
            async with asyncio.timeout(self.timeout):
                return await self._fetch(self._session, url, kind, file_name)
        except BlockedUrl as exc:
            raise MediaUnreachable(f"{name}: {exc}") from None
        except aiohttp.ConnectionTimeoutError:
            raise MediaUnreachable(f"{name}: could not connect within {self.connect_timeout:g} s") from None
        except TimeoutError:
            raise MediaUnreachable(f"{name}: no complete answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, socket.gaierror):
                raise MediaUnreachable(f"{name}: could not resolve {exc.host}") from None
            raise MediaUnreachable(f"{name}: could not connect to {exc.host}:{exc.port}") from None
        except aiohttp.InvalidURL:
            raise MediaUnreachable(f"{name}: not a valid URL") from None
        except aiohttp.ClientPayloadError:
            raise MediaUnreachable(f"{name}: the download broke off") from None
        except aiohttp.ClientError as exc:
            raise MediaUnreachable(f"{name}: the download failed ({type(exc).__name__}: {exc})") from None

    async def _fetch(self, session: aiohttp.ClientSession, url: str, kind: MediaKind, file_name: str | None) -> Media:
        name = FIELDS[kind]
        limit = self.max_bytes[kind]
        response = await guarded_request(session, "GET", url, self.allow_private, headers={"Accept": _ACCEPT[kind]})
        try:
            if not 200 <= response.status < 300:
                reason = f" {response.reason}" if response.reason else ""
                raise MediaUnreachable(f"{name}: answered {response.status}{reason}")
            length = response.content_length
            # A compressed body's Content-Length is not the size we would get; the stream check covers it.
            encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
            if length is not None and length > limit and not encoded:
                raise MediaError(f"{name}: {_size(length)} is over the {_size(limit)} {kind} limit")
            buffer = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                buffer += chunk
                if len(buffer) > limit:
                    raise MediaError(
                        f"{name}: over the {_size(limit)} {kind} limit (stopped reading at {_size(len(buffer))})"
                    )
        except BaseException:
            response.close()  # drop the connection: the rest of the body is never read
            raise
        response.release()
        if not buffer:
            raise MediaError(f"{name}: the answer was empty")
        data = bytes(buffer)
        del buffer
        sniffed = await asyncio.to_thread(_sniff, data)
        declared = _declared_type(response.headers.get("Content-Type"))
        file_name = file_name or _name_from_disposition(response) or _name_from_url(response.url)
        return Media(data, _check_type(kind, sniffed, declared, file_name), file_name)


def _sniff(data: bytes) -> str:
    try:
        return str(magic.from_buffer(data[:_SNIFF_BYTES], mime=True)).lower()
    except magic.MagicException:
        return ""


def sniff_type(data: bytes, declared: str | None) -> str:
    """The media type of `data` from its bytes, as for outgoing media; `declared` (WhatsApp's or a
    server's word) only when the bytes are inconclusive. Blocks: run it in a thread."""
    sniffed = _sniff(data)
    if sniffed not in _INCONCLUSIVE:
        return sniffed
    return _declared_type(declared) or "application/octet-stream"


def _declared_type(header: str | None) -> str | None:
    value = (header or "").split(";", 1)[0].strip().lower()
    return value or None


def _check_type(kind: MediaKind, sniffed: str, declared: str | None, file_name: str | None) -> str:
    """The media type to send, from the bytes (the header only when they are inconclusive); refuses
    a type that does not fit `kind`."""
    name = FIELDS[kind]
    mimetype = sniffed if sniffed not in _INCONCLUSIVE else (declared or "application/octet-stream")
    if kind in ("image", "sticker"):
        if mimetype not in _IMAGE_TYPES:
            if mimetype.startswith("image/"):
                raise MediaError(f"{name}: {mimetype} is not a supported image (jpeg, png or webp)")
            raise MediaError(f"{name}: {mimetype} is not an image")
    elif kind == "audio":
        mimetype = _AUDIO_CONTAINERS.get(mimetype, mimetype)
        if not mimetype.startswith("audio/"):
            raise MediaError(f"{name}: {mimetype} is not audio")
    elif kind == "video":
        if not mimetype.startswith("video/"):
            raise MediaError(f"{name}: {mimetype} is not a video")
    else:
        mimetype = _refine_document_type(mimetype, declared, file_name)
    return mimetype


def _refine_document_type(sniffed: str, declared: str | None, file_name: str | None) -> str:
    """libmagic names many office files application/zip and CSV or JSON text/plain; a more precise
    type from the server or the file extension is used when it is of the same family."""
    guessed = mimetypes.guess_type(file_name)[0] if file_name else None
    for candidate in (declared, guessed):
        if not candidate or candidate in _INCONCLUSIVE or candidate == sniffed:
            continue
        if (
            sniffed == "application/octet-stream"
            or (sniffed == "text/plain" and (candidate.startswith("text/") or candidate == "application/json"))
            or (sniffed == "application/zip" and candidate.startswith("application/"))
        ):
            return candidate
    return sniffed


def _clean_name(raw: str | None) -> str | None:
    if not raw:
        return None
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if base in ("", ".", ".."):
        return None
    return base[:255]


def _name_from_disposition(response: aiohttp.ClientResponse) -> str | None:
    if "Content-Disposition" not in response.headers:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aiohttp warns on malformed headers; then there is no name
        disposition = response.content_disposition
    return _clean_name(disposition.filename if disposition else None)


def _name_from_url(url: URL) -> str | None:
    return _clean_name(unquote(PurePosixPath(url.raw_path).name))


# --- voice notes ------------------------------------------------------------------------------


def find_ffmpeg() -> str:
    """ffmpeg from PATH, else the binary the imageio-ffmpeg package ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        raise MediaError(
            "audioUrl: could not convert to a voice note: no ffmpeg (install ffmpeg or the imageio-ffmpeg package)"
        ) from None


def is_ogg_opus(data: bytes) -> bool:
    """An Ogg stream whose first packet is an Opus header (the page header is 27 bytes plus its
    segment table)."""
    if not data.startswith(b"OggS") or len(data) < 27:
        return False
    start = 27 + data[26]
    return data[start : start + 8] == b"OpusHead"


def ogg_last_granule(data: bytes) -> int | None:
    """The granule position of the last page of an Ogg stream (for Opus: 48 kHz samples, pre-skip
    included), walking the pages from the start; None if the stream is not well formed."""
    position, granule = 0, None
    while position < len(data):
        header = data[position : position + 27]
        if len(header) < 27 or not header.startswith(b"OggS"):
            return None
        segments = data[position + 27 : position + 27 + header[26]]
        if len(segments) < header[26]:
            return None
        granule = int.from_bytes(header[6:14], "little")
        position += 27 + header[26] + sum(segments)
    return granule if position == len(data) else None


def _needs_seekable_input(data: bytes) -> bool:
    # MP4/M4A/3GP/MOV keep their index ("moov") at the end unless written for streaming; ffmpeg
    # cannot seek back on a pipe and then converts nothing at all, yet exits 0. Those go via a file.
    return data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def _ffmpeg_error(stderr: bytes) -> str:
    for line in stderr.decode(errors="replace").splitlines():
        line = re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()
        if line:
            return line[:300]
    return "ffmpeg failed"


async def to_voice_note(media: Media, *, ffmpeg: str | None = None, timeout: float = TRANSCODE_TIMEOUT) -> Media:
    """`media` as an OGG/Opus voice note (mono, 48 kHz), transcoded with ffmpeg unless it already is
    OGG/Opus (then the bytes are passed through untouched)."""
    if is_ogg_opus(media.data):
        return media if media.mimetype == VOICE_NOTE_MIMETYPE else replace(media, mimetype=VOICE_NOTE_MIMETYPE)
    executable = ffmpeg or find_ffmpeg()
    if _needs_seekable_input(media.data):
        with tempfile.TemporaryDirectory(prefix="wa-gateway-") as directory:
            source = Path(directory, "input")
            await asyncio.to_thread(source.write_bytes, media.data)
            output = await _transcode(executable, str(source), None, timeout)
    else:
        output = await _transcode(executable, "pipe:0", media.data, timeout)
    if not is_ogg_opus(output) or not ogg_last_granule(output):
        raise MediaError("audioUrl: could not convert to a voice note: ffmpeg produced no Opus audio")
    file_name = str(PurePosixPath(media.file_name).with_suffix(".ogg")) if media.file_name else None
    return Media(output, VOICE_NOTE_MIMETYPE, file_name)


async def _transcode(executable: str, source: str, stdin: bytes | None, timeout: float) -> bytes:
    args = [
        "-hide_banner", "-nostdin", "-loglevel", "error",
        "-i", source,
        "-map", "0:a:0", "-map_metadata", "-1",
        "-ac", "1", "-ar", "48000",
        "-c:a", "libopus", "-b:a", "32k", "-application", "voip",
        "-f", "ogg", "pipe:1",
    ]  # fmt: skip
    try:
        process = await asyncio.create_subprocess_exec(
            executable,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise MediaError(f"audioUrl: could not convert to a voice note: cannot run ffmpeg ({exc})") from None
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate(stdin)
    except TimeoutError:
        raise MediaError(f"audioUrl: could not convert to a voice note: ffmpeg took over {timeout:g} s") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        raise MediaError(f"audioUrl: could not convert to a voice note: {_ffmpeg_error(stderr)}")
    return stdout
