"""Health, who a key is, the OpenAPI document and the docs page."""

from __future__ import annotations

import asyncio

import swagger_ui_bundle
from aiohttp import web
from redis.exceptions import RedisError

from core.errors import Unavailable
from core.records import ApiModel
from gateway.openapi import OPENAPI
from gateway.responses import json_response
from gateway.state import principal, services

DOCS_STATIC = "/docs/static"


class Health(ApiModel):
    status: str
    redis: str


async def health(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(services(request).redis.ping(), timeout=1.0)
    except (RedisError, OSError, TimeoutError) as exc:
        raise Unavailable(f"Redis does not answer ({type(exc).__name__})") from exc
    return web.json_response(Health(status="ok", redis="ok").model_dump())


class WhoAmI(ApiModel):
    key_id: str
    tenant_id: str | None  # None for the admin key
    admin: bool


async def whoami(request: web.Request) -> web.Response:
    caller = principal(request)
    return json_response(WhoAmI(key_id=caller.key_id, tenant_id=caller.tenant_id, admin=caller.is_admin))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wa-gateway API</title>
<link rel="stylesheet" href="{static}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}});</script>
</body></html>
"""


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE.format(static=DOCS_STATIC), content_type="text/html")


def add_docs_static(app: web.Application) -> None:
    app.router.add_static(DOCS_STATIC, swagger_ui_bundle.swagger_ui_path)
