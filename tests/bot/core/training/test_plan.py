"""Planning a run: architecture precedence (request, then the server's preference, then the
config), the server's preferred size, fine-tune without a model, budgets. Real migrated
database and registry; no worker is started."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.base_model import base_checkpoint_path
from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ModelConfig, ParrotConfig, StorageConfig
from bot.core.errors import ConfigError
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus
from bot.core.storage.tables import Server, TrainingRun
from bot.core.training.plan import WATCHDOG_GRACE_SECONDS, minimum_chars, plan_run
from bot.core.training.queue import RunInfo, claim, queue_run
from tests.helpers.configs import FROM_SCRATCH

SERVER = 41


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> ParrotConfig:
    return dataclasses.replace(
        ParrotConfig(model=FROM_SCRATCH),
        storage=StorageConfig(data_dir=str(tmp_path / "data"), database_url=database_url),
        model=ModelConfig(arch="rnn", hidden_size=64, num_layers=2, base=""),
    )


@pytest.fixture
def sessions(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory.begin() as session:
        corpus.add_messages(
            session, SERVER, [corpus.IncomingMessage(1, 1, 7, "plenty of text to learn " * 50)]
        )
    return session_factory


def set_preferences(
    sessions: sessionmaker[Session], arch: str | None, hidden_size: int | None = None
) -> None:
    with sessions.begin() as session:
        server = session.get(Server, SERVER)
        assert server is not None
        server.arch, server.hidden_size = arch, hidden_size


def claimed_run(sessions: sessionmaker[Session], mode: RunMode, arch: str) -> RunInfo:
    run_id = queue_run(
        sessions,
        SERVER,
        trigger=RunTrigger.ADMIN,
        mode=mode,
        arch=arch,
        requested_by=None,
        notify_channel_id=None,
        minimum_chars=1,
    )
    info = claim(sessions, run_id)
    assert info is not None
    with sessions.begin() as session:  # planned only, never run: end it so nothing lingers
        row = session.get(TrainingRun, run_id)
        assert row is not None
        row.status = RunStatus.CANCELLED
    return info


@pytest.mark.parametrize(
    ("requested", "preferred", "expected"),
    [
        ("", "lstm", ("lstm",)),  # omitted: the server's preference
        ("", None, ("rnn",)),  # omitted, no preference: the config's default
        ("gru", "lstm", ("gru",)),  # asked for: the request wins
        ("auto", None, ("gru", "lstm")),  # both, each with half the budget
    ],
)
def test_scratch_architecture_precedence(
    config: ParrotConfig,
    sessions: sessionmaker[Session],
    requested: str,
    preferred: str | None,
    expected: tuple[str, ...],
) -> None:
    set_preferences(sessions, preferred)
    registry = ModelRegistry.from_config(config, sessions)
    info = claimed_run(sessions, RunMode.SCRATCH, requested)
    plan = plan_run(config, sessions, registry, {}, info)
    assert plan.job.archs == expected
    assert plan.mode == RunMode.SCRATCH and plan.notes(info) == []


def test_fine_tune_without_a_model_trains_from_scratch_at_the_servers_size(
    config: ParrotConfig, sessions: sessionmaker[Session]
) -> None:
    set_preferences(sessions, None, hidden_size=48)
    registry = ModelRegistry.from_config(config, sessions)
    info = claimed_run(sessions, RunMode.FINE_TUNE, "")
    plan = plan_run(config, sessions, registry, {"max_minutes": 0.5, "embed_dim": 8}, info)
    assert plan.mode == RunMode.SCRATCH and "no model yet" in plan.notes(info)[0]
    assert plan.incumbent_id is None and plan.job.incumbent_path is None
    settings = plan.job.train_settings
    assert (settings["hidden_size"], settings["num_layers"], settings["embed_dim"]) == (48, 2, 8)
    assert "max_minutes" not in settings  # budgets are the planner's, not TrainConfig fields
    assert plan.job.minutes == 0.5
    assert plan.deadline_seconds == 0.5 * 60 + WATCHDOG_GRACE_SECONDS
    assert minimum_chars(config, {}) > 0


def test_a_root_run_fine_tunes_from_the_base_model(
    config: ParrotConfig,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    tiny_checkpoint_path: Path,
) -> None:
    """Issue #10: a server without a model (and every rebuild) starts from the base."""
    with_base = dataclasses.replace(
        config, model=dataclasses.replace(config.model, base=str(tiny_checkpoint_path))
    )
    registry = ModelRegistry.from_config(with_base, sessions)
    info = claimed_run(sessions, RunMode.FINE_TUNE, "")  # no model yet
    plan = plan_run(with_base, sessions, registry, {}, info)
    assert plan.job.init_path == str(tiny_checkpoint_path)
    assert plan.job.archs == ("gru",)  # the base's architecture, not the config's rnn
    assert plan.root == "base" and plan.parent_id is None
    assert plan.notes(info) == [
        "the server had no model yet, so this run trained one from Parrot's base model"
    ]
    assert plan.job.minutes == with_base.training.fine_tune_minutes


def test_the_base_setting_is_checked(tmp_path: Path) -> None:
    assert base_checkpoint_path("") is None
    with pytest.raises(ConfigError, match="no checkpoint at"):
        base_checkpoint_path(str(tmp_path / "missing.ckpt"))
