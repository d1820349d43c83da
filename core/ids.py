"""Random hex for identifiers (request, message and event ids): from the operating system's
CSPRNG, as `secrets.token_hex` is, but read 4 KiB at a time. A getrandom call per id cost the API
4 % of its CPU under load (py-spy, 2026-12-06); one call now serves hundreds of ids. A forked
child starts with an empty pool: it never hands out its parent's bytes."""

from __future__ import annotations

import os

POOL_BYTES = 4096

_pool = ""  # hex digits, handed out from _next on
_next = 0


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes as 2 * `nbytes` hex digits, like `secrets.token_hex(nbytes)`."""
    global _pool, _next
    start, end = _next, _next + 2 * nbytes
    if end > len(_pool):
        _pool, start, end = os.urandom(max(POOL_BYTES, nbytes)).hex(), 0, 2 * nbytes
    _next = end
    return _pool[start:end]


def _forget() -> None:
    global _pool, _next
    _pool, _next = "", 0


os.register_at_fork(after_in_child=_forget)
