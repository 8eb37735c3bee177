"""Tiny corpora and a tiny trained checkpoint shared by the models/ tests (fast on 1 core)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import torch

from models.checkpoint import Checkpoint
from models.config import TrainConfig
from models.presets import TINY
from models.train import train
from tests.helpers.corpora import SMALL_TEXT


def tiny_config(**overrides: Any) -> TrainConfig:
    """The `tiny` preset with some settings changed."""
    return replace(TINY, **overrides)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    # The CI machine and developers' laptops are small and shared: stay on one core.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def small_text() -> str:
    return SMALL_TEXT


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Checkpoint:
    torch.set_num_threads(1)
    return train(SMALL_TEXT, tiny_config(num_layers=2, max_steps=60)).checkpoint
