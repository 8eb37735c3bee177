"""Ending a training run: turn what the worker reported into the run's final row.

A finished worker with a checkpoint and a finite validation loss makes the run `succeeded`
and registers the model (activated when `registry.should_activate` says it is no worse than
the incumbent on the same validation text; a rebuild always is), with its lineage. A run
planned before a privacy request that touched its server is discarded (`cancelled`, its
files deleted): it may have read what was forgotten. A cancel by a user is `cancelled`; everything
else is `failed` with a one-line reason. A cancelled or failed run never activates, and a
checkpoint nobody will register is deleted. Synchronous: call from a thread.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.files import sidecar_paths
from bot.core.checkpoints.lineage import ROOT_SCRATCH, record_lineage
from bot.core.checkpoints.registry import ModelRegistry, should_activate
from bot.core.kinds import RunStatus
from bot.core.logs import get_logger
from bot.core.storage.tables import Server, TrainingRun, utcnow
from bot.core.training.plan import RunPlan
from bot.core.training.queue import RunEvent, RunInfo
from bot.core.training.supervisor import LiveRun, Outcome, death_reason
from models.units import LN2

log = get_logger(__name__)

DISCARDED_REASON = (
    "discarded: a member asked Parrot to forget their messages while this run trained; "
    "a new model is being trained without them"
)


def record_outcome(
    sessions: sessionmaker[Session],
    registry: ModelRegistry,
    live: LiveRun,
    plan: RunPlan | None,
    outcome: Outcome,
) -> RunEvent:
    """Store the run's final status, result, progress and loss history; the final event."""
    info = live.info
    finished = outcome.finished
    status, error = RunStatus.FAILED, outcome.failure
    result: dict[str, Any] = {}
    activate = False
    if finished is not None and finished.cancelled:
        status, error = (
            (RunStatus.CANCELLED, None)
            if live.cancel_reason is None
            else (RunStatus.FAILED, live.cancel_reason)
        )
    elif finished is not None and finished.checkpoint_path and finished.val_loss is None:
        error = "the new model's validation loss is not a number (training diverged)"
        for leftover in sidecar_paths(Path(finished.checkpoint_path)):
            leftover.unlink(missing_ok=True)
    elif finished is not None and finished.checkpoint_path and finished.val_loss is not None:
        status, error = RunStatus.SUCCEEDED, None
        # A rebuild replaces a model that holds deleted or forgotten text: it wins outright.
        rebuild = plan is not None and plan.rebuild
        activate = rebuild or should_activate(finished.val_loss, finished.incumbent_val_loss)
        result = {
            "activated": activate,
            "val_bits_per_char": finished.val_loss / LN2,
            "incumbent_bits_per_char": (
                None if finished.incumbent_val_loss is None else finished.incumbent_val_loss / LN2
            ),
            "incumbent_model_id": plan.incumbent_id if plan is not None else None,
            "notes": list(finished.notes) + (plan.notes(info) if plan is not None else []),
            "device": finished.device,
            "steps": finished.steps,
            "mode": plan.mode.value if plan is not None else info.mode.value,
            "corpus_chars_used": outcome.corpus_chars,
        }
    elif error is None:
        # No result: a worker killed on purpose (shutdown, overrun) says why, else how it died.
        error = live.cancel_reason or death_reason(outcome.exitcode)
    with sessions() as session, session.begin():
        # Locked (PostgreSQL) so a privacy request cannot slip between this check and the
        # activation below; SQLite's BEGIN IMMEDIATE already serialises them.
        server = session.get(Server, info.server_id, with_for_update=True)
        row = session.get(TrainingRun, info.id)
        if (
            status == RunStatus.SUCCEEDED
            and server is not None
            and plan is not None
            and server.privacy_epoch != plan.privacy_epoch
        ):
            # A member asked to be forgotten after this run read the corpus: its model may
            # hold their words, so it is never kept (a rebuild without them is owed).
            status, error, activate, result = RunStatus.CANCELLED, DISCARDED_REASON, False, {}
            if finished is not None and finished.checkpoint_path:
                _delete_checkpoint(Path(finished.checkpoint_path))
        if row is None:  # the server was purged while it trained: keep nothing of it
            if finished is not None and finished.checkpoint_path:
                _delete_checkpoint(Path(finished.checkpoint_path))
            return RunEvent(
                run_id=info.id,
                server_id=info.server_id,
                status=RunStatus.FAILED,
                error="the server's data was deleted during the run",
            )
        if status == RunStatus.SUCCEEDED and finished is not None and finished.checkpoint_path:
            model = registry.add_model(
                session,
                server_id=info.server_id,
                run_id=info.id,
                path=Path(finished.checkpoint_path),
                arch=finished.arch or info.arch,
                param_count=finished.param_count,
                chars_trained=finished.chars_trained,
                val_loss_nats=finished.val_loss,
                activate=activate,
            )
            record_lineage(
                session,
                model,
                parent_id=plan.parent_id if plan is not None else None,
                snapshot=finished.snapshot,
                root=plan.root if plan is not None else ROOT_SCRATCH,
            )
            if activate and model.parent_id is None and server is not None:
                # A new root: the deletions counted so far are not in its weights.
                server.deleted_chars_since_root, server.first_deletion_at = 0, None
            result["model_id"] = model.id
        row.status = status
        row.error = error
        row.finished_at = utcnow()
        stored = live.progress.as_json() if live.progress is not None else {}
        if result:
            stored["result"] = result
        row.progress = stored or None
        if live.history:
            row.loss_history = list(live.history)
        if outcome.corpus_chars is not None and row.corpus_chars_at_start is None:
            row.corpus_chars_at_start = outcome.corpus_chars
        session.flush()
        final = RunInfo.from_row(row)
    if status != RunStatus.SUCCEEDED:
        log.warning("training run %s ended %s: %s", info.id, status.value, error or "")
    return RunEvent.from_info(final)


def _delete_checkpoint(written: Path) -> None:
    for leftover in sidecar_paths(written):
        leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # only if nothing else is in it
        written.parent.rmdir()
