"""`GET /metrics`: the gateway's figures in Prometheus' text format, for the whole gateway.

Every value lives in Redis, so any API process answers for every worker, a restarted process
loses nothing, and Prometheus scrapes one address however many workers there are. Counters and
histograms are written by the Lua step that already records what they count (core/lua/metrics.lua:
sends in finish and pick, webhook deliveries in webhook_next), so they cost no extra round trip;
gauges (instances, queues, quotas, outbox, workers) are read here, at scrape time, in a few
pipelines.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import get_args

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from config import Settings
from config.settings import LANES
from core import keys
from core.clock import from_time
from core.instances import Instances
from core.records import ErrorCode
from core.redis_client import Redis
from gateway.http_counts import parse_field
from webhooks.endpoint import STATES

# HISTOGRAM_TOP of core/lua/metrics.lua: bucket k counts values up to 2^k ms.
HISTOGRAM_TOP = 27
BUCKET_BOUNDS = tuple(2**k / 1000 for k in range(HISTOGRAM_TOP + 1))
WINDOWS_MS = {"hour": 3_600_000, "day": 86_400_000}
SEND_OUTCOMES = ("sent", "failed", "retried", "expired")
# What a WhatsApp session went through (scheduler/sessions.py counts them in keys.STATS).
CONNECTION_EVENTS = ("disconnected", "logged_out", "banned", "qr_expired")


def histogram(fields: dict[str, str], name: str) -> tuple[list[tuple[str, float]], float]:
    """The cumulative buckets and the sum (in seconds) of histogram `name` in a counters hash."""
    counts = [int(fields.get(f"{name}:{k}", 0)) for k in range(HISTOGRAM_TOP + 2)]
    buckets, seen = [], 0
    for bound, count in zip(BUCKET_BOUNDS, counts, strict=False):
        seen += count
        buckets.append((f"{bound:g}", float(seen)))
    buckets.append(("+Inf", float(sum(counts))))
    return buckets, int(fields.get(f"{name}:sum", 0)) / 1000


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class Metrics:
    def __init__(self, redis: Redis, instances: Instances, settings: Settings) -> None:
        self.redis = redis
        self.instances = instances
        self.limits = {lane: {"hour": c.per_hour, "day": c.per_day} for lane, c in settings.lanes.items()}
        self.lease_timeout_ms = int(settings.lease_timeout * 1000)

    async def render(self) -> bytes:
        """Every family, in the text format."""
        registry = CollectorRegistry(auto_describe=False)
        families = [
            *await self._instances(),
            *await self._counters(),
            *await self._quotas_and_outbox(),
            *await self._webhook_endpoints(),
            *await self._workers(),
            *await self._operations(),
        ]
        registry.register(_Families(families))
        return generate_latest(registry)

    async def _instances(self) -> list[Metric]:
        by_state, waiting = await self.instances.census()
        instances = GaugeMetricFamily("wa_instances", "Instances by connection state", labels=["state"])
        for state, count in sorted(by_state.items()):
            instances.add_metric([state], count)
        queued = GaugeMetricFamily("wa_messages_waiting", "Messages waiting in the lanes", labels=["lane"])
        for lane in LANES:
            queued.add_metric([lane], waiting[lane])
        return [instances, queued]

    async def _counters(self) -> list[Metric]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.STATS)
            pipe.hgetall(keys.WEBHOOK_STATS)
            sends, webhooks = await pipe.execute()
        accepted = CounterMetricFamily("wa_messages_accepted", "Messages accepted (answered 202)")
        accepted.add_metric([], int(sends.get("accepted", 0)))
        outcomes = CounterMetricFamily(
            "wa_sends", "Send attempts by lane and outcome (retried: a transient failure, tried again later)",
            labels=["lane", "outcome"],
        )  # fmt: skip
        lateness = HistogramMetricFamily(
            "wa_send_lateness_seconds", "From when the lanes allowed a message to when it was sent, typing excluded",
            labels=["lane"],
        )  # fmt: skip
        accept_to_sent = HistogramMetricFamily(
            "wa_send_accept_to_sent_seconds", "From accepting a message to sending it", labels=["lane"]
        )
        typing = HistogramMetricFamily(
            "wa_send_typing_seconds", 'The "typing..." shown before a send, on purpose (not in the lateness)',
            labels=["lane"],
        )  # fmt: skip
        for lane in LANES:
            for outcome in SEND_OUTCOMES:
                outcomes.add_metric([lane, outcome], int(sends.get(f"sends:{lane}:{outcome}", 0)))
            lateness.add_metric([lane], *histogram(sends, f"lateness:{lane}"))
            accept_to_sent.add_metric([lane], *histogram(sends, f"accept_to_sent:{lane}"))
            typing.add_metric([lane], *histogram(sends, f"typing:{lane}"))
        deliveries = CounterMetricFamily(
            "wa_webhook_deliveries", "Webhook deliveries settled, by outcome", labels=["outcome"]
        )
        deliveries.add_metric(["delivered"], int(webhooks.get("delivered", 0)))
        deliveries.add_metric(["dead_lettered"], int(webhooks.get("deadLettered", 0)))
        failed = CounterMetricFamily("wa_webhook_attempts_failed", "Webhook attempts that failed (each retry counts)")
        failed.add_metric([], int(webhooks.get("failed", 0)))
        latency = HistogramMetricFamily(
            "wa_webhook_delivery_seconds", "From an event's publication to its successful delivery, retries included"
        )
        latency.add_metric([], *histogram(webhooks, "latency"))
        unsent = CounterMetricFamily(
            "wa_messages_unsent", "Messages that ended unsent (failed, or cancelled by a flush), by errorCode",
            labels=["code"],
        )  # fmt: skip
        for code in get_args(ErrorCode):
            unsent.add_metric([code], int(sends.get(f"unsent:{code}", 0)))
        return [accepted, outcomes, lateness, accept_to_sent, typing, unsent, deliveries, failed, latency]

    async def _quotas_and_outbox(self) -> list[Metric]:
        names = await self.instances.names()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()  # the windows end at Redis's now, the clock the claims count sends by
            for name in names:
                pipe.hget(keys.instance(name), "phoneNumber")
            redis_time, *phones = await pipe.execute()
        now = from_time(redis_time)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, phone in zip(names, phones, strict=True):
                pipe.llen(keys.outbox(name))
                for lane in LANES:
                    for window_ms in WINDOWS_MS.values():
                        pipe.zcount(keys.quota_sends(name, phone, lane), f"({now - window_ms}", "+inf")
            answers = iter(await pipe.execute())
        depth = 0
        saturated = {(lane, window): 0 for lane in LANES for window in WINDOWS_MS}
        highest = {(lane, window): 0.0 for lane in LANES for window in WINDOWS_MS}
        for _ in names:
            depth += next(answers)
            for lane in LANES:
                for window in WINDOWS_MS:
                    used = next(answers) / self.limits[lane][window]
                    saturated[lane, window] += used >= 1
                    highest[lane, window] = max(highest[lane, window], used)
        outbox = GaugeMetricFamily("wa_webhook_outbox_depth", "Webhook events not yet settled (waiting or retrying)")
        outbox.add_metric([], depth)
        spent = GaugeMetricFamily(
            "wa_lane_quota_saturated_instances", "Instances whose rolling quota of the lane is spent",
            labels=["lane", "window"],
        )  # fmt: skip
        usage = GaugeMetricFamily(
            "wa_lane_quota_usage_max_ratio", "The highest share of its rolling quota any instance has used",
            labels=["lane", "window"],
        )  # fmt: skip
        for lane, window in saturated:
            spent.add_metric([lane, window], saturated[lane, window])
            usage.add_metric([lane, window], highest[lane, window])
        return [outbox, spent, usage]

    async def _webhook_endpoints(self) -> list[Metric]:
        """Webhook endpoints by state (webhooks/endpoint.py), and how long the oldest delivery
        still held or waiting has waited: what an alert on a receiver's outage looks at."""
        names = await self.instances.names()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()  # the outbox stamps its deliveries with Redis's clock
            for name in names:
                pipe.hget(keys.webhook_endpoint(name), "state")
                pipe.lindex(keys.outbox(name), 0)
            redis_time, *answers = await pipe.execute()
        by_state = dict.fromkeys(STATES, 0)
        heads = []
        for name, state, head in zip(names, answers[::2], answers[1::2], strict=True):
            by_state[state if state in by_state else "ok"] += 1
            if head is not None:
                heads.append(keys.webhook_delivery(name, head))
        records = await self.redis.mget(heads) if heads else []
        created = [datetime.fromisoformat(json.loads(raw)["createdAt"]) for raw in records if raw is not None]
        now = datetime.fromtimestamp(from_time(redis_time) / 1000, UTC)
        endpoints = GaugeMetricFamily("wa_webhook_endpoints", "Instances' webhook endpoints by state", labels=["state"])
        for state, count in by_state.items():
            endpoints.add_metric([state], count)
        oldest = GaugeMetricFamily(
            "wa_webhook_oldest_pending_seconds", "Age of the oldest webhook delivery not yet settled (0: none)"
        )
        oldest.add_metric([], max(((now - at).total_seconds() for at in created), default=0.0))
        return [endpoints, oldest]

    async def _workers(self) -> list[Metric]:
        beats = await self.redis.zrange(keys.WORKERS, 0, -1, withscores=True)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()  # heartbeats are stamped with Redis's clock: judged by it too
            for worker_id, _ in beats:
                pipe.scard(keys.worker_instances(worker_id))
            redis_time, *sessions = await pipe.execute()
        now = from_time(redis_time)
        up = GaugeMetricFamily("wa_worker_up", "1 while the worker's heartbeat is fresh (its lease)", labels=["worker"])
        age = GaugeMetricFamily(
            "wa_worker_heartbeat_age_seconds", "Time since the worker's heartbeat", labels=["worker"]
        )
        hosted = GaugeMetricFamily(
            "wa_worker_sessions", "Instances (WhatsApp sessions) a worker owns", labels=["worker"]
        )
        alive = GaugeMetricFamily("wa_workers_alive", "Workers with a fresh heartbeat")
        for (worker_id, beat), count in zip(beats, sessions, strict=True):
            up.add_metric([worker_id], int(beat >= now - self.lease_timeout_ms))
            age.add_metric([worker_id], max(0.0, (now - beat) / 1000))
            hosted.add_metric([worker_id], count)
        alive.add_metric([], sum(beat >= now - self.lease_timeout_ms for _, beat in beats))
        return [up, age, hosted, alive]

    async def _operations(self) -> list[Metric]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.STATS, [f"connection:{event}" for event in CONNECTION_EVENTS])
            pipe.hgetall(keys.HTTP_STATS)
            connection, requests = await pipe.execute()
        events = CounterMetricFamily(
            "wa_connection_events", "WhatsApp sessions disconnected, logged out, banned, or their QR expired",
            labels=["event"],
        )  # fmt: skip
        for event, count in zip(CONNECTION_EVENTS, connection, strict=True):
            events.add_metric([event], int(count or 0))
        http = CounterMetricFamily(
            "wa_http_requests", "HTTP requests answered, by method, route template and status",
            labels=["method", "route", "status"],
        )  # fmt: skip
        for name, count in sorted(requests.items()):
            http.add_metric(list(parse_field(name)), int(count))
        build = GaugeMetricFamily("wa_build_info", "The running gateway's versions (always 1)",
                                  labels=["version", "python", "neonize"])  # fmt: skip
        build.add_metric([_version("wa-gateway"), platform.python_version(), _version("neonize")], 1)
        return [events, http, build]


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
