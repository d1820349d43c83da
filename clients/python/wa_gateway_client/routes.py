"""Every route of the gateway, once, as a method of both clients (see `calls.py`). The method
names follow the route table; the arguments are the request's fields in snake_case."""

from __future__ import annotations

from typing import Any, Literal

from wa_gateway_client.calls import Call, body, new_idempotency_key, nothing, operation
from wa_gateway_client.models import (
    BatchRecord,
    ChatPage,
    ContactProfile,
    DeliveryPage,
    DeliveryQueued,
    Flushed,
    GroupCreated,
    GroupDetails,
    GroupSummary,
    Health,
    InstancePage,
    InstanceSettings,
    InstanceStatus,
    InstanceStatusWithWebhook,
    InviteLink,
    KeyIssued,
    Lane,
    LidLookup,
    Message,
    NumberCheck,
    PairingCode,
    ParticipantOutcome,
    Qr,
    Queue,
    Queued,
    Replayed,
    SandboxAction,
    SendType,
    SentMessage,
    Stats,
    StoredMessagePage,
    Suppressed,
    Suppressions,
    Tenant,
    TenantCreated,
    Unthrottled,
    Warmup,
    Webhook,
    WebhookUpdated,
    WhoAmI,
    Worker,
    camel,
    list_of,
)


def _queued(fields: dict[str, Any], idempotency_key: str | None) -> Call[Queued]:
    """A send, with an Idempotency-Key of its own unless the caller gave one (so it may be retried)."""
    return Call(Queued.from_json, body=fields, idempotency_key=idempotency_key or new_idempotency_key())


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
        instance_name: str,
        webhook_url: str,
        webhook_secret: str,
        *,
        settings: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Call[InstanceStatus]:
        """Create an instance; linking starts at once (state `connecting`, a QR is available).
        `settings`: any of update_settings' fields (snake_case), the others take their defaults."""
        fields = body(
            instance_name=instance_name,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            settings=None if settings is None else {camel(key): value for key, value in settings.items()},
        )
        return Call(InstanceStatus.from_json, body=fields, idempotency_key=idempotency_key)

    @operation("GET", "/instance/{name}/settings")
    def get_settings(name: str) -> Call[InstanceSettings]:
        """The instance's settings (the proxy's password as ***)."""
        return Call(InstanceSettings.from_json, path={"name": name})

    @operation("PATCH", "/instance/{name}/settings")
    def update_settings(
        name: str,
        *,
        deliverability: Literal["standard", "cautious"] | None = None,
        reject_calls: bool | None = None,
        reject_call_message: str | None = None,
        always_online: bool | None = None,
        auto_read: bool | None = None,
        ignore_groups: bool | None = None,
        sync_history: bool | None = None,
        proxy_url: str | None = None,
        clear: tuple[Literal["reject_call_message", "proxy_url"], ...] = (),
    ) -> Call[InstanceSettings]:
        """Change the settings given (the others stay); `clear` names the ones to set back to null."""
        fields = body(
            deliverability=deliverability,
            reject_calls=reject_calls,
            reject_call_message=reject_call_message,
            always_online=always_online,
            auto_read=auto_read,
            ignore_groups=ignore_groups,
            sync_history=sync_history,
            proxy_url=proxy_url,
        )
        fields.update({camel(key): None for key in clear})
        return Call(InstanceSettings.from_json, path={"name": name}, body=fields)

    @operation("GET", "/instance/{name}/qr")
    def get_qr(name: str) -> Call[Qr]:
        """The current QR code (a PNG data URI, `.png` for the bytes) and when it expires."""
        return Call(Qr.from_json, path={"name": name})

    @operation("POST", "/instance/{name}/pairing-code/request")
    def request_pairing_code(name: str, phone_number: str) -> Call[PairingCode]:
        """Link by WhatsApp's 8-character pairing code instead of the QR."""
        return Call(PairingCode.from_json, path={"name": name}, body=body(phone_number=phone_number))

    @operation("GET", "/instance/{name}/status")
    def get_status(name: str) -> Call[InstanceStatusWithWebhook]:
        """The instance's state (`open`, `connecting`, `close`), linked number, waiting messages and
        its webhook endpoint's state."""
        return Call(InstanceStatusWithWebhook.from_json, path={"name": name})

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
        """Every instance of the tenant."""
        return Call(list_of(InstanceStatus), path={"tenantId": tenant_id})

    @operation("GET", "/tenant/{tenantId}/client/{clientId}/instances")
    def list_client_instances(tenant_id: str, client_id: str) -> Call[list[InstanceStatus]]:
        """The instances of one of the tenant's clients (`tenant__client__label`)."""
        return Call(list_of(InstanceStatus), path={"tenantId": tenant_id, "clientId": client_id})

    # Webhooks.
    @operation("GET", "/instance/{name}/webhook")
    def get_webhook(name: str) -> Call[Webhook]:
        """The webhook's URL, the events it gets (["*"]: all) and its state."""
        return Call(Webhook.from_json, path={"name": name})

    @operation("PATCH", "/instance/{name}/webhook")
    def update_webhook(
        name: str,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        events: list[str] | None = None,
        enabled: bool | None = None,
    ) -> Call[WebhookUpdated]:
        """Change the webhook URL, rotate its secret, choose its events (["*"]: all), enable or
        disable it."""
        fields = body(webhook_url=webhook_url, webhook_secret=webhook_secret, events=events, enabled=enabled)
        return Call(WebhookUpdated.from_json, path={"name": name}, body=fields)

    @operation("POST", "/instance/{name}/webhooks/replay")
    def replay_dead_letters(name: str, *, since: str | None = None, until: str | None = None) -> Call[Replayed]:
        """Deliver every dead letter (published within since..until, ISO 8601) again, in order."""
        fields = body(status="dead_lettered", since=since, until=until)
        return Call(Replayed.from_json, path={"name": name}, body=fields)

    @operation("GET", "/instance/{name}/webhooks/deliveries")
    def list_deliveries(name: str, *, limit: int | None = None, cursor: int | None = None) -> Call[DeliveryPage]:
        """Recent deliveries, newest first; pass the page's `next_cursor` for the next one."""
        return Call(DeliveryPage.from_json, path={"name": name}, query={"limit": limit, "cursor": cursor})

    @operation("POST", "/instance/{name}/webhooks/deliveries/{id}/replay")
    def replay_delivery(name: str, delivery_id: str) -> Call[DeliveryQueued]:
        """Deliver a past webhook event again (a new delivery; the old one stays as it was)."""
        return Call(DeliveryQueued.from_json, path={"name": name, "id": delivery_id})

    @operation("POST", "/instance/{name}/webhooks/test")
    def send_test_webhook(name: str) -> Call[DeliveryQueued]:
        """Send a `webhook.test` event to the instance's webhook."""
        return Call(DeliveryQueued.from_json, path={"name": name})

    # Sending: every send is queued (the answer says `pending`); follow it with get_message.
    # One method per kind of gateway/routes/send_kinds.py, its fields as arguments
    # (tests/test_send_kinds_table.py).
    @operation("POST", "/message/text")
    def send_text(
        instance_name: str,
        to: str,
        text: str,
        *,
        lane: Lane | None = None,
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """`to` is a number or a group id; `quoted_message_id` replies to a message (our `msg_` id or
        WhatsApp's), `mentions` @-mentions numbers, `typing` overrides the lane's "typing..." setting;
        `transactional` (urgent lane only) sends even to an opted-out number, `metadata` is your own
        context for the send, echoed in its webhooks."""
        fields = body(
            instance_name=instance_name,
            to=to,
            text=text,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
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
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """Queue an image fetched from `image_url` at send time, with an optional caption."""
        fields = body(
            instance_name=instance_name,
            to=to,
            image_url=image_url,
            caption=caption,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
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
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """Queue a document fetched from `document_url` at send time, shown as `file_name`."""
        fields = body(
            instance_name=instance_name,
            to=to,
            document_url=document_url,
            file_name=file_name,
            caption=caption,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/audio")
    def send_audio(
        instance_name: str,
        to: str,
        audio_url: str,
        *,
        lane: Lane | None = None,
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """Queue a voice note: the audio at `audio_url` is converted to OGG/Opus at send time."""
        fields = body(
            instance_name=instance_name,
            to=to,
            audio_url=audio_url,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/video")
    def send_video(
        instance_name: str,
        to: str,
        video_url: str,
        *,
        caption: str | None = None,
        lane: Lane | None = None,
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """Queue a video fetched from `video_url` at send time, with an optional caption."""
        fields = body(
            instance_name=instance_name,
            to=to,
            video_url=video_url,
            caption=caption,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
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
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """A pin, with an optional place name and address."""
        fields = body(
            instance_name=instance_name,
            to=to,
            latitude=latitude,
            longitude=longitude,
            name=name,
            address=address,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/contact")
    def send_contact(
        instance_name: str,
        to: str,
        contacts: list[dict[str, str]],
        *,
        lane: Lane | None = None,
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """1 to 10 cards, each `{"full_name": ..., "phone_number": ..., "organization": ...}`."""
        cards = [body(**card) for card in contacts]
        fields = body(
            instance_name=instance_name,
            to=to,
            contacts=cards,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/sticker")
    def send_sticker(
        instance_name: str,
        to: str,
        sticker_url: str,
        *,
        lane: Lane | None = None,
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """A WebP as it is, or a PNG/JPEG converted to a 512x512 WebP, fetched at send time."""
        fields = body(
            instance_name=instance_name,
            to=to,
            sticker_url=sticker_url,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
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
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        typing: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """2 to 12 distinct options; `selectable_count` 0 lets voters pick any number (default 1)."""
        fields = body(
            instance_name=instance_name,
            to=to,
            question=question,
            options=options,
            selectable_count=selectable_count,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
            quoted_message_id=quoted_message_id,
            mentions=mentions,
            typing=typing,
        )
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/reaction")
    def send_reaction(
        instance_name: str,
        message_id: str,
        emoji: str,
        *,
        lane: Lane | None = None,
        transactional: bool | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Queued]:
        """React to a message (our `msg_` id or WhatsApp's) in its chat; `emoji=""` removes the reaction."""
        fields = body(
            instance_name=instance_name,
            message_id=message_id,
            emoji=emoji,
            lane=lane,
            transactional=transactional,
            metadata=metadata,
        )
        fields["emoji"] = emoji  # "" is a value here, not an absence
        return _queued(fields, idempotency_key)

    @operation("POST", "/message/{id}/edit")
    def edit_message(
        message_id: str, text: str, *, lane: Lane | None = None, idempotency_key: str | None = None
    ) -> Call[Queued]:
        """Queue an edit of a sent text (WhatsApp allows 15 minutes); the answer is the edit's own id."""
        return Call(
            Queued.from_json,
            path={"id": message_id},
            body=body(text=text, lane=lane),
            idempotency_key=idempotency_key or new_idempotency_key(),
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
        key = idempotency_key or new_idempotency_key()
        return Call(list_of(BatchRecord, "accepted"), body={"messages": items}, idempotency_key=key)

    @operation("GET", "/instance/{name}/messages")
    def list_messages(name: str, *, limit: int | None = None) -> Call[list[Message]]:
        """The instance's latest messages still retained, newest first."""
        return Call(list_of(Message, "messages"), path={"name": name}, query={"limit": limit})

    @operation("GET", "/message/{id}")
    def get_message(message_id: str) -> Call[Message]:
        """A message and its status (pending, sending, sent, delivered, read, failed, cancelled)."""
        return Call(Message.from_json, path={"id": message_id})

    # Conversation actions: answered at once by WhatsApp (WhatsAppError when it fails or is silent).
    @operation("POST", "/instance/{name}/contacts/check")
    def check_numbers(name: str, numbers: list[str]) -> Call[list[NumberCheck]]:
        """Which of 1 to 50 numbers are on WhatsApp (answers are cached by the gateway)."""
        return Call(list_of(NumberCheck), path={"name": name}, body=body(numbers=numbers))

    @operation("GET", "/instance/{name}/contacts/lid/{lid}")
    def lookup_lid(name: str, lid: str) -> Call[LidLookup]:
        """The number behind a LID (WhatsApp's privacy identifier), None when WhatsApp does not tell."""
        return Call(LidLookup.from_json, path={"name": name, "lid": lid})

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
        """Show the linked account as online (`available`) or offline (`unavailable`)."""
        return Call(nothing, path={"name": name}, body=body(state=state))

    @operation("GET", "/instance/{name}/groups")
    def list_groups(name: str) -> Call[list[GroupSummary]]:
        """The groups the instance's number is in."""
        return Call(list_of(GroupSummary), path={"name": name})

    @operation("GET", "/instance/{name}/groups/{groupId}")
    def get_group(name: str, group_id: str) -> Call[GroupDetails]:
        """A group's subject, description and participants."""
        return Call(GroupDetails.from_json, path={"name": name, "groupId": group_id})

    # The conversation store: what the gateway kept, newest first (`iter_chats` and
    # `iter_chat_messages` on the clients walk every page).
    @operation("GET", "/instance/{name}/chats")
    def list_chats(name: str, *, limit: int | None = None, cursor: str | None = None) -> Call[ChatPage]:
        """One page of the instance's chats, the most recent first; pass its `next` as `cursor`."""
        return Call(ChatPage.from_json, path={"name": name}, query={"limit": limit, "cursor": cursor})

    @operation("GET", "/instance/{name}/chats/{chatId}/messages")
    def list_chat_messages(
        name: str, chat_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[StoredMessagePage]:
        """One page of a chat's stored messages, newest first; pass its `next` as `cursor`."""
        query = {"limit": limit, "cursor": cursor}
        return Call(StoredMessagePage.from_json, path={"name": name, "chatId": chat_id}, query=query)

    # Group management (WhatsAppError when WhatsApp refuses, e.g. the number is not an admin).
    @operation("POST", "/instance/{name}/groups")
    def create_group(name: str, subject: str, participants: list[str]) -> Call[GroupCreated]:
        """A new group with these numbers in it, the instance's number its admin."""
        return Call(GroupCreated.from_json, path={"name": name}, body=body(subject=subject, participants=participants))

    @operation("POST", "/instance/{name}/groups/join")
    def join_group(name: str, invite_link: str) -> Call[GroupCreated]:
        """Join by an invite link (or its code)."""
        return Call(GroupCreated.from_json, path={"name": name}, body=body(invite_link=invite_link))

    @operation("POST", "/instance/{name}/groups/{groupId}/participants")
    def change_participants(
        name: str, group_id: str, action: Literal["add", "remove", "promote", "demote"], participants: list[str]
    ) -> Call[list[ParticipantOutcome]]:
        """Each number's outcome: WhatsApp may refuse some and make the others."""
        fields = body(action=action, participants=participants)
        return Call(list_of(ParticipantOutcome), path={"name": name, "groupId": group_id}, body=fields)

    @operation("GET", "/instance/{name}/groups/{groupId}/invite")
    def get_group_invite(name: str, group_id: str) -> Call[InviteLink]:
        return Call(InviteLink.from_json, path={"name": name, "groupId": group_id})

    @operation("DELETE", "/instance/{name}/groups/{groupId}/invite")
    def revoke_group_invite(name: str, group_id: str) -> Call[InviteLink]:
        """The old link stops working; returns the new one."""
        return Call(InviteLink.from_json, path={"name": name, "groupId": group_id})

    @operation("PATCH", "/instance/{name}/groups/{groupId}")
    def update_group(
        name: str,
        group_id: str,
        *,
        subject: str | None = None,
        description: str | None = None,
        announce: bool | None = None,
        locked: bool | None = None,
    ) -> Call[None]:
        """Change what is given (`description=""` removes it); the rest stays."""
        fields = body(subject=subject, description=description, announce=announce, locked=locked)
        return Call(nothing, path={"name": name, "groupId": group_id}, body=fields)

    @operation("POST", "/instance/{name}/groups/{groupId}/leave")
    def leave_group(name: str, group_id: str) -> Call[None]:
        return Call(nothing, path={"name": name, "groupId": group_id})

    # Inbound media.
    @operation("GET", "/media/{id}")
    def get_media(media_id: str, *, exp: int | None = None, sig: str | None = None) -> Call[bytes]:
        """The bytes of inbound media a webhook linked to: with the tenant's key, or (no key
        needed) the link's `exp` and `sig`."""
        return Call(bytes, path={"id": media_id}, query={"exp": exp, "sig": sig}, binary=True)

    # Admin.
    @operation("GET", "/admin/stats")
    def stats() -> Call[Stats]:
        """Gateway-wide figures (admin key)."""
        return Call(Stats.from_json)

    @operation("GET", "/metrics")
    def metrics() -> Call[str]:
        """Prometheus' text format, as a scraper reads it (admin key)."""
        return Call(str, text=True)

    @operation("GET", "/admin/workers")
    def list_workers() -> Call[list[Worker]]:
        """The workers, their heartbeats and the sessions each hosts (admin key)."""
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
        """Take a number off the tenant's opt-out list."""
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
        """Every tenant and its key ids (admin key)."""
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
        """Revoke an API key; it stops working at once."""
        return Call(nothing, path={"keyId": key_id})

    # Sandbox driver only: they stand in for the phone and the contacts.
    @operation("POST", "/sandbox/instance/{name}/link")
    def sandbox_link(name: str, *, phone_number: str | None = None) -> Call[None]:
        """As if the QR was scanned: the instance goes `open`."""
        return Call(nothing, path={"name": name}, body=body(phone_number=phone_number))

    @operation("POST", "/sandbox/instance/{name}/unlink")
    def sandbox_unlink(name: str) -> Call[None]:
        """(sandbox) As if the phone logged the instance out."""
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

    @operation("POST", "/sandbox/instance/{name}/history")
    def sandbox_history(name: str, chats: list[dict[str, Any]]) -> Call[None]:
        """As if WhatsApp synced this history: `chats` as `{chatId, name?, messages: [{messageId,
        fromMe, from?, text, timestamp}]}` (camelCase, as the gateway takes them)."""
        return Call(nothing, path={"name": name}, body={"chats": chats})

    @operation("GET", "/sandbox/instance/{name}/sent")
    def sandbox_sent(name: str) -> Call[list[SentMessage]]:
        """(sandbox) What the instance has sent to WhatsApp, in order."""
        return Call(list_of(SentMessage), path={"name": name})

    @operation("POST", "/sandbox/instance/{name}/receipt")
    def sandbox_receipt(name: str, message_ids: list[str], status: Literal["delivered", "read"]) -> Call[None]:
        """(sandbox) As if recipients' phones reported these messages delivered or read."""
        return Call(nothing, path={"name": name}, body=body(message_ids=message_ids, status=status))

    @operation("POST", "/sandbox/instance/{name}/ban")
    def sandbox_ban(name: str, seconds: float) -> Call[None]:
        """(sandbox) As if WhatsApp banned the number for `seconds`."""
        return Call(nothing, path={"name": name}, body=body(seconds=seconds))

    @operation("POST", "/sandbox/instance/{name}/fail-next")
    def sandbox_fail_next(
        name: str, error: str, *, count: int | None = None, transient: bool | None = None
    ) -> Call[None]:
        """(sandbox) Make the instance's next sends fail as WhatsApp would."""
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

    @operation("POST", "/sandbox/instance/{name}/accounts")
    def sandbox_declare_accounts(name: str, accounts: list[dict[str, Any]]) -> Call[None]:
        """Declare spellings of one account and its LID: each `{"numbers": [...], "lid"}`, the
        account being the first number; lookups, sends and inbound senders resolve through it."""
        return Call(nothing, path={"name": name}, body={"accounts": [body(**account) for account in accounts]})

    @operation("POST", "/sandbox/instance/{name}/call")
    def sandbox_call(name: str, sender: str, *, is_video: bool | None = None) -> Call[str]:
        """Someone calls the number; returns the call's id."""
        return Call(
            lambda data: str(data["callId"]), path={"name": name}, body={"from": sender, **body(is_video=is_video)}
        )

    @operation("POST", "/sandbox/instance/{name}/group-event")
    def sandbox_group_event(
        name: str,
        group_id: str,
        action: Literal["add", "remove", "promote", "demote", "update"],
        participants: list[str] | None = None,
        *,
        by: str | None = None,
        subject: str | None = None,
        description: str | None = None,
        announce: bool | None = None,
        locked: bool | None = None,
    ) -> Call[None]:
        """Someone else changes a group: its members, or (`update`) its settings."""
        fields = body(
            group_id=group_id, action=action, participants=participants, by=by, subject=subject,
            description=description, announce=announce, locked=locked,
        )  # fmt: skip
        return Call(nothing, path={"name": name}, body=fields)

    @operation("GET", "/sandbox/instance/{name}/actions")
    def sandbox_actions(name: str) -> Call[list[SandboxAction]]:
        """What the conversation actions asked of the sandbox's 'WhatsApp', in order."""
        return Call(list_of(SandboxAction), path={"name": name})
