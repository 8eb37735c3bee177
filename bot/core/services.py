"""ParrotServices: the one façade the Discord cogs, the console and the CLI talk to.

It owns the engine, the session factory, the model registry, the sampler, the training
manager, the scheduler, the cooldowns and the message buffer, all built from one
`ParrotConfig`. Its async methods never block the event loop: database work runs in worker
threads (`asyncio.to_thread`), sampling in the sampler's threads, training in the worker
process. Permission rules live here, as `NotAllowed`, so every front end enforces the same
ones; the front ends only say who is asking (`Actor`).

Lifecycle: `ParrotServices.from_config(config)` builds (no I/O beyond creating the engine),
`await start()` migrates the database to head and starts the training worker and the
scheduler, `await close()` stops them, flushes collected messages and closes the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from bot.core import corpus
from bot.core.collector import MessageBuffer
from bot.core.config import ParrotConfig
from bot.core.cooldowns import Cooldowns
from bot.core.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.core.errors import InvalidInput, ModelNotReady, NotAllowed
from bot.core.inputs import (
    GenerateOptions,
    TrainArch,
    TrainMode,
    generate_cooldown_seconds,
    generate_options,
)
from bot.core.registry import ActiveModel, ModelRegistry

if TYPE_CHECKING:
    from bot.core.sampling import Sampler
    from bot.core.scheduling import TrainingScheduler
    from bot.core.training import RunEvent, TrainingManager
    from models.sample import SampleRequest

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """Who asks, where, and whether they may manage the server (Manage Server)."""

    server_id: int
    user_id: int
    can_manage: bool = False


@dataclass(frozen=True)
class CorpusStatus:
    messages: int
    documents: int
    chars: int
    authors: int
    collecting_channels: list[int]
    reply_channels: list[int]
    collecting: bool
    chars_since_last_training: int
    min_chars_first_model: int
    model: ActiveModel | None


@dataclass(frozen=True)
class TrainingUpdate:
    """One event from a training run, in the words the front ends show."""

    run_id: int
    status: str  # queued | running | succeeded | failed | cancelled
    mode: str = ""
    arch: str = ""
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    val_loss: float | None = None
    eta_seconds: float | None = None
    queue_position: int = 0
    val_bits_per_char: float | None = None
    activated: bool = False
    error: str | None = None
    notify_channel_id: int | None = None

    @property
    def final(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class ModelInfo:
    model: ActiveModel
    loss_history: list[list[Any]]  # [[step, train_loss, val_loss_or_None], ...] nats/char


@dataclass(frozen=True)
class ChannelSettings:
    collect: bool = False
    replies: bool = False
    reply_chance: float = 0.0


class ParrotServices:
    def __init__(
        self,
        config: ParrotConfig,
        *,
        sessions: sessionmaker[Session],
        registry: ModelRegistry,
        sampler: Sampler,
        training: TrainingManager,
        dispose: Callable[[], None],
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.registry = registry
        self.sampler = sampler
        self.training = training
        self.scheduler: TrainingScheduler | None = None  # made by start() when enabled
        self.cooldowns = Cooldowns(config.cooldowns)
        self.messages = MessageBuffer(self._store_messages)
        self._dispose = dispose
        self._channels: dict[int, dict[int, ChannelSettings]] = {}
        # Per-server /generate cooldown overrides (None: the config's), read once per server
        # and replaced when an admin changes one, so a /generate never waits on the database.
        self._generate_cooldowns: dict[int, float | None] = {}
        self._started = False
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, config: ParrotConfig, *, train_overrides: Mapping[str, Any] | None = None
    ) -> ParrotServices:
        """Build every part from `config`; `train_overrides` are extra TrainConfig fields for
        every run (tests use them for tiny models and step budgets)."""
        from bot.core.sampling import Sampler
        from bot.core.training import TrainingManager
        from models.train import resolve_device

        url = config.storage.resolved_database_url
        engine = make_engine(url, busy_timeout_ms=config.storage.sqlite_busy_timeout_ms)
        sessions = make_session_factory(engine)
        registry = ModelRegistry.from_config(config, sessions)
        sampler = Sampler.from_config(
            registry, config.generation, device=resolve_device(config.training.device)
        )
        training = TrainingManager(config, sessions, registry, train_overrides=train_overrides)
        return cls(
            config,
            sessions=sessions,
            registry=registry,
            sampler=sampler,
            training=training,
            dispose=engine.dispose,
        )

    async def start(self, *, migrate: bool = True, schedule: bool | None = None) -> None:
        """Migrate to head, then start the training worker and (if enabled) the scheduler."""
        if self._started:
            return
        if migrate:
            await asyncio.to_thread(upgrade_to_head, self.config.storage.resolved_database_url)
        await self.training.start()
        self._started = True
        if self.config.schedule.enabled if schedule is None else schedule:
            from bot.core.scheduling import TrainingScheduler

            self.scheduler = TrainingScheduler(self.config, self.sessions, self.training)
            await self.scheduler.start()

    async def close(self) -> None:
        """Stop everything started; safe to call twice."""
        try:
            await self.messages.close()
        finally:
            if self.scheduler is not None:
                scheduler, self.scheduler = self.scheduler, None
                await scheduler.stop()
            if self._started:
                self._started = False
                await self.training.stop()
            if not self._closed:
                self._closed = True
                self.sampler.close()
                self._dispose()

    # -- helpers -------------------------------------------------------------------------

    async def _db(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction in a worker thread."""

        def run() -> T:
            with session_scope(self.sessions) as session:
                return work(session)

        return await asyncio.to_thread(run)

    @staticmethod
    def require_manager(actor: Actor, action: str) -> None:
        if not actor.can_manage:
            raise NotAllowed(f"You need the Manage Server permission to {action}.")

    # -- generation ----------------------------------------------------------------------

    def generate_options(
        self,
        prompt: str,
        length: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> GenerateOptions:
        generation = self.config.generation
        return generate_options(
            prompt,
            length,
            temperature,
            seed,
            default_length=generation.default_length,
            default_temperature=generation.default_temperature,
            max_length=generation.max_length,
        )

    async def take_generate_cooldown(self, actor: Actor) -> None:
        """Raise OnCooldown, or record this use (per user and per server).

        The per-user wait is the server's override (`set_generate_cooldown`), else the
        config's `generate_per_user_seconds`.
        """
        override = await self.generate_cooldown_override(actor.server_id)
        self.cooldowns.take_generate(actor.server_id, actor.user_id, user_seconds=override)

    async def generate_cooldown_override(self, server_id: int) -> float | None:
        """The server's per-user /generate cooldown in seconds; None: the config's applies."""
        if server_id in self._generate_cooldowns:
            return self._generate_cooldowns[server_id]
        override = await self._db(lambda s: corpus.generate_cooldown_override(s, server_id))
        # setdefault: an admin's change made while this read was in flight wins over it.
        return self._generate_cooldowns.setdefault(server_id, override)

    async def set_generate_cooldown(self, actor: Actor, seconds: float | None) -> None:
        """Set the server's per-user /generate cooldown (None: back to the config's)."""
        self.require_manager(actor, "change Parrot's settings")
        if seconds is not None:
            seconds = generate_cooldown_seconds(seconds)
        await self._db(lambda s: corpus.set_generate_cooldown(s, actor.server_id, seconds))
        self._generate_cooldowns[actor.server_id] = seconds

    def _sample_request(self, options: GenerateOptions) -> SampleRequest:
        from models.sample import SampleRequest

        generation = self.config.generation
        return SampleRequest(
            prompt=options.prompt,
            max_chars=options.length,
            temperature=options.temperature,
            top_k=generation.top_k,
            top_p=generation.top_p,
            seed=options.seed,
        )

    async def generate(self, server_id: int, options: GenerateOptions) -> str:
        """The continuation of `options.prompt` (the prompt itself is not included)."""
        result = await self.sampler.generate(server_id, self._sample_request(options))
        return result.text

    async def stream_generate(self, server_id: int, options: GenerateOptions) -> AsyncIterator[str]:
        """The continuation in chunks, as it is sampled (ModelNotReady before the first)."""
        stream = self.sampler.stream(server_id, self._sample_request(options))
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    # -- training ------------------------------------------------------------------------

    def check_can_train(self, actor: Actor) -> None:
        self.require_manager(actor, "start training")
        self.cooldowns.check_train(actor.server_id)

    async def start_training(
        self,
        actor: Actor,
        *,
        mode: TrainMode = "fine-tune",
        arch: TrainArch | None = None,
        notify_channel_id: int | None = None,
        trigger: str = "admin",
    ) -> int:
        """Queue a run for the actor's server and return its id.

        Raises NotAllowed, OnCooldown, TrainingBusy (a run is queued or running) or
        CorpusTooSmall. `arch` None: the server's or the config's default.
        """
        self.check_can_train(actor)
        run_id = await self.training.enqueue(
            actor.server_id,
            trigger=trigger,
            mode=mode,
            arch=arch,
            requested_by=actor.user_id,
            notify_channel_id=notify_channel_id,
        )
        self.cooldowns.hit_train(actor.server_id)
        return run_id

    async def cancel_training(self, actor: Actor) -> None:
        self.require_manager(actor, "cancel training")
        if not await self.training.cancel(actor.server_id):
            raise InvalidInput("There is no queued or running training run to cancel.")

    async def watch_training(self, run_id: int) -> AsyncIterator[TrainingUpdate]:
        """The run's state now, then each change, ending with its final update."""
        async for event in self.training.watch(run_id):
            yield _update_from_event(event)

    def add_training_listener(
        self, callback: Callable[[TrainingUpdate], None]
    ) -> Callable[[], None]:
        """Call `callback` (on the event loop) with every event of the runs this process
        executes; returns the function that removes it again."""

        def forward(event: RunEvent) -> None:
            callback(_update_from_event(event))

        self.training.add_event_listener(forward)
        return lambda: self.training.remove_event_listener(forward)

    # -- corpus --------------------------------------------------------------------------

    async def corpus_status(self, server_id: int) -> CorpusStatus:
        await self.messages.flush()  # count what was collected a moment ago too

        def work(session: Session) -> CorpusStatus:
            server = corpus.ensure_server(session, server_id)
            stats = corpus.corpus_stats(session, server_id)
            channels = corpus.list_channels(session, server_id)
            return CorpusStatus(
                messages=stats.messages,
                documents=stats.documents,
                chars=stats.chars,
                authors=stats.authors,
                collecting_channels=[c.channel_id for c in channels if c.collect],
                reply_channels=[c.channel_id for c in channels if c.replies],
                collecting=server.collecting,
                chars_since_last_training=corpus.chars_since_last_success(session, server_id),
                min_chars_first_model=self.config.training.min_chars_first_model,
                model=None,
            )

        status = await self._db(work)
        model = await asyncio.to_thread(self.registry.active_model, server_id)
        return dataclasses.replace(status, model=model)

    async def set_channel_collect(self, actor: Actor, channel_id: int, enabled: bool) -> None:
        self.require_manager(actor, "choose the channels Parrot learns from")
        await self._db(
            lambda s: corpus.set_channel_collect(
                s, actor.server_id, channel_id, enabled, added_by=actor.user_id
            )
        )
        self._channels.pop(actor.server_id, None)

    async def set_channel_replies(
        self, actor: Actor, channel_id: int, enabled: bool, chance: float = 0.0
    ) -> None:
        self.require_manager(actor, "choose where Parrot replies")
        await self._db(
            lambda s: corpus.set_channel_replies(s, actor.server_id, channel_id, enabled, chance)
        )
        self._channels.pop(actor.server_id, None)

    async def upload_document(self, actor: Actor, filename: str, data: bytes) -> int:
        """Store an uploaded .txt file; returns its size in bytes."""
        self.require_manager(actor, "upload text")
        limit = self.config.storage.max_upload_bytes
        document = await self._db(
            lambda s: corpus.add_document(s, actor.server_id, actor.user_id, filename, data, limit)
        )
        return document.size_bytes

    async def clear_corpus(self, actor: Actor) -> corpus.PurgeCounts:
        """Delete every collected message and uploaded document of the server (models stay)."""
        self.require_manager(actor, "clear the corpus")
        self.messages.discard_server(actor.server_id)
        return await self._db(lambda s: corpus.clear_corpus(s, actor.server_id))

    # -- models --------------------------------------------------------------------------

    async def model_info(self, server_id: int) -> ModelInfo:
        """The active model (ModelNotReady when none) and its loss history.

        The history comes from the run that made the model, or from the checkpoint's own
        statistics for a model that no run here made (the console's bundled one).
        """
        model = await asyncio.to_thread(self.registry.active_model, server_id)
        if model is None:
            raise ModelNotReady()
        history = model.loss_history
        if not history:
            history = await asyncio.to_thread(_checkpoint_history, model.path)
        return ModelInfo(model, history)

    async def install_checkpoint(self, server_id: int, source: Path) -> ActiveModel:
        """Copy a checkpoint made elsewhere (`parrot train`) in as the server's active model.

        Used by the console for its bundled model. The file is validated by loading it; the
        copy is named like a run's checkpoint (run 0) so the registry's pruning keeps it.
        """
        return await asyncio.to_thread(self._install_checkpoint_sync, server_id, source)

    def _install_checkpoint_sync(self, server_id: int, source: Path) -> ActiveModel:
        from models.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(source)
        arch = checkpoint.config.arch
        target = self.registry.checkpoint_path(server_id, 0, arch)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".tmp")
        shutil.copyfile(source, partial)
        partial.replace(target)
        best = checkpoint.stats.best_val_loss
        with session_scope(self.sessions) as session:
            corpus.ensure_server(session, server_id)
            row = self.registry.add_model(
                session,
                server_id=server_id,
                run_id=None,
                path=target,
                arch=arch,
                param_count=checkpoint.param_count,
                chars_trained=checkpoint.stats.chars_seen,
                val_loss_nats=None if math.isnan(best) else best,
                activate=True,
            )
            model_id = row.id
        self.registry.notify_activated(server_id, model_id)
        model = self.registry.get_model(model_id)
        assert model is not None
        return model

    # -- privacy -------------------------------------------------------------------------

    async def opt_out(self, user_id: int, server_id: int | None) -> corpus.PurgeCounts:
        self.messages.discard_author(user_id, server_id)
        return await self._db(lambda s: corpus.opt_out(s, user_id, server_id))

    async def opt_in(self, user_id: int, server_id: int | None) -> bool:
        # Messages buffered while the user was opted out are dropped, not stored late.
        await self.messages.flush()
        return await self._db(lambda s: corpus.opt_in(s, user_id, server_id))

    async def forget_user(self, user_id: int, server_id: int | None) -> corpus.PurgeCounts:
        self.messages.discard_author(user_id, server_id)
        return await self._db(lambda s: corpus.purge_user(s, user_id, server_id))

    async def export_user(self, user_id: int) -> bytes:
        await self.messages.flush()
        data = await self._db(lambda s: corpus.export_user(s, user_id))
        return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")

    # -- collection ----------------------------------------------------------------------

    async def channel_settings(self, server_id: int, channel_id: int) -> ChannelSettings:
        """Collection/reply settings of a channel (cached per server; admins' changes reset it)."""
        settings = self._channels.get(server_id)
        if settings is None:

            def work(session: Session) -> dict[int, ChannelSettings]:
                server = session.get(corpus.Server, server_id)
                server_collects = server is None or server.collecting
                return {
                    c.channel_id: ChannelSettings(
                        collect=c.collect and server_collects,
                        replies=c.replies,
                        reply_chance=c.reply_chance,
                    )
                    for c in corpus.list_channels(session, server_id)
                }

            settings = await self._db(work)
            self._channels[server_id] = settings
        return settings.get(channel_id, ChannelSettings())

    async def collect_message(
        self,
        server_id: int,
        *,
        message_id: int,
        channel_id: int,
        author_id: int,
        content: str,
        created_at: datetime | None = None,
        settings_channel_id: int | None = None,
    ) -> bool:
        """Buffer a message for storage when its channel is opted in; returns whether it was.

        `settings_channel_id` is the channel whose opt-in applies when it is not
        `channel_id` itself (a thread follows its parent channel).
        """
        settings = await self.channel_settings(server_id, settings_channel_id or channel_id)
        if not settings.collect:
            return False
        incoming = corpus.IncomingMessage(message_id, channel_id, author_id, content, created_at)
        await self.messages.add(server_id, incoming)
        return True

    def _store_messages(self, server_id: int, messages: list[corpus.IncomingMessage]) -> int:
        with session_scope(self.sessions) as session:
            return corpus.add_messages(session, server_id, messages)

    async def edit_message(self, message_id: int, content: str) -> bool:
        await self.messages.flush()
        return await self._db(lambda s: corpus.edit_message(s, message_id, content))

    async def delete_messages(self, message_ids: list[int]) -> int:
        self.messages.discard(message_ids)
        return await self._db(lambda s: corpus.delete_messages(s, message_ids))

    async def remove_server(self, server_id: int) -> None:
        """The bot left the server: delete its data, its checkpoints and its cooldowns."""
        self.messages.discard_server(server_id)
        self._channels.pop(server_id, None)
        self.cooldowns.forget_server(server_id)
        await self.training.cancel(server_id)
        await self._db(lambda s: corpus.purge_server(s, server_id))
        self._generate_cooldowns.pop(server_id, None)  # after the purge: no stale re-read
        await asyncio.to_thread(self.registry.delete_server, server_id)


def _update_from_event(event: RunEvent) -> TrainingUpdate:
    progress = event.progress
    return TrainingUpdate(
        run_id=event.run_id,
        status=str(event.status.value),
        mode=str(event.mode.value) if event.mode is not None else "",
        arch=progress.arch if progress is not None and progress.arch else event.arch,
        step=progress.step if progress is not None else 0,
        total_steps=progress.total_steps if progress is not None else None,
        loss=progress.train_loss if progress is not None else None,
        val_loss=progress.val_loss if progress is not None else None,
        eta_seconds=progress.eta_seconds if progress is not None else None,
        queue_position=event.queue_position,
        val_bits_per_char=event.val_bits_per_char,
        activated=event.activated,
        error=event.error,
        notify_channel_id=event.notify_channel_id,
    )


def _checkpoint_history(path: Path) -> list[list[Any]]:
    from models.checkpoint import load_checkpoint
    from models.errors import CheckpointError

    try:
        stats = load_checkpoint(path).stats
    except CheckpointError:
        return []
    return [list(row) for row in stats.val_loss_history]
