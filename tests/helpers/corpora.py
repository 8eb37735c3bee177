"""The small texts the tests train and sample on (a model learns them in seconds)."""

from __future__ import annotations

SMALL_TEXT = (
    "the quick brown fox jumps over the lazy dog. "
    "a stitch in time saves nine. "
    "to be or not to be, that is the question.\n"
) * 40
