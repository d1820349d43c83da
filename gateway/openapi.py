"""The OpenAPI 3.1 document, generated from the route table and the same pydantic models that
validate requests."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.routing import Route

OPENAPI = web.AppKey("openapi", dict)
PARAM_RE = re.compile(r"{(\w+)}")
REF = "#/components/schemas/{model}"


class ErrorIssue(BaseModel):
    path: list[str | int]
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    issues: list[ErrorIssue] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
    requestId: str


ERRORS = {
    "400": "validation_error: the body, query or a header is invalid (see issues)",
    "401": "invalid_api_key",
    "403": "forbidden_tenant",
    "404": "not_found",
    "409": "already_exists / idempotency_conflict / invalid_state",
    "413": "payload_too_large",
    "429": "rate_limited (Retry-After set)",
}


def build_openapi(
    routes: Sequence[Route], version: str, webhooks: Mapping[str, type[BaseModel]] | None = None
) -> dict[str, Any]:
    """The document for `routes`, and `webhooks` (event name: the record of its `data`) as the
    OpenAPI 3.1 `webhooks` the gateway POSTs to an instance's webhookUrl."""
    webhooks = webhooks or {}
    models: set[type[BaseModel]] = {ErrorBody, *webhooks.values()}
    for route in routes:
        models.update(m for m in (route.body, route.response) if m is not None)
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
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in PARAM_RE.findall(route.path)
        ]
        if route.access == "signed":
            params += [
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
                for name, text in (("exp", "link expiry, Unix seconds"), ("sig", "the link's signature"))
            ]
        if route.method == "POST":
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 255},
                    "description": "same key and body within 24 h replays the first answer",
                }
            )
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


def _responses(route: Route, refs: dict[type[BaseModel], Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "success"}
    if route.response is not None:
        schema = refs[route.response]
        content_schema = {"type": "array", "items": schema} if route.many else schema
        ok["content"] = {"application/json": {"schema": content_schema}}
    elif route.binary:
        ok["content"] = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    responses: dict[str, Any] = {str(route.status): ok}
    error = {"application/json": {"schema": refs[ErrorBody]}}
    for status, description in ERRORS.items():
        if route.access == "public" and status in ("401", "403"):
            continue
        responses[status] = {"description": description, "content": error}
    return responses
