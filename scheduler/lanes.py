"""The per-instance lanes in Redis: accept, pick, finish, flush and kick, each one Lua script
(see lua/), so concurrent senders, pumps and flushes can never see each other half-done."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.commands.core import AsyncScript

from config import LaneConfig, Settings
from config.settings import LANES, LaneName
from core import keys
from core.clock import now_ms
from core.redis_client import Pipeline, Redis
from core.scripts import lua
from scheduler.messages import RECENT_KEPT, Message

Outcome = Literal["sent", "failed", "failed_uncounted", "requeue"]
Owner = tuple[str, int]  # (worker id, epoch): who may send for an instance, checked in the scripts


@dataclass(frozen=True)
class Pick:
    kind: Literal["fenced", "stale", "closed", "idle", "wait", "send"]
    message: Message | None = None  # the message to send, already marked `sending`
    expired: tuple[str, ...] = ()


class Lanes:
    def __init__(
        self,
        redis: Redis,
        lanes: dict[LaneName, LaneConfig],
        retention_seconds: int,
        max_wait_ms: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.lanes = lanes
        self.retention = retention_seconds
        self.max_wait_ms = max_wait_ms
        self._limits = json.dumps({n: {"perHour": c.per_hour, "perDay": c.per_day} for n, c in lanes.items()})
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(lua("fields", "common", name))
            for name in ("accept", "pick", "finish", "flush", "kick", "sweep")
        }

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> Lanes:
        return cls(redis, settings.lanes, settings.message_retention, settings.message_max_wait * 1000)

    async def _run(self, script: str, name: str, extra_keys: list[str], *args: Any) -> Any:
        script_keys = [
            keys.instance(name),
            keys.pump(name),
            *(keys.lane(name, lane) for lane in LANES),
            *(keys.sent_times(name, lane) for lane in LANES),
            *extra_keys,
        ]
        common: list[Any] = [
            self.clock(),
            name,
            keys.WORKER_QUEUE_PREFIX,
            keys.MESSAGE_PREFIX,
            self._limits,
            keys.STATS,
        ]
        return await self._scripts[script](keys=script_keys, args=[*common, *args])

    async def accept(self, name: str, message_id: str, lane: LaneName, record: dict[str, Any]) -> bool:
        """Record the message, queue it and wake the instance's pump: one atomic step."""
        script_keys = [keys.message(message_id), keys.recent_messages(name)]
        args = [message_id, lane, json.dumps(record), RECENT_KEPT]
        return bool(await self._run("accept", name, script_keys, *args))

    async def pick(self, name: str, token: str, owner: Owner, expired_fields: dict[str, Any]) -> Pick:
        expired = json.dumps(expired_fields)
        result = await self._run("pick", name, [], token, self.max_wait_ms, self.retention, expired, *owner)
        kind = result[0]
        if kind == "send":
            record = dict(zip(result[2::2], result[3::2], strict=True))
            return Pick(kind, message=Message.from_hash(record), expired=tuple(json.loads(result[1])))
        if kind == "wait":
            return Pick(kind, expired=tuple(result[2:]))
        return Pick(kind, expired=tuple(result[1:]))

    async def finish(
        self,
        name: str,
        owner: Owner,
        message_id: str,
        outcome: Outcome,
        fields: dict[str, Any],
        retry_at_ms: int = 0,
    ) -> None:
        gaps = {lane: int(random.uniform(*config.gap) * 1000) for lane, config in self.lanes.items()}
        wa_key = keys.whatsapp_id(name, fields["waMessageId"]) if outcome == "sent" else ""
        args = [
            message_id,
            outcome,
            json.dumps(fields),
            json.dumps(gaps),
            retry_at_ms,
            self.retention,
            wa_key,
            *owner,
        ]
        await self._run("finish", name, [], *args)

    async def flush(self, name: str, fields: dict[str, Any]) -> list[str]:
        """Cancel what waits in the instance's lanes; returns the cancelled ids."""
        return list(await self._run("flush", name, [], self.retention, json.dumps(fields), "0", ""))

    async def retire(self, name: str, fields: dict[str, Any], inflight_error: str) -> list[str]:
        """Flush for a deleted instance: it accepts nothing more, and a message in flight ends failed."""
        return list(await self._run("flush", name, [], self.retention, json.dumps(fields), "1", inflight_error))

    def forget(self, pipe: Pipeline, name: str) -> None:
        """Queue the deletion of a deleted instance's lanes, wake-up, quota counts and recent-messages index."""
        pipe.delete(*(keys.lane(name, lane) for lane in self.lanes), keys.pump(name), keys.recent_messages(name))
        pipe.delete(*(keys.sent_times(name, lane) for lane in self.lanes))

    async def kick(self, name: str, reset: bool = False) -> str | None:
        """Wake the pump now if it has work; with `reset`, first take back a dead owner's in-flight message."""
        requeued = await self._run("kick", name, [], "1" if reset else "0")
        return requeued or None

    async def sweep(self, name: str, queue: str, running_jobs: list[str]) -> bool:
        """Wake `name` if it has waiting messages but no wake-up that will run; True if it had to."""
        return bool(await self._run("sweep", name, [], queue, json.dumps(running_jobs)))
