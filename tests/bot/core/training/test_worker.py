"""The worker's pieces that need no process: failure reasons, the validation split, and a
whole job run in-process (the spawned path is covered by test_training.py)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
import torch
from sqlalchemy.orm import Session

from bot.core.errors import CorpusTooSmall
from bot.core.storage import corpus
from bot.core.storage.db import make_engine, make_session_factory
from bot.core.training.progress import RunProgress
from bot.core.training.worker import (
    IndexNotBuilt,
    WorkerFinished,
    WorkerJob,
    WorkerMessage,
    WorkerStarted,
    describe_failure,
    run_job,
    validation_text,
)
from models.checkpoint import load_checkpoint
from models.config import TrainConfig, minimum_corpus_chars
from models.errors import CheckpointError, InvalidSettingError

SERVER = 77


def test_failure_reasons_are_one_readable_line() -> None:
    assert describe_failure(
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    ).startswith("out of memory")
    assert describe_failure(MemoryError()).startswith("out of memory")
    assert describe_failure(InvalidSettingError("lr must be in (0, 1]")) == "lr must be in (0, 1]"
    assert describe_failure(CorpusTooSmall("too small")) == "too small"
    reason = describe_failure(KeyError("boom\nsecond line"))
    assert reason.startswith("the training worker crashed: KeyError") and "\n" not in reason


def test_failure_reasons_are_short_and_free_of_paths() -> None:
    """Issue #14: a run's reason reaches members; it names no host path and stays short."""
    error = CheckpointError(
        "/srv/parrot/data/checkpoints/4242/17-gru.ckpt is not a readable Parrot checkpoint"
    )
    assert describe_failure(error) == "17-gru.ckpt is not a readable Parrot checkpoint"
    huge = describe_failure(ValueError("x" * 10_000 + " in /home/someone/parrot/bot/x.py"))
    assert len(huge) <= 300 and "/home" not in huge


def test_validation_text_is_the_last_fraction() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(1_000))
    assert validation_text(text, 0.1, 10_000) == text[-100:]
    assert validation_text(text, 0.1, 49) == text[-100:-50]  # capped like train's max_eval_chars
    assert len(validation_text("abc", 0.1, 100)) == 2  # at least two characters


def test_a_job_runs_in_process(tmp_path: Path, sqlite_database_url: str) -> None:
    engine = make_engine(sqlite_database_url)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        _fill(session)
    engine.dispose()
    settings = {
        "embed_dim": 8,
        "hidden_size": 16,
        "num_layers": 1,
        "seq_len": 16,
        "batch_size": 4,
        "eval_interval": 3,
        "device": "cpu",
        "num_threads": 1,
    }
    assert minimum_corpus_chars(TrainConfig(**settings)) < 2_000
    job = WorkerJob(
        run_id=5,
        server_id=SERVER,
        database_url=sqlite_database_url,
        mode="scratch",
        archs=("gru",),
        train_settings=settings,
        minutes=5.0,
        max_steps=6,
        max_corpus_chars=2_000,
        checkpoint_dir=str(tmp_path / "ckpt"),
        incumbent_path=None,
        verbatim_span=20,
    )
    sent: list[WorkerMessage] = []
    result = run_job(job, sent.append, threading.Event())

    assert isinstance(result, WorkerFinished) and not result.cancelled
    assert sent[0] == WorkerStarted(corpus_chars=2_000, device="cpu")
    assert any(isinstance(m, RunProgress) for m in sent)
    assert result.checkpoint_path == str(tmp_path / "ckpt" / "5-gru.ckpt")
    checkpoint = Path(result.checkpoint_path or "")
    assert (
        result.val_loss is not None and result.incumbent_val_loss is None and result.verbatim_index
    )
    assert load_checkpoint(checkpoint).param_count == result.param_count
    assert checkpoint.with_name(checkpoint.name + ".verbatim").is_file()


def test_a_cancelled_job_saves_nothing(tmp_path: Path, sqlite_database_url: str) -> None:
    engine = make_engine(sqlite_database_url)
    with make_session_factory(engine)() as session, session.begin():
        _fill(session)
    engine.dispose()
    cancel = threading.Event()
    cancel.set()
    job = _tiny_job(tmp_path, sqlite_database_url)
    assert run_job(job, lambda _m: None, cancel) == WorkerFinished(cancelled=True, device="cpu")
    assert not (tmp_path / "ckpt").exists()


def test_an_index_that_cannot_be_built_fails_the_run_and_keeps_nothing(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    """The guard fails closed (issue #12): without the union with its parent's index, a
    fine-tune's model is not kept, so it can never be activated or served."""
    engine = make_engine(sqlite_database_url)
    with make_session_factory(engine)() as session, session.begin():
        _fill(session)
    engine.dispose()
    broken_parent = tmp_path / "parent.ckpt.verbatim"
    broken_parent.write_bytes(b"truncated")
    job = dataclasses.replace(
        _tiny_job(tmp_path, sqlite_database_url),
        run_id=7,
        max_steps=3,
        verbatim_span=20,
        parent_index_path=str(broken_parent),
    )
    with pytest.raises(IndexNotBuilt, match="copy guard"):
        run_job(job, lambda _m: None, threading.Event())
    assert [path for path in (tmp_path / "ckpt").iterdir()] == []


def _tiny_job(tmp_path: Path, database_url: str) -> WorkerJob:
    """A scratch job on `_fill`'s corpus with a tiny model and no guard."""
    return WorkerJob(
        run_id=6,
        server_id=SERVER,
        database_url=database_url,
        mode="scratch",
        archs=("gru",),
        train_settings={
            "embed_dim": 8,
            "hidden_size": 16,
            "num_layers": 1,
            "seq_len": 16,
            "device": "cpu",
        },
        minutes=5.0,
        max_steps=100,
        max_corpus_chars=2_000,
        checkpoint_dir=str(tmp_path / "ckpt"),
        incumbent_path=None,
        verbatim_span=None,
    )


def _fill(session: Session) -> None:
    corpus.add_messages(
        session,
        SERVER,
        [
            corpus.IncomingMessage(
                id=i + 1, channel_id=1, author_id=1, content=f"line {i} of the parrot's song"
            )
            for i in range(200)
        ],
    )
