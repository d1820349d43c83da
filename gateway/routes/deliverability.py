"""Staying unbanned (README): a tenant's opt-out list, an instance's warm-up override and the
lifting of its bulk-lane pause."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field, RootModel

from core.errors import InvalidState, NotFound
from core.records import ApiModel, Timestamp
from core.suppressions import Source, Suppression
from gateway.responses import json_response
from gateway.state import require_tenant_access, services
from gateway.validation import PhoneNumber
from scheduler.event_data import InstanceUnthrottledData

MAX_NUMBERS = 1000


class SuppressionOut(ApiModel):
    number: str
    reason: str | None
    source: Source  # "api", or "keyword": the contact replied with an opt-out keyword
    added_at: Timestamp


class SuppressionsOut(ApiModel):
    tenant_id: str
    suppressions: list[SuppressionOut]


class Suppress(ApiModel):
    numbers: list[PhoneNumber] = Field(min_length=1, max_length=MAX_NUMBERS)
    reason: str | None = Field(default=None, max_length=200)


class Suppressed(ApiModel):
    tenant_id: str
    added: list[str]  # the numbers that were not on the list before


def _out(found: Suppression) -> SuppressionOut:
    return SuppressionOut(number=found.number, reason=found.reason, source=found.source, added_at=found.added_at)


async def _tenant(request: web.Request) -> str:
    tenant_id = request.match_info["tenantId"]
    require_tenant_access(request, tenant_id)
    if not await services(request).tenants.exists(tenant_id):
        raise NotFound(f"no tenant {tenant_id!r}")
    return tenant_id


async def list_suppressions(request: web.Request) -> web.Response:
    tenant_id = await _tenant(request)
    found = await services(request).suppressions.listing(tenant_id)
    return json_response(SuppressionsOut(tenant_id=tenant_id, suppressions=[_out(s) for s in found]))


async def add_suppressions(request: web.Request, body: Suppress) -> web.Response:
    tenant_id = await _tenant(request)
    numbers = list(dict.fromkeys(body.numbers))
    added = await services(request).suppressions.add(tenant_id, numbers, body.reason, "api")
    return json_response(Suppressed(tenant_id=tenant_id, added=added))


async def remove_suppression(request: web.Request) -> web.Response:
    tenant_id = await _tenant(request)
    number = request.match_info["number"]
    if not await services(request).suppressions.remove(tenant_id, number):
        raise NotFound(f"{number!r} is not on the opt-out list of tenant {tenant_id!r}")
    return web.Response(status=204)


class WarmupFactor(ApiModel):
    factor: float = Field(gt=0, le=1, description="the fraction of the lane quotas, whatever the day")


class WarmupSkip(ApiModel):
    skip: Literal[True] = Field(description="the full lane quotas at once")


class WarmupOverride(RootModel[WarmupFactor | WarmupSkip]):
    """Either a fixed factor of the lane quotas, or `skip` (the full quotas at once)."""


class WarmupOut(ApiModel):
    instance_name: str
    factor: float | None  # None: the lanes' warm-up schedule applies


async def set_warmup(request: web.Request, body: WarmupOverride) -> web.Response:
    return await _warmup(request, body.root.factor if isinstance(body.root, WarmupFactor) else 1.0)


async def clear_warmup(request: web.Request) -> web.Response:
    return await _warmup(request, None)


async def _warmup(request: web.Request, factor: float | None) -> web.Response:
    name = request.match_info["name"]
    svc = services(request)
    await svc.instances.get(name)
    await svc.instances.update(name, warmup=None if factor is None else repr(factor))
    await svc.lanes.kick(name)  # a larger quota may let messages go now
    return json_response(WarmupOut(instance_name=name, factor=factor))


class Unthrottled(ApiModel):
    instance_name: str
    reason: str  # why the bulk lane had paused


async def lift_throttle(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    svc = services(request)
    await svc.instances.get(name)
    reason = await svc.lanes.unthrottle(name)
    if reason is None:
        raise InvalidState(f"instance {name!r} has no paused bulk lane")
    resumed = InstanceUnthrottledData.model_validate({"reason": reason, "by": "admin"})
    await svc.outbox.publish(name, "instance.unthrottled", resumed)
    return json_response(Unthrottled(instance_name=name, reason=reason))
