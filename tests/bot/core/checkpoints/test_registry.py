"""The model registry on a real database (migrated by Alembic) and real checkpoint files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRegistry, should_activate
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus
from bot.core.storage.tables import TrainedModel, TrainingRun
from models.charrnn import CharRNN, CharRNNConfig
from models.checkpoint import Checkpoint, TrainingStats, save_checkpoint
from models.vocab import Vocab

SERVER = 4242


def tiny_checkpoint(arch: str = "gru", seed: int = 0) -> Checkpoint:
    torch.manual_seed(seed)
    vocab = Vocab.build("hello parrot world")
    model = CharRNN(
        CharRNNConfig(arch=arch, vocab_size=len(vocab), embed_dim=8, hidden_size=16, num_layers=1)  # type: ignore[arg-type]
    )
    return Checkpoint.from_model(model, vocab, TrainingStats(chars_seen=123))


@pytest.fixture
def registry(tmp_path: Path, session_factory: sessionmaker[Session]) -> ModelRegistry:
    with session_factory() as session, session.begin():
        corpus.ensure_server(session, SERVER, "test server")
    return ModelRegistry(tmp_path / "checkpoints", session_factory, keep_checkpoints=2)


def add_run(
    session_factory: sessionmaker[Session], history: list[list[object]] | None = None
) -> int:
    with session_factory() as session, session.begin():
        run = TrainingRun(
            server_id=SERVER,
            trigger=RunTrigger.CLI,
            mode=RunMode.SCRATCH,
            arch="gru",
            status=RunStatus.SUCCEEDED,
            loss_history=history,
        )
        session.add(run)
        session.flush()
        return run.id


def add_model(
    registry: ModelRegistry,
    session_factory: sessionmaker[Session],
    *,
    activate: bool,
    val: float = 1.5,
    history: list[list[object]] | None = None,
) -> tuple[int, Path]:
    run_id = add_run(session_factory, history)
    path = registry.checkpoint_path(SERVER, run_id, "gru")
    save_checkpoint(tiny_checkpoint(seed=run_id), path)
    with session_factory() as session, session.begin():
        row = registry.add_model(
            session,
            server_id=SERVER,
            run_id=run_id,
            path=path,
            arch="gru",
            param_count=1000,
            chars_trained=123,
            val_loss_nats=val,
            activate=activate,
        )
        model_id = row.id
    if activate:
        registry.notify_activated(SERVER, model_id)
    return model_id, path


def test_activation_rule() -> None:
    assert should_activate(1.2, None)  # no model yet: any model is better than none
    assert should_activate(1.2, 1.3)
    assert should_activate(1.3, 1.3)  # "no worse" includes equal
    assert not should_activate(1.31, 1.3)
    assert not should_activate(float("nan"), None)
    assert should_activate(1.5, float("nan"))


def test_paths_follow_the_layout(registry: ModelRegistry, tmp_path: Path) -> None:
    assert (
        registry.checkpoint_path(SERVER, 7, "lstm")
        == tmp_path / "checkpoints" / str(SERVER) / "7-lstm.ckpt"
    )


def test_active_model_and_listeners(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    seen: list[tuple[int, int]] = []
    registry.add_activation_listener(lambda server, model: seen.append((server, model)))
    assert registry.active_model(SERVER) is None

    first, first_path = add_model(
        registry, session_factory, activate=True, history=[[10, 2.0, 1.9]]
    )
    active = registry.active_model(SERVER)
    assert active is not None and active.id == first and active.path == first_path
    assert active.loss_history == [[10, 2.0, 1.9]]
    assert active.val_bits_per_char == pytest.approx(1.5 / 0.6931471805599453)

    second, _ = add_model(registry, session_factory, activate=False)
    assert registry.active_model(SERVER).id == first  # type: ignore[union-attr]
    registry.set_active(second)
    assert registry.active_model(SERVER).id == second  # type: ignore[union-attr]
    assert seen == [(SERVER, first), (SERVER, second)]
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(TrainedModel.active.is_(True))) == 1


def test_a_failing_listener_does_not_stop_the_others(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    seen: list[int] = []

    def broken(_server: int, _model: int) -> None:
        raise RuntimeError("listener bug")

    registry.add_activation_listener(broken)
    registry.add_activation_listener(lambda _server, model: seen.append(model))
    model_id, _ = add_model(registry, session_factory, activate=True)
    assert seen == [model_id]


def test_corrupt_active_checkpoint_falls_back_to_the_previous_model(
    registry: ModelRegistry,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    previous, _ = add_model(registry, session_factory, activate=True)
    newest, newest_path = add_model(registry, session_factory, activate=True)
    newest_path.write_bytes(newest_path.read_bytes()[:100])  # truncated on disk
    swaps: list[int] = []
    registry.add_activation_listener(lambda _server, model: swaps.append(model))

    with caplog.at_level(logging.ERROR, logger="bot.core.checkpoints.registry"):
        loaded = registry.active_checkpoint(SERVER)

    assert loaded is not None and loaded.model.id == previous
    assert loaded.checkpoint.stats.chars_seen == 123
    assert any("unusable" in record.getMessage() for record in caplog.records)
    assert registry.active_model(SERVER).id == previous  # type: ignore[union-attr]
    set_aside = newest_path.with_name(newest_path.name + ".corrupt")
    record = registry.get_model(newest)  # kept as a record, so its id is never reused
    assert record is not None and not record.active and record.path == set_aside
    assert not newest_path.exists() and set_aside.exists()  # kept for inspection
    assert swaps == [previous]

    # A set-aside file is never deleted automatically (issue #14): an admin decides.
    assert registry.prune(SERVER) == []
    assert set_aside.exists() and registry.get_model(newest) is not None
    assert registry.active_checkpoint(SERVER) is not None


def test_no_loadable_model_means_none(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    _, path = add_model(registry, session_factory, activate=True)
    path.write_bytes(b"not a checkpoint at all")
    assert registry.active_checkpoint(SERVER) is None
    assert registry.active_model(SERVER) is None


def test_prune_keeps_the_newest_and_the_active(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    oldest, oldest_path = add_model(registry, session_factory, activate=True)
    models = [add_model(registry, session_factory, activate=False) for _ in range(3)]
    for _, path in models:
        path.with_name(path.name + ".verbatim").write_bytes(b"index")
    orphan = registry.checkpoint_path(SERVER, 999, "gru")  # a worker died after saving
    save_checkpoint(tiny_checkpoint(), orphan)
    leftover_temp = orphan.parent / ".999-gru.ckpt.abc123.tmp"
    leftover_temp.write_bytes(b"partial")
    stranger = orphan.parent / "notes.txt"  # not ours: never touched
    stranger.write_text("keep me")

    removed = registry.prune(SERVER)

    kept_ids = [model.id for model in registry.list_models(SERVER)]
    assert kept_ids == [models[2][0], models[1][0], oldest]  # newest 2 + the active one
    assert oldest_path.exists()
    assert not models[0][1].exists()
    assert not models[0][1].with_name(models[0][1].name + ".verbatim").exists()
    assert models[1][1].exists() and models[2][1].exists()
    assert not orphan.exists() and not leftover_temp.exists()
    assert stranger.exists()
    assert models[0][1] in removed and orphan in removed


def test_prune_spares_files_of_runs_in_flight(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session, session.begin():
        run = TrainingRun(
            server_id=SERVER,
            trigger=RunTrigger.ADMIN,
            mode=RunMode.SCRATCH,
            arch="gru",
            status=RunStatus.RUNNING,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    in_flight = registry.checkpoint_path(SERVER, run_id, "gru")
    save_checkpoint(tiny_checkpoint(), in_flight)
    registry.prune(SERVER)
    assert in_flight.exists()


def test_delete_server_removes_its_directory(
    registry: ModelRegistry, session_factory: sessionmaker[Session]
) -> None:
    _, path = add_model(registry, session_factory, activate=True)
    registry.delete_server(SERVER)
    assert not path.parent.exists()
    registry.delete_server(SERVER)  # idempotent
