"""Issue #14: a run whose outcome cannot be recorded (the database locked past its busy
timeout) must not stay `running` forever. Real SQLite file, real spawned worker, and a real
second writer: a raw `sqlite3` connection holding `BEGIN IMMEDIATE`, as another process
would. Nothing of Parrot is mocked.

While that lock is held every connection of the bot fails after its busy timeout, reads
included (Parrot's SQLite transactions all begin IMMEDIATE), so the tests follow runs with
event listeners and read the database only after the lock is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig, StorageConfig
from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus
from bot.core.storage.db import make_engine, make_session_factory
from bot.core.training.manager import TrainingManager
from bot.core.training.outcome import finish_run, mark_unrecorded, record_outcome
from bot.core.training.queue import RunEvent, claim, load_run, queue_run
from bot.core.training.supervisor import LiveRun, Outcome
from bot.core.training.worker import WorkerFinished
from tests.bot.core.training.test_manager import QUICK, SERVER_A, corpus_text, manager_for
from tests.helpers.configs import FROM_SCRATCH

BUSY_TIMEOUT_MS = 200  # each of the bot's writes gives up on a held lock after this long
UNRECORDED = "could not record the result: OperationalError"


@pytest.fixture
def config(tmp_path: Path, sqlite_database_url: str) -> ParrotConfig:
    storage = StorageConfig(
        data_dir=str(tmp_path / "data"),
        database_url=sqlite_database_url,
        sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS,
    )
    return dataclasses.replace(ParrotConfig(model=FROM_SCRATCH), storage=storage)


@pytest.fixture
def sessions(config: ParrotConfig) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(
        config.storage.resolved_database_url, busy_timeout_ms=config.storage.sqlite_busy_timeout_ms
    )
    factory = make_session_factory(engine)
    with factory() as session, session.begin():
        corpus.add_messages(
            session,
            SERVER_A,
            [
                corpus.IncomingMessage(
                    id=SERVER_A * 10_000 + i, channel_id=1, author_id=7, content=line
                )
                for i, line in enumerate(corpus_text(1))
            ],
        )
    yield factory
    engine.dispose()


@pytest.fixture
def registry(config: ParrotConfig, sessions: sessionmaker[Session]) -> ModelRegistry:
    return ModelRegistry.from_config(config, sessions)


def database_path(config: ParrotConfig) -> str:
    return config.storage.resolved_database_url.removeprefix("sqlite:///")


class HeldWriteLock:
    """Another writer: a raw connection holding SQLite's write lock, in its own thread,
    until `seconds` have passed or `release()` is called."""

    def __init__(self, path: str, seconds: float = 120.0) -> None:
        self._path = path
        self._seconds = seconds
        self._released = threading.Event()
        self.taken = threading.Event()
        self.taken_at = self.released_at = 0.0
        self._thread = threading.Thread(target=self._hold, name="held-write-lock", daemon=True)

    def take(self) -> None:
        """Start holding the lock; returns once it is held."""
        self._thread.start()
        assert self.taken.wait(30.0), "could not take the write lock"

    def release(self) -> None:
        self._released.set()
        if self._thread.is_alive():
            self._thread.join(30.0)

    def _hold(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        try:
            connection.execute("BEGIN IMMEDIATE")
            self.taken_at = time.monotonic()
            self.taken.set()
            self._released.wait(self._seconds)
            connection.rollback()
            self.released_at = time.monotonic()
        finally:
            connection.close()


class Recorder:
    """A manager listener: every event of one run; takes the lock at its first progress."""

    def __init__(self, lock: HeldWriteLock, on_final: Callable[[], None] | None = None) -> None:
        self.run_id: int | None = None
        self.events: list[RunEvent] = []
        self.final = asyncio.Event()
        self.lock_held_at_final = False
        self._lock = lock
        self._on_final = on_final

    def __call__(self, event: RunEvent) -> None:
        if event.run_id != self.run_id:
            return
        self.events.append(event)
        if event.progress is not None and event.progress.step > 0 and not self._lock.taken.is_set():
            # On the loop, before the worker's next message: the lock is held before the
            # run can end (blocking the loop here is the test's doing, and brief).
            self._lock.take()
        if event.final:
            self.lock_held_at_final = self._lock.taken.is_set() and not self._lock.released_at
            self.final.set()
            if self._on_final is not None:
                self._on_final()


async def wait_until(check: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not await asyncio.to_thread(check):  # noqa: ASYNC110
            await asyncio.sleep(0.2)


def stored_status(sessions: sessionmaker[Session], run_id: int) -> RunStatus:
    info = load_run(sessions, run_id)
    assert info is not None
    return info.status


async def run_with_lock(
    manager: TrainingManager, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> int:
    caplog.set_level(logging.INFO, logger="bot.core.training")
    manager.add_event_listener(recorder)
    await manager.start()
    run_id = await manager.enqueue(SERVER_A, mode="scratch", arch="gru")
    recorder.run_id = run_id
    async with asyncio.timeout(120.0):
        await recorder.final.wait()
    return run_id


async def test_an_outcome_blocked_for_a_while_is_recorded_by_a_retry(
    config: ParrotConfig,
    sessions: sessionmaker[Session],
    registry: ModelRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = HeldWriteLock(database_path(config), seconds=3.0)
    recorder = Recorder(lock)
    manager = manager_for(config, sessions, registry, QUICK)
    try:
        run_id = await run_with_lock(manager, recorder, caplog)
        lock.release()
    finally:
        lock.release()
        await manager.stop()

    assert lock.taken.is_set()
    retries = [r for r in caplog.records if "could not record its outcome" in r.getMessage()]
    assert retries, "the outcome was recorded before the lock mattered"
    final = recorder.events[-1]
    assert [e for e in recorder.events if e.final] == [final]
    assert final.status == RunStatus.SUCCEEDED, final.error
    assert final.model_id is not None and final.activated
    assert stored_status(sessions, run_id) == RunStatus.SUCCEEDED
    active = registry.active_model(SERVER_A)
    assert active is not None and active.id == final.model_id and active.path.exists()
    # The server is not left "busy".
    assert await manager.enqueue(SERVER_A, mode="scratch") != run_id


async def test_an_outcome_blocked_past_every_retry_still_ends_the_run(
    config: ParrotConfig,
    sessions: sessionmaker[Session],
    registry: ModelRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Held until the final event has been emitted: every write in the retry window fails.
    lock = HeldWriteLock(database_path(config))
    recorder = Recorder(lock, on_final=lambda: threading.Thread(target=lock.release).start())
    manager = manager_for(config, sessions, registry, QUICK)
    try:
        run_id = await run_with_lock(manager, recorder, caplog)
        final = recorder.events[-1]
        # Emitted from what was in memory, while the database was still locked.
        assert recorder.lock_held_at_final
        assert final.status == RunStatus.FAILED and final.error == UNRECORDED
        assert final.model_id is None and not final.activated
        assert final.progress is not None and final.progress.step > 0
        assert manager.current_run() is None
        # Once the lock goes, the row is marked failed in a fresh transaction.
        await wait_until(lambda: stored_status(sessions, run_id) != RunStatus.RUNNING, 60.0)
    finally:
        lock.release()
        await manager.stop()

    info = load_run(sessions, run_id)
    assert info is not None and info.status == RunStatus.FAILED
    assert info.error == UNRECORDED and info.finished_at is not None
    assert "/" not in info.error and "SELECT" not in info.error
    assert [e for e in recorder.events if e.final] == [final]
    assert registry.list_models(SERVER_A) == []
    # The worker's checkpoint was never registered: nothing of it stays.
    assert not registry.checkpoint_path(SERVER_A, run_id, "gru").exists()
    leftovers = list(registry.server_dir(SERVER_A).glob("*"))
    assert leftovers == [] or not registry.server_dir(SERVER_A).exists()
    assert any("could not mark it failed" in r.getMessage() for r in caplog.records)
    assert await manager.enqueue(SERVER_A, mode="scratch") != run_id


# -- the pieces, without a worker ------------------------------------------------------------


def running_run(sessions: sessionmaker[Session]) -> LiveRun:
    run_id = queue_run(
        sessions,
        SERVER_A,
        trigger=RunTrigger.ADMIN,
        mode=RunMode.SCRATCH,
        arch="gru",
        requested_by=None,
        notify_channel_id=None,
        minimum_chars=1,
    )
    info = claim(sessions, run_id)
    assert info is not None
    return LiveRun(info=info)


def worker_checkpoint(registry: ModelRegistry, live: LiveRun) -> tuple[Outcome, Path]:
    path = registry.checkpoint_path(SERVER_A, live.info.id, "gru")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read here")
    finished = WorkerFinished(
        cancelled=False, checkpoint_path=str(path), arch="gru", val_loss=math.log(2.0) * 3
    )
    return Outcome(finished=finished), path


def test_finish_run_falls_back_to_an_event_from_memory_then_marks_failed(
    config: ParrotConfig, sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    live = running_run(sessions)
    outcome, path = worker_checkpoint(registry, live)
    lock = HeldWriteLock(database_path(config))
    lock.take()
    try:
        event, unstored = finish_run(sessions, registry, live, None, outcome, delays=(0.0, 0.1))
    finally:
        lock.release()
    assert (event.status, event.error, unstored) == (RunStatus.FAILED, UNRECORDED, UNRECORDED)
    assert path.exists()  # kept until the database confirms nobody registered it
    assert stored_status(sessions, live.info.id) == RunStatus.RUNNING
    marked = mark_unrecorded(sessions, live, outcome, UNRECORDED)
    assert (marked.status, marked.error) == (RunStatus.FAILED, UNRECORDED)
    assert stored_status(sessions, live.info.id) == RunStatus.FAILED
    assert not path.exists() and registry.list_models(SERVER_A) == []


def test_recording_again_an_outcome_already_stored_registers_nothing_twice(
    sessions: sessionmaker[Session], registry: ModelRegistry
) -> None:
    live = running_run(sessions)
    outcome, path = worker_checkpoint(registry, live)
    first = record_outcome(sessions, registry, live, None, outcome)
    again = record_outcome(sessions, registry, live, None, outcome)  # e.g. a lost COMMIT reply
    assert first.status == again.status == RunStatus.SUCCEEDED
    assert again.model_id == first.model_id is not None
    assert len(registry.list_models(SERVER_A)) == 1
    assert path.exists()
    # And marking it failed afterwards leaves the recorded success alone.
    kept = mark_unrecorded(sessions, live, outcome, UNRECORDED)
    assert kept.status == RunStatus.SUCCEEDED and kept.model_id == first.model_id
