"""The Lua scripts of core/lua, put together: a script may start with shared parts."""

from __future__ import annotations

from importlib import resources


def lua(*parts: str) -> str:
    """The source of core/lua/<part>.lua for each part, in order."""
    folder = resources.files("core") / "lua"
    return "\n".join((folder / f"{part}.lua").read_text() for part in parts)
