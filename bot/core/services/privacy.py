"""Privacy requests, fanned out to everything that holds a user's or a server's data: the
database, the message buffer, the caches, and for a removed server its checkpoints."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.services.collection import CollectionService
from bot.core.services.cooldowns import Cooldowns
from bot.core.services.generation import GenerationService
from bot.core.storage import privacy
from bot.core.storage.db import run_in_session
from bot.core.storage.privacy import PurgeCounts

if TYPE_CHECKING:
    from bot.core.training.manager import TrainingManager


class PrivacyService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        collection: CollectionService,
        generation: GenerationService,
        cooldowns: Cooldowns,
        registry: ModelRegistry,
        manager: TrainingManager,
    ) -> None:
        self._sessions = sessions
        self._collection = collection
        self._generation = generation
        self._cooldowns = cooldowns
        self._registry = registry
        self._manager = manager

    async def opt_out(self, user_id: int, server_id: int | None) -> PurgeCounts:
        self._collection.buffer.discard_author(user_id, server_id)
        return await run_in_session(
            self._sessions, lambda s: privacy.opt_out(s, user_id, server_id)
        )

    async def opt_in(self, user_id: int, server_id: int | None) -> bool:
        # Messages buffered while the user was opted out are dropped, not stored late.
        await self._collection.buffer.flush()
        return await run_in_session(self._sessions, lambda s: privacy.opt_in(s, user_id, server_id))

    async def forget_user(self, user_id: int, server_id: int | None) -> PurgeCounts:
        self._collection.buffer.discard_author(user_id, server_id)
        return await run_in_session(
            self._sessions, lambda s: privacy.purge_user(s, user_id, server_id)
        )

    async def export_user(self, user_id: int) -> bytes:
        await self._collection.buffer.flush()
        data = await run_in_session(self._sessions, lambda s: privacy.export_user(s, user_id))
        return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")

    async def remove_server(self, server_id: int) -> None:
        """The bot left the server: delete its data, its checkpoints and its cooldowns."""
        self._collection.buffer.discard_server(server_id)
        self._collection.forget_settings(server_id)
        self._cooldowns.forget_server(server_id)
        await self._manager.cancel(server_id)
        await run_in_session(self._sessions, lambda s: privacy.purge_server(s, server_id))
        self._generation.forget_server(server_id)  # after the purge: no stale re-read
        await asyncio.to_thread(self._registry.delete_server, server_id)
