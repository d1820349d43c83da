"""The OpenAPI 3.1 document, generated from the route table and the same pydantic models that
validate requests: every answer with its schema and headers, every parameter with the
constraints its validator enforces."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from core.records import ApiModel
from gateway.middleware import IDEMPOTENCY_KEY_MAX, REQUEST_ID_PATTERN, TOKEN
from gateway.routing import Route
from gateway.validation import PATH_PARAMS, absent_not_null

OPENAPI = web.AppKey("openapi", dict)
PARAM_RE = re.compile(r"{(\w+)}")
REF = "#/components/schemas/{model}"


class ErrorIssue(ApiModel):
    path: list[str | int]
    message: str


class ErrorDetail(ApiModel):
    code: str
    message: str
    issues: list[ErrorIssue] | None = None


class ErrorBody(ApiModel):
    error: ErrorDetail
    request_id: str


ERRORS = {
    "400": "validation_error: the body, query, a header or the request itself is invalid (see issues)",
    "401": "invalid_api_key",
    "403": "forbidden_tenant / insufficient_scope (a read or metrics key)",
    "404": "not_found",
    "405": "method_not_allowed (Allow lists the methods this path takes)",
    "408": "request_timeout: the body did not arrive in time",
    "409": "already_exists / idempotency_conflict / invalid_state",
    "413": "payload_too_large",
    "429": "rate_limited / queue_full (Retry-After set)",
    "500": "internal_error: a bug; quote the requestId",
    "502": "whatsapp_error: the worker or WhatsApp failed to carry out the call",
    "503": "unavailable: Redis or every worker is down; retry shortly",
}
PUBLIC_SKIPS = ("401", "403")

_INTEGER = {"type": "integer", "minimum": 0}
HEADERS: dict[str, dict[str, Any]] = {
    "x-request-id": {
        "description": "this request's id (the one sent, when it was valid); quote it when reporting a problem",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN}$"},
    },
    "X-RateLimit-Limit": {"description": "requests allowed per minute for this key", "schema": _INTEGER},
    "X-RateLimit-Remaining": {"description": "requests left in this minute", "schema": _INTEGER},
    "X-RateLimit-Reset": {"description": "seconds until the minute starts again", "schema": _INTEGER},
}
RETRY_AFTER = {"description": "seconds to wait before retrying", "required": True, "schema": _INTEGER}
ALLOW = {"description": "the methods this path takes", "required": True, "schema": {"type": "string"}}
REPLAYED = {
    "description": "set when this is the stored answer to an earlier request with the same Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": f"^{TOKEN}$", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
    "description": "same key and body within 24 h replays the first answer; a different body is a 409",
}
PATH_SCHEMAS = {name: adapter.json_schema() for name, adapter in PATH_PARAMS.items()}


def build_openapi(
    routes: Sequence[Route], version: str, webhooks: Mapping[str, type[BaseModel]] | None = None
) -> dict[str, Any]:
    """The document for `routes`, and `webhooks` (event name: the record of its `data`) as the
    OpenAPI 3.1 `webhooks` the gateway POSTs to an instance's webhookUrl."""
    webhooks = webhooks or {}
    models: set[type[BaseModel]] = {ErrorBody, *webhooks.values()}
    for route in routes:
        models.update(m for m in (route.body, route.response, route.also and route.also[1]) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    keys, schema = models_json_schema([(model, "validation") for model in ordered], ref_template=REF, by_alias=True)
    refs = {model: keys[(model, "validation")] for model in ordered}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not route.in_docs:
            continue
        operation: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": route.handler.__name__,
            "responses": _responses(route, refs),
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": PATH_SCHEMAS.get(name, {"type": "string"})}
            for name in PARAM_RE.findall(route.path)
        ]
        if route.query is not None:
            params.extend(_query_params(route.query))
        if route.method == "POST":
            params.append(IDEMPOTENCY_KEY)
        if params:
            operation["parameters"] = params
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[route.body]}},
            }
        if route.access == "public":
            operation["security"] = []
        elif route.access == "signed":
            operation["security"] = [{"apikey": []}, {}]  # {}: a signed link needs no key
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "wa-gateway", "version": version},
        "paths": paths,
        "webhooks": {event: _webhook(event, refs[model]) for event, model in webhooks.items()},
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"apikey": {"type": "apiKey", "in": "header", "name": "apikey"}},
        },
        "security": [{"apikey": []}],
    }


def _webhook(event: str, data: dict[str, Any]) -> dict[str, Any]:
    envelope = {
        "type": "object",
        "required": ["event", "instanceName", "data", "timestamp"],
        "properties": {
            "event": {"const": event},
            "instanceName": {"type": "string"},
            "data": data,
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "post": {
            "summary": f"{event}, signed with the instance's webhookSecret (x-gateway-signature)",
            "operationId": event.replace(".", "_"),
            "requestBody": {"required": True, "content": {"application/json": {"schema": envelope}}},
            "responses": {"2XX": {"description": "received; any other answer is retried"}},
        }
    }


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _drop_titles(prop)}
        for name, prop in schema["properties"].items()
    ]


def _drop_titles(schema: dict[str, Any]) -> dict[str, Any]:
    plain = {key: value for key, value in schema.items() if key != "title"}
    absent_not_null(plain)  # a query string has no null
    return plain


# The success content of routes that do not answer JSON (Route.answers).
NON_JSON = {
    "binary": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    "text": {"text/plain": {"schema": {"type": "string"}}},
}


def _responses(route: Route, refs: dict[type[BaseModel], Any]) -> dict[str, Any]:
    headers = dict(HEADERS)
    ok: dict[str, Any] = {"description": "success", "headers": headers}
    if route.method == "POST":
        ok["headers"] = {**headers, "Idempotent-Replayed": REPLAYED}
    if route.response is not None:
        schema = refs[route.response]
        content_schema = {"type": "array", "items": schema} if route.many else schema
        ok["content"] = {"application/json": {"schema": content_schema}}
    elif route.answers in NON_JSON:
        ok["content"] = NON_JSON[route.answers]
    responses: dict[str, Any] = {str(route.status): ok}
    if route.also is not None:
        also_status, model = route.also
        responses[str(also_status)] = {**ok, "content": {"application/json": {"schema": refs[model]}}}
    error = {"application/json": {"schema": refs[ErrorBody]}}
    for status, description in ERRORS.items():
        if route.access == "public" and status in PUBLIC_SKIPS:
            continue
        extra = {"429": {"Retry-After": RETRY_AFTER}, "405": {"Allow": ALLOW}}.get(status, {})
        responses[status] = {"description": description, "headers": {**headers, **extra}, "content": error}
    return responses
