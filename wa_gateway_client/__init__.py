"""A typed Python client for wa-gateway, async (aiohttp) and sync, with webhook helpers.

    async with AsyncClient("http://127.0.0.1:8080", api_key) as gw:
        queued = await gw.send_text("acme__shop1__sales", "5491112345678", "Hello")

It talks HTTP only and imports nothing of the gateway's server code."""

from wa_gateway_client.clients import AsyncClient, Client
from wa_gateway_client.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    GatewayError,
    Issue,
    NotFoundError,
    RateLimitedError,
    ValidationError,
    WhatsAppError,
)
from wa_gateway_client.models import (
    Attempt,
    BatchRecord,
    Delivery,
    DeliveryPage,
    DeliveryQueued,
    Flushed,
    Health,
    InstanceStatus,
    KeyIssued,
    Message,
    PairingCode,
    Qr,
    Queue,
    Queued,
    SentMessage,
    Stats,
    Tenant,
    TenantCreated,
    WebhookUpdated,
    WhoAmI,
    Worker,
)
from wa_gateway_client.receiver import WebhookEvent, webhook_handler
from wa_gateway_client.signing import sign, verify_signature

__all__ = [
    "AsyncClient",
    "Attempt",
    "AuthenticationError",
    "BatchRecord",
    "Client",
    "ConflictError",
    "Delivery",
    "DeliveryPage",
    "DeliveryQueued",
    "Flushed",
    "ForbiddenError",
    "GatewayError",
    "Health",
    "InstanceStatus",
    "Issue",
    "KeyIssued",
    "Message",
    "NotFoundError",
    "PairingCode",
    "Qr",
    "Queue",
    "Queued",
    "RateLimitedError",
    "SentMessage",
    "Stats",
    "Tenant",
    "TenantCreated",
    "ValidationError",
    "WebhookEvent",
    "WebhookUpdated",
    "WhatsAppError",
    "WhoAmI",
    "Worker",
    "sign",
    "verify_signature",
    "webhook_handler",
]
