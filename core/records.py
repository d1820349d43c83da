"""Typed records shared by every layer."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of every request and response body: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=False
    )


class Command(ApiModel):
    """Base of the commands the API sends the worker hosting an instance: one frozen record per
    command, named on the wire by its `op` (the registry: `scheduler/instance_commands.py`)."""

    model_config = ConfigDict(frozen=True)

    op: ClassVar[str]


# A moment as the gateway writes it (`core.clock.iso`): ISO 8601 in UTC, documented as date-time.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


# Why a message failed (or was flushed), for programs (API.md, "failures say what"): beside the
# human `error`, in the record, in message.failed and as the failure metric's label.
ErrorCode = Literal[
    "opted_out",
    "not_on_whatsapp",
    "media_unreachable",
    "media_rejected",
    "expired",
    "whatsapp_error",
    "banned",
    "logged_out",
    "invalid_recipient",
    "cancelled_by_flush",
]
