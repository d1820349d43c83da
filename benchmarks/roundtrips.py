"""Counts Redis round trips in this process: every command or pipeline a connection sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class RoundTrips:
    def __init__(self, connection_class: type) -> None:
        self.connection_class = connection_class
        self.count = 0

    @contextmanager
    def counting(self) -> Iterator[Callable[[], int]]:
        original = self.connection_class.send_packed_command
        start = self.count

        async def send_packed_command(connection: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            await original(connection, command, check_health)

        self.connection_class.send_packed_command = send_packed_command
        try:
            yield lambda: self.count - start
        finally:
            self.connection_class.send_packed_command = original
