"""`create_app(settings)`: the whole route table on one screen."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib.metadata import version

from aiohttp import web

from config import Settings
from gateway.commands import Commands
from gateway.crypto import SecretBox
from gateway.idempotency import Idempotency
from gateway.instances import Instances
from gateway.middleware import auth_middleware, errors_middleware, idempotency_middleware
from gateway.openapi import OPENAPI, build_openapi
from gateway.ratelimit import RateLimiter
from gateway.redis_client import connect
from gateway.routes import admin, instances, meta, sandbox
from gateway.routing import Route
from gateway.state import SERVICES, Services
from gateway.tenants import Tenants
from scheduler.worker import arq_pool

I = instances  # noqa: E741  (keeps the table below on one line a route)
ROUTES: list[Route] = [
    Route("GET", "/health", meta.health, "Gateway and Redis health", response=meta.Health, access="public"),
    Route("GET", "/openapi.json", meta.openapi, "This document", access="public", in_docs=False),
    Route("GET", "/docs", meta.docs, "API docs page", access="public", in_docs=False),
    # Instances.
    Route("POST", "/instance/create", I.create_instance, "Create an instance; linking starts at once",
          body=I.CreateInstance, response=I.InstanceStatus, status=201, tag="instances"),
    Route("GET", "/instance/{name}/qr", I.get_qr, "The current QR code as a PNG data URI",
          response=I.QrOut, tag="instances"),
    Route("POST", "/instance/{name}/pairing-code/request", I.request_pairing_code, "Link by pairing code",
          body=I.PairingRequest, response=I.PairingOut, tag="instances"),
    Route("GET", "/instance/{name}/status", I.get_status, "State of an instance",
          response=I.InstanceStatus, tag="instances"),
    Route("GET", "/instance/{name}/queue", I.get_queue, "Messages waiting per lane", response=I.QueueOut,
          tag="instances"),
    Route("DELETE", "/instance/{name}", I.delete_instance, "Log out and delete an instance", status=204,
          tag="instances"),
    Route("GET", "/tenant/{tenantId}/instances", I.list_tenant_instances, "A tenant's instances",
          response=I.InstanceStatus, many=True, tag="instances"),
    Route("GET", "/tenant/{tenantId}/client/{clientId}/instances", I.list_client_instances,
          "One client's instances", response=I.InstanceStatus, many=True, tag="instances"),
    # Tenants and keys (admin only).
    Route("POST", "/admin/tenants", admin.create_tenant, "Create a tenant and its first API key",
          body=admin.CreateTenant, response=admin.TenantCreated, status=201, access="admin", tag="admin"),
    Route("GET", "/admin/tenants", admin.list_tenants, "List tenants with their key ids",
          response=admin.TenantOut, many=True, access="admin", tag="admin"),
    Route("POST", "/admin/tenants/{tenantId}/keys", admin.issue_key, "Issue an extra API key",
          response=admin.KeyIssued, status=201, access="admin", tag="admin"),
    Route("DELETE", "/admin/keys/{keyId}", admin.revoke_key, "Revoke an API key at once",
          status=204, access="admin", tag="admin"),
]  # fmt: skip

SANDBOX_ROUTES: list[Route] = [
    Route("POST", "/sandbox/instance/{name}/link", sandbox.link, "As if the QR was scanned",
          body=sandbox.LinkBody, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/unlink", sandbox.unlink, "As if the phone removed the device",
          tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/inbound", sandbox.inbound, "A contact writes in",
          body=sandbox.InboundBody, response=sandbox.InboundOut, status=201, tag="sandbox"),
    Route("GET", "/sandbox/instance/{name}/sent", sandbox.sent, "What reached 'WhatsApp', in send order",
          response=sandbox.SentMessage, many=True, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/fail-next", sandbox.fail_next, "Make the next sends fail",
          body=sandbox.FailNextBody, tag="sandbox"),
]  # fmt: skip


def create_app(settings: Settings) -> web.Application:
    if settings.redis_url is None or settings.admin_key is None or settings.secret_key is None:
        raise ValueError("create_app needs settings with redis_url, admin_key and secret_key resolved")
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[errors_middleware, auth_middleware, idempotency_middleware],
    )
    routes = ROUTES + (SANDBOX_ROUTES if settings.driver == "sandbox" else [])
    for route in routes:
        app.router.add_route(route.method, route.path, route.endpoint())
    meta.add_docs_static(app)
    app[OPENAPI] = build_openapi(routes, version("wa-gateway"))
    app.cleanup_ctx.append(_services(settings))
    return app


def _services(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        assert settings.redis_url is not None and settings.admin_key is not None and settings.secret_key is not None
        redis = connect(settings.redis_url)
        arq = arq_pool(settings)
        app[SERVICES] = Services(
            settings=settings,
            redis=redis,
            tenants=Tenants(redis, settings.admin_key.get_secret_value()),
            limiter=RateLimiter(redis, settings.rate_limit),
            idempotency=Idempotency(redis),
            instances=Instances(redis, SecretBox(settings.secret_key.get_secret_value())),
            commands=Commands(redis, arq),
        )
        yield
        await arq.aclose(close_connection_pool=True)
        await redis.aclose()

    return context
