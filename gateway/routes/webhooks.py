from __future__ import annotations

from aiohttp import web
from pydantic import Field, model_validator

from core.records import ApiModel
from gateway.responses import json_response
from gateway.state import accessible_instance, services
from gateway.validation import WebUrl, absent_not_null, admitted_webhook_url, validate
from webhooks.outbox import Delivery

TEST_EVENT = "webhook.test"


class WebhookUpdate(ApiModel):
    # Either field may be left out, neither may be null: what `_something_to_change` checks.
    model_config = {**ApiModel.model_config, "json_schema_extra": {"minProperties": 1}}
    webhook_url: WebUrl | None = Field(default=None, json_schema_extra=absent_not_null)
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=256, json_schema_extra=absent_not_null)

    @model_validator(mode="after")
    def _something_to_change(self) -> WebhookUpdate:
        if self.webhook_url is None and self.webhook_secret is None:
            raise ValueError("send webhookUrl, webhookSecret or both")
        nulls = [type(self).model_fields[name].alias for name in self.model_fields_set if getattr(self, name) is None]
        if nulls:
            raise ValueError(f"{', '.join(sorted(str(n) for n in nulls))} may not be null: leave it out instead")
        return self


class WebhookOut(ApiModel):
    instance_name: str
    webhook_url: str
    secret_rotated: bool


class DeliveriesQuery(ApiModel):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: int | None = Field(default=None, ge=0, description="the nextCursor of the previous page")


class DeliveryPage(ApiModel):
    deliveries: list[Delivery]
    next_cursor: int | None


class DeliveryQueued(ApiModel):
    delivery_id: str
    event: str
    status: str


async def update_webhook(request: web.Request, body: WebhookUpdate) -> web.Response:
    instance = await accessible_instance(request)
    svc = services(request)
    if body.webhook_url is not None:
        await admitted_webhook_url(svc.settings, body.webhook_url)
    await svc.instances.set_webhook(instance.name, body.webhook_url, body.webhook_secret)
    out = WebhookOut(
        instance_name=instance.name,
        webhook_url=body.webhook_url or instance.webhook_url,
        secret_rotated=body.webhook_secret is not None,
    )
    return json_response(out)


async def send_test(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    data = {"message": "a test event sent on request"}
    delivery_id = await services(request).outbox.publish(instance.name, TEST_EVENT, data)
    return json_response(DeliveryQueued(delivery_id=delivery_id, event=TEST_EVENT, status="pending"), status=202)


async def list_deliveries(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    query = validate(DeliveriesQuery, dict(request.query))
    deliveries, next_cursor = await services(request).outbox.page(instance.name, query.limit, query.cursor)
    return json_response(DeliveryPage(deliveries=deliveries, next_cursor=next_cursor))


async def replay_delivery(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    queued = await services(request).outbox.replay(instance.name, request.match_info["id"])
    return json_response(DeliveryQueued(delivery_id=queued.id, event=queued.event, status=queued.status), status=202)
