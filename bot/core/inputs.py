"""Bounds and validation of command arguments, shared by the Discord cogs and the console.

The bounds are constants so the cogs can declare them to Discord (`app_commands.Range`) and
the console can enforce the very same numbers; validation still runs inside the command,
because a client (or a fake) can send anything. Errors are `InvalidInput` with a message
for the person who typed the command.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from bot.core.errors import InvalidInput
from bot.core.kinds import TRAIN_ARCHS, TRAIN_MODES, TrainArch, TrainMode

PROMPT_MAX_CHARS = 500
LENGTH_MIN = 1
LENGTH_MAX = 1500
TEMPERATURE_MIN = 0.1
TEMPERATURE_MAX = 2.0
SEED_MIN = 0
SEED_MAX = 2**31 - 1
COOLDOWN_SECONDS_MIN = 0
COOLDOWN_SECONDS_MAX = 3600  # a server's per-user /generate cooldown (/settings cooldown)


# Invisible "format" characters (zero-width space/joiners, bidi overrides, BOM...) carry no
# text for the model and are a favourite for hiding mentions; they are dropped from prompts.
# The zero-width joiner stays: it is part of many emoji sequences.
_KEPT_FORMAT_CHARS = {"\u200d"}
_ALLOWED_CONTROL_CHARS = {"\n", "\t"}


@dataclass(frozen=True)
class GenerateOptions:
    prompt: str
    length: int
    temperature: float
    seed: int | None = None


def clean_prompt(raw: str) -> str:
    """Return the prompt the model will see, or raise InvalidInput saying what is wrong."""
    if len(raw) > PROMPT_MAX_CHARS:
        raise InvalidInput(
            f"The start text is {len(raw)} characters long; the limit is {PROMPT_MAX_CHARS}."
        )
    controls = [
        c for c in raw if unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROL_CHARS
    ]
    if controls:
        raise InvalidInput(
            "The start text contains control characters "
            f"({', '.join(sorted({f'U+{ord(c):04X}' for c in controls}))}); remove them and try again."
        )
    # Lone surrogates are not text (they cannot even be encoded as UTF-8). Unassigned and
    # private-use code points are kept: a newer emoji than this Python's Unicode tables is
    # unassigned here, and the model maps characters it never saw to <unk> anyway.
    broken = [c for c in raw if unicodedata.category(c) == "Cs"]
    if broken:
        raise InvalidInput(
            "The start text contains broken characters "
            f"({', '.join(sorted({f'U+{ord(c):04X}' for c in broken}))}); remove them and try again."
        )
    text = "".join(c for c in raw if unicodedata.category(c) != "Cf" or c in _KEPT_FORMAT_CHARS)
    if not text.strip():
        raise InvalidInput("The start text is empty: give me a few words to continue.")
    return text


def generate_options(
    prompt: str,
    length: int | None,
    temperature: float | None,
    seed: int | None,
    *,
    default_length: int,
    default_temperature: float,
    max_length: int = LENGTH_MAX,
) -> GenerateOptions:
    length = default_length if length is None else length
    temperature = default_temperature if temperature is None else temperature
    top = min(LENGTH_MAX, max_length)
    if not LENGTH_MIN <= length <= top:
        raise InvalidInput(f"length must be between {LENGTH_MIN} and {top}.")
    if not TEMPERATURE_MIN <= temperature <= TEMPERATURE_MAX:
        raise InvalidInput(f"temperature must be between {TEMPERATURE_MIN} and {TEMPERATURE_MAX}.")
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        raise InvalidInput(f"seed must be between {SEED_MIN} and {SEED_MAX}.")
    return GenerateOptions(clean_prompt(prompt), length, temperature, seed)


def generate_cooldown_seconds(seconds: float) -> float:
    """A server's per-user /generate cooldown, checked against the bounds."""
    if not COOLDOWN_SECONDS_MIN <= seconds <= COOLDOWN_SECONDS_MAX:  # False for NaN too
        raise InvalidInput(
            f"The cooldown must be between {COOLDOWN_SECONDS_MIN} and {COOLDOWN_SECONDS_MAX} seconds."
        )
    return float(seconds)


def train_mode(value: str) -> TrainMode:
    for mode in TRAIN_MODES:
        if value == mode:
            return mode
    raise InvalidInput(f"mode must be one of {', '.join(TRAIN_MODES)}.")


def train_arch(value: str) -> TrainArch:
    for arch in TRAIN_ARCHS:
        if value == arch:
            return arch
    raise InvalidInput(f"arch must be one of {', '.join(TRAIN_ARCHS)}.")
