"""The training queue and the worker process that runs it: one run at a time per device.

Public API (everything the bot, the console and the CLI use):

    manager = TrainingManager(config, session_factory, registry, train_overrides=None)
    await manager.start(recover=True, dispatch=True)
        # recover: runs left `running` by a dead process become `failed`
        #          ("interrupted: the bot restarted"); queued runs stay queued and resume.
        # dispatch: run queued runs FIFO in the background (False: only `run_now`).
    await manager.stop(grace_seconds=15.0)  # cancels the run in flight (marked failed,
                                            # "interrupted: the bot shut down"); a worker
                                            # still alive after the grace is killed
    run_id = await manager.enqueue(server_id, trigger="admin", mode="fine-tune", arch=None,
                                   requested_by=None, notify_channel_id=None)
    run_id = manager.enqueue_sync(...)    # same, from a thread (the scheduler's check)
        # raises TrainingBusy if the server already has a queued or running run,
        # CorpusTooSmall if its corpus cannot be trained on, InvalidInput for a bad mode/arch.
    await manager.cancel(server_id) -> bool   # the server's queued or running run
    await manager.cancel_run(run_id) -> bool
    async for event in manager.watch(run_id): ...   # RunEvent: a snapshot, progress, final
    manager.current_run() -> RunInfo | None          # the run in flight in this process
    await manager.get_run(run_id) -> RunInfo | None
    await manager.pending_runs() -> list[RunInfo]    # queued + running, any process
    await manager.run_now(run_id) -> RunEvent        # run one queued run in the foreground
    manager.add_event_listener(callback(RunEvent))   # every event, on the event loop

Runs are rows in `training_runs` (queued -> running -> succeeded | failed | cancelled). Only
this module changes a run's status, and only from the bot process: the worker
(`bot.core.training_worker`, a spawn-started process per run) reads the corpus, trains and
writes the checkpoint file, and reports over a pipe. A reader thread turns the pipe into
events on the event loop (`call_soon_threadsafe`), so the loop never blocks on the worker.
Progress is stored in the run row at most once a second; the loss history
([[step, train_loss, val_loss_or_null], ...], nats/char) with it.

Mode and architecture: `scratch` trains a new model with the requested architecture (else
the server's `servers.arch`, else `[model] arch`) and the server's preferred size
(`servers.hidden_size/num_layers`, else `[model]`); `fine-tune` continues the active model
(its architecture wins; with no model yet it becomes `scratch`, and the result says so). `arch="auto"` on a
scratch run trains a GRU and an LSTM, each with half the time budget, and keeps the one
with the lower validation loss. Budgets: `training.max_minutes` (scratch),
`training.fine_tune_minutes` (fine-tune, capped by max_minutes), `training.max_corpus_chars`.

Activation: the worker evaluates the new model and the active one on the same validation
text; `registry.should_activate` decides. A cancelled or failed run never activates.
Crashes: a worker that raises reports a one-line reason; a worker that dies (kill -9, the
kernel's OOM killer) is seen as a closed pipe and a non-zero exit code; either way the run
ends `failed`, the active model stays, and the next run starts a fresh process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.core import corpus
from bot.core.config import ParrotConfig
from bot.core.errors import CorpusTooSmall, InvalidInput, ParrotError, TrainingBusy
from bot.core.registry import ModelRegistry, should_activate, sidecar_paths
from bot.core.tables import RunMode, RunStatus, RunTrigger, Server, TrainingRun, utcnow
from bot.core.training_worker import (
    WorkerFailed,
    WorkerFinished,
    WorkerJob,
    WorkerMessage,
    WorkerProgress,
    WorkerStarted,
    worker_main,
)

log = logging.getLogger(__name__)

ARCH_CHOICES = ("gru", "lstm", "rnn", "auto")
FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
LIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
RESTART_REASON = "interrupted: the bot restarted"
SHUTDOWN_REASON = "interrupted: the bot shut down"
PROGRESS_STORE_SECONDS = 1.0  # at most one progress write to the database per second
HISTORY_POINT_SECONDS = 2.0  # a loss-history point at least this often (and at validations)
MAX_HISTORY_POINTS = 1000
# Beyond the training budget: reading the corpus, importing torch, evaluation, saving.
WATCHDOG_GRACE_SECONDS = 300.0
AFTER_KILL_SECONDS = 30.0  # for the manager to record a killed worker's run
CANCEL_GRACE_SECONDS = 30.0  # after a cancel, how long a worker may take before it is killed
LN2 = math.log(2.0)
# TrainConfig fields the manager sets itself; overrides may not replace them piecemeal.
_BUDGET_KEYS = ("max_minutes", "max_steps")


@dataclass(frozen=True)
class RunProgress:
    """The latest progress of a running run (losses in nats/char)."""

    step: int
    total_steps: int
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    chars_per_sec: float
    eta_seconds: float | None
    elapsed_seconds: float
    arch: str = ""
    phase: int = 1
    phases: int = 1

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RunProgress | None:
        if not data or "step" not in data:
            return None
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        try:
            return cls(**known)
        except TypeError:
            return None


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
    def from_info(cls, info: RunInfo, queue_position: int = 0) -> RunEvent:
        result = info.result or {}
        return cls(
            run_id=info.id,
            server_id=info.server_id,
            status=info.status,
            mode=info.mode,
            arch=info.arch,
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


@dataclass
class _Plan:
    job: WorkerJob
    mode: RunMode
    incumbent_id: int | None
    deadline_seconds: float


@dataclass
class _Outcome:
    finished: WorkerFinished | None = None
    failure: str | None = None
    exitcode: int | None = None
    corpus_chars: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _LiveRun:
    info: RunInfo
    process: SpawnProcess | None = None
    cancel: MpEvent | None = None
    cancel_reason: str | None = None  # None: cancelled by a user (status `cancelled`)
    progress: RunProgress | None = None
    history: list[list[Any]] = field(default_factory=list)
    last_history_at: float = 0.0
    last_store_at: float = 0.0
    store_task: asyncio.Task[None] | None = None


class TrainingManager:
    def __init__(
        self,
        config: ParrotConfig,
        session_factory: sessionmaker[Session],
        registry: ModelRegistry,
        *,
        train_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        """`train_overrides`: extra `models.train.TrainConfig` fields for every run (tests and
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
        self._live: _LiveRun | None = None
        self._watchers: dict[int, set[asyncio.Queue[RunEvent]]] = {}
        self._listeners: list[Callable[[RunEvent], None]] = []

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, recover: bool = True, dispatch: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        if recover:
            failed = await asyncio.to_thread(self._recover_interrupted)
            if failed:
                log.warning("marked %d interrupted training run(s) as failed", failed)
        if dispatch and self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="parrot-training")

    async def stop(self, grace_seconds: float = 15.0) -> None:
        """Stop dispatching; the run in flight is cancelled (and killed after `grace_seconds`)."""
        self._stopping = True
        live = self._live
        if live is not None and live.cancel is not None:
            live.cancel_reason = SHUTDOWN_REASON
            live.cancel.set()
        if self._wake is not None:
            self._wake.set()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(dispatcher), grace_seconds)
        except TimeoutError:
            live = self._live
            if live is not None and live.process is not None:
                with contextlib.suppress(ValueError):  # ValueError: already reaped
                    if live.process.is_alive():
                        log.warning(
                            "training worker did not stop in %.0fs; killing it", grace_seconds
                        )
                        live.process.kill()
            try:  # a killed worker's pipe closes at once; this is recording its run
                await asyncio.wait_for(dispatcher, AFTER_KILL_SECONDS)
            except TimeoutError:
                dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher

    # -- queue ---------------------------------------------------------------------------

    async def enqueue(
        self,
        server_id: int,
        trigger: RunTrigger | str = RunTrigger.ADMIN,
        mode: RunMode | str = RunMode.FINE_TUNE,
        arch: str | None = None,
        requested_by: int | None = None,
        notify_channel_id: int | None = None,
    ) -> int:
        return await asyncio.to_thread(
            self.enqueue_sync, server_id, trigger, mode, arch, requested_by, notify_channel_id
        )

    def enqueue_sync(
        self,
        server_id: int,
        trigger: RunTrigger | str = RunTrigger.ADMIN,
        mode: RunMode | str = RunMode.FINE_TUNE,
        arch: str | None = None,
        requested_by: int | None = None,
        notify_channel_id: int | None = None,
    ) -> int:
        run_trigger, run_mode, run_arch = _parse_request(trigger, mode, arch)
        with self._enqueue_lock, self._sessions() as session, session.begin():
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
            chars = corpus.corpus_stats(session, server_id).chars
            needed = self._minimum_chars()
            if chars < needed:
                raise CorpusTooSmall(
                    f"This server's corpus has {chars:,} characters; training needs at least "
                    f"{needed:,}. Add channels with /corpus channel-add or upload a text file."
                )
            row = TrainingRun(
                server_id=server_id,
                trigger=run_trigger,
                mode=run_mode,
                arch=run_arch,
                status=RunStatus.QUEUED,
                requested_by=requested_by,
                notify_channel_id=notify_channel_id,
            )
            session.add(row)
            session.flush()
            run_id = row.id
        self._wake_dispatcher()
        return run_id

    async def cancel(self, server_id: int) -> bool:
        """Cancel the server's queued or running run; False when it has none."""
        live = self._live
        if live is not None and live.info.server_id == server_id:
            return self._cancel_live(live)
        run_id = await asyncio.to_thread(self._live_run_id, server_id)
        return False if run_id is None else await self.cancel_run(run_id)

    async def cancel_run(self, run_id: int) -> bool:
        live = self._live
        if live is not None and live.info.id == run_id:
            return self._cancel_live(live)
        info = await asyncio.to_thread(self._cancel_queued, run_id)
        if info is None:
            return False
        self._emit(RunEvent.from_info(info))
        return True

    def current_run(self) -> RunInfo | None:
        live = self._live
        return None if live is None else live.info

    async def get_run(self, run_id: int) -> RunInfo | None:
        return await asyncio.to_thread(self._load_run, run_id)

    async def pending_runs(self) -> list[RunInfo]:
        """Every queued or running run (any process), running first, then in queue order."""
        return await asyncio.to_thread(self._pending_runs)

    def add_event_listener(self, callback: Callable[[RunEvent], None]) -> None:
        self._listeners.append(callback)

    def remove_event_listener(self, callback: Callable[[RunEvent], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    async def watch(self, run_id: int, *, poll_seconds: float = 5.0) -> AsyncIterator[RunEvent]:
        """The run's current state, then each change, ending with its final event.

        Events come from this process's worker; a run executed by another process (the CLI
        while the bot runs) is followed by re-reading its row every `poll_seconds`.
        """
        queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self._watchers.setdefault(run_id, set()).add(queue)
        try:
            event = await asyncio.to_thread(self._snapshot, run_id)
            if event is None:
                raise InvalidInput(f"There is no training run {run_id}.")
            yield event
            while not event.final:
                try:
                    event = await asyncio.wait_for(queue.get(), poll_seconds)
                except TimeoutError:
                    polled = await asyncio.to_thread(self._snapshot, run_id)
                    if polled is None or (polled == event and not polled.final):
                        continue
                    event = polled
                yield event
        finally:
            watchers = self._watchers.get(run_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    self._watchers.pop(run_id, None)

    async def run_now(self, run_id: int) -> RunEvent:
        """Execute one queued run in the foreground (the CLI's path); returns its final event."""
        if self._loop is None:
            await self.start(recover=False, dispatch=False)
        info = await asyncio.to_thread(self._claim, run_id)
        if info is None:
            current = await self.get_run(run_id)
            if current is None:
                raise InvalidInput(f"There is no training run {run_id}.")
            raise TrainingBusy(
                f"Run {run_id} is {current.status.value}: another process may be running it."
            )
        return await self._execute(info)

    # -- dispatch ------------------------------------------------------------------------

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
                info = await asyncio.to_thread(self._claim, None)
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
        live = _LiveRun(info=info)
        self._live = live
        try:
            self._emit(RunEvent.from_info(info))
            outcome = _Outcome()
            try:
                plan = await asyncio.to_thread(self._plan, info)
            except (ParrotError, ValueError) as error:
                outcome = _Outcome(failure=str(error))
                plan = None
            except Exception as error:
                log.exception("training run %s: could not prepare", info.id)
                outcome = _Outcome(failure=f"could not prepare the run: {error}")
                plan = None
            if plan is not None:
                if self._stopping:
                    outcome = _Outcome(failure=SHUTDOWN_REASON)
                elif live.cancel is not None and live.cancel.is_set():  # cancelled while planning
                    outcome = _Outcome(finished=WorkerFinished(cancelled=True))
                else:
                    try:
                        outcome = await self._supervise(live, plan)
                    except Exception as error:  # e.g. the process could not be started
                        log.exception("training run %s: the worker could not be run", info.id)
                        outcome = _Outcome(failure=f"the training worker could not run: {error}")
            if live.store_task is not None:
                with contextlib.suppress(Exception):
                    await live.store_task
            event = await asyncio.to_thread(self._finish, live, plan, outcome)
            if event.activated and event.model_id is not None:
                await asyncio.to_thread(
                    self.registry.notify_activated, info.server_id, event.model_id
                )
            await asyncio.to_thread(self._prune_quietly, info.server_id)
        finally:
            self._live = None
            # Cancelled or crashed in here: never leave a worker behind (the run row stays
            # `running` and the next start marks it failed).
            if live.process is not None:
                with contextlib.suppress(ValueError):  # ValueError: closed, i.e. reaped
                    if live.process.is_alive():
                        live.process.kill()
        self._emit(event)
        return event

    async def _supervise(self, live: _LiveRun, plan: _Plan) -> _Outcome:
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue[WorkerMessage | None] = asyncio.Queue()
        reader, writer = self._context.Pipe(duplex=False)
        cancel = live.cancel or self._context.Event()
        process = self._context.Process(
            target=worker_main,
            args=(plan.job, writer, cancel),
            name=f"parrot-train-{live.info.id}",
            daemon=True,
        )
        live.cancel = cancel
        if self._stopping:  # stop() came while we were planning
            live.cancel_reason = SHUTDOWN_REASON
            cancel.set()
        await asyncio.to_thread(process.start)
        live.process = process
        writer.close()  # the child holds the write end now; EOF tells us it is gone
        pump = threading.Thread(
            target=_pump,
            args=(reader, loop, messages),
            name=f"parrot-train-pipe-{live.info.id}",
            daemon=True,
        )
        pump.start()
        watchdog = asyncio.create_task(self._watchdog(live, process, cancel, plan.deadline_seconds))
        outcome = _Outcome()
        try:
            while (message := await messages.get()) is not None:
                self._on_message(live, message, outcome)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        await asyncio.to_thread(_join, process, CANCEL_GRACE_SECONDS)
        outcome.exitcode = process.exitcode
        with contextlib.suppress(ValueError):
            process.close()
        return outcome

    async def _watchdog(
        self, live: _LiveRun, process: SpawnProcess, cancel: MpEvent, seconds: float
    ) -> None:
        """Cancel a run that overruns its budget (plus grace); kill it if it ignores that."""
        await asyncio.sleep(seconds)
        log.error("training run %s overran its time budget; cancelling it", live.info.id)
        live.cancel_reason = "stopped: the run took far longer than its time budget"
        cancel.set()
        await asyncio.sleep(CANCEL_GRACE_SECONDS)
        if process.is_alive():
            log.error("training run %s ignored the cancel; killing the worker", live.info.id)
            process.kill()

    def _on_message(self, live: _LiveRun, message: WorkerMessage, outcome: _Outcome) -> None:
        if isinstance(message, WorkerProgress):
            self._on_progress(live, message)
        elif isinstance(message, WorkerStarted):
            outcome.corpus_chars = message.corpus_chars
            log.info(
                "training run %s: %d characters on %s",
                live.info.id,
                message.corpus_chars,
                message.device,
            )
        elif isinstance(message, WorkerFinished):
            outcome.finished = message
        elif isinstance(message, WorkerFailed):
            outcome.failure = message.reason

    def _on_progress(self, live: _LiveRun, message: WorkerProgress) -> None:
        progress = RunProgress(
            step=message.step,
            total_steps=message.total_steps,
            train_loss=message.train_loss,
            val_loss=message.val_loss,
            best_val_loss=message.best_val_loss,
            chars_per_sec=message.chars_per_sec,
            eta_seconds=message.eta_seconds,
            elapsed_seconds=message.elapsed_seconds,
            arch=message.arch,
            phase=message.phase,
            phases=message.phases,
        )
        previous = live.progress
        live.progress = progress
        now = time.monotonic()
        new_validation = progress.val_loss is not None and (
            previous is None
            or previous.val_loss != progress.val_loss
            or previous.phase != progress.phase
        )
        if new_validation or now - live.last_history_at >= HISTORY_POINT_SECONDS:
            live.last_history_at = now
            live.history.append(
                [progress.step, progress.train_loss, progress.val_loss if new_validation else None]
            )
            if len(live.history) > MAX_HISTORY_POINTS:
                live.history = live.history[::2]
        if now - live.last_store_at >= PROGRESS_STORE_SECONDS and (
            live.store_task is None or live.store_task.done()
        ):
            live.last_store_at = now
            live.store_task = asyncio.create_task(
                asyncio.to_thread(self._store_progress, live.info.id, progress, list(live.history))
            )
        self._emit(
            RunEvent(
                run_id=live.info.id,
                server_id=live.info.server_id,
                status=RunStatus.RUNNING,
                mode=live.info.mode,
                arch=live.info.arch,
                progress=progress,
                notify_channel_id=live.info.notify_channel_id,
                requested_by=live.info.requested_by,
            )
        )

    def _cancel_live(self, live: _LiveRun) -> bool:
        if live.cancel is None:  # still planning: the flag is checked before the worker starts
            live.cancel = self._context.Event()
        live.cancel.set()
        return True

    def _emit(self, event: RunEvent) -> None:
        for queue in list(self._watchers.get(event.run_id, ())):
            queue.put_nowait(event)
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("training event listener %r failed", callback)

    # -- database work (sync, in threads) ------------------------------------------------

    def _minimum_chars(self) -> int:
        from models.train import TrainConfig, minimum_corpus_chars

        settings = {**self._base_settings(), **self._overrides}
        for key in _BUDGET_KEYS:
            settings.pop(key, None)
        return minimum_corpus_chars(TrainConfig(**settings))

    def _base_settings(self) -> dict[str, Any]:
        model = self.config.model
        return {
            "embed_dim": model.embed_dim,
            "hidden_size": model.hidden_size,
            "num_layers": model.num_layers,
            "dropout": model.dropout,
            "seed": self.config.training.seed,
            "device": self.config.training.device,
        }

    def _recover_interrupted(self) -> int:
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(TrainingRun)
                .where(TrainingRun.status == RunStatus.RUNNING)
                .values(status=RunStatus.FAILED, error=RESTART_REASON, finished_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def _claim(self, run_id: int | None) -> RunInfo | None:
        """Mark the oldest queued run (or `run_id`) running; None if there is none."""
        with self._sessions() as session, session.begin():
            query = select(TrainingRun).where(TrainingRun.status == RunStatus.QUEUED)
            if run_id is not None:
                query = query.where(TrainingRun.id == run_id)
            row = session.scalars(
                query.order_by(TrainingRun.queued_at, TrainingRun.id).limit(1)
            ).first()
            if row is None:
                return None
            row.status = RunStatus.RUNNING
            row.started_at = utcnow()
            row.progress = None
            session.flush()
            return RunInfo.from_row(row)

    def _plan(self, info: RunInfo) -> _Plan:
        training = self.config.training
        with self._sessions() as session, session.begin():
            server = session.get(Server, info.server_id)
            if server is None:
                raise CorpusTooSmall("This server's data was deleted.")
            chars = corpus.corpus_stats(session, info.server_id).chars
            row = session.get(TrainingRun, info.id)
            if row is not None:
                row.corpus_chars_at_start = chars
            preferred = {
                "arch": server.arch,
                "hidden_size": server.hidden_size,
                "num_layers": server.num_layers,
            }
        # Loads (and so validates) the active checkpoint; a corrupt one is set aside here
        # and the previous model becomes the incumbent.
        incumbent = self.registry.active_checkpoint(info.server_id)
        mode = info.mode
        if mode == RunMode.FINE_TUNE and incumbent is None:
            mode = RunMode.SCRATCH
        settings = self._base_settings()
        for key in ("hidden_size", "num_layers"):
            if preferred[key]:
                settings[key] = preferred[key]
        max_steps = self._overrides.get("max_steps")
        settings.update({k: v for k, v in self._overrides.items() if k not in _BUDGET_KEYS})
        if mode == RunMode.FINE_TUNE:
            assert incumbent is not None
            archs: tuple[str, ...] = (incumbent.model.arch,)
            minutes = min(training.fine_tune_minutes, training.max_minutes)
        else:
            arch = info.arch if info.arch in ARCH_CHOICES else ""
            arch = arch or preferred["arch"] or self.config.model.arch
            archs = ("gru", "lstm") if arch == "auto" else (arch,)
            minutes = training.max_minutes
        minutes = float(self._overrides.get("max_minutes", minutes) or minutes)
        job = WorkerJob(
            run_id=info.id,
            server_id=info.server_id,
            database_url=self.config.storage.resolved_database_url,
            mode=mode.value,
            archs=archs,
            train_settings=settings,
            minutes=minutes,
            max_steps=max_steps,
            max_corpus_chars=training.max_corpus_chars,
            checkpoint_dir=str(self.registry.server_dir(info.server_id)),
            incumbent_path=str(incumbent.model.path) if incumbent is not None else None,
            verbatim_span=self.config.generation.max_verbatim_chars or None,
            busy_timeout_ms=self.config.storage.sqlite_busy_timeout_ms,
        )
        return _Plan(
            job=job,
            mode=mode,
            incumbent_id=incumbent.model.id if incumbent is not None else None,
            deadline_seconds=minutes * 60.0 + WATCHDOG_GRACE_SECONDS,
        )

    def _store_progress(self, run_id: int, progress: RunProgress, history: list[list[Any]]) -> None:
        try:
            with self._sessions() as session, session.begin():
                session.execute(
                    update(TrainingRun)
                    .where(TrainingRun.id == run_id, TrainingRun.status == RunStatus.RUNNING)
                    .values(progress=progress.as_json(), loss_history=history)
                )
        except Exception:  # progress is best effort; the final write matters
            log.exception("training run %s: could not store progress", run_id)

    def _finish(self, live: _LiveRun, plan: _Plan | None, outcome: _Outcome) -> RunEvent:
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
            activate = should_activate(finished.val_loss, finished.incumbent_val_loss)
            result = {
                "activated": activate,
                "val_bits_per_char": finished.val_loss / LN2,
                "incumbent_bits_per_char": (
                    None
                    if finished.incumbent_val_loss is None
                    else finished.incumbent_val_loss / LN2
                ),
                "incumbent_model_id": plan.incumbent_id if plan is not None else None,
                "notes": list(finished.notes) + _mode_notes(info, plan),
                "device": finished.device,
                "steps": finished.steps,
                "mode": plan.mode.value if plan is not None else info.mode.value,
                "corpus_chars_used": outcome.corpus_chars,
            }
        elif error is None:
            # No result: a worker killed on purpose (shutdown, overrun) says why, else how it died.
            error = live.cancel_reason or _death_reason(outcome.exitcode)
        with self._sessions() as session, session.begin():
            row = session.get(TrainingRun, info.id)
            if row is None:  # the server was purged while it trained: keep nothing of it
                if finished is not None and finished.checkpoint_path:
                    written = Path(finished.checkpoint_path)
                    for leftover in sidecar_paths(written):
                        leftover.unlink(missing_ok=True)
                    with contextlib.suppress(OSError):  # only if nothing else is in it
                        written.parent.rmdir()
                return RunEvent(
                    run_id=info.id,
                    server_id=info.server_id,
                    status=RunStatus.FAILED,
                    error="the server's data was deleted during the run",
                )
            if status == RunStatus.SUCCEEDED and finished is not None and finished.checkpoint_path:
                model = self.registry.add_model(
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

    def _prune_quietly(self, server_id: int) -> None:
        try:
            self.registry.prune(server_id)
        except Exception:
            log.exception("could not prune the checkpoints of server %s", server_id)

    def _cancel_queued(self, run_id: int) -> RunInfo | None:
        with self._sessions() as session, session.begin():
            row = session.get(TrainingRun, run_id)
            if row is None or row.status != RunStatus.QUEUED:
                return None
            row.status = RunStatus.CANCELLED
            row.finished_at = utcnow()
            session.flush()
            return RunInfo.from_row(row)

    def _live_run_id(self, server_id: int) -> int | None:
        with self._sessions() as session:
            return session.scalar(
                select(TrainingRun.id)
                .where(TrainingRun.server_id == server_id, TrainingRun.status.in_(LIVE_STATUSES))
                .order_by(TrainingRun.id)
                .limit(1)
            )

    def _pending_runs(self) -> list[RunInfo]:
        with self._sessions() as session:
            rows = session.scalars(
                select(TrainingRun)
                .where(TrainingRun.status.in_(LIVE_STATUSES))
                .order_by(TrainingRun.queued_at, TrainingRun.id)
            ).all()
            infos = [RunInfo.from_row(row) for row in rows]
        return sorted(infos, key=lambda info: info.status != RunStatus.RUNNING)

    def _load_run(self, run_id: int) -> RunInfo | None:
        with self._sessions() as session:
            row = session.get(TrainingRun, run_id)
            return None if row is None else RunInfo.from_row(row)

    def _snapshot(self, run_id: int) -> RunEvent | None:
        with self._sessions() as session:
            row = session.get(TrainingRun, run_id)
            if row is None:
                return None
            info = RunInfo.from_row(row)
            position = 0
            if row.status == RunStatus.QUEUED:
                position = 1 + int(
                    session.scalar(
                        select(func.count())
                        .select_from(TrainingRun)
                        .where(
                            TrainingRun.status == RunStatus.QUEUED,
                            (TrainingRun.queued_at < row.queued_at)
                            | (
                                (TrainingRun.queued_at == row.queued_at) & (TrainingRun.id < row.id)
                            ),
                        )
                    )
                    or 0
                )
        live = self._live
        if (
            live is not None
            and live.info.id == run_id
            and live.progress is not None
            and info.status not in FINAL_STATUSES
        ):
            info = replace(info, progress=live.progress)
        return RunEvent.from_info(info, queue_position=position)


def _parse_request(
    trigger: RunTrigger | str, mode: RunMode | str, arch: str | None
) -> tuple[RunTrigger, RunMode, str]:
    try:
        run_trigger = RunTrigger(trigger)
    except ValueError:
        raise InvalidInput(f"Unknown trigger {trigger!r}.") from None
    try:
        run_mode = RunMode(mode)
    except ValueError:
        raise InvalidInput("Mode must be fine-tune or scratch.") from None
    run_arch = (arch or "").strip().lower()
    if run_arch and run_arch not in ARCH_CHOICES:
        raise InvalidInput(f"Architecture must be one of {', '.join(ARCH_CHOICES)}.")
    return run_trigger, run_mode, run_arch


def _mode_notes(info: RunInfo, plan: _Plan | None) -> list[str]:
    if plan is not None and plan.mode != info.mode:
        return ["the server had no model yet, so this run trained one from scratch"]
    return []


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "the training worker did not report a result"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"the training worker was killed by {name}{hint}"
    return f"the training worker exited with code {exitcode} without a result"


def _join(process: SpawnProcess, timeout: float) -> None:
    process.join(timeout)
    if process.is_alive():
        log.error("training worker %s did not exit after closing its pipe; killing it", process.pid)
        process.kill()
        process.join(5.0)


def _pump(
    reader: Connection,
    loop: asyncio.AbstractEventLoop,
    messages: asyncio.Queue[WorkerMessage | None],
) -> None:
    """Thread: forward the worker's messages to the event loop; None marks the end."""
    try:
        while True:
            try:
                message = reader.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an unpicklable message: report it as a failure
                log.exception("unreadable message from the training worker")
                message = WorkerFailed("the training worker sent an unreadable message")
            try:
                loop.call_soon_threadsafe(messages.put_nowait, message)
            except RuntimeError:
                return
    finally:
        reader.close()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(messages.put_nowait, None)
