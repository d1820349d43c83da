"""Typed application state: one `Services` object opened and closed in the app's cleanup_ctx."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from config import Settings
from core.errors import InvalidApiKey
from core.instances import Instance, Instances
from core.redis_client import Redis
from core.tenants import Principal, Tenants
from gateway.idempotency import Idempotency
from gateway.ratelimit import Gatekeeper
from scheduler.commands import Commands
from scheduler.lanes import Lanes
from scheduler.messages import Messages
from scheduler.ownership import Ownership
from webhooks.outbox import Outbox


@dataclass
class Services:
    settings: Settings
    redis: Redis
    tenants: Tenants
    gatekeeper: Gatekeeper
    idempotency: Idempotency
    instances: Instances
    commands: Commands
    lanes: Lanes
    ownership: Ownership
    messages: Messages
    outbox: Outbox


SERVICES = web.AppKey("services", Services)
PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
EXTRA_HEADERS = web.RequestKey("extra_headers", dict[str, str])


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def principal(request: web.Request) -> Principal:
    found = request.get(PRINCIPAL)
    if found is None:
        raise InvalidApiKey("missing apikey header")
    return found


def require_tenant_access(request: web.Request, tenant_id: str) -> Principal:
    """The caller must be the admin or a key of `tenant_id`."""
    caller = principal(request)
    caller.require(tenant_id, f"tenant {tenant_id!r}")
    return caller


def require_instance_access(request: web.Request, name: str) -> Principal:
    """A tenant key may only touch instance names that start with its own `tenantId__`."""
    caller = principal(request)
    caller.require(name.split("__")[0], f"instance {name!r}")
    return caller


async def accessible_instance(request: web.Request) -> Instance:
    """The instance named in the path, if the caller may touch it (403 before 404: no probing)."""
    name = request.match_info["name"]
    require_instance_access(request, name)
    return await services(request).instances.get(name)
