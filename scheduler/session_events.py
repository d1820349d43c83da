"""Driver events to instance state and webhook events: the connection's ups and downs, inbound
messages (held until `instance.connected` is out), history, calls, group notices and receipts."""

from __future__ import annotations

import structlog

from core.clock import iso, now_iso
from core.instances import InstanceUpdate
from scheduler.ban_timers import BanTimers
from scheduler.conversation_log import ConversationLog
from scheduler.drivers.base import (
    Banned,
    CallReceived,
    Connected,
    Disconnected,
    DriverEvent,
    GroupParticipants,
    GroupUpdated,
    HistorySynced,
    Inbound,
    QrCode,
    QrExpired,
    Receipt,
)
from scheduler.event_data import (
    DisconnectReason,
    InstanceBannedData,
    InstanceConnectedData,
    InstanceDisconnectedData,
    InstanceQrExpiredData,
    MessageDeliveredData,
    MessageReadData,
)
from scheduler.history import HistoryImport
from scheduler.inbound import InboundEvents
from scheduler.linking import LinkFailed, Linking, Opened, QrShown
from scheduler.services import Services
from scheduler.session_registry import SessionRegistry

log = structlog.get_logger(__name__)


class SessionEvents:
    def __init__(
        self,
        services: Services,
        registry: SessionRegistry,
        linking: Linking,
        bans: BanTimers,
        conversations: ConversationLog,
    ) -> None:
        self.registry = registry
        self.linking = linking
        self.bans = bans
        self.conversations = conversations
        self.instances = services.instances
        self.outbox = services.outbox
        self.lanes = services.lanes
        self.messages = services.messages
        self.per_number = registry.per_number
        self.inbound = InboundEvents(
            services.redis,
            services.outbox,
            services.media,
            services.settings.media_max_bytes,
            services.contacts,
            conversations,
        )
        self.history = HistoryImport(services.conversations, services.outbox, services.instances)
        # Instances whose instance.connected is out for the current connection: their inbound
        # events go straight to webhooks; the others' wait in `_held`, in arrival order.
        self.announced: set[str] = set()
        self._held: dict[str, list[Inbound]] = {}

    async def on_event(self, name: str, event: DriverEvent) -> None:
        try:
            await self._apply(name, event)
        except Exception:  # neonize drops exceptions raised in its callbacks: never lose one silently
            log.exception("session.event_failed", instance=name, event=type(event).__name__)

    async def forget(self, name: str) -> None:
        """The instance leaves this worker: what it held goes out (late rather than lost)."""
        self.announced.discard(name)
        try:
            await self._release_held(name)
        except Exception:
            log.exception("inbound.held_lost", instance=name, count=len(self._held.pop(name, [])))

    async def _apply(self, name: str, event: DriverEvent) -> None:
        instance = await self.instances.find(name)
        if instance is None:
            return  # deleted meanwhile
        if (counted := connection_event(event)) is not None:
            await self.instances.count_connection_event(counted)
        # instance.disconnected says an open instance stopped being open, once per outage: the
        # reconnect attempts of an instance that is closed already say nothing.
        was_open = instance.state == "open"
        match event:
            case QrCode(code=code, expires_at=expires_at):
                await self.instances.update(name, state="connecting", qr=code, qrExpiresAt=iso(expires_at))
                self.linking.resolve(name, QrShown(code, iso(expires_at)))
            case Connected(phone_number=phone):
                await self._connected(name, phone)
            case Disconnected(reason=reason, logged_out=logged_out):
                self.registry.connected.discard(name)
                self.per_number.disconnected(name)
                self.announced.discard(name)
                self.linking.resolve(name, LinkFailed(reason))  # a QR asked for will not come now
                fields: InstanceUpdate = {"state": "close", "qr": None, "qrExpiresAt": None}
                if logged_out:
                    fields.update({"linked": "0", "phoneNumber": None, "connectedAt": None})
                await self.instances.update(name, **fields)
                if was_open:
                    why: DisconnectReason = "logged_out" if logged_out else "connection_lost"
                    await self._disconnected(name, why, reason, logged_out)
            case QrExpired():
                await self.instances.update(name, state="close", qr=None, qrExpiresAt=None)
                await self.outbox.publish(name, "instance.qr_expired", InstanceQrExpiredData())
            case Banned():
                await self._banned(name, event, was_open)
            case Inbound() as inbound:
                if name in self.announced:
                    await self._forward(name, inbound)
                else:  # instance.connected first: _connected releases it
                    self._held.setdefault(name, []).append(inbound)
            case HistorySynced() as batch:
                await self.history.synced(name, batch)
            case CallReceived() as call:
                await self.per_number.call(name, call, self.registry.connected_session(name))
            case GroupParticipants() | GroupUpdated() as group_event:
                await self.per_number.group(name, group_event)
            case Receipt():
                await self._receipt(name, event)

    async def _connected(self, name: str, phone: str) -> None:
        await self.instances.update(
            name, state="open", phoneNumber=phone, connectedAt=now_iso(), linked="1", qr=None, qrExpiresAt=None
        )
        await self.instances.linked(name, phone)
        self.registry.connected.add(name)
        self.linking.resolve(name, Opened())
        await self.outbox.publish(name, "instance.connected", InstanceConnectedData(phone_number=phone))
        await self._release_held(name)  # what arrived meanwhile follows it
        self.announced.add(name)
        await self.lanes.kick(name)  # messages waiting for the instance to open go now
        await self.per_number.connected(name, self.registry.sessions.get(name))

    async def _banned(self, name: str, event: Banned, was_open: bool) -> None:
        self.registry.connected.discard(name)
        self.announced.discard(name)
        self.bans.cancel(name)  # the latest ban decides when the number may connect again
        until = iso(event.expires_at) if event.expires_at else None
        await self.instances.update(name, state="close", bannedUntil=until or "permanent")
        if was_open:
            await self._disconnected(name, "banned", event.reason, logged_out=False)
        await self.outbox.publish(name, "instance.banned", InstanceBannedData(reason=event.reason, expires_at=until))
        if event.expires_at is not None:
            await self.bans.banned_until(name, event.expires_at)

    async def _receipt(self, name: str, receipt: Receipt) -> None:
        status = receipt.status
        for moved in await self.messages.apply_receipt(name, receipt.message_ids, status):
            assert moved.wa_message_id is not None  # the receipt found the message by it
            record = MessageDeliveredData if status == "delivered" else MessageReadData
            data = record(
                message_id=moved.id,
                to=moved.to,
                wa_message_id=moved.wa_message_id,
                metadata=moved.meta,
                timestamp=iso(receipt.timestamp),
            )
            await self.outbox.publish(name, f"message.{status}", data)
            await self.conversations.receipt(name, moved, status)

    async def _disconnected(self, name: str, reason: DisconnectReason, detail: str, logged_out: bool) -> None:
        """instance.disconnected: `reason` one of API.md's, `detail` the driver's own words."""
        data = InstanceDisconnectedData(reason=reason, detail=detail, logged_out=logged_out)
        await self.outbox.publish(name, "instance.disconnected", data)

    async def _release_held(self, name: str) -> None:
        """Publish the held inbound events in order; one that fails stays held with those after it."""
        while queue := self._held.get(name):
            await self._forward(name, queue[0])
            queue.pop(0)
        self._held.pop(name, None)

    async def _forward(self, name: str, inbound: Inbound) -> None:
        """An inbound event to its webhook, as the instance's settings want it (ignoreGroups,
        autoRead)."""
        if await self.per_number.admits(name, inbound):
            await self.inbound.publish(name, inbound)
            await self.per_number.received(name, inbound, self.registry.connected_session(name))


def connection_event(event: DriverEvent) -> str | None:
    """The name `wa_connection_events_total` counts `event` under, if it counts it."""
    match event:
        case Disconnected(logged_out=True):
            return "logged_out"
        case Disconnected():
            return "disconnected"
        case Banned():
            return "banned"
        case QrExpired():
            return "qr_expired"
    return None
