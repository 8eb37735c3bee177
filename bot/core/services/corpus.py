"""A server's corpus as its admins see it: status, uploads, clearing."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints import lineage
from bot.core.checkpoints.lineage import RetiredModels
from bot.core.checkpoints.registry import ModelRecord
from bot.core.config import ParrotConfig
from bot.core.errors import DuplicateUpload
from bot.core.services.actor import Actor, require_manager
from bot.core.services.collection import CollectionService
from bot.core.services.models import ModelService
from bot.core.services.retirement import ModelRetirement
from bot.core.storage import corpus, corpus_text, deletions, privacy
from bot.core.storage.db import run_in_session
from bot.core.storage.privacy import PurgeCounts


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
    model: ModelRecord | None


class CorpusService:
    def __init__(
        self,
        config: ParrotConfig,
        sessions: sessionmaker[Session],
        collection: CollectionService,
        models: ModelService,
        retirement: ModelRetirement,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._collection = collection
        self._models = models
        self._retirement = retirement

    async def status(self, server_id: int) -> CorpusStatus:
        await self._collection.buffer.flush()  # count what was collected a moment ago too
        min_chars = self._config.training.min_chars_first_model

        def work(session: Session) -> CorpusStatus:
            server = corpus.ensure_server(session, server_id)
            stats = corpus_text.corpus_stats(session, server_id)
            channels = corpus.list_channels(session, server_id)
            return CorpusStatus(
                messages=stats.messages,
                documents=stats.documents,
                chars=stats.chars,
                authors=stats.authors,
                collecting_channels=[c.channel_id for c in channels if c.collect],
                reply_channels=[c.channel_id for c in channels if c.replies],
                collecting=server.collecting,
                chars_since_last_training=corpus_text.chars_since_last_success(session, server_id),
                min_chars_first_model=min_chars,
                model=None,
            )

        status = await run_in_session(self._sessions, work)
        return dataclasses.replace(status, model=await self._models.active(server_id))

    @staticmethod
    def check_can_upload(actor: Actor) -> None:
        require_manager(actor, "upload text")

    @staticmethod
    def check_can_clear(actor: Actor) -> None:
        require_manager(actor, "clear the corpus")

    async def upload(self, actor: Actor, filename: str, data: bytes) -> int:
        """Store an uploaded .txt file; returns its size in bytes."""
        self.check_can_upload(actor)
        limit = self._config.storage.max_upload_bytes
        document = await run_in_session(
            self._sessions,
            lambda s: corpus.add_document(s, actor.server_id, actor.user_id, filename, data, limit),
        )
        return document.size_bytes

    async def clear(self, actor: Actor) -> PurgeCounts:
        """Delete every collected message and uploaded document of the server, and retire
        its models at once: they learned from what is gone."""
        self.check_can_clear(actor)
        self._collection.buffer.discard_server(actor.server_id)

        def work(session: Session) -> tuple[PurgeCounts, RetiredModels]:
            privacy.bump_privacy_epochs(session, [actor.server_id])  # discards a run in flight
            counts = deletions.clear_corpus(session, actor.server_id)
            retired = lineage.retire_server_models(session, actor.server_id)
            return PurgeCounts(counts.messages, counts.documents, retired.models), retired

        counts, retired = await run_in_session(self._sessions, work)
        await self._retirement.finish(retired)
        return counts

    async def seed(
        self, server_id: int, server_name: str, user_id: int, filename: str, data: bytes
    ) -> None:
        """Create the server and, when its corpus is empty, add `data` as its first document
        (the console's pretend server starts with a bundled corpus)."""

        def work(session: Session) -> None:
            corpus.ensure_server(session, server_id, server_name)
            if corpus_text.corpus_stats(session, server_id).chars:
                return
            with contextlib.suppress(DuplicateUpload):
                corpus.add_document(
                    session, server_id, user_id, filename, data, max_bytes=max(len(data), 1)
                )

        await run_in_session(self._sessions, work)
