"""Schemathesis hooks for the contract test (loaded through SCHEMATHESIS_HOOKS).

Generated URLs (webhooks, media) would make the gateway call out to whatever host was drawn:
every well-formed http(s) URL in a body is pointed at a closed loopback port before it is sent,
keeping its shape (a malformed one is left as drawn, to be refused)."""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from gateway.validation import WEB_URL

LOOPBACK = "http://127.0.0.1:9/generated"


def _contained(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _contained(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_contained(item) for item in value]
    if isinstance(value, str) and re.fullmatch(WEB_URL, value):
        return LOOPBACK
    return value


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    case.body = _contained(case.body)
