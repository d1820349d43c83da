"""What the client raises: the gateway's error answers, or no answer at all.

ClientError                  everything below
├── GatewayError             any 4xx/5xx answer: status, code, message, issues, request_id
│   ├── ValidationError      400 validation_error (issues lists every problem)
│   ├── AuthenticationError  401 invalid_api_key
│   ├── ForbiddenError       403 forbidden_tenant
│   ├── NotFoundError        404 not_found
│   ├── ConflictError        409 already_exists, idempotency_conflict, invalid_state
│   ├── RateLimitedError     429 rate_limited (retry_after, in seconds)
│   └── WhatsAppError        502 whatsapp_error
└── TransportError           no answer: method and url of the request
    ├── GatewayConnectionError  the gateway could not be reached, or dropped the connection
    └── GatewayTimeoutError     no answer within the client's timeout
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    path: tuple[str | int, ...]
    message: str


class ClientError(Exception):
    """Anything the client raises."""


class TransportError(ClientError):
    """The request got no answer (after the client's retries, where it may retry)."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        super().__init__(f"{method} {url}: {reason}")
        self.method = method
        self.url = url
        self.reason = reason


class GatewayConnectionError(TransportError):
    """The gateway could not be reached (refused, unknown host, TLS), or closed the connection."""


class GatewayTimeoutError(TransportError):
    """The gateway did not answer within the client's timeout."""


class GatewayError(ClientError):
    """The gateway answered with an error (4xx or 5xx); the fields are those of its error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        issues: tuple[Issue, ...] = (),
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.issues = issues
        self.request_id = request_id
        self.headers = dict(headers or {})


class ValidationError(GatewayError):
    pass


class AuthenticationError(GatewayError):
    pass


class ForbiddenError(GatewayError):
    pass


class NotFoundError(GatewayError):
    pass


class ConflictError(GatewayError):
    pass


class RateLimitedError(GatewayError):
    @property
    def retry_after(self) -> float | None:
        value = {k.lower(): v for k, v in self.headers.items()}.get("retry-after")
        return float(value) if value else None


class WhatsAppError(GatewayError):
    pass


BY_STATUS: dict[int, type[GatewayError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
    502: WhatsAppError,
}


def error_from(status: int, body: Any, headers: Mapping[str, str]) -> GatewayError:
    """The exception for an error answer; a body that is not the gateway's shape still gives one."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": "http_error", "message": f"the gateway answered {status}"}
    issues = tuple(Issue(tuple(i.get("path", ())), str(i.get("message", ""))) for i in error.get("issues") or ())
    request_id = body.get("requestId") if isinstance(body, dict) else None
    cls = BY_STATUS.get(status, GatewayError)
    return cls(status, str(error.get("code")), str(error.get("message")), issues, request_id, headers)
