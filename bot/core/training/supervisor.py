"""Supervising one training worker process: start it, read its pipe, enforce its deadline.

The worker (`bot.core.training.worker.worker_main`) runs in a spawn-started process and
reports over a one-way pipe. A reader thread turns the pipe into messages on the event loop
(`call_soon_threadsafe`), so the loop never blocks on the worker; a closed pipe means the
worker is gone. A watchdog cancels a run that overruns its budget and kills a worker that
ignores the cancel. Nothing here touches the database: the manager (`bot.core.training.manager`)
records what `supervise` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

from bot.core.logs import get_logger
from bot.core.training.progress import RunProgress
from bot.core.training.queue import SHUTDOWN_REASON, RunInfo
from bot.core.training.worker import (
    WorkerFailed,
    WorkerFinished,
    WorkerJob,
    WorkerMessage,
    WorkerStarted,
    worker_main,
)

log = get_logger(__name__)

HISTORY_POINT_SECONDS = 2.0  # a loss-history point at least this often (and at validations)
PROGRESS_STORE_SECONDS = 1.0  # at most one progress write to the database per second
MAX_HISTORY_POINTS = 1000
AFTER_KILL_SECONDS = 30.0  # for the manager to record a killed worker's run
CANCEL_GRACE_SECONDS = 30.0  # after a cancel, how long a worker may take before it is killed


@dataclass
class Outcome:
    """What a worker reported (or how it died)."""

    finished: WorkerFinished | None = None
    failure: str | None = None
    exitcode: int | None = None
    corpus_chars: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class LiveRun:
    """The run in flight in this process: its worker, cancel flag and latest progress."""

    info: RunInfo
    process: SpawnProcess | None = None
    cancel: MpEvent | None = None
    cancel_reason: str | None = None  # None: cancelled by a user (status `cancelled`)
    progress: RunProgress | None = None
    history: list[list[Any]] = field(default_factory=list)
    last_history_at: float = 0.0
    last_store_at: float = 0.0
    store_task: asyncio.Task[None] | None = None

    def request_cancel(self, context: SpawnContext, reason: str | None = None) -> None:
        """Ask the run to stop (`reason` None: a user cancelled it). Before the worker starts
        the flag is made here; `supervise` hands it to the worker and checks it first."""
        if reason is not None:
            self.cancel_reason = reason
        if self.cancel is None:
            self.cancel = context.Event()
        self.cancel.set()

    def request_shutdown(self) -> None:
        """The manager is stopping: a started worker is told to stop (`supervise` tells one
        that starts later)."""
        if self.cancel is not None:
            self.cancel_reason = SHUTDOWN_REASON
            self.cancel.set()

    def claim_store_slot(self, now: float) -> bool:
        """Whether to write progress to the run row now: at most every
        `PROGRESS_STORE_SECONDS`, and never while the previous write is still running."""
        if now - self.last_store_at < PROGRESS_STORE_SECONDS:
            return False
        if self.store_task is not None and not self.store_task.done():
            return False
        self.last_store_at = now
        return True

    def start_store(self, write: Coroutine[Any, Any, None]) -> None:
        self.store_task = asyncio.create_task(write)

    def record_progress(self, progress: RunProgress) -> RunProgress:
        """Keep the worker's latest progress and thin loss history ([step, train, val|None])."""
        previous = self.progress
        self.progress = progress
        now = time.monotonic()
        new_validation = progress.val_loss is not None and (
            previous is None
            or previous.val_loss != progress.val_loss
            or previous.phase != progress.phase
        )
        if new_validation or now - self.last_history_at >= HISTORY_POINT_SECONDS:
            self.last_history_at = now
            self.history.append(
                [progress.step, progress.train_loss, progress.val_loss if new_validation else None]
            )
            if len(self.history) > MAX_HISTORY_POINTS:
                self.history = self.history[::2]
        return progress


async def supervise(
    context: SpawnContext,
    live: LiveRun,
    job: WorkerJob,
    deadline_seconds: float,
    *,
    stopping: bool,
    on_progress: Callable[[LiveRun, RunProgress], None],
) -> Outcome:
    """Run `job` in a new worker process until its pipe closes; returns what it reported.

    `stopping`: the manager is shutting down, so the worker is told to cancel at once.
    """
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[WorkerMessage | None] = asyncio.Queue()
    reader, writer = context.Pipe(duplex=False)
    cancel = live.cancel or context.Event()
    process = context.Process(
        target=worker_main,
        args=(job, writer, cancel),
        name=f"parrot-train-{live.info.id}",
        daemon=True,
    )
    live.cancel = cancel
    if stopping:  # stop() came while the manager was planning
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
    watchdog = asyncio.create_task(_watchdog(live, process, cancel, deadline_seconds))
    outcome = Outcome()
    try:
        while (message := await messages.get()) is not None:
            _on_message(live, message, outcome, on_progress)
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    await asyncio.to_thread(_join, process, CANCEL_GRACE_SECONDS)
    outcome.exitcode = process.exitcode
    with contextlib.suppress(ValueError):
        process.close()
    return outcome


def death_reason(exitcode: int | None) -> str:
    """Why a worker that reported no result ended, in words."""
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


def kill_if_alive(process: SpawnProcess | None) -> None:
    if process is None:
        return
    with contextlib.suppress(ValueError):  # ValueError: closed, i.e. reaped
        if process.is_alive():
            process.kill()


def _on_message(
    live: LiveRun,
    message: WorkerMessage,
    outcome: Outcome,
    on_progress: Callable[[LiveRun, RunProgress], None],
) -> None:
    if isinstance(message, RunProgress):
        on_progress(live, message)
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


async def _watchdog(live: LiveRun, process: SpawnProcess, cancel: MpEvent, seconds: float) -> None:
    """Cancel a run that overruns its budget (plus grace); kill it if it ignores that."""
    await asyncio.sleep(seconds)
    log.error("training run %s overran its time budget; cancelling it", live.info.id)
    live.cancel_reason = "stopped: the run took far longer than its time budget"
    cancel.set()
    await asyncio.sleep(CANCEL_GRACE_SECONDS)
    if process.is_alive():
        log.error("training run %s ignored the cancel; killing the worker", live.info.id)
        process.kill()


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
