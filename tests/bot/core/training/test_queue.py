"""The training queue's rows: requests checked, queued, claimed in order, cancelled,
recovered after a crash, progress stored. A real migrated database: SQLite, and PostgreSQL
when available."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.core.errors import CorpusTooSmall, InvalidInput, TrainingBusy
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus
from bot.core.training.progress import RunProgress
from bot.core.training.queue import (
    RESTART_REASON,
    cancel_queued,
    claim,
    live_run_id,
    load_run,
    load_with_position,
    parse_request,
    pending_runs,
    queue_run,
    recover_interrupted,
    store_progress,
)

SERVER_A = 31
SERVER_B = 32
SERVER_C = 33
PROGRESS = RunProgress(
    step=3,
    total_steps=10,
    train_loss=2.0,
    val_loss=None,
    best_val_loss=None,
    chars_per_sec=100.0,
    eta_seconds=7.0,
    elapsed_seconds=3.0,
)


@pytest.fixture
def sessions(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory.begin() as session:
        for server_id in (SERVER_A, SERVER_B, SERVER_C):
            corpus.add_messages(
                session,
                server_id,
                [corpus.IncomingMessage(server_id * 100, 1, 7, "some text to learn " * 5)],
            )
    return session_factory


def queue(sessions: sessionmaker[Session], server_id: int, arch: str = "") -> int:
    return queue_run(
        sessions,
        server_id,
        trigger=RunTrigger.ADMIN,
        mode=RunMode.SCRATCH,
        arch=arch,
        requested_by=5,
        notify_channel_id=None,
        minimum_chars=50,
    )


def positions(sessions: sessionmaker[Session], *run_ids: int) -> list[int]:
    found = [load_with_position(sessions, run_id) for run_id in run_ids]
    return [loaded[1] for loaded in found if loaded is not None]


def test_requests_are_checked_and_an_omitted_arch_stays_open() -> None:
    assert parse_request("admin", "scratch", None) == (RunTrigger.ADMIN, RunMode.SCRATCH, "")
    assert parse_request("cli", "fine-tune", " LSTM ")[2] == "lstm"
    for trigger, mode, arch in (
        ("bot", "scratch", None),
        ("admin", "x", None),
        ("cli", "scratch", "gpt"),
    ):
        with pytest.raises(InvalidInput):
            parse_request(trigger, mode, arch)


def test_queueing_refuses_busy_servers_and_small_corpora(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(CorpusTooSmall, match="no text"):
        queue(sessions, 999)  # no such server
    with pytest.raises(CorpusTooSmall, match="at least"):
        queue_run(
            sessions,
            SERVER_A,
            trigger=RunTrigger.ADMIN,
            mode=RunMode.SCRATCH,
            arch="",
            requested_by=None,
            notify_channel_id=None,
            minimum_chars=10**6,
        )
    run_id = queue(sessions, SERVER_A)
    with pytest.raises(TrainingBusy, match=f"run {run_id}"):
        queue(sessions, SERVER_A)
    stored = load_run(sessions, run_id)
    assert stored is not None
    assert (stored.status, stored.arch, stored.requested_by) == (RunStatus.QUEUED, "", 5)
    assert live_run_id(sessions, SERVER_A) == run_id


def test_runs_are_claimed_in_queue_order(sessions: sessionmaker[Session]) -> None:
    first, second, third = (queue(sessions, s) for s in (SERVER_A, SERVER_B, SERVER_C))
    assert positions(sessions, first, second, third) == [1, 2, 3]
    claimed = claim(sessions, None)
    assert claimed is not None and claimed.id == first and claimed.status == RunStatus.RUNNING
    assert positions(sessions, first, second, third) == [0, 1, 2]
    assert [info.id for info in pending_runs(sessions)] == [first, second, third]

    assert claim(sessions, first) is None  # already running
    by_id = claim(sessions, third)  # the CLI runs a chosen one
    assert by_id is not None and by_id.id == third
    assert [info.status for info in pending_runs(sessions)][-1] == RunStatus.QUEUED


def test_only_queued_runs_can_be_cancelled_here(sessions: sessionmaker[Session]) -> None:
    running, queued = queue(sessions, SERVER_A), queue(sessions, SERVER_B)
    claim(sessions, running)
    assert cancel_queued(sessions, running) is None  # the worker's cancel flag does that
    cancelled = cancel_queued(sessions, queued)
    assert cancelled is not None and cancelled.status == RunStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert cancel_queued(sessions, queued) is None
    assert live_run_id(sessions, SERVER_B) is None


def test_progress_is_stored_while_running_and_runs_left_running_fail_on_recovery(
    sessions: sessionmaker[Session],
) -> None:
    run_id = queue(sessions, SERVER_A)
    store_progress(sessions, run_id, PROGRESS, [[3, 2.0, None]])  # not running yet: ignored
    assert (info := load_run(sessions, run_id)) is not None and info.progress is None
    claim(sessions, run_id)
    store_progress(sessions, run_id, PROGRESS, [[3, 2.0, None]])
    info = load_run(sessions, run_id)
    assert info is not None and info.progress == PROGRESS and info.loss_history == [[3, 2.0, None]]

    assert recover_interrupted(sessions) == 1
    info = load_run(sessions, run_id)
    assert info is not None and (info.status, info.error) == (RunStatus.FAILED, RESTART_REASON)
    assert recover_interrupted(sessions) == 0
