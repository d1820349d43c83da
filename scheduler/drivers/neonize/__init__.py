"""The real WhatsApp driver: neonize 0.5.2 (whatsmeow underneath), through its async client.

`loading` imports neonize lazily, `mapping` turns its events and errors into the driver
interface's, `stores` keeps the session stores (sqlite files or PostgreSQL schemas), `session`
runs one number on one client per connect cycle and `driver` hands the sessions out. Nothing here
imports neonize at import time: `import scheduler.drivers.neonize` stays cheap and side-effect free.
"""

from __future__ import annotations

from scheduler.drivers.neonize.driver import EXECUTOR_MARGIN, NeonizeDriver, executor_for, install_executor
from scheduler.drivers.neonize.mapping import (
    classify_error,
    digits,
    format_pairing_code,
    from_epoch,
    map_event,
    message_content,
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
    Handler,
    NeonizeSession,
    guard,
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
    "EXECUTOR_MARGIN",
    "LOOKUP_TIMEOUT",
    "MEDIA_TIMEOUT",
    "PAIR_QR_WAIT",
    "QR_FIRST_TTL",
    "QR_GRACE",
    "QR_NEXT_TTL",
    "SEND_TIMEOUT",
    "STOP_TIMEOUT",
    "Handler",
    "NeonizeDriver",
    "NeonizeSession",
    "PostgresStore",
    "PostgresStores",
    "SessionStore",
    "SqliteStore",
    "classify_error",
    "client_url",
    "digits",
    "executor_for",
    "format_pairing_code",
    "from_epoch",
    "guard",
    "install_executor",
    "map_event",
    "message_content",
    "store_has_device",
    "store_phone",
    "store_schema",
]
