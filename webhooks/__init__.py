"""Webhooks: the durable event outbox, signed delivery with retries and dead letters.

Receivers check a delivery with `verify_signature(raw_body, headers["x-gateway-signature"], secret)`.
"""

from webhooks.signing import verify_signature

__all__ = ["verify_signature"]
