"""After models were retired (a privacy request, `/corpus clear`): what must follow the
commit. Their files go, the sampler stops serving them (or serves the model activated in
their place), and the rebuilds that were owed are queued ahead of scheduled runs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.core.checkpoints import lineage
from bot.core.checkpoints.lineage import RetiredModels
from bot.core.checkpoints.registry import ModelRegistry
from bot.core.services.generation import GenerationService

if TYPE_CHECKING:
    from bot.core.training.manager import TrainingManager


class ModelRetirement:
    def __init__(
        self, registry: ModelRegistry, generation: GenerationService, manager: TrainingManager
    ) -> None:
        self._registry = registry
        self._generation = generation
        self._manager = manager

    async def finish(self, retired: RetiredModels) -> None:
        """Call once the transaction that retired the models has committed."""
        await asyncio.to_thread(lineage.delete_retired_files, retired)
        for server_id, replacement in retired.replacements.items():
            if replacement is None:
                self._generation.forget_models(server_id)
            else:
                await asyncio.to_thread(self._registry.notify_activated, server_id, replacement)
        await asyncio.to_thread(self._manager.queue_owed_rebuilds)
