"""Worker supervision helpers: the loss history kept from progress messages, and the words
for a worker that died without a result. (Real worker processes, crashes and kills are
exercised in test_training.py.)"""

from __future__ import annotations

import signal
from datetime import UTC, datetime

from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.training.progress import RunProgress
from bot.core.training.queue import RunInfo
from bot.core.training.supervisor import MAX_HISTORY_POINTS, LiveRun, death_reason


def live_run() -> LiveRun:
    info = RunInfo(
        id=1,
        server_id=9,
        trigger=RunTrigger.ADMIN,
        mode=RunMode.SCRATCH,
        arch="gru",
        status=RunStatus.RUNNING,
        requested_by=None,
        notify_channel_id=None,
        queued_at=datetime(2026, 1, 1, tzinfo=UTC),
        started_at=None,
        finished_at=None,
        progress=None,
        result=None,
        loss_history=[],
        error=None,
        corpus_chars_at_start=None,
    )
    return LiveRun(info=info)


def progress(step: int, val_loss: float | None, phase: int = 1) -> RunProgress:
    return RunProgress(
        arch="gru",
        phase=phase,
        phases=2,
        step=step,
        total_steps=10_000,
        train_loss=2.0,
        val_loss=val_loss,
        best_val_loss=val_loss,
        chars_per_sec=1000.0,
        eta_seconds=5.0,
        elapsed_seconds=1.0,
    )


def test_every_new_validation_is_a_history_point_and_long_histories_are_thinned() -> None:
    live = live_run()
    kept = live.record_progress(progress(5, 1.5))
    assert live.progress == kept and (kept.step, kept.val_loss, kept.phase) == (5, 1.5, 1)
    live.record_progress(progress(10, 1.4))
    live.record_progress(progress(10, 1.4, phase=2))  # the second architecture's first check
    assert live.history == [[5, 2.0, 1.5], [10, 2.0, 1.4], [10, 2.0, 1.4]]

    for step in range(11, 11 + MAX_HISTORY_POINTS):
        live.record_progress(progress(step, 1.0 + step / 10_000, phase=2))
    assert len(live.history) <= MAX_HISTORY_POINTS
    assert live.history[0] == [5, 2.0, 1.5]  # thinning keeps the start of the curve


def test_a_worker_without_a_result_is_described() -> None:
    assert "did not report" in death_reason(None)
    assert (
        death_reason(-signal.SIGKILL)
        == "the training worker was killed by SIGKILL (out of memory?)"
    )
    assert death_reason(-signal.SIGTERM) == "the training worker was killed by SIGTERM"
    assert "code 3" in death_reason(3)
