"""What a send points at: the message a reply quotes, or the one a reaction is about, given as our
id (`msg_...`) or as WhatsApp's (one of ours, or one seen in a webhook), resolved to WhatsApp's id
and its chat when the send is accepted."""

from __future__ import annotations

import json

from core import keys
from core.errors import InvalidState, NotFound
from core.instances import InstanceName
from core.redis_client import Redis
from scheduler.drivers.base import LID_SUFFIX, Inbound, MessageRef
from scheduler.messages import Message, Messages

OUR_ID_PREFIX = "msg_"
SENT = frozenset({"sent", "delivered", "read"})
# Kinds that are about another message and cannot themselves be quoted or reacted to.
POINTERS = frozenset({"reaction", "edit", "delete"})


def seen_value(event: Inbound) -> str:
    """What the inbound de-duplication key keeps of a message: where it was and who wrote it (its
    number, else its LID chat), so a reply or a reaction can name it by WhatsApp's id alone."""
    return json.dumps({"chat": event.chat_id or sender_address(event), "sender": sender_address(event)})


def sender_address(event: Inbound) -> str | None:
    """Who wrote an inbound message, as a `to` can name them: the number, else `<lid>@lid`."""
    if event.sender is not None:
        return event.sender
    return f"{event.sender_lid}{LID_SUFFIX}" if event.sender_lid else None


class References:
    def __init__(self, redis: Redis, messages: Messages) -> None:
        self.redis = redis
        self.messages = messages

    async def resolve(self, instance_name: str, reference: str, what: str) -> MessageRef:
        """The message `reference` names on `instance_name`; `what` names the field in errors.
        NotFound when there is no such message of the instance's tenant, InvalidState when it was
        not sent (yet) or belongs to another of the tenant's instances."""
        ours = reference if reference.startswith(OUR_ID_PREFIX) else None
        if ours is None:
            ours = await self.redis.get(keys.whatsapp_id(instance_name, reference))
        if ours is not None:
            return self.sent_ref(instance_name, await self.messages.get(ours), reference, what)
        raw = await self.redis.get(keys.inbound_seen(instance_name, reference))
        seen = json.loads(raw) if raw and raw.startswith("{") else None
        if seen is None:
            raise NotFound(
                f"{what} {reference!r}: instance {instance_name!r} sent no such message, nor received "
                "one with that WhatsApp id (received ones are known for 7 days)"
            )
        if not seen["chat"]:
            raise InvalidState(f"{what} {reference!r}: WhatsApp did not say which chat that message was in")
        return MessageRef(message_id=reference, chat=seen["chat"], sender=seen["sender"])

    @staticmethod
    def sent_ref(instance_name: str, message: Message | None, reference: str, what: str) -> MessageRef:
        tenant = InstanceName.parse(instance_name).tenant_id
        if message is None or message.tenant_id != tenant:
            raise NotFound(f"{what} {reference!r}: no such message (finished ones are kept for a limited time)")
        if message.instance_name != instance_name:
            raise InvalidState(
                f"{what} {reference!r} was sent from instance {message.instance_name!r}, not {instance_name!r}"
            )
        if message.type in POINTERS:
            raise InvalidState(f"{what} {reference!r} is a {message.type}, not a message that can be pointed at")
        if message.status in ("pending", "sending"):
            raise InvalidState(f"{what} {reference!r} is not sent yet (it is {message.status}): try once it is sent")
        if message.status not in SENT or message.wa_message_id is None:
            raise InvalidState(f"{what} {reference!r} was never sent (it is {message.status})")
        text = message.text if message.type == "text" else message.caption
        return MessageRef(message_id=message.wa_message_id, chat=message.to, from_me=True, text=text)
