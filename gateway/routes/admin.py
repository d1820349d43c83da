from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from core import audit, keys
from core.clock import iso_from_ms
from core.records import ApiModel, Timestamp
from core.tenants import NO_TENANT, Scope
from gateway.responses import json_response
from gateway.state import by_whom, services
from gateway.validation import NamePart, parse_body
from scheduler.messages import MessageUpdate


class CreateTenant(ApiModel):
    tenant_id: NamePart
    name: str | None = None


class TenantCreated(ApiModel):
    tenant_id: str
    name: str
    api_key: str
    key_id: str


class TenantOut(ApiModel):
    tenant_id: str
    name: str
    created_at: Timestamp
    key_ids: list[str]


class IssueKey(ApiModel):
    scopes: list[Literal["all", "read"]] = Field(
        default=["all"], min_length=1, max_length=2, description='"read": GET routes and /events only'
    )


class IssueGatewayKey(ApiModel):
    scopes: list[Literal["metrics"]] = Field(min_length=1, max_length=1, description='"metrics": GET /metrics alone')


class KeyIssued(ApiModel):
    api_key: str
    key_id: str
    scopes: list[str]


async def create_tenant(request: web.Request, body: CreateTenant) -> web.Response:
    tenant, issued = await services(request).tenants.create(body.tenant_id, body.name)
    await audit.record(
        services(request).redis, "key_issued", by_whom(request), tenant_id=tenant.tenant_id, key_id=issued.key_id
    )
    out = TenantCreated(tenant_id=tenant.tenant_id, name=tenant.name, api_key=issued.api_key, key_id=issued.key_id)
    return json_response(out, status=201)


async def list_tenants(request: web.Request) -> web.Response:
    tenants = await services(request).tenants.list()
    return json_response(
        [TenantOut(tenant_id=t.tenant_id, name=t.name, created_at=t.created_at, key_ids=t.key_ids) for t in tenants]
    )


async def issue_key(request: web.Request) -> web.Response:
    # The body is optional (a call without one, as before scopes existed, issues a full key), so
    # it is read here rather than declared on the route.
    body = await parse_body(request, IssueKey) if (await request.read()).strip() else IssueKey()
    scope: Scope = "all" if "all" in body.scopes else "read"
    svc, tenant_id = services(request), request.match_info["tenantId"]
    issued = await svc.tenants.issue_key(tenant_id, scope)
    await audit.record(
        svc.redis, "key_issued", by_whom(request), tenant_id=tenant_id, key_id=issued.key_id, scopes=[scope]
    )
    return json_response(KeyIssued(api_key=issued.api_key, key_id=issued.key_id, scopes=[scope]), status=201)


async def issue_gateway_key(request: web.Request, body: IssueGatewayKey) -> web.Response:
    """A key of no tenant: GET /metrics alone, counted against its own rate limit (Prometheus
    needs neither the admin key nor the console's share of its limit)."""
    svc = services(request)
    issued = await svc.tenants.issue_key(NO_TENANT, "metrics")
    await audit.record(svc.redis, "key_issued", by_whom(request), key_id=issued.key_id, scopes=["metrics"])
    return json_response(KeyIssued(api_key=issued.api_key, key_id=issued.key_id, scopes=["metrics"]), status=201)


async def revoke_key(request: web.Request) -> web.Response:
    await services(request).tenants.revoke_key(request.match_info["keyId"])
    await audit.record(services(request).redis, "key_revoked", by_whom(request), key_id=request.match_info["keyId"])
    return web.Response(status=204)


class Flushed(ApiModel):
    instance_name: str
    flushed: int


class LaneCounts(ApiModel):
    urgent: int
    normal: int
    bulk: int


class Stats(ApiModel):
    instances: dict[str, int]
    waiting: LaneCounts
    messages: dict[str, int]
    webhooks: dict[str, int]
    workers_alive: int


async def flush_queue(request: web.Request) -> web.Response:
    name = request.match_info["instanceName"]
    svc = services(request)
    await svc.instances.get(name)
    flushed = MessageUpdate(
        status="cancelled", error="cancelled: the queue was flushed", error_code="cancelled_by_flush"
    )
    cancelled = await svc.lanes.flush(name, flushed.hash_fields())
    await audit.record(svc.redis, "queue_flushed", by_whom(request), instance=name, flushed=len(cancelled))
    return json_response(Flushed(instance_name=name, flushed=len(cancelled)))


async def stats(request: web.Request) -> web.Response:
    svc = services(request)
    by_state, waiting = await svc.instances.census()
    counters = await svc.redis.hgetall(keys.STATS)  # type: ignore[misc]  # redis-py types it Awaitable[T] | T
    messages = {k: int(counters.get(k, 0)) for k in ("accepted", "sent", "failed", "cancelled")}
    webhooks = await svc.outbox.stats()
    workers = await svc.ownership.live_workers()
    out = Stats(
        instances=by_state,
        waiting=LaneCounts(**waiting),
        messages=messages,
        webhooks=webhooks,
        workers_alive=len(workers),
    )
    return json_response(out)


class WorkerOut(ApiModel):
    worker_id: str
    alive: bool
    last_heartbeat: Timestamp
    host: str | None
    pid: int | None
    capacity: int | None
    started_at: Timestamp | None
    instances: list[str]


async def list_workers(request: web.Request) -> web.Response:
    found = await services(request).ownership.workers()
    return json_response(
        [
            WorkerOut(
                worker_id=w.worker_id,
                alive=w.alive,
                last_heartbeat=iso_from_ms(w.last_heartbeat_ms),
                host=w.details.get("host"),
                pid=int(w.details["pid"]) if "pid" in w.details else None,
                capacity=int(w.details["capacity"]) if "capacity" in w.details else None,
                started_at=iso_from_ms(int(w.details["startedAt"])) if "startedAt" in w.details else None,
                instances=w.instances,
            )
            for w in found
        ]
    )
