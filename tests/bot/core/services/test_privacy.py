"""Forgetting reaches the trained model (issue #12): real SQLite file, real Alembic schema,
real spawned worker processes training tiny models, the real sampler.

- A model records its lineage (parent, root, corpus snapshot, the authors it read).
- `/privacy forget` retires every model whose lineage read the user (files included), the
  server says its model is being rebuilt, and the rebuild, without the user, goes first.
- A run training when the user forgets is discarded, not activated.
- A fine-tune's guard covers text deleted after its parent was trained.
- A removed server is forgotten by the sampler too.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.core.app import build
from bot.core.checkpoints.lineage import ROOT_SCRATCH, authors_of
from bot.core.config import ParrotConfig
from bot.core.errors import ModelNotReady, ModelRebuilding
from bot.core.generation.verbatim import VerbatimIndex, index_path_for
from bot.core.kinds import RunStatus
from bot.core.services import ParrotServices
from bot.core.services.actor import Actor
from bot.core.storage import corpus, deletions
from bot.core.storage.db import session_scope
from bot.core.storage.tables import Message, Server, TrainedModel, TrainingRun
from bot.core.training import rebuilds
from bot.core.training.outcome import DISCARDED_REASON
from bot.core.training.queue import REBUILD_PRIORITY, RunEvent
from tests.bot.conftest import TINY_TRAINING
from tests.helpers.corpora import SMALL_TEXT

SERVER = 5151
ALICE, BOB = 71, 72
# Long enough to be past the guard's span (40) and unlike anything in SMALL_TEXT.
SECRET = "alice says: my locker code is 4471 and the spare key is in the red boot"
FINAL_TIMEOUT_S = 240.0


async def make_services(config: ParrotConfig, **overrides: Any) -> ParrotServices:
    services = build(config, train_overrides={**TINY_TRAINING, **overrides})
    await services.start()
    return services


@pytest.fixture
async def services(parrot_config: ParrotConfig) -> AsyncIterator[ParrotServices]:
    services = await make_services(parrot_config)
    try:
        yield services
    finally:
        await services.close()


def seed_corpus(services: ParrotServices, secret_author: int = ALICE) -> None:
    """BOB's everyday lines, and `secret_author`'s SECRET three times."""
    lines = [line for line in SMALL_TEXT.split("\n") if line]
    messages = [
        corpus.IncomingMessage(id=1 + i, channel_id=9, author_id=BOB, content=line)
        for i, line in enumerate(lines)
    ]
    messages += [
        corpus.IncomingMessage(id=900 + i, channel_id=9, author_id=secret_author, content=SECRET)
        for i in range(3)
    ]
    with session_scope(services.sessions) as session:
        corpus.ensure_server(session, SERVER)
        corpus.add_messages(session, SERVER, messages)


async def final_event(services: ParrotServices, run_id: int) -> RunEvent:
    async with asyncio.timeout(FINAL_TIMEOUT_S):
        async for event in services.trainer.watch(run_id):
            if event.final:
                return event
    raise AssertionError(f"run {run_id} ended without a final event")


async def train(services: ParrotServices, mode: str) -> TrainedModel:
    run_id = await services.trainer.enqueue(SERVER, mode=mode, arch="gru")
    event = await final_event(services, run_id)
    assert event.status == RunStatus.SUCCEEDED, event.error
    return active_row(services)


def active_row(services: ParrotServices) -> TrainedModel:
    with session_scope(services.sessions) as session:
        row = session.scalars(
            select(TrainedModel).where(
                TrainedModel.server_id == SERVER, TrainedModel.active.is_(True)
            )
        ).one()
        session.expunge(row)
        return row


async def start_training(services: ParrotServices) -> int:
    """Queue a scratch run and return once its worker reports progress (it is training)."""
    run_id = await services.trainer.enqueue(SERVER, mode="scratch", arch="gru")
    async with asyncio.timeout(FINAL_TIMEOUT_S):
        async for event in services.trainer.watch(run_id):
            if event.progress is not None and event.progress.step > 0:
                return run_id
    raise AssertionError(f"run {run_id} ended before it trained")


def model_files(row: TrainedModel) -> list[Path]:
    return [Path(row.checkpoint_path), index_path_for(row.checkpoint_path)]


def rebuild_runs(services: ParrotServices) -> list[TrainingRun]:
    with session_scope(services.sessions) as session:
        rows = session.scalars(
            select(TrainingRun).where(TrainingRun.rebuild.is_(True)).order_by(TrainingRun.id)
        ).all()
        session.expunge_all()
        return list(rows)


async def test_forgetting_retires_every_model_that_read_the_user_and_rebuilds_without_them(
    services: ParrotServices,
) -> None:
    seed_corpus(services)
    first = await train(services, "scratch")
    second = await train(services, "fine-tune")

    # Lineage: the fine-tune knows its parent and root, and inherits the authors it read.
    with session_scope(services.sessions) as session:
        assert (first.parent_id, first.root) == (None, ROOT_SCRATCH)
        assert (second.parent_id, second.root) == (first.id, ROOT_SCRATCH)
        assert authors_of(session, second.id) == {ALICE, BOB}
        newest = session.scalar(select(Message.id).order_by(Message.id.desc()).limit(1))
        assert second.corpus_through_message_id == newest
        assert second.corpus_snapshot_at is not None
    files = model_files(first) + model_files(second)
    assert all(path.is_file() for path in files)
    assert VerbatimIndex.load(index_path_for(second.checkpoint_path)).find_copy(SECRET)

    options = services.generation.options("the ", 20, 0.8, 1)
    await services.generation.generate(SERVER, options)  # loaded and served
    counts = await services.privacy.forget_user(ALICE, SERVER)

    assert (counts.messages, counts.models) == (3, 2)
    assert [path for path in files if path.exists()] == []  # kept models included
    with session_scope(services.sessions) as session:
        assert session.scalars(select(TrainedModel.id)).all() == []
    with pytest.raises(ModelRebuilding, match="being rebuilt"):
        await services.generation.generate(SERVER, options)

    [rebuild] = rebuild_runs(services)
    assert rebuild.priority == REBUILD_PRIORITY
    event = await final_event(services, rebuild.id)
    assert event.status == RunStatus.SUCCEEDED and event.activated, event.error
    rebuilt = active_row(services)
    with session_scope(services.sessions) as session:
        assert (rebuilt.parent_id, rebuilt.root) == (None, ROOT_SCRATCH)
        assert authors_of(session, rebuilt.id) == {BOB}
    assert VerbatimIndex.load(index_path_for(rebuilt.checkpoint_path)).find_copy(SECRET) is None
    assert len(await services.generation.generate(SERVER, options)) == 20


async def test_a_run_training_when_the_user_forgets_is_discarded(
    parrot_config: ParrotConfig,
) -> None:
    # Long enough to still be training when the request comes; the rebuild it leads to
    # is cancelled by close().
    services = await make_services(parrot_config, max_steps=4_000, eval_interval=200)
    try:
        seed_corpus(services)
        run_id = await start_training(services)
        await services.privacy.forget_user(ALICE, SERVER)
        event = await final_event(services, run_id)

        assert (event.status, event.error, event.activated) == (
            RunStatus.CANCELLED,
            DISCARDED_REASON,
            False,
        )
        with session_scope(services.sessions) as session:
            assert session.scalars(select(TrainedModel.id)).all() == []
            server = session.get(Server, SERVER)
            assert server is not None and server.privacy_epoch == 1
        checkpoints = list((Path(parrot_config.storage.data_path) / "checkpoints").rglob("*"))
        assert [path for path in checkpoints if path.is_file()] == []
        # The model it would have made is owed again, without ALICE.
        with session_scope(services.sessions) as session:
            assert rebuilds.rebuild_pending(session, SERVER)
    finally:
        await services.close()


async def test_a_fine_tune_still_blocks_text_deleted_after_its_parent_was_trained(
    services: ParrotServices,
) -> None:
    seed_corpus(services, secret_author=BOB)  # an ordinary delete, not a privacy request
    await train(services, "scratch")
    with session_scope(services.sessions) as session:
        assert deletions.delete_messages(session, [900, 901, 902]) == 3
    child = await train(services, "fine-tune")

    index = VerbatimIndex.load(index_path_for(child.checkpoint_path))
    assert index.find_copy("so " + SECRET[5:60]) is not None  # the weights may hold it
    with session_scope(services.sessions) as session:
        server = session.get(Server, SERVER)
        assert server is not None
        assert server.deleted_chars_since_root == 3 * len(SECRET)
        assert server.first_deletion_at is not None


async def test_a_removed_and_reinvited_server_is_not_served_its_purged_model(
    services: ParrotServices, tiny_checkpoint_path: Path
) -> None:
    await services.models.install(SERVER, tiny_checkpoint_path)
    options = services.generation.options("to be", 20, 0.8, 1)
    await services.generation.generate(SERVER, options)  # the model is loaded now
    await services.privacy.remove_server(SERVER)
    with session_scope(services.sessions) as session:
        corpus.ensure_server(session, SERVER)  # invited again
    with pytest.raises(ModelNotReady, match="no model yet"):
        await services.generation.generate(SERVER, options)
    assert services.sampler.loaded_model_ids() == []


async def test_clearing_the_corpus_discards_a_run_in_flight(parrot_config: ParrotConfig) -> None:
    services = await make_services(parrot_config, max_steps=4_000, eval_interval=200)
    try:
        seed_corpus(services)
        run_id = await start_training(services)
        await services.corpus.clear(Actor(SERVER, 1, can_manage=True))
        event = await final_event(services, run_id)
        assert event.status == RunStatus.CANCELLED and not event.activated
        with session_scope(services.sessions) as session:
            assert session.scalars(select(TrainedModel.id)).all() == []
    finally:
        await services.close()


async def test_with_a_base_model_the_first_model_and_the_rebuild_start_from_it(
    parrot_config: ParrotConfig, tiny_checkpoint_path: Path
) -> None:
    """Issues #10 and #12: root runs fine-tune from the base model, and the lineage says so."""
    config = dataclasses.replace(
        parrot_config,
        model=dataclasses.replace(parrot_config.model, base=str(tiny_checkpoint_path)),
    )
    services = await make_services(config)
    try:
        seed_corpus(services)
        first = await train(services, "fine-tune")  # no model yet: from the base
        assert (first.parent_id, first.root) == (None, "base")
        await services.privacy.forget_user(ALICE, SERVER)
        [rebuild] = rebuild_runs(services)
        event = await final_event(services, rebuild.id)
        assert event.status == RunStatus.SUCCEEDED, event.error
        assert any("base model" in note for note in event.notes)
        rebuilt = active_row(services)
        assert (rebuilt.parent_id, rebuilt.root) == (None, "base")
    finally:
        await services.close()
