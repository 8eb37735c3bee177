"""Ending a training run: turn what the worker reported into the run's final row.

A finished worker with a checkpoint and a finite validation loss makes the run `succeeded`
and registers the model (activated when `registry.should_activate` says it is no worse than
the incumbent on the same validation text; a rebuild always is), with its lineage. A run
planned before a privacy request that touched its server is discarded (`cancelled`, its
files deleted): it may have read what was forgotten. A cancel by a user is `cancelled`; everything
else is `failed` with a one-line reason. A cancelled or failed run never activates, and a
checkpoint nobody will register is deleted. Synchronous (call from a thread), except `finish`.

Recording can fail (the database locked past its busy timeout, a full disk): `finish` (on the
event loop; the database work in threads) retries it, then ends the run `failed` in a fresh
transaction with a one-line reason, and always returns a final event, built from what is in
memory when even that write fails; it then keeps trying in the background to mark the row
failed, so that the run does not stay `running` (and its server "busy").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
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
from bot.core.training.queue import RunEvent, RunInfo, fail_running
from bot.core.training.supervisor import LiveRun, Outcome, death_reason
from models.units import LN2

log = get_logger(__name__)

DISCARDED_REASON = (
    "discarded: a member asked Parrot to forget their messages while this run trained; "
    "a new model is being trained without them"
)
# Waits between the attempts at recording an outcome (then the run is marked failed).
RECORD_RETRY_SECONDS = (0.5, 2.0, 5.0)
UNRECORDED_REASON = "could not record the result"
# Then, between the background tries at marking it failed (the last one repeats).
MARK_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
_PENDING_MARKS: set[asyncio.Task[None]] = set()  # referenced until done (see `finish`)


async def finish(
    sessions: sessionmaker[Session],
    registry: ModelRegistry,
    live: LiveRun,
    plan: RunPlan | None,
    outcome: Outcome,
    stopping: Callable[[], bool],
) -> RunEvent:
    """The run's final event, its end recorded in a thread (`finish_run`: retried, else the
    run marked failed). When nothing could be stored, marking it failed goes on in the
    background (`mark_failed_later`), so the row does not stay `running`."""
    event, unstored = await asyncio.to_thread(finish_run, sessions, registry, live, plan, outcome)
    if unstored is not None:
        task = asyncio.create_task(mark_failed_later(sessions, live, outcome, unstored, stopping))
        _PENDING_MARKS.add(task)
        task.add_done_callback(_PENDING_MARKS.discard)
    return event


async def mark_failed_later(
    sessions: sessionmaker[Session],
    live: LiveRun,
    outcome: Outcome,
    reason: str,
    stopping: Callable[[], bool],
) -> None:
    """Try `mark_unrecorded` (in a thread) after each wait until it works; give up when the
    manager stops (the next start then fails the run as interrupted)."""
    for attempt in itertools.count():
        await asyncio.sleep(MARK_RETRY_SECONDS[min(attempt, len(MARK_RETRY_SECONDS) - 1)])
        if stopping():
            log.warning("training run %s: left running; the next start fails it", live.info.id)
            return
        try:
            await asyncio.to_thread(mark_unrecorded, sessions, live, outcome, reason)
        except Exception as error:
            log.warning("training run %s: still cannot mark it failed: %s", live.info.id, error)
            continue
        log.info("training run %s: marked failed (%s)", live.info.id, reason)
        return


def finish_run(
    sessions: sessionmaker[Session],
    registry: ModelRegistry,
    live: LiveRun,
    plan: RunPlan | None,
    outcome: Outcome,
    *,
    delays: tuple[float, ...] = RECORD_RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[RunEvent, str | None]:
    """`record_outcome`, retried after each of `delays`; then the run is marked failed in a
    fresh transaction (`mark_unrecorded`). Never raises. Returns the final event, and the
    reason when not even the failure could be stored (the row is still `running`: retry
    `mark_unrecorded` later)."""
    error: Exception | None = None
    for attempt, delay in enumerate((*delays, None), start=1):
        try:
            return record_outcome(sessions, registry, live, plan, outcome), None
        except Exception as failed:
            error = failed
            if delay is None:
                break
            log.warning(
                "training run %s: could not record its outcome (attempt %d of %d): %s; "
                "retrying in %.1fs",
                live.info.id,
                attempt,
                len(delays) + 1,
                failed,
                delay,
            )
            sleep(delay)
    log.error(
        "training run %s: could not record its outcome; marking it failed",
        live.info.id,
        exc_info=error,
    )
    reason = f"{UNRECORDED_REASON}: {type(error).__name__}"
    try:
        return mark_unrecorded(sessions, live, outcome, reason), None
    except Exception:
        log.exception("training run %s: could not mark it failed either", live.info.id)
    return unrecorded_event(live, reason), reason


def mark_unrecorded(
    sessions: sessionmaker[Session], live: LiveRun, outcome: Outcome, reason: str
) -> RunEvent:
    """End a run whose outcome could not be recorded `failed` with `reason` (one fresh
    transaction; raises when it cannot) and delete its checkpoint unless it was registered."""
    stored = fail_running(sessions, live.info.id, reason)
    finished = outcome.finished
    registered = stored is not None and (stored.result or {}).get("model_id") is not None
    if finished is not None and finished.checkpoint_path and not registered:
        _delete_checkpoint(Path(finished.checkpoint_path))
    return unrecorded_event(live, reason) if stored is None else RunEvent.from_info(stored)


def unrecorded_event(live: LiveRun, reason: str) -> RunEvent:
    """The final event of a run whose end could not be stored, from what is in memory."""
    info = replace(
        live.info,
        status=RunStatus.FAILED,
        error=reason,
        finished_at=utcnow(),
        progress=live.progress or live.info.progress,
        result=None,
    )
    return RunEvent.from_info(info)


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
        if row is not None and row.status != RunStatus.RUNNING:
            # Ended already: an earlier attempt whose commit was reported as failed (or
            # another process). Recording again would register the model twice.
            ended = RunInfo.from_row(row)
            registered = (ended.result or {}).get("model_id") is not None
            if finished is not None and finished.checkpoint_path and not registered:
                _delete_checkpoint(Path(finished.checkpoint_path))
            return RunEvent.from_info(ended)
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
