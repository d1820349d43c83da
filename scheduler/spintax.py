"""Spintax: `{Hi|Hello} {there|{dear|good} friend}` resolved at random when a message is sent.

A group needs at least one `|` to be spintax: `{name}` stays literal (it is probably a template
placeholder), and so does any brace that is not closed. Never raises, and takes linear time:
braces are matched in one pass first, so an unclosed `{` is known to be literal up front.
"""

from __future__ import annotations

import random

_rng = random.SystemRandom()


def resolve(text: str, rng: random.Random = _rng) -> str:
    closing = _matching_braces(text)
    out: list[str] = []
    # Each frame is one open group: where its options start in `out`, and the options so far.
    # Inside a group every `}` closes a group (matching is by nesting), so `|` and `}` there are ours.
    groups: list[tuple[int, list[str]]] = []
    for i, char in enumerate(text):
        if char == "{" and i in closing:
            groups.append((len(out), []))
        elif groups and char == "|":
            start, options = groups[-1]
            options.append("".join(out[start:]))
            del out[start:]
        elif groups and char == "}":
            start, options = groups.pop()
            options.append("".join(out[start:]))
            del out[start:]
            out.append(rng.choice(options) if len(options) > 1 else "{" + options[0] + "}")
        else:
            out.append(char)
    return "".join(out)


def _matching_braces(text: str) -> dict[int, int]:
    """Index of each `{` that has a matching `}` -> index of that `}`."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for i, char in enumerate(text):
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
    return pairs
