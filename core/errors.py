"""The one error hierarchy of the gateway, by code only. The HTTP layer gives each its status
(`gateway.errors`); the API→worker command channel carries them as `{code, message}` and
`from_wire` turns them back (`scheduler.commands`).

GatewayError             internal_error
 +-- ValidationFailed      validation_error (with issues)
 +-- InvalidApiKey         invalid_api_key
 +-- ForbiddenTenant       forbidden_tenant
 |    +-- InsufficientScope  insufficient_scope
 +-- NotFound              not_found
 +-- MethodNotAllowed      method_not_allowed
 +-- AlreadyExists         already_exists
 +-- IdempotencyConflict   idempotency_conflict
 +-- InvalidState          invalid_state
 +-- PayloadTooLarge       payload_too_large
 +-- RateLimited           rate_limited
 |    +-- QueueFull          queue_full
 +-- WhatsAppError         whatsapp_error
 +-- Unavailable           unavailable
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    path: tuple[str | int, ...]
    message: str

    def as_json(self) -> dict[str, object]:
        return {"path": list(self.path), "message": self.message}


class GatewayError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


class ValidationFailed(GatewayError):
    code = "validation_error"

    def __init__(self, issues: Sequence[Issue], message: str | None = None) -> None:
        self.issues = list(issues)
        super().__init__(message or "; ".join(_describe(issue) for issue in self.issues) or "invalid request")

    @classmethod
    def at(cls, path: Sequence[str | int], message: str) -> ValidationFailed:
        return cls([Issue(tuple(path), message)])

    def body(self) -> dict[str, object]:
        return {**super().body(), "issues": [issue.as_json() for issue in self.issues]}


def _describe(issue: Issue) -> str:
    where = ".".join(str(part) for part in issue.path)
    return f"{where}: {issue.message}" if where else issue.message


class InvalidApiKey(GatewayError):
    code = "invalid_api_key"


class ForbiddenTenant(GatewayError):
    code = "forbidden_tenant"


class InsufficientScope(ForbiddenTenant):
    """The key is known, but its scopes do not cover this call."""

    code = "insufficient_scope"


class NotFound(GatewayError):
    code = "not_found"


class MethodNotAllowed(GatewayError):
    code = "method_not_allowed"


class AlreadyExists(GatewayError):
    code = "already_exists"


class IdempotencyConflict(GatewayError):
    code = "idempotency_conflict"


class InvalidState(GatewayError):
    code = "invalid_state"


class PayloadTooLarge(GatewayError):
    code = "payload_too_large"


class RateLimited(GatewayError):
    code = "rate_limited"


class QueueFull(RateLimited):
    """The instance already holds GATEWAY_QUEUE_LIMIT waiting messages."""

    code = "queue_full"


class WhatsAppError(GatewayError):
    code = "whatsapp_error"


class Unavailable(GatewayError):
    code = "unavailable"


def to_wire(exc: GatewayError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message}


def from_wire(error: dict[str, str]) -> GatewayError:
    """The error a `to_wire` dict stands for; an unknown code reads as a WhatsApp failure."""
    code, message = error.get("code", ""), error.get("message", "")
    if code == ValidationFailed.code:
        return ValidationFailed.at([], message)
    return _BY_CODE.get(code, WhatsAppError)(message)


_BY_CODE: dict[str, type[GatewayError]] = {
    cls.code: cls
    for cls in (InvalidApiKey, ForbiddenTenant, NotFound, AlreadyExists, InvalidState, Unavailable, WhatsAppError)
}
