"""Scheduled training with a real APScheduler (sub-second intervals) on a real SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig, ScheduleConfig, StorageConfig, TrainingConfig
from bot.core.errors import ConfigError
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus
from bot.core.storage.db import make_engine, make_session_factory
from bot.core.storage.tables import Server, TrainedModel, TrainingRun
from bot.core.training.manager import TrainingManager
from bot.core.training.scheduler import (
    JOB_TABLE,
    TrainingScheduler,
    failure_backoff_until,
    find_due_runs,
    make_trigger,
)
from tests.helpers.configs import FROM_SCRATCH

BIG, SMALL, WITH_MODEL, UP_TO_DATE, DISABLED, OVERRIDDEN = 1, 2, 3, 4, 5, 6
TICK_MINUTES = 0.2 / 60  # a 200 ms interval


def make_config(tmp_path: Path, url: str, *, interval_minutes: float = 60.0) -> ParrotConfig:
    return dataclasses.replace(
        ParrotConfig(model=FROM_SCRATCH),
        storage=StorageConfig(data_dir=str(tmp_path / "data"), database_url=url),
        training=TrainingConfig(min_chars_first_model=1_000, min_new_chars=500),
        schedule=ScheduleConfig(interval_minutes=interval_minutes),
    )


def add_text(session: Session, server_id: int, chars: int) -> None:
    line = "polly wants a cracker and a nap "
    count = max(1, chars // len(line))
    corpus.add_messages(
        session,
        server_id,
        [
            corpus.IncomingMessage(
                id=server_id * 100_000 + i, channel_id=1, author_id=9, content=line
            )
            for i in range(count)
        ],
    )


def give_model(session: Session, server_id: int, last_success: datetime) -> None:
    run = TrainingRun(
        server_id=server_id,
        trigger=RunTrigger.ADMIN,
        mode=RunMode.SCRATCH,
        arch="gru",
        status=RunStatus.SUCCEEDED,
        started_at=last_success,
        finished_at=last_success,
    )
    session.add(run)
    session.flush()
    session.add(
        TrainedModel(
            server_id=server_id,
            run_id=run.id,
            checkpoint_path="unused.ckpt",
            arch="gru",
            param_count=1,
            chars_trained=1,
            active=True,
        )
    )


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    long_ago = datetime.now(UTC) - timedelta(days=1)
    with factory() as session, session.begin():
        add_text(session, BIG, 2_000)  # no model, enough for a first one
        add_text(session, SMALL, 300)  # no model, not enough yet
        add_text(session, WITH_MODEL, 1_000)
        give_model(session, WITH_MODEL, long_ago)  # all its text is newer than the last run
        add_text(session, UP_TO_DATE, 2_000)
        give_model(session, UP_TO_DATE, datetime.now(UTC) + timedelta(minutes=5))
        add_text(session, DISABLED, 2_000)
        session.get_one(Server, DISABLED).schedule_enabled = False
        add_text(session, OVERRIDDEN, 2_000)
        session.get_one(Server, OVERRIDDEN).schedule_interval_minutes = TICK_MINUTES
    yield factory
    engine.dispose()


def queued_runs(sessions: sessionmaker[Session]) -> list[tuple[int, RunMode, RunTrigger]]:
    with sessions() as session:
        rows = session.execute(
            select(TrainingRun.server_id, TrainingRun.mode, TrainingRun.trigger)
            .where(TrainingRun.status == RunStatus.QUEUED)
            .order_by(TrainingRun.id)
        ).all()
    return [(row.server_id, row.mode, row.trigger) for row in rows]


def make_manager(config: ParrotConfig, sessions: sessionmaker[Session]) -> TrainingManager:
    registry = ModelRegistry.from_config(config, sessions)
    return TrainingManager(config, sessions, registry, train_overrides={"seq_len": 16})


async def wait_for(condition: Callable[[], object]) -> None:
    """Poll the database (the scheduler runs its jobs on its own; nothing to await)."""
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - the state lives in the database
            await asyncio.sleep(0.05)


def test_triggers_from_interval_or_cron() -> None:
    assert isinstance(make_trigger(60.0, ""), IntervalTrigger)
    assert isinstance(make_trigger(60.0, "0 3 * * *"), CronTrigger)
    with pytest.raises(ConfigError, match="invalid cron"):
        make_trigger(60.0, "every tuesday")
    with pytest.raises(ConfigError, match="greater than 0"):
        make_trigger(0.0, None)


def test_due_runs_follow_the_growth_rules(
    tmp_path: Path, database_url: str, sessions: sessionmaker[Session]
) -> None:
    config = make_config(tmp_path, database_url)
    with sessions() as session:
        due = find_due_runs(session, config)
        assert [(d.server_id, d.mode) for d in due] == [
            (BIG, RunMode.SCRATCH),
            (WITH_MODEL, RunMode.FINE_TUNE),
        ]
        assert due[0].reason.startswith("first model") and due[1].reason.endswith("new characters")
        # A server with its own schedule is checked by its own job only.
        assert [d.server_id for d in find_due_runs(session, config, [OVERRIDDEN])] == [OVERRIDDEN]
        assert find_due_runs(session, config, [DISABLED]) == []


def fail_runs(session: Session, server_id: int, finished: list[datetime]) -> None:
    for moment in finished:
        session.add(
            TrainingRun(
                server_id=server_id,
                trigger=RunTrigger.SCHEDULE,
                mode=RunMode.SCRATCH,
                arch="gru",
                status=RunStatus.FAILED,
                finished_at=moment,
                error="failed: out of memory",
            )
        )
    session.flush()


def test_a_server_whose_runs_keep_failing_backs_off(
    tmp_path: Path, database_url: str, sessions: sessionmaker[Session]
) -> None:
    """One failure is retried at once; then 1 h after two in a row, 2 h after three... at
    most a day (issue #14: the queue is fair)."""
    config = make_config(tmp_path, database_url)
    now = datetime.now(UTC)
    with sessions() as session, session.begin():
        fail_runs(session, BIG, [now - timedelta(minutes=90)])  # one failure: no wait
    with sessions() as session:
        assert failure_backoff_until(session, BIG) is None
    with sessions() as session, session.begin():
        fail_runs(session, BIG, [now - timedelta(minutes=90)])  # two: 1 h, passed
    with sessions() as session:
        assert BIG in [d.server_id for d in find_due_runs(session, config)]
    with sessions() as session, session.begin():
        fail_runs(session, BIG, [now - timedelta(minutes=90)])  # three: wait 2 h
    with sessions() as session:
        assert BIG not in [d.server_id for d in find_due_runs(session, config)]
        retry_at = failure_backoff_until(session, BIG)
        assert retry_at is not None
        assert abs(retry_at - (now + timedelta(minutes=30))) < timedelta(seconds=5)
    with sessions() as session, session.begin():
        fail_runs(session, BIG, [now - timedelta(hours=23)] * 8)  # many: at most a day
    with sessions() as session:
        retry_at = failure_backoff_until(session, BIG)
        assert retry_at is not None
        assert abs(retry_at - (now + timedelta(hours=1))) < timedelta(seconds=5)
        assert failure_backoff_until(session, WITH_MODEL) is None  # last run succeeded


async def test_periodic_job_enqueues_each_due_server_once(
    tmp_path: Path, database_url: str, sessions: sessionmaker[Session]
) -> None:
    config = make_config(tmp_path, database_url, interval_minutes=TICK_MINUTES)
    manager = make_manager(config, sessions)
    await manager.start(dispatch=False)  # runs stay queued: this test is about scheduling
    scheduler = TrainingScheduler(config, sessions, manager)
    await scheduler.start()
    try:
        await wait_for(lambda: len(queued_runs(sessions)) >= 3)
        first_check = set(queued_runs(sessions))
        await asyncio.sleep(1.0)  # about five more checks: nothing is queued twice
        assert set(queued_runs(sessions)) == first_check
        assert len(queued_runs(sessions)) == 3
    finally:
        await scheduler.stop()
        await manager.stop()
    assert first_check == {
        (BIG, RunMode.SCRATCH, RunTrigger.SCHEDULE),
        (WITH_MODEL, RunMode.FINE_TUNE, RunTrigger.SCHEDULE),
        (OVERRIDDEN, RunMode.SCRATCH, RunTrigger.SCHEDULE),
    }


async def test_a_server_override_gets_its_own_job(
    tmp_path: Path, database_url: str, sessions: sessionmaker[Session]
) -> None:
    config = make_config(tmp_path, database_url, interval_minutes=60.0)
    manager = make_manager(config, sessions)
    await manager.start(dispatch=False)
    scheduler = TrainingScheduler(config, sessions, manager)
    await scheduler.start()
    try:
        await wait_for(lambda: queued_runs(sessions))
        assert queued_runs(sessions) == [(OVERRIDDEN, RunMode.SCRATCH, RunTrigger.SCHEDULE)]
        assert scheduler.next_run_time(OVERRIDDEN) is not None
        assert scheduler.next_run_time(DISABLED) is None
        next_global = scheduler.next_run_time()
        assert next_global is not None and next_global > datetime.now(UTC) + timedelta(minutes=59)

        # Turning the override off removes its job at the next refresh.
        with sessions() as session, session.begin():
            session.get_one(Server, OVERRIDDEN).schedule_interval_minutes = None
        await scheduler.refresh_server(OVERRIDDEN)
        assert scheduler.next_run_time(OVERRIDDEN) is None
    finally:
        await scheduler.stop()
        await manager.stop()


async def test_jobs_persist_across_a_restart(
    tmp_path: Path, database_url: str, sessions: sessionmaker[Session]
) -> None:
    config = make_config(tmp_path, database_url, interval_minutes=60.0)
    manager = make_manager(config, sessions)

    first = TrainingScheduler(config, sessions, manager)
    await first.start()
    planned = first.next_run_time()
    await first.stop()
    assert planned is not None
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(text(JOB_TABLE)))
        assert stored == 2  # the global job and OVERRIDDEN's

    await asyncio.sleep(0.05)
    second = TrainingScheduler(config, sessions, manager)
    await second.start()
    try:
        assert second.next_run_time() == planned  # kept, not re-planned from "now"
    finally:
        await second.stop()

    changed = dataclasses.replace(config, schedule=ScheduleConfig(interval_minutes=30.0))
    third = TrainingScheduler(changed, sessions, manager)
    await third.start()
    try:
        replanned = third.next_run_time()
        assert replanned is not None and replanned < planned  # a changed schedule is replaced
    finally:
        await third.stop()

    disabled = dataclasses.replace(config, schedule=ScheduleConfig(enabled=False))
    fourth = TrainingScheduler(disabled, sessions, manager)
    await fourth.start()
    try:
        assert fourth.next_run_time() is None
    finally:
        await fourth.stop()


def test_a_job_without_a_live_scheduler_does_nothing(sessions: sessionmaker[Session]) -> None:
    from bot.core.training.scheduler import run_training_check

    run_training_check("no-such-key")
    assert queued_runs(sessions) == []


def test_check_now_reports_what_it_queued(
    tmp_path: Path, database_url: str, sessions: sessionmaker[Session]
) -> None:
    config = make_config(tmp_path, database_url)
    scheduler = TrainingScheduler(config, sessions, make_manager(config, sessions))
    first = scheduler.check_now()
    assert len(first) == 2
    assert scheduler.check_now() == []  # both are queued already
    assert scheduler.check_now(OVERRIDDEN) != []


async def test_a_held_write_lock_never_stalls_the_event_loop(
    tmp_path: Path, sqlite_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #14: the job store and the checks run off the loop. asyncio's debug mode logs
    every callback that holds the loop longer than `slow_callback_duration`; while another
    connection holds SQLite's write lock across several scheduler ticks, none may appear."""
    config = dataclasses.replace(
        make_config(tmp_path, sqlite_database_url, interval_minutes=TICK_MINUTES),
        storage=StorageConfig(
            data_dir=str(tmp_path / "data"),
            database_url=sqlite_database_url,
            sqlite_busy_timeout_ms=1_000,
        ),
    )
    engine = make_engine(sqlite_database_url)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        add_text(session, BIG, 2_000)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.25
    scheduler = TrainingScheduler(config, sessions, make_manager(config, sessions))
    await scheduler.start()
    holder = sqlite3.connect(sqlite_database_url.removeprefix("sqlite:///"), timeout=10)
    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            holder.execute("BEGIN IMMEDIATE")  # what a busy writer does to everyone else
            await asyncio.sleep(2.0)  # ~10 ticks: each check waits on the lock, off the loop
            holder.rollback()
            await wait_for(lambda: queued_runs(sessions))  # and the checks still work after
    finally:
        holder.close()
        await scheduler.stop()
        loop.set_debug(False)
        engine.dispose()
    stalls = [r.getMessage() for r in caplog.records if "Executing" in r.getMessage()]
    assert stalls == []
