"""Request parsing with pydantic: every problem becomes an `Issue` with its path.

Each constrained string is written once, as the body of a regular expression: the validator
full-matches it (so no trailing newline slips through, as it would past `$`), and the OpenAPI
document carries the same expression, anchored, with the same length limit."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, RootModel, TypeAdapter, ValidationError, WithJsonSchema
from yarl import URL

from config import Settings
from core import speedups
from core.errors import Issue, ValidationFailed
from core.instances import MAX_NAME_LENGTH, NAME_PART
from core.netguard import BlockedUrl
from webhooks.delivery import check_webhook_url

M = TypeVar("M", bound=BaseModel)

PART = NAME_PART.pattern
PART_MAX = 40
INSTANCE_NAME = rf"{PART}__{PART}__{PART}"
INSTANCE_NAME_MAX = MAX_NAME_LENGTH
PHONE = r"[1-9][0-9]{6,14}"
GROUP_ID = r"[0-9]{5,30}(?:-[0-9]{5,30})?@g\.us"
GROUP_ID_MAX = 66
LID = r"[0-9]{5,20}"
# http(s), an ASCII host name (punycode for international names) or a bracketed IPv6 address, an
# optional port, then any printable ASCII: what a webhook or media fetch accepts, with no
# user:password@ part. The one check beyond the pattern: an IPv6 literal must be an address.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_IPV6 = r"\[(?P<ipv6>[0-9A-Fa-f:.]{2,45})\]"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
WEB_URL = rf"[Hh][Tt][Tt][Pp][Ss]?://(?:{_LABEL}(?:\.{_LABEL})*|{_IPV6})(?::{_PORT})?(?:[/?#][!-~]*)?"
WEB_URL_MAX = 2048
# A proxy for a number's WhatsApp connection: socks5 or http(s), an optional user:password@, a
# host name or IPv4 address as above (no IPv6 literal: a pattern cannot tell a real one), an
# optional port, nothing after.
_USERINFO = r"(?:[A-Za-z0-9._~*-]|%[0-9A-Fa-f]{2})+"  # * too: a password answered as *** comes back
PROXY_URL = (
    rf"(?:[Ss][Oo][Cc][Kk][Ss]5|[Hh][Tt][Tt][Pp][Ss]?)://(?:{_USERINFO}(?::(?:{_USERINFO})?)?@)?"
    rf"{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?/?"
)


def given(*aliases: str) -> dict[str, Any]:
    """JSON Schema: every one of `aliases` is present and not null."""
    return {"required": list(aliases), "properties": {alias: {"not": {"type": "null"}} for alias in aliases}}


def absent_not_null(schema: dict[str, Any]) -> None:
    """Document an optional field as the value it takes: None stands for its absence (a field left
    out, a query parameter not given), never for a null the client may send."""
    if "default" in schema and schema["default"] is None:
        del schema["default"]
    variants = schema.pop("anyOf", [])
    schema.update(next((v for v in variants if v.get("type") != "null"), {}))


def string_schema(pattern: str, max_length: int, **extra: Any) -> WithJsonSchema:
    """The OpenAPI description of a string that must full-match `pattern`."""
    return WithJsonSchema({"type": "string", "pattern": f"^{pattern}$", "maxLength": max_length, **extra})


def _checked(pattern: str, max_length: int, problem: Callable[[str], str]) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(problem(value))
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return check


def _phone_problem(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    if re.fullmatch(PHONE, digits):
        return f"use international digits only, without '+', spaces or dashes: send {digits!r}"
    return "must be an international phone number in digits only, 7 to 15 digits, e.g. 5491112345678"


NamePart = Annotated[
    str,
    AfterValidator(
        _checked(
            PART, PART_MAX, lambda _: "use lowercase letters and digits, with single underscores inside (e.g. acme)"
        )
    ),
    string_schema(PART, PART_MAX),
]
InstanceNameStr = Annotated[
    str,
    AfterValidator(
        _checked(
            INSTANCE_NAME,
            INSTANCE_NAME_MAX,
            lambda _: (
                "must be {tenantId}__{clientId}__{label}: lowercase letters, digits and single underscores "
                "inside each part, parts joined by a double underscore (e.g. acme__shop1__sales)"
            ),
        )
    ),
    string_schema(INSTANCE_NAME, INSTANCE_NAME_MAX),
]
PhoneNumber = Annotated[str, AfterValidator(_checked(PHONE, 15, _phone_problem)), string_schema(PHONE, 15)]
GroupId = Annotated[
    str,
    AfterValidator(
        _checked(GROUP_ID, GROUP_ID_MAX, lambda _: "must be a group id: <digits>@g.us or <digits>-<digits>@g.us")
    ),
    string_schema(GROUP_ID, GROUP_ID_MAX),
]
WA_MESSAGE_ID = r"[0-9A-Za-z_.:-]+"
WaMessageId = Annotated[
    str,
    AfterValidator(
        _checked(
            WA_MESSAGE_ID,
            128,
            lambda _: (
                "must be a WhatsApp message id (the messageId of a message.received webhook): "
                "letters, digits, '_', '.', ':' or '-'"
            ),
        )
    ),
    string_schema(WA_MESSAGE_ID, 128),
]
LID_CHAT = rf"{LID}@lid"
RECIPIENT = rf"(?:{PHONE}|{GROUP_ID}|{LID_CHAT})"


def _recipient_problem(value: str) -> str:
    if "@" in value:
        return "must be a group id (<digits>@g.us or <digits>-<digits>@g.us) or a LID chat (<digits>@lid)"
    return _phone_problem(value) + ", or a group id (<digits>@g.us), or a LID chat (<digits>@lid)"


# `to` of a send: a phone number, a group id, or a LID chat (WhatsApp's privacy identifier).
Recipient = Annotated[
    str,
    AfterValidator(_checked(RECIPIENT, GROUP_ID_MAX, _recipient_problem)),
    string_schema(RECIPIENT, GROUP_ID_MAX),
]
# A reaction: "" (removes it), or one emoji: non-ASCII characters without spaces, after at most one
# keycap character (1️⃣, #️⃣).
EMOJI = r"(?:[0-9#*]?[^\x00-\x7F\s]{1,15})?"
Emoji = Annotated[
    str,
    AfterValidator(_checked(EMOJI, 16, lambda _: 'must be one emoji such as "👍", or "" to remove the reaction')),
    string_schema(EMOJI, 16),
]
Lid = Annotated[
    str,
    AfterValidator(_checked(LID, 20, lambda _: "must be a LID: WhatsApp's privacy identifier, 5 to 20 digits")),
    string_schema(LID, 20),
]


def _ipv6_literal(value: str) -> str:
    match = re.fullmatch(WEB_URL, value)
    if match and match["ipv6"]:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            raise ValueError(f"[{match['ipv6']}] is not an IPv6 address") from None
    return value


WebUrl = Annotated[
    str,
    AfterValidator(
        _checked(
            WEB_URL,
            WEB_URL_MAX,
            lambda _: (
                "must be an http:// or https:// URL with an ASCII host name (punycode for international "
                "names) or a bracketed IPv6 address, an optional port, and no spaces or user:password@ part"
            ),
        )
    ),
    AfterValidator(_ipv6_literal),
    string_schema(WEB_URL, WEB_URL_MAX, format="uri"),
]

ProxyUrl = Annotated[
    str,
    AfterValidator(
        _checked(
            PROXY_URL,
            WEB_URL_MAX,
            lambda _: (
                "must be socks5://, http:// or https:// [user:password@]host[:port] (a name or an IPv4 "
                "address), nothing after"
            ),
        )
    ),
    string_schema(PROXY_URL, WEB_URL_MAX),
]

# Path parameters with a shape of their own, checked before the handler runs (400 with the
# parameter's name), and documented with the same schema.
PATH_PARAMS: dict[str, TypeAdapter[str]] = {
    "name": TypeAdapter(InstanceNameStr),
    "instanceName": TypeAdapter(InstanceNameStr),
    "tenantId": TypeAdapter(NamePart),
    "clientId": TypeAdapter(NamePart),
    "number": TypeAdapter(PhoneNumber),
    "chatId": TypeAdapter(Recipient),
    "groupId": TypeAdapter(GroupId),
    "lid": TypeAdapter(Lid),
}


def check_path(params: Mapping[str, str]) -> None:
    issues: list[Issue] = []
    for name, value in params.items():
        if (adapter := PATH_PARAMS.get(name)) is None:
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            issues.extend(Issue(("path", name), issue.message) for issue in issues_from(exc))
    if issues:
        raise ValidationFailed(issues)


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "field required",
}


_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def issues_from(error: ValidationError, tagged: bool = False) -> list[Issue]:
    """`tagged`: the body is a union told apart by its `type` field, which pydantic puts first in
    each location (`("text", "to")`); the client knows that field as `["to"]`."""
    issues = []
    for err in error.errors(include_url=False):
        message = _MESSAGES.get(err["type"], err["msg"])
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        path = tuple(err["loc"])
        if tagged:
            path = ("type",) if err["type"] in _TAG_ERRORS else path[1:]
        issues.append(Issue(path, message))
    return issues


def validate(model: type[M], data: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(issues_from(exc, tagged=issubclass(model, RootModel))) from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge, a 413 in the middleware
    if not raw.strip():
        raise ValidationFailed.at([], "request body is empty: send a JSON object")
    try:
        data = speedups.loads(raw)
    except RecursionError:
        raise ValidationFailed.at([], "request body is nested too deeply") from None
    except UnicodeEncodeError:  # JSON may escape a lone UTF-16 surrogate ("\ud800"), which is no Unicode text
        raise ValidationFailed.at([], "request body holds a lone UTF-16 surrogate escape: not valid Unicode") from None
    except ValueError as exc:  # bad JSON, bad UTF-8, NaN/Infinity, an integer of more than 4,300 digits
        raise ValidationFailed.at([], f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationFailed.at([], "request body must be a JSON object")
    return validate(model, data)


async def admitted_proxy_url(settings: Settings, url: str | None, path: list[str | int]) -> None:
    """A 400 at `path` for a proxy whose host the private-address guard refuses, as it refuses
    webhook URLs (the proxy's own scheme is checked by InstanceSettings)."""
    if url is None:
        return
    try:
        proxy = URL(url)
        where = URL.build(scheme="http", host=proxy.raw_host or "", port=proxy.port)
        await check_webhook_url(str(where), settings.allow_private_urls)
    except (BlockedUrl, ValueError) as exc:
        raise ValidationFailed.at(path, f"not allowed: {exc}") from None


async def admitted_webhook_url(settings: Settings, url: str) -> None:
    """A 400 on `webhookUrl` for a URL the private-address guard would refuse at delivery."""
    try:
        await check_webhook_url(url, settings.allow_private_urls)
    except BlockedUrl as exc:
        raise ValidationFailed.at(["webhookUrl"], f"not allowed: {exc}") from None
