"""Staying unbanned (README): a tenant's opt-out list, an instance's warm-up override and the
lifting of its bulk-lane pause."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, model_validator

from core.errors import InvalidState, NotFound
from core.records import ApiModel
from core.suppressions import Suppression, Suppressions
from gateway.responses import json_response
from gateway.state import require_tenant_access, services
from gateway.validation import PhoneNumber

MAX_NUMBERS = 1000


class SuppressionOut(ApiModel):
    number: str
    reason: str | None
    source: str  # "api" or "keyword" (the contact replied with an opt-out keyword)
    added_at: str


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


def _suppressions(request: web.Request) -> Suppressions:
    return Suppressions(services(request).redis)


async def list_suppressions(request: web.Request) -> web.Response:
    tenant_id = await _tenant(request)
    found = await _suppressions(request).listing(tenant_id)
    return json_response(SuppressionsOut(tenant_id=tenant_id, suppressions=[_out(s) for s in found]))


async def add_suppressions(request: web.Request, body: Suppress) -> web.Response:
    tenant_id = await _tenant(request)
    numbers = list(dict.fromkeys(body.numbers))
    added = await _suppressions(request).add(tenant_id, numbers, body.reason, "api")
    return json_response(Suppressed(tenant_id=tenant_id, added=added))


async def remove_suppression(request: web.Request) -> web.Response:
    tenant_id = await _tenant(request)
    number = request.match_info["number"]
    if not await _suppressions(request).remove(tenant_id, number):
        raise NotFound(f"{number!r} is not on the opt-out list of tenant {tenant_id!r}")
    return web.Response(status=204)


class WarmupOverride(ApiModel):
    """Either a fixed factor of the lane quotas, or `skip` (the full quotas at once)."""

    factor: float | None = Field(default=None, gt=0, le=1)
    skip: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> WarmupOverride:
        if (self.factor is None) == (not self.skip):
            raise ValueError('send either {"factor": 0 < f <= 1} or {"skip": true}')
        return self


class WarmupOut(ApiModel):
    instance_name: str
    factor: float | None  # None: the lanes' warm-up schedule applies


async def set_warmup(request: web.Request, body: WarmupOverride) -> web.Response:
    return await _warmup(request, 1.0 if body.skip else body.factor)


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
    await svc.outbox.publish(name, "instance.unthrottled", {"reason": reason, "by": "admin"})
    return json_response(Unthrottled(instance_name=name, reason=reason))
