"""HMAC-SHA256 signatures of webhook bodies (API.md, "Webhooks"), for us and for receivers.

Each delivery carries two signatures of the same body: ours (`x-gateway-signature`, hex of the
body alone) and the Standard Webhooks one (`webhook-signature`, base64 of "id.timestamp.body"),
which any Standard Webhooks library checks, timestamp included, given the secret base64-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_HEADER = "x-gateway-signature"
EVENT_HEADER = "x-gateway-event"
DELIVERY_HEADER = "x-gateway-delivery"
TIMESTAMP_HEADER = "x-gateway-timestamp"
# Standard Webhooks (standardwebhooks.com): the id is our delivery id, the timestamp ours too.
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"


def sign(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the raw `body`, keyed with the instance's webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_standard(delivery_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of "id.timestamp.body",
    keyed with the raw bytes of the webhook secret."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def signed_headers(body: bytes, secrets: list[str], event: str, delivery_id: str, timestamp: int) -> dict[str, str]:
    """Every header that signs and names one delivery attempt, ours and Standard Webhooks'.
    `secrets`: the current one, then the previous one while a rotation overlaps: the Standard
    Webhooks header carries one `v1,` signature per secret (space-separated, newest first), so a
    receiver still holding the old secret verifies until it switches."""
    return {
        SIGNATURE_HEADER: sign(body, secrets[0]),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        STANDARD_ID_HEADER: delivery_id,
        STANDARD_TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: " ".join(sign_standard(delivery_id, timestamp, body, s) for s in secrets),
    }


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """True when `header` (the `x-gateway-signature` value) signs the raw `body` with `secret`.

    Compare before parsing the JSON, on the exact bytes received; the comparison takes the same
    time whatever the header holds.
    """
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().lower().encode())
