"""`Idempotency-Key` on POSTs: same key and body within 24 h replays the first answer;
same key with another body is a 409. Scoped per API key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from core import keys
from core.crypto import SecretBox
from core.errors import IdempotencyConflict, ValidationFailed
from core.redis_client import Redis

TTL_SECONDS = 24 * 3600
# How long a first request may run before a retry with the same key may run it again.
IN_FLIGHT_SECONDS = 60
MAX_KEY_LENGTH = 255
PENDING = "pending"


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class Idempotency:
    def __init__(self, redis: Redis, box: SecretBox) -> None:
        self.redis = redis
        # Stored answers are sealed: some carry secrets shown only once (a new tenant's API key).
        self.box = box

    async def begin(self, scope: str, key: str, print_: str) -> StoredAnswer | None:
        """Claim `key` for this request, or return the answer already stored for it."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValidationFailed.at(["Idempotency-Key"], f"header must be 1 to {MAX_KEY_LENGTH} characters")
        redis_key = keys.idempotency(scope, key)
        claimed = await self.redis.set(
            redis_key, json.dumps({"print": print_, "state": PENDING}), nx=True, ex=IN_FLIGHT_SECONDS
        )
        if claimed:
            return None
        raw = await self.redis.get(redis_key)
        if raw is None:  # expired between the two calls: claim again
            return await self.begin(scope, key, print_)
        stored = json.loads(raw)
        if stored["print"] != print_:
            raise IdempotencyConflict("this Idempotency-Key was already used with a different request body")
        if stored["state"] == PENDING:
            raise IdempotencyConflict("a request with this Idempotency-Key is still being processed; retry shortly")
        return StoredAnswer(status=stored["status"], body=self.box.open(stored["body"]))

    async def finish(self, scope: str, key: str, print_: str, answer: StoredAnswer) -> None:
        record = {"print": print_, "state": "done", "status": answer.status, "body": self.box.seal(answer.body)}
        await self.redis.set(keys.idempotency(scope, key), json.dumps(record), ex=TTL_SECONDS)

    async def release(self, scope: str, key: str) -> None:
        await self.redis.delete(keys.idempotency(scope, key))
