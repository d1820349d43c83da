import random
import time

import pytest

from scheduler.spintax import resolve


def outcomes(text: str, tries: int = 300) -> set[str]:
    rng = random.Random(7)
    return {resolve(text, rng) for _ in range(tries)}


def test_each_option_of_a_group_is_chosen() -> None:
    assert outcomes("{Hi|Hello} there") == {"Hi there", "Hello there"}


def test_nested_groups_resolve_inside_out() -> None:
    assert outcomes("{Hi|Hello} {there|{dear|good} friend}") == {
        f"{greeting} {rest}" for greeting in ("Hi", "Hello") for rest in ("there", "dear friend", "good friend")
    }


def test_empty_options_are_allowed() -> None:
    assert outcomes("a{|b}c") == {"ac", "abc"}


@pytest.mark.parametrize(
    "text",
    ["{unclosed", "closed}", "{a|b", "a|b", "}{", "{name}", "Hello {name}, {", "{{x}}", "", "{|"],
)
def test_text_without_complete_spintax_is_left_as_it_is(text: str) -> None:
    assert outcomes(text, tries=20) == {text}


def test_unbalanced_brace_does_not_stop_later_groups() -> None:
    assert outcomes("{oops {a|b}") == {"{oops a", "{oops b"}


def test_placeholder_inside_a_group_stays_literal() -> None:
    assert outcomes("{Hi {name}|Hello}") == {"Hi {name}", "Hello"}


@pytest.mark.parametrize("depth", [200, 5000])
def test_deep_nesting_resolves_without_crashing(depth: int) -> None:
    text = "{a|" * depth + "z" + "}" * depth
    assert resolve(text) in {"a", "z"}


@pytest.mark.parametrize("text", ["{" * 5000, "{a|" * 3000, "{|" * 3000 + "x", "}{" * 3000])
def test_pathological_braces_take_linear_time(text: str) -> None:
    started = time.perf_counter()
    assert resolve(text) == text
    assert time.perf_counter() - started < 0.05
