"""`parrot train-server`: the CLI path end to end (real database, real worker process)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.core.checkpoints.registry import ModelRegistry
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus
from bot.core.storage.db import make_engine, make_session_factory
from bot.core.storage.tables import TrainingRun

SERVER = 31337


@pytest.fixture
def config_file(tmp_path: Path, sqlite_database_url: str) -> Path:
    engine = make_engine(sqlite_database_url)
    sessions = make_session_factory(engine)
    lines = [f"message {i}: the parrot says hello to pirate number {i % 17}" for i in range(150)]
    with sessions() as session, session.begin():
        corpus.add_messages(
            session,
            SERVER,
            [
                corpus.IncomingMessage(id=i + 1, channel_id=1, author_id=2, content=t)
                for i, t in enumerate(lines)
            ],
        )
    engine.dispose()
    path = tmp_path / "parrot.toml"
    path.write_text(
        f"""
[storage]
data_dir = "{(tmp_path / "data").as_posix()}"
database_url = "{sqlite_database_url}"

[model]
hidden_size = 32
num_layers = 1
embed_dim = 16
dropout = 0.0

[training]
device = "cpu"
max_minutes = 0.05
""",
        encoding="utf-8",
    )
    return path


def test_train_server_trains_and_activates(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sqlite_database_url: str
) -> None:
    status = main(
        [
            "train-server",
            str(SERVER),
            "--mode",
            "scratch",
            "--arch",
            "gru",
            "--config",
            str(config_file),
        ]
    )
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "finished" in out.out and "The new model is active (model " in out.out

    engine = make_engine(sqlite_database_url)
    try:
        registry = ModelRegistry(tmp_path / "data" / "checkpoints", make_session_factory(engine))
        active = registry.active_model(SERVER)
        assert active is not None and active.arch == "gru" and active.path.is_file()
    finally:
        engine.dispose()


def test_train_server_refuses_an_unknown_server(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train-server", "999", "--config", str(config_file)]) == 2
    assert "no text to learn from" in capsys.readouterr().err


def test_train_server_waits_for_a_run_in_another_process(
    config_file: Path, capsys: pytest.CaptureFixture[str], sqlite_database_url: str
) -> None:
    engine = make_engine(sqlite_database_url)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        corpus.ensure_server(session, 4)
        other = TrainingRun(
            server_id=4,
            trigger=RunTrigger.ADMIN,
            mode=RunMode.SCRATCH,
            arch="gru",
            status=RunStatus.RUNNING,
        )
        session.add(other)
        session.flush()
        other_id = other.id

    def the_bot_finishes_its_run() -> None:
        with sessions() as session, session.begin():
            row = session.get_one(TrainingRun, other_id)
            row.status, row.finished_at = RunStatus.SUCCEEDED, datetime.now(UTC)

    timer = threading.Timer(1.0, the_bot_finishes_its_run)
    timer.start()
    try:
        status = main(
            ["train-server", str(SERVER), "--mode", "scratch", "--config", str(config_file)]
        )
    finally:
        timer.join()
    out = capsys.readouterr()
    assert status == 0, out.err
    assert f"waiting for run {other_id} (server 4) to finish" in out.err
    with sessions() as session:
        mine = session.scalars(select(TrainingRun).where(TrainingRun.server_id == SERVER)).one()
        finished = session.get_one(TrainingRun, other_id).finished_at
        assert mine.started_at is not None and finished is not None and mine.started_at >= finished
    engine.dispose()
