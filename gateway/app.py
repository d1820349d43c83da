"""`create_app(settings)`: the whole route table on one screen."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib.metadata import version

from aiohttp import web

from config import Settings
from core.instance_settings import InstanceSettings
from gateway import console
from gateway.access import access_middleware, flushing_http_counts
from gateway.middleware import auth_middleware, body_deadline_middleware, errors_middleware, idempotency_middleware
from gateway.openapi import OPENAPI, build_openapi
from gateway.routes import (
    admin,
    chats,
    conversations,
    deliverability,
    edits,
    groups,
    instance_settings,
    instances,
    media,
    messages,
    meta,
    operating,
    sandbox,
    webhooks,
)
from gateway.routing import Route, router_paths
from gateway.sockets import EventSockets
from gateway.state import SERVICES, SOCKETS, ApiServices
from scheduler.events import EVENTS
from scheduler.services import Services

# Short names keep the table readable.
I, M, W, D, C, K = instances, messages, webhooks, deliverability, conversations, edits  # noqa: E741
S, G = instance_settings, groups
ROUTES: list[Route] = [
    Route("GET", "/health", meta.health, "Gateway and Redis health", response=meta.Health, access="public"),
    Route("GET", "/whoami", meta.whoami, "Who this API key is: the admin, or which tenant", response=meta.WhoAmI),
    Route("GET", "/dashboard", console.dashboard, "The web console", access="public", in_docs=False),
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
          response=I.InstanceStatusWithWebhook, tag="instances"),
    Route("GET", "/instance/{name}/queue", I.get_queue, "Messages waiting per lane", response=I.QueueOut,
          tag="instances"),
    Route("GET", "/instance/{name}/settings", S.get_settings, "The instance's settings",
          response=InstanceSettings, tag="instances"),
    Route("PATCH", "/instance/{name}/settings", S.update_settings,
          "Change any subset of the instance's settings; answers all of them", body=S.SettingsBody,
          response=InstanceSettings, tag="instances"),
    Route("DELETE", "/instance/{name}", I.delete_instance, "Log out and delete an instance", status=204,
          tag="instances"),
    Route("GET", "/tenant/{tenantId}/instances", I.list_tenant_instances, "A tenant's instances",
          response=I.InstanceStatus, many=True, tag="instances"),
    Route("GET", "/tenant/{tenantId}/client/{clientId}/instances", I.list_client_instances,
          "One client's instances", response=I.InstanceStatus, many=True, tag="instances"),
    # Webhooks: the instance's endpoint, its recent deliveries, replays and test events.
    Route("GET", "/instance/{name}/webhook", W.get_webhook, "The webhook: URL, events delivered, state",
          response=W.WebhookSettings, tag="webhooks"),
    Route("PATCH", "/instance/{name}/webhook", W.update_webhook, "Change the webhook: URL, secret, events, enabled",
          body=W.WebhookUpdate, response=W.WebhookOut, tag="webhooks"),
    Route("GET", "/instance/{name}/webhooks/deliveries", W.list_deliveries,
          "Recent deliveries with their attempts, newest first", response=W.DeliveryPage,
          query=W.DeliveriesQuery, tag="webhooks"),
    Route("POST", "/instance/{name}/webhooks/deliveries/{id}/replay", W.replay_delivery,
          "Deliver a delivered or dead-lettered event again", response=W.DeliveryQueued, status=202, tag="webhooks"),
    Route("POST", "/instance/{name}/webhooks/replay", W.replay_dead_letters,
          "Deliver every dead letter (of a time range) again, in order", body=W.ReplayRequest,
          response=W.Replayed, status=202, tag="webhooks"),
    Route("POST", "/instance/{name}/webhooks/test", W.send_test, "Send a webhook.test event",
          response=W.DeliveryQueued, status=202, tag="webhooks"),
    # Sending: every send is queued (202) into one of the instance's lanes.
    *M.SEND_ROUTES,
    Route("POST", "/message/{id}/edit", K.edit_message, "Queue an edit of a sent text (within 15 minutes)",
          body=K.EditBody, response=M.Queued, status=202, tag="messages"),
    Route("DELETE", "/message/{id}", K.delete_message,
          "Cancel a waiting message (200, the record) or delete a sent one for everyone (202)",
          response=M.MessageOut, also=(202, M.Queued), tag="messages"),
    Route("POST", "/message/batch", M.send_batch,
          "Queue up to 1,000 messages of any type on any of the tenant's instances, validated as a whole",
          body=M.SendBatch, response=M.BatchAccepted, status=202, tag="messages"),
    Route("POST", "/message/route", M.send_routed, "Queue on one of a client's open instances (round-robin)",
          body=M.RouteTarget, response=M.Queued, status=202, tag="messages"),
    Route("GET", "/instance/{name}/messages", M.list_recent, "The instance's latest messages, newest first",
          response=M.MessageList, query=M.RecentQuery, tag="messages"),
    Route("GET", "/message/{id}", M.get_message, "A message and what happened to it", response=M.MessageOut,
          tag="messages"),
    # Conversation actions: synchronous, through the worker hosting the session (502 when WhatsApp fails).
    Route("POST", "/instance/{name}/contacts/check", C.check_numbers,
          "Which numbers are on WhatsApp (1-50; answers are cached)", body=C.CheckNumbers,
          response=C.NumberStatus, many=True, tag="conversations"),
    Route("GET", "/instance/{name}/contacts/lid/{lid}", C.get_lid, "The number behind a LID, when WhatsApp tells",
          response=C.LidOut, tag="conversations"),
    Route("GET", "/instance/{name}/contacts/{number}/profile", C.get_profile,
          "A contact's name, picture and about text (null where hidden)", response=C.ProfileOut,
          tag="conversations"),
    Route("POST", "/instance/{name}/chats/{chatId}/read", C.mark_read,
          "Mark received messages read: the sender sees blue ticks", body=C.MarkRead, status=204,
          tag="conversations"),
    Route("POST", "/instance/{name}/presence", C.set_presence, "Show the number online or offline",
          body=C.PresenceBody, status=204, tag="conversations"),
    Route("GET", "/instance/{name}/groups", C.list_groups, "The groups the number is in",
          response=C.GroupSummary, many=True, tag="conversations"),
    Route("GET", "/instance/{name}/groups/{groupId}", C.get_group, "A group with its participants",
          response=C.GroupOut, tag="conversations"),
    # The conversation store: what the gateway kept of each chat, newest first, by cursor.
    Route("GET", "/instance/{name}/chats", chats.list_chats, "The instance's chats, the most recent first",
          response=chats.ChatPage, query=chats.PageQuery, tag="conversations"),
    Route("GET", "/instance/{name}/chats/{chatId}/messages", chats.list_messages,
          "A chat's stored messages, newest first", response=chats.MessagePage, query=chats.PageQuery,
          tag="conversations"),
    # Group management: synchronous too.
    Route("POST", "/instance/{name}/groups", G.create_group, "Create a group with these numbers in it",
          body=G.CreateGroup, response=G.GroupCreated, status=201, tag="groups"),
    Route("POST", "/instance/{name}/groups/join", G.join_group, "Join a group by its invite link",
          body=G.JoinGroup, response=G.GroupCreated, tag="groups"),
    Route("POST", "/instance/{name}/groups/{groupId}/participants", G.change_participants,
          "Add, remove, promote or demote participants; answers each number's outcome",
          body=G.ChangeParticipants, response=G.ParticipantOut, many=True, tag="groups"),
    Route("GET", "/instance/{name}/groups/{groupId}/invite", G.get_invite, "The group's invite link",
          response=G.InviteLink, tag="groups"),
    Route("DELETE", "/instance/{name}/groups/{groupId}/invite", G.revoke_invite,
          "Revoke the invite link; answers the new one", response=G.InviteLink, tag="groups"),
    Route("PATCH", "/instance/{name}/groups/{groupId}", G.update_group,
          "Change the subject, description, announce-only or locked setting", body=G.UpdateGroup, status=204,
          tag="groups"),
    Route("POST", "/instance/{name}/groups/{groupId}/leave", G.leave_group, "Leave the group", status=204,
          tag="groups"),
    # Staying unbanned: opt-outs, warm-up and the bulk lane's pause.
    Route("GET", "/tenant/{tenantId}/suppressions", D.list_suppressions, "The tenant's opt-out list",
          response=D.SuppressionsOut, tag="deliverability"),
    Route("POST", "/tenant/{tenantId}/suppressions", D.add_suppressions, "Add numbers to the opt-out list",
          body=D.Suppress, response=D.Suppressed, tag="deliverability"),
    Route("DELETE", "/tenant/{tenantId}/suppressions/{number}", D.remove_suppression,
          "Take a number off the opt-out list", status=204, tag="deliverability"),
    Route("PUT", "/admin/instances/{name}/warmup", D.set_warmup, "Override an instance's warm-up",
          body=D.WarmupOverride, response=D.WarmupOut, access="admin", tag="deliverability"),
    Route("DELETE", "/admin/instances/{name}/warmup", D.clear_warmup, "Back to the lanes' warm-up schedule",
          response=D.WarmupOut, access="admin", tag="deliverability"),
    Route("DELETE", "/admin/instances/{name}/throttle", D.lift_throttle, "Resume a paused bulk lane now",
          response=D.Unthrottled, access="admin", tag="deliverability"),
    # Inbound media the worker kept: the bytes, with their content type.
    Route("GET", "/media/{id}", media.get_media, "Inbound media: tenant key, or the webhook's signed ?exp=&sig= link",
          access="signed", answers="binary", query=media.MediaLink, tag="media"),
    # Admin: stats and queues.
    Route("GET", "/admin/stats", admin.stats, "Gateway-wide figures", response=admin.Stats, access="admin",
          tag="admin"),
    Route("GET", "/admin/instances", I.list_all_instances, "Every instance, a page at a time (?tenant=&state=)",
          query=I.InstancesQuery, response=I.InstancePage, access="admin", tag="admin"),
    Route("GET", "/admin/workers", admin.list_workers, "Workers with their instances and last heartbeat",
          response=admin.WorkerOut, many=True, access="admin", tag="admin"),
    Route("GET", "/metrics", operating.metrics, "Prometheus metrics of the whole gateway (text format)",
          access="admin", tag="admin", answers="text"),
    Route("GET", "/events", operating.events,
          "WebSocket: the caller's events live, as webhook envelopes (?instance=, ?since=cursor)",
          status=101, access="key", key_in_query=True, tag="webhooks"),
    Route("DELETE", "/admin/queue/{instanceName}", admin.flush_queue, "Cancel an instance's waiting messages",
          response=admin.Flushed, access="admin", tag="admin"),
    # Tenants and keys (admin only).
    Route("POST", "/admin/tenants", admin.create_tenant, "Create a tenant and its first API key",
          body=admin.CreateTenant, response=admin.TenantCreated, status=201, access="admin", tag="admin"),
    Route("GET", "/admin/tenants", admin.list_tenants, "List tenants with their key ids",
          response=admin.TenantOut, many=True, access="admin", tag="admin"),
    Route("POST", "/admin/tenants/{tenantId}/keys", admin.issue_key,
          'Issue an extra API key; an optional body {"scopes": ["read"]} makes it a read key (GET and /events)',
          response=admin.KeyIssued, status=201, access="admin", tag="admin"),
    Route("POST", "/admin/keys", admin.issue_gateway_key, "Issue a metrics key: GET /metrics alone, its own limit",
          body=admin.IssueGatewayKey, response=admin.KeyIssued, status=201, access="admin", tag="admin"),
    Route("DELETE", "/admin/keys/{keyId}", admin.revoke_key, "Revoke an API key at once",
          status=204, access="admin", tag="admin"),
]  # fmt: skip

SANDBOX_ROUTES: list[Route] = [
    Route("POST", "/sandbox/instance/{name}/link", sandbox.link, "As if the QR was scanned",
          body=sandbox.LinkBody, response=sandbox.LinkOut, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/unlink", sandbox.unlink, "As if the phone removed the device",
          response=sandbox.LinkOut, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/inbound", sandbox.inbound, "A contact writes in",
          body=sandbox.InboundBody, response=sandbox.InboundOut, status=201, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/history", sandbox.history, "As if WhatsApp synced this chat history",
          body=sandbox.HistoryBody, response=sandbox.HistoryOut, tag="sandbox"),
    Route("GET", "/sandbox/instance/{name}/sent", sandbox.sent, "What reached 'WhatsApp', in send order",
          response=sandbox.SentMessage, many=True, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/receipt", sandbox.receipt, "As if the recipient's phone acknowledged",
          body=sandbox.ReceiptBody, response=sandbox.ReceiptOut, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/ban", sandbox.ban, "As if WhatsApp banned the number for a while",
          body=sandbox.BanBody, response=sandbox.BanOut, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/fail-next", sandbox.fail_next, "Make the next sends fail",
          body=sandbox.FailNextBody, response=sandbox.FailNextOut, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/fail-actions", sandbox.fail_actions,
          "Make the next conversation actions (number lookups included) fail", body=sandbox.FailActionsBody,
          response=sandbox.FailActionsOut, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/groups", sandbox.seed_groups, "Put the number in groups (by id)",
          body=sandbox.GroupsBody, response=sandbox.Seeded, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/profiles", sandbox.seed_profiles, "Give contacts a profile (by number)",
          body=sandbox.ProfilesBody, response=sandbox.Seeded, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/accounts", sandbox.declare_accounts,
          "Declare spellings of a number and a LID one account (resolved to the first number)",
          body=sandbox.AccountsBody, response=sandbox.Seeded, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/call", sandbox.call, "Someone calls the number",
          body=sandbox.CallBody, response=sandbox.CallOut, status=201, tag="sandbox"),
    Route("POST", "/sandbox/instance/{name}/group-event", sandbox.group_event,
          "Someone else changes a group: its members, or (update) its settings", body=sandbox.GroupEventBody,
          response=sandbox.GroupEventOut, tag="sandbox"),
    Route("GET", "/sandbox/instance/{name}/actions", sandbox.actions,
          "What the conversation actions asked of 'WhatsApp', in order", response=sandbox.SandboxAction, many=True,
          tag="sandbox"),
]  # fmt: skip


def create_app(settings: Settings) -> web.Application:
    if settings.redis_url is None or settings.admin_key is None or settings.secret_key is None:
        raise ValueError("create_app needs settings with redis_url, admin_key and secret_key resolved")
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            access_middleware,
            errors_middleware,
            body_deadline_middleware,
            auth_middleware,
            idempotency_middleware,
        ],
    )
    routes = ROUTES + (SANDBOX_ROUTES if settings.driver == "sandbox" else [])
    paths = router_paths(routes)
    for route in routes:
        app.router.add_route(route.method, paths[route.path], route.endpoint())
    meta.add_docs_static(app)
    console.add_static(app)
    app[OPENAPI] = build_openapi(routes, version("wa-gateway"), EVENTS)
    app.cleanup_ctx.append(_services(settings))
    app.cleanup_ctx.append(flushing_http_counts)
    app[SOCKETS] = EventSockets(settings.events_sockets_per_key)
    app.on_shutdown.append(operating.close_sockets)
    return app


def _services(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        app[SERVICES] = ApiServices.around(Services.open(settings))
        yield
        await app[SERVICES].close()

    return context
