"""Every Redis key the gateway uses, in one place. All keys start with `wa:`."""

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
    return f"{PREFIX}q:worker:{worker_id}"  # arq queue polled only by that worker


# Webhook outbox.
OUTBOX_QUEUE = f"{PREFIX}q:webhooks"  # arq queue any worker polls


# Sandbox driver.
def sandbox_sent(name: str) -> str:
    return f"{PREFIX}sandbox:{name}:sent"  # list of JSON records, send order


def outbox(name: str) -> str:
    return f"{PREFIX}outbox:{name}"  # list of events waiting for delivery, oldest first


def inbound_seen(name: str, message_id: str) -> str:
    return f"{PREFIX}seen:{name}:{message_id}"  # de-duplicates WhatsApp's redeliveries


def lane(name: str, lane_name: str) -> str:
    return f"{PREFIX}inst:{name}:lane:{lane_name}"  # list of message ids waiting in that lane
