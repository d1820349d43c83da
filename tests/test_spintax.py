import random

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


def test_deep_nesting_does_not_crash() -> None:
    text = "{a|" * 200 + "z" + "}" * 200
    assert resolve(text) in {"a", "z"}


def test_absurd_nesting_is_sent_as_written() -> None:
    text = "{a|" * 5000 + "z" + "}" * 5000
    assert resolve(text) == text
