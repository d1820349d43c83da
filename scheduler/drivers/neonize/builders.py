"""The WhatsApp message protos for what the gateway sends, built here rather than by neonize.

neonize's builders shell out to `ffprobe` for audio and video (the `imageio-ffmpeg` wheel ships only
`ffmpeg`), stamp voice notes with libmagic's `audio/ogg` and no waveform, and make thumbnails and
sniff types on the event loop. Here: the CPU work runs in a thread, the upload through the client,
voice notes carry `audio/ogg; codecs=opus`, their seconds (from the Ogg granule) and a waveform (from
ffmpeg's decoded samples), and videos their duration and a thumbnail from ffmpeg alone.
"""

from __future__ import annotations

import asyncio
import io
import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler.drivers.base import DriverError, OutgoingMessage
from scheduler.drivers.neonize import kinds
from scheduler.drivers.neonize.loading import _e2e, _import
from scheduler.media import VOICE_NOTE_MIMETYPE, MediaError, find_ffmpeg, is_ogg_opus, ogg_last_granule

THUMBNAIL_SIZE = 72  # px on the long side, what WhatsApp's own clients send inline
WAVEFORM_BARS = 64
FFMPEG_TIMEOUT = 60.0
_OPUS_RATE = 48_000
_DURATION = re.compile(rb"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_SIZE = re.compile(rb"Video: .*?, (\d{2,5})x(\d{2,5})")


@dataclass(frozen=True)
class VoiceProfile:
    seconds: int
    waveform: bytes


@dataclass(frozen=True)
class VideoProfile:
    seconds: int
    width: int
    height: int
    thumbnail: bytes


async def build(client: Any, message: OutgoingMessage, own_phone: str | None = None) -> Any:
    """The `waE2E.Message` for `message`, media uploaded through `client` (a neonize `NewAClient`),
    replying to its quote and mentioning its numbers; `own_phone` names this number (deletions)."""
    return kinds.with_context(await _build(client, message, own_phone), message, own_phone)


async def _build(client: Any, message: OutgoingMessage, own_phone: str | None) -> Any:
    e2e = _e2e()
    if message.type in ("location", "contact", "poll", "reaction", "edit", "delete"):
        return kinds.build_kind(message, own_phone)
    if message.type == "sticker":
        if message.media is None:
            raise DriverError("a sticker needs its image (the worker converts it to WebP)")
        up = await client.upload(message.media, _import("neonize.utils.enum").MediaType.MediaImage)
        return kinds.build_kind(message, own_phone, _uploaded(up))
    if message.type == "text":
        if not message.text:
            raise DriverError("a text message needs text")
        # A proto, not a str: neonize would otherwise parse "@digits" into mentions.
        return e2e.Message(conversation=message.text)
    data = message.media
    if data is None:
        raise DriverError(f"an {message.type} message needs its media bytes (download media_url first)")
    media_type = _import("neonize.utils.enum").MediaType
    if message.type == "image":
        mimetype, thumbnail, size = await asyncio.to_thread(_image_profile, data, message.mimetype)
        up = await client.upload(data, media_type.MediaImage)
        return e2e.Message(
            imageMessage=e2e.ImageMessage(
                **_uploaded(up),
                mimetype=mimetype,
                caption=message.caption,
                JPEGThumbnail=thumbnail,
                width=size[0],
                height=size[1],
            )
        )
    if message.type == "document":
        document_type = message.mimetype or await asyncio.to_thread(_sniff, data)
        up = await client.upload(data, media_type.MediaDocument)
        name = message.file_name or "file"
        return e2e.Message(
            documentMessage=e2e.DocumentMessage(
                **_uploaded(up), mimetype=document_type, fileName=name, title=name, caption=message.caption
            )
        )
    if message.type == "audio":
        voice = await asyncio.to_thread(voice_profile, data)
        up = await client.upload(data, media_type.MediaAudio)
        return e2e.Message(
            audioMessage=e2e.AudioMessage(
                **_uploaded(up), mimetype=VOICE_NOTE_MIMETYPE, PTT=True, seconds=voice.seconds, waveform=voice.waveform
            )
        )
    if message.type == "video":
        video = await asyncio.to_thread(video_profile, data)
        up = await client.upload(data, media_type.MediaVideo)
        return e2e.Message(
            videoMessage=e2e.VideoMessage(
                **_uploaded(up),
                mimetype=message.mimetype or "video/mp4",
                caption=message.caption,
                seconds=video.seconds,
                width=video.width,
                height=video.height,
                JPEGThumbnail=video.thumbnail,
            )
        )
    raise DriverError(f"unsupported message type {message.type!r}")


def _uploaded(up: Any) -> dict[str, Any]:
    return {
        "URL": up.url,
        "directPath": up.DirectPath,
        "mediaKey": up.MediaKey,
        "fileEncSHA256": up.FileEncSHA256,
        "fileSHA256": up.FileSHA256,
        "fileLength": up.FileLength,
    }


def _sniff(data: bytes) -> str:
    mimetype: str = _import("magic").from_buffer(data[:65536], mime=True)
    return mimetype


def _image_profile(data: bytes, mimetype: str | None) -> tuple[str, bytes, tuple[int, int]]:
    image_module = _import("PIL.Image")
    try:
        with image_module.open(io.BytesIO(data)) as image:
            size = image.size
            image.draft("RGB", (THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))  # JPEG: decode at a fraction
            thumb = image.convert("RGB")
            thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
            out = io.BytesIO()
            thumb.save(out, "JPEG", quality=60)
    except (OSError, ValueError) as exc:
        raise DriverError(f"the image could not be read: {exc}") from exc
    return mimetype or _sniff(data), out.getvalue(), size


def voice_profile(data: bytes) -> VoiceProfile:
    """Seconds and a 64-bar waveform (0-100) of an OGG/Opus voice note, without ffprobe."""
    granule = ogg_last_granule(data) if is_ogg_opus(data) else None
    if not granule:
        raise DriverError("a voice note must be OGG/Opus (the worker converts audio before sending)")
    head = data.index(b"OpusHead")
    pre_skip = struct.unpack_from("<H", data, head + 10)[0]
    seconds = max(1, round((granule - pre_skip) / _OPUS_RATE))
    samples = _ffmpeg(["-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", "8000", "pipe:1"], data)
    return VoiceProfile(seconds=seconds, waveform=waveform(samples))


def waveform(pcm: bytes, bars: int = WAVEFORM_BARS) -> bytes:
    """Mean loudness per bar of signed 16-bit mono samples, scaled so the loudest bar is 100."""
    count = len(pcm) // 2
    if count == 0:
        return bytes(bars)
    values = struct.unpack(f"<{count}h", pcm[: count * 2])
    step = max(1, count // bars)
    levels = [sum(abs(v) for v in values[i * step : (i + 1) * step]) / step for i in range(bars)]
    peak = max(levels) or 1.0
    return bytes(min(100, round(100 * level / peak)) for level in levels)


def video_profile(data: bytes) -> VideoProfile:
    """Duration, frame size and a JPEG thumbnail of a video, from ffmpeg alone (no ffprobe)."""
    with tempfile.TemporaryDirectory(prefix="wa-video-") as folder:
        source = Path(folder) / "in"
        source.write_bytes(data)  # MP4 keeps its index at the end: ffmpeg needs to seek
        completed = _run(
            ["-i", str(source), "-frames:v", "1", "-vf", f"scale={THUMBNAIL_SIZE}:-2", "-f", "mjpeg", "pipe:1"], b""
        )
    duration = _DURATION.search(completed.stderr)
    if completed.returncode != 0 or duration is None or not completed.stdout:
        raise DriverError("the video could not be read (ffmpeg found no video stream)")
    hours, minutes, secs = duration.groups()
    seconds = max(1, round(int(hours) * 3600 + int(minutes) * 60 + float(secs)))
    size = _SIZE.search(completed.stderr)
    width, height = (int(size.group(1)), int(size.group(2))) if size else (0, 0)
    return VideoProfile(seconds=seconds, width=width, height=height, thumbnail=completed.stdout)


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    completed = _run(args, data)
    if completed.returncode != 0:
        raise DriverError("ffmpeg could not read the media")
    return completed.stdout


def _run(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        command = [find_ffmpeg(), "-hide_banner", *args]
        return subprocess.run(command, input=data, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired, MediaError) as exc:
        raise DriverError(f"ffmpeg failed: {exc}") from exc
