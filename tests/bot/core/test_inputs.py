"""Validation of command arguments shared by the cogs and the console."""

from __future__ import annotations

import pytest

from bot.core.errors import InvalidInput
from bot.core.inputs import PROMPT_MAX_CHARS, clean_prompt, generate_options, train_arch


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * (PROMPT_MAX_CHARS + 1), "limit is 500"),
        ("hello\x07world", "U+0007"),
        ("abc\x1b[31m", "control characters"),
        ("\u200b\u200c\u2060", "empty"),
        ("lone \ud800 surrogate", "broken characters"),
    ],
)
def test_bad_prompts_are_refused_with_a_reason(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        clean_prompt(raw)
    assert fragment in str(caught.value)


def test_invisible_characters_are_dropped_but_emoji_joiners_kept() -> None:
    assert clean_prompt("@\u200beveryone") == "@everyone"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_prompt(family) == family
    assert clean_prompt("line one\nline\ttwo") == "line one\nline\ttwo"
    assert clean_prompt("日本語 🦜 é") == "日本語 🦜 é"
    assert (
        clean_prompt("private \ue000 use, new \U0001face") == "private \ue000 use, new \U0001face"
    )


def test_generate_options_bounds_and_defaults() -> None:
    options = generate_options(
        "Once upon", None, None, None, default_length=300, default_temperature=0.8
    )
    assert (options.length, options.temperature, options.seed) == (300, 0.8, None)
    with pytest.raises(InvalidInput, match="length"):
        generate_options("a", 0, None, None, default_length=300, default_temperature=0.8)
    with pytest.raises(InvalidInput, match="between 1 and 200"):
        generate_options(
            "a", 300, None, None, default_length=100, default_temperature=0.8, max_length=200
        )
    with pytest.raises(InvalidInput, match="temperature"):
        generate_options("a", None, 2.5, None, default_length=300, default_temperature=0.8)
    with pytest.raises(InvalidInput, match="seed"):
        generate_options("a", None, None, -1, default_length=300, default_temperature=0.8)


def test_train_arch_choices() -> None:
    assert train_arch("lstm") == "lstm"
    with pytest.raises(InvalidInput):
        train_arch("transformer")
