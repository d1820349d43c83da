"""The bodies of the send routes, by kind: what every send carries (`Content`: the recipient, the
lane, a quote, mentions, typing) and the fields of each kind, with what the record keeps of them
(`details`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic.config import JsonDict

from config.settings import LaneName
from core.records import ApiModel
from gateway.validation import Emoji, PhoneNumber, Recipient, WebUrl
from scheduler.drivers.base import Contact, Location, Poll
from scheduler.messages import Details

# WhatsApp's own limits on a text and on a caption.
MAX_TEXT = 65_536
MAX_CAPTION = 1_024
MAX_MENTIONS = 50
MAX_REFERENCE = 128  # our message ids and WhatsApp's are far shorter
MAX_POLL_OPTIONS = 12
MAX_CONTACTS = 10

MAX_METADATA = 2048  # bytes of the metadata object as compact JSON


def _small(metadata: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA:
        raise ValueError(f"must be at most {MAX_METADATA} bytes as JSON; this is {size}")
    return metadata


# The client's own context for a send: stored, answered by GET /message/{id}, carried in every
# message.* event of it.
Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_small),
    Field(description=f"your own context for this send (a JSON object of at most {MAX_METADATA} bytes)"),
]

MessageReference = Annotated[str, Field(min_length=1, max_length=MAX_REFERENCE, pattern=r"^[A-Za-z0-9_.:-]+$")]


# The document says what Laned's validator checks: transactional only on the urgent lane.
URGENT_IF_TRANSACTIONAL: JsonDict = {
    "if": {"properties": {"transactional": {"const": True}}, "required": ["transactional"]},
    "then": {"properties": {"lane": {"const": "urgent"}}, "required": ["lane"]},
}


class Laned(ApiModel):
    model_config = {**ApiModel.model_config, "json_schema_extra": URGENT_IF_TRANSACTIONAL}
    lane: LaneName = "normal"
    # Sent even to a number on the tenant's opt-out list (a code, a receipt): urgent lane only.
    transactional: bool = False
    metadata: Metadata | None = None

    @field_validator("transactional")
    @classmethod
    def _urgent_only(cls, transactional: bool, info: ValidationInfo) -> bool:
        if transactional and info.data.get("lane") != "urgent":
            raise ValueError('only messages on the "urgent" lane may be transactional')
        return transactional

    def details(self) -> Details:
        """What the record keeps of this kind's own fields."""
        return Details()

    def typed_text(self) -> str | None:
        """The text "typing..." stands for (its length sets how long it shows)."""
        return None

    def refers(self) -> bool:
        """Whether it names another message (a quote, a reaction's target), looked up on accepting."""
        return False


class Content(Laned):
    to: Recipient
    quoted_message_id: MessageReference | None = Field(
        default=None, description="reply to this message: our msg_ id, or a WhatsApp messageId from a webhook"
    )
    mentions: list[PhoneNumber] = Field(default_factory=list, max_length=MAX_MENTIONS)
    typing: bool | None = Field(default=None, description='show "typing..." first; default: the lane\'s setting')

    def refers(self) -> bool:
        return self.quoted_message_id is not None


class TextContent(Content):
    text: str = Field(min_length=1, max_length=MAX_TEXT)

    def typed_text(self) -> str | None:
        return self.text


class Captioned(Content):
    caption: str | None = Field(default=None, max_length=MAX_CAPTION)

    def typed_text(self) -> str | None:
        return self.caption


class ImageContent(Captioned):
    image_url: WebUrl


class DocumentContent(Captioned):
    document_url: WebUrl
    file_name: str = Field(min_length=1, max_length=255)


class AudioContent(Content):
    audio_url: WebUrl


class VideoContent(Captioned):
    video_url: WebUrl


class LocationContent(Content):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    address: str | None = Field(default=None, min_length=1, max_length=1024)

    def details(self) -> Details:
        place = Location(latitude=self.latitude, longitude=self.longitude, name=self.name, address=self.address)
        return Details(location=place)

    def typed_text(self) -> str | None:
        return self.name


class ContactCard(ApiModel):
    full_name: str = Field(min_length=1, max_length=256)
    phone_number: PhoneNumber
    organization: str | None = Field(default=None, min_length=1, max_length=256)


class ContactContent(Content):
    contacts: list[ContactCard] = Field(min_length=1, max_length=MAX_CONTACTS)

    def details(self) -> Details:
        return Details(contacts=tuple(Contact.model_validate(card.model_dump()) for card in self.contacts))


class StickerContent(Content):
    sticker_url: WebUrl


def _selectable_schema(schema: JsonDict) -> None:
    """Document the check below: a poll lets voters choose at most as many options as it has."""
    schema.update(URGENT_IF_TRANSACTIONAL)
    schema["allOf"] = [
        {
            "if": {"properties": {"selectableCount": {"minimum": count}}, "required": ["selectableCount"]},
            "then": {"properties": {"options": {"minItems": count}}},
        }
        for count in range(3, MAX_POLL_OPTIONS + 1)
    ]


class PollContent(Content):
    model_config = {**Content.model_config, "json_schema_extra": _selectable_schema}
    question: str = Field(min_length=1, max_length=255)
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=2, max_length=MAX_POLL_OPTIONS, json_schema_extra={"uniqueItems": True}
    )
    selectable_count: int = Field(default=1, ge=0, le=MAX_POLL_OPTIONS, description="0: any number of options")

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        repeated = sorted({option for option in options if options.count(option) > 1})
        if repeated:
            raise ValueError(f"options must be distinct; repeated: {', '.join(map(repr, repeated))}")
        return options

    @model_validator(mode="after")
    def _selectable_within_options(self) -> PollContent:
        if self.selectable_count > len(self.options):
            raise ValueError(f"selectableCount {self.selectable_count} is more than the {len(self.options)} options")
        return self

    def details(self) -> Details:
        chosen = Poll(question=self.question, options=tuple(self.options), selectable_count=self.selectable_count)
        return Details(poll=chosen)

    def typed_text(self) -> str | None:
        return self.question


class ReactionContent(Laned):
    message_id: MessageReference = Field(description="our msg_ id, or a WhatsApp messageId from a webhook")
    emoji: Emoji = Field(description='an emoji; "" removes the reaction')

    def details(self) -> Details:
        return Details(emoji=self.emoji, target_id=self.message_id)

    def refers(self) -> bool:
        return True
