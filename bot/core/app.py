"""The composition root: `build(config)` makes every part of Parrot from one config.

The Discord bot, the plugin, the console and `parrot train-server` all build their
services here and nowhere else, so an engine, a registry, a sampler or a training manager
is only ever constructed in this function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig
from bot.core.services import ParrotServices
from bot.core.storage.db import make_engine, make_session_factory


def build(
    config: ParrotConfig, *, train_overrides: Mapping[str, Any] | None = None
) -> ParrotServices:
    """Every part, wired; no I/O beyond creating the engine (`start()` migrates).

    `train_overrides` are extra `models.config.TrainConfig` fields for every run (tests use
    them for tiny models and step budgets).
    """
    # Imported here: torch is heavy, and `parrot --help` or `parrot db` never need it.
    from bot.core.checkpoints.base_model import BaseModelRecord, base_checkpoint_path
    from bot.core.generation.sampler import Sampler
    from bot.core.training.manager import TrainingManager
    from models.device import resolve_device

    url = config.storage.resolved_database_url
    engine = make_engine(url, busy_timeout_ms=config.storage.sqlite_busy_timeout_ms)
    sessions = make_session_factory(engine)
    registry = ModelRegistry.from_config(config, sessions)
    base = base_checkpoint_path(config.model.base)
    sampler = Sampler.from_config(
        registry,
        config.generation,
        device=resolve_device(config.training.device),
        fallback=BaseModelRecord(base) if base is not None else None,
    )
    trainer = TrainingManager(config, sessions, registry, train_overrides=train_overrides)
    return ParrotServices(
        config,
        sessions=sessions,
        registry=registry,
        sampler=sampler,
        trainer=trainer,
        dispose=engine.dispose,
    )
