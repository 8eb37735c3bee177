"""Privacy requests, fanned out to everything that holds a user's or a server's data: the
database, the message buffer, the caches, the trained models and their files.

Forgetting a user (`/privacy forget`, an opt-out) reaches the weights: in one transaction
the user's rows are deleted, every model whose lineage read them is retired (in that
server, or everywhere), the affected servers start a new privacy epoch (a run training
meanwhile is discarded when it ends) and a rebuild from the root is owed. After commit the
retired files are deleted, the sampler drops what it had loaded, and the rebuild is queued
ahead of scheduled runs. Until it lands, a server answers from its newest model that never
read the user, or says that its model is being rebuilt (`errors.ModelRebuilding`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints import lineage
from bot.core.checkpoints.lineage import RetiredModels
from bot.core.checkpoints.registry import ModelRegistry
from bot.core.kinds import RunStatus
from bot.core.services.collection import CollectionService
from bot.core.services.cooldowns import Cooldowns
from bot.core.services.generation import GenerationService
from bot.core.services.retirement import ModelRetirement
from bot.core.storage import export, privacy
from bot.core.storage.db import run_in_session
from bot.core.storage.privacy import PurgeCounts
from bot.core.storage.sql import lock_collection
from bot.core.storage.tables import TrainingRun
from bot.core.training import rebuilds

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
        retirement: ModelRetirement,
    ) -> None:
        self._sessions = sessions
        self._collection = collection
        self._generation = generation
        self._cooldowns = cooldowns
        self._registry = registry
        self._manager = manager
        self._retirement = retirement

    async def opt_out(self, user_id: int, server_id: int | None) -> PurgeCounts:
        self._collection.buffer.discard_author(user_id, server_id)
        return await self._forget(user_id, server_id, opt_out=True)

    async def opt_in(self, user_id: int, server_id: int | None) -> bool:
        # Messages buffered while the user was opted out are dropped, not stored late.
        await self._collection.buffer.flush()
        return await run_in_session(self._sessions, lambda s: privacy.opt_in(s, user_id, server_id))

    async def forget_user(self, user_id: int, server_id: int | None) -> PurgeCounts:
        self._collection.buffer.discard_author(user_id, server_id)
        return await self._forget(user_id, server_id, opt_out=False)

    async def _forget(self, user_id: int, server_id: int | None, *, opt_out: bool) -> PurgeCounts:
        counts, retired = await run_in_session(
            self._sessions, lambda s: forget_in_transaction(s, user_id, server_id, opt_out=opt_out)
        )
        await self._retirement.finish(retired)
        return counts

    async def export_user(
        self, user_id: int, *, part_limit: int | None = export.DEFAULT_PART_LIMIT
    ) -> export.ExportFiles:
        """Everything stored about the user, as gzip JSON files of at most `part_limit` bytes
        each (None: one file) in a temporary directory; the caller deletes them
        (`ExportFiles.delete`). Reading and compressing run in a worker thread: a heavy
        user's export takes seconds and must not stall the event loop."""
        await self._collection.buffer.flush()
        return await asyncio.to_thread(
            export.write_user_export, self._sessions, user_id, part_limit=part_limit
        )

    async def remove_server(self, server_id: int) -> None:
        """The bot left the server: delete its data, its checkpoints and its cooldowns."""
        self._collection.buffer.discard_server(server_id)
        self._collection.forget_settings(server_id)
        self._cooldowns.forget_server(server_id)
        await self._manager.cancel(server_id)
        await run_in_session(self._sessions, lambda s: privacy.purge_server(s, server_id))
        self._generation.forget_server(server_id)  # after the purge: no stale re-read
        await asyncio.to_thread(self._registry.delete_server, server_id)


def forget_in_transaction(
    session: Session, user_id: int, server_id: int | None, *, opt_out: bool
) -> tuple[PurgeCounts, RetiredModels]:
    """Delete the user's text (and with `opt_out`, stop collecting it) in one server or
    everywhere (None), and retire every model that learned from it; the caller's
    transaction. See the module docstring for what follows after commit."""
    # Lock order, as ingest's: the collection lock, then server rows (PostgreSQL; nothing on
    # SQLite). Taking the rows first could deadlock with a batch holding the shared lock.
    lock_collection(session, server_id, exclusive=True)
    affected = privacy.servers_holding(session, user_id, server_id)
    affected |= lineage.servers_with_models_that_saw(session, user_id, server_id)
    # First: the epoch bump row-locks the servers (PostgreSQL), so a run's activation either
    # committed before (and its model is retired below) or sees the new epoch and is discarded.
    privacy.bump_privacy_epochs(session, affected)
    if opt_out:
        counts = privacy.opt_out(session, user_id, server_id)
    else:
        counts = privacy.purge_user(session, user_id, server_id)
    retired = lineage.retire_models_that_saw(session, user_id, server_id)
    owed = set(retired.servers) | _servers_training(session, affected)
    for affected_server in sorted(owed):
        rebuilds.request_rebuild(session, affected_server)
    return PurgeCounts(counts.messages, counts.documents, retired.models), retired


def _servers_training(session: Session, server_ids: set[int]) -> set[int]:
    """Of these servers, those with a run in flight: it will be discarded (`training.outcome`),
    so the model it would have made is owed again, as a rebuild without the user."""
    if not server_ids:
        return set()
    rows = session.scalars(
        select(TrainingRun.server_id).where(
            TrainingRun.server_id.in_(sorted(server_ids)),
            TrainingRun.status == RunStatus.RUNNING,
        )
    )
    return {int(found) for found in rows}
