"""An admin's per-server settings: which channels Parrot learns from and replies in, and the
/generate cooldown. Each change drops the cache that holds the old value."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from bot.core.services.actor import Actor, require_manager
from bot.core.services.collection import CollectionService
from bot.core.services.generation import GenerationService
from bot.core.storage import corpus
from bot.core.storage.db import run_in_session


class SettingsService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        collection: CollectionService,
        generation: GenerationService,
    ) -> None:
        self._sessions = sessions
        self._collection = collection
        self._generation = generation

    @staticmethod
    def check_can_change(actor: Actor) -> None:
        require_manager(actor, "change Parrot's settings")

    async def set_channel_collect(self, actor: Actor, channel_id: int, enabled: bool) -> None:
        require_manager(actor, "choose the channels Parrot learns from")
        await run_in_session(
            self._sessions,
            lambda s: corpus.set_channel_collect(
                s, actor.server_id, channel_id, enabled, added_by=actor.user_id
            ),
        )
        self._collection.forget_settings(actor.server_id)

    async def set_channel_replies(
        self, actor: Actor, channel_id: int, enabled: bool, chance: float = 0.0
    ) -> None:
        require_manager(actor, "choose where Parrot replies")
        await run_in_session(
            self._sessions,
            lambda s: corpus.set_channel_replies(s, actor.server_id, channel_id, enabled, chance),
        )
        self._collection.forget_settings(actor.server_id)

    async def set_generate_cooldown(self, actor: Actor, seconds: float | None) -> None:
        """Set the server's per-user /generate cooldown (None: back to the config's)."""
        self.check_can_change(actor)
        await self._generation.set_cooldown_override(actor.server_id, seconds)
