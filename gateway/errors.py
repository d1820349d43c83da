"""The one error hierarchy of the API; `gateway.middleware` turns it into API.md's error shape.

ApiError
 +-- ValidationFailed      400 validation_error (with issues)
 +-- InvalidApiKey         401 invalid_api_key
 +-- ForbiddenTenant       403 forbidden_tenant
 +-- NotFound              404 not_found
 +-- MethodNotAllowed      405 method_not_allowed
 +-- AlreadyExists         409 already_exists
 +-- IdempotencyConflict   409 idempotency_conflict
 +-- InvalidState          409 invalid_state
 +-- PayloadTooLarge       413 payload_too_large
 +-- RateLimited           429 rate_limited
 +-- WhatsAppError         502 whatsapp_error
 +-- Unavailable           503 unavailable
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


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


class ValidationFailed(ApiError):
    status = 400
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


class InvalidApiKey(ApiError):
    status = 401
    code = "invalid_api_key"


class ForbiddenTenant(ApiError):
    status = 403
    code = "forbidden_tenant"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class AlreadyExists(ApiError):
    status = 409
    code = "already_exists"


class IdempotencyConflict(ApiError):
    status = 409
    code = "idempotency_conflict"


class InvalidState(ApiError):
    status = 409
    code = "invalid_state"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"


class WhatsAppError(ApiError):
    status = 502
    code = "whatsapp_error"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"
