"""Every event the gateway publishes, by name, with the record of its `data`: the one list. The
`events` filter of PATCH /instance/{name}/webhook accepts these names (another is a 400, so a
typo does not silently filter everything out), `/openapi.json` lists them as its `webhooks`, and
docs/reference/events.md is generated from them. A new event is added here, with its record."""

from __future__ import annotations

from core.records import ApiModel
from scheduler.event_data import (
    ContactOptedOutData,
    InstanceBannedData,
    InstanceConnectedData,
    InstanceDisconnectedData,
    InstanceQrExpiredData,
    InstanceThrottledData,
    InstanceUnthrottledData,
    MessageDeliveredData,
    MessageFailedData,
    MessageReadData,
    MessageSentData,
    WebhookTestData,
)
from scheduler.history import HistorySyncedData
from scheduler.inbound import EVENTS as INBOUND_EVENTS
from scheduler.per_number import (
    CallReceivedData,
    CallRejectedData,
    GroupParticipantsData,
    GroupUpdatedData,
)

EVENTS: dict[str, type[ApiModel]] = {
    "instance.connected": InstanceConnectedData,
    "instance.disconnected": InstanceDisconnectedData,
    "instance.qr_expired": InstanceQrExpiredData,
    "instance.banned": InstanceBannedData,
    "instance.throttled": InstanceThrottledData,
    "instance.unthrottled": InstanceUnthrottledData,
    **dict(INBOUND_EVENTS.values()),  # message.received, .reaction, .edited, .deleted, .poll_vote
    "message.sent": MessageSentData,
    "message.failed": MessageFailedData,
    "message.delivered": MessageDeliveredData,
    "message.read": MessageReadData,
    "contact.opted_out": ContactOptedOutData,
    "history.synced": HistorySyncedData,
    "call.received": CallReceivedData,
    "call.rejected": CallRejectedData,
    "group.participants": GroupParticipantsData,
    "group.updated": GroupUpdatedData,
    "webhook.test": WebhookTestData,
}
EVENT_NAMES: tuple[str, ...] = tuple(EVENTS)
