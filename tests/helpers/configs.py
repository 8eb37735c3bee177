"""Config pieces shared by the tests."""

from __future__ import annotations

from bot.core.config import ModelConfig

# Tests train tiny models from scratch: the bundled base model (2x256) would make every
# first run a slow fine-tune of a large model. Tests of the base model set it themselves.
FROM_SCRATCH = ModelConfig(base="")
