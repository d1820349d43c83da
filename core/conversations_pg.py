"""The conversation store in PostgreSQL (`GATEWAY_DATABASE_URL`): two tables, `chats` and
`messages`, in a schema of their own (`GATEWAY_DATABASE_SCHEMA`, default `wa_gateway`), versioned by the SQL files of
core/sql (`conversations_NNN.sql`), applied in order at start under an advisory lock, each once.

The driver is psycopg 3 (async, with psycopg_pool), not asyncpg: it is already the gateway's
PostgreSQL driver (the neonize session stores), so one driver to know and install; it composes
the schema name safely (`psycopg.sql.Identifier`); it prepares statements repeated on a connection
and batches `executemany` in pipeline mode, which is what a history import needs. asyncpg is
faster on raw decoding, which a page of 50 rows does not need (see `python -m benchmarks.conversations`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from core.clock import now_ms
from core.conversations import (
    DAY_MS,
    Change,
    Entry,
    Page,
    apply_change,
    chat_out,
    decode_cursor,
    encode_cursor,
    key_ms,
    order_key,
)

# Retention is applied by deleting what has aged out, at most this often and this much at a time
# (from the write path: no timer of its own).
PRUNE_EVERY_SECONDS = 60.0
PRUNE_BATCH = 5000
# Above every order key (they start with digits): the bound of a first page.
_NEWEST = "~"
_MIGRATION_LOCK = 0x7761_636F_6E76  # "waconv": one migrator at a time per database


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("core") / "sql"
    found = []
    for item in folder.iterdir():
        if item.name.startswith("conversations_") and item.name.endswith(".sql"):
            found.append((int(item.name.removeprefix("conversations_").removesuffix(".sql")), item.read_text()))
    return sorted(found)


class PgConversations:
    """The PostgreSQL backend of `core.conversations.ConversationStore`."""

    def __init__(self, url: str, retention_days: int, schema: str, pool_size: int = 4) -> None:
        self.retention_ms = retention_days * DAY_MS
        self.schema = schema
        # The store is a record of what was already delivered (the webhooks, the sends): losing
        # its last few writes to a server crash is acceptable, waiting for a disk flush on every
        # message is not (it multiplies the write cost; PostgreSQL stays consistent either way).
        options = {"autocommit": True, "options": "-c synchronous_commit=off"}
        self._pool = AsyncConnectionPool(url, min_size=1, max_size=pool_size, open=False, kwargs=options)
        self._opened = False
        self._opening = asyncio.Lock()
        self._pruned_at = 0.0
        s = sql.Identifier(schema)
        self._sql = {
            name: sql.SQL(text).format(schema=s)
            for name, text in {
                "add": _ADD,
                "get": "SELECT record FROM {schema}.messages WHERE instance = %s AND chat_id = %s AND message_id = %s"
                " FOR UPDATE",
                "put": "UPDATE {schema}.messages SET record = %s"
                " WHERE instance = %s AND chat_id = %s AND message_id = %s",
                "messages": PAGE_OF_MESSAGES,
                "chats": _CHATS,
                "forget_messages": "DELETE FROM {schema}.messages WHERE instance = %s",
                "forget_chats": "DELETE FROM {schema}.chats WHERE instance = %s",
                "prune_messages": "DELETE FROM {schema}.messages WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM {schema}.messages WHERE at < %s LIMIT %s))",
                "prune_chats": "DELETE FROM {schema}.chats WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM {schema}.chats WHERE last_key < %s LIMIT %s))",
            }.items()
        }

    async def open(self) -> None:
        """Connect and bring the schema to the newest version; idempotent."""
        if self._opened:
            return
        async with self._opening:
            if self._opened:
                return
            await self._pool.open(wait=True)
            async with self._pool.connection() as conn:
                await self._migrate(conn)
            self._opened = True

    async def _migrate(self, conn: AsyncConnection[Any]) -> None:
        s = sql.Identifier(self.schema)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
            await conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.schema_version (version integer)").format(s))
            cursor = await conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(s))
            row = await cursor.fetchone()
            current = row[0] if row else 0
            for version, text in _migrations():
                if version > current:
                    await conn.execute(sql.SQL(text).format(schema=s))
                    await conn.execute(sql.SQL("INSERT INTO {}.schema_version VALUES (%s)").format(s), [version])

    async def add(self, name: str, entries: Sequence[Entry]) -> int:
        await self.open()
        cutoff = now_ms() - self.retention_ms
        rows = [_row(name, entry) for entry in entries if entry.at_ms >= cutoff]
        if not rows:
            return 0
        added = 0
        async with self._pool.connection() as conn, conn.cursor() as cur:
            if len(rows) == 1:  # the live paths: one statement, atomic on its own
                await cur.execute(self._sql["add"], rows[0])
                added = len(await cur.fetchall())
            else:
                async with conn.transaction():
                    # Pipeline mode: the batch goes out at once, each statement's answer read after.
                    await cur.executemany(self._sql["add"], rows, returning=True)
                    while True:
                        added += len(await cur.fetchall())
                        if not cur.nextset():
                            break
        await self._prune(cutoff)
        return added

    async def update(self, name: str, chat_id: str, message_id: str, change: Change) -> bool:
        await self.open()
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(self._sql["get"], [name, chat_id, message_id])
            row = await cursor.fetchone()
            if row is None:
                return False
            await conn.execute(self._sql["put"], [Jsonb(apply_change(row[0], change)), name, chat_id, message_id])
            return True

    async def chats(self, name: str, limit: int, cursor: str | None) -> Page:
        before = decode_cursor(cursor) or _NEWEST
        await self.open()
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(self._sql["chats"], {"instance": name, "before": before, "limit": limit + 1})
            rows = await cur.fetchall()
        items = [chat_out(r["chat_id"], r["name"], r["is_group"], r["unread"], r["record"]) for r in rows[:limit]]
        return Page(items, encode_cursor(rows[limit - 1]["recent_key"]) if len(rows) > limit else None)

    async def messages(self, name: str, chat_id: str, limit: int, cursor: str | None) -> Page:
        before = decode_cursor(cursor) or _NEWEST
        await self.open()
        async with self._pool.connection() as conn:
            answer = await conn.execute(
                self._sql["messages"], {"instance": name, "chat": chat_id, "before": before, "limit": limit + 1}
            )
            rows = await answer.fetchall()
        items = [record for _, record in rows[:limit]]
        return Page(items, encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None)

    async def forget_instance(self, name: str) -> None:
        await self.open()
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(self._sql["forget_messages"], [name])
            await conn.execute(self._sql["forget_chats"], [name])

    async def close(self) -> None:
        await self._pool.close()

    async def drop_schema(self) -> None:
        """Remove the store's schema and everything in it (tests and benchmarks use their own)."""
        await self.open()
        async with self._pool.connection() as conn:
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    async def _prune(self, cutoff_ms: int) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        async with self._pool.connection() as conn:
            cutoff = datetime.fromtimestamp(cutoff_ms / 1000, UTC)
            await conn.execute(self._sql["prune_messages"], [cutoff, PRUNE_BATCH])
            await conn.execute(self._sql["prune_chats"], [order_key(cutoff_ms, ""), PRUNE_BATCH])


def _row(name: str, entry: Entry) -> dict[str, Any]:
    return {
        "instance": name,
        "chat": entry.chat_id,
        "message_id": entry.message.message_id,
        "key": entry.key,
        "at": datetime.fromtimestamp(key_ms(entry.key) / 1000, UTC),
        "record": json.dumps(entry.message.model_dump(mode="json", by_alias=True)),
        "chat_name": entry.chat_name,
        "is_group": entry.is_group,
        "unread": entry.unread,
    }


# One message and its chat in one statement: the chat moves only when the message was new.
_ADD = """
WITH added AS (
    INSERT INTO {schema}.messages (instance, chat_id, message_id, order_key, at, record)
    VALUES (%(instance)s, %(chat)s, %(message_id)s, %(key)s, %(at)s, %(record)s::jsonb)
    ON CONFLICT DO NOTHING
    RETURNING order_key
), chat AS (
    INSERT INTO {schema}.chats AS c (instance, chat_id, name, is_group, last_key, unread)
    SELECT %(instance)s, %(chat)s, %(chat_name)s, %(is_group)s, order_key,
           CASE WHEN %(unread)s = 'in' THEN 1 ELSE 0 END
    FROM added
    ON CONFLICT (instance, chat_id) DO UPDATE SET
        name = coalesce(EXCLUDED.name, c.name),
        is_group = EXCLUDED.is_group,
        last_key = greatest(c.last_key, EXCLUDED.last_key),
        unread = CASE %(unread)s WHEN 'in' THEN c.unread + 1 WHEN 'out' THEN 0 ELSE c.unread END
)
SELECT order_key FROM added
"""
PAGE_OF_MESSAGES = """
SELECT order_key, record FROM {schema}.messages
WHERE instance = %(instance)s AND chat_id = %(chat)s
  AND order_key < %(before)s
ORDER BY order_key DESC
LIMIT %(limit)s
"""
_CHATS = """
SELECT c.chat_id, c.name, c.is_group, c.unread, c.recent_key, m.record
FROM {schema}.chats c
LEFT JOIN {schema}.messages m
  ON m.instance = c.instance AND m.chat_id = c.chat_id AND m.order_key = c.last_key
WHERE c.instance = %(instance)s
  AND c.recent_key < %(before)s
ORDER BY c.recent_key DESC
LIMIT %(limit)s
"""
