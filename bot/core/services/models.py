"""What the server's model is, and installing one made elsewhere."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.install import install_checkpoint
from bot.core.checkpoints.registry import ModelRecord, ModelRegistry
from bot.core.errors import ModelNotReady


@dataclass(frozen=True)
class ModelInfo:
    model: ModelRecord
    loss_history: list[list[Any]]  # [[step, train_loss, val_loss_or_None], ...] nats/char


class ModelService:
    def __init__(self, sessions: sessionmaker[Session], registry: ModelRegistry) -> None:
        self._sessions = sessions
        self._registry = registry

    async def active(self, server_id: int) -> ModelRecord | None:
        return await asyncio.to_thread(self._registry.active_model, server_id)

    async def info(self, server_id: int) -> ModelInfo:
        """The active model (ModelNotReady when none) and its loss history.

        The history comes from the run that made the model, or from the checkpoint's own
        statistics for a model that no run here made (the console's bundled one).
        """
        model = await self.active(server_id)
        if model is None:
            raise ModelNotReady()
        history = model.loss_history
        if not history:
            history = await asyncio.to_thread(_checkpoint_history, model.path)
        return ModelInfo(model, history)

    async def install(self, server_id: int, source: Path) -> ModelRecord:
        """Copy a checkpoint made elsewhere (`parrot train`) in as the server's active model."""
        return await asyncio.to_thread(
            install_checkpoint, self._registry, self._sessions, server_id, source
        )


def _checkpoint_history(path: Path) -> list[list[Any]]:
    from models.checkpoint import load_checkpoint
    from models.errors import CheckpointError, CheckpointUnavailable

    try:
        stats = load_checkpoint(path).stats
    except (CheckpointError, CheckpointUnavailable):
        return []
    return [list(row) for row in stats.val_loss_history]
