"""The session stores: where each instance's whatsmeow session lives.

One sqlite file per instance under the sessions directory by default (`SqliteStore`).

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

import contextlib
import hashlib
import importlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scheduler.drivers.base import DriverError, TransientDriverError
from scheduler.drivers.neonize.mapping import digits

log = logging.getLogger(__name__)

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


def private_dir(path: Path) -> None:
    """Create `path` if need be, readable by this user only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


class SqliteStore:
    """One sqlite file per instance under the sessions directory (the default)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def client_name(self, cycle: str) -> str:
        return str(self.path)

    def prepare(self) -> None:
        # The linked device's keys: for this user only (stores made before this rule included).
        private_dir(self.path.parent)
        for path in (self.path, *(self.path.with_name(self.path.name + tail) for tail in ("-wal", "-shm", "-journal"))):
            with contextlib.suppress(FileNotFoundError):
                path.chmod(0o600)

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
