"""Secrets at rest (webhook secrets) encrypted with Fernet under the configured master key."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet


class SecretBox:
    def __init__(self, master_key: str) -> None:
        # Fernet wants 32 url-safe base64 bytes; derive them so any long passphrase works as a master key.
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(master_key.encode()).digest()))

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()
