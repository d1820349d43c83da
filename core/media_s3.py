"""Inbound media in an S3-compatible bucket (`GATEWAY_MEDIA_STORE=s3://bucket/prefix`), so the API
and workers on other machines share media without a shared disk.

aiobotocore (aio-libs, on botocore) is the async S3 client: it speaks every S3-compatible service
(`GATEWAY_S3_ENDPOINT_URL` for MinIO, R2, ...) and takes credentials and region the standard way
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, profiles, instance roles). Its client
is opened on first use and kept for the process's life."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from core.media_store import checked_key

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def parse_location(location: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix/"); the prefix may be empty."""
    rest = location.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3MediaStore:
    """One object per media, `<prefix><instance>/<media id>`."""

    def __init__(self, location: str, endpoint_url: str | None = None) -> None:
        self.bucket, self.prefix = parse_location(location)
        self.endpoint_url = endpoint_url
        self._stack = AsyncExitStack()
        self._client: S3Client | None = None
        self._opening = asyncio.Lock()

    async def _s3(self) -> S3Client:
        async with self._opening:
            if self._client is not None:
                return self._client
            opening = get_session().create_client("s3", endpoint_url=self.endpoint_url)
            opened: S3Client = await self._stack.enter_async_context(opening)
            self._client = opened
            return opened

    def _key(self, instance_name: str, media_id: str) -> str:
        return self.prefix + checked_key(instance_name, media_id)

    def _folder(self, instance_name: str) -> str:
        return self.prefix + checked_key(instance_name) + "/"

    async def put(self, instance_name: str, media_id: str, data: bytes) -> None:
        key = self._key(instance_name, media_id)
        await (await self._s3()).put_object(Bucket=self.bucket, Key=key, Body=data)

    async def get(self, instance_name: str, media_id: str) -> bytes | None:
        try:
            key = self._key(instance_name, media_id)
        except ValueError:
            return None
        try:
            answer = await (await self._s3()).get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        async with answer["Body"] as body:
            data: bytes = await body.read()
        return data

    async def drop(self, instance_name: str) -> None:
        await self._delete_where(self._folder(instance_name), lambda _: True)

    async def sweep(self, older_than: datetime) -> int:
        return await self._delete_where(self.prefix, lambda found: found["LastModified"] < older_than)

    async def _delete_where(self, prefix: str, doomed: Any) -> int:
        s3 = await self._s3()
        batch: list[str] = []
        removed = 0
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for found in page.get("Contents", []):
                if doomed(found):
                    batch.append(found["Key"])
                if len(batch) == _DELETE_BATCH:
                    removed += await self._delete(s3, batch)
                    batch = []
        if batch:
            removed += await self._delete(s3, batch)
        return removed

    async def _delete(self, s3: S3Client, keys: list[str]) -> int:
        objects: Any = [{"Key": key} for key in keys]
        await s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        return len(keys)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
