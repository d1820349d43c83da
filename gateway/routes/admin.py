from __future__ import annotations

from aiohttp import web

from gateway.responses import json_response
from gateway.state import services
from gateway.validation import ApiModel, NamePart


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
    created_at: str
    key_ids: list[str]


class KeyIssued(ApiModel):
    api_key: str
    key_id: str


async def create_tenant(request: web.Request, body: CreateTenant) -> web.Response:
    tenant, issued = await services(request).tenants.create(body.tenant_id, body.name)
    out = TenantCreated(tenant_id=tenant.tenant_id, name=tenant.name, api_key=issued.api_key, key_id=issued.key_id)
    return json_response(out, status=201)


async def list_tenants(request: web.Request) -> web.Response:
    tenants = await services(request).tenants.list()
    return json_response(
        [TenantOut(tenant_id=t.tenant_id, name=t.name, created_at=t.created_at, key_ids=t.key_ids) for t in tenants]
    )


async def issue_key(request: web.Request) -> web.Response:
    issued = await services(request).tenants.issue_key(request.match_info["tenantId"])
    return json_response(KeyIssued(api_key=issued.api_key, key_id=issued.key_id), status=201)


async def revoke_key(request: web.Request) -> web.Response:
    await services(request).tenants.revoke_key(request.match_info["keyId"])
    return web.Response(status=204)
