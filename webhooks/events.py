"""The name of every event the gateway publishes to a webhook, for the `events` filter of
PATCH /instance/{name}/webhook: a name not listed here is refused (400), so a typo does not
silently filter everything out. A new event must be added here."""

from __future__ import annotations

EVENT_NAMES: tuple[str, ...] = (
    "instance.connected",
    "instance.disconnected",
    "instance.qr_expired",
    "instance.banned",
    "instance.throttled",
    "instance.unthrottled",
    "message.received",
    "message.reaction",
    "message.edited",
    "message.deleted",
    "message.poll_vote",
    "message.sent",
    "message.failed",
    "message.delivered",
    "message.read",
    "contact.opted_out",
    "history.synced",
    "call.received",
    "call.rejected",
    "group.participants",
    "group.updated",
    "webhook.test",
)
ALL = "*"
