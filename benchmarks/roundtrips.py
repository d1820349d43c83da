"""Counts Redis round trips in this process: every command or pipeline a connection sends, and
which command (or the first of a pipeline) it was; the benchmark's own connections, named
NOT_COUNTED, are left out.

This is the figure to plan with. Redis's INFO commandstats counts something else: every command
a Lua script calls too (an EVALSHA whose script runs RPUSH counts EVALSHA 1 and RPUSH 1), every
client's commands, and from its last reset (instance creation and linking included), so it
reads higher."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript

NOT_COUNTED = "bench-not-counted"  # client name of the benchmark's own connections


def _name(packed: Any) -> str:
    """The command, and for EVALSHA its script's sha: `EVALSHA <sha>`."""
    first = packed[0] if isinstance(packed, list) and packed else packed
    text = bytes(first[:128]) if isinstance(first, bytes | bytearray | memoryview) else b""
    parts = text.split(b"\r\n")
    name = parts[2].decode(errors="replace").upper() if len(parts) > 2 else "?"
    return f"{name} {parts[4].decode(errors='replace')}" if name == "EVALSHA" and len(parts) > 4 else name


def script_names() -> dict[str, str]:
    """The sha of every script registered in this process -> the core/lua file it ends with (the
    script's own part, after the shared ones)."""
    folder = resources.files("core") / "lua"
    files = {f.name.removesuffix(".lua"): f.read_text().rstrip() for f in folder.iterdir() if f.name.endswith(".lua")}
    names = {}
    for found in gc.get_objects():
        if isinstance(found, AsyncScript):
            source = found.script.decode() if isinstance(found.script, bytes) else str(found.script)
            names[found.sha] = next((n for n, text in files.items() if source.rstrip().endswith(text)), "?")
    return names


class RoundTrips:
    def __init__(self) -> None:
        self.connection_class = AbstractConnection  # every asyncio connection's class derives from it
        self.count = 0
        self.by_command: Counter[str] = Counter()

    @contextmanager
    def counting(self) -> Iterator[Callable[[], int]]:
        original = self.connection_class.send_packed_command
        start = self.count

        async def send_packed_command(connection: Any, command: Any, check_health: bool = True) -> None:
            if connection.client_name != NOT_COUNTED:
                self.count += 1
                self.by_command[_name(command)] += 1
            await original(connection, command, check_health)

        setattr(self.connection_class, "send_packed_command", send_packed_command)  # noqa: B010 (a patch)
        try:
            yield lambda: self.count - start
        finally:
            setattr(self.connection_class, "send_packed_command", original)  # noqa: B010
