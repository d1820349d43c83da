from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Literal, cast

import structlog
from aiohttp import web
from pydantic import Field

from config.settings import LaneName
from core import audit
from core.clock import iso_from_ms
from core.errors import InvalidState, NotFound
from core.instance_settings import InstanceSettings
from core.instances import Instance, InstanceName
from core.records import ApiModel, Timestamp
from gateway.qr import qr_data_uri
from gateway.responses import json_response
from gateway.routes.instance_settings import SettingsBody
from gateway.routes.webhooks import endpoints
from gateway.state import (
    accessible_instance,
    by_whom,
    require_instance_access,
    require_tenant_access,
    services,
)
from gateway.validation import (
    InstanceNameStr,
    NamePart,
    PhoneNumber,
    WebUrl,
    admitted_proxy_url,
    admitted_webhook_url,
    validate,
)
from scheduler.instance_commands import AskPairingCode, AskQr, Connect
from scheduler.lanes import WaitReason
from webhooks.endpoint import WebhookStatus

log = structlog.get_logger(__name__)


class CreateInstance(ApiModel):
    instance_name: InstanceNameStr
    webhook_url: WebUrl
    webhook_secret: str = Field(min_length=16, max_length=256)
    settings: SettingsBody | None = None  # every field absent takes its default


InstanceState = Literal["close", "connecting", "open"]


class InstanceStatus(ApiModel):
    instance_name: str
    state: InstanceState
    phone_number: str | None
    connected_at: Timestamp | None
    messages_queued_count: int
    webhook_url: str
    created_at: Timestamp


class InstanceStatusWithWebhook(InstanceStatus):
    webhook: WebhookStatus


class QrOut(ApiModel):
    qrcode: str
    expires_at: Timestamp


class PairingRequest(ApiModel):
    phone_number: PhoneNumber


class PairingOut(ApiModel):
    pairing_code: str


class LaneQuota(ApiModel):
    per_hour: int
    per_day: int
    warmup: float  # the factor of the lane's configured quotas applied today
    first_contact_per_day: int | None  # messages a day to numbers that never wrote (None: no limit)


class WarmupState(ApiModel):
    day: int  # days since the first link, 0 on that day
    first_linked_at: Timestamp | None
    override: float | None  # an admin's factor replacing the schedule


class ThrottleState(ApiModel):
    reason: str  # banned, not_on_whatsapp or failure_rate
    until: Timestamp


class QueueOut(ApiModel):
    urgent: int
    normal: int
    bulk: int
    total: int
    quotas: dict[LaneName, LaneQuota]  # today's effective quotas
    warmup: WarmupState
    throttled: ThrottleState | None  # the bulk lane's pause, while it lasts
    held: dict[WaitReason, int] = Field(description="why the heads of the lanes wait: reason -> count")


async def _status(request: web.Request, instance: Instance) -> InstanceStatus:
    counts = await services(request).instances.queue_counts(instance.name)
    return _status_of(instance, counts["total"])


def _status_of(instance: Instance, queued: int) -> InstanceStatus:
    return InstanceStatus(
        instance_name=instance.name,
        state=cast(InstanceState, instance.state),
        phone_number=instance.phone_number,
        connected_at=instance.connected_at,
        messages_queued_count=queued,
        webhook_url=instance.webhook_url,
        created_at=instance.created_at,
    )


async def create_instance(request: web.Request, body: CreateInstance) -> web.Response:
    caller = require_instance_access(request, body.instance_name)
    svc = services(request)
    name = InstanceName.parse(body.instance_name)
    if caller.is_admin and not await svc.tenants.exists(name.tenant_id):
        raise NotFound(f"no tenant {name.tenant_id!r}")
    await admitted_webhook_url(svc.settings, body.webhook_url)
    settings = body.settings or InstanceSettings()
    await admitted_proxy_url(svc.settings, settings.proxy_url, ["settings", "proxyUrl"])
    instance = await svc.instances.create(
        name, str(body.webhook_url), body.webhook_secret, state="connecting", settings=settings
    )
    if await svc.commands.send(instance.name, Connect()) is None:
        await svc.instances.update(instance.name, state="close")
    return json_response(await _status(request, await svc.instances.get(instance.name)), status=201)


async def get_qr(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    if instance.state == "open":
        raise InvalidState("instance is already open; it needs no QR code")
    if instance.qr_is_fresh(datetime.now(UTC)):
        code, expires_at = instance.qr, instance.qr_expires_at
    else:
        result = await services(request).commands.call(instance.name, AskQr())
        code, expires_at = result["code"], result["expiresAt"]
    assert code is not None and expires_at is not None
    return json_response(QrOut(qrcode=qr_data_uri(code), expires_at=expires_at))


async def request_pairing_code(request: web.Request, body: PairingRequest) -> web.Response:
    instance = await accessible_instance(request)
    if instance.state == "open":
        raise InvalidState("instance is already open; it needs no pairing code")
    result = await services(request).commands.call(instance.name, AskPairingCode(phone_number=body.phone_number))
    return json_response(PairingOut(pairing_code=result["pairingCode"]))


async def get_status(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    status = await _status(request, instance)
    webhook = await endpoints(request).status(instance.name)
    return json_response(InstanceStatusWithWebhook(**status.model_dump(), webhook=webhook))


async def get_queue(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    svc = services(request)
    cautious = (await svc.instances.settings(instance.name)).cautious
    quotas = svc.lanes.quotas_today(instance.first_linked_ms, instance.warmup, cautious)
    throttle = await svc.lanes.standing(instance.name)
    heads = await svc.lanes.waiting(instance.name)
    out = QueueOut(
        held=Counter(waits.reason for _, waits in heads.values()),
        **await svc.instances.queue_counts(instance.name),
        quotas={lane: LaneQuota(**vars(quota)) for lane, quota in quotas.items()},
        warmup=WarmupState(
            day=svc.lanes.warmup_day(instance.first_linked_ms),
            first_linked_at=iso_from_ms(instance.first_linked_ms) if instance.first_linked_ms else None,
            override=instance.warmup,
        ),
        throttled=ThrottleState(reason=throttle.reason, until=iso_from_ms(throttle.until_ms)) if throttle else None,
    )
    return json_response(out)


async def delete_instance(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    await services(request).delete_instance(instance)
    await audit.record(services(request).redis, "instance_deleted", by_whom(request), instance=instance.name)
    return web.Response(status=204)


async def _listing(request: web.Request, client_id: str | None) -> web.Response:
    tenant_id = request.match_info["tenantId"]
    require_tenant_access(request, tenant_id)
    svc = services(request)
    if not await svc.tenants.exists(tenant_id):
        raise NotFound(f"no tenant {tenant_id!r}")
    instances = await svc.instances.list_for(tenant_id, client_id)
    queued = await svc.instances.queued_totals([instance.name for instance in instances])
    return json_response([_status_of(instance, queued[instance.name]) for instance in instances])


class InstancesQuery(ApiModel):
    tenant: NamePart | None = Field(default=None, description="only this tenant's instances")
    state: InstanceState | None = Field(default=None, description="only instances in this state")
    limit: int = Field(default=100, ge=1, le=1000, description="instances on one page")
    cursor: InstanceNameStr | None = Field(default=None, description="the `next` of the previous page")


class InstancePage(ApiModel):
    items: list[InstanceStatus]
    next: str | None  # the cursor of the next page; null on the last


async def list_all_instances(request: web.Request) -> web.Response:
    """Every instance, a page at a time: the console polls this once, not once per tenant."""
    query = validate(InstancesQuery, dict(request.query))
    svc = services(request)
    found, following = await svc.instances.page(query.tenant, query.state, query.limit, query.cursor)
    queued = await svc.instances.queued_totals([instance.name for instance in found])
    items = [_status_of(instance, queued[instance.name]) for instance in found]
    return json_response(InstancePage(items=items, next=following))


async def list_tenant_instances(request: web.Request) -> web.Response:
    return await _listing(request, None)


async def list_client_instances(request: web.Request) -> web.Response:
    return await _listing(request, request.match_info["clientId"])
