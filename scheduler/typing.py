"""How long "typing..." shows before a send: longer for a longer text, as a person types."""

from __future__ import annotations

from scheduler.drivers.base import SendType

TYPING_MS_PER_CHAR = 50
TYPING_MIN_MS = 1000
TYPING_MAX_MS = 5000
# Nobody types a reaction, an edit's replacement or a deletion in a chat.
UNTYPED: frozenset[SendType] = frozenset({"reaction", "edit", "delete"})


def typing_ms(type_: SendType, typing: bool, text: str | None) -> int:
    """Milliseconds of "typing..." before a send of `type_` whose text (or caption, or question)
    is `text`; 0 when none is shown. It is taken out of the lane gap (core/lua/common.lua)."""
    if not typing or type_ in UNTYPED:
        return 0
    return max(TYPING_MIN_MS, min(TYPING_MAX_MS, TYPING_MS_PER_CHAR * len(text or "")))
