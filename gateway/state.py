"""Typed application state: one `Services` object opened and closed in the app's cleanup_ctx."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from aiohttp import web

from config import Settings
from core.errors import ForbiddenTenant, InvalidApiKey
from core.instances import Instances
from core.redis_client import Redis
from core.tenants import Principal, Tenants
from gateway.idempotency import Idempotency
from gateway.metrics import Metrics
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
    metrics: Metrics


SERVICES = web.AppKey("services", Services)
SOCKETS = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])  # open /events connections
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
    if not caller.is_admin and caller.tenant_id != tenant_id:
        raise ForbiddenTenant(f"this API key belongs to tenant {caller.tenant_id!r}, not {tenant_id!r}")
    return caller
