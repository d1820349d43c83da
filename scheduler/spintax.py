"""Spintax: `{Hi|Hello} {there|{dear|good} friend}` resolved at random when a message is sent.

A group needs at least one `|` to be spintax: `{name}` stays literal (it is probably a template
placeholder), and so does any brace that is not closed. Never raises.
"""

from __future__ import annotations

import random

_rng = random.SystemRandom()


def resolve(text: str, rng: random.Random = _rng) -> str:
    try:
        resolved, _ = _sequence(text, 0, inside=False, rng=rng)
    except RecursionError:  # absurdly deep nesting: send the text as written rather than fail
        return text
    return resolved


def _sequence(text: str, i: int, *, inside: bool, rng: random.Random) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if inside and char in "|}":
            break
        if char == "{":
            group = _group(text, i, rng)
            if group is not None:
                chosen, i = group
                out.append(chosen)
                continue
        out.append(char)
        i += 1
    return "".join(out), i


def _group(text: str, start: int, rng: random.Random) -> tuple[str, int] | None:
    """The resolved group opening at `start` and the index after it, or None if it never closes."""
    options: list[str] = []
    i = start + 1
    while True:
        option, i = _sequence(text, i, inside=True, rng=rng)
        options.append(option)
        if i >= len(text):
            return None
        if text[i] == "}":
            break
        i += 1  # past "|"
    end = i + 1
    if len(options) == 1:
        return "{" + options[0] + "}", end
    return rng.choice(options), end
