"""The `data` of the events about an instance's connection and pace, a message's outcome, an
opt-out and the test event: one record each, as API.md fixes them (camelCase, the same fields
null or absent as on the wire). The events from contacts have theirs in scheduler/inbound.py,
calls and groups in scheduler/per_number.py; scheduler/events.py names them all."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer
from pydantic.json_schema import SkipJsonSchema

from config.settings import LaneName
from core.records import ApiModel, ErrorCode, Timestamp
from scheduler.drivers.base import SendType

# Why a number's bulk lane pauses: a ban, or a window of sends that went badly (core/lua/finish.lua).
ThrottleReason = Literal["banned", "not_on_whatsapp", "failure_rate"]


class InstanceConnectedData(ApiModel):
    """The instance is linked and open: the QR was scanned (or the pairing code entered), or a
    linked instance connected again. Messages waiting for it go from now on."""

    phone_number: str = Field(description="the linked phone's number")


DisconnectReason = Literal["logged_out", "banned", "connection_lost", "deleted"]


class InstanceDisconnectedData(ApiModel):
    """An open instance stopped being open; fired once per outage, however often it tries to
    reconnect meanwhile."""

    reason: DisconnectReason = Field(
        description="`logged_out`: the phone removed the device; `banned`: WhatsApp banned the number;"
        " `connection_lost`: the connection dropped (it reconnects by itself); `deleted`: the instance was deleted"
    )
    detail: str = Field(description="what the WhatsApp connection said, in its own words")
    logged_out: bool = Field(description="the link is gone: a new QR must be scanned")


class InstanceQrExpiredData(ApiModel):
    """Linking gave up: every QR code of the attempt expired unscanned. The instance is `close`;
    GET /instance/{name}/qr starts again."""


class InstanceBannedData(ApiModel):
    """WhatsApp banned the number. The instance is `close`; after a temporary ban it reconnects by
    itself, and its bulk lane stays paused a while longer (`instance.throttled`)."""

    reason: str = Field(description="WhatsApp's reason, in its own words")
    expires_at: Timestamp | None = Field(description="when the ban ends; null when it is permanent")


class InstanceThrottledData(ApiModel):
    """The instance's bulk lane paused: WhatsApp signalled trouble (a ban, or too many recent
    sends failed or went to numbers off WhatsApp). The other lanes keep going."""

    reason: ThrottleReason = Field(
        description="`banned`: after a temporary ban; `not_on_whatsapp` or `failure_rate`: the last sends' outcomes"
    )
    until: Timestamp = Field(description="when bulk resumes by itself")


class InstanceUnthrottledData(ApiModel):
    """The instance's bulk lane resumed after a pause (`instance.throttled`)."""

    reason: ThrottleReason = Field(description="why it had paused")
    by: Literal["expiry", "admin"] = Field(
        description="`expiry`: the pause ran out; `admin`: DELETE /admin/instances/{name}/throttle lifted it"
    )


class Recipient(ApiModel):
    """The WhatsApp account a message's `to` resolved to when it was sent."""

    number: str | None = Field(description="the account's number; null when WhatsApp hides it (a LID chat)")
    lid: str | None = Field(description="its LID, when known")
    jid: str = Field(description="where the message went")


class MessageOutcome(ApiModel):
    """How a message ended: `message.sent` or `message.failed`."""

    message_id: str = Field(description="the gateway's id (GET /message/{id})")
    to: str = Field(description="as the send gave it")
    lane: LaneName = Field(description="the lane it went through")
    type: SendType = Field(description="the kind of send")
    status: Literal["sent", "failed"]
    sent_at: Timestamp | None = Field(description="when WhatsApp took it; null when it failed")
    wa_message_id: str | None = Field(description="WhatsApp's id for it, which receipts name; null when it failed")
    error: str | None = Field(description="what went wrong, for people; null when it was sent")
    error_code: ErrorCode | None = Field(description="what went wrong, for programs; null when it was sent")
    recipient: Recipient | SkipJsonSchema[None] = Field(
        default=None, description="the account `to` resolved to; left out when there is none (a group, a failure)"
    )
    metadata: dict[str, Any] | None = Field(description="the send's own metadata, as it was given")

    @model_serializer(mode="wrap")
    def _recipient_only_when_resolved(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.recipient is None:
            del data["recipient"]
        return data


class MessageSentData(MessageOutcome):
    """WhatsApp took the message: it left the number (a single grey tick). Receipts follow as
    `message.delivered` and `message.read`."""

    status: Literal["sent"]


class MessageFailedData(MessageOutcome):
    """The message will not be sent: WhatsApp refused it, the retries ran out, it expired waiting,
    or its recipient opted out. `errorCode` says which."""

    status: Literal["failed"]


class MessageReceipt(ApiModel):
    """A recipient's phone acknowledged a sent message: `message.delivered` or `message.read`."""

    message_id: str = Field(description="the gateway's id (GET /message/{id})")
    to: str = Field(description="as the send gave it")
    wa_message_id: str = Field(description="WhatsApp's id for it, as the receipt named it")
    metadata: dict[str, Any] | None = Field(description="the send's own metadata, as it was given")
    timestamp: Timestamp = Field(description="when the phone acknowledged it")


class MessageDeliveredData(MessageReceipt):
    """The message reached the recipient's phone (two grey ticks). A receipt only moves a message
    forward: a late one after `message.read` fires nothing."""


class MessageReadData(MessageReceipt):
    """The recipient read the message (blue ticks; only when their read receipts are on)."""


class ContactOptedOutData(ApiModel):
    """A contact wrote an opt-out keyword (`GATEWAY_OPT_OUT_KEYWORDS`, STOP by default) directly to
    the number: they are on the tenant's opt-out list now, and sends to them fail `opted_out`."""

    number: str | None = Field(description="their phone number; null when only a LID is known")
    lid: str | None = Field(description="their LID (digits), when known")
    keyword: str = Field(description="the keyword, as matched (upper case)")


class WebhookTestData(ApiModel):
    """Sent on request (POST /instance/{name}/webhooks/test) to try the webhook out; it means nothing else."""

    message: str = Field(description="a fixed sentence saying so")
