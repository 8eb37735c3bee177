"""Snowflake ids and timestamps shaped like Discord's, so discord.py parses them unchanged."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000


class SnowflakeFactory:
    """Hands out increasing snowflakes whose timestamp bits are the current time.

    discord.py derives `created_at` from the top bits, so ids must look real; the low
    bits are a per-fake counter so every id is unique even within one millisecond.
    """

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next_id(self) -> int:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        return ((now_ms - DISCORD_EPOCH_MS) << 22) | (next(self._counter) & 0x3FFFFF)


def iso_now() -> str:
    """The current time in the ISO-8601 form Discord uses in payloads."""
    return datetime.now(UTC).isoformat()
