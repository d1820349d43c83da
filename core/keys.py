"""Every Redis key the gateway uses, in one place. All keys start with `wa:`.

The Lua scripts build keys with these same templates: core/scripts.py renders the ones in its
`LUA_KEYS` as `K.<name>(...)` helpers every script starts with, so no script spells a key itself
(tests/test_lua_headers.py)."""

from __future__ import annotations

PREFIX = "wa:"

# Tenants and API keys.
TENANTS = f"{PREFIX}tenants"  # set of tenant ids


def tenant(tenant_id: str) -> str:
    return f"{PREFIX}tenant:{tenant_id}"  # hash: name, createdAt


def tenant_keys(tenant_id: str) -> str:
    return f"{PREFIX}tenant:{tenant_id}:keys"  # set of key ids


def api_key(key_id: str) -> str:
    return f"{PREFIX}key:{key_id}"  # hash: tenantId, hash, createdAt


# Request handling.
def rate_limit(subject: str, window: int) -> str:
    return f"{PREFIX}rl:{subject}:{window}"


def idempotency(scope: str, key: str) -> str:
    return f"{PREFIX}idem:{scope}:{key}"


# Instances.
INSTANCES = f"{PREFIX}instances"  # set of instance names


def instance(name: str) -> str:
    return f"{PREFIX}inst:{name}"  # hash: the instance record


def tenant_instances(tenant_id: str) -> str:
    return f"{PREFIX}tenant:{tenant_id}:instances"  # sorted set, score = creation time


# Workers and ownership.
WORKERS = f"{PREFIX}workers"  # sorted set: worker id -> last heartbeat (ms)


def worker(worker_id: str) -> str:
    return f"{PREFIX}worker:{worker_id}"  # hash: capacity, startedAt, host, pid


def worker_instances(worker_id: str) -> str:
    return f"{PREFIX}worker:{worker_id}:instances"  # set of instance names it owns


def worker_queue(worker_id: str) -> str:
    return f"{WORKER_QUEUE_PREFIX}{worker_id}"  # arq queue of instance commands, polled only by that worker


def command_reply(job_id: str) -> str:
    return f"{PREFIX}q:reply:{job_id}"  # list: the answer to a command the API waits for


def due(worker_id: str) -> str:
    return f"{DUE_PREFIX}{worker_id}"  # sorted set: instance name -> its next wake-up (ms), claimed by that worker


def due_bell(worker_id: str) -> str:
    return f"{due(worker_id)}:bell"  # list: rung when a wake-up earlier than all others is added


# Webhook outbox.
WEBHOOK_DUE = f"{PREFIX}webhooks:due"  # sorted set: instance name -> when its events are due (ms), any worker
WEBHOOK_BELL = f"{WEBHOOK_DUE}:bell"  # list: rung when an instance is added to WEBHOOK_DUE
WEBHOOK_STATS = f"{PREFIX}webhooks:stats"  # hash: delivered, failed (attempts), deadLettered


# Live events (GET /events): each event as published to the outbox, also in capped streams.
EVENTS = f"{PREFIX}events"  # stream of every tenant's events (what the admin key sees)


def tenant_events(tenant_id: str) -> str:
    return f"{PREFIX}tenant:{tenant_id}:events"  # stream of one tenant's events


def webhook_delivery(name: str, delivery_id: str) -> str:
    return f"{PREFIX}whd:{name}:{delivery_id}"  # JSON: the delivery record and the body it signs


def webhook_log(name: str) -> str:
    return f"{PREFIX}whlog:{name}"  # sorted set: delivery id -> its number in publication order


def webhook_seq(name: str) -> str:
    return f"{PREFIX}whseq:{name}"  # counter numbering the instance's deliveries (the listing's cursor)


def webhook_lock(name: str) -> str:
    return f"{PREFIX}whlock:{name}"  # held by the one worker delivering the instance's head event


def webhook_endpoint(name: str) -> str:
    # hash: state, since, probes, events filter, previousSecret (sealed), previousUntil (webhooks/endpoint.py)
    return f"{PREFIX}whep:{name}"


def webhook_dead(name: str) -> str:
    return f"{PREFIX}whdead:{name}"  # sorted set: dead-lettered delivery id -> its number in publication order


# Sandbox driver.
def sandbox_sent(name: str) -> str:
    return f"{PREFIX}sandbox:{name}:sent"  # list of JSON records, send order


def sandbox_sent_once(name: str, wa_message_id: str) -> str:
    return f"{PREFIX}sandbox:{name}:sent:{wa_message_id}"  # marks a send recorded (sandbox_sent.lua)


def sandbox_actions(name: str) -> str:
    return f"{PREFIX}sandbox:{name}:actions"  # list of JSON records: what the conversation actions did


def sandbox_groups(name: str) -> str:
    return f"{PREFIX}sandbox:{name}:groups"  # hash: group id -> JSON, the groups the number is in


def sandbox_profiles(name: str) -> str:
    return f"{PREFIX}sandbox:{name}:profiles"  # hash: number -> JSON, contacts' profiles


def sandbox_accounts(name: str) -> str:
    return f"{PREFIX}sandbox:{name}:accounts"  # hash: number spelling or `<lid>@lid` -> JSON {numbers, lid}


def sandbox_keys(name: str) -> list[str]:
    """Every key the sandbox keeps for an instance, for deleting it."""
    return [
        sandbox_sent(name),
        sandbox_actions(name),
        sandbox_groups(name),
        sandbox_profiles(name),
        sandbox_accounts(name),
    ]


# Number checks: whether a number is on WhatsApp, per tenant (scheduler/numbers.py).
def on_whatsapp(tenant_id: str, number: str) -> str:
    # JSON {number, lid, jid}: the account a number spelling (or `<lid>@lid`) is, "" when it is not
    # on WhatsApp (scheduler/numbers.py); expires
    return f"{ON_WHATSAPP_PREFIX}{tenant_id}:{number}"


def outbox(name: str) -> str:
    return f"{PREFIX}outbox:{name}"  # list of delivery ids not yet settled, oldest first; the head goes next


def inbound_seen(name: str, message_id: str) -> str:
    # de-duplicates WhatsApp's redeliveries; JSON {chat, sender} (scheduler/references.py seen_value)
    return f"{PREFIX}seen:{name}:{message_id}"


# An instance's sending keys hang off its record's key: the claim script (core/lua/claim_due.lua)
# builds them from the instance name with these templates (`bind` in core/lua/common.lua).
def lane(name: str, lane_name: str) -> str:
    return f"{instance(name)}:lane:{lane_name}"  # list of message ids waiting in that lane


def pump(name: str) -> str:
    return f"{instance(name)}:pump"  # hash: due (wake-up ms, 0 in flight), inflight, last send, gaps, retry times


def sent_times(name: str, lane_name: str) -> str:
    return f"{instance(name)}:sent:{lane_name}"  # sends in the last day, of an instance never linked


# A linked phone's pace, shared by every instance linked to it and kept when one is deleted: built
# from the instance record's phoneNumber with these templates by the lane scripts (`bind` in common.lua).
def phone(number: str) -> str:
    return f"{PHONE_PREFIX}{number}"  # hash: last send (ms), drawn gaps, busy (the instance sending), firstLinkedMs


def phone_sent(number: str, lane_name: str) -> str:
    return f"{phone(number)}:sent:{lane_name}"  # sorted set of the phone's sends in the last day (rolling quotas)


def quota_sends(name: str, phone_number: str | None, lane_name: str) -> str:
    """Where an instance's lane counts its sends: its phone's, or its own before it was ever linked."""
    return phone_sent(phone_number, lane_name) if phone_number else sent_times(name, lane_name)


def first_contacts(name: str, lane_name: str) -> str:
    return f"{instance(name)}:first:{lane_name}"  # sorted set: sends to numbers that never wrote, last day


def spacing(name: str, lane_name: str) -> str:
    return f"{instance(name)}:spacing:{lane_name}"  # sorted set: recipient -> that lane's last send to it (ms)


def contacts(name: str) -> str:
    return f"{instance(name)}:contacts"  # set of numbers that wrote to the instance (not first contacts)


def outcomes(name: str) -> str:
    return f"{instance(name)}:outcomes"  # list: the last sends' outcomes, newest first (trouble signals)


def deliverability_keys(name: str) -> list[str]:
    """Every key of the instance's deliverability rules (core/lua/common.lua), for deleting it."""
    per_lane = [key(name, lane) for key in (first_contacts, spacing) for lane in ("urgent", "normal", "bulk")]
    return [*per_lane, contacts(name), outcomes(name)]


MESSAGE_PREFIX = f"{PREFIX}msg:"


def message(message_id: str) -> str:
    return f"{MESSAGE_PREFIX}{message_id}"  # hash: the message record


def recent_messages(name: str) -> str:
    return f"{PREFIX}inst:{name}:recent"  # sorted set: the latest message ids, in order of acceptance


def client_ref(name: str, ref: str) -> str:
    return f"{PREFIX}cref:{name}:{ref}"  # the message id a batch item's clientRef queued (core/lua/accept.lua)


def whatsapp_id(name: str, wa_message_id: str) -> str:
    return f"{PREFIX}wamid:{name}:{wa_message_id}"  # our message id, for receipts


def suppressions(tenant_id: str) -> str:
    return f"{SUPPRESSIONS_PREFIX}{tenant_id}"  # hash: number -> JSON {reason, source, addedAt}: the opt-out list


def round_robin(tenant_id: str, client_id: str) -> str:
    return f"{PREFIX}rr:{tenant_id}:{client_id}"  # counter for /message/route


WORKER_QUEUE_PREFIX = f"{PREFIX}q:worker:"
DUE_PREFIX = f"{PREFIX}due:"
SUPPRESSIONS_PREFIX = f"{PREFIX}optout:"
ON_WHATSAPP_PREFIX = f"{PREFIX}onwa:"  # scheduler/numbers.py's cache, read by claim_due.lua too
PHONE_PREFIX = f"{PREFIX}phone:"
STATS = f"{PREFIX}stats"  # hash: accepted, sent, failed, cancelled counters
HTTP_STATS = f"{PREFIX}stats:http"  # hash: "<method> <status> <route>" -> requests (gateway/http_counts.py)


# Inbound media.
def media(media_id: str) -> str:
    return f"{PREFIX}media:{media_id}"  # JSON record of a stored inbound media file; expires with it


def poll(name: str, poll_id: str) -> str:
    return f"{PREFIX}poll:{name}:{poll_id}"  # JSON list of a poll's option names, to name its votes


# Conversations (core/conversations.py): per instance, an index of its chats and, per chat, its
# messages in order and their records. Sorted sets hold "<13-digit ms>:<id>" members, all at score
# 0, so they sort by time then id and page by lexical range (core/lua/conversation_*.lua).
def conversation_prefix(name: str) -> str:
    return f"{PREFIX}conv:{name}:"


def conversation_chats(name: str) -> str:
    return f"{conversation_prefix(name)}chats"  # sorted set: "<last message ms>:<chatId>"


def conversation_chat(name: str, chat_id: str) -> str:
    return f"{conversation_prefix(name)}c:{chat_id}"  # hash: name, isGroup, last (its message's member), unread


def conversation_order(name: str, chat_id: str) -> str:
    return f"{conversation_prefix(name)}z:{chat_id}"  # sorted set: "<ms>:<messageId>", oldest first


def conversation_records(name: str, chat_id: str) -> str:
    return f"{conversation_prefix(name)}m:{chat_id}"  # hash: WhatsApp messageId -> JSON message record
