"""Scheduled training: an APScheduler 3.x `BackgroundScheduler` whose jobs live in Parrot's
database.

    scheduler = TrainingScheduler(config, session_factory, training_manager)
    await scheduler.start()      # loads the persisted jobs, reconciles them with the config
    await scheduler.stop()
    await scheduler.run_check(server_id=None) -> list[int]   # enqueue due runs now
    scheduler.check_now(server_id=None) -> list[int]         # the same, synchronously
    await scheduler.refresh_server(server_id)  # after a server's schedule override changed
    scheduler.next_run_time(server_id=None) -> datetime | None

Jobs: one global job (`[schedule] interval_minutes`, or `cron` when set) checks every
server without a schedule override; a server with an override (`servers.schedule_cron` or
`servers.schedule_interval_minutes`) gets its own job; `servers.schedule_enabled = false`
takes a server out of scheduling. A server whose last two or more runs failed waits 1 h,
2 h, 4 h ... (at most a day) after its latest failure (`failure_backoff_until`). A check enqueues, per
server:
- a fine-tune when the server has a model and its corpus grew by at least
  `training.min_new_chars` since its last successful run;
- a from-scratch run when it has no model and its corpus reached
  `training.min_chars_first_model`.
A server that already has a run queued or running is skipped (the queue deduplicates).

Persistence: the jobs are pickled into the table `apscheduler_jobs` (APScheduler creates it;
Alembic's env ignores it), so a restart keeps each job's next run time, and a check that came
due while the bot was down runs once at start (coalesced). At start the stored jobs are
compared with the configuration: an unchanged job is kept as is, a changed one replaced.

How a stored job reaches the live objects: the job store can only hold importable functions
and picklable arguments, so the job is `run_training_check(scheduler_key, server_id)` and the
key finds the running `TrainingScheduler` in `_LIVE_SCHEDULERS`, a registry of *weak*
references filled by `start()` and emptied by `stop()`. Nothing global keeps the bot or the
scheduler alive; a job that fires with no live scheduler (another process, a stale key) logs
and does nothing. The key is a hash of the database URL (never the URL itself: it may hold a
password and would be pickled into the database).
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.config import ParrotConfig
from bot.core.errors import ConfigError, CorpusTooSmall, TrainingBusy
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.logs import get_logger
from bot.core.storage import corpus_text
from bot.core.storage.db import make_engine
from bot.core.storage.sql import as_utc
from bot.core.storage.tables import Server, TrainedModel, TrainingRun, utcnow
from bot.core.training import rebuilds
from bot.core.training.manager import TrainingManager

log = get_logger(__name__)

JOB_TABLE = "apscheduler_jobs"
GLOBAL_JOB_ID = "parrot:training-check"
SERVER_JOB_PREFIX = "parrot:training-check:"
JOBSTORE = "parrot"

_LIVE_SCHEDULERS: weakref.WeakValueDictionary[str, TrainingScheduler] = (
    weakref.WeakValueDictionary()
)


@dataclass(frozen=True)
class DueRun:
    server_id: int
    mode: RunMode
    reason: str


def run_training_check(scheduler_key: str, server_id: int | None = None) -> None:
    """The scheduled job (module level, so the job store can pickle a reference to it). It
    runs in the scheduler's thread pool, never on the event loop (see `TrainingScheduler`)."""
    scheduler = _LIVE_SCHEDULERS.get(scheduler_key)
    if scheduler is None:
        log.warning("scheduled training check %s: no live scheduler; skipped", scheduler_key)
        return
    scheduler.check_now(server_id)


def make_trigger(interval_minutes: float | None, cron: str | None) -> BaseTrigger:
    """A cron trigger when `cron` is set, else an interval; ConfigError for bad values."""
    if cron:
        try:
            return CronTrigger.from_crontab(cron, timezone=UTC)
        except ValueError as error:
            raise ConfigError(f"invalid cron schedule {cron!r}: {error}") from None
    if interval_minutes is None or interval_minutes <= 0:
        raise ConfigError("the training schedule's interval_minutes must be greater than 0")
    # Fractional seconds work (the trigger builds a timedelta); the stubs say int.
    seconds: Any = interval_minutes * 60.0
    return IntervalTrigger(seconds=seconds, timezone=UTC)


# A server whose runs keep failing (two or more in a row) is retried after 1 h, 2 h, 4 h ...
# at most a day.
FAILURE_BACKOFF_FIRST = timedelta(hours=1)
FAILURE_BACKOFF_LONGEST = timedelta(days=1)
FAILURE_BACKOFF_MAX_STEPS = 7  # 2**5 h > a day: older failures change nothing


def find_due_runs(
    session: Session, config: ParrotConfig, server_ids: list[int] | None = None
) -> list[DueRun]:
    """Which servers need a run now (see the module docstring); `None`: every server
    without a schedule override."""
    query = select(Server).where(Server.schedule_enabled.is_(True))
    if server_ids is None:
        query = query.where(
            Server.schedule_interval_minutes.is_(None), Server.schedule_cron.is_(None)
        )
    else:
        query = query.where(Server.id.in_(server_ids))
    training = config.training
    due: list[DueRun] = []
    now = utcnow()
    for server in session.scalars(query.order_by(Server.id)).all():
        retry_at = failure_backoff_until(session, server.id)
        if retry_at is not None and now < retry_at:
            continue  # its runs keep failing: the schedule waits longer each time
        has_model = session.scalar(
            select(TrainedModel.id)
            .where(TrainedModel.server_id == server.id, TrainedModel.active.is_(True))
            .limit(1)
        )
        if has_model is not None:
            grown = corpus_text.chars_since_last_success(session, server.id)
            if grown >= training.min_new_chars:
                due.append(DueRun(server.id, RunMode.FINE_TUNE, f"{grown} new characters"))
        else:
            chars = corpus_text.corpus_stats(session, server.id).chars
            if chars >= training.min_chars_first_model:
                due.append(DueRun(server.id, RunMode.SCRATCH, f"first model ({chars} characters)"))
    return due


def failure_backoff_until(session: Session, server_id: int) -> datetime | None:
    """When the schedule may try a server again whose runs keep failing: a single failure
    (a crash, a restart) is retried at the next check; after two in a row it waits 1 h
    from the latest, then 2 h, 4 h ... up to a day (`FAILURE_BACKOFF_*`). None: no wait.
    Admin runs and rebuilds are never held back."""
    recent = session.execute(
        select(TrainingRun.status, TrainingRun.finished_at)
        .where(
            TrainingRun.server_id == server_id,
            TrainingRun.status.in_((RunStatus.SUCCEEDED, RunStatus.FAILED)),
        )
        .order_by(TrainingRun.id.desc())
        .limit(FAILURE_BACKOFF_MAX_STEPS)
    ).all()
    failures = 0
    for status, _ in recent:
        if status != RunStatus.FAILED:
            break
        failures += 1
    last_finished = as_utc(recent[0][1]) if recent else None
    if failures < 2 or last_finished is None:
        return None
    delay = min(FAILURE_BACKOFF_FIRST * 2 ** (failures - 2), FAILURE_BACKOFF_LONGEST)
    return last_finished + delay


def scheduler_key(database_url: str) -> str:
    return hashlib.sha256(database_url.encode()).hexdigest()[:16]


class TrainingScheduler:
    def __init__(
        self,
        config: ParrotConfig,
        session_factory: sessionmaker[Session],
        manager: TrainingManager,
        *,
        key: str | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self._sessions = session_factory
        self._url = config.storage.resolved_database_url
        self.key = key or scheduler_key(self._url)
        self._scheduler: BackgroundScheduler | None = None
        self._engine: Engine | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    async def start(self) -> None:
        if self._scheduler is not None:
            return
        # A BackgroundScheduler, not an AsyncIOScheduler: the latter runs its job store
        # (get_due_jobs, update_job) on the event loop, which then stalled up to the busy
        # timeout whenever another writer held SQLite's lock (issue #14). Here the store and
        # the checks run in the scheduler's own threads. The store's own engine keeps
        # deferred transactions so its reads never take the write lock.
        self._engine = make_engine(
            self._url,
            busy_timeout_ms=self.config.storage.sqlite_busy_timeout_ms,
            begin_immediate=False,
        )
        scheduler = BackgroundScheduler(
            jobstores={JOBSTORE: SQLAlchemyJobStore(engine=self._engine, tablename=JOB_TABLE)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        _LIVE_SCHEDULERS[self.key] = self
        await asyncio.to_thread(scheduler.start, paused=True)  # reconcile first, then fire
        self._scheduler = scheduler
        try:
            await asyncio.to_thread(self.sync_jobs)
        except BaseException:
            await self.stop()
            raise
        await asyncio.to_thread(scheduler.resume)

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if _LIVE_SCHEDULERS.get(self.key) is self:
            del _LIVE_SCHEDULERS[self.key]
        if scheduler is not None and scheduler.running:
            # Waits for a check in flight (in a thread: it may be waiting on the database).
            await asyncio.to_thread(scheduler.shutdown, wait=True)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def sync_jobs(self) -> None:
        """Make the stored jobs match the config and the servers' overrides."""
        scheduler = self._require_scheduler()
        desired = self._desired_jobs()
        existing = {
            job.id: job
            for job in scheduler.get_jobs(jobstore=JOBSTORE)
            if job.id == GLOBAL_JOB_ID or job.id.startswith(SERVER_JOB_PREFIX)
        }
        for job_id in existing.keys() - desired.keys():
            scheduler.remove_job(job_id, jobstore=JOBSTORE)
        for job_id, (trigger, args) in desired.items():
            job = existing.get(job_id)
            if job is not None and str(job.trigger) == str(trigger) and tuple(job.args) == args:
                continue  # unchanged: keep its persisted next run time
            scheduler.add_job(
                run_training_check,
                trigger,
                args=args,
                id=job_id,
                name=f"training check ({'all servers' if args[1] is None else f'server {args[1]}'})",
                jobstore=JOBSTORE,
                replace_existing=True,
            )

    async def refresh_server(self, server_id: int) -> None:
        """Apply a change of a server's schedule override (or of schedule_enabled)."""
        del server_id  # every job is reconciled; the set is small
        if self._scheduler is not None:
            await asyncio.to_thread(self.sync_jobs)

    def next_run_time(self, server_id: int | None = None) -> datetime | None:
        """Blocking (reads the job store): call from a thread on the bot's loop."""
        scheduler = self._require_scheduler()
        job_id = GLOBAL_JOB_ID if server_id is None else f"{SERVER_JOB_PREFIX}{server_id}"
        job = scheduler.get_job(job_id, jobstore=JOBSTORE)
        return None if job is None else job.next_run_time

    async def run_check(self, server_id: int | None = None) -> list[int]:
        return await asyncio.to_thread(self.check_now, server_id)

    def check_now(self, server_id: int | None = None) -> list[int]:
        """Enqueue a run for every due server (one server, or all without an override),
        after the rebuilds owed to deletions (`privacy.rebuild_after_*`), which go first."""
        privacy = self.config.privacy
        with self._sessions() as session, session.begin():
            rebuilds.request_rebuilds_after_deletions(
                session,
                fraction=privacy.rebuild_after_deleted_fraction,
                days=privacy.rebuild_after_days,
            )
        queued: list[int] = self.manager.queue_owed_rebuilds()
        with self._sessions() as session:
            due = find_due_runs(session, self.config, None if server_id is None else [server_id])
        for item in due:
            try:
                run_id = self.manager.enqueue_sync(
                    item.server_id, trigger=RunTrigger.SCHEDULE, mode=item.mode
                )
            except (TrainingBusy, CorpusTooSmall) as skipped:
                log.debug("server %s not scheduled: %s", item.server_id, skipped)
                continue
            log.info(
                "scheduled %s run %s for server %s: %s",
                item.mode.value,
                run_id,
                item.server_id,
                item.reason,
            )
            queued.append(run_id)
        return queued

    def _desired_jobs(self) -> dict[str, tuple[BaseTrigger, tuple[Any, ...]]]:
        schedule = self.config.schedule
        if not schedule.enabled:
            return {}
        jobs: dict[str, tuple[BaseTrigger, tuple[Any, ...]]] = {
            GLOBAL_JOB_ID: (
                make_trigger(schedule.interval_minutes, schedule.cron),
                (self.key, None),
            )
        }
        with self._sessions() as session:
            overrides = session.execute(
                select(Server.id, Server.schedule_interval_minutes, Server.schedule_cron).where(
                    Server.schedule_enabled.is_(True),
                    Server.schedule_interval_minutes.is_not(None)
                    | Server.schedule_cron.is_not(None),
                )
            ).all()
        for server_id, interval, cron in overrides:
            try:
                trigger = make_trigger(interval or schedule.interval_minutes, cron)
            except ConfigError as error:  # one server's bad override must not stop the others
                log.error("server %s: schedule override ignored: %s", server_id, error)
                trigger = make_trigger(schedule.interval_minutes, schedule.cron)
            jobs[f"{SERVER_JOB_PREFIX}{server_id}"] = (trigger, (self.key, server_id))
        return jobs

    def _require_scheduler(self) -> BackgroundScheduler:
        if self._scheduler is None:
            raise RuntimeError("the training scheduler is not started")
        return self._scheduler
