"""One typed settings object, built once from `GATEWAY_*` environment variables."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from config.redis_url import check_redis_url, is_sentinel_url

ENV_PREFIX = "GATEWAY_"

LaneName = Literal["urgent", "normal", "bulk"]
LANES: tuple[LaneName, ...] = ("urgent", "normal", "bulk")


class SettingsError(Exception):
    """A configuration value is unknown or malformed; the message names the variable."""


class LaneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    gap: tuple[float, float]
    per_hour: int = Field(alias="perHour", gt=0)
    per_day: int = Field(alias="perDay", gt=0)
    # Staying unbanned (README): the fraction of the quotas a number gets on each day after its
    # first link (the last one holds from then on), how many messages a day may go to numbers
    # that never wrote to it (None: no limit), and the least time between two messages of this
    # lane to one recipient (0: none).
    warmup: tuple[Annotated[float, Field(gt=0, le=1)], ...] = Field(default=(1.0,), min_length=1)
    first_contact_per_day: int | None = Field(default=None, alias="firstContactPerDay", ge=0)
    spacing: float = Field(default=0, ge=0, description="seconds between two sends to one recipient")
    # Show "typing..." before each send (within the gap, not added to it); a message's `typing`
    # overrides it.
    typing: bool = False

    @field_validator("gap")
    @classmethod
    def _ordered_gap(cls, gap: tuple[float, float]) -> tuple[float, float]:
        if gap[0] < 0 or gap[1] < gap[0]:
            raise ValueError("gap must be [min, max] with 0 <= min <= max seconds")
        return gap


# A new number's quotas over its first week: urgent (codes, replies) is not held back.
WARMUP_RAMP = (0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0)

# API.md, "Lanes": the defaults an operator can override through GATEWAY_LANES.
DEFAULT_LANES: dict[LaneName, LaneConfig] = {
    "urgent": LaneConfig(gap=(1, 2), perHour=150, perDay=1000),
    "normal": LaneConfig(gap=(3, 8), perHour=80, perDay=500, warmup=WARMUP_RAMP, typing=True),
    "bulk": LaneConfig(
        gap=(8, 15), perHour=30, perDay=200, warmup=WARMUP_RAMP, firstContactPerDay=20, spacing=24 * 3600
    ),
}

DEFAULT_OPT_OUT_KEYWORDS = ("STOP", "BAJA", "SAIR", "UNSUBSCRIBE")


class ThrottleConfig(BaseModel):
    """When WhatsApp signals trouble, a number's bulk lane pauses (README, "Staying unbanned")."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    window: int = Field(default=20, gt=0, description="the last sends whose outcomes are judged")
    not_on_whatsapp: float = Field(default=0.3, alias="notOnWhatsapp", gt=0, le=1)
    failures: float = Field(default=0.5, gt=0, le=1)
    pause: float = Field(default=3600, gt=0, description="seconds bulk pauses after a bad window")
    after_ban: float = Field(
        default=24 * 3600, alias="afterBan", ge=0, description="seconds bulk stays paused after a ban ends"
    )


# API.md, "Webhooks": a failed delivery is retried 3 more times, at 1 s, 5 s and 30 s (each
# counted from the previous failure); after the last one it is dead-lettered.
WEBHOOK_RETRY_DELAYS: tuple[float, ...] = (1, 5, 30)
WEBHOOK_PROBE_DELAYS: tuple[float, ...] = (60, 120, 300, 600, 1800)


Speedup = Literal["uvloop", "orjson", "hiredis"]


def _installed() -> frozenset[Speedup]:
    return frozenset(name for name in get_args(Speedup) if importlib.util.find_spec(name) is not None)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = None
    # Replicas that must hold an accepted message before the API answers 202 (Redis WAIT, in
    # the same round trip as the accept); unset: 1 with a Sentinel URL, 0 otherwise.
    redis_replica_acks: int | None = Field(default=None, ge=0)
    admin_key: SecretStr | None = None
    driver: Literal["neonize", "sandbox"] = "neonize"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("./data")
    secret_key: SecretStr | None = None
    lanes: dict[LaneName, LaneConfig] = Field(default_factory=lambda: dict(DEFAULT_LANES))
    allow_private_urls: bool = False
    webhook_timeout: float = Field(default=10.0, gt=0, description="seconds one webhook attempt may take")
    webhook_retry_delays: tuple[Annotated[float, Field(ge=0)], ...] = WEBHOOK_RETRY_DELAYS
    # Webhooks that ride out an outage (webhooks/endpoint.py): once a delivery's retries are spent
    # the endpoint is down and only its head is tried again, at these delays, the last repeating.
    webhook_probe_delays: tuple[Annotated[float, Field(gt=0)], ...] = Field(default=WEBHOOK_PROBE_DELAYS, min_length=1)
    webhook_hold: float = Field(
        default=3 * 24 * 3600, gt=0, description="seconds a down webhook holds its deliveries before it is disabled"
    )
    webhook_retention: float = Field(default=7 * 24 * 3600, gt=0, description="seconds a settled delivery is kept")
    webhook_backlog: int = Field(
        default=100_000, gt=0, description="held deliveries per instance; the oldest is dead-lettered past it"
    )
    webhook_rotation_overlap: float = Field(
        default=24 * 3600, ge=0, description="seconds the previous webhook secret still signs after a change"
    )
    # A send that failed for a passing reason (not connected, a network blip) is tried again after
    # each of these delays (seconds), then fails.
    send_retry_delays: tuple[Annotated[float, Field(ge=0)], ...] = (1, 5, 15, 30, 60)
    rate_limit: int = Field(default=600, gt=0, description="requests per minute per API key")
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # Slow or stalled clients (slowloris): how long the HTTP server waits for them.
    http_header_timeout: float = Field(
        default=15.0, gt=0, description="seconds to receive a request's headers, from connect or the previous answer"
    )
    http_body_timeout: float = Field(default=30.0, gt=0, description="seconds to receive a request's body")
    http_max_connections: int = Field(default=1000, gt=0, description="open client connections at once")
    # /events WebSockets are long-lived: counted per key, apart from the HTTP connections above.
    events_sockets_per_key: int = Field(default=10, gt=0, le=10_000, description="open /events sockets per API key")
    events_stall: float = Field(
        default=30.0, gt=0, description="seconds an /events client may read nothing before it is closed"
    )
    queue_limit: int = Field(default=100_000, gt=0, description="messages waiting per instance; past it, 429")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"
    # Optional accelerators (core/speedups.py), each kept on only where `make bench` shows it pays
    # (`python -m benchmarks.trials` measures each on and off). hiredis: redis-py's reply parser.
    speedups: frozenset[Speedup] = Field(default_factory=lambda: _installed() & {"hiredis"})
    worker_id: str | None = None
    # `serve`'s processes: API processes share the port (None: one per core); workers, the first
    # inside the API's process.
    api_processes: int | None = Field(default=None, ge=1, le=64)
    worker_processes: int = Field(default=1, ge=1, le=64)
    # Webhook deliveries: a worker makes them itself unless told not to; `serve` can run deliverer
    # processes beside its workers (and then tells them not to). Off by default: on two cores the
    # worker flat out sent 656-682 messages/s delivering itself and 479-549/s beside a deliverer
    # (make bench, 2026-12-06), the processes competing for the same cores.
    worker_delivers_webhooks: bool = True
    deliverer_processes: int = Field(default=0, ge=0, le=16)
    max_sessions: int = Field(default=500, gt=0, description="WhatsApp sessions one worker may host")
    session_database_url: str | None = None  # neonize session stores in PostgreSQL instead of sqlite files
    worker_poll_delay: float = Field(default=0.05, gt=0)
    whatsapp_proxy: str | None = Field(default=None, description="proxy URL the neonize driver dials WhatsApp through")
    session_host_timeout: float = Field(
        default=20.0, gt=0, description="seconds a session host may leave a heartbeat unanswered before it is restarted"
    )
    whatsmeow_log_level: Literal["debug", "info", "warning", "error"] = "warning"
    # Sessions a restarted worker brings up at once when it adopts its instances.
    adopt_concurrency: int = Field(default=500, gt=0, description="instances a worker adopts at once at start")
    lease_timeout: float = Field(default=15.0, gt=0, description="seconds without a heartbeat before a worker is dead")
    sweep_interval: float = Field(default=10.0, gt=0, description="seconds between a worker's send-path repair sweeps")
    message_retention: int = Field(default=7 * 24 * 3600, gt=0, description="seconds a finished message is kept")
    message_max_wait: int = Field(default=24 * 3600, gt=0, description="seconds a message may wait before it expires")
    day_length: int = Field(
        default=24 * 3600, gt=0, description="seconds in a day of quotas, warm-up and first contacts (tests shorten it)"
    )
    opt_out_keywords: tuple[str, ...] = DEFAULT_OPT_OUT_KEYWORDS
    throttle: ThrottleConfig = Field(default_factory=ThrottleConfig)
    media_retention: int = Field(default=7 * 24 * 3600, gt=0, description="seconds inbound media and links are kept")
    media_max_bytes: int = Field(default=100 * 1024 * 1024, gt=0, description="largest inbound media downloaded")
    media_store: str = Field(
        default="file", description='where inbound media are kept: "file" (the data directory) or "s3://bucket/prefix"'
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="an S3-compatible service's address (unset: AWS S3); credentials from AWS_*"
    )
    public_url: str | None = Field(default=None, description="the gateway's address as receivers reach it")
    # The conversation store (core/conversations.py): in Redis unless a PostgreSQL URL is given.
    database_url: str | None = Field(default=None, description="PostgreSQL URL for the conversation store")
    database_schema: str = Field(
        default="wa_gateway", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="the conversation store's schema"
    )
    conversation_retention: int = Field(default=30, gt=0, description="days chats and messages are kept")
    conversation_max_per_chat: int = Field(
        default=10_000, gt=0, description="messages kept per chat in Redis (PostgreSQL keeps the whole retention)"
    )
    # Conversation actions (contacts/check, profile, read, presence, groups) answer synchronously.
    action_timeout: float = Field(
        default=10.0, gt=0, description="seconds a conversation action waits for WhatsApp before a 502"
    )
    number_check_ttl: int = Field(
        default=24 * 3600, gt=0, description="seconds a number's on-WhatsApp answer is reused when it is on WhatsApp"
    )
    number_check_miss_ttl: int = Field(
        default=3600, gt=0, description="seconds a 'not on WhatsApp' answer is reused (it may sign up meanwhile)"
    )

    def api_process_count(self) -> int:
        return self.api_processes or len(os.sched_getaffinity(0))

    def replica_acks(self) -> int:
        if self.redis_replica_acks is not None:
            return self.redis_replica_acks
        return 1 if self.redis_url is not None and is_sentinel_url(self.redis_url) else 0

    @field_validator("lanes", mode="before")
    @classmethod
    def _merge_lanes(cls, value: object) -> object:
        value = _json_object(value)
        if not isinstance(value, Mapping):
            raise ValueError("must be a JSON object keyed by lane name")
        merged: dict[str, object] = {}
        for name, default in DEFAULT_LANES.items():
            override = value.get(name, {})
            if isinstance(override, LaneConfig):
                merged[name] = override
            elif isinstance(override, Mapping):
                merged[name] = {**default.model_dump(by_alias=True), **override}
            else:
                merged[name] = override
        unknown = set(value) - set(DEFAULT_LANES)
        if unknown:
            raise ValueError(f"unknown lane(s) {sorted(unknown)}; lanes are {list(LANES)}")
        return merged

    @field_validator("speedups", mode="before")
    @classmethod
    def _speedup_list(cls, value: object) -> object:
        # From the environment: "uvloop,orjson" ('' or "none": none of them).
        if isinstance(value, str):
            return [word.strip() for word in value.split(",") if word.strip() and word.strip() != "none"]
        return value

    @field_validator("speedups")
    @classmethod
    def _speedups_installed(cls, chosen: frozenset[Speedup]) -> frozenset[Speedup]:
        missing = sorted(chosen - _installed())
        if missing:
            raise ValueError(f"{', '.join(missing)} not installed (pip install 'wa-gateway[speedups]')")
        return chosen

    @field_validator("throttle", mode="before")
    @classmethod
    def _throttle_json(cls, value: object) -> object:
        return _json_object(value)

    @field_validator("opt_out_keywords", mode="before")
    @classmethod
    def _keyword_list(cls, value: object) -> object:
        # From the environment: "STOP,BAJA" or the JSON list '["STOP", "BAJA"]'.
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list | tuple):
            return tuple(str(word).strip().upper() for word in value if str(word).strip())
        return value

    @field_validator("webhook_retry_delays", "webhook_probe_delays", "send_retry_delays", mode="before")
    @classmethod
    def _delay_list(cls, value: object) -> object:
        # From the environment: "1,5,30" or the JSON list "[1, 5, 30]".
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _url_scheme(cls, url: str | None) -> str | None:
        return None if url is None else check_redis_url(url)

    @field_validator("public_url", "s3_endpoint_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url

    @field_validator("media_store")
    @classmethod
    def _media_location(cls, location: str) -> str:
        if location == "file":
            return location
        bucket = location.removeprefix("s3://").partition("/")[0]
        if not location.startswith("s3://") or not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ValueError('must be "file" or "s3://<bucket>/<prefix>" with a valid bucket name')
        if importlib.util.find_spec("aiobotocore") is None:
            raise ValueError("an S3 media store needs aiobotocore: pip install 'wa-gateway[s3]'")
        return location

    @property
    def base_url(self) -> str:
        """Where receivers reach the gateway: `public_url`, else the address it listens on."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @field_validator("session_database_url", "database_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgres:// or postgresql://")
        return url


def _json_object(value: object) -> object:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg}") from exc
    return value


def _variable(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build the settings from `environ` (default: the process environment) plus overrides.

    Raises SettingsError naming every unknown or malformed `GATEWAY_*` variable.
    """
    env = os.environ if environ is None else environ
    known = {_variable(name) for name in Settings.model_fields}
    unknown = sorted(key for key in env if key.startswith(ENV_PREFIX) and key not in known)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    values: dict[str, object] = {name: env[_variable(name)] for name in Settings.model_fields if _variable(name) in env}
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "settings"
            detail = ".".join(str(p) for p in err["loc"][1:])
            where = f"{_variable(field)}{'.' + detail if detail else ''}"
            problems.append(f"{where}: {err['msg']}")
        raise SettingsError("invalid setting(s): " + "; ".join(problems)) from None
