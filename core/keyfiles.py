"""Secrets the embedded default generates once and keeps in the data directory (mode 0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from config import Settings

ADMIN_KEY_FILE = "admin.key"
SECRET_KEY_FILE = "secret.key"


def read_or_create(path: Path, make: str) -> tuple[str, bool]:
    """The secret stored at `path`, creating it from `make` if absent; True when created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as handle:
        handle.write(make + "\n")
    return make, True


def with_generated_secrets(settings: Settings) -> tuple[Settings, list[str]]:
    """Fill in the admin and master keys from the data directory when not configured.

    Returns the completed settings and lines to tell the operator.
    """
    notes: list[str] = []
    updates: dict[str, SecretStr] = {}
    if settings.admin_key is None:
        path = settings.data_dir / ADMIN_KEY_FILE
        key, created = read_or_create(path, f"wag_admin_{secrets.token_urlsafe(32)}")
        updates["admin_key"] = SecretStr(key)
        notes.append(f"admin key {'generated and ' if created else ''}stored in {path.resolve()} (mode 0600)")
    if settings.secret_key is None:
        path = settings.data_dir / SECRET_KEY_FILE
        key, _ = read_or_create(path, secrets.token_urlsafe(32))
        updates["secret_key"] = SecretStr(key)
    return settings.model_copy(update=updates), notes
