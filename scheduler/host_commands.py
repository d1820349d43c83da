"""The worker's side of the command channel: a command from the API (`scheduler/commands.py`),
decoded into its record and carried out by type; the answer is `{ok}` or `{error}` for the API."""

from __future__ import annotations

from typing import Any

import structlog

from core.errors import GatewayError, InvalidState, NotFound, WhatsAppError, to_wire
from core.records import Command
from scheduler.actions import Actions
from scheduler.drivers.base import DriverError, NotLinkedError
from scheduler.instance_commands import (
    ActionCommand,
    Adopt,
    AskPairingCode,
    AskQr,
    Connect,
    Delete,
    SettingsChanged,
    decode,
)
from scheduler.linking import Linking
from scheduler.services import Services
from scheduler.session_registry import SessionRegistry
from scheduler.takeover import Takeover

log = structlog.get_logger(__name__)


class HostCommands:
    def __init__(self, services: Services, registry: SessionRegistry, takeover: Takeover, linking: Linking) -> None:
        self.registry = registry
        self.takeover = takeover
        self.linking = linking
        self.instances = services.instances
        self.ownership = services.ownership
        self.actions = Actions(registry, services.numbers, services.settings.action_timeout)

    async def run(self, name: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Carry out the command a job carries; its answer for the API, whatever happened."""
        structlog.contextvars.bind_contextvars(instance=name, op=op)
        try:
            return {"ok": await self.carry_out(name, decode(op, args))}
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

    async def carry_out(self, name: str, command: Command) -> dict[str, Any]:
        match command:
            case ActionCommand():
                return await self.actions.run(name, command)
            case Adopt():
                await self.takeover.adopted(name)  # handed to us by a leaving worker or by the API
            case Delete():
                await self._delete(name)
            case Connect():
                await self.instances.get(name)
                await self.registry.connect(name, self.registry.session(name))
            case AskQr():
                shown = await self.linking.qr(name)
                return {"code": shown.code, "expiresAt": shown.expires_at}
            case AskPairingCode(phone_number=phone_number):
                return {"pairingCode": await self.linking.pairing_code(name, phone_number)}
            case SettingsChanged():
                # What the session must be told of the new settings, it is told now.
                if (session := self.registry.sessions.get(name)) is not None:
                    await self.registry.per_number.apply(name, session, name in self.registry.connected)
            case _:
                return await self._phone_control(name, command)
        return {}

    async def _phone_control(self, name: str, command: Command) -> dict[str, Any]:
        phone = self.registry.driver.phone_controls(self.registry.session(name))
        if phone is None:
            raise NotFound(f"unknown command {command.op!r}: the driver in use simulates no phone")
        return dict(await phone.control(command))

    async def _delete(self, name: str) -> None:
        session = self.registry.session(name)
        self.registry.drop(name)
        try:
            await session.logout()
        except Exception:  # logging out of an unlinked or offline session: the store goes anyway
            log.warning("session.logout_failed", instance=name, exc_info=True)
        await session.close()
        self.registry.driver.remove_store(name)
        await self.ownership.release(name, self.registry.worker_id)
