"""The real WhatsApp driver: neonize 0.5.2 (whatsmeow underneath), through its async client.

Importing neonize (any of its modules, even a protobuf one) calls `logging.basicConfig` and runs
`uname`: configure logging first. This module only imports neonize lazily, inside functions, so
`import gateway.drivers.neonize` stays cheap and side-effect free.

Facts about neonize 0.5.2 this module is built around (see DESIGN.md, "WhatsApp drivers"):

- `NewAClient(name)`: `name` is the session database: one sqlite file per instance, or a
  PostgreSQL URL (below). Its `uuid` (the key of the Go-side client table) defaults to `name`,
  and a garbage-collected client calls `Stop(uuid)` from a finalizer, so every client here gets
  a unique uuid.
- `connect()` returns a task running the blocking Go `Neonize()` call in a thread of the loop's
  default executor for the whole life of the client (`install_executor` sizes that executor).
- QR codes come through the `qr` callback as raw bytes; when they run out nothing fires, so a
  session keeps its own deadline and reports `QrExpired`.
- Exceptions raised inside event handlers vanish (`run_coroutine_threadsafe` futures are never
  looked at): every handler is wrapped by `guard`.
- `get_me()` on a client that is not running dereferences a nil pointer in Go and kills the
  process; this module never calls it. The own phone number is read from the session store.
- `is_connected` / `is_logged_in` are properties returning an un-awaited coroutine (always
  truthy): not used.
- Event timestamps: `MessageInfo.Timestamp` is in milliseconds, `Receipt.Timestamp` and
  `SendResponse.Timestamp` in seconds; `TemporaryBan.Expire` is a duration in seconds.

Session stores in PostgreSQL (`database_url`, GATEWAY_SESSION_DATABASE_URL), for workers on
several machines: one database, one schema per instance (`store_schema`). Why, and what it rests on:

- The Go side (goneonize `getDB`) hands a name starting with "postgres" to whatsmeow's sqlstore
  with the postgres dialect and lib/pq; lib/pq sends URL query parameters it does not know as
  run-time parameters, so `search_path=<schema>` puts every unqualified whatsmeow table in the
  instance's schema and `application_name` labels its connections.
- One sqlstore holds many devices, but neonize picks one by JID (then the client uuid becomes
  `jid.User`, undoing our unique uuids), by `new_device` (a blank device) or else takes the first
  device in the store: another instance's, for an instance whose JID we never learnt. A schema
  per instance keeps `GetFirstDevice` right, as with one sqlite file per instance.
- A database per instance would also work, but needs CREATEDB, costs a catalog copy each and
  cannot be dropped while connections linger (see below).
- whatsmeow's schema upgrader (go.mau.fi/util dbutil) looks for its version table through
  `information_schema` by table name only, in every schema: once one instance has its tables,
  the next finds "whatsmeow_version" elsewhere, skips creating it and fails ("relation
  whatsmeow_version does not exist"). `prepare` therefore creates the schema with an empty
  `whatsmeow_version (version, compat)`; the upgrader then sees version 0 and creates the rest.
- lib/pq defaults to sslmode=require where libpq (psycopg) defaults to prefer: a URL without
  sslmode gets sslmode=prefer for the Go side, so both sides connect alike.
- Every `Neonize()` call opens a new sqlstore and never closes it, not even on `Stop`: each
  connect cycle leaves an idle connection open for the life of the process (a file handle with
  sqlite). Each cycle's connections carry their own `application_name`: once its client is
  stopped the session terminates them (`release`), and `prepare` terminates whatever an earlier
  cycle or worker left behind. Budget about two connections per hosted session, plus one per
  worker (the worker's own queries share one connection).
- Checked against neonize 0.5.2 (whatsmeow v0.0.0-20260921121126-35ae40906e74, go.mau.fi/util
  v0.10.1, lib/pq v1.12.3); check again when upgrading neonize.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import importlib
import io
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.drivers.base import (
    Banned,
    Connected,
    Disconnected,
    DriverError,
    DriverEvent,
    EventSink,
    MessageReceived,
    MessageType,
    NotLinkedError,
    OutcomeUnknownError,
    OutgoingMessage,
    QrCode,
    QrExpired,
    Receipt,
    ReceiptStatus,
    SendResult,
    TransientDriverError,
)

log = logging.getLogger(__name__)

# Threads beyond one per hosted session: media uploads, sends still running in Go after we gave
# up waiting, sqlite reads and whatever else uses `asyncio.to_thread`.
EXECUTOR_MARGIN = 8
# whatsmeow's QR rotation: the first code lives 60 s, the next ones 20 s each.
QR_FIRST_TTL = 60.0
QR_NEXT_TTL = 20.0
# Slack after a code's expiry before declaring the QR cycle over (the next code may be late).
QR_GRACE = 5.0
# How long pair_phone waits for the first QR of the cycle (PairPhone fails before it).
PAIR_QR_WAIT = 30.0
# whatsmeow waits up to 75 s for the server's ack of a send; past our limit the outcome is unknown.
SEND_TIMEOUT = 60.0
MEDIA_TIMEOUT = 120.0
LOOKUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

_INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_DIRECT_CHAT_SERVERS = frozenset({"s.whatsapp.net", "lid", "c.us"})
_MEDIA_FIELDS: tuple[MessageType, ...] = ("imageMessage", "documentMessage", "audioMessage", "videoMessage")
# Containers whose inner `.message` is the real content (whatsmeow usually unwraps them already).
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "deviceSentMessage",
)
_LOGGED_OUT_REASONS = frozenset({"LOGGED_OUT", "MAIN_DEVICE_GONE", "UNKNOWN_LOGOUT"})
_NOT_LINKED_MARKERS = ("not logged in", "doesn't contain a device", "no device")
_TRANSIENT_MARKERS = (
    "client is nil",
    "client not found",
    "not connected",
    "failed to dial",
    "connection refused",
    "connection reset",
    "broken pipe",
    "no such host",
    "network is unreachable",
)
_UNKNOWN_OUTCOME_MARKERS = ("timed out", "timeout", "deadline exceeded", "disconnected before")


# -- lazy neonize imports -------------------------------------------------------------------------


def _popen_read_and_closed(cmd: str, mode: str = "r", buffering: int = -1) -> io.StringIO:
    with _os_popen(cmd, mode, buffering) as pipe:
        return io.StringIO(pipe.read())


_os_popen = os.popen


def _import(name: str) -> ModuleType:
    # neonize's import leaks an `os.popen("uname -a")` pipe (utils/platform.py), whose
    # ResourceWarning would surface later wherever warnings are errors: close it at once instead.
    os.popen = _popen_read_and_closed  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        os.popen = _os_popen


def _pb() -> ModuleType:
    return _import("neonize.proto.Neonize_pb2")


def _e2e() -> ModuleType:
    return _import("neonize.proto.waE2E.WAWebProtobufsE2E_pb2")


# -- pure helpers ---------------------------------------------------------------------------------


def digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def from_epoch(value: int, *, now: datetime | None = None) -> datetime:
    """neonize mixes seconds and milliseconds; a value past year 5000 in seconds is milliseconds."""
    if value <= 0:
        return now or datetime.now(UTC)
    seconds = value / 1000 if value > 100_000_000_000 else value
    return datetime.fromtimestamp(seconds, UTC)


def format_pairing_code(code: str) -> str:
    """WhatsApp's 8-character linking code as "ABCD-EFGH"."""
    raw = re.sub(r"[^0-9A-Za-z]", "", code).upper()
    if len(raw) != 8:
        raise DriverError(f"unexpected pairing code from WhatsApp: {code!r}")
    return f"{raw[:4]}-{raw[4:]}"


def _enum_name(message: Any, field: str, default: str) -> str:
    if not message.HasField(field):
        return default
    enum = message.DESCRIPTOR.fields_by_name[field].enum_type
    value = enum.values_by_number.get(getattr(message, field))
    return value.name if value is not None else default


def _sender_phone(source: Any) -> str:
    sender = source.Sender
    # LID-addressed chats: the sender is an opaque "lid" id, its phone number JID is SenderAlt.
    if sender.Server == "lid" and source.SenderAlt.User and source.SenderAlt.Server != "lid":
        return digits(source.SenderAlt.User)
    return digits(sender.User)


def _unwrap(message: Any) -> Any:
    for _ in range(4):
        for field in _WRAPPERS:
            if message.HasField(field) and getattr(message, field).HasField("message"):
                message = getattr(message, field).message
                break
        else:
            return message
    return message


def message_content(message: Any) -> tuple[MessageType, str | None] | None:
    """The API message type and text of a WhatsApp `Message` proto; None for types we do not map.

    A caption is not text: media messages have text None.
    """
    message = _unwrap(message)
    if message.HasField("conversation"):
        return "conversation", message.conversation
    if message.HasField("extendedTextMessage"):
        return "conversation", message.extendedTextMessage.text
    for field in _MEDIA_FIELDS:
        if message.HasField(field):
            return field, None
    return None


def _map_message(event: Any) -> MessageReceived | None:
    if not event.HasField("Message"):
        return None
    info = event.Info
    source = info.MessageSource
    # Direct chats only: groups, status updates (status@broadcast), broadcast lists and
    # newsletters are not conversations with a number.
    if source.IsGroup or (source.Chat.Server and source.Chat.Server not in _DIRECT_CHAT_SERVERS):
        return None
    content = message_content(event.Message)
    if content is None:
        return None
    message_type, text = content
    return MessageReceived(
        message_id=info.ID,
        sender=_sender_phone(source),
        push_name=info.Pushname or None,
        message_type=message_type,
        text=text,
        timestamp=from_epoch(info.Timestamp),
        from_me=source.IsFromMe,
    )


def _map_receipt(event: Any, now: datetime) -> Receipt | None:
    pb = _pb()
    statuses: dict[int, ReceiptStatus] = {
        pb.Receipt.DELIVERED: "delivered",
        pb.Receipt.READ: "read",
        pb.Receipt.PLAYED: "read",  # a voice note or video played has been read
    }
    status = statuses.get(event.Type) if event.HasField("Type") else None
    # Receipts sent by our own other devices (IsFromMe) say nothing about the recipient.
    if status is None or not event.MessageIDs or event.MessageSource.IsFromMe:
        return None
    return Receipt(message_ids=tuple(event.MessageIDs), status=status, timestamp=from_epoch(event.Timestamp, now=now))


def map_event(event: Any, *, own_phone: str = "", now: datetime | None = None) -> DriverEvent | None:
    """Translate one neonize event (a `neonize.proto.Neonize_pb2` message) into a `DriverEvent`.

    `own_phone` fills `Connected` (the event carries no JID); `now` anchors relative times (a
    temporary ban's expiry). Events and message types we do not report map to None.
    """
    pb = _pb()
    now = now or datetime.now(UTC)
    if isinstance(event, pb.Message):
        return _map_message(event)
    if isinstance(event, pb.Receipt):
        return _map_receipt(event, now)
    if isinstance(event, pb.Connected):
        return Connected(phone_number=digits(own_phone))
    if isinstance(event, pb.Disconnected):
        return Disconnected(reason="connection lost")
    if isinstance(event, pb.LoggedOut):
        reason = _enum_name(event, "Reason", "LOGGED_OUT")
        return Disconnected(reason=f"logged out ({reason.lower()})", logged_out=True)
    if isinstance(event, pb.StreamReplaced):
        return Disconnected(reason="stream replaced: another client connected with this session")
    if isinstance(event, pb.TemporaryBan):
        reason = _enum_name(event, "Code", "UNKNOWN").lower()
        expires_at = now + timedelta(seconds=event.Expire) if event.Expire > 0 else None
        return Banned(reason=reason, expires_at=expires_at)
    if isinstance(event, pb.ConnectFailure):
        reason = _enum_name(event, "Reason", "GENERIC")
        if reason == "TEMP_BANNED":
            return Banned(reason=event.Message or "temp_banned", expires_at=None)
        detail = f": {event.Message}" if event.Message else ""
        return Disconnected(
            reason=f"connect failure ({reason.lower()}){detail}", logged_out=reason in _LOGGED_OUT_REASONS
        )
    if isinstance(event, pb.ClientOutdated):
        return Disconnected(reason="client outdated: WhatsApp rejected this neonize version")
    if isinstance(event, pb.StreamError):
        return Disconnected(reason=f"stream error {event.Code}".strip())
    return None


def classify_error(exc: BaseException) -> DriverError:
    """Turn whatever neonize (or asyncio) raised into our exception tree."""
    if isinstance(exc, DriverError):
        return exc
    if isinstance(exc, TimeoutError):
        return OutcomeUnknownError("WhatsApp did not answer in time; the message may have been sent")
    text = str(exc)
    lowered = text.lower()
    name = type(exc).__name__
    if any(marker in lowered for marker in _NOT_LINKED_MARKERS):
        return NotLinkedError(f"session is not linked: {text}")
    if any(marker in lowered for marker in _TRANSIENT_MARKERS):
        return TransientDriverError(f"not connected to WhatsApp: {text}")
    if any(marker in lowered for marker in _UNKNOWN_OUTCOME_MARKERS):
        return OutcomeUnknownError(f"WhatsApp did not confirm in time, the message may have been sent: {text}")
    if name in ("UploadError", "DownloadError"):
        return TransientDriverError(f"media transfer failed: {text}")
    if isinstance(exc, FileNotFoundError):
        # neonize shells out to ffmpeg/ffprobe for audio and video.
        return DriverError(f"media processing failed (are ffmpeg and ffprobe installed?): {text}")
    if isinstance(exc, ConnectionError):
        return TransientDriverError(f"connection error: {text or name}")
    return DriverError(f"WhatsApp call failed: {name}: {text}")


# -- the session store ----------------------------------------------------------------------------

T = TypeVar("T")

# lib/pq would send these to the server; we set them per instance and per connect cycle.
_CLIENT_URL_PARAMS = frozenset({"search_path", "application_name"})
_APPLICATION = "wa-gateway"
_DEVICE_QUERY = "SELECT jid FROM whatsmeow_device LIMIT 1"


def _read_store(path: Path, query: str) -> tuple[Any, ...] | None:
    try:
        if path.stat().st_size == 0:
            return None
    except FileNotFoundError:
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)) as db:
            row: tuple[Any, ...] | None = db.execute(query).fetchone()
            return row
    except sqlite3.Error as exc:  # not a database yet, schema not created, locked for too long
        log.debug("session store %s unreadable: %s", path, exc)
        return None


def _phone_of(jid: object) -> str | None:
    """Phone number digits of a device JID ("5491112345678:12@s.whatsapp.net")."""
    if not jid:
        return None
    user = str(jid).split("@", 1)[0].split(":", 1)[0].split(".", 1)[0]
    return digits(user) or None


def store_has_device(path: Path) -> bool:
    """True when the whatsmeow store at `path` holds a device (a linked session)."""
    return _read_store(path, "SELECT 1 FROM whatsmeow_device LIMIT 1") is not None


def store_phone(path: Path) -> str | None:
    """Phone number digits of the device in the sqlite store at `path`."""
    row = _read_store(path, _DEVICE_QUERY)
    return None if row is None else _phone_of(row[0])


class SessionStore(Protocol):
    """Where one instance's whatsmeow session lives. Every method but `client_name` may block."""

    def client_name(self, cycle: str) -> str:
        """The `name` for `NewAClient` in connect cycle `cycle`."""
        ...

    def prepare(self) -> None:
        """Make the store ready for a client; called before each connect cycle."""
        ...

    def has_device(self) -> bool: ...

    def phone(self) -> str | None: ...

    def release(self, cycle: str) -> None:
        """Free what connect cycle `cycle` left behind once its client is stopped."""
        ...

    def remove(self) -> None: ...


class SqliteStore:
    """One sqlite file per instance under the sessions directory (the default)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def client_name(self, cycle: str) -> str:
        return str(self.path)

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def has_device(self) -> bool:
        return store_has_device(self.path)

    def phone(self) -> str | None:
        return store_phone(self.path)

    def release(self, cycle: str) -> None:
        pass

    def remove(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def store_schema(instance_name: str) -> str:
    """The PostgreSQL schema of an instance: readable, at most 38 characters, one per exact name
    (the digest tells "Shop-1" from "shop_1")."""
    slug = re.sub(r"[^a-z0-9_]", "_", instance_name.lower())[:24]
    digest = hashlib.sha256(instance_name.encode()).hexdigest()[:10]
    return f"wa_{slug}_{digest}"


def client_url(database_url: str, schema: str, cycle: str) -> str:
    """The URL neonize gets: the instance's schema first on the search path, connections named
    after the instance and the connect cycle, and libpq's default sslmode unless one is given."""
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _CLIENT_URL_PARAMS]
    if not any(key == "sslmode" for key, _ in query):
        query.append(("sslmode", "prefer"))
    query += [("search_path", schema), ("application_name", _application_name(schema, cycle))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _application_name(schema: str, cycle: str = "") -> str:
    """The application_name of the Go side's connections, "wa-gateway <schema> <cycle>": at most
    62 characters (PostgreSQL cuts at 63). Without a cycle: the prefix all of the instance's share."""
    return f"{_APPLICATION} {schema} {cycle[:12]}"


def _psycopg() -> ModuleType:
    try:
        return importlib.import_module("psycopg")
    except ImportError as exc:
        raise RuntimeError(
            "GATEWAY_SESSION_DATABASE_URL is set, which needs psycopg: pip install 'wa-gateway[postgres]'"
        ) from exc


class PostgresStores:
    """The session stores of one worker in one PostgreSQL database, a schema per instance.

    The worker's own queries share one autocommit connection (opened lazily, reopened once when
    it went stale); neonize's Go side opens its own connections from `client_url`.
    """

    def __init__(self, database_url: str, *, connect_timeout: float = 5, statement_timeout: float = 15) -> None:
        if not database_url.startswith(("postgres://", "postgresql://")):
            raise ValueError("the session database URL must start with postgres:// or postgresql://")
        self._pg = _psycopg()
        self.database_url = database_url
        given = self._pg.conninfo.conninfo_to_dict(database_url)
        self._connect_options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in given:
            self._connect_options["connect_timeout"] = max(1, round(connect_timeout))
        if "application_name" not in given:
            self._connect_options["application_name"] = _APPLICATION
        self._statement_timeout_ms = int(statement_timeout * 1000)
        self._lock = threading.Lock()
        self._conn: Any = None

    def store(self, instance_name: str) -> PostgresStore:
        return PostgresStore(self, instance_name)

    def run(self, work: Callable[[Any], T]) -> T:
        """Run `work(connection)` on the shared connection; PostgreSQL trouble becomes a DriverError."""
        pg = self._pg
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                try:
                    return work(self._conn)
                except pg.OperationalError:
                    self._discard()  # a stale connection (server restart, idle timeout): once more
                except pg.Error as exc:
                    raise DriverError(f"session store query failed: {exc}") from exc
            try:
                self._conn = pg.connect(self.database_url, **self._connect_options)
                self._conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")
                return work(self._conn)
            except pg.OperationalError as exc:
                self._discard()
                raise TransientDriverError(f"session store (PostgreSQL) unreachable: {exc}") from exc
            except pg.Error as exc:
                raise DriverError(f"session store query failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class PostgresStore:
    """One instance's whatsmeow tables, in their own schema of the shared session database."""

    def __init__(self, stores: PostgresStores, instance_name: str) -> None:
        self._stores = stores
        self._sql = stores._pg.sql
        self._errors = stores._pg.errors
        self.instance_name = instance_name
        self.schema = store_schema(instance_name)

    def client_name(self, cycle: str) -> str:
        return client_url(self._stores.database_url, self.schema, cycle)

    def prepare(self) -> None:
        schema = self._sql.Identifier(self.schema)

        def work(conn: Any) -> None:
            conn.execute(self._sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            # See the module docstring: whatsmeow's upgrader would not create this one itself.
            conn.execute(
                self._sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.whatsmeow_version (version INTEGER, compat INTEGER)"
                ).format(schema)
            )
            self._terminate(conn, _application_name(self.schema))

        self._stores.run(work)

    def has_device(self) -> bool:
        return self._device_jid() is not None

    def phone(self) -> str | None:
        return _phone_of(self._device_jid())

    def release(self, cycle: str) -> None:
        self._stores.run(lambda conn: self._terminate(conn, _application_name(self.schema, cycle)))

    def remove(self) -> None:
        def work(conn: Any) -> None:
            self._terminate(conn, _application_name(self.schema))
            conn.execute(self._sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(self._sql.Identifier(self.schema)))

        self._stores.run(work)

    def _device_jid(self) -> str | None:
        query = self._sql.SQL(_DEVICE_QUERY.replace("whatsmeow_device", "{}.whatsmeow_device")).format(
            self._sql.Identifier(self.schema)
        )

        def work(conn: Any) -> str | None:
            try:
                row = conn.execute(query).fetchone()
            except (self._errors.UndefinedTable, self._errors.InvalidSchemaName):
                return None  # never connected: no schema, or whatsmeow has not created its tables yet
            return None if row is None else str(row[0] or "") or None

        return self._stores.run(work)

    @staticmethod
    def _terminate(conn: Any, prefix: str) -> None:
        """End the Go side's connections whose application_name starts with `prefix` (neonize never
        closes a stopped client's pool)."""
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE left(application_name, char_length(%(p)s)) = %(p)s"
            " AND usename = current_user AND datname = current_database() AND pid <> pg_backend_pid()",
            {"p": prefix},
        )


# -- executor -------------------------------------------------------------------------------------


def executor_for(max_sessions: int) -> concurrent.futures.ThreadPoolExecutor:
    """A default executor with one thread per hosted session plus `EXECUTOR_MARGIN`."""
    if max_sessions < 1:
        raise ValueError("max_sessions must be at least 1")
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=max_sessions + EXECUTOR_MARGIN, thread_name_prefix="neonize"
    )


def install_executor(loop: asyncio.AbstractEventLoop, max_sessions: int) -> concurrent.futures.ThreadPoolExecutor:
    """Make `executor_for(max_sessions)` the loop's default executor (neonize uses `to_thread`)."""
    executor = executor_for(max_sessions)
    loop.set_default_executor(executor)
    return executor


# -- handlers -------------------------------------------------------------------------------------

Handler = Callable[..., Awaitable[None]]


def guard(handler: Handler, what: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """Wrap an event handler so its exceptions are logged instead of vanishing inside neonize."""

    @functools.wraps(handler)
    async def guarded(*args: Any) -> None:
        try:
            await handler(*args)
        except Exception:
            log.exception("neonize %s handler failed", what)

    return guarded


def _adopt_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    # neonize routes every callback to one module-global loop, set only the first time any
    # client connects; a later loop (a restarted worker, tests) would never see an event.
    events_module = _import("neonize.aioze.events")
    current = getattr(events_module, "event_global_loop", None)
    if current is None or current.is_closed():
        setattr(events_module, "event_global_loop", loop)  # noqa: B010
    elif current is not loop:
        log.warning("neonize delivers events to another running event loop; this session will miss them")


# -- session and driver ---------------------------------------------------------------------------


class NeonizeSession:
    """One WhatsApp number on top of one `NewAClient` per connect cycle."""

    def __init__(
        self,
        instance_name: str,
        store: Path | SessionStore,
        sink: EventSink,
        *,
        proxy: str | None = None,
        qr_first_ttl: float = QR_FIRST_TTL,
        qr_next_ttl: float = QR_NEXT_TTL,
        qr_grace: float = QR_GRACE,
        pair_qr_wait: float = PAIR_QR_WAIT,
        send_timeout: float = SEND_TIMEOUT,
        media_timeout: float = MEDIA_TIMEOUT,
        lookup_timeout: float = LOOKUP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        on_close: Callable[[NeonizeSession], None] | None = None,
    ) -> None:
        self.instance_name = instance_name
        self.store: SessionStore = SqliteStore(store) if isinstance(store, Path) else store
        self.store_path: Path | None = self.store.path if isinstance(self.store, SqliteStore) else None
        self._sink = sink
        self._proxy = proxy
        self._qr_first_ttl = qr_first_ttl
        self._qr_next_ttl = qr_next_ttl
        self._qr_grace = qr_grace
        self._pair_qr_wait = pair_qr_wait
        self._send_timeout = send_timeout
        self._media_timeout = media_timeout
        self._lookup_timeout = lookup_timeout
        self._stop_timeout = stop_timeout
        self._on_close = on_close
        self._client: Any = None
        self._cycle: str | None = None  # tags the store's resources of the current client
        self._task: asyncio.Future[Any] | None = None
        self._connected = False
        self._closing = False
        self._own_phone: str | None = None
        self._qr_count = 0
        self._qr_seen = asyncio.Event()
        self._qr_timer: asyncio.TimerHandle | None = None
        self.qr_deadline: float | None = None  # loop time at which the QR cycle counts as expired
        self._emit_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def linked(self) -> bool:
        # Blocks for one query with a PostgreSQL store; raises TransientDriverError if unreachable.
        return self.store.has_device()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- lifecycle

    async def connect(self) -> None:
        if self._task is not None and not self._task.done():
            return
        await self._shutdown_client()
        self._closing = False
        self._qr_count = 0
        self._qr_seen = asyncio.Event()
        loop = asyncio.get_running_loop()
        _adopt_event_loop(loop)
        try:
            await asyncio.to_thread(self.store.prepare)
        except OSError as exc:
            raise DriverError(f"session store not usable: {exc}") from exc
        cycle = uuid.uuid4().hex
        client = self._new_client(cycle)
        proxy = None
        if self._proxy:
            proxy = _import("neonize._binder").ProxySettings(proxy_address=self._proxy)
        self._client = client
        self._cycle = cycle
        try:
            task = await client.connect_with_proxy(proxy)
        except Exception as exc:
            self._client = None
            self._cycle = None
            raise classify_error(exc) from exc
        self._task = task
        task.add_done_callback(functools.partial(self._on_run_done, client))

    async def close(self) -> None:
        self._closing = True
        await self._shutdown_client()
        for task in list(self._background):
            if task is not asyncio.current_task():
                task.cancel()
        if self._on_close is not None:
            self._on_close(self)

    async def logout(self) -> None:
        client = self._client
        try:
            if client is not None and self._connected:
                try:
                    await asyncio.wait_for(client.logout(), self._lookup_timeout)
                except Exception as exc:
                    raise classify_error(exc) from exc
            else:
                log.info("%s: not connected, logout only forgets the local store", self.instance_name)
        finally:
            await self.close()

    # -- pairing and sending

    async def pair_phone(self, phone_number: str) -> str:
        phone = digits(phone_number)
        if not phone:
            raise DriverError("pairing needs a phone number in international digits")
        if self._connected:
            raise DriverError("session is already linked")
        client = self._client
        if client is None or self._task is None or self._task.done():
            raise TransientDriverError("not connected: call connect() before asking for a pairing code")
        try:
            await asyncio.wait_for(self._qr_seen.wait(), self._pair_qr_wait)
        except TimeoutError as exc:
            raise TransientDriverError("WhatsApp produced no QR yet; a pairing code cannot be requested") from exc
        try:
            code = await asyncio.wait_for(client.PairPhone(phone, True), self._lookup_timeout)
        except Exception as exc:
            error = classify_error(exc)
            raise (TransientDriverError(str(error)) if isinstance(error, OutcomeUnknownError) else error) from exc
        return format_pairing_code(code)

    async def is_on_whatsapp(self, phone_number: str) -> bool:
        client = self._require_client()
        try:
            answers = await asyncio.wait_for(client.is_on_whatsapp(digits(phone_number)), self._lookup_timeout)
        except Exception as exc:
            error = classify_error(exc)
            # A lookup changes nothing: "outcome unknown" only means "try again".
            raise (TransientDriverError(str(error)) if isinstance(error, OutcomeUnknownError) else error) from exc
        return any(answer.IsIn for answer in answers)

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send as is: the caller checks `is_on_whatsapp` first (neonize raises nothing otherwise)."""
        client = self._require_client()
        to = digits(message.to)
        if not to:
            raise DriverError("recipient must be a phone number in international digits")
        try:
            payload = await asyncio.wait_for(self._build(client, message), self._media_timeout)
        except TimeoutError as exc:
            raise TransientDriverError(f"preparing the {message.type} timed out; nothing was sent") from exc
        except Exception as exc:
            raise classify_error(exc) from exc
        try:
            response = await asyncio.wait_for(client.send_message(to, payload), self._send_timeout)
        except Exception as exc:
            raise classify_error(exc) from exc
        return SendResult(message_id=response.ID, sent_at=from_epoch(response.Timestamp))

    async def _build(self, client: Any, message: OutgoingMessage) -> Any:
        if message.type == "text":
            if not message.text:
                raise DriverError("a text message needs text")
            # A proto, not a str: neonize would otherwise parse "@digits" into mentions.
            return _e2e().Message(conversation=message.text)
        media = message.media
        if media is None:
            raise DriverError(f"an {message.type} message needs its media bytes (download media_url first)")
        if message.type == "image":
            return await client.build_image_message(media, caption=message.caption)
        if message.type == "document":
            return await client.build_document_message(
                media,
                caption=message.caption,
                title=message.file_name,
                filename=message.file_name,
                mimetype=message.mimetype,
            )
        if message.type == "audio":
            return await client.build_audio_message(media, ptt=True)
        if message.type == "video":
            return await client.build_video_message(media, caption=message.caption)
        raise DriverError(f"unsupported message type {message.type!r}")

    def _require_client(self) -> Any:
        if self._client is None or not self._connected:
            raise TransientDriverError("not connected to WhatsApp")
        return self._client

    # -- the neonize client

    def _new_client(self, cycle: str | None = None) -> Any:
        cycle = cycle or uuid.uuid4().hex
        client_module = _import("neonize.aioze.client")
        client = client_module.NewAClient(self.store.client_name(cycle), uuid=f"{self.instance_name}:{cycle}")
        pb = _pb()
        client.qr(guard(self._on_qr, "qr"))
        handlers: tuple[tuple[type[Any], Handler, str], ...] = (
            (pb.PairStatus, self._on_pair_status, "pair status"),
            (pb.Connected, self._on_connected, "connected"),
            (pb.Message, self._on_event, "message"),
            (pb.Receipt, self._on_event, "receipt"),
            (pb.Disconnected, self._on_event, "disconnected"),
            (pb.LoggedOut, self._on_event, "logged out"),
            (pb.StreamReplaced, self._on_event, "stream replaced"),
            (pb.TemporaryBan, self._on_event, "temporary ban"),
            (pb.ConnectFailure, self._on_event, "connect failure"),
            (pb.ClientOutdated, self._on_event, "client outdated"),
            (pb.StreamError, self._on_event, "stream error"),
        )
        for event_type, handler, what in handlers:
            client.event(event_type)(guard(handler, what))
        return client

    async def _shutdown_client(self) -> None:
        client, task, cycle = self._client, self._task, self._cycle
        self._client = None
        self._task = None
        self._cycle = None
        self._connected = False
        self._cancel_qr_timer()
        if client is None:
            return
        try:
            # Stop = disconnect + forget the Go-side client + end the blocking Neonize() call.
            await asyncio.wait_for(client.stop(), self._stop_timeout)
        except Exception:
            log.warning("%s: stopping the neonize client failed", self.instance_name, exc_info=True)
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), self._stop_timeout)
            except TimeoutError:
                log.warning("%s: neonize connect thread still running after stop", self.instance_name)
            except Exception:
                pass  # reported by _on_run_done
        if cycle is not None:
            try:
                await asyncio.to_thread(self.store.release, cycle)
            except Exception:
                log.warning("%s: releasing the session store failed", self.instance_name, exc_info=True)

    def _on_run_done(self, client: Any, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or client is not self._client or self._closing:
            if exc is not None:
                log.debug("%s: neonize run ended: %s", self.instance_name, exc)
            return
        log.warning("%s: neonize connection failed: %s", self.instance_name, exc)
        self._spawn(self._fail_run(Disconnected(reason=f"connection failed: {exc}")))

    async def _fail_run(self, event: Disconnected) -> None:
        await self._shutdown_client()
        await self._emit(event)

    # -- handlers (registered through `guard`)

    async def _on_qr(self, client: Any, data: bytes | str) -> None:
        if client is not self._client or self._closing:
            return
        code = data.decode() if isinstance(data, bytes) else data
        self._qr_count += 1
        ttl = self._qr_first_ttl if self._qr_count == 1 else self._qr_next_ttl
        self._arm_qr_timer(ttl + self._qr_grace)
        self._qr_seen.set()
        await self._emit(QrCode(code=code, expires_at=datetime.now(UTC) + timedelta(seconds=ttl)))

    async def _on_pair_status(self, client: Any, event: Any) -> None:
        if client is not self._client:
            return
        if _enum_name(event, "Status", "") == "SUCCESS":
            self._own_phone = digits(event.ID.User) or self._own_phone
            self._cancel_qr_timer()
        else:
            log.warning("%s: pairing failed: %s", self.instance_name, event.Error)

    async def _on_connected(self, client: Any, event: Any) -> None:
        if client is not self._client or self._closing:
            return
        self._cancel_qr_timer()
        self._connected = True
        phone = self._own_phone
        if not phone:
            try:
                phone = await asyncio.to_thread(self.store.phone)
            except DriverError as exc:
                log.warning("%s: reading the own number from the session store failed: %s", self.instance_name, exc)
        if not phone:
            log.warning("%s: connected but the store has no device JID", self.instance_name)
        self._own_phone = phone
        mapped = map_event(event, own_phone=phone or "")
        if mapped is not None:
            await self._emit(mapped)

    async def _on_event(self, client: Any, event: Any) -> None:
        if client is not self._client:
            return
        mapped = map_event(event, own_phone=self._own_phone or "")
        if mapped is None:
            return
        if isinstance(mapped, Disconnected):
            self._connected = False
        pb = _pb()
        # whatsmeow does not reconnect after these: end the client (freeing its thread) before
        # telling the sink, which may well call connect() again.
        if (
            isinstance(mapped, Banned)
            or (isinstance(mapped, Disconnected) and mapped.logged_out)
            or isinstance(event, (pb.StreamReplaced, pb.ClientOutdated))
        ):
            await self._shutdown_client()
        await self._emit(mapped)

    # -- QR deadline

    def _arm_qr_timer(self, delay: float) -> None:
        self._cancel_qr_timer()
        loop = asyncio.get_running_loop()
        self.qr_deadline = loop.time() + delay
        self._qr_timer = loop.call_later(delay, lambda: self._spawn(self._expire_qr()))

    def _cancel_qr_timer(self) -> None:
        if self._qr_timer is not None:
            self._qr_timer.cancel()
        self._qr_timer = None
        self.qr_deadline = None

    async def _expire_qr(self) -> None:
        self._qr_timer = None
        self.qr_deadline = None
        if self._closing or self._connected or self._client is None:
            return
        await self._shutdown_client()
        await self._emit(QrExpired())

    # -- plumbing

    async def _emit(self, event: DriverEvent) -> None:
        # neonize schedules one task per callback; the lock keeps the sink's view in order.
        async with self._emit_lock:
            await self._sink(event)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: neonize session task failed", self.instance_name, exc_info=task.exception())


class NeonizeDriver:
    """Hands out `NeonizeSession`s: one sqlite session store per instance under `sessions_dir`, or
    with `database_url` one schema per instance in that PostgreSQL database (module docstring)."""

    def __init__(
        self,
        sessions_dir: Path,
        max_sessions: int,
        *,
        database_url: str | None = None,
        proxy: str | None = None,
        **options: Any,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        # neonize's Go side adds a <bot biz_bot="1"/> node to every private message unless told not to.
        os.environ.setdefault("NEONIZE_BOT_TAG", "off")
        self.sessions_dir = sessions_dir
        self.max_sessions = max_sessions
        self.postgres = PostgresStores(database_url) if database_url is not None else None
        self._proxy = proxy
        self._options = options
        self._sessions: dict[str, NeonizeSession] = {}

    def store_path(self, instance_name: str) -> Path:
        if not _INSTANCE_NAME.fullmatch(instance_name):
            raise ValueError(f"instance name not usable as a file name: {instance_name!r}")
        return self.sessions_dir / f"{instance_name}.sqlite3"

    def store(self, instance_name: str) -> SessionStore:
        path = self.store_path(instance_name)  # validates the name for both kinds of store
        if self.postgres is not None:
            return self.postgres.store(instance_name)
        return SqliteStore(path)

    def session(self, instance_name: str, sink: EventSink) -> NeonizeSession:
        store = self.store(instance_name)
        if instance_name in self._sessions:
            raise DriverError(f"{instance_name} already has an open session; close it first")
        if len(self._sessions) >= self.max_sessions:
            # One executor thread per session: one more would starve every other session.
            raise TransientDriverError(f"this worker already hosts {self.max_sessions} sessions")
        if self.postgres is None:
            self.sessions_dir.mkdir(parents=True, exist_ok=True)
        session = NeonizeSession(instance_name, store, sink, proxy=self._proxy, on_close=self._forget, **self._options)
        self._sessions[instance_name] = session
        return session

    def remove_store(self, instance_name: str) -> None:
        """Delete the instance's store; with PostgreSQL blocks for a query or two (DROP SCHEMA)."""
        if instance_name in self._sessions:
            raise DriverError(f"{instance_name} still has an open session; close it before removing its store")
        self.store(instance_name).remove()

    def close(self) -> None:
        """Close the worker's own PostgreSQL connection, if any."""
        if self.postgres is not None:
            self.postgres.close()

    def install_executor(self, loop: asyncio.AbstractEventLoop) -> concurrent.futures.ThreadPoolExecutor:
        return install_executor(loop, self.max_sessions)

    def _forget(self, session: NeonizeSession) -> None:
        if self._sessions.get(session.instance_name) is session:
            del self._sessions[session.instance_name]
