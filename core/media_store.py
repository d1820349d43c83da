"""Inbound media at rest: where the bytes live (`MediaStore`: `FileMediaStore` under the data
directory, the default, or `S3MediaStore` in core/media_s3.py for workers on several machines),
whose they are (a record in Redis that expires with them), and the signed expiring links that let
a webhook receiver fetch them without an API key."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from core import keys
from core.clock import iso
from core.records import ApiModel
from core.redis_client import Redis

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")  # media ids and instance names


class MediaStore(Protocol):
    """The bytes of inbound media, by instance and media id."""

    async def put(self, instance_name: str, media_id: str, data: bytes) -> None: ...

    async def get(self, instance_name: str, media_id: str) -> bytes | None:
        """The bytes, or None when they are gone."""
        ...

    async def drop(self, instance_name: str) -> None:
        """Delete everything kept for an instance (it was deleted)."""
        ...

    async def sweep(self, older_than: datetime) -> int:
        """Delete what was stored before `older_than`; returns how many."""
        ...

    async def close(self) -> None: ...


def checked_key(instance_name: str, media_id: str | None = None) -> str:
    """`instance/media id` (or the instance alone), refusing anything that could leave its folder."""
    if not instance_name or not set(instance_name) <= _SAFE:
        raise ValueError(f"not an instance name: {instance_name!r}")
    if media_id is None:
        return instance_name
    if not media_id or not set(media_id) <= _SAFE:
        raise ValueError(f"not a media id: {media_id!r}")
    return f"{instance_name}/{media_id}"


def open_media_store(location: str, data_dir: Path, s3_endpoint_url: str | None) -> MediaStore:
    """The store `GATEWAY_MEDIA_STORE` names: "file" (under the data directory) or "s3://bucket/prefix"."""
    if location == "file":
        return FileMediaStore(data_dir / "media")
    from core.media_s3 import S3MediaStore  # botocore is loaded only by those who use it

    return S3MediaStore(location, s3_endpoint_url)


class FileMediaStore:
    """One file per media under `root` (the data directory's `media/`), a folder per instance.
    The API serves what the workers write: with workers on other machines, `root` must be shared."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, instance_name: str) -> Path:
        return self.root / checked_key(instance_name)

    def _path(self, instance_name: str, media_id: str) -> Path:
        return self.root / checked_key(instance_name, media_id)

    async def put(self, instance_name: str, media_id: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(instance_name, media_id), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a file

    async def get(self, instance_name: str, media_id: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self._path(instance_name, media_id).read_bytes)
        except (FileNotFoundError, ValueError):
            return None

    async def drop(self, instance_name: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._folder(instance_name), ignore_errors=True)

    async def sweep(self, older_than: datetime) -> int:
        return await asyncio.to_thread(self._sweep, older_than.timestamp())

    def _sweep(self, cutoff: float) -> int:
        removed = 0
        for path in self.root.glob("*/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    async def close(self) -> None:
        pass  # nothing held open


class MediaRecord(ApiModel):
    id: str
    instance_name: str
    tenant_id: str
    mimetype: str
    size: int
    file_name: str | None = None
    seconds: int | None = None
    created_at: str


class MediaLinks:
    """`?exp=&sig=` links: an HMAC of the media id and the expiry under a key derived from the
    gateway's secret key."""

    def __init__(self, secret_key: str, base_url: str) -> None:
        self._key = hmac.new(secret_key.encode(), b"wa-gateway media links", hashlib.sha256).digest()
        self.base_url = base_url.rstrip("/")

    def _signature(self, media_id: str, expires: int) -> str:
        return hmac.new(self._key, f"{media_id}.{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, media_id: str, expires: int) -> str:
        return f"{self.base_url}/media/{media_id}?exp={expires}&sig={self._signature(media_id, expires)}"

    def check(self, media_id: str, expires: str, signature: str) -> str | None:
        """None when the link is good; otherwise what is wrong with it."""
        if not (expires.isascii() and expires.isdigit()):
            return "exp must be a Unix time in seconds"
        if not signature.isascii() or not hmac.compare_digest(
            self._signature(media_id, int(expires)), signature.lower()
        ):
            return "the signature does not match this media id and expiry"
        if int(expires) < time.time():
            return "the link has expired"
        return None


class MediaLibrary:
    """Stores inbound media with its record, both kept for `retention` seconds."""

    def __init__(self, redis: Redis, store: MediaStore, links: MediaLinks, retention: int) -> None:
        self.redis = redis
        self.store = store
        self.links = links
        self.retention = retention

    async def add(
        self,
        instance_name: str,
        data: bytes,
        mimetype: str,
        *,
        file_name: str | None = None,
        seconds: int | None = None,
    ) -> tuple[MediaRecord, str]:
        """Keep `data`; returns its record and a signed link valid as long as it is kept."""
        now = datetime.now(UTC)
        record = MediaRecord(
            id=f"med_{secrets.token_hex(12)}",
            instance_name=instance_name,
            tenant_id=instance_name.split("__", 1)[0],
            mimetype=mimetype,
            size=len(data),
            file_name=file_name,
            seconds=seconds,
            created_at=iso(now),
        )
        await self.store.put(instance_name, record.id, data)
        await self.redis.set(keys.media(record.id), record.model_dump_json(by_alias=True), ex=self.retention)
        return record, self.links.url(record.id, int(now.timestamp()) + self.retention)

    async def find(self, media_id: str) -> MediaRecord | None:
        raw = await self.redis.get(keys.media(media_id))
        return None if raw is None else MediaRecord.model_validate_json(raw)

    async def read(self, record: MediaRecord) -> bytes | None:
        return await self.store.get(record.instance_name, record.id)

    async def forget_instance(self, instance_name: str) -> None:
        """Delete an instance's media at once (its records expire by themselves, unreadable)."""
        await self.store.drop(instance_name)

    async def sweep(self) -> int:
        """Delete the files whose time is up (their records expire by themselves)."""
        cutoff = datetime.fromtimestamp(time.time() - self.retention, UTC)
        return await self.store.sweep(cutoff)
