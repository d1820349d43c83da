"""HTTP statuses of the domain errors (`core.errors`), in one table the error middleware reads."""

from __future__ import annotations

from core.errors import (
    AlreadyExists,
    ForbiddenTenant,
    GatewayError,
    IdempotencyConflict,
    InvalidApiKey,
    InvalidState,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    ValidationFailed,
    WhatsAppError,
)

STATUS: dict[type[GatewayError], int] = {
    ValidationFailed: 400,
    InvalidApiKey: 401,
    ForbiddenTenant: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    AlreadyExists: 409,
    IdempotencyConflict: 409,
    InvalidState: 409,
    PayloadTooLarge: 413,
    RateLimited: 429,
    WhatsAppError: 502,
    Unavailable: 503,
}


class HttpError(GatewayError):
    """A protocol-level refusal from aiohttp itself, with its own status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def status_of(exc: GatewayError) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 500)
