"""Ending a run: what the worker reported becomes the run's final row (and a registered
model on success). Real migrated database and registry; the worker's report is built here,
as the pipe would deliver it (real runs are in test_training.py)."""

from __future__ import annotations

import dataclasses
import math
import signal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig, StorageConfig
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus, privacy
from bot.core.training.outcome import record_outcome
from bot.core.training.queue import claim, load_run, queue_run
from bot.core.training.supervisor import LiveRun, Outcome
from bot.core.training.worker import WorkerFinished
from tests.helpers.configs import FROM_SCRATCH

SERVER = 51


@pytest.fixture
def registry(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> ModelRegistry:
    with session_factory.begin() as session:
        corpus.add_messages(session, SERVER, [corpus.IncomingMessage(1, 1, 7, "text " * 20)])
    storage = StorageConfig(data_dir=str(tmp_path / "data"), database_url=database_url)
    config = dataclasses.replace(ParrotConfig(model=FROM_SCRATCH), storage=storage)
    return ModelRegistry.from_config(config, session_factory)


def running(sessions: sessionmaker[Session]) -> LiveRun:
    run_id = queue_run(
        sessions,
        SERVER,
        trigger=RunTrigger.ADMIN,
        mode=RunMode.SCRATCH,
        arch="",
        requested_by=None,
        notify_channel_id=None,
        minimum_chars=1,
    )
    info = claim(sessions, run_id)
    assert info is not None
    return LiveRun(info=info)


def checkpoint_file(registry: ModelRegistry, name: str) -> Path:
    path = registry.server_dir(SERVER) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read here")
    return path


def test_a_finished_run_registers_and_activates_its_model(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    live = running(session_factory)
    path = checkpoint_file(registry, "1-lstm.ckpt")
    finished = WorkerFinished(
        cancelled=False, checkpoint_path=str(path), arch="lstm", val_loss=math.log(2.0) * 3
    )
    event = record_outcome(session_factory, registry, live, None, Outcome(finished=finished))
    assert (event.status, event.activated, event.error) == (RunStatus.SUCCEEDED, True, None)
    assert event.val_bits_per_char == pytest.approx(3.0)
    active = registry.active_model(SERVER)
    assert active is not None and (active.id, active.arch) == (event.model_id, "lstm")


@pytest.mark.parametrize(
    ("outcome", "cancel_reason", "status", "error"),
    [
        (Outcome(finished=WorkerFinished(cancelled=True)), None, RunStatus.CANCELLED, None),
        (
            Outcome(finished=WorkerFinished(cancelled=True)),
            "stopped: overran",
            RunStatus.FAILED,
            "stopped: overran",
        ),
        (Outcome(failure="corpus unreadable"), None, RunStatus.FAILED, "corpus unreadable"),
        (
            Outcome(exitcode=-signal.SIGKILL),
            None,
            RunStatus.FAILED,
            "the training worker was killed by SIGKILL (out of memory?)",
        ),
    ],
)
def test_runs_without_a_model_end_with_a_reason(
    registry: ModelRegistry,
    session_factory: sessionmaker[Session],
    outcome: Outcome,
    cancel_reason: str | None,
    status: RunStatus,
    error: str | None,
) -> None:
    live = running(session_factory)
    live.cancel_reason = cancel_reason
    event = record_outcome(session_factory, registry, live, None, outcome)
    assert (event.status, event.error, event.model_id) == (status, error, None)
    stored = load_run(session_factory, live.info.id)
    assert stored is not None and stored.status == status and stored.finished_at is not None
    assert registry.active_model(SERVER) is None


def test_a_diverged_model_is_deleted_not_registered(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    live = running(session_factory)
    path = checkpoint_file(registry, "1-gru.ckpt")
    finished = WorkerFinished(cancelled=False, checkpoint_path=str(path), arch="gru")
    event = record_outcome(session_factory, registry, live, None, Outcome(finished=finished))
    assert event.status == RunStatus.FAILED and "diverged" in (event.error or "")
    assert not path.exists() and registry.list_models(SERVER) == []


def test_a_run_whose_server_was_purged_keeps_nothing(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    live = running(session_factory)
    path = checkpoint_file(registry, "1-gru.ckpt")
    with session_factory.begin() as session:
        privacy.purge_server(session, SERVER)
    finished = WorkerFinished(cancelled=False, checkpoint_path=str(path), arch="gru", val_loss=2.0)
    event = record_outcome(session_factory, registry, live, None, Outcome(finished=finished))
    assert event.status == RunStatus.FAILED and "deleted" in (event.error or "")
    assert not path.exists() and not path.parent.exists()
