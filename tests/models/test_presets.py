from __future__ import annotations

import pytest

from models.config import TrainConfig
from models.presets import DEFAULT, PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config(name: str) -> None:
    PRESETS[name].validate()


def test_the_default_preset_is_the_shipped_defaults() -> None:
    assert TrainConfig() == DEFAULT
