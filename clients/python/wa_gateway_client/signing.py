"""Webhook signatures, as the gateway makes them (API.md, "Webhooks"): `x-gateway-signature` is
the lowercase hex HMAC-SHA256 of the raw request body, keyed with the instance's webhook secret.
Standalone on purpose: a receiver needs nothing of the gateway to check them."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-gateway-signature"
EVENT_HEADER = "x-gateway-event"
DELIVERY_HEADER = "x-gateway-delivery"
TIMESTAMP_HEADER = "x-gateway-timestamp"


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """True when `header` (the `x-gateway-signature` value) signs the raw `body` with `secret`.
    Check the exact bytes received, before parsing them; the comparison takes constant time."""
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().lower().encode())
