"""The pump: sends one message the claim loop picked (scheduler/claim_loop.py) through the
instance's WhatsApp session and records what happened, which also schedules the instance's next
wake-up (all the lane rules live in the Lua scripts behind `Lanes`)."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from core.clock import iso_from_ms, now_iso
from core.records import ErrorCode
from scheduler import spintax
from scheduler.conversation_log import ConversationLog
from scheduler.drivers.base import (
    LID_SUFFIX,
    Account,
    DriverError,
    NotLinkedError,
    NotOnWhatsAppError,
    OutcomeUnknownError,
    OutgoingMessage,
    Session,
    TransientDriverError,
    is_group,
    is_lid,
)
from scheduler.event_data import (
    InstanceThrottledData,
    InstanceUnthrottledData,
    MessageFailedData,
    MessageOutcome,
    MessageSentData,
)
from scheduler.lanes import Claimed, Lanes, Outcome, Owner, Signal
from scheduler.media import MediaError
from scheduler.messages import Message, Messages, MessageUpdate
from scheduler.numbers import NumberCache, encode, lid_account
from webhooks.delivery import Deliverer
from webhooks.outbox import Event, Head, Outbox

log = structlog.get_logger(__name__)

EXPIRED = MessageUpdate(
    status="failed", error="expired: waited longer than the configured limit to be sent", error_code="expired"
)
OPTED_OUT = MessageUpdate(status="failed", error="opted_out", error_code="opted_out")
# While Redis is away, recording an outcome is tried again this often, for as long as it takes:
# the message stays `sending` meanwhile, and no other send starts on its number.
FINISH_RETRY_SECONDS = 0.5


class SessionSource(Protocol):
    def connected_session(self, name: str) -> Session | None: ...

    async def forget(self, name: str) -> None:
        """Close the instance's session here: another worker owns it now."""
        ...

    async def still_owns(self, name: str, owner: Owner) -> bool: ...


class MediaSource(Protocol):
    async def outgoing(self, message: Message, text_caption: str | None) -> OutgoingMessage:
        """Raises MediaError when the message's media cannot be fetched or converted."""
        ...


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    update: MessageUpdate
    retry_after_ms: int = 0  # a requeue's wait (finish.lua adds it to Redis's now)
    signal: Signal = ""


class Pump:
    def __init__(
        self,
        worker_id: str,
        lanes: Lanes,
        messages: Messages,
        sessions: SessionSource,
        media: MediaSource,
        outbox: Outbox,
        deliverer: Deliverer | None,
        lease_seconds: float,
        numbers: NumberCache,
        lookup_timeout: float,
        conversations: ConversationLog,
        retry_delays: tuple[float, ...],
    ) -> None:
        self.conversations = conversations
        self.worker_id = worker_id
        # A claim younger than this cannot have been fenced off: the lease has not run out since.
        self.recheck_after = lease_seconds / 3
        self.lanes = lanes
        self.messages = messages
        self.sessions = sessions
        self.media = media
        self.outbox = outbox
        self.deliverer = deliverer
        self.numbers = numbers
        self.lookup_timeout = lookup_timeout
        # Transient failures (not connected, network blips) retry after these delays, then give up.
        self.retry_delays = retry_delays

    async def run(self, claimed: Claimed) -> None:
        name = claimed.name
        owner = (self.worker_id, claimed.epoch)
        if claimed.unthrottled is not None:
            resumed = InstanceUnthrottledData.model_validate({"reason": claimed.unthrottled, "by": "expiry"})
            await self.outbox.publish(name, "instance.unthrottled", resumed)
        for message_id in claimed.ended:  # expired, or to an opted-out number
            unsent = await self.messages.get(message_id)
            if unsent is not None:
                await self.outbox.publish(name, *ended(unsent))
        if claimed.message is None:
            if claimed.ended:  # maybe one chunk of a backlog (claim_due.lua): the next once these are out
                await self.lanes.kick(name)
            return
        message = claimed.message
        structlog.contextvars.bind_contextvars(instance=name, message_id=message.id)
        try:
            result = await self._send(name, owner, message, claimed)
        except RedisError:
            raise  # nothing was sent: the recovery sweep takes the message back once Redis is there
        except Exception as exc:  # a bug must not wedge the instance: record it and carry on
            log.exception("pump.send_crashed")
            error = f"internal_error: {type(exc).__name__}"
            result = Result(
                "failed_uncounted", MessageUpdate(status="failed", error=error, error_code="whatsapp_error")
            )
        finally:
            structlog.contextvars.unbind_contextvars("instance", "message_id")
        if result is None:
            log.warning("pump.fenced", instance=name, message_id=message.id)
            await self.sessions.forget(name)
            return
        await self._finish(name, owner, message, result)

    async def _send(self, name: str, owner: Owner, message: Message, claimed: Claimed) -> Result | None:
        """What happened to the message, or None if we were fenced off before sending it."""
        attempts = message.attempts + 1
        session = self.sessions.connected_session(name)
        if session is None:
            return self._retry(message, attempts, "the WhatsApp session is not connected on this worker", "logged_out")
        text = spintax.resolve(message.text) if message.text is not None else None
        caption = spintax.resolve(message.caption) if message.caption is not None else None
        try:
            # A group id is no number to look up: WhatsApp refuses a send to a group the number is
            # not in, which fails the message like any refusal.
            account = None if is_group(message.to) else await self._recipient(name, message.to, claimed, session)
            if claimed.on_whatsapp is None and account is not None and set(account.identities()) - {message.to}:
                # The claim applied the per-person rules (opt-outs, spacing, first contacts) to `to`
                # as typed; the cache now knows the person behind it by more: the claim looks again.
                return Result("requeue", MessageUpdate(status="pending"))
            outgoing = await self.media.outgoing(message, text if message.type in ("text", "edit") else caption)
            if outgoing.typing_ms:
                await show_typing(session, outgoing)
            # Media can take a while, and the process may have been paused: if we lost the
            # instance meanwhile (that takes a lease), the new owner has taken this message back,
            # and sending it here would duplicate it. Sooner than that, we cannot have lost it.
            if time.monotonic() - claimed.at > self.recheck_after and not await self.sessions.still_owns(name, owner):
                return None
            sent = await session.send(outgoing)
        except NotOnWhatsAppError as exc:
            gone = MessageUpdate(status="failed", error="not_on_whatsapp", error_code=exc.code, attempts=attempts)
            return Result("failed_uncounted", gone, signal="n")
        except OutcomeUnknownError as exc:
            # It may have gone out: repeating it could send it twice, so it ends here, said plainly.
            error = f"outcome_unknown: {exc}; it may or may not have been delivered, and was not repeated"
            failed = MessageUpdate(status="failed", error=error, error_code=exc.code, attempts=attempts)
            return Result("failed", failed, signal="f")
        except (TransientDriverError, NotLinkedError) as exc:
            return self._retry(message, attempts, str(exc), exc.code)
        except DriverError as exc:
            failed = MessageUpdate(status="failed", error=str(exc), error_code=exc.code, attempts=attempts)
            return Result("failed_uncounted", failed, signal="f")
        except MediaError as exc:
            failed = MessageUpdate(status="failed", error=str(exc), error_code=exc.code, attempts=attempts)
            return Result("failed_uncounted", failed)
        update = MessageUpdate(
            status="sent",
            error=None,  # a transient failure before this attempt is history now
            error_code=None,
            sent_at=now_iso(),
            wa_message_id=sent.message_id,
            attempts=attempts,
            recipient=encode(account) if account is not None else None,
            text=text,
            caption=caption,
        )
        return Result("sent", update, signal="s")

    async def _recipient(self, name: str, to: str, claimed: Claimed, session: Session) -> Account:
        """The account `to` (a number or a LID chat) resolves to: from the number cache as the claim
        read it, else asked (and remembered) now, within the actions' deadline: a lookup WhatsApp
        never answers is retried, not waited on for good. NotOnWhatsAppError when it has none."""
        account = claimed.account
        if claimed.on_whatsapp is None:
            try:
                async with asyncio.timeout(self.lookup_timeout):
                    if is_lid(to):
                        account = await self.numbers.lid(name, to.removesuffix(LID_SUFFIX), session.number_for_lid)
                    else:
                        account = (await self.numbers.check(name, [to], session.check_numbers))[to]
            except TimeoutError:
                raise TransientDriverError(
                    f"looking {to} up on WhatsApp got no answer within {self.lookup_timeout:g} s"
                ) from None
        if account is None:
            raise NotOnWhatsAppError(f"{to} is not on WhatsApp")
        # A reply to a LID chat goes to that chat, whatever number the cache knows behind it.
        return lid_account(to.removesuffix(LID_SUFFIX), account.number) if is_lid(to) else account

    async def _finish(self, name: str, owner: Owner, message: Message, result: Result) -> None:
        """Record the outcome and publish how the message ended, in one step; a sent message's
        entry in the conversation store is asked for in the same turn, so the two go to Redis in
        one round trip (core/scripts.py batches them)."""
        ended_as = result.update.applied_to(message)
        if result.outcome != "sent":
            await self._record(name, owner, message, ended_as, result)
            return
        await asyncio.gather(
            self._record(name, owner, message, ended_as, result), self.conversations.sent(name, ended_as)
        )

    async def _record(self, name: str, owner: Owner, message: Message, ended_as: Message, result: Result) -> None:
        """The outcome, recorded. It must be, or the message stays `sending`: outlast a Redis
        outage. Trying again is safe: finish.lua records a message once, and only for its owner."""
        event = None if result.outcome == "requeue" else self._event(name, ended_as)
        # The event goes to the webhook at once, from here, when nobody else is delivering for it
        # (Not when webhooks have a process of their own: finish.lua then makes the instance due there.)
        deliverer = self.deliverer
        lock = ("", 0) if deliverer is None else (secrets.token_hex(8), math.ceil(deliverer.lock_seconds * 1000))
        while True:
            try:
                recorded, throttle = await self.lanes.finish(
                    name,
                    owner,
                    message.id,
                    result.outcome,
                    result.update.hash_fields(),
                    result.retry_after_ms,
                    event,
                    lock,
                    result.signal,
                )
                if isinstance(recorded, Head) and deliverer is not None:
                    deliverer.deliver_now(name, lock[0], recorded)
            except RedisError:
                log.warning("pump.finish_retrying", instance=name, message_id=message.id)
                await asyncio.sleep(FINISH_RETRY_SECONDS)
                continue
            if throttle is not None:
                log.warning("instance.throttled", instance=name, reason=throttle.reason)
                paused = {"reason": throttle.reason, "until": iso_from_ms(throttle.until_ms)}
                await self.outbox.publish(name, "instance.throttled", InstanceThrottledData.model_validate(paused))
            return

    def _retry(self, message: Message, attempts: int, reason: str, code: ErrorCode) -> Result:
        """Try again later, or, after the last of the retry delays, fail with `code`."""
        if attempts > len(self.retry_delays):
            error = f"gave up after {attempts} attempts: {reason}"
            return Result(
                "failed_uncounted", MessageUpdate(status="failed", error=error, error_code=code, attempts=attempts)
            )
        wait_ms = round(self.retry_delays[attempts - 1] * 1000)
        return Result("requeue", MessageUpdate(status="pending", error=reason, attempts=attempts), wait_ms)

    def _event(self, name: str, message: Message) -> Event:
        return self.outbox.event(name, *ended(message))


async def show_typing(session: Session, message: OutgoingMessage) -> None:
    """ "typing..." in the chat for the message's typing time, then "paused". The claim came that
    much before the lane gap ended (core/lua/common.lua), so the send still keeps the gap. The
    presence is only a gesture: when WhatsApp refuses it, the wait stays and the message goes."""
    await _gesture(session, message.to, True)
    await asyncio.sleep(message.typing_ms / 1000)
    await _gesture(session, message.to, False)


async def _gesture(session: Session, to: str, typing: bool) -> None:
    try:
        await session.show_typing(to, typing)
    except DriverError as exc:
        log.info("pump.typing_failed", error=str(exc))


def ended(message: Message) -> tuple[str, MessageOutcome]:
    """message.sent or message.failed and its data, from the record as it ended."""
    record = MessageSentData if message.status == "sent" else MessageFailedData
    data = record.model_validate(
        {
            "messageId": message.id,
            "to": message.to,
            "lane": message.lane,
            "type": message.type,
            "status": message.status,
            "sentAt": message.sent_at,
            "waMessageId": message.wa_message_id,
            "error": message.error,
            "errorCode": message.error_code,
            "recipient": json.loads(message.recipient) if message.recipient else None,
            "metadata": message.meta,
        }
    )
    return f"message.{data.status}", data
