"""Conversation store figures, on Redis (an embedded one of its own) and on PostgreSQL (when one
answers at WA_GATEWAY_TEST_POSTGRES_URL, default 127.0.0.1:5432 database `test`; a schema of its
own, dropped after):

- reading a page of 50 from a chat of 100,000 messages: the first page, and pages at random
  depths (a cursor anywhere in the chat), p50 / p99 (goal <= 5 ms on each store);
- the write cost per message on the send path (`ConversationLog.sent`, what the pump adds after
  recording a send) and on the inbound path (`ConversationLog.received`, after the webhook event
  is published), one message at a time as those paths write.

`python -m benchmarks.conversations --messages 100000 --reads 500 --writes 2000`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from benchmarks.__main__ import percentile
from config import load_settings
from core.clock import iso_from_ms, now_ms
from core.conversations import ChatMessage, ConversationStore, Entry, RedisConversations, encode_cursor, order_key
from core.conversations_pg import PAGE_OF_MESSAGES, PgConversations
from core.logs import configure_logging
from core.redis_client import connect
from core.redis_server import EmbeddedRedis
from scheduler.conversation_log import ConversationLog
from scheduler.drivers.base import MessageReceived
from scheduler.messages import Message, MessageUpdate

NAME = "bench__conv__store"
CHAT = "5491112345678"
FILL_BATCH = 1000
PG_URL = os.environ.get("WA_GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def text_entry(n: int, at_ms: int) -> Entry:
    direction = "out" if n % 3 == 0 else "in"
    stored = ChatMessage.model_validate(
        {
            "messageId": f"3EB0{n:012d}",
            "direction": direction,
            "from": None if direction == "out" else CHAT,
            "type": "conversation",
            "text": f"message number {n}, of a typical length for a chat line",
            "status": "sent" if direction == "out" else "received",
            "timestamp": iso_from_ms(at_ms),
        }
    )
    return Entry(CHAT, False, stored, at_ms, unread="keep")


async def fill(store: ConversationStore, messages: int) -> tuple[float, list[int]]:
    """`messages` in one chat, a second apart, ending a minute ago; returns the seconds it took
    and each message's time."""
    start = now_ms() - 60_000 - messages * 1000
    times = [start + n * 1000 for n in range(messages)]
    began = time.perf_counter()
    for first in range(0, messages, FILL_BATCH):
        await store.add(NAME, [text_entry(n, times[n]) for n in range(first, min(first + FILL_BATCH, messages))])
    return time.perf_counter() - began, times


async def timed(calls: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    spent = []
    for n in range(calls):
        began = time.perf_counter()
        await call(n)
        spent.append((time.perf_counter() - began) * 1000)
    return spent


def summary(label: str, spent: list[float], unit: str = "ms") -> str:
    scale = 1000 if unit == "us" else 1
    p50, p99 = percentile(spent, 0.5) * scale, percentile(spent, 0.99) * scale
    return f"  {label:<44} p50 {p50:8.2f} {unit}   p99 {p99:8.2f} {unit}"


def sent_message(n: int) -> Message:
    message = Message.new(f"msg_bench{n:08d}", NAME, "normal", "5491187654321", "text", text="hello there")
    update = MessageUpdate(status="sent", sent_at=iso_from_ms(now_ms()), wa_message_id=f"3EBSENT{n:010d}")
    return update.applied_to(message)


def received_event(n: int) -> tuple[MessageReceived, dict[str, Any]]:
    sender = f"54911{n % 500:08d}"
    event = MessageReceived(
        message_id=f"3AIN{n:012d}",
        sender=sender,
        push_name="Contact",
        timestamp=datetime.now(UTC),
        message_type="conversation",
        text="hi, is this still available?",
    )
    data = {
        "from": sender,
        "fromLid": None,
        "chatId": sender,
        "messageId": event.message_id,
        "messageType": "conversation",
        "text": event.text,
        "caption": None,
        "media": None,
        "quotedMessageId": None,
        "timestamp": iso_from_ms(now_ms()),
    }
    return event, data


class Probe(Protocol):
    """What the server itself spends, apart from the client and the machine's other load."""

    async def settle(self) -> None: ...

    async def start(self) -> None: ...

    async def page_ms(self, cursor_key: str) -> float:
        """Server time of one page (a deep one, at `cursor_key`), in ms."""
        ...


class RedisProbe:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.before = (0, 0)

    async def settle(self) -> None:
        """Redis has no statistics to gather after a bulk load."""

    async def _scripts(self) -> tuple[int, int]:
        stats = (await self.redis.info("commandstats")).get("cmdstat_evalsha", {})
        return int(stats.get("calls", 0)), int(stats.get("usec", 0))

    async def start(self) -> None:
        self.before = await self._scripts()

    async def page_ms(self, cursor_key: str) -> float:
        # The reads since `start` are the only scripts run meanwhile: their average server time.
        calls, usec = await self._scripts()
        return (usec - self.before[1]) / max(1, calls - self.before[0]) / 1000


class PgProbe:
    def __init__(self, schema: str) -> None:
        self.schema = schema

    async def settle(self) -> None:
        # What autovacuum does after a bulk load, done now so that it does not run during the reads.
        async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
            await conn.execute(f"VACUUM ANALYZE {self.schema}.messages, {self.schema}.chats")

    async def start(self) -> None:
        """Nothing to note: each page is explained on its own."""

    async def page_ms(self, cursor_key: str) -> float:
        query = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + sql.SQL(PAGE_OF_MESSAGES).format(
            schema=sql.Identifier(self.schema)
        )
        params = {"instance": NAME, "chat": CHAT, "before": cursor_key, "limit": 51}
        async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
            times = []
            for _ in range(21):
                plan = await (await conn.execute(query, params)).fetchone()
                times.append(plan[0][0]["Execution Time"] if plan else 0.0)
        return percentile(times, 0.5)


async def measure(label: str, store: ConversationStore, messages: int, reads: int, writes: int, probe: Probe) -> None:
    print(f"{label}:")
    seconds, times = await fill(store, messages)
    print(f"  filled one chat with {messages:,} messages in {seconds:.1f} s ({messages / seconds:,.0f} messages/s)")
    await probe.settle()
    page = await store.messages(NAME, CHAT, 50, None)
    assert len(page.items) == 50 and page.next is not None
    depth = random.Random(7)
    places = [depth.randrange(50, messages) for _ in range(reads)]
    cursors = [encode_cursor(order_key(times[n], f"3EB0{n:012d}")) for n in places]
    # The newest page and a page at a random depth, in turns, so that whatever else the machine
    # does weighs on both alike.
    await probe.start()
    spent = await timed(2 * reads, lambda n: store.messages(NAME, CHAT, 50, cursors[n // 2] if n % 2 else None))
    server = await probe.page_ms(order_key(times[places[0]], f"3EB0{places[0]:012d}"))
    print(summary("newest page of 50", spent[0::2]) + "   (goal p50 <= 5 ms)")
    print(summary("page of 50 at a random depth (cursor)", spent[1::2]) + "   (goal p50 <= 5 ms)")
    print(f"  {'of which the server itself spends':<44} {server:8.2f} ms a page")
    print(summary("page of 50 chats", await timed(min(reads, 100), lambda _: store.chats(NAME, 50, None))))
    log = ConversationLog(store)
    sends = [sent_message(n) for n in range(writes)]
    print(summary("send path: store one sent message", await timed(writes, lambda n: log.sent(NAME, sends[n])), "us"))
    inbound = [received_event(n) for n in range(writes)]
    spent = await timed(writes, lambda n: log.received(NAME, *inbound[n]))
    print(summary("inbound path: store one received message", spent, "us"))
    await store.forget_instance(NAME)


async def postgres_absent() -> str | None:
    try:
        conn = await psycopg.AsyncConnection.connect(PG_URL, connect_timeout=3)
    except psycopg.OperationalError as exc:
        return str(exc).strip()
    await conn.close()
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000, help="messages in the chat that is read")
    parser.add_argument("--reads", type=int, default=500, help="pages read per figure")
    parser.add_argument("--writes", type=int, default=2000, help="messages written per path")
    args = parser.parse_args()
    configure_logging(load_settings({}, log_level="warning"))
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        await server.start()
        redis = connect(server.url)
        try:
            store = RedisConversations(redis, retention_days=30, max_per_chat=args.messages + args.writes)
            await measure("Redis (embedded)", store, args.messages, args.reads, args.writes, RedisProbe(redis))
        finally:
            await redis.aclose()
            await server.stop()
    if (why := await postgres_absent()) is not None:
        print(f"PostgreSQL: skipped, none reachable at {PG_URL}: {why}")
        return
    schema = f"bench_conv_{uuid.uuid4().hex[:8]}"
    pg = PgConversations(PG_URL, retention_days=30, schema=schema)
    try:
        await measure("PostgreSQL", pg, args.messages, args.reads, args.writes, PgProbe(schema))
    finally:
        await pg.drop_schema()
        await pg.close()


if __name__ == "__main__":
    asyncio.run(main())
