"""The training queue's lifecycle: dispatching queued runs one at a time per device, each
in a fresh spawn-started worker process, and recording how each ended.

Runs are rows in `training_runs` (queued -> running -> succeeded | failed | cancelled). Only
the manager changes a run's status, and only from the bot process: the worker
(`bot.core.training.worker`) reads the corpus, trains, writes the checkpoint file and
reports over a pipe. Progress is stored in the run row at most once a second, with the loss
history ([[step, train_loss, val_loss_or_null], ...], nats/char).

The parts, one job each: `queue` (the rows and their transitions), `plan` (mode,
architecture, shape and budget), `supervisor` (the worker process), `outcome` (the final
row and the model registration), `events` (watchers and listeners), `progress` (the one
shape of a run's progress).

Crashes: a worker that raises reports a one-line reason; a worker that dies (kill -9, the
kernel's OOM killer) is seen as a closed pipe and a non-zero exit code; either way the run
ends `failed`, the active model stays, and the next run starts a fresh process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

import bot.core.training.queue as runs
from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig
from bot.core.errors import InvalidInput, ParrotError, TrainingBusy
from bot.core.kinds import FINAL_STATUSES, RunMode, RunTrigger
from bot.core.logs import get_logger
from bot.core.training import rebuilds
from bot.core.training.events import RunEvents
from bot.core.training.outcome import finish
from bot.core.training.plan import RunPlan, minimum_chars, plan_run
from bot.core.training.progress import RunProgress
from bot.core.training.queue import SHUTDOWN_REASON, RunEvent, RunInfo
from bot.core.training.supervisor import (
    AFTER_KILL_SECONDS,
    LiveRun,
    Outcome,
    kill_if_alive,
    supervise,
)
from bot.core.training.worker import WorkerFinished, describe_failure

log = get_logger(__name__)


class TrainingManager:
    def __init__(
        self,
        config: ParrotConfig,
        session_factory: sessionmaker[Session],
        registry: ModelRegistry,
        *,
        train_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        """`train_overrides`: extra `models.config.TrainConfig` fields for every run (tests and
        benchmarks use it for tiny models and step budgets: `max_steps`, `hidden_size`...)."""
        self.config = config
        self.registry = registry
        self._sessions = session_factory
        self._overrides = dict(train_overrides or {})
        self._context = multiprocessing.get_context("spawn")
        self._enqueue_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._live: LiveRun | None = None
        self._events = RunEvents()

    async def start(self, *, recover: bool = True, dispatch: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        if recover:
            failed = await asyncio.to_thread(runs.recover_interrupted, self._sessions)
            if failed:
                log.warning("marked %d interrupted training run(s) as failed", failed)
        if dispatch and self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="parrot-training")

    async def stop(self, grace_seconds: float = 15.0) -> None:
        """Stop dispatching; the run in flight is cancelled (and killed after `grace_seconds`)."""
        self._stopping = True
        if self._live is not None:
            self._live.request_shutdown()
        if self._wake is not None:
            self._wake.set()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(dispatcher), grace_seconds)
        except TimeoutError:
            if self._live is not None:
                log.warning("training worker did not stop in %.0fs; killing it", grace_seconds)
                kill_if_alive(self._live.process)
            try:  # a killed worker's pipe closes at once; this is recording its run
                await asyncio.wait_for(dispatcher, AFTER_KILL_SECONDS)
            except TimeoutError:
                dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher

    async def enqueue(self, server_id: int, **request: Any) -> int:
        """`enqueue_sync` in a thread (the same keyword arguments)."""
        return await asyncio.to_thread(functools.partial(self.enqueue_sync, server_id, **request))

    def enqueue_sync(
        self,
        server_id: int,
        trigger: RunTrigger | str = RunTrigger.ADMIN,
        mode: RunMode | str = RunMode.FINE_TUNE,
        arch: str | None = None,
        requested_by: int | None = None,
        notify_channel_id: int | None = None,
    ) -> int:
        run_trigger, run_mode, run_arch = runs.parse_request(trigger, mode, arch)
        with self._enqueue_lock:
            run_id = runs.queue_run(
                self._sessions,
                server_id,
                trigger=run_trigger,
                mode=run_mode,
                arch=run_arch,
                requested_by=requested_by,
                notify_channel_id=notify_channel_id,
                minimum_chars=minimum_chars(self.config, self._overrides),
            )
        self._wake_dispatcher()
        return run_id

    def queue_owed_rebuilds(self) -> list[int]:
        """Queue owed rebuilds (`rebuilds.queue_owed_rebuilds`) and wake the dispatcher."""
        minimum = minimum_chars(self.config, self._overrides)
        queued = rebuilds.queue_owed_rebuilds(self._sessions, minimum)
        if queued:
            log.info("queued %d rebuild(s) owed to privacy requests or deletions", len(queued))
            self._wake_dispatcher()
        return queued

    async def cancel(self, server_id: int) -> bool:
        """Cancel the server's queued or running run; False when it has none."""
        live = self._live
        if live is not None and live.info.server_id == server_id:
            return self._cancel_live(live)
        run_id = await asyncio.to_thread(runs.live_run_id, self._sessions, server_id)
        return False if run_id is None else await self.cancel_run(run_id)

    async def cancel_run(self, run_id: int) -> bool:
        live = self._live
        if live is not None and live.info.id == run_id:
            return self._cancel_live(live)
        info = await asyncio.to_thread(runs.cancel_queued, self._sessions, run_id)
        if info is None:
            return False
        self._events.emit(RunEvent.from_info(info))
        return True

    def current_run(self) -> RunInfo | None:
        live = self._live
        return None if live is None else live.info

    def worker_process(self) -> SpawnProcess | None:
        """The worker process of the run in flight here (None before it starts); for
        supervision tools and the tests that kill it."""
        live = self._live
        return None if live is None else live.process

    async def get_run(self, run_id: int) -> RunInfo | None:
        return await asyncio.to_thread(runs.load_run, self._sessions, run_id)

    async def pending_runs(self) -> list[RunInfo]:
        """Every queued or running run (any process), running first, then in queue order."""
        return await asyncio.to_thread(runs.pending_runs, self._sessions)

    def add_event_listener(self, callback: Callable[[RunEvent], None]) -> None:
        self._events.add_listener(callback)

    def remove_event_listener(self, callback: Callable[[RunEvent], None]) -> None:
        self._events.remove_listener(callback)

    def watch(self, run_id: int, *, poll_seconds: float = 5.0) -> AsyncIterator[RunEvent]:
        """The run's current state, then each change, ending with its final event.

        Events come from this process's worker; a run executed by another process (the CLI
        while the bot runs) is followed by re-reading its row every `poll_seconds`.
        """
        return self._events.watch(run_id, self._snapshot, poll_seconds=poll_seconds)

    async def run_now(self, run_id: int) -> RunEvent:
        """Execute one queued run in the foreground (the CLI's path); returns its final event."""
        if self._loop is None:
            await self.start(recover=False, dispatch=False)
        info = await asyncio.to_thread(runs.claim, self._sessions, run_id)
        if info is None:
            current = await self.get_run(run_id)
            if current is None:
                raise InvalidInput(f"There is no training run {run_id}.")
            raise TrainingBusy(
                f"Run {run_id} is {current.status.value}: another process may be running it."
            )
        return await self._execute(info)

    def _wake_dispatcher(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed since the check
            loop.call_soon_threadsafe(wake.set)

    async def _dispatch_loop(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            try:
                await asyncio.to_thread(self.queue_owed_rebuilds)  # owed during a run
                info = await asyncio.to_thread(runs.claim, self._sessions, None)
            except Exception:
                log.exception("could not read the training queue; retrying in 5s")
                await asyncio.sleep(5.0)
                continue
            if info is None:
                await self._wake.wait()
                continue
            try:
                await self._execute(info)
            except Exception:
                log.exception("training run %s: unexpected error in the manager", info.id)

    async def _execute(self, info: RunInfo) -> RunEvent:
        live = LiveRun(info=info)
        self._live = live
        try:
            self._events.emit(RunEvent.from_info(info))
            plan, outcome = await plan_and_supervise(
                self._context,
                live,
                lambda: plan_run(self.config, self._sessions, self.registry, self._overrides, info),
                stopping=lambda: self._stopping,
                on_progress=self._on_progress,
            )
            if live.store_task is not None:
                with contextlib.suppress(Exception):
                    await live.store_task
            event = await finish(
                self._sessions, self.registry, live, plan, outcome, lambda: self._stopping
            )
            if event.activated and event.model_id is not None:
                await asyncio.to_thread(
                    self.registry.notify_activated, info.server_id, event.model_id
                )
            await asyncio.to_thread(prune_quietly, self.registry, info.server_id)
        finally:
            self._live = None
            # Cancelled or crashed in here: never leave a worker behind (the run row stays
            # `running` and the next start marks it failed).
            kill_if_alive(live.process)
        self._events.emit(event)
        return event

    def _on_progress(self, live: LiveRun, message: RunProgress) -> None:
        """On the loop, per worker progress message: history, a throttled store, an event."""
        progress = live.record_progress(message)
        if live.claim_store_slot(time.monotonic()):
            live.start_store(
                asyncio.to_thread(
                    store_progress_quietly,
                    self._sessions,
                    live.info.id,
                    progress,
                    list(live.history),
                )
            )
        self._events.emit(RunEvent.running(live.info, progress))

    def _cancel_live(self, live: LiveRun) -> bool:
        live.request_cancel(self._context)
        return True

    async def _snapshot(self, run_id: int) -> RunEvent | None:
        """The run as stored, with this process's fresher progress when it is running here."""
        loaded = await asyncio.to_thread(runs.load_with_position, self._sessions, run_id)
        if loaded is None:
            return None
        info, position = loaded
        live = self._live
        if (
            live is not None
            and live.info.id == run_id
            and live.progress is not None
            and info.status not in FINAL_STATUSES
        ):
            info = replace(info, progress=live.progress)
        return RunEvent.from_info(info, queue_position=position)


async def plan_and_supervise(
    context: SpawnContext,
    live: LiveRun,
    plan: Callable[[], RunPlan],
    *,
    stopping: Callable[[], bool],
    on_progress: Callable[[LiveRun, RunProgress], None],
) -> tuple[RunPlan | None, Outcome]:
    """Plan the run (in a thread), then run its worker; any failure becomes the outcome."""
    try:
        planned = await asyncio.to_thread(plan)
    except (ParrotError, ValueError) as error:
        return None, Outcome(failure=str(error))
    except Exception as error:
        log.exception("training run %s: could not prepare", live.info.id)
        return None, Outcome(failure=f"could not prepare the run: {describe_failure(error)}")
    if stopping():
        return planned, Outcome(failure=SHUTDOWN_REASON)
    if live.cancel is not None and live.cancel.is_set():  # cancelled while planning
        return planned, Outcome(finished=WorkerFinished(cancelled=True))
    try:
        outcome = await supervise(
            context,
            live,
            planned.job,
            planned.deadline_seconds,
            stopping=stopping(),
            on_progress=on_progress,
        )
    except Exception as error:  # e.g. the process could not be started
        log.exception("training run %s: the worker could not be run", live.info.id)
        outcome = Outcome(failure=f"the training worker could not run: {error}")
    return planned, outcome


def store_progress_quietly(
    sessions: sessionmaker[Session], run_id: int, progress: RunProgress, history: list[list[Any]]
) -> None:
    try:
        runs.store_progress(sessions, run_id, progress, history)
    except Exception:  # progress is best effort; the final write matters
        log.exception("training run %s: could not store progress", run_id)


def prune_quietly(registry: ModelRegistry, server_id: int) -> None:
    try:
        registry.prune(server_id)
    except Exception:
        log.exception("could not prune the checkpoints of server %s", server_id)
