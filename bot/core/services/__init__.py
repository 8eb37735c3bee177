"""The services the Discord cogs, the console and the CLI talk to, one per use case:

- `generation` (`GenerationService`): /generate's options, cooldowns and sampling;
- `training` (`TrainingService`): starting, cancelling and watching runs;
- `corpus` (`CorpusService`): status, uploads, clearing;
- `models` (`ModelService`): the active model, installing one made elsewhere;
- `collection` (`CollectionService`): messages from opted-in channels, edits, deletions;
- `settings` (`SettingsService`): an admin's channel and cooldown settings;
- `privacy` (`PrivacyService`): opt-out, export, forget, a removed server.

`ParrotServices` only holds them, with the parts they share, and runs the lifecycle. It is
built by `bot.core.app.build(config)`, the one composition root. `await start()` migrates
the database to head and starts the training worker and the scheduler; `await close()`
stops them, flushes collected messages and closes the database. Async methods never block
the event loop: database work runs in threads, sampling in the sampler's threads, training
in the worker process. Permission rules are enforced here (`NotAllowed`), so every front end
applies the same ones; front ends only say who is asking (`Actor`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig
from bot.core.services.collection import CollectionService
from bot.core.services.cooldowns import Cooldowns
from bot.core.services.corpus import CorpusService
from bot.core.services.generation import GenerationService
from bot.core.services.models import ModelService
from bot.core.services.privacy import PrivacyService
from bot.core.services.retirement import ModelRetirement
from bot.core.services.settings import SettingsService
from bot.core.services.training import TrainingService
from bot.core.storage.db import upgrade_to_head

if TYPE_CHECKING:
    from bot.core.generation.sampler import Sampler
    from bot.core.training.manager import TrainingManager
    from bot.core.training.scheduler import TrainingScheduler


class ParrotServices:
    def __init__(
        self,
        config: ParrotConfig,
        *,
        sessions: sessionmaker[Session],
        registry: ModelRegistry,
        sampler: Sampler,
        trainer: TrainingManager,
        dispose: Callable[[], None],
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.registry = registry
        self.sampler = sampler
        self.trainer = trainer
        self.scheduler: TrainingScheduler | None = None  # made by start() when enabled
        self.cooldowns = Cooldowns(config.cooldowns)
        self.collection = CollectionService(sessions)
        self.generation = GenerationService(config.generation, sessions, sampler, self.cooldowns)
        self.training = TrainingService(trainer, self.cooldowns)
        self.models = ModelService(sessions, registry)
        self.retirement = ModelRetirement(registry, self.generation, trainer)
        self.corpus = CorpusService(config, sessions, self.collection, self.models, self.retirement)
        self.settings = SettingsService(sessions, self.collection, self.generation)
        self.privacy = PrivacyService(
            sessions,
            collection=self.collection,
            generation=self.generation,
            cooldowns=self.cooldowns,
            registry=registry,
            manager=trainer,
            retirement=self.retirement,
        )
        self._dispose = dispose
        self._started = False
        self._closed = False

    async def start(self, *, migrate: bool = True, schedule: bool | None = None) -> None:
        """Migrate to head, then start the training worker and (if enabled) the scheduler."""
        if self._started:
            return
        if migrate:
            await asyncio.to_thread(upgrade_to_head, self.config.storage.resolved_database_url)
        await self.trainer.start()
        self._started = True
        if self.config.schedule.enabled if schedule is None else schedule:
            from bot.core.training.scheduler import TrainingScheduler

            self.scheduler = TrainingScheduler(self.config, self.sessions, self.trainer)
            await self.scheduler.start()

    async def close(self) -> None:
        """Stop everything started; safe to call twice."""
        try:
            await self.collection.buffer.close()
        finally:
            if self.scheduler is not None:
                scheduler, self.scheduler = self.scheduler, None
                await scheduler.stop()
            if self._started:
                self._started = False
                await self.trainer.stop()
            if not self._closed:
                self._closed = True
                self.sampler.close()
                self._dispose()
