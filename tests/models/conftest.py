"""Tiny corpora and a tiny trained checkpoint shared by the models/ tests (fast on 1 core)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from models.checkpoint import Checkpoint
from models.train import TrainConfig, train

SMALL_TEXT = (
    "the quick brown fox jumps over the lazy dog. "
    "a stitch in time saves nine. "
    "to be or not to be, that is the question.\n"
) * 40


def tiny_config(**overrides: object) -> TrainConfig:
    base: dict[str, object] = {
        "hidden_size": 32,
        "embed_dim": 16,
        "num_layers": 1,
        "dropout": 0.0,
        "seq_len": 32,
        "batch_size": 8,
        "lr": 1e-2,
        "warmup_steps": 5,
        "max_minutes": None,
        "max_steps": 40,
        "eval_interval": 20,
        "device": "cpu",
        "precision": "fp32",
    }
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


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
