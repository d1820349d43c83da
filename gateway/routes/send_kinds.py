"""The send kinds, declared once. Each row names a `type`, the content model of its own fields
(gateway/routes/content.py) and its summary; from the table follow the request models of
`POST /message/{type}` (`SendText`), of `/message/route` (`RoutedText`) and of a
`/message/batch` item (`BatchText`), the routes, and so the OpenAPI document. The Python client's
send methods are checked against it (tests/test_send_kinds_table.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from pydantic import BaseModel, Field, create_model

from core.records import ApiModel
from gateway.routes.content import (
    AudioContent,
    ContactContent,
    DocumentContent,
    ImageContent,
    Laned,
    LocationContent,
    PollContent,
    ReactionContent,
    StickerContent,
    TextContent,
    VideoContent,
)
from gateway.validation import InstanceNameStr, NamePart
from scheduler.drivers.base import SendType


class OnInstance(ApiModel):
    instance_name: InstanceNameStr


class ToClient(ApiModel):
    tenant_id: NamePart
    client_id: NamePart


class ClientRef(ApiModel):
    # Within 24 h, an item whose clientRef was already queued on its instance is not queued again:
    # its answer is the message queued first (`replayed`).
    client_ref: str | None = Field(default=None, min_length=1, max_length=128)


@dataclass(frozen=True)
class SendKind:
    name: SendType  # the message's `type`
    content: type[Laned]
    summary: str
    # Whether /message/route takes it: a reaction is not routed, as only the instance that has the
    # message can react to it.
    routed: bool = True

    @property
    def title(self) -> str:
        return self.name.capitalize()

    def on_instance(self) -> type[Laned]:
        """The body of `POST /message/{type}`: the content on a named instance."""
        return _model(f"Send{self.title}", (self.content, OnInstance))

    def to_client(self) -> type[Laned]:
        """Its variant of the /message/route body: the content for a tenant's client."""
        return _model(f"Routed{self.title}", (self.content, ToClient), self.name)

    def batch_item(self) -> type[Laned]:
        """Its variant of a /message/batch item: the send body, with a client reference."""
        return _model(f"Batch{self.title}", (self.on_instance(), ClientRef), self.name)


SEND_KINDS: tuple[SendKind, ...] = (
    SendKind("text", TextContent, "Queue a text"),
    SendKind("image", ImageContent, "Queue an image"),
    SendKind("document", DocumentContent, "Queue a document"),
    SendKind("audio", AudioContent, "Queue a voice note"),
    SendKind("video", VideoContent, "Queue a video"),
    SendKind("location", LocationContent, "Queue a location"),
    SendKind("contact", ContactContent, "Queue 1-10 contact cards (vCards)"),
    SendKind("sticker", StickerContent, "Queue a sticker (WebP, or PNG/JPEG converted)"),
    SendKind("poll", PollContent, "Queue a poll"),
    SendKind("reaction", ReactionContent, 'Queue a reaction to a message ("" removes it)', routed=False),
)


@cache  # one class per name, the same each time it is asked for
def _model(name: str, bases: tuple[type[BaseModel], ...], type_: str | None = None) -> type[Laned]:
    fields = {} if type_ is None else {"type": (Literal[type_], ...)}
    made: type[Laned] = create_model(name, __base__=bases, __module__=__name__, **fields)  # type: ignore[call-overload]
    return made
