"""The real WhatsApp driver: neonize 0.5.2 (whatsmeow underneath), its sessions in child processes.

`driver` hands out the worker's side of each session (`HostedSession`), which runs the session in a
session host (`child`, forked from `zygote`) and talks to it in `wire` frames (a `calls` record
per call). Inside the child, `session` drives one neonize client (its lifecycle, sending and
events; with `lookups`, `conversation_actions` and `completion` for inbound, on `session_core`;
`client` is neonize's client as they use it), `builders` makes the outgoing message protos, `mapping` turns
neonize's events and errors into the driver interface's, `answers` its answers to the conversation
actions, `stores` keeps the session stores (sqlite files or PostgreSQL schemas) and `loading`
imports neonize lazily. The worker itself never imports
neonize: `import scheduler.drivers.neonize` stays cheap and side-effect free.
"""

from __future__ import annotations

from scheduler.drivers.neonize.client import PAIRING_DISPLAY_NAME, Handler, guard
from scheduler.drivers.neonize.driver import RESTART_DELAYS, HostedSession, NeonizeDriver, SessionProcess
from scheduler.drivers.neonize.mapping import (
    classify_error,
    digits,
    format_pairing_code,
    from_epoch,
    is_final,
    map_event,
)
from scheduler.drivers.neonize.session import (
    LOOKUP_TIMEOUT,
    MEDIA_TIMEOUT,
    PAIR_QR_WAIT,
    QR_FIRST_TTL,
    QR_GRACE,
    QR_NEXT_TTL,
    SEND_TIMEOUT,
    STOP_TIMEOUT,
    NeonizeSession,
)
from scheduler.drivers.neonize.stores import (
    PostgresStore,
    PostgresStores,
    SessionStore,
    SqliteStore,
    client_url,
    store_has_device,
    store_phone,
    store_schema,
)

__all__ = [
    "LOOKUP_TIMEOUT",
    "MEDIA_TIMEOUT",
    "PAIRING_DISPLAY_NAME",
    "PAIR_QR_WAIT",
    "QR_FIRST_TTL",
    "QR_GRACE",
    "QR_NEXT_TTL",
    "RESTART_DELAYS",
    "SEND_TIMEOUT",
    "STOP_TIMEOUT",
    "Handler",
    "HostedSession",
    "NeonizeDriver",
    "NeonizeSession",
    "PostgresStore",
    "PostgresStores",
    "SessionProcess",
    "SessionStore",
    "SqliteStore",
    "classify_error",
    "client_url",
    "digits",
    "format_pairing_code",
    "from_epoch",
    "guard",
    "is_final",
    "map_event",
    "store_has_device",
    "store_phone",
    "store_schema",
]
