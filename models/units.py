"""Units of loss. Training and evaluation work in nats per character (what cross-entropy
gives); people read bits per character (what papers and the bot's messages quote)."""

from __future__ import annotations

import math

LN2 = math.log(2.0)  # nats in one bit


def nats_to_bits(nats: float) -> float:
    return nats / LN2
