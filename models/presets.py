"""Named training configurations, as nanoGPT's config/ files are: one place for each set of
settings that more than one caller uses. Start from one and override what differs:
`dataclasses.replace(TINY, max_steps=10)`.

- `DEFAULT`: the shipped settings, i.e. `TrainConfig()`; `parrot train` takes its defaults
  from it, and the bot's `[model]`/`[training]` defaults are the same values.
- `TINY`: a model that trains in about a second on one core, for tests (1x32 GRU, a
  40-step budget, CPU, fp32 so results do not depend on the CPU's bf16 support).
- `CONSOLE`: the default model with the interactive console's 2-minute budget.

Importable without torch (`parrot --help` stays fast).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from models.config import TrainConfig

DEFAULT = TrainConfig()

TINY = TrainConfig(
    hidden_size=32,
    embed_dim=16,
    num_layers=1,
    dropout=0.0,
    seq_len=32,
    batch_size=8,
    lr=1e-2,  # a tiny model on a tiny text: a high rate gets it somewhere in 40 steps
    warmup_steps=5,
    max_minutes=None,
    max_steps=40,
    eval_interval=20,
    device="cpu",
    precision="fp32",
)

# A person is waiting at the prompt: a first model in minutes rather than the bot's ten.
CONSOLE = replace(DEFAULT, max_minutes=2.0)

PRESETS: Mapping[str, TrainConfig] = MappingProxyType(
    {"default": DEFAULT, "tiny": TINY, "console": CONSOLE}
)
