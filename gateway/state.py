"""Typed application state: one `Services` object opened and closed in the app's cleanup_ctx."""

from __future__ import annotations

from dataclasses import dataclass, fields

from aiohttp import web

from core.errors import InvalidApiKey
from core.instances import Instance, tenant_of
from core.tenants import KeyCheck, Principal
from gateway.http_counts import HttpCounts
from gateway.idempotency import Idempotency
from gateway.metrics import Metrics
from gateway.ratelimit import Gatekeeper
from gateway.sockets import EventSockets
from scheduler.services import Services


@dataclass
class ApiServices(Services):
    """The domain's services plus the API's own: authentication with its rate limit, idempotency."""

    gatekeeper: Gatekeeper
    idempotency: Idempotency
    metrics: Metrics
    http: HttpCounts

    @classmethod
    def around(cls, domain: Services) -> ApiServices:
        assert domain.settings.admin_key is not None
        return cls(
            **{field.name: getattr(domain, field.name) for field in fields(domain)},
            gatekeeper=Gatekeeper(
                domain.redis, domain.settings.admin_key.get_secret_value(), domain.settings.rate_limit
            ),
            idempotency=Idempotency(domain.redis, domain.box),
            metrics=Metrics(domain.redis, domain.instances, domain.settings),
            http=HttpCounts(domain.redis),
        )


SERVICES = web.AppKey("services", ApiServices)
SOCKETS = web.AppKey("sockets", EventSockets)  # open /events connections
PRINCIPAL = web.RequestKey("principal", Principal)
# A send route's API key, left by the auth middleware for accept_sends (gateway/routes/accepting.py)
# to check in its accept step.
KEY_CHECK = web.RequestKey("key_check", KeyCheck)
REQUEST_ID = web.RequestKey("request_id", str)
EXTRA_HEADERS = web.RequestKey("extra_headers", dict[str, str])


def services(request: web.Request) -> ApiServices:
    return request.app[SERVICES]


def principal(request: web.Request) -> Principal:
    found: Principal | None = request.get(PRINCIPAL)
    if found is None:
        raise InvalidApiKey("missing apikey header")
    return found


def by_whom(request: web.Request) -> str:
    """Who asked, for the audit trail: `admin` or the tenant key's id (never the key)."""
    caller = principal(request)
    return "admin" if caller.is_admin else caller.key_id


def require_tenant_access(request: web.Request, tenant_id: str) -> Principal:
    """The caller must be the admin or a key of `tenant_id`."""
    caller = principal(request)
    caller.require(tenant_id, f"tenant {tenant_id!r}")
    return caller


def require_instance_access(request: web.Request, name: str) -> Principal:
    """A tenant key may only touch instance names that start with its own `tenantId__`."""
    caller = principal(request)
    caller.require(tenant_of(name), f"instance {name!r}")
    return caller


async def accessible_instance(request: web.Request) -> Instance:
    """The instance named in the path, if the caller may touch it (403 before 404: no probing)."""
    name = request.match_info["name"]
    require_instance_access(request, name)
    return await services(request).instances.get(name)
