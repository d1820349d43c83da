"""Per-instance settings (API.md, "Per-instance settings"): one typed record for every per-number
switch, kept as JSON in the instance's Redis hash (field `settings`) with the proxy URL sealed."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, StrictBool, field_validator
from yarl import URL

from core.crypto import SecretBox
from core.records import ApiModel

Deliverability = Literal["standard", "cautious"]
PROXY_SCHEMES = ("socks5", "http", "https")
MASK = "***"


class InstanceSettings(ApiModel):
    """Every field has the contract's default, so an instance created before settings existed (no
    `settings` field in its record) reads as all defaults."""

    # "standard": the seed's lanes and nothing else holds a message; "cautious": also the warm-up
    # schedule, first-contact limits and per-recipient spacing of GATEWAY_LANES (core/lua/common.lua).
    deliverability: Deliverability = "standard"
    reject_calls: StrictBool = False
    reject_call_message: str | None = Field(default=None, min_length=1, max_length=1000)
    always_online: StrictBool = False
    auto_read: StrictBool = False
    ignore_groups: StrictBool = False
    sync_history: StrictBool = True
    proxy_url: str | None = Field(default=None, max_length=2048)

    @field_validator("proxy_url")
    @classmethod
    def _proxy_shape(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parsed = URL(url)
            _ = parsed.port  # an out-of-range port raises here
        except (ValueError, TypeError):
            raise ValueError("must be a URL") from None
        if parsed.scheme not in PROXY_SCHEMES or not parsed.raw_host or parsed.path not in ("", "/"):
            raise ValueError("must be socks5://, http:// or https:// [user:password@]host[:port], nothing after")
        return url

    @property
    def cautious(self) -> bool:
        return self.deliverability == "cautious"

    def patched(self, patch: InstanceSettings) -> InstanceSettings:
        """These settings with the fields the client sent in `patch` (parsed from a partial body). A
        proxy URL sent back as it was answered (password `***`) keeps the stored password."""
        update = {name: getattr(patch, name) for name in patch.model_fields_set}
        if "proxy_url" in update and update["proxy_url"] == self.answered().proxy_url:
            update["proxy_url"] = self.proxy_url
        return self.model_copy(update=update)

    def answered(self) -> InstanceSettings:
        """As the API answers them: the proxy's password, if any, as `***`."""
        if self.proxy_url is None:
            return self
        parsed = URL(self.proxy_url)
        if parsed.password is None:
            return self
        return self.model_copy(update={"proxy_url": str(parsed.with_password(MASK))})

    def sealed(self, box: SecretBox) -> str:
        """The JSON stored in the instance hash."""
        data = self.model_dump(by_alias=True)
        if self.proxy_url is not None:
            data["proxyUrl"] = box.seal(self.proxy_url)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def unsealed(cls, stored: str | None, box: SecretBox) -> InstanceSettings:
        """The settings of an instance hash's `settings` field (None: all defaults)."""
        if not stored:
            return cls()
        data = json.loads(stored)
        if data.get("proxyUrl"):
            data["proxyUrl"] = box.open(data["proxyUrl"])
        return cls.model_validate(data)
