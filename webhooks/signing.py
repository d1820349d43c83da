"""HMAC-SHA256 signatures of webhook bodies (API.md, "Webhooks"), for us and for receivers."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-gateway-signature"
EVENT_HEADER = "x-gateway-event"
DELIVERY_HEADER = "x-gateway-delivery"
TIMESTAMP_HEADER = "x-gateway-timestamp"


def sign(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the raw `body`, keyed with the instance's webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """True when `header` (the `x-gateway-signature` value) signs the raw `body` with `secret`.

    Compare before parsing the JSON, on the exact bytes received; the comparison takes the same
    time whatever the header holds.
    """
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().lower().encode())
