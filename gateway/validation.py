"""Request parsing with pydantic: every problem becomes an `Issue` with its path."""

from __future__ import annotations

import json
import re
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ValidationError

from config import Settings
from core.errors import Issue, ValidationFailed
from core.instances import NAME_PART, InstanceName
from core.netguard import BlockedUrl
from webhooks.delivery import check_webhook_url

M = TypeVar("M", bound=BaseModel)

PHONE_RE = re.compile(r"^[1-9][0-9]{6,14}$")
GROUP_ID_RE = re.compile(r"^[0-9]{5,30}(-[0-9]{5,30})?@g\.us$")
LID_RE = re.compile(r"^[0-9]{5,20}$")


def _name_part(value: str) -> str:
    if not NAME_PART.fullmatch(value):
        raise ValueError("use lowercase letters and digits, with single underscores inside (e.g. acme or acme_2)")
    if len(value) > 40:
        raise ValueError("must be at most 40 characters")
    return value


def _phone(value: str) -> str:
    if PHONE_RE.match(value):
        return value
    digits = re.sub(r"\D", "", value)
    if PHONE_RE.match(digits):
        raise ValueError(f"use international digits only, without '+', spaces or dashes: send {digits!r}")
    raise ValueError("must be an international phone number in digits only, 7 to 15 digits, e.g. 5491112345678")


def _group_id(value: str) -> str:
    if not GROUP_ID_RE.match(value):
        raise ValueError("must be a group id: <digits>@g.us or <digits>-<digits>@g.us")
    return value


def _lid(value: str) -> str:
    if not LID_RE.match(value):
        raise ValueError("must be a LID: WhatsApp's privacy identifier, 5 to 20 digits")
    return value


NamePart = Annotated[str, AfterValidator(_name_part)]
PhoneNumber = Annotated[str, AfterValidator(_phone)]
GroupId = Annotated[str, AfterValidator(_group_id)]
Lid = Annotated[str, AfterValidator(_lid)]

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "field required",
}


def issues_from(error: ValidationError) -> list[Issue]:
    issues = []
    for err in error.errors(include_url=False):
        message = _MESSAGES.get(err["type"], err["msg"])
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        issues.append(Issue(tuple(err["loc"]), message))
    return issues


def validate(model: type[M], data: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(issues_from(exc)) from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge, a 413 in the middleware
    if not raw.strip():
        raise ValidationFailed.at([], "request body is empty: send a JSON object")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed.at([], f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValidationFailed.at([], "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationFailed.at([], "request body must be a JSON object")
    return validate(model, data)


def _web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        raise ValueError(f"{parts.hostname!r} is not a valid host name") from None
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    return value


WebUrl = Annotated[str, AfterValidator(_web_url)]


def _instance_name(value: str) -> str:
    InstanceName.parse(value)
    return value


InstanceNameStr = Annotated[str, AfterValidator(_instance_name)]


async def admitted_webhook_url(settings: Settings, url: str) -> None:
    """A 400 on `webhookUrl` for a URL the private-address guard would refuse at delivery."""
    try:
        await check_webhook_url(url, settings.allow_private_urls)
    except BlockedUrl as exc:
        raise ValidationFailed.at(["webhookUrl"], f"not allowed: {exc}") from None
