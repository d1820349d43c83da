from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, field_validator, model_validator

from core.clock import iso
from core.records import ApiModel
from gateway.responses import json_response
from gateway.state import accessible_instance, services
from gateway.validation import WebUrl, absent_not_null, admitted_webhook_url, validate
from scheduler.event_data import WebhookTestData
from scheduler.events import EVENT_NAMES
from webhooks.endpoint import ALL, Endpoints, WebhookStatus
from webhooks.outbox import Delivery

TEST_EVENT = "webhook.test"


# Documented as the list of names; checked by WebhookUpdate._known_events, which names them all.
EventName = Annotated[str, Field(json_schema_extra={"enum": [*EVENT_NAMES, ALL]})]


class WebhookUpdate(ApiModel):
    # Any field may be left out, none may be null: what `_something_to_change` checks.
    model_config = {**ApiModel.model_config, "json_schema_extra": {"minProperties": 1}}
    webhook_url: WebUrl | None = Field(default=None, json_schema_extra=absent_not_null)
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=256, json_schema_extra=absent_not_null)
    events: list[EventName] | None = Field(
        default=None,
        min_length=1,
        json_schema_extra=absent_not_null,
        description='the events delivered to the webhook (the others are not), or ["*"] for all, the default',
    )
    enabled: bool | None = Field(
        default=None,
        json_schema_extra=absent_not_null,
        description="false: deliveries are dead-lettered; true: a disabled or down webhook starts afresh",
    )

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str] | None) -> list[str] | None:
        unknown = sorted({event for event in events or [] if event not in (*EVENT_NAMES, ALL)})
        if unknown:
            raise ValueError(f"unknown event(s) {unknown}; events are {[*EVENT_NAMES]} or {ALL!r} for all")
        return events

    @model_validator(mode="after")
    def _something_to_change(self) -> WebhookUpdate:
        if not self.model_fields_set:
            raise ValueError("send webhookUrl, webhookSecret, events, enabled or any of them")
        nulls = [type(self).model_fields[name].alias for name in self.model_fields_set if getattr(self, name) is None]
        if nulls:
            raise ValueError(f"{', '.join(sorted(str(n) for n in nulls))} may not be null: leave it out instead")
        return self


class WebhookSettings(ApiModel):
    instance_name: str
    webhook_url: str
    events: list[str] = Field(description='the events delivered; ["*"]: all')
    webhook: WebhookStatus


class WebhookOut(WebhookSettings):
    secret_rotated: bool


class ReplayRequest(ApiModel):
    status: Literal["dead_lettered"]
    since: AwareDatetime | None = Field(default=None, description="only deliveries published at or after")
    until: AwareDatetime | None = Field(default=None, description="only deliveries published at or before")


class Replayed(ApiModel):
    replayed: int


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


def endpoints(request: web.Request) -> Endpoints:
    svc = services(request)
    return Endpoints(svc.redis, svc.settings.webhook_rotation_overlap)


async def update_webhook(request: web.Request, body: WebhookUpdate) -> web.Response:
    instance = await accessible_instance(request)
    svc = services(request)
    if body.webhook_url is not None:
        await admitted_webhook_url(svc.settings, body.webhook_url)
    previous = None
    if body.webhook_secret is not None:
        current = await svc.instances.webhook_secret(instance.name)
        if current != body.webhook_secret:  # the same secret again: nothing to overlap
            previous = svc.instances.box.seal(current)
    if body.webhook_url is not None or body.webhook_secret is not None:
        await svc.instances.set_webhook(instance.name, body.webhook_url, body.webhook_secret)
    store = endpoints(request)
    moved = body.webhook_url is not None and body.webhook_url != instance.webhook_url
    if await store.configure(
        instance.name, events=body.events, enabled=body.enabled, moved=moved, previous_secret=previous
    ):
        await svc.outbox.kick(instance.name, jump=True)  # the held head goes now, not at its probe
    out = WebhookOut(
        instance_name=instance.name,
        webhook_url=body.webhook_url or instance.webhook_url,
        secret_rotated=body.webhook_secret is not None,
        events=await store.events(instance.name),
        webhook=await store.status(instance.name),
    )
    return json_response(out)


async def get_webhook(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    store = endpoints(request)
    out = WebhookSettings(
        instance_name=instance.name,
        webhook_url=instance.webhook_url,
        events=await store.events(instance.name),
        webhook=await store.status(instance.name),
    )
    return json_response(out)


async def replay_dead_letters(request: web.Request, body: ReplayRequest) -> web.Response:
    instance = await accessible_instance(request)
    since, until = (iso(moment) if moment else None for moment in (body.since, body.until))
    replayed = await services(request).outbox.replay_dead(instance.name, since, until)
    return json_response(Replayed(replayed=replayed), status=202)


async def send_test(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    data = WebhookTestData(message="a test event sent on request")
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
