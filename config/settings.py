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
    """One lane's pacing and quotas (`GATEWAY_LANES`), and the Staying unbanned rules that hold it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    gap: tuple[float, float] = Field(description="[min, max] seconds drawn between two sends of the number")
    per_hour: int = Field(alias="perHour", gt=0, description="sends in any rolling hour")
    per_day: int = Field(alias="perDay", gt=0, description="sends in any rolling day")
    warmup: tuple[Annotated[float, Field(gt=0, le=1)], ...] = Field(
        default=(1.0,),
        min_length=1,
        description="the fraction of the quotas a cautious number gets on each day after its first link (the last"
        " one holds from then on)",
    )
    first_contact_per_day: int | None = Field(
        default=None,
        alias="firstContactPerDay",
        ge=0,
        description="messages a day a cautious number may send to numbers that never wrote to it (null: no limit)",
    )
    spacing: float = Field(
        default=0, ge=0, description="least seconds between two sends of this lane to one recipient (cautious only)"
    )
    typing: bool = Field(
        default=False,
        description='show "typing..." before each send (within the gap, not added to it); a message\'s `typing`'
        " overrides it",
    )

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
    """When WhatsApp signals trouble, a number's bulk lane pauses (docs/staying-unbanned.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    window: int = Field(default=20, gt=0, description="the last sends whose outcomes are judged")
    not_on_whatsapp: float = Field(
        default=0.3, alias="notOnWhatsapp", gt=0, le=1, description="share of the window sent to numbers off WhatsApp"
    )
    failures: float = Field(default=0.5, gt=0, le=1, description="share of the window failed at WhatsApp")
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
    """Every `GATEWAY_*` variable: `docs/gen_reference.py` writes docs/reference/configuration.md from
    these fields, their types, defaults and descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="`redis://`, `rediss://` or `unix://` URL, or `redis+sentinel://host:26379[,host2:26379]/master/db`"
        " (see Redis Sentinel); unset: the embedded Redis, in the data directory",
    )
    redis_replica_acks: int | None = Field(
        default=None,
        ge=0,
        description="replicas that must hold an accepted message before the API answers 202 (Redis `WAIT`, in the"
        " same round trip as the accept); unset: 1 with a Sentinel URL, else 0",
    )
    admin_key: SecretStr | None = Field(
        default=None, description="the admin API key; unset: `serve` generates one into the data directory (0600)"
    )
    driver: Literal["neonize", "sandbox"] = Field(
        default="neonize", description="`neonize` (real WhatsApp) or `sandbox` (simulated WhatsApp, no phone needed)"
    )
    host: str = Field(default="127.0.0.1", description="the address the API listens on")
    port: int = Field(default=8080, ge=0, le=65535, description="the port the API listens on")
    data_dir: Path = Field(
        default=Path("./data"), description="embedded Redis, session stores, inbound media and generated keys"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="master key for secrets at rest (webhook secrets, proxy URLs); unset: generated into the data"
        " directory (0600)",
    )
    lanes: dict[LaneName, LaneConfig] = Field(
        default_factory=lambda: dict(DEFAULT_LANES),
        description='JSON overriding any lane\'s fields, e.g. `{"bulk": {"gap": [8, 15], "perHour": 30,'
        ' "perDay": 200}}`; the fields and their defaults are in the lanes table below',
    )
    allow_private_urls: bool = Field(
        default=False,
        description="`1` lets webhooks, media and proxies reach private addresses: the address guard is off"
        " (tests and single-host setups only)",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, description="seconds one webhook attempt may take before it counts as failed"
    )
    webhook_retry_delays: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        default=WEBHOOK_RETRY_DELAYS,
        description="seconds before each retry of a failed delivery, counted from the previous failure"
        " (`1,5,30` or `[1, 5, 30]`)",
    )
    webhook_probe_delays: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=WEBHOOK_PROBE_DELAYS,
        min_length=1,
        description="once the retries are spent the endpoint is down: seconds between tries of its oldest held"
        " event, the last repeating (webhooks/endpoint.py)",
    )
    webhook_hold: float = Field(
        default=3 * 24 * 3600,
        gt=0,
        description="seconds a down endpoint holds its events before it is disabled and they are dead-lettered",
    )
    webhook_retention: float = Field(
        default=7 * 24 * 3600, gt=0, description="seconds a dead letter (and a delivered record) is kept"
    )
    webhook_backlog: int = Field(
        default=100_000, gt=0, description="events held per instance at most; the oldest is dead-lettered past it"
    )
    webhook_rotation_overlap: float = Field(
        default=24 * 3600,
        ge=0,
        description="seconds the previous webhook secret still signs (`webhook-signature`) after a change",
    )
    send_retry_delays: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        default=(1, 5, 15, 30, 60),
        description="seconds before each new try of a send that failed for a passing reason (not connected, a"
        " network blip); after the last it fails",
    )
    rate_limit: int = Field(default=600, gt=0, description="requests per minute per API key")
    max_body_bytes: int = Field(default=1_048_576, gt=0, description="request body limit (413 above it)")
    # Slow or stalled clients (slowloris): how long the HTTP server waits for them.
    http_header_timeout: float = Field(
        default=15.0,
        gt=0,
        description="seconds a client has to send a request's headers, counted from connecting or from the"
        " previous answer; then the connection is closed (this also closes idle keep-alive connections)",
    )
    http_body_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds a client has to send a request's body; then 408 and the connection is closed",
    )
    http_max_connections: int = Field(
        default=1000, gt=0, description="open client connections at once; one more gets a 503 and is closed"
    )
    # /events WebSockets are long-lived: counted per key, apart from the HTTP connections above.
    events_sockets_per_key: int = Field(
        default=10,
        gt=0,
        le=10_000,
        description="open `/events` sockets per API key (per API process); one more gets a 429",
    )
    events_stall: float = Field(
        default=30.0,
        gt=0,
        description="seconds an `/events` client may read nothing (answer no ping) before it is closed",
    )
    queue_limit: int = Field(
        default=100_000, gt=0, description="messages waiting per instance; past it a send answers 429 `queue_full`"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="the lowest level logged"
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="`json` for machines: every line JSON, start-up included"
    )
    worker_id: str | None = Field(
        default=None, description="this worker's stable id; unset: generated and kept in the data directory"
    )
    api_processes: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="API processes `serve` runs, sharing the port (`SO_REUSEPORT`); unset: one per core",
    )
    worker_processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="workers `serve` runs, the first inside the API's own process, the others as children",
    )
    # Off by default: on two cores the worker flat out sent 656-682 messages/s delivering itself and
    # 479-549/s beside a deliverer (make bench, 2026-12-06), the processes competing for the same cores.
    worker_delivers_webhooks: bool = Field(
        default=True, description="whether a worker delivers webhooks itself (`serve` turns it off with deliverers)"
    )
    deliverer_processes: int = Field(
        default=0, ge=0, le=16, description="webhook deliverer processes `serve` runs beside its workers"
    )
    # Each kept on only where `make bench` shows it pays (`python -m benchmarks.trials`).
    speedups: frozenset[Speedup] = Field(
        default_factory=lambda: _installed() & {"hiredis", "uvloop"},
        json_schema_extra={"docs_default": "`hiredis` and `uvloop` where installed (both are dependencies), else none"},
        description="optional accelerators (core/speedups.py), comma-separated: `uvloop` (the event loop),"
        " `orjson` (the JSON of HTTP requests), `hiredis` (redis-py's reply parser), or `none`"
        " (`pip install 'wa-gateway[speedups]'` adds orjson)",
    )
    # 2026-12-06, python -m benchmarks --deliverer: at CPython's 700, collections took 406-420 ms of the
    # worker's 1,390-1,502 ms of CPU in a burst of 3,000 sends; at 10,000 with start-up frozen, 75-89 ms.
    gc_threshold: int = Field(
        default=10_000,
        ge=0,
        description="Python's garbage collector in every gateway process: objects allocated between two"
        " collections of its youngest generation (`gc.set_threshold`; CPython's own is 700), and what"
        " start-up built is frozen out of every collection (`gc.freeze`). `0`: CPython's defaults",
    )
    max_sessions: int = Field(default=500, gt=0, description="WhatsApp sessions one worker may host")
    session_database_url: str | None = Field(
        default=None,
        description="`postgres://` or `postgresql://` URL: neonize session stores in PostgreSQL (see Scaling out);"
        " unset: sqlite files in the data directory",
    )
    worker_poll_delay: float = Field(
        default=0.05, gt=0, description="Seconds between two looks into the command queue (arq's `poll_delay`)"
    )
    whatsapp_proxy: str | None = Field(
        default=None,
        description="proxy URL (e.g. `socks5://host:1080`) the neonize driver reaches WhatsApp through",
    )
    session_host_timeout: float = Field(
        default=20.0,
        gt=0,
        description="seconds a session host may leave a heartbeat unanswered before it is killed and restarted",
    )
    whatsmeow_log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="warning", description="lowest level of whatsmeow's own log lines that reach the worker's log"
    )
    adopt_concurrency: int = Field(
        default=500,
        gt=0,
        description="instances a starting worker adopts (and connects) at once: each mostly waits (Redis, its"
        " host starting), so a low figure makes a restart slow",
    )
    lease_timeout: float = Field(
        default=15.0, gt=0, description="seconds without a heartbeat before a worker's instances are adopted"
    )
    sweep_interval: float = Field(
        default=10.0, gt=0, description="seconds between a worker's repair sweeps of its send path"
    )
    message_retention: int = Field(
        default=7 * 24 * 3600, gt=0, description="seconds a finished message stays readable at `GET /message/{id}`"
    )
    message_max_wait: int = Field(
        default=24 * 3600, gt=0, description="seconds a message may wait before it ends `failed` with `expired`"
    )
    day_length: int = Field(
        default=24 * 3600,
        gt=0,
        description='seconds in a "day" of daily quotas, warm-up and first-contact limits: shorten it only for'
        " tests and demos",
    )
    opt_out_keywords: tuple[str, ...] = Field(
        default=DEFAULT_OPT_OUT_KEYWORDS,
        description="replies that put the sender on the tenant's opt-out list (`STOP,BAJA` or a JSON list)",
    )
    throttle: ThrottleConfig = Field(
        default_factory=ThrottleConfig,
        description='JSON, e.g. `{"window": 20, "notOnWhatsapp": 0.3, "failures": 0.5, "pause": 3600,'
        ' "afterBan": 86400}`; the fields are in the throttle table below',
    )
    media_retention: int = Field(
        default=7 * 24 * 3600, gt=0, description="seconds inbound media (and the signed links to it) are kept"
    )
    media_max_bytes: int = Field(
        default=100 * 1024 * 1024,
        gt=0,
        description="largest inbound media the worker downloads; larger arrives with `media.error`",
    )
    media_store: str = Field(
        default="file",
        description="where inbound media are kept: `file` (the data directory's `media/`; the API and every"
        " worker must share it) or `s3://bucket/prefix` (any S3-compatible service; `pip install"
        " 'wa-gateway[s3]'`; credentials and region from the standard `AWS_*` variables)",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="the address of an S3-compatible service (MinIO, R2, Ceph, ...); unset: AWS S3"
    )
    public_url: str | None = Field(
        default=None,
        description="the gateway's address as webhook receivers reach it, the base of `media.url` links;"
        " unset: `http://HOST:PORT`",
    )
    database_url: str | None = Field(
        default=None,
        description="`postgres://` or `postgresql://` URL of the conversation store; unset: the store is in Redis",
    )
    database_schema: str = Field(
        default="wa_gateway",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="the PostgreSQL schema of the conversation store",
    )
    conversation_retention: int = Field(default=30, gt=0, description="days chats and messages are kept")
    conversation_max_per_chat: int = Field(
        default=10_000, gt=0, description="messages a chat keeps in Redis (PostgreSQL keeps the whole retention)"
    )
    action_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds a conversation action waits for WhatsApp before answering 502; also how long a send"
        " waits for its recipient's number lookup before it is retried",
    )
    number_check_ttl: int = Field(
        default=24 * 3600,
        gt=0,
        description='seconds a "this number is on WhatsApp" answer is reused, by `contacts/check` and by every send',
    )
    number_check_miss_ttl: int = Field(
        default=3600, gt=0, description='seconds a "not on WhatsApp" answer is reused (people sign up)'
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
