"""Training runs as database rows: their snapshots and every change of their status.

A run is a `training_runs` row: queued -> running -> succeeded | failed | cancelled. This
module holds what a run looks like to the rest of Parrot (`RunProgress`, `RunInfo`,
`RunEvent`) and the synchronous database work on the queue (call it from a thread): queue a
run, claim the next one, cancel a queued one, fail the ones a dead process left running,
store progress, and read the queue. Finishing a run is the manager's (`bot.core.training.manager`),
since it also registers the new model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.core.errors import CorpusTooSmall, InvalidInput, TrainingBusy
from bot.core.kinds import FINAL_STATUSES, LIVE_STATUSES, RUN_ARCHS, RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus_text
from bot.core.storage.tables import Server, TrainingRun, utcnow
from bot.core.training.progress import RunProgress

RESTART_REASON = "interrupted: the bot restarted"
# Claim order (highest first, then oldest): a rebuild owed to a privacy request or to
# deletions comes before an admin's run, which comes before the schedule's.
REBUILD_PRIORITY = 2
ADMIN_PRIORITY = 1
SCHEDULE_PRIORITY = 0
# Queue order of queued runs: what `claim` takes first comes first.
QUEUE_ORDER = (TrainingRun.priority.desc(), TrainingRun.queued_at, TrainingRun.id)
SHUTDOWN_REASON = "interrupted: the bot shut down"


@dataclass(frozen=True)
class RunInfo:
    """A snapshot of one `training_runs` row."""

    id: int
    server_id: int
    trigger: RunTrigger
    mode: RunMode
    arch: str
    status: RunStatus
    requested_by: int | None
    notify_channel_id: int | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: RunProgress | None
    result: dict[str, Any] | None
    loss_history: list[list[Any]]
    error: str | None
    corpus_chars_at_start: int | None
    rebuild: bool = False  # retrains from the lineage's root (see `request_rebuild`)

    @classmethod
    def from_row(cls, row: TrainingRun) -> RunInfo:
        stored = row.progress or {}
        return cls(
            id=row.id,
            server_id=row.server_id,
            trigger=row.trigger,
            mode=row.mode,
            arch=row.arch,
            status=row.status,
            requested_by=row.requested_by,
            notify_channel_id=row.notify_channel_id,
            queued_at=row.queued_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            progress=RunProgress.from_json(stored),
            result=stored.get("result"),
            loss_history=list(row.loss_history or []),
            error=row.error,
            corpus_chars_at_start=row.corpus_chars_at_start,
            rebuild=row.rebuild,
        )


@dataclass(frozen=True)
class RunEvent:
    """What `watch` yields: the run's state now. `final` events end the stream."""

    run_id: int
    server_id: int
    status: RunStatus
    mode: RunMode | None = None
    arch: str = ""
    progress: RunProgress | None = None
    queue_position: int = 0  # 1 = next to run; 0 when not queued
    error: str | None = None
    model_id: int | None = None
    activated: bool = False
    val_bits_per_char: float | None = None
    incumbent_bits_per_char: float | None = None
    notify_channel_id: int | None = None
    requested_by: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def running(cls, info: RunInfo, progress: RunProgress) -> RunEvent:
        """A progress report of a run in flight (the row is not re-read for it)."""
        return cls(
            run_id=info.id,
            server_id=info.server_id,
            status=RunStatus.RUNNING,
            mode=info.mode,
            arch=progress.arch or info.arch,
            progress=progress,
            notify_channel_id=info.notify_channel_id,
            requested_by=info.requested_by,
        )

    @classmethod
    def from_info(cls, info: RunInfo, queue_position: int = 0) -> RunEvent:
        result = info.result or {}
        return cls(
            run_id=info.id,
            server_id=info.server_id,
            status=info.status,
            mode=info.mode,
            # What is being trained: the worker's report names it once "auto" or the
            # server's default has been resolved; before that, what was asked for.
            arch=info.progress.arch if info.progress and info.progress.arch else info.arch,
            progress=info.progress,
            queue_position=queue_position,
            error=info.error,
            model_id=result.get("model_id"),
            activated=bool(result.get("activated", False)),
            val_bits_per_char=result.get("val_bits_per_char"),
            incumbent_bits_per_char=result.get("incumbent_bits_per_char"),
            notify_channel_id=info.notify_channel_id,
            requested_by=info.requested_by,
            notes=tuple(result.get("notes", ())),
        )


def parse_request(
    trigger: RunTrigger | str, mode: RunMode | str, arch: str | None
) -> tuple[RunTrigger, RunMode, str]:
    """Checked trigger, mode and architecture ("" when not chosen: decided at plan time)."""
    try:
        run_trigger = RunTrigger(trigger)
    except ValueError:
        raise InvalidInput(f"Unknown trigger {trigger!r}.") from None
    try:
        run_mode = RunMode(mode)
    except ValueError:
        raise InvalidInput("Mode must be fine-tune or scratch.") from None
    run_arch = (arch or "").strip().lower()
    if run_arch and run_arch not in RUN_ARCHS:
        raise InvalidInput(f"Architecture must be one of {', '.join(RUN_ARCHS)}.")
    return run_trigger, run_mode, run_arch


def queue_run(
    sessions: sessionmaker[Session],
    server_id: int,
    *,
    trigger: RunTrigger,
    mode: RunMode,
    arch: str,
    requested_by: int | None,
    notify_channel_id: int | None,
    minimum_chars: int,
) -> int:
    """Add a queued run for the server and return its id.

    TrainingBusy if the server already has a queued or running run; CorpusTooSmall if it has
    fewer than `minimum_chars` characters (or no row at all).
    """
    with sessions() as session, session.begin():
        # Lock the server's row so two processes (the bot and the CLI) on PostgreSQL
        # cannot both queue a run; SQLite's BEGIN IMMEDIATE already serialises writers.
        if session.get(Server, server_id, with_for_update=True) is None:
            raise CorpusTooSmall("This server has no text to learn from yet.")
        busy = session.execute(
            select(TrainingRun.id, TrainingRun.status)
            .where(TrainingRun.server_id == server_id, TrainingRun.status.in_(LIVE_STATUSES))
            .limit(1)
        ).first()
        if busy is not None:
            state = "running" if busy.status == RunStatus.RUNNING else "queued"
            raise TrainingBusy(
                f"A training run for this server is already {state} (run {busy.id}). "
                "Wait for it to finish, or cancel it first."
            )
        chars = corpus_text.corpus_stats(session, server_id).chars
        if chars < minimum_chars:
            raise CorpusTooSmall(
                f"This server's corpus has {chars:,} characters; training needs at least "
                f"{minimum_chars:,}. Add channels with /corpus channel-add or upload a text file."
            )
        row = TrainingRun(
            server_id=server_id,
            trigger=trigger,
            mode=mode,
            arch=arch,
            status=RunStatus.QUEUED,
            requested_by=requested_by,
            notify_channel_id=notify_channel_id,
            priority=SCHEDULE_PRIORITY if trigger == RunTrigger.SCHEDULE else ADMIN_PRIORITY,
        )
        session.add(row)
        session.flush()
        return row.id


def recover_interrupted(sessions: sessionmaker[Session]) -> int:
    """Mark runs left `running` by a dead process failed; returns how many there were."""
    with sessions() as session, session.begin():
        result = session.execute(
            update(TrainingRun)
            .where(TrainingRun.status == RunStatus.RUNNING)
            .values(status=RunStatus.FAILED, error=RESTART_REASON, finished_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)


def claim(sessions: sessionmaker[Session], run_id: int | None) -> RunInfo | None:
    """Mark the oldest queued run (or `run_id`) running; None if there is none."""
    with sessions() as session, session.begin():
        query = select(TrainingRun).where(TrainingRun.status == RunStatus.QUEUED)
        if run_id is not None:
            query = query.where(TrainingRun.id == run_id)
        row = session.scalars(query.order_by(*QUEUE_ORDER).limit(1)).first()
        if row is None:
            return None
        row.status = RunStatus.RUNNING
        row.started_at = utcnow()
        row.progress = None
        session.flush()
        return RunInfo.from_row(row)


def cancel_queued(sessions: sessionmaker[Session], run_id: int) -> RunInfo | None:
    """Cancel a run that is still queued; None when it is not (any more)."""
    with sessions() as session, session.begin():
        row = session.get(TrainingRun, run_id)
        if row is None or row.status != RunStatus.QUEUED:
            return None
        row.status = RunStatus.CANCELLED
        row.finished_at = utcnow()
        session.flush()
        return RunInfo.from_row(row)


def fail_running(sessions: sessionmaker[Session], run_id: int, reason: str) -> RunInfo | None:
    """Mark a run still `running` failed with `reason` (for a run whose outcome could not be
    recorded); returns the row as stored (unchanged if it had ended), None if it is gone."""
    with sessions() as session, session.begin():
        row = session.get(TrainingRun, run_id)
        if row is None:
            return None
        if row.status == RunStatus.RUNNING:
            row.status = RunStatus.FAILED
            row.error = reason
            row.finished_at = utcnow()
            session.flush()
        return RunInfo.from_row(row)


def store_progress(
    sessions: sessionmaker[Session], run_id: int, progress: RunProgress, history: list[list[Any]]
) -> None:
    """Save a running run's latest progress and loss history (no-op once it has ended)."""
    with sessions() as session, session.begin():
        session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id, TrainingRun.status == RunStatus.RUNNING)
            .values(progress=progress.as_json(), loss_history=history)
        )


def live_run_id(sessions: sessionmaker[Session], server_id: int) -> int | None:
    """The server's queued or running run, if any."""
    with sessions() as session:
        return session.scalar(
            select(TrainingRun.id)
            .where(TrainingRun.server_id == server_id, TrainingRun.status.in_(LIVE_STATUSES))
            .order_by(TrainingRun.id)
            .limit(1)
        )


def pending_runs(sessions: sessionmaker[Session]) -> list[RunInfo]:
    """Every queued or running run, running first, then in queue order."""
    with sessions() as session:
        rows = session.scalars(
            select(TrainingRun).where(TrainingRun.status.in_(LIVE_STATUSES)).order_by(*QUEUE_ORDER)
        ).all()
        infos = [RunInfo.from_row(row) for row in rows]
    return sorted(infos, key=lambda info: info.status != RunStatus.RUNNING)


def load_run(sessions: sessionmaker[Session], run_id: int) -> RunInfo | None:
    with sessions() as session:
        row = session.get(TrainingRun, run_id)
        return None if row is None else RunInfo.from_row(row)


def load_with_position(sessions: sessionmaker[Session], run_id: int) -> tuple[RunInfo, int] | None:
    """The run and its place in the queue (1 = next to run; 0 when not queued)."""
    with sessions() as session:
        row = session.get(TrainingRun, run_id)
        if row is None:
            return None
        position = 0
        if row.status == RunStatus.QUEUED:
            earlier = (TrainingRun.queued_at < row.queued_at) | (
                (TrainingRun.queued_at == row.queued_at) & (TrainingRun.id < row.id)
            )
            ahead = session.scalar(
                select(func.count())
                .select_from(TrainingRun)
                .where(
                    TrainingRun.status == RunStatus.QUEUED,
                    (TrainingRun.priority > row.priority)
                    | ((TrainingRun.priority == row.priority) & earlier),
                )
            )
            position = 1 + int(ahead or 0)
        return RunInfo.from_row(row), position
