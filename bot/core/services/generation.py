"""Generating text for a server: argument defaults and bounds, cooldowns, the sampler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from bot.core.config import GenerationConfig
from bot.core.errors import ModelNotReady, ModelRebuilding
from bot.core.inputs import GenerateOptions, generate_cooldown_seconds, generate_options
from bot.core.logs import get_logger
from bot.core.services.actor import Actor
from bot.core.services.cooldowns import Cooldowns
from bot.core.storage import corpus
from bot.core.storage.db import run_in_session
from bot.core.training import rebuilds

if TYPE_CHECKING:
    from bot.core.generation.sampler import Sampler
    from models.sample import SampleRequest

log = get_logger(__name__)
BASE_MODEL_NOTE = "-# From Parrot's base model: this server has no model of its own yet."


class GenerationService:
    def __init__(
        self,
        config: GenerationConfig,
        sessions: sessionmaker[Session],
        sampler: Sampler,
        cooldowns: Cooldowns,
    ) -> None:
        self.config = config
        self._sessions = sessions
        self._sampler = sampler
        self._cooldowns = cooldowns
        # Per-server /generate cooldown overrides (None: the config's), read once per server
        # and replaced when an admin changes one, so a /generate never waits on the database.
        self._cooldown_overrides: dict[int, float | None] = {}
        self._background: set[asyncio.Task[float | None]] = set()

    def options(
        self,
        prompt: str,
        length: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> GenerateOptions:
        """Validated options, with the config's defaults for what was left out."""
        return generate_options(
            prompt,
            length,
            temperature,
            seed,
            default_length=self.config.default_length,
            default_temperature=self.config.default_temperature,
            max_length=self.config.max_length,
        )

    async def take_cooldown(self, actor: Actor) -> None:
        """Raise OnCooldown, or record this use (per user and per server).

        The per-user wait is the server's override (`cooldown_override`), else the config's
        `generate_per_user_seconds`. Never waits on the database: /generate must acknowledge
        Discord within 3 s whatever the database is doing (issue #14). An override not read
        yet is read in the background for the next request; until then the config's wait
        applies (a user's first request passes either way).
        """
        if actor.server_id in self._cooldown_overrides:
            override = self._cooldown_overrides[actor.server_id]
        else:
            override = None
            self._read_override_soon(actor.server_id)
        self._cooldowns.take_generate(actor.server_id, actor.user_id, user_seconds=override)

    def _read_override_soon(self, server_id: int) -> None:
        task = asyncio.create_task(self.cooldown_override(server_id))
        self._background.add(task)  # a reference, so the task is not collected mid-read
        task.add_done_callback(self._override_read)

    def _override_read(self, task: asyncio.Task[float | None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not read a server's /generate cooldown: %s", task.exception())

    async def cooldown_override(self, server_id: int) -> float | None:
        """The server's per-user /generate cooldown in seconds; None: the config's applies."""
        if server_id in self._cooldown_overrides:
            return self._cooldown_overrides[server_id]
        override = await run_in_session(
            self._sessions, lambda s: corpus.generate_cooldown_override(s, server_id)
        )
        # setdefault: an admin's change made while this read was in flight wins over it.
        return self._cooldown_overrides.setdefault(server_id, override)

    async def set_cooldown_override(self, server_id: int, seconds: float | None) -> None:
        """Store the server's per-user cooldown (None: back to the config's); no permission
        check here, the settings use case does it."""
        if seconds is not None:
            seconds = generate_cooldown_seconds(seconds)
        await run_in_session(
            self._sessions, lambda s: corpus.set_generate_cooldown(s, server_id, seconds)
        )
        self._cooldown_overrides[server_id] = seconds

    def forget_server(self, server_id: int) -> None:
        """The bot left the server: nothing of it stays in memory, its loaded model included
        (a re-invited server must not be served the purged model)."""
        self._cooldown_overrides.pop(server_id, None)
        self.forget_models(server_id)

    def _sample_request(self, options: GenerateOptions) -> SampleRequest:
        from models.sample import SampleRequest

        return SampleRequest(
            prompt=options.prompt,
            max_chars=options.length,
            temperature=options.temperature,
            top_k=self.config.top_k,
            top_p=self.config.top_p,
            seed=options.seed,
        )

    async def generate(self, server_id: int, options: GenerateOptions) -> str:
        """The continuation of `options.prompt` (the prompt itself is not included)."""
        try:
            result = await self._sampler.generate(server_id, self._sample_request(options))
        except ModelNotReady as error:
            raise await self._why_no_model(server_id, error) from None
        return result.text

    async def stream(self, server_id: int, options: GenerateOptions) -> AsyncIterator[str]:
        """The continuation in chunks, as it is sampled (ModelNotReady before the first)."""
        stream = self._sampler.stream(server_id, self._sample_request(options))
        try:
            async for chunk in stream:
                yield chunk
        except ModelNotReady as error:
            raise await self._why_no_model(server_id, error) from None
        finally:
            await stream.aclose()

    def source_note(self, server_id: int) -> str | None:
        """One short line to show above a continuation that did not come from the server's
        own model (the base model answers until the server has one)."""
        if self._sampler.serves_fallback(server_id):
            return BASE_MODEL_NOTE
        return None

    def forget_models(self, server_id: int) -> None:
        """The server's models were retired: stop serving whatever is loaded for it."""
        self._sampler.forget_server(server_id)

    async def _why_no_model(self, server_id: int, error: ModelNotReady) -> ModelNotReady:
        """ "No model yet" becomes "being rebuilt" while a rebuild is owed or queued: the
        server had a model, and a privacy request or `/corpus clear` retired it."""
        if type(error) is not ModelNotReady:
            return error  # already specific (a missing guard, an unloadable file)
        rebuilding = await run_in_session(
            self._sessions, lambda s: rebuilds.rebuild_pending(s, server_id)
        )
        return ModelRebuilding() if rebuilding else error
