"""The worker's side of instances: it hosts the WhatsApp sessions it owns, carries out commands
from the API, and turns driver events into instance state and webhook events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from core import keys
from core.clock import iso, iso_from_ms, now_iso
from core.errors import GatewayError, InvalidState, NotFound, WhatsAppError, to_wire
from core.instances import InstanceUpdate
from scheduler.actions import Actions
from scheduler.commands import Commands
from scheduler.conversation_log import ConversationLog
from scheduler.drivers.base import (
    Banned,
    CallReceived,
    Connected,
    Disconnected,
    Driver,
    DriverError,
    DriverEvent,
    GroupParticipants,
    GroupUpdated,
    HistorySynced,
    Inbound,
    NotLinkedError,
    QrCode,
    QrExpired,
    Receipt,
    Session,
)
from scheduler.drivers.sandbox import SANDBOX_CONTROL, SandboxSession
from scheduler.history import HistoryImport
from scheduler.inbound import InboundEvents
from scheduler.lanes import Owner
from scheduler.per_number import PerNumber
from scheduler.services import Services

log = structlog.get_logger(__name__)

QR_WAIT_SECONDS = 20.0


class SessionHost:
    def __init__(self, worker_id: str, services: Services, driver: Driver) -> None:
        self.worker_id = worker_id
        self.driver = driver
        self.redis = services.redis
        self.instances = services.instances
        self.outbox = services.outbox
        self.lanes = services.lanes
        self.messages = services.messages
        self.ownership = services.ownership
        self.contacts = services.contacts
        self.after_ban_seconds = services.settings.throttle.after_ban
        self.conversations = ConversationLog(services.conversations)
        self.adopt_concurrency = services.settings.adopt_concurrency
        self.inbound = InboundEvents(
            services.redis,
            services.outbox,
            services.media,
            services.settings.media_max_bytes,
            services.contacts,
            self.conversations,
        )
        self.history = HistoryImport(services.conversations, services.outbox, services.instances)
        self.sessions: dict[str, Session] = {}
        self.connected: set[str] = set()
        self.epochs: dict[str, int] = {}
        self._after_ban: dict[str, asyncio.Task[None]] = {}
        self._linking: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Instances whose instance.connected is out for the current connection: their inbound
        # events go straight to webhooks; the others' wait in `_held`, in arrival order.
        self.announced: set[str] = set()
        self._held: dict[str, list[Inbound]] = {}
        actions = Actions(self, services.numbers, services.settings.action_timeout)
        self.per_number = PerNumber(
            services.instances, services.outbox, services.lanes, services.settings.action_timeout
        )
        self._commands: dict[str, Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "adopt": self._adopt_command,
            "delete": self._delete_command,
            "connect": self._connect_command,
            "qr": self._qr_command,
            "pair": self._pair_command,
            "settings": self._settings_command,
            **actions.commands(),  # conversation actions: contacts, read, presence, groups
        }

    def session(self, name: str) -> Session:
        if name not in self.sessions:

            async def sink(event: DriverEvent) -> None:
                await self.on_event(name, event)

            self.sessions[name] = self.driver.session(name, sink)
        return self.sessions[name]

    def connected_session(self, name: str) -> Session | None:
        return self.sessions.get(name) if name in self.connected else None

    async def epoch(self, name: str) -> int | None:
        if name not in self.epochs:
            owner, epoch = await self.redis.hmget(keys.instance(name), ["owner", "epoch"])  # type: ignore[misc]
            if owner != self.worker_id or epoch is None:
                return None
            self.epochs[name] = int(epoch)  # learnt on first use: it fences every change after
        return self.epochs[name]

    async def still_owns(self, name: str, owner: Owner) -> bool:
        current = await self.redis.hmget(keys.instance(name), ["owner", "epoch"])  # type: ignore[misc]
        return current == [owner[0], str(owner[1])]

    async def adopt(self) -> None:
        """At start: take over every instance without a live owner, and our own from a previous run,
        `adopt_concurrency` at a time: each waits on Redis and on its session host's start, not on
        the others (500 one after the other took ~25 s of start-up)."""
        gate = asyncio.Semaphore(self.adopt_concurrency)

        async def adopt(name: str) -> None:
            async with gate:
                owner = await self.redis.hget(keys.instance(name), "owner")  # type: ignore[misc]
                if owner == self.worker_id or not owner or not await self.ownership.is_alive(owner):
                    await self.adopt_one(name, owner)

        names = await self.instances.names()
        results = await asyncio.gather(*(adopt(name) for name in names), return_exceptions=True)
        failed = [(name, error) for name, error in zip(names, results, strict=True) if error is not None]
        for name, error in failed:
            log.error("instance.adopt_failed", instance=name, error=f"{type(error).__name__}: {error}")
        if failed:
            raise failed[0][1]  # as before: a worker that cannot adopt does not start half-way

    async def adopt_orphans(self, capacity: int) -> int:
        """Take a fair share of the instances of workers whose lease ran out; returns how many."""
        adopted = 0
        live = max(1, len(await self.ownership.live_workers()))
        for dead in await self.ownership.dead_workers():
            orphans = await self.ownership.owned_by(dead)
            share = -(-len(orphans) // live)  # ceil: the live workers split them, racing on each claim
            for name in orphans[:share]:
                if len(self.sessions) >= capacity:
                    return adopted
                adopted += await self.adopt_one(name, dead)
            if not await self.ownership.owned_by(dead):
                await self.ownership.forget_worker(dead)
        return adopted

    async def adopt_one(self, name: str, expected_owner: str | None) -> bool:
        epoch = await self.ownership.claim(name, self.worker_id, expected_owner)
        if epoch is None:
            return False  # another worker adopted it first, or it was deleted
        self.epochs[name] = epoch
        log.info("instance.adopted", instance=name, previous_owner=expected_owner, epoch=epoch)
        await self.take_over(name)
        return True

    async def take_over(self, name: str) -> None:
        """Start hosting an instance we now own: take back the message a dead owner had in flight
        and reconnect a linked session from the shared store."""
        requeued = await self.lanes.kick(name, reset=True)
        if requeued:
            log.warning("message.requeued_after_crash", instance=name, message_id=requeued)
        try:
            session = self.session(name)
            # A store read (sqlite, or PostgreSQL): off the event loop.
            if await asyncio.to_thread(lambda: session.linked):
                await self.instances.update(name, state="connecting")
                await self._connect(name, session)
                return
        except DriverError as exc:  # one unusable session store must not stop the others
            log.error("session.reconnect_failed", instance=name, error=str(exc))
        await self.instances.update(name, state="close", qr=None, qrExpiresAt=None)

    async def _adopted(self, name: str) -> None:
        """Take over an instance handed to us, once per epoch: a command that comes late (queued
        before a restart in which we adopted the instance ourselves, or for an instance that moved
        on since) changes nothing, so no session connects twice and no send is taken back."""
        owner, epoch = await self.redis.hmget(keys.instance(name), ["owner", "epoch"])  # type: ignore[misc]
        if owner != self.worker_id or epoch is None or self.epochs.get(name) == int(epoch):
            log.info("instance.adopt_skipped", instance=name, owner=owner, epoch=epoch)
            return
        self.epochs[name] = int(epoch)
        await self.take_over(name)

    async def drop_lost(self) -> list[str]:
        """Close the sessions of instances another worker owns now (we were fenced off)."""
        names = list(self.sessions)
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(keys.instance(name), "owner")
            owners = await pipe.execute()
        lost = [name for name, owner in zip(names, owners, strict=True) if owner != self.worker_id]
        for name in lost:
            log.warning("instance.lost", instance=name, owner=owners[names.index(name)])
            await self.forget(name)
        return lost

    async def forget(self, name: str) -> None:
        if (waiting := self._after_ban.pop(name, None)) is not None:
            waiting.cancel()
        session = self.sessions.pop(name, None)
        self.connected.discard(name)
        self.announced.discard(name)
        self.epochs.pop(name, None)
        try:
            await self._release_held(name)  # late rather than lost
        except Exception:
            log.exception("inbound.held_lost", instance=name, count=len(self._held.pop(name, [])))
        if session is not None:
            try:
                await session.close()
            except Exception:
                log.exception("session.close_failed", instance=name)

    async def hand_over(self, commands: Commands) -> None:
        """Graceful shutdown: close our sessions, then give each instance to another live worker at
        once rather than after the lease timeout."""
        await self.close()
        for name in await self.ownership.owned_by(self.worker_id):
            target = await self.ownership.least_loaded(exclude=self.worker_id)
            if target is None:
                return  # nobody to hand to: whoever starts next adopts them
            if await self.ownership.claim(name, target, self.worker_id) is not None:
                await commands.enqueue(target, name, "adopt")
                log.info("instance.handed_over", instance=name, to=target)

    async def close(self) -> None:
        # All at once: each session's host gets its own grace to say goodbye, not the sum of them.
        await asyncio.gather(*(self.forget(name) for name in list(self.sessions)))

    # Commands from the API.

    async def command(self, name: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        structlog.contextvars.bind_contextvars(instance=name, op=op)
        try:
            return {"ok": await self._command(name, op, args)}
        except GatewayError as exc:
            return {"error": to_wire(exc)}
        except NotLinkedError as exc:
            return {"error": to_wire(InvalidState(str(exc)))}
        except DriverError as exc:
            return {"error": to_wire(WhatsAppError(str(exc) or type(exc).__name__))}
        except Exception:  # the API waits for an answer: give it one it can show, not a lost job
            log.exception("command.failed")
            return {"error": to_wire(WhatsAppError(f"the worker could not carry out {op!r}; its log says why"))}
        finally:
            structlog.contextvars.unbind_contextvars("instance", "op")

    async def _command(self, name: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        if op.startswith(SANDBOX_CONTROL):
            session = self.session(name)
            if not isinstance(session, SandboxSession):
                raise NotFound(f"unknown command {op!r}: the sandbox driver is not in use")
            return await session.control(op.removeprefix(SANDBOX_CONTROL), args)
        command = self._commands.get(op)
        if command is None:
            raise NotFound(f"unknown command {op!r}")
        return await command(name, args)

    async def _adopt_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        await self._adopted(name)  # handed to us by a leaving worker or by the API
        return {}

    async def _delete_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        await self._delete(name)
        return {}

    async def _connect_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        await self.instances.get(name)
        await self._connect(name, self.session(name))
        return {}

    async def _settings_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """The settings changed (PATCH): what the session must be told, it is told now."""
        if (session := self.sessions.get(name)) is not None:
            await self.per_number.apply(name, session, name in self.connected)
        return {}

    async def _connect(self, name: str, session: Session) -> None:
        await self.per_number.connecting(name, session)
        await session.connect()

    async def _qr_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await self._linking_started(name, self.session(name))

    async def _pair_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        session = self.session(name)
        await self._linking_started(name, session)
        return {"pairingCode": await session.pair_phone(args["phoneNumber"])}

    async def _linking_started(self, name: str, session: Session) -> dict[str, Any]:
        """Start a QR cycle if none runs and wait for its first code."""
        if (until := await self._ban_in_force(name)) is not None:
            raise InvalidState(f"WhatsApp banned this number {until}; ask for a QR code once the ban is over")
        # Wait before reading: a code stored after the read but before the wait would resolve
        # nobody and leave this call waiting for the next one. A waiter left unused is harmless.
        waiter = self._linking.setdefault(name, asyncio.get_running_loop().create_future())
        instance = await self.instances.get(name)
        if instance.state == "open":
            raise InvalidState("instance is already open; it needs no QR code")
        if instance.state == "connecting" and instance.qr:
            return {"code": instance.qr, "expiresAt": instance.qr_expires_at}
        await self._connect(name, session)
        try:
            result = await asyncio.wait_for(asyncio.shield(waiter), QR_WAIT_SECONDS)
        except TimeoutError:
            raise WhatsAppError(f"WhatsApp sent no QR code within {QR_WAIT_SECONDS:g} s") from None
        if result.get("state") == "open":
            raise InvalidState("instance is linked and reconnected; it needs no QR code")
        if "failed" in result:
            raise WhatsAppError(f"could not reach WhatsApp to get a QR code: {result['failed']}")
        return result

    async def _ban_in_force(self, name: str) -> str | None:
        """How long the number stays banned ("until <time>" or "for good"), None when it is not."""
        until = await self.redis.hget(keys.instance(name), "bannedUntil")  # type: ignore[misc]
        if not until:
            return None
        if until == "permanent":
            return "for good"
        return f"until {until}" if datetime.fromisoformat(until) > datetime.now(UTC) else None

    def _resolve_linking(self, name: str, result: dict[str, Any]) -> None:
        waiter = self._linking.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    async def _delete(self, name: str) -> None:
        session = self.session(name)
        del self.sessions[name]
        self.connected.discard(name)
        self.epochs.pop(name, None)
        try:
            await session.logout()
        except Exception:  # logging out of an unlinked or offline session: the store goes anyway
            log.warning("session.logout_failed", instance=name, exc_info=True)
        await session.close()
        self.driver.remove_store(name)
        await self.ownership.release(name, self.worker_id)

    # Events from the driver.

    async def on_event(self, name: str, event: DriverEvent) -> None:
        try:
            await self._apply(name, event)
        except Exception:  # neonize drops exceptions raised in its callbacks: never lose one silently
            log.exception("session.event_failed", instance=name, event=type(event).__name__)

    async def _apply(self, name: str, event: DriverEvent) -> None:
        instance = await self.instances.find(name)
        if instance is None:
            return  # deleted meanwhile
        if (counted := connection_event(event)) is not None:
            await self.instances.count_connection_event(counted)
        # instance.disconnected says an open instance stopped being open, once per outage: the
        # reconnect attempts of an instance that is closed already say nothing.
        was_open = instance.state == "open"
        match event:
            case QrCode(code=code, expires_at=expires_at):
                await self.instances.update(name, state="connecting", qr=code, qrExpiresAt=iso(expires_at))
                self._resolve_linking(name, {"code": code, "expiresAt": iso(expires_at)})
            case Connected(phone_number=phone):
                await self.instances.update(
                    name, state="open", phoneNumber=phone, connectedAt=now_iso(), linked="1", qr=None, qrExpiresAt=None
                )
                await self.instances.linked(name, phone)
                self.connected.add(name)
                self._resolve_linking(name, {"state": "open"})
                await self.outbox.publish(name, "instance.connected", {"phoneNumber": phone})
                await self._release_held(name)  # what arrived meanwhile follows it
                self.announced.add(name)
                await self.lanes.kick(name)  # messages waiting for the instance to open go now
                await self.per_number.connected(name, self.sessions.get(name))
            case Disconnected(reason=reason, logged_out=logged_out):
                self.connected.discard(name)
                self.per_number.disconnected(name)
                self.announced.discard(name)
                self._resolve_linking(name, {"failed": reason})  # a QR asked for will not come now
                fields: InstanceUpdate = {"state": "close", "qr": None, "qrExpiresAt": None}
                if logged_out:
                    fields.update({"linked": "0", "phoneNumber": None, "connectedAt": None})
                await self.instances.update(name, **fields)
                if was_open:
                    why = "logged_out" if logged_out else "connection_lost"
                    await self._disconnected(name, why, reason, logged_out)
            case QrExpired():
                await self.instances.update(name, state="close", qr=None, qrExpiresAt=None)
                await self.outbox.publish(name, "instance.qr_expired", {})
            case Banned(reason=reason, expires_at=expires_at):
                self.connected.discard(name)
                self.announced.discard(name)
                if (pending := self._after_ban.pop(name, None)) is not None:
                    pending.cancel()  # the latest ban decides when the number may connect again
                until = iso(expires_at) if expires_at else None
                await self.instances.update(name, state="close", bannedUntil=until or "permanent")
                if was_open:
                    await self._disconnected(name, "banned", reason, logged_out=False)
                await self.outbox.publish(name, "instance.banned", {"reason": reason, "expiresAt": until})
                if expires_at is not None:
                    self._after_ban[name] = asyncio.create_task(self._reconnect_at(name, expires_at))
                    await self._throttle_after_ban(name, expires_at)
            case Inbound() as inbound:
                if name in self.announced:
                    await self._forward(name, inbound)
                else:  # instance.connected first: the Connected case above releases it
                    self._held.setdefault(name, []).append(inbound)
            case HistorySynced() as batch:
                await self.history.synced(name, batch)
            case CallReceived() as call:
                await self.per_number.call(name, call, self.connected_session(name))
            case GroupParticipants() | GroupUpdated() as group_event:
                await self.per_number.group(name, group_event)
            case Receipt(message_ids=wa_ids, status=status, timestamp=timestamp):
                for moved in await self.messages.apply_receipt(name, wa_ids, status):
                    data = {
                        "messageId": moved.id,
                        "to": moved.to,
                        "waMessageId": moved.wa_message_id,
                        "metadata": moved.meta,
                    }
                    await self.outbox.publish(name, f"message.{status}", {**data, "timestamp": iso(timestamp)})
                    await self.conversations.receipt(name, moved, status)

    async def _disconnected(self, name: str, reason: str, detail: str, logged_out: bool) -> None:
        """instance.disconnected: `reason` one of API.md's (logged_out, banned, connection_lost,
        deleted), `detail` the driver's own words."""
        data = {"reason": reason, "detail": detail, "loggedOut": logged_out}
        await self.outbox.publish(name, "instance.disconnected", data)

    async def _throttle_after_ban(self, name: str, expires_at: datetime) -> None:
        """A temporary ban is a warning: bulk stays paused for a while after it ends."""
        until_ms = int((expires_at.timestamp() + self.after_ban_seconds) * 1000)
        await self.lanes.throttle(name, "banned", until_ms)
        await self.outbox.publish(name, "instance.throttled", {"reason": "banned", "until": iso_from_ms(until_ms)})

    async def _release_held(self, name: str) -> None:
        """Publish the held inbound events in order; one that fails stays held with those after it."""
        while queue := self._held.get(name):
            await self._forward(name, queue[0])
            queue.pop(0)
        self._held.pop(name, None)

    async def _forward(self, name: str, inbound: Inbound) -> None:
        """An inbound event to its webhook, as the instance's settings want it (ignoreGroups,
        autoRead)."""
        if await self.per_number.admits(name, inbound):
            await self.inbound.publish(name, inbound)
            await self.per_number.received(name, inbound, self.connected_session(name))

    async def _reconnect_at(self, name: str, when: datetime) -> None:
        """A temporary ban is over: connect again (the messages waiting go once it is open)."""
        await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))
        self._after_ban.pop(name, None)
        if name in self.sessions and await self.epoch(name) is not None:
            log.info("session.ban_over", instance=name)
            await self.instances.update(name, state="connecting", bannedUntil=None)
            await self._connect(name, self.sessions[name])


def connection_event(event: DriverEvent) -> str | None:
    """The name `wa_connection_events_total` counts `event` under, if it counts it."""
    match event:
        case Disconnected(logged_out=True):
            return "logged_out"
        case Disconnected():
            return "disconnected"
        case Banned():
            return "banned"
        case QrExpired():
            return "qr_expired"
    return None
