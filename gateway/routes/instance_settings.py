"""Per-instance settings (API.md, "Per-instance settings"): read them, change any subset."""

from __future__ import annotations

from aiohttp import web

from core.instance_settings import InstanceSettings
from gateway.responses import json_response
from gateway.state import accessible_instance, services
from gateway.validation import ProxyUrl, admitted_proxy_url
from scheduler.instance_commands import SettingsChanged


class SettingsBody(InstanceSettings):
    """The settings as a request sends them (any subset): the proxy URL in its documented shape."""

    proxy_url: ProxyUrl | None = None


async def get_settings(request: web.Request) -> web.Response:
    instance = await accessible_instance(request)
    found = await services(request).instances.settings(instance.name)
    return json_response(found.answered())


async def update_settings(request: web.Request, body: SettingsBody) -> web.Response:
    """Only the fields in the body change; the answer has all of them."""
    instance = await accessible_instance(request)
    svc = services(request)
    current = await svc.instances.settings(instance.name)
    changed = current.patched(body)
    if changed.proxy_url != current.proxy_url:
        await admitted_proxy_url(svc.settings, changed.proxy_url, ["proxyUrl"])
    await svc.instances.set_settings(instance.name, changed)
    if changed.deliverability != current.deliverability:
        await svc.lanes.kick(instance.name)  # standard may let held messages go now
    if (changed.proxy_url, changed.always_online) != (current.proxy_url, current.always_online):
        # The session is told (a new proxy reconnects it, the presence follows alwaysOnline); the
        # other settings are read where they act (scheduler/per_number.py).
        await svc.commands.send(instance.name, SettingsChanged())
    return json_response(changed.answered())
