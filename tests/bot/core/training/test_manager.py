"""The training queue and worker: real SQLite file, real Alembic schema, real spawned worker
processes training a real (tiny) PyTorch model. No part of Parrot is mocked.

Each test that trains starts a worker process (a fresh interpreter importing torch), so the
models are tiny (hidden 32, one layer) and budgets are counted in steps, not minutes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig, StorageConfig
from bot.core.errors import CorpusTooSmall, InvalidInput, TrainingBusy
from bot.core.generation.verbatim import VerbatimIndex, index_path_for
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus, privacy
from bot.core.storage.db import make_engine, make_session_factory
from bot.core.storage.tables import TrainedModel, TrainingRun
from bot.core.training.manager import TrainingManager
from bot.core.training.queue import RESTART_REASON, SHUTDOWN_REASON, RunEvent
from bot.core.training.scheduler import TrainingScheduler
from models.checkpoint import load_checkpoint, save_checkpoint
from models.config import TrainConfig
from models.train import train
from tests.bot.conftest import TINY_TRAINING
from tests.helpers.configs import FROM_SCRATCH

SERVER_A = 1001
SERVER_B = 1002
# The bot tests' tiny model, without their step budget (each test here sets its own).
TINY: dict[str, Any] = {k: v for k, v in TINY_TRAINING.items() if k != "max_steps"}
QUICK = {**TINY, "max_steps": 15}
ENDLESS = {**TINY, "max_steps": 1_000_000, "max_minutes": 5.0}  # stopped by the test
UNIQUE_SENTENCE = "the parrot memorised this sentence of forty two characters or so"


def corpus_text(seed: int) -> list[str]:
    words = ["squawk", "cracker", "pirate", "feather", "perch", "seed", "parrot", "hello"]
    lines = []
    for i in range(200):
        picked = [words[(i * 7 + j * seed) % len(words)] for j in range(6)]
        lines.append(" ".join(picked) + ("!" if i % 3 else "."))
    lines.append(UNIQUE_SENTENCE)
    return lines


@pytest.fixture
def config(tmp_path: Path, sqlite_database_url: str) -> ParrotConfig:
    storage = StorageConfig(data_dir=str(tmp_path / "data"), database_url=sqlite_database_url)
    return dataclasses.replace(ParrotConfig(model=FROM_SCRATCH), storage=storage)


@pytest.fixture
def sessions(config: ParrotConfig) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(config.storage.resolved_database_url)
    factory = make_session_factory(engine)
    for server_id, seed in ((SERVER_A, 1), (SERVER_B, 3)):
        with factory() as session, session.begin():
            corpus.add_messages(
                session,
                server_id,
                [
                    corpus.IncomingMessage(
                        id=server_id * 10_000 + i, channel_id=1, author_id=7, content=line
                    )
                    for i, line in enumerate(corpus_text(seed))
                ],
            )
    yield factory
    engine.dispose()


@pytest.fixture
def registry(config: ParrotConfig, sessions: sessionmaker[Session]) -> ModelRegistry:
    return ModelRegistry.from_config(config, sessions)


def manager_for(
    config: ParrotConfig,
    sessions: sessionmaker[Session],
    registry: ModelRegistry,
    overrides: dict[str, Any],
) -> TrainingManager:
    return TrainingManager(config, sessions, registry, train_overrides=overrides)


async def follow(manager: TrainingManager, run_id: int) -> list[RunEvent]:
    events: list[RunEvent] = []
    async with asyncio.timeout(180.0):
        async for event in manager.watch(run_id):
            events.append(event)
    return events


async def first_progress(manager: TrainingManager, run_id: int) -> RunEvent:
    async with asyncio.timeout(180.0):
        async for event in manager.watch(run_id):
            if event.progress is not None and event.progress.step > 0:
                return event
    raise AssertionError("the run ended without progress")


def run_row(sessions: sessionmaker[Session], run_id: int) -> TrainingRun:
    with sessions() as session:
        row = session.get(TrainingRun, run_id)
        assert row is not None
        return row


def seed_active_model(
    registry: ModelRegistry, sessions: sessionmaker[Session], server_id: int, steps: int = 15
) -> int:
    """A previously trained model, made in this process (cheaper than a worker run)."""
    text = "\n".join(corpus_text(1))
    result = train(text, TrainConfig(**{**QUICK, "max_steps": steps}))
    with sessions() as session, session.begin():
        run = TrainingRun(
            server_id=server_id,
            trigger=RunTrigger.CLI,
            mode=RunMode.SCRATCH,
            arch="gru",
            status=RunStatus.SUCCEEDED,
        )
        session.add(run)
        session.flush()
        path = registry.checkpoint_path(server_id, run.id, "gru")
        save_checkpoint(result.checkpoint, path)
        model = registry.add_model(
            session,
            server_id=server_id,
            run_id=run.id,
            path=path,
            arch="gru",
            param_count=result.checkpoint.param_count,
            chars_trained=100,
            val_loss_nats=result.best_val_loss,
            activate=True,
        )
        return model.id


# -- the queue, without workers -----------------------------------------------------------


async def test_enqueue_refuses_duplicates_and_bad_requests(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    manager = manager_for(config, sessions, registry, QUICK)
    run_id = await manager.enqueue(
        SERVER_A, trigger="admin", mode="scratch", arch="gru", requested_by=5
    )
    with pytest.raises(TrainingBusy, match=f"already queued \\(run {run_id}\\)"):
        await manager.enqueue(SERVER_A, mode="fine-tune")
    with pytest.raises(InvalidInput):
        await manager.enqueue(SERVER_B, mode="sideways")
    with pytest.raises(InvalidInput):
        await manager.enqueue(SERVER_B, arch="transformer")
    with pytest.raises(CorpusTooSmall):
        await manager.enqueue(424242)  # no such server
    with sessions() as session, session.begin():
        corpus.ensure_server(session, 5005)
        corpus.add_messages(
            session, 5005, [corpus.IncomingMessage(id=1, channel_id=1, author_id=1, content="hi")]
        )
    with pytest.raises(CorpusTooSmall, match="at least"):
        await manager.enqueue(5005)
    row = run_row(sessions, run_id)
    assert (row.status, row.mode, row.arch, row.requested_by) == (
        RunStatus.QUEUED,
        RunMode.SCRATCH,
        "gru",
        5,
    )


async def test_concurrent_requests_queue_one_run(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    manager = manager_for(config, sessions, registry, QUICK)
    results = await asyncio.gather(
        *(manager.enqueue(SERVER_A, mode="scratch") for _ in range(8)), return_exceptions=True
    )
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, TrainingBusy) for r in results) == 7
    with sessions() as session:
        assert len(session.scalars(select(TrainingRun.id)).all()) == 1


async def test_cancel_a_queued_run(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    manager = manager_for(config, sessions, registry, QUICK)
    run_id = await manager.enqueue(SERVER_A, mode="scratch")
    assert await manager.cancel(SERVER_A)
    assert not await manager.cancel(SERVER_A)
    assert run_row(sessions, run_id).status == RunStatus.CANCELLED
    events = await follow(manager, run_id)
    assert [e.status for e in events] == [RunStatus.CANCELLED]
    await manager.enqueue(SERVER_A, mode="scratch")  # no longer busy


async def test_restart_fails_interrupted_runs_and_keeps_the_queue(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    with sessions() as session, session.begin():
        interrupted = TrainingRun(
            server_id=SERVER_A,
            trigger=RunTrigger.SCHEDULE,
            mode=RunMode.SCRATCH,
            arch="gru",
            status=RunStatus.RUNNING,
        )
        waiting = TrainingRun(
            server_id=SERVER_B,
            trigger=RunTrigger.ADMIN,
            mode=RunMode.SCRATCH,
            arch="gru",
            status=RunStatus.QUEUED,
        )
        session.add_all([interrupted, waiting])
    manager = manager_for(config, sessions, registry, QUICK)
    await manager.start(dispatch=False)
    try:
        failed = run_row(sessions, interrupted.id)
        assert failed.status == RunStatus.FAILED and failed.error == RESTART_REASON
        assert failed.finished_at is not None
        assert run_row(sessions, waiting.id).status == RunStatus.QUEUED
        snapshot = await anext(manager.watch(waiting.id))
        assert snapshot.queue_position == 1
    finally:
        await manager.stop()


# -- the worker, end to end -----------------------------------------------------------------


async def test_runs_end_to_end_one_at_a_time_in_order(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    activations: list[tuple[int, int]] = []
    registry.add_activation_listener(lambda server, model: activations.append((server, model)))
    limited = dataclasses.replace(config.training, max_corpus_chars=5_000)
    manager = manager_for(dataclasses.replace(config, training=limited), sessions, registry, QUICK)
    first = await manager.enqueue(SERVER_A, mode="scratch", arch="gru", notify_channel_id=77)
    second = await manager.enqueue(SERVER_B, mode="fine-tune")  # no model yet: from scratch
    await manager.start()
    try:
        events = await follow(manager, first)
        await follow(manager, second)
    finally:
        await manager.stop()

    assert events[-1].status == RunStatus.SUCCEEDED, events[-1].error
    assert any(e.status == RunStatus.RUNNING and e.progress is not None for e in events)
    final = events[-1]
    assert final.activated and final.model_id is not None and final.notify_channel_id == 77
    assert final.val_bits_per_char is not None and final.incumbent_bits_per_char is None

    second_info = await manager.get_run(second)
    assert second_info is not None and second_info.result is not None
    assert (
        second_info.result["mode"] == "scratch" and "no model yet" in second_info.result["notes"][0]
    )
    a, b = run_row(sessions, first), run_row(sessions, second)
    assert b.status == RunStatus.SUCCEEDED, b.error
    assert a.finished_at is not None and b.started_at is not None and a.finished_at <= b.started_at
    assert a.corpus_chars_at_start and a.corpus_chars_at_start > 5_000
    info = await manager.get_run(first)
    assert info is not None and info.result is not None
    assert info.result["corpus_chars_used"] == 5_000  # training.max_corpus_chars
    assert a.progress is not None and a.progress["step"] == QUICK["max_steps"]
    assert a.loss_history and all(len(point) == 3 for point in a.loss_history)

    active = registry.active_model(SERVER_A)
    assert active is not None and active.id == final.model_id and active.run_id == first
    assert active.path == registry.checkpoint_path(SERVER_A, first, "gru")
    assert load_checkpoint(active.path).config.hidden_size == TINY["hidden_size"]
    index = VerbatimIndex.load(index_path_for(active.path))
    assert index.find_copy(UNIQUE_SENTENCE) is not None
    model_b = registry.active_model(SERVER_B)
    assert model_b is not None
    assert activations == [(SERVER_A, final.model_id), (SERVER_B, model_b.id)]


async def test_fine_tune_is_compared_with_the_active_model(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    incumbent = seed_active_model(registry, sessions, SERVER_A)
    manager = manager_for(config, sessions, registry, {**QUICK, "max_steps": 5})
    await manager.start()
    try:
        run_id = await manager.enqueue(SERVER_A, trigger=RunTrigger.CLI, mode="fine-tune")
        final = (await follow(manager, run_id))[-1]
    finally:
        await manager.stop()
    assert final.status == RunStatus.SUCCEEDED, final.error
    assert final.val_bits_per_char is not None and final.incumbent_bits_per_char is not None
    expected = final.val_bits_per_char <= final.incumbent_bits_per_char
    assert final.activated == expected
    active = registry.active_model(SERVER_A)
    assert active is not None and active.id == (final.model_id if expected else incumbent)
    assert len(registry.list_models(SERVER_A)) == 2  # the loser is kept (until pruned)


async def test_a_worse_model_is_kept_but_not_activated_and_corrupt_files_are_skipped(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    previous = seed_active_model(registry, sessions, SERVER_A, steps=80)
    corrupt = seed_active_model(registry, sessions, SERVER_A)
    corrupt_model = registry.get_model(corrupt)
    assert corrupt_model is not None
    corrupt_model.path.write_bytes(b"\x00" * 64)  # e.g. a disk error since it was written
    manager = manager_for(config, sessions, registry, {**QUICK, "max_steps": 2})
    await manager.start()
    try:
        run_id = await manager.enqueue(SERVER_A, mode="scratch")
        final = (await follow(manager, run_id))[-1]
        info = await manager.get_run(run_id)
    finally:
        await manager.stop()
    assert final.status == RunStatus.SUCCEEDED, final.error
    assert info is not None and info.result is not None
    assert info.result["incumbent_model_id"] == previous  # the corrupt one was skipped
    assert final.val_bits_per_char is not None and final.incumbent_bits_per_char is not None
    assert final.val_bits_per_char > final.incumbent_bits_per_char  # 2 steps vs 80
    assert not final.activated
    active = registry.active_model(SERVER_A)
    assert active is not None and active.id == previous
    # Set aside, never deleted automatically (issue #14): the row and file stay, inactive.
    set_aside = registry.get_model(corrupt)
    assert set_aside is not None and not set_aside.active
    assert set_aside.path.name.endswith(".corrupt") and set_aside.path.exists()
    assert [m.id for m in registry.list_models(SERVER_A)] == [final.model_id, corrupt, previous]


async def test_auto_trains_both_architectures_and_keeps_the_better(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    manager = manager_for(config, sessions, registry, {**QUICK, "max_steps": 6})
    await manager.start()
    try:
        run_id = await manager.enqueue(SERVER_A, mode="scratch", arch="auto")
        events = await follow(manager, run_id)
    finally:
        await manager.stop()
    final = events[-1]
    assert final.status == RunStatus.SUCCEEDED, final.error
    assert {e.progress.arch for e in events if e.progress is not None} >= {"gru", "lstm"}
    assert final.notes and "gru" in final.notes[0] and "lstm" in final.notes[0]
    active = registry.active_model(SERVER_A)
    assert active is not None and active.arch in ("gru", "lstm")
    assert f"kept {active.arch}" in final.notes[0]


# -- cancellation and crashes -------------------------------------------------------------


async def test_cancel_a_running_run_does_not_activate(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    incumbent = seed_active_model(registry, sessions, SERVER_A)
    manager = manager_for(config, sessions, registry, ENDLESS)
    await manager.start()
    try:
        run_id = await manager.enqueue(SERVER_A, mode="scratch")
        await first_progress(manager, run_id)
        assert manager.current_run() is not None and manager.current_run().id == run_id  # type: ignore[union-attr]
        assert await manager.cancel(SERVER_A)
        final = (await follow(manager, run_id))[-1]
    finally:
        await manager.stop()
    assert final.status == RunStatus.CANCELLED and not final.activated
    assert registry.active_model(SERVER_A).id == incumbent  # type: ignore[union-attr]
    assert len(registry.list_models(SERVER_A)) == 1
    assert not registry.checkpoint_path(SERVER_A, run_id, "gru").exists()


async def test_kill_9_of_the_worker_keeps_the_previous_model(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    incumbent = seed_active_model(registry, sessions, SERVER_A)
    served_before = registry.active_checkpoint(SERVER_A)
    manager = manager_for(config, sessions, registry, ENDLESS)
    await manager.start()
    try:
        run_id = await manager.enqueue(SERVER_A, mode="fine-tune")
        await first_progress(manager, run_id)
        process = manager.worker_process()  # the test needs the worker's pid to kill it
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        final = (await follow(manager, run_id))[-1]

        assert final.status == RunStatus.FAILED
        assert final.error is not None and "SIGKILL" in final.error
        served = registry.active_checkpoint(SERVER_A)
        assert served is not None and served_before is not None
        assert served.model.id == incumbent
        assert served.checkpoint.state_dict.keys() == served_before.checkpoint.state_dict.keys()
        with sessions() as session:
            statuses = session.scalars(select(TrainingRun.status)).all()
            assert RunStatus.RUNNING not in statuses and RunStatus.QUEUED not in statuses
            assert session.scalars(select(TrainedModel.id)).all() == [incumbent]
    finally:
        await manager.stop()

    # The next scheduled run (the scheduler's check, a fresh worker process) works.
    manager = manager_for(config, sessions, registry, QUICK)
    await manager.start()
    try:
        queued = TrainingScheduler(config, sessions, manager).check_now()
        assert len(queued) == 1
        again = await manager.get_run(queued[0])
        assert again is not None and again.server_id == SERVER_A and again.mode == RunMode.FINE_TUNE
        final = (await follow(manager, again.id))[-1]
    finally:
        await manager.stop()
    assert final.status == RunStatus.SUCCEEDED, final.error


async def test_a_crash_in_the_worker_fails_the_run_with_its_reason(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    manager = manager_for(config, sessions, registry, {**QUICK, "lr": 5.0})  # out of range
    await manager.start()
    try:
        run_id = await manager.enqueue(SERVER_A, mode="scratch")
        final = (await follow(manager, run_id))[-1]
    finally:
        await manager.stop()
    assert final.status == RunStatus.FAILED
    assert final.error == "lr must be in (0, 1]"
    assert registry.active_model(SERVER_A) is None


async def test_stop_interrupts_the_run_in_flight(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    manager = manager_for(config, sessions, registry, ENDLESS)
    await manager.start()
    run_id = await manager.enqueue(SERVER_A, mode="scratch")
    await first_progress(manager, run_id)
    process = manager.worker_process()
    assert process is not None
    await manager.stop()
    row = run_row(sessions, run_id)
    assert row.status == RunStatus.FAILED and row.error == SHUTDOWN_REASON
    assert manager.current_run() is None
    with pytest.raises(ValueError):  # closed: the worker has exited and was reaped
        process.is_alive()


async def test_stop_kills_a_worker_that_does_not_stop_in_time(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    manager = manager_for(config, sessions, registry, ENDLESS)
    await manager.start()
    run_id = await manager.enqueue(SERVER_A, mode="scratch")
    async with asyncio.timeout(60):
        while manager.worker_process() is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the worker is starting (importing torch): not yet training
    await manager.stop(grace_seconds=0.1)
    row = run_row(sessions, run_id)
    assert row.status == RunStatus.FAILED and row.error == SHUTDOWN_REASON


async def test_a_server_removed_during_its_run_leaves_nothing_behind(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    manager = manager_for(config, sessions, registry, {**TINY, "max_steps": 300})
    await manager.start()
    try:
        run_id = await manager.enqueue(SERVER_A, mode="scratch")
        events = asyncio.create_task(follow(manager, run_id))
        await first_progress(manager, run_id)
        # What the bot does when it leaves a server: cancel is not even needed for safety.
        with sessions() as session, session.begin():
            privacy.purge_server(session, SERVER_A)
        registry.delete_server(SERVER_A)
        final = (await events)[-1]
    finally:
        await manager.stop()
    assert final.status == RunStatus.FAILED and final.error is not None and "deleted" in final.error
    assert not registry.server_dir(SERVER_A).exists()
    assert registry.active_model(SERVER_A) is None
