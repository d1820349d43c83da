"""The domain's services, built once per process from the settings and shared by the API and the
worker (`Services.open` is the startup, `close` the shutdown), and the steps that span several of
them, such as deleting an instance."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from arq.connections import ArqRedis

from config import Settings
from core.conversations import ConversationStore, RedisConversations
from core.crypto import SecretBox
from core.errors import Unavailable, WhatsAppError
from core.instances import Instance, Instances
from core.jobs import arq_pool
from core.media_store import MediaLibrary, MediaLinks, open_media_store
from core.redis_client import Redis, connect
from core.suppressions import Suppressions
from core.tenants import Tenants
from scheduler.commands import Commands
from scheduler.contacts import Contacts
from scheduler.event_data import InstanceDisconnectedData
from scheduler.instance_commands import Delete
from scheduler.lanes import Lanes
from scheduler.messages import Messages, MessageUpdate
from scheduler.numbers import NumberCache
from scheduler.ownership import Ownership
from webhooks.outbox import Limits, Outbox

log = structlog.get_logger(__name__)

CANCELLED_BY_DELETE = MessageUpdate(
    status="cancelled", error="cancelled: the instance was deleted", error_code="cancelled_by_flush"
)
INFLIGHT_AT_DELETE = "the instance was deleted while this message was being sent; it may have been delivered"


@dataclass
class Services:
    settings: Settings
    redis: Redis  # plain commands and scripts
    arq: ArqRedis  # jobs: instance commands and webhook deliveries
    box: SecretBox
    tenants: Tenants
    instances: Instances
    ownership: Ownership
    commands: Commands
    lanes: Lanes
    messages: Messages
    outbox: Outbox
    suppressions: Suppressions
    contacts: Contacts
    media: MediaLibrary
    numbers: NumberCache
    conversations: ConversationStore

    @classmethod
    def open(cls, settings: Settings) -> Services:
        assert settings.redis_url is not None and settings.secret_key is not None
        redis, arq = connect(settings.redis_url), arq_pool(settings)
        box = SecretBox(settings.secret_key.get_secret_value())
        ownership = Ownership(redis, int(settings.lease_timeout * 1000))
        outbox, suppressions = Outbox(redis, Limits.of(settings)), Suppressions(redis)
        numbers = NumberCache(redis, settings.number_check_ttl, settings.number_check_miss_ttl)
        return cls(
            settings=settings,
            redis=redis,
            arq=arq,
            box=box,
            tenants=Tenants(redis),
            instances=Instances(redis, box),
            ownership=ownership,
            commands=Commands(ownership, arq),
            lanes=Lanes.from_settings(redis, settings),
            messages=Messages(redis, settings.message_retention),
            outbox=outbox,
            suppressions=suppressions,
            contacts=Contacts(redis, suppressions, outbox, settings.opt_out_keywords, numbers),
            media=MediaLibrary(
                redis,
                open_media_store(settings.media_store, settings.data_dir, settings.s3_endpoint_url),
                MediaLinks(settings.secret_key.get_secret_value(), settings.base_url),
                settings.media_retention,
            ),
            numbers=numbers,
            conversations=conversation_store(settings, redis),
        )

    async def close(self) -> None:
        await self.media.store.close()
        await self.conversations.close()
        await self.arq.aclose(close_connection_pool=True)
        await self.redis.aclose()

    async def delete_instance(self, instance: Instance) -> None:
        """Refuse sends at once (waiting messages end `cancelled`, one in flight `failed`), log the
        session out on its worker, then drop every record of the instance in one transaction."""
        name = instance.name
        if instance.state == "open":
            # Published before the records go: on GET /events always; to the webhook if the
            # deliverer reaches it before the outbox is dropped with the instance.
            gone = InstanceDisconnectedData(reason="deleted", detail="the instance was deleted", logged_out=True)
            await self.outbox.publish(name, "instance.disconnected", gone)
        await self.lanes.retire(name, CANCELLED_BY_DELETE.hash_fields(), INFLIGHT_AT_DELETE)
        if instance.owner is not None:
            try:
                await self.commands.call(name, Delete())
            except (Unavailable, WhatsAppError) as exc:
                # The records go anyway: a half-deleted instance could not be deleted again.
                log.warning("instance.logout_failed", instance=name, error=exc.message)
        await self.media.forget_instance(name)
        await self.conversations.forget_instance(name)
        deliveries = await self.outbox.delivery_ids(name)
        async with self.redis.pipeline(transaction=True) as pipe:
            self.instances.forget(pipe, instance)
            self.lanes.forget(pipe, name)
            self.outbox.forget(pipe, name, deliveries)
            await pipe.execute()


def conversation_store(settings: Settings, redis: Redis) -> ConversationStore:
    """PostgreSQL when `GATEWAY_DATABASE_URL` is set (it needs the `postgres` extra), else Redis."""
    if settings.database_url is None:
        return RedisConversations(redis, settings.conversation_retention, settings.conversation_max_per_chat)
    try:
        from core.conversations_pg import PgConversations  # psycopg is an optional dependency
    except ImportError as exc:
        raise RuntimeError(
            "GATEWAY_DATABASE_URL is set, which needs psycopg and psycopg_pool: pip install 'wa-gateway[postgres]'"
        ) from exc
    return PgConversations(settings.database_url, settings.conversation_retention, settings.database_schema)
