"""Every route of the gateway, once, as a method of both clients (see `calls.py`). The method
names follow the route table; the arguments are the request's fields in snake_case."""

from __future__ import annotations

from typing import Any, Literal

from wa_gateway_client.calls import Call, body, nothing, operation
from wa_gateway_client.models import (
    BatchRecord,
    ContactProfile,
    DeliveryPage,
    DeliveryQueued,
    Flushed,
    GroupDetails,
    GroupSummary,
    Health,
    InstancePage,
    InstanceStatus,
    KeyIssued,
    Lane,
    Message,
    NumberCheck,
    PairingCode,
    Qr,
    Queue,
    Queued,
    SandboxAction,
    SendType,
    SentMessage,
    Stats,
    Suppressed,
    Suppressions,
    Tenant,
    TenantCreated,
    Unthrottled,
    Warmup,
    WebhookUpdated,
    WhoAmI,
    Worker,
    list_of,
)


def _queued(fields: dict[str, Any], idempotency_key: str | None) -> Call[Queued]:
    return Call(Queued.from_json, body=fields, idempotency_key=idempotency_key)


def _cancelled_or_queued(data: Any) -> Message | Queued:
    return Message.from_json(data) if "createdAt" in data else Queued.from_json(data)


def _dict(data: Any) -> dict[str, Any]:
    return dict(data)


class Routes:
    # Meta.
    @operation("GET", "/health")
    def health() -> Call[Health]:
        """Gateway and Redis health (no key needed)."""
        return Call(Health.from_json)

    @operation("GET", "/whoami")
    def whoami() -> Call[WhoAmI]:
        """Who the client's API key is: the admin, or which tenant."""
        return Call(WhoAmI.from_json)

    @operation("GET", "/openapi.json")
    def openapi() -> Call[dict[str, Any]]:
        """The gateway's OpenAPI document."""
        return Call(_dict)

    # Instances.
    @operation("POST", "/instance/create")
    def create_instance(
        instance_name: str, webhook_url: str, webhook_secret: str, *, idempotency_key: str | None = None
    ) -> Call[InstanceStatus]:
        """Create an instance; linking starts at once (state `connecting`, a QR is available)."""
        fields = body(instance_name=instance_name, webhook_url=webhook_url, webhook_secret=webhook_secret)
        return Call(InstanceStatus.from_json, body=fields, idempotency_key=idempotency_key)

    @operation("GET", "/instance/{name}/qr")
    def get_qr(name: str) -> Call[Qr]:
        """The current QR code (a PNG data URI, `.png` for the bytes) and when it expires."""
        return Call(Qr.from_json, path={"name": name})

    @operation("POST", "/instance/{name}/pairing-code/request")
    def request_pairing_code(name: str, phone_number: str) -> Call[PairingCode]:
        """Link by WhatsApp's 8-character pairing code instead of the QR."""
        return Call(PairingCode.from_json, path={"name": name}, body=body(phone_number=phone_number))

    @operation("GET", "/instance/{name}/status")
    def get_status(name: str) -> Call[InstanceStatus]:
        return Call(InstanceStatus.from_json, path={"name": name})

    @operation("GET", "/instance/{name}/queue")
    def get_queue(name: str) -> Call[Queue]:
        """Messages waiting per lane."""
        return Call(Queue.from_json, path={"name": name})

    @operation("DELETE", "/instance/{name}")
    def delete_instance(name: str) -> Call[None]:
        """Log the WhatsApp session out and delete the instance; its waiting messages end `cancelled`."""
        return Call(nothing, path={"name": name})

    @operation("GET", "/tenant/{tenantId}/instances")
    def list_tenant_instances(tenant_id: str) -> Call[list[InstanceStatus]]:
        return Call(list_of(InstanceStatus), path={"tenantId": tenant_id})

    @operation("GET", "/tenant/{tenantId}/client/{clientId}/instances")
    def list_client_instances(tenant_id: str, client_id: str) -> Call[list[InstanceStatus]]:
        return Call(list_of(InstanceStatus), path={"tenantId": tenant_id, "clientId": client_id})

    # Webhooks.
    @operation("PATCH", "/instance/{name}/webhook")
    def update_webhook(
        name: str, *, webhook_url: str | None = None, webhook_secret: str | None = None
    ) -> Call[WebhookUpdated]:
        """Change the webhook URL and/or rotate its secret."""
        fields = body(webhook_url=webhook_url, webhook_secret=webhook_secret)
        return Call(WebhookUpdated.from_json, path={"name": name}, body=fields)

    @operation("GET", "/instance/{name}/webhooks/deliveries")
    def list_deliveries(name: str, *, limit: int | None = None, cursor: int | None = None) -> Call[DeliveryPage]:
        """Recent deliveries, newest first; pass the page's `next_cursor` for the next one."""
        return Call(DeliveryPage.from_json, path={"name": name}, query={"limit": limit, "cursor": cursor})

    @operation("POST", "/instance/{name}/webhooks/deliveries/{id}/replay")
    def replay_delivery(name: str, delivery_id: str) -> Call[DeliveryQueued]:
        return Call(DeliveryQueued.from_json, path={"name": name, "id": delivery_id})

    @operation("POST", "/instance/{name}/webhooks/test")
    def send_test_webhook(name: str) -> Call[DeliveryQueued]:
        """Send a `webhook.test` event to the instance's webhook."""
        return Call(DeliveryQueued.from_json, path={"name": name})

    # Sending: every send is queued (the answer says `pending`); follow it with get_message.
    @operation("POST", "/message/text")
    def send_text(
        instance_name: str,
        to: str,
        text: str,
        *,
        lane: Lane | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """`to` is a number or a group id; `quoted_message_id` replies to a message (our `msg_` id or
        WhatsApp's), `mentions` @-mentions numbers, `typing` overrides the lane's "typing..." setting."""
        fields = body(
            instance_name=instance_name,
            to=to,
            text=text,
            lane=lane,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/image")
    def send_image(
        instance_name: str,
        to: str,
        image_url: str,
        *,
        caption: str | None = None,
        lane: Lane | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        fields = body(instance_name=instance_name, to=to, image_url=image_url, caption=caption, lane=lane)
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/document")
    def send_document(
        instance_name: str,
        to: str,
        document_url: str,
        file_name: str,
        *,
        caption: str | None = None,
        lane: Lane | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        fields = body(
            instance_name=instance_name,
            to=to,
            document_url=document_url,
            file_name=file_name,
            caption=caption,
            lane=lane,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/audio")
    def send_audio(
        instance_name: str, to: str, audio_url: str, *, lane: Lane | None = None, idempotency_key: str | None = None
    ) -> Call[Queued]:
        return _queued(body(instance_name=instance_name, to=to, audio_url=audio_url, lane=lane), idempotency_key)

    @operation("POST", "/message/video")
    def send_video(
        instance_name: str,
        to: str,
        video_url: str,
        *,
        caption: str | None = None,
        lane: Lane | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        fields = body(instance_name=instance_name, to=to, video_url=video_url, caption=caption, lane=lane)
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/location")
    def send_location(
        instance_name: str,
        to: str,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
        lane: Lane | None = None,
        idempotency_key: str | None = None,
        **common: Any,
    ) -> Call[Queued]:
        """A pin; `common` takes what every send may carry (quoted_message_id, mentions, typing)."""
        fields = body(
            instance_name=instance_name,
            to=to,
            latitude=latitude,
            longitude=longitude,
            name=name,
            address=address,
            lane=lane,
            **common,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/contact")
    def send_contact(
        instance_name: str,
        to: str,
        contacts: list[dict[str, str]],
        *,
        lane: Lane | None = None,
        idempotency_key: str | None = None,
        **common: Any,
    ) -> Call[Queued]:
        """1 to 10 cards, each `{"full_name": ..., "phone_number": ..., "organization": ...}`."""
        cards = [body(**card) for card in contacts]
        return _queued(body(instance_name=instance_name, to=to, contacts=cards, lane=lane, **common), idempotency_key)

    @operation("POST", "/message/sticker")
    def send_sticker(
        instance_name: str,
        to: str,
        sticker_url: str,
        *,
        lane: Lane | None = None,
        idempotency_key: str | None = None,
        **common: Any,
    ) -> Call[Queued]:
        """A WebP as it is, or a PNG/JPEG converted to a 512x512 WebP, fetched at send time."""
        fields = body(instance_name=instance_name, to=to, sticker_url=sticker_url, lane=lane, **common)
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/poll")
    def send_poll(
        instance_name: str,
        to: str,
        question: str,
        options: list[str],
        *,
        selectable_count: int | None = None,
        lane: Lane | None = None,
        idempotency_key: str | None = None,
        **common: Any,
    ) -> Call[Queued]:
        """2 to 12 distinct options; `selectable_count` 0 lets voters pick any number (default 1)."""
        fields = body(
            instance_name=instance_name,
            to=to,
            question=question,
            options=options,
            selectable_count=selectable_count,
            lane=lane,
            **common,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/reaction")
    def send_reaction(
        instance_name: str, message_id: str, emoji: str, *, lane: Lane | None = None, idempotency_key: str | None = None
    ) -> Call[Queued]:
        """React to a message (our `msg_` id or WhatsApp's) in its chat; `emoji=""` removes the reaction."""
        fields = body(instance_name=instance_name, message_id=message_id, emoji=emoji, lane=lane)
        fields["emoji"] = emoji  # "" is a value here, not an absence
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/{id}/edit")
    def edit_message(
        message_id: str, text: str, *, lane: Lane | None = None, idempotency_key: str | None = None
    ) -> Call[Queued]:
        """Queue an edit of a sent text (WhatsApp allows 15 minutes); the answer is the edit's own id."""
        return Call(
            Queued.from_json, path={"id": message_id}, body=body(text=text, lane=lane), idempotency_key=idempotency_key
        )

    @operation("DELETE", "/message/{id}")
    def delete_message(message_id: str) -> Call[Message | Queued]:
        """A waiting message ends `cancelled` (the Message); a sent one is deleted for everyone (the
        deletion, Queued)."""
        return Call(_cancelled_or_queued, path={"id": message_id})

    @operation("POST", "/message/route")
    def send_routed(
        tenant_id: str,
        client_id: str,
        to: str,
        type: SendType,
        *,
        lane: Lane | None = None,
        idempotency_key: str | None = None,
        **content: Any,
    ) -> Call[Queued]:
        """Queue on one of the client's open instances, round-robin; `content` holds the fields of
        `type` in snake_case (text=..., or image_url=..., caption=...)."""
        fields = body(tenant_id=tenant_id, client_id=client_id, to=to, type=type, lane=lane, **content)
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/batch")
    def send_batch(messages: list[dict[str, Any]], *, idempotency_key: str | None = None) -> Call[list[BatchRecord]]:
        """Queue 1 to 1,000 messages at once, validated as a whole (a 400 lists every bad item by
        index and queues nothing). Each item is `{"type": "text", "instance_name": ..., "to": ...,
        "text": ..., "client_ref": ...}` (keys in snake_case or camelCase); an item whose
        `client_ref` was queued on its instance within 24 h is not queued again (`replayed`)."""
        items = [body(**item) for item in messages]
        return Call(list_of(BatchRecord, "accepted"), body={"messages": items}, idempotency_key=idempotency_key)

    @operation("GET", "/instance/{name}/messages")
    def list_messages(name: str, *, limit: int | None = None) -> Call[list[Message]]:
        """The instance's latest messages still retained, newest first."""
        return Call(list_of(Message, "messages"), path={"name": name}, query={"limit": limit})

    @operation("GET", "/message/{id}")
    def get_message(message_id: str) -> Call[Message]:
        return Call(Message.from_json, path={"id": message_id})

    # Conversation actions: answered at once by WhatsApp (WhatsAppError when it fails or is silent).
    @operation("POST", "/instance/{name}/contacts/check")
    def check_numbers(name: str, numbers: list[str]) -> Call[list[NumberCheck]]:
        """Which of 1 to 50 numbers are on WhatsApp (answers are cached by the gateway)."""
        return Call(list_of(NumberCheck), path={"name": name}, body=body(numbers=numbers))

    @operation("GET", "/instance/{name}/contacts/{number}/profile")
    def get_profile(name: str, number: str) -> Call[ContactProfile]:
        """A contact's name, picture URL and about text, None where the contact hides them."""
        return Call(ContactProfile.from_json, path={"name": name, "number": number})

    @operation("POST", "/instance/{name}/chats/{chatId}/read")
    def mark_read(name: str, chat_id: str, message_ids: list[str]) -> Call[None]:
        """Mark received messages read (blue ticks); `chat_id` is a phone number or a group id."""
        return Call(nothing, path={"name": name, "chatId": chat_id}, body=body(message_ids=message_ids))

    @operation("POST", "/instance/{name}/presence")
    def set_presence(name: str, state: Literal["available", "unavailable"]) -> Call[None]:
        return Call(nothing, path={"name": name}, body=body(state=state))

    @operation("GET", "/instance/{name}/groups")
    def list_groups(name: str) -> Call[list[GroupSummary]]:
        """The groups the instance's number is in."""
        return Call(list_of(GroupSummary), path={"name": name})

    @operation("GET", "/instance/{name}/groups/{groupId}")
    def get_group(name: str, group_id: str) -> Call[GroupDetails]:
        return Call(GroupDetails.from_json, path={"name": name, "groupId": group_id})

    # Inbound media.
    @operation("GET", "/media/{id}")
    def get_media(media_id: str, *, exp: int | None = None, sig: str | None = None) -> Call[bytes]:
        """The bytes of inbound media a webhook linked to: with the tenant's key, or (no key
        needed) the link's `exp` and `sig`."""
        return Call(bytes, path={"id": media_id}, query={"exp": exp, "sig": sig}, binary=True)

    # Admin.
    @operation("GET", "/admin/stats")
    def stats() -> Call[Stats]:
        return Call(Stats.from_json)

    @operation("GET", "/metrics")
    def metrics() -> Call[str]:
        """Prometheus' text format, as a scraper reads it (admin key)."""
        return Call(str, text=True)

    @operation("GET", "/admin/workers")
    def list_workers() -> Call[list[Worker]]:
        return Call(list_of(Worker))

    @operation("DELETE", "/admin/queue/{instanceName}")
    def flush_queue(instance_name: str) -> Call[Flushed]:
        """Cancel every message waiting in the instance's lanes (admin key)."""
        return Call(Flushed.from_json, path={"instanceName": instance_name})

    # Staying unbanned.
    @operation("GET", "/tenant/{tenantId}/suppressions")
    def list_suppressions(tenant_id: str) -> Call[Suppressions]:
        """The tenant's opt-out list."""
        return Call(Suppressions.from_json, path={"tenantId": tenant_id})

    @operation("POST", "/tenant/{tenantId}/suppressions")
    def add_suppressions(
        tenant_id: str, numbers: list[str], *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Call[Suppressed]:
        """Put numbers on the tenant's opt-out list: sends to them end `failed` with `opted_out`."""
        return Call(
            Suppressed.from_json,
            path={"tenantId": tenant_id},
            body=body(numbers=numbers, reason=reason),
            idempotency_key=idempotency_key,
        )

    @operation("DELETE", "/tenant/{tenantId}/suppressions/{number}")
    def remove_suppression(tenant_id: str, number: str) -> Call[None]:
        return Call(nothing, path={"tenantId": tenant_id, "number": number})

    @operation("PUT", "/admin/instances/{name}/warmup")
    def set_warmup(name: str, *, factor: float | None = None, skip: bool | None = None) -> Call[Warmup]:
        """Fix an instance's warm-up factor, or skip the warm-up (admin key)."""
        return Call(Warmup.from_json, path={"name": name}, body=body(factor=factor, skip=skip))

    @operation("DELETE", "/admin/instances/{name}/warmup")
    def clear_warmup(name: str) -> Call[Warmup]:
        """Back to the lanes' warm-up schedule (admin key)."""
        return Call(Warmup.from_json, path={"name": name})

    @operation("DELETE", "/admin/instances/{name}/throttle")
    def lift_throttle(name: str) -> Call[Unthrottled]:
        """Resume a paused bulk lane now (admin key)."""
        return Call(Unthrottled.from_json, path={"name": name})

    @operation("POST", "/admin/tenants")
    def create_tenant(tenant_id: str, *, name: str | None = None) -> Call[TenantCreated]:
        """Create a tenant and its first API key (shown only in this answer)."""
        return Call(TenantCreated.from_json, body=body(tenant_id=tenant_id, name=name))

    @operation("GET", "/admin/tenants")
    def list_tenants() -> Call[list[Tenant]]:
        return Call(list_of(Tenant))

    @operation("POST", "/admin/tenants/{tenantId}/keys")
    def issue_key(tenant_id: str, *, scopes: list[str] | None = None) -> Call[KeyIssued]:
        """A new key of the tenant; `scopes=["read"]` for one that may only read (GET, /events)."""
        return Call(KeyIssued.from_json, path={"tenantId": tenant_id}, body=body(scopes=scopes))

    @operation("POST", "/admin/keys")
    def issue_metrics_key() -> Call[KeyIssued]:
        """A key good for GET /metrics alone, with its own rate limit (for Prometheus)."""
        return Call(KeyIssued.from_json, body=body(scopes=["metrics"]))

    @operation("GET", "/admin/instances")
    def list_all_instances(
        *, tenant: str | None = None, state: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Call[InstancePage]:
        """Every instance, a page at a time (`next` is the cursor of the following page)."""
        query = {"tenant": tenant, "state": state, "limit": limit, "cursor": cursor}
        return Call(InstancePage.from_json, query=query)

    @operation("DELETE", "/admin/keys/{keyId}")
    def revoke_key(key_id: str) -> Call[None]:
        return Call(nothing, path={"keyId": key_id})

    # Sandbox driver only: they stand in for the phone and the contacts.
    @operation("POST", "/sandbox/instance/{name}/link")
    def sandbox_link(name: str, *, phone_number: str | None = None) -> Call[None]:
        """As if the QR was scanned: the instance goes `open`."""
        return Call(nothing, path={"name": name}, body=body(phone_number=phone_number))

    @operation("POST", "/sandbox/instance/{name}/unlink")
    def sandbox_unlink(name: str) -> Call[None]:
        return Call(nothing, path={"name": name})

    @operation("POST", "/sandbox/instance/{name}/inbound")
    def sandbox_inbound(
        name: str,
        sender: str | None = None,
        *,
        from_lid: str | None = None,
        chat_id: str | None = None,
        text: str | None = None,
        message_type: str | None = None,
        push_name: str | None = None,
        caption: str | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        media_base64: str | None = None,
        media_url: str | None = None,
        mimetype: str | None = None,
        file_name: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Call[str]:
        """A contact writes in (or, with `from_lid` alone, a sender known only by LID; in a group,
        `chat_id`); returns the WhatsApp message id of the event it causes. `extra` carries the
        body's other fields as the API names them: location, contacts, poll, reaction, edit,
        delete, pollVote."""
        fields = body(
            from_lid=from_lid, chat_id=chat_id, text=text, message_type=message_type, push_name=push_name,
            caption=caption, quoted_message_id=quoted_message_id, mentions=mentions, media_base64=media_base64,
            media_url=media_url, mimetype=mimetype, file_name=file_name,
        )  # fmt: skip
        if sender is not None:
            fields["from"] = sender
        return Call(lambda data: str(data["messageId"]), path={"name": name}, body={**fields, **(extra or {})})

    @operation("GET", "/sandbox/instance/{name}/sent")
    def sandbox_sent(name: str) -> Call[list[SentMessage]]:
        return Call(list_of(SentMessage), path={"name": name})

    @operation("POST", "/sandbox/instance/{name}/receipt")
    def sandbox_receipt(name: str, message_ids: list[str], status: Literal["delivered", "read"]) -> Call[None]:
        return Call(nothing, path={"name": name}, body=body(message_ids=message_ids, status=status))

    @operation("POST", "/sandbox/instance/{name}/ban")
    def sandbox_ban(name: str, seconds: float) -> Call[None]:
        return Call(nothing, path={"name": name}, body=body(seconds=seconds))

    @operation("POST", "/sandbox/instance/{name}/fail-next")
    def sandbox_fail_next(
        name: str, error: str, *, count: int | None = None, transient: bool | None = None
    ) -> Call[None]:
        return Call(nothing, path={"name": name}, body=body(error=error, count=count, transient=transient))

    @operation("POST", "/sandbox/instance/{name}/fail-actions")
    def sandbox_fail_actions(
        name: str, error: str | None = None, *, hang: bool | None = None, count: int | None = None
    ) -> Call[None]:
        """The next `count` conversation actions fail with `error`, or (`hang=True`) get no answer."""
        return Call(nothing, path={"name": name}, body=body(error=error, hang=hang, count=count))

    @operation("POST", "/sandbox/instance/{name}/groups")
    def sandbox_seed_groups(name: str, groups: list[dict[str, Any]]) -> Call[None]:
        """Put the number in groups: each `{"group_id", "subject", "description", "is_admin",
        "participants": [{"phone_number", "is_admin"}]}` (keys in snake_case or camelCase)."""
        items = [
            {**body(**group), "participants": [body(**p) for p in group.get("participants", [])]} for group in groups
        ]
        return Call(nothing, path={"name": name}, body={"groups": items})

    @operation("POST", "/sandbox/instance/{name}/profiles")
    def sandbox_seed_profiles(name: str, profiles: list[dict[str, Any]]) -> Call[None]:
        """Give contacts a profile: each `{"number", "name", "picture_url", "about", "hidden"}`."""
        return Call(nothing, path={"name": name}, body={"profiles": [body(**profile) for profile in profiles]})

    @operation("GET", "/sandbox/instance/{name}/actions")
    def sandbox_actions(name: str) -> Call[list[SandboxAction]]:
        """What the conversation actions asked of the sandbox's 'WhatsApp', in order."""
        return Call(list_of(SandboxAction), path={"name": name})
